"""Consistency of the committed device runs of the selection-network fused_mask at 2:4, 4:8, 8:16, 16:32
on an H200 (validation/gpu_pruner/selection-h200.json, and run 2 on the per-M default launches,
selection-h200-run2.json): environment recorded, every timed row's pattern checked bit for bit first,
fractions of copy recomputable from the stored times and the run's copy bandwidth; the default launches
and the profiles' selection_rate traceable to run 1, and run 2's defaults timing what run 1's explicit
rows of the same tiles promised."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ampersim.core.patterns import NMPattern
from ampersim.core.resources import data_dir
from ampersim.hardware.registry import load_profile
from ampersim.kernels.gpu.pruner import DEFAULT_LAUNCH, Launch, LaunchConfig

RESULTS = json.loads((data_dir("validation") / "gpu_pruner" / "selection-h200.json").read_text())
RUN2 = json.loads((data_dir("validation") / "gpu_pruner" / "selection-h200-run2.json").read_text())
RUNS = {"run1": RESULTS, "run2": RUN2}
PATTERNS = ("2:4", "4:8", "8:16", "16:32")
SHAPES = {(8192, 4096), (16384, 14336)}
KERNEL_OVERHEAD_S = 3e-6  # the shipped h200 profile's kernel_overhead_us
# profiles whose fused_mask / fused_cslt selection_rate comes from this run
SELECTION_PROFILES = ("h200", "h200-calibrated", "h100-sxm", "h100-sxm-nm816", "h100-sxm-calibrated")


def _rows(results: dict = RESULTS) -> list[dict]:
    return results["patterns"]["rows"]


def _launch(row: dict) -> Launch:
    """The tile a run 1 row ran: an explicit "BR=.. BK=.. warps=.." or what that tree's prune_gpu launched."""
    if row["launch"] == "prune_gpu":
        m = NMPattern.parse(row["pattern"]).m
        cfg = RESULTS["config"]["mask24" if row["pattern"] == "2:4" else "mask"]
        return Launch(cfg["BR"], max(cfg["BK"], m), cfg["num_warps"])
    br, bk, warps = map(int, re.fullmatch(r"BR=(\d+) BK=(\d+) warps=(\d+)", row["launch"]).groups())
    return Launch(br, bk, warps)


@pytest.mark.parametrize("run", RUNS)
def test_environment_and_sections(run):
    results = RUNS[run]
    env = results["env"]
    clocks = ("clocks",) if run == "run1" else ("nvidia_smi",)  # run 2's script records nvidia-smi by field
    for field in ("gpu", "capability", "torch", "cuda", "driver", "triton", "date_utc") + clocks:
        assert env.get(field) not in (None, ""), field
    assert env["gpu"] == "NVIDIA H200"
    for name in ("env", "copy", "patterns"):
        assert "error" not in results[name], name


@pytest.mark.parametrize("run", RUNS)
def test_copy_bandwidth_recomputable(run):
    results = RUNS[run]
    copy = results["copy"]
    for r in copy["runs"].values():
        assert r["gbps_rw"] == pytest.approx(2 * copy["bytes"] / r["median_s"] / 1e9)
    assert copy["gbps_rw"] == pytest.approx(max(r["gbps_rw"] for r in copy["runs"].values()))
    assert results["patterns"]["copy_gbps_rw"] == copy["gbps_rw"]


@pytest.mark.parametrize("run", RUNS)
def test_every_timed_row_was_checked_and_is_recomputable(run):
    results = RUNS[run]
    checks = {(c["dtype"], c["pattern"], c["factor"]): c["equal"] for c in results["patterns"]["checks"]}
    assert len(checks) == 3 * len(PATTERNS) * 2 and all(checks.values()) and results["patterns"]["all_equal"]
    copy = results["patterns"]["copy_gbps_rw"]
    rows = _rows(results)
    assert len(rows) == len(SHAPES) * len(PATTERNS) * 2 * 4
    for r in rows:
        assert "error" not in r and (r["rows"], r["k"]) in SHAPES and r["pattern"] in PATTERNS
        assert checks[("torch.bfloat16", r["pattern"], r["factor"])], r
        graph, reps = (r["mode"] == "graph", r["reps"]) if run == "run1" else (r["method"] == "cuda_graph", r["runs"])
        assert graph and reps >= 20 and r["p10_s"] <= r["median_s"] <= r["p90_s"]
        moved = 2 * r["rows"] * r["k"] * 2  # bf16 read + write
        assert r["gbps_rw"] == pytest.approx(moved / r["median_s"] / 1e9)
        assert r["fraction_of_copy"] == pytest.approx(moved / r["median_s"] / 1e9 / copy)


def test_run2_prune_gpu_rows_ran_the_default_launches_and_match_run1s_explicit_rows_of_those_tiles():
    """Run 2 timed prune_gpu on today's DEFAULT_LAUNCH (its recorded tile is the pattern's default field);
    at 8:16 (32x128, 4 warps) and 16:32 (16x256, 4 warps), with and without a factor, at both shapes, it
    is within 5 % of run 1's explicit-launch row of the same tile: the defaults deliver what run 1's
    explicit rows promised."""
    assert {k: Launch(**v) for k, v in RUN2["config"].items() if k.startswith("mask")} == \
        {k: getattr(DEFAULT_LAUNCH, k) for k in ("mask24", "mask", "mask_m16", "mask_m32")}
    compared = 0
    for row in _rows(RUN2):
        if row["launch"] != "prune_gpu":
            continue
        tile = Launch(**row["tile"])
        assert tile == getattr(DEFAULT_LAUNCH, LaunchConfig.mask_field(NMPattern.parse(row["pattern"]))), row
        if row["pattern"] not in ("8:16", "16:32"):
            continue
        (run1,) = [r for r in _rows() if r["launch"] != "prune_gpu" and _launch(r) == tile
                   and (r["pattern"], r["factor"], r["rows"], r["k"]) == (row["pattern"], row["factor"], row["rows"], row["k"])]
        assert row["median_s"] == pytest.approx(run1["median_s"], rel=0.05), (row, run1)
        compared += 1
    assert compared == 2 * 2 * len(SHAPES)


def test_default_launches_for_m16_and_m32_were_the_fastest_measured_with_the_amber_factor():
    """DEFAULT_LAUNCH.mask_m16 / mask_m32 come from the explicit-launch rows (docs/gpu-pruner.md): with a
    factor (the Amber scoring) they were the fastest tile at both shapes; 8:16 without a factor too."""
    for pattern in ("8:16", "16:32"):
        chosen = getattr(DEFAULT_LAUNCH, LaunchConfig.mask_field(NMPattern.parse(pattern)))
        for shape in SHAPES:
            for factor in ((True, False) if pattern == "8:16" else (True,)):
                rows = [r for r in _rows() if r["pattern"] == pattern and r["factor"] == factor
                        and (r["rows"], r["k"]) == shape and r["launch"] != "prune_gpu"]
                assert _launch(min(rows, key=lambda r: r["median_s"])) == chosen, (pattern, shape, factor)


def test_docs_then_and_now_table_is_the_prune_gpu_rows_of_both_runs():
    """docs/gpu-pruner.md's table: run 1's prune_gpu row ("then") and run 2's ("now") of each pattern,
    factor and shape, as ms and fraction of the run's copy."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "gpu-pruner.md").read_text()

    def cell(results: dict, pattern: str, factor: bool, shape: tuple[int, int]) -> str:
        (row,) = [r for r in _rows(results) if r["launch"] == "prune_gpu" and r["pattern"] == pattern
                  and r["factor"] == factor and (r["rows"], r["k"]) == shape]
        return f"{row['median_s'] * 1e3:.3f} ms, {row['fraction_of_copy']:.2f}"

    for pattern in PATTERNS:
        tile = getattr(DEFAULT_LAUNCH, LaunchConfig.mask_field(NMPattern.parse(pattern)))
        for factor in (False, True):
            cells = [cell(run, pattern, factor, shape) for shape in ((8192, 4096), (16384, 14336)) for run in (RESULTS, RUN2)]
            line = (f"| {pattern} | {'Amber' if factor else '-'} | {' | '.join(cells)} | "
                    f"{tile.block_rows}x{tile.block_cols}, {tile.num_warps} warps |")
            assert line in text, line


def _selection_rate() -> float:
    """fused_mask at 8:16 with an Amber factor, 16384x14336, as prune_gpu now launches it: 16 comparisons
    per element (the profiles' selection term) over the time less one kernel overhead."""
    chosen = DEFAULT_LAUNCH.mask_m16
    (row,) = [r for r in _rows() if r["pattern"] == "8:16" and r["factor"] and (r["rows"], r["k"]) == (16384, 14336)
              and r["launch"] != "prune_gpu" and _launch(r) == chosen]
    return row["rows"] * row["k"] * 16 / (row["median_s"] - KERNEL_OVERHEAD_S) / 1e12


@pytest.mark.parametrize("profile", SELECTION_PROFILES)
def test_profiles_selection_rate_traces_to_the_run(profile):
    rate = _selection_rate()
    for impl in ("fused_mask", "fused_cslt"):
        term = load_profile(profile).prune_impls[impl].selection_rate
        assert term.value == pytest.approx(rate, abs=0.01), (profile, impl)
        assert "selection-h200.json" in term.source, (profile, impl)
