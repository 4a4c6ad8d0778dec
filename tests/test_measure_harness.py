"""Timing utilities and environment checks that need no GPU."""
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.hardware.registry import load_profile
from ampersim.measure.env import base_profile_name, check_gpu_matches_profile, profile_for_gpu
from ampersim.measure.harness import MAX_RUNS, MIN_RUNS, rotation_sets, run_count, summarize, time_calls


def test_summarize_median_and_spread():
    t = summarize([5.0, 1.0, 3.0, 2.0, 4.0], "cuda_graph", calls_per_run=2)
    assert (t.median_s, t.min_s, t.max_s, t.runs, t.calls_per_run) == (3.0, 1.0, 5.0, 5, 2)
    assert t.p10_s == pytest.approx(1.4) and t.p90_s == pytest.approx(4.6)


def test_run_count_bounds():
    assert run_count(1.0) == MIN_RUNS          # slow op: at least MIN_RUNS
    assert run_count(1e-9) == MAX_RUNS         # tiny op: capped
    assert MIN_RUNS <= run_count(2e-3) <= MAX_RUNS


def test_rotation_sets_cover_four_l2_sizes():
    l2 = 60e6
    assert rotation_sets(2e9, l2) == 1
    assert rotation_sets(30e6, l2) == 8
    assert rotation_sets(1e3, l2) == 64        # capped
    assert rotation_sets(0, l2) == 1


def test_cpu_timing_runs_every_call():
    counts = [0, 0]

    def make(i):
        def call():
            counts[i] += 1
        return call

    t = time_calls([make(0), make(1)], device="cpu", warmup=2, min_runs=5)
    assert counts == [7, 7]
    assert t.method == "cpu_clock" and t.runs == 5 and t.calls_per_run == 2
    assert "not a GPU measurement" in t.note
    with pytest.raises(ValueError):
        time_calls([], device="cpu")


@pytest.mark.parametrize("name,profile", [
    ("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm"), ("NVIDIA L4", "l4"), ("NVIDIA L40S", "l40s"), ("Some GPU", None),
])
def test_gpu_names_map_to_profiles(name, profile):
    assert profile_for_gpu(name) == profile


def test_gpu_profile_mismatch_refused_unless_forced():
    h200_calibrated, h100 = load_profile("h200-calibrated"), load_profile("h100-sxm")
    assert base_profile_name(h200_calibrated) == "h200"
    renamed = h200_calibrated.model_copy(update={"name": "my-fit", "base_profile": "h200"})
    assert base_profile_name(renamed) == "h200"  # a calibrated profile named after its file keeps its GPU
    assert check_gpu_matches_profile("NVIDIA H200", h200_calibrated, force=False) is None
    assert check_gpu_matches_profile("NVIDIA H200", renamed, force=False) is None
    with pytest.raises(InvalidArgument, match="GPU mismatch") as info:
        check_gpu_matches_profile("NVIDIA H200", h100, force=False)
    assert info.value.field == "force"
    warning = check_gpu_matches_profile("NVIDIA H200", h100, force=True)
    assert "GPU MISMATCH" in warning
