"""Prefill serving as a queue: a discrete-event simulation (checked against queueing theory in
tests/test_queueing.py).

Model (disaggregated prefill, pull-based scheduling): requests join one FCFS queue; each of
``replicas`` identical prefill replicas runs steps back to back while work is waiting. A step
continues the replica's unfinished (chunked) prompt first, then takes whole prompts from the queue
head until ``max_batched_tokens`` or ``max_seqs`` is reached; the last prompt taken may be split
(chunked prefill), its remaining tokens continue on the same replica next step. A step costs
``step_seconds(total_tokens, sum_sq_tokens)``; a chunk of ``c`` tokens at offset ``o`` adds
``(o + c)**2 - o**2`` to ``sum_sq_tokens`` (its causal-attention work, equal to ``c**2`` for a whole
prompt). A request's TTFT is its arrival-to-end-of-last-prefill-chunk time (decode not modelled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from ampersim.core.errors import InvalidArgument

StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
CTX_POINTS = 48  # grid points in attention context per token (log-spaced)
EXACT_TOKENS = 256  # step sizes up to this are tabulated exactly; above, every TOKEN_STRIDE tokens
TOKEN_STRIDE = 16
SLOPE_TOKENS = 4096  # step size at which the marginal attention cost is measured


@dataclass(frozen=True)
class StepTable:
    """Step time (s) for every step size 1..max_tokens (row index = tokens) × a context grid.

    ``ctx`` is sum_sq_tokens / total_tokens (mean causal context of the step's tokens), log-spaced
    from 1 to its maximum; times are linear in ``ctx`` between grid points.
    """

    seconds: np.ndarray  # (max_tokens + 1, len(ctx)); row 0 unused
    ctx: np.ndarray

    @property
    def max_tokens(self) -> int:
        return self.seconds.shape[0] - 1

    def lookup(self, tokens: np.ndarray, sum_sq: np.ndarray) -> np.ndarray:
        """Vectorized step time for steps of ``tokens`` tokens with ``sum_sq`` attention work."""
        tokens = np.asarray(tokens, dtype=np.int64)
        x = np.clip(np.asarray(sum_sq, dtype=float) / tokens, 1.0, self.ctx[-1])
        j = np.clip(np.searchsorted(self.ctx, x, side="right") - 1, 0, len(self.ctx) - 2)
        frac = (x - self.ctx[j]) / (self.ctx[j + 1] - self.ctx[j])
        lo = self.seconds[tokens, j]
        return lo + frac * (self.seconds[tokens, j + 1] - lo)


def build_step_tables(step_fn: StepFn, max_tokens: int, max_prompt_tokens: int) -> tuple[StepTable, StepTable]:
    """Tabulate ``step_fn`` (vectorized (dense_s, sparse_s)) for steps up to ``max_tokens`` tokens.

    One call of ``step_fn`` on a grid of step sizes (exact up to EXACT_TOKENS, then every
    TOKEN_STRIDE tokens, interpolated linearly between) × context per token up to the largest a
    chunk of a ``max_prompt_tokens`` prompt can have. ``step_fn`` describes whole prompts, so it
    accepts only total_tokens <= sum_sq_tokens <= total_tokens**2; the extra attention work of a
    chunk late in a long prompt (sum_sq above total**2) is added at the marginal cost per unit of
    sum_sq measured at a large compute-bound step (SLOPE_TOKENS) — exact while attention is
    compute-bound, which it is for such chunks.
    """
    grid_t = np.unique(
        np.concatenate(
            [
                np.arange(1, min(max_tokens, EXACT_TOKENS) + 1),
                np.arange(EXACT_TOKENS, max_tokens + 1, TOKEN_STRIDE),
                [max_tokens],
            ]
        )
    ).astype(np.int64)
    ctx = np.geomspace(1.0, max(2.0, 2.0 * max_prompt_tokens), CTX_POINTS)
    tt, xx = np.meshgrid(grid_t.astype(float), ctx, indexing="ij")
    tt, xx = tt.ravel(), xx.ravel()
    x_valid = np.minimum(xx, tt)
    ref = float(SLOPE_TOKENS)
    dense, sparse = step_fn(
        np.concatenate([tt, [ref, ref]]), np.concatenate([tt * x_valid, [ref * ref / 2, ref * ref]])
    )
    all_t = np.arange(max_tokens + 1, dtype=float)
    tables = []
    for values in (np.asarray(dense, dtype=float), np.asarray(sparse, dtype=float)):
        per_sum_sq = (values[-1] - values[-2]) / (ref * ref / 2)
        grid = (values[:-2] + per_sum_sq * tt * (xx - x_valid)).reshape(len(grid_t), len(ctx))
        full = np.stack([np.interp(all_t, grid_t, grid[:, k]) for k in range(len(ctx))], axis=1)
        tables.append(StepTable(full, ctx))
    return tables[0], tables[1]


def solo_prefill_seconds(table: StepTable, lengths: np.ndarray) -> np.ndarray:
    """Prefill time of each prompt alone on an idle replica (chunks of at most max_tokens)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    chunk = table.max_tokens
    total = np.zeros(len(lengths))
    offset = np.zeros(len(lengths), dtype=np.int64)
    while True:
        left = lengths - offset
        active = left > 0
        if not active.any():
            return total
        c = np.minimum(left[active], chunk)
        o = offset[active].astype(float)
        total[active] += table.lookup(c, (o + c) ** 2 - o**2)
        offset[active] += c


@dataclass(frozen=True)
class SimResult:
    """Per-request TTFTs (s) and fleet totals of one simulation run."""

    ttft_s: np.ndarray
    busy_s: float  # replica-seconds spent in prefill steps
    steps: int
    tokens: int


def simulate(arrival_s: np.ndarray, lengths: np.ndarray, replicas: int, table: StepTable, max_seqs: int) -> SimResult:
    """Run the prefill queue to completion; see the module docstring for the model."""
    if replicas < 1 or max_seqs < 1:
        raise InvalidArgument(f"replicas ({replicas}) and max_seqs ({max_seqs}) must be >= 1")
    arrival_s = np.ascontiguousarray(arrival_s, dtype=np.float64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    finish, busy, steps = _simulate(arrival_s, lengths, int(replicas), int(max_seqs), table.seconds, table.ctx)
    return SimResult(finish - arrival_s, float(busy), int(steps), int(lengths.sum()))


@njit(cache=True)
def _step_time(seconds, ctx, tokens, sum_sq):  # pragma: no cover - compiled
    x = sum_sq / tokens
    n = ctx.shape[0]
    if x <= ctx[0]:
        return seconds[tokens, 0]
    if x >= ctx[n - 1]:
        return seconds[tokens, n - 1]
    j = int(math.log(x) / math.log(ctx[n - 1]) * (n - 1))
    j = min(max(j, 0), n - 2)
    while j > 0 and ctx[j] > x:  # guard against rounding in the log index
        j -= 1
    while j < n - 2 and ctx[j + 1] < x:
        j += 1
    frac = (x - ctx[j]) / (ctx[j + 1] - ctx[j])
    return seconds[tokens, j] + frac * (seconds[tokens, j + 1] - seconds[tokens, j])


@njit(cache=True)
def _simulate(arrival, length, replicas, max_seqs, seconds, ctx):  # pragma: no cover - compiled
    n = arrival.shape[0]
    budget = seconds.shape[0] - 1
    finish = np.empty(n)
    partial = np.full(replicas, -1, dtype=np.int64)  # request a replica is midway through
    done = np.zeros(replicas, dtype=np.int64)  # its tokens already prefilled
    idle = np.arange(replicas - 1, -1, -1)  # stack of idle replicas
    n_idle = replicas
    heap_t = np.empty(replicas)  # min-heap of busy replicas by step end
    heap_r = np.empty(replicas, dtype=np.int64)
    size = 0
    head = 0
    busy = 0.0
    steps = 0
    while True:
        if head < n and n_idle > 0 and (size == 0 or arrival[head] <= heap_t[0]):
            n_idle -= 1
            r = idle[n_idle]
            t = arrival[head]
        elif size > 0:
            t = heap_t[0]
            r = heap_r[0]
            size -= 1
            # sift the last element down from the root
            last_t = heap_t[size]
            last_r = heap_r[size]
            i = 0
            while True:
                c = 2 * i + 1
                if c >= size:
                    break
                if c + 1 < size and heap_t[c + 1] < heap_t[c]:
                    c += 1
                if heap_t[c] >= last_t:
                    break
                heap_t[i] = heap_t[c]
                heap_r[i] = heap_r[c]
                i = c
            heap_t[i] = last_t
            heap_r[i] = last_r
        else:
            break
        # form the next step of replica r at time t
        tokens = 0
        seqs = 0
        sum_sq = 0.0
        carried = -1  # partial request that finishes in this step
        if partial[r] >= 0:
            q = partial[r]
            o = done[r]
            c = min(length[q] - o, budget)
            tokens += c
            seqs += 1
            sum_sq += float(o + c) ** 2 - float(o) ** 2
            if o + c == length[q]:
                carried = q
                partial[r] = -1
            else:
                done[r] = o + c
        first = head
        while partial[r] < 0 and tokens < budget and seqs < max_seqs and head < n and arrival[head] <= t:
            q = head
            head += 1
            c = min(length[q], budget - tokens)
            tokens += c
            seqs += 1
            sum_sq += float(c) ** 2
            if c < length[q]:
                partial[r] = q
                done[r] = c
        if tokens == 0:
            idle[n_idle] = r
            n_idle += 1
            continue
        dt = _step_time(seconds, ctx, tokens, sum_sq)
        end = t + dt
        busy += dt
        steps += 1
        if carried >= 0:
            finish[carried] = end
        for q in range(first, head):
            if partial[r] != q:
                finish[q] = end
        # push (end, r) onto the heap
        i = size
        size += 1
        while i > 0:
            p = (i - 1) // 2
            if heap_t[p] <= end:
                break
            heap_t[i] = heap_t[p]
            heap_r[i] = heap_r[p]
            i = p
        heap_t[i] = end
        heap_r[i] = r
    return finish, busy, steps
