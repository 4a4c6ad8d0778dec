"""Timing of torch work on a GPU: warm-up, CUDA-graph replay (or events), median and spread.

Every timing first keeps the GPU busy with the measured work for WARMUP_SECONDS, so that the
clock has settled to its sustained (power-limited) state before the timed runs.

A measured unit is a list of ``calls`` (one per rotated input set, so repeated runs do not just
measure the L2 cache); one run executes all of them and the time per call is the run's time
divided by their number. With ``use_graph`` the calls are captured once into a CUDA graph and
each run is one replay, timed with CUDA events; that removes the CPU launch cost, which is what
prefill sees when the host runs ahead of the GPU. Where capture fails (an op that syncs or
allocates outside the graph pool) timing falls back to back-to-back events and says so.
On a CPU device (tests, dry runs) the host clock is used; such numbers are not GPU measurements.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ampersim.core.schema import Frozen

MIN_RUNS = 20
MAX_RUNS = 200
TARGET_SECONDS = 0.25  # timed runs stop after about this long once MIN_RUNS are done
# Busy time before the timed runs. Under sustained matrix load an H200 drops from its boost clock to a
# lower steady state within ~20-100 ms (bf16 GEMMs: ~780 -> ~660 TFLOP/s; validation/h200-run1.jsonl
# shows both modes inside single timings); prefill is sustained load, so timings start in that state.
WARMUP_SECONDS = 0.2
MAX_WARMUP_STEPS = 5000


class Timing(Frozen):
    """Seconds per call: median and spread over ``runs`` timed runs of ``calls_per_run`` calls.

    ``warmup_s``: busy time before the timed runs; 0 where there was none (files written before the
    settle warm-up existed, such as validation/h200-run1.jsonl, do not carry the field)."""

    method: Literal["cuda_graph", "cuda_events", "cpu_clock"]
    median_s: float = Field(gt=0)
    p10_s: float = Field(gt=0)
    p90_s: float = Field(gt=0)
    min_s: float = Field(gt=0)
    max_s: float = Field(gt=0)
    runs: int = Field(ge=1)
    calls_per_run: int = Field(ge=1)
    warmup_s: float = Field(0.0, ge=0)
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Timing:
        if not self.min_s <= self.p10_s <= self.median_s <= self.p90_s <= self.max_s:
            raise ValueError(f"times must satisfy min_s <= p10_s <= median_s <= p90_s <= max_s; got {self.min_s:g}, "
                             f"{self.p10_s:g}, {self.median_s:g}, {self.p90_s:g}, {self.max_s:g}")
        return self


def summarize(per_call_s: Sequence[float], method: str, calls_per_run: int, note: str = "",
              warmup_s: float = 0.0) -> Timing:
    """Median, 10th/90th percentile, min and max of per-call times."""
    values = np.asarray(per_call_s, dtype=float)
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return Timing(method=method, median_s=float(p50), p10_s=float(p10), p90_s=float(p90),
                  min_s=float(values.min()), max_s=float(values.max()), runs=int(values.size),
                  calls_per_run=calls_per_run, warmup_s=warmup_s, note=note)


def run_count(estimate_s: float, min_runs: int = MIN_RUNS) -> int:
    """Timed runs for a run of about ``estimate_s``: at least ``min_runs``, about TARGET_SECONDS."""
    wanted = int(TARGET_SECONDS / max(estimate_s, 1e-7))
    return int(min(MAX_RUNS, max(min_runs, wanted)))


def time_calls(calls: Sequence[Callable[[], Any]], *, device: str = "cuda", use_graph: bool = True,
               warmup: int = 3, min_runs: int = MIN_RUNS) -> Timing:
    """Time one run of all ``calls``; return seconds per call."""
    if not calls:
        raise ValueError("time_calls needs at least one call")
    if device == "cpu":
        return _time_cpu(calls, warmup, min_runs)
    import torch

    def run_all() -> None:
        for call in calls:
            call()

    note = ""
    if use_graph:
        try:
            graph = _capture(run_all, warmup)
        except Exception as exc:  # capture is refused by ops that sync or allocate: fall back
            torch.cuda.synchronize()
            note = f"graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); eager events"
        else:
            return _time_events(graph.replay, len(calls), "cuda_graph", warmup, min_runs, note)
    for _ in range(warmup):
        run_all()
    return _time_events(run_all, len(calls), "cuda_events", 0, min_runs, note)


def _capture(run_all: Callable[[], None], warmup: int) -> Any:
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 1)):
            run_all()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run_all()
    torch.cuda.synchronize()
    return graph


def _time_events(step: Callable[[], Any], calls_per_run: int, method: str, warmup: int,
                 min_runs: int, note: str) -> Timing:
    import torch

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    probe = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    probe[0].record()
    step()
    probe[1].record()
    torch.cuda.synchronize()
    estimate = probe[0].elapsed_time(probe[1]) / 1e3
    runs = run_count(estimate, min_runs)
    busy = time.perf_counter()
    for _ in range(int(min(MAX_WARMUP_STEPS, np.ceil(WARMUP_SECONDS / max(estimate, 1e-7))))):
        step()
    torch.cuda.synchronize()
    busy = time.perf_counter() - busy
    per_call = [seconds / calls_per_run for seconds in event_times(step, runs)]
    return summarize(per_call, method, calls_per_run, note, warmup_s=busy)


def event_times(step: Callable[[], Any], runs: int, *, before_each: Callable[[], Any] | None = None) -> list[float]:
    """Seconds of each of ``runs`` runs of ``step``, from CUDA events recorded around every run.

    ``before_each`` runs before each start event, outside the timed span (e.g. the barrier that lines
    up the ranks of a multi-GPU collective)."""
    import torch

    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(runs)]
    for start, end in events:
        if before_each is not None:
            before_each()
        start.record()
        step()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def _time_cpu(calls: Sequence[Callable[[], Any]], warmup: int, min_runs: int) -> Timing:
    for _ in range(warmup):
        for call in calls:
            call()
    per_call = []
    for _ in range(min_runs):
        start = time.perf_counter()
        for call in calls:
            call()
        per_call.append((time.perf_counter() - start) / len(calls))
    return summarize(per_call, "cpu_clock", len(calls), "host clock on a CPU device: not a GPU measurement")


def rotation_sets(working_set_bytes: float, l2_bytes: float, *, factor: float = 4.0,
                  max_sets: int = 64) -> int:
    """Input sets to rotate so that one run touches at least ``factor`` x the L2 size."""
    if working_set_bytes <= 0:
        return 1
    return int(min(max_sets, max(1, np.ceil(factor * l2_bytes / working_set_bytes))))
