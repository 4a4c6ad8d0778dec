"""CPU prefill benchmark: SmolLM2-135M forward over 512-token windows, dense vs sparsified.

Dense and sparse passes alternate (dense = the same sparsified model with ``handle.using("never")``,
so both see identical memory layout and warm caches); each pass runs every window once. Reports
median and minimum seconds per pass, tokens/s and the overhead, plus where the sparse time goes:
an instrumented extra pass times every pruning call (count, elements, seconds). Run:

    python benchmarks/bench_prefill_cpu.py                 # amber policy, 8:16, amber scoring
    python benchmarks/bench_prefill_cpu.py --policy all --pattern 2:4 --json out.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--policy", default="amber")
    parser.add_argument("--pattern", default="8:16")
    parser.add_argument("--scoring", default="amber")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--window-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7, help="alternating dense/sparse pass pairs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    import numba
    import torch

    import ampersim
    from ampersim.eval import data as ev
    from ampersim.models.load import load_model
    from ampersim.runtime import sparsify as torch_integration

    loaded = load_model(args.model)
    load_start = os.getloadavg()[0]
    windows = ev.token_windows(loaded.tokenizer, ev.load_text("austen"), args.window_tokens, args.windows,
                               add_bos=loaded.add_bos)
    handle = ampersim.sparsify(loaded.model, args.policy, pattern=args.pattern, scoring=args.scoring,
                               spec=loaded.spec)

    def one_pass() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for row in windows.split(1):
                loaded.model(input_ids=row, use_cache=False)
        return time.perf_counter() - t0

    with handle.using("never"):
        one_pass()  # warm-up: allocator, numba compilation below
    one_pass()
    dense, sparse = [], []
    for _ in range(args.repeats):
        with handle.using("never"):
            dense.append(one_pass())
        sparse.append(one_pass())

    calls: list[tuple[int, float]] = []
    real = torch_integration.prune_activation

    def timed(x: Any, pattern: Any, factor: Any) -> Any:
        t0 = time.perf_counter()
        out = real(x, pattern, factor)
        calls.append((x.numel(), time.perf_counter() - t0))
        return out

    torch_integration.prune_activation = timed
    try:
        instrumented = one_pass()
    finally:
        torch_integration.prune_activation = real
    handle.remove()

    tokens = int(windows.numel())
    prune_s = sum(s for _, s in calls)
    result = {
        "model": loaded.name, "policy": args.policy, "pattern": args.pattern, "scoring": args.scoring,
        "windows": args.windows, "window_tokens": args.window_tokens, "repeats": args.repeats,
        "coverage": handle.coverage.fraction if handle.coverage else None,
        "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "dense_s": dense, "sparse_s": sparse,
        "dense_median_s": statistics.median(dense), "sparse_median_s": statistics.median(sparse),
        "dense_min_s": min(dense), "sparse_min_s": min(sparse),
        "overhead_median": statistics.median(sparse) / statistics.median(dense) - 1,
        "overhead_min": min(sparse) / min(dense) - 1,
        "dense_tokens_per_s": tokens / statistics.median(dense),
        "sparse_tokens_per_s": tokens / statistics.median(sparse),
        "prune_calls_per_pass": len(calls), "prune_elements_per_pass": sum(n for n, _ in calls),
        "prune_s_per_pass": prune_s, "instrumented_pass_s": instrumented,
        "prune_share_of_instrumented_pass": prune_s / instrumented,
        "prune_elements_per_s": sum(n for n, _ in calls) / prune_s if prune_s else None,
        "command": " ".join(["python", "benchmarks/bench_prefill_cpu.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "loadavg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],  # other work on the machine
    }
    print(f"{loaded.name} prefill, {args.windows} x {args.window_tokens} tokens per pass, {args.policy} "
          f"{args.pattern} {args.scoring} (coverage {100 * (result['coverage'] or 0):.1f} %), "
          f"{args.repeats} alternating pass pairs")
    print(f"dense : median {result['dense_median_s']:.3f} s  min {result['dense_min_s']:.3f} s  "
          f"{result['dense_tokens_per_s']:.0f} tokens/s")
    print(f"sparse: median {result['sparse_median_s']:.3f} s  min {result['sparse_min_s']:.3f} s  "
          f"{result['sparse_tokens_per_s']:.0f} tokens/s")
    print(f"overhead: {100 * result['overhead_median']:+.1f} % (medians), {100 * result['overhead_min']:+.1f} % (minima)")
    print(f"pruning: {len(calls)} calls, {result['prune_elements_per_pass'] / 1e6:.1f} M elements, "
          f"{prune_s * 1e3:.0f} ms per pass = {100 * result['prune_share_of_instrumented_pass']:.1f} % of an "
          f"instrumented sparse pass ({result['prune_elements_per_s'] / 1e6:.0f} M elements/s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
