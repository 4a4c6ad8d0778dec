"""The eager torch pruner now (ampersim.kernels.torch_eager.prune: the reference's tie-breaking by unique
integer keys + topk) against the harness's masking it replaced (abs, x factor, topk, scatter, multiply;
ampersim/measure/ops.py before commit 10811cd), side by side on one GPU at the mixed-step shapes.

Why: the mixed-step layer with the eager-torch path measured 24.4 ms in one H200 run and 42.3 ms in a
later one (docs/validation.md); this times the two pruners in one process to see whether the pruner
explains it. Each call is checked first: both give the same pruned values on these inputs (random, no
ties), and the new one equals the numpy reference's semantics by the test suite.

    PYTHONPATH=. python3 benchmarks/gpu_eager_pruner_compare.py [--json FILE]
"""
from __future__ import annotations

import argparse
import json

import torch

from ampersim.kernels import torch_eager
from ampersim.measure import harness
from ampersim.measure.env import capture_environment

SHAPES = ((2032, 4096), (2032, 14336), (8176, 14336))  # mixed-step chunks x attn_in / mlp_mid widths


def masking_before(x: torch.Tensor, n: int, m: int, factor: torch.Tensor | None) -> torch.Tensor:
    """The harness's eager masking before the single eager pruner (abs, x factor, topk, scatter, multiply)."""
    score = x.abs() if factor is None else x.abs() * factor
    groups = score.reshape(*x.shape[:-1], x.shape[-1] // m, m)
    idx = groups.topk(n, dim=-1).indices
    mask = torch.zeros(groups.shape, dtype=torch.bool, device=x.device).scatter_(-1, idx, True)
    return x * mask.reshape(x.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the rows and the environment here")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for rows_, k in SHAPES:
        xs = [torch.randn(rows_, k, device="cuda").to(torch.bfloat16) for _ in range(4)]
        factor = torch.rand(k, device="cuda") + 0.5
        same = all(torch.equal(masking_before(x, 2, 4, factor), torch_eager.prune(x, "2:4", factor=factor))
                   for x in xs)
        row = {"rows": rows_, "k": k, "pattern": "2:4", "factor": True, "same_result": same}
        if same:
            for name, fn in (("before", lambda x: masking_before(x, 2, 4, factor)),
                             ("now", lambda x: torch_eager.prune(x, "2:4", factor=factor))):
                row[f"{name}_s"] = harness.time_calls([lambda x=x, f=fn: f(x) for x in xs]).median_s
            row["now_over_before"] = row["now_s"] / row["before_s"]
        rows.append(row)
        print(row, flush=True)
    if args.json:
        env = capture_environment("cuda").model_dump()
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)
    print(f"{'shape':>14} {'before ms':>10} {'now ms':>10} {'now/before':>10}")
    for r in rows:
        if r["same_result"]:
            print(f"{r['rows']:>6}x{r['k']:<7} {r['before_s'] * 1e3:10.3f} {r['now_s'] * 1e3:10.3f} "
                  f"{r['now_over_before']:10.2f}")
        else:
            print(f"{r['rows']:>6}x{r['k']:<7} results differ: not timed")


if __name__ == "__main__":
    main()
