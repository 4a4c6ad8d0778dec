"""A serving fleet with continuous batching: a discrete-event simulation of replicas running steps.

Model (vLLM's V1 scheduler and Sarathi-Serve, on every replica; docs/roi-and-capacity.md):

- Requests join one FCFS queue that feeds ``replicas`` identical replicas. A replica takes requests
  from the head when it forms a step: an idle replica at once, a busy one at its next step boundary
  (pull-based admission, an ideal load-aware router). A request stays on its replica until done.
- A step is formed under a token budget (``max_batched_tokens``) and a sequence limit
  (``max_seqs``): first the running requests in admission order (one token for each decoding
  request, the next chunk of each partial prefill), then preempted requests (last preempted first),
  then new requests from the queue, each with as much of its prompt as the budget leaves (chunked
  prefill). Under the ``separate`` mixed-step mode a step is either prefill (whenever prefill work
  can run) or decode, never both.
- Prefix caching: a request's cached prompt tokens (``Requests.chunks``' fourth array) are not
  prefilled: its first chunk starts after them (attention reads them; the linear layers, and so
  sparsity, see only the new tokens). They hold KV blocks of the request like any other token (the
  cached prefix of one conversation or agent is its own; sharing between requests is not modelled),
  and a preempted request recomputes its whole prompt.
- KV cache: blocks of ``block_size`` tokens, ``kv_blocks`` per replica. A running request that
  needs a block when none is free preempts the most recently admitted running request (possibly
  itself): its blocks are freed and it later recomputes its prompt and the tokens it had generated
  (vLLM's recompute). A new request is admitted only if its first chunk's blocks are free.
- A step's time comes from ``ampersim.sim.steps.step_time`` (the op graph costed on the profile);
  its end delivers one token to every request that decoded or finished its prefill in it.

Per request: TTFT (arrival to first token), TPOT ((last − first token) / (output − 1)), end-to-end
latency, and every inter-token gap (ITL), kept as fixed-size histograms (ampersim.econ.latency).
Requests arriving during the warm-up are simulated but not counted. Memory holds only the requests
in flight: traffic arrives in chunks, finished requests leave nothing behind but histogram counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numba import njit

from ampersim.core.errors import InvalidArgument
from ampersim.core.limits import MAX_SIMULATION_STATE_BYTES
from ampersim.econ import latency
from ampersim.sim.engine import EngineConfig
from ampersim.sim.steps import StepCosts, add_chunk, add_decode, path_code, step_time

# per-request integer fields of a running (or preempted) entry
I_ID, I_PROMPT, I_OUTPUT, I_TARGET, I_DONE, I_CTX, I_GEN, I_BLOCKS, I_MEASURED, I_SCHED = range(10)
NI = 10
F_ARRIVAL, F_FIRST, F_LAST = range(3)
NF = 3
# fleet counters (float64)
C_BUSY, C_BUSY_PREFILL, C_STEPS, C_PREEMPT, C_DONE, C_TTFT_SUM, C_TPOT_SUM, C_E2E_SUM, C_TPOT_N, \
    C_BAD_TTFT, C_BAD_TPOT, C_GOOD, C_IN_TOKENS, C_OUT_TOKENS, C_HORIZON, C_ABORTED, C_REJECTED, C_MIXED, \
    C_FINISHED = range(19)
NC = 19
SEPARATE = 2  # path code of the 'separate' mixed-step mode (core.vocab.MIXED_STEP_MODES index)
H_TTFT, H_TPOT, H_ITL, H_E2E = range(4)
MAX_QUEUE = 1 << 22  # waiting requests at most before a run is stopped as overloaded
STATE_BYTES_PER_SEQ = (NI + NF) * 8 * 2  # running + preempted slots, per sequence a replica may hold


class Requests(Protocol):
    """A source of requests (ampersim.econ.traffic.Traffic or RequestTrace)."""

    warmup_s: float
    rate_per_s: float

    def counts(self) -> tuple[int, int]: ...

    def chunks(self, size: int = ...) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]: ...


@dataclass(frozen=True)
class SLO:
    """Targets of one plan: TTFT and/or TPOT at a percentile (None: no target)."""

    ttft_s: float | None
    tpot_s: float | None
    percentile: float


@dataclass(frozen=True)
class SimResult:
    """Counts, histograms and totals of one simulated fleet (statistics over measured requests)."""

    replicas: int
    counters: np.ndarray
    hist: np.ndarray           # (4, latency.BINS): TTFT, TPOT, ITL, E2E
    per_request: np.ndarray | None  # (n, 3) TTFT, TPOT, E2E by request index when kept (nan: none)

    @property
    def aborted(self) -> bool:
        """True when the run stopped early: the SLO was certainly missed, or the queue overflowed."""
        return bool(self.counters[C_ABORTED])

    @property
    def requests(self) -> int:
        return int(self.counters[C_DONE])

    def pct(self, which: int, p: float) -> float:
        return latency.percentile(self.hist[which], p)

    def mean(self, which: int) -> float:
        n = self.counters[C_TPOT_N] if which == H_TPOT else self.counters[C_DONE]
        total = {H_TTFT: C_TTFT_SUM, H_TPOT: C_TPOT_SUM, H_E2E: C_E2E_SUM}[which]
        return float(self.counters[total] / n) if n else math.nan

    @property
    def goodput(self) -> float:
        """Share of measured requests that met every SLO."""
        return float(self.counters[C_GOOD] / self.counters[C_DONE]) if self.counters[C_DONE] else math.nan

    @property
    def horizon_s(self) -> float:
        return float(self.counters[C_HORIZON])

    @property
    def utilization(self) -> float:
        """Busy replica-seconds / (replicas × simulated seconds)."""
        return float(self.counters[C_BUSY] / (self.replicas * self.horizon_s)) if self.horizon_s else math.nan

    @property
    def prefill_share(self) -> float:
        """Share of busy GPU time spent on prefill (a mixed step's prefill part: its time beyond what
        its decode tokens alone would take)."""
        return float(self.counters[C_BUSY_PREFILL] / self.counters[C_BUSY]) if self.counters[C_BUSY] else math.nan

    def per_second(self, counter: int) -> float:
        return float(self.counters[counter] / self.horizon_s) if self.horizon_s else math.nan

    @property
    def busy_s_per_request(self) -> float:
        """Replica-seconds of GPU work per finished request (all requests, warm-up included)."""
        return float(self.counters[C_BUSY] / self.counters[C_FINISHED]) if self.counters[C_FINISHED] else math.nan


def state_bytes(replicas: int, engine: EngineConfig) -> float:
    """Memory of the in-flight state of ``replicas`` replicas (running and preempted slots)."""
    return replicas * engine.max_seqs * STATE_BYTES_PER_SEQ


def check_state_memory(replicas: int, engine: EngineConfig, what: str = "replicas") -> None:
    """Refuse a simulation whose in-flight state would exceed MAX_SIMULATION_STATE_BYTES."""
    need = state_bytes(replicas, engine)
    if need > MAX_SIMULATION_STATE_BYTES:
        most = int(MAX_SIMULATION_STATE_BYTES // (engine.max_seqs * STATE_BYTES_PER_SEQ))
        raise InvalidArgument(
            f"simulating {replicas:,} replicas of up to {engine.max_seqs} running requests each needs "
            f"{need / 1e9:.1f} GB of state, more than the {MAX_SIMULATION_STATE_BYTES / 1e9:g} GB limit (at most "
            f"{most:,} replicas): lower the request rate or max_seqs", field=what)


def simulate(requests: Requests, replicas: int, costs: StepCosts, engine: EngineConfig, kv_blocks: int,
             path: str, *, slo: SLO | None = None, keep_requests: bool = False) -> SimResult:
    """Run the fleet until every request is done (or, with an ``slo``, until it certainly misses it)."""
    if replicas < 1:
        raise InvalidArgument(f"replicas {replicas}: must be >= 1", field="replicas")
    if kv_blocks < 1:
        raise InvalidArgument(f"kv_blocks {kv_blocks}: the replica has no room for a KV cache", field="kv_blocks")
    if engine.max_batched_tokens > costs.max_tokens:
        raise InvalidArgument(f"max_batched_tokens {engine.max_batched_tokens}: the step costs cover at most "
                              f"{costs.max_tokens} tokens", field="max_batched_tokens")
    check_state_memory(replicas, engine)
    total, measured = requests.counts()
    slo = slo or SLO(None, None, 95.0)
    limit = _failure_count(measured, slo.percentile)
    thresholds = np.array([slo.ttft_s if slo.ttft_s is not None else math.inf,
                           slo.tpot_s if slo.tpot_s is not None else math.inf,
                           limit if slo.ttft_s is not None else math.inf,
                           limit if slo.tpot_s is not None else math.inf, requests.warmup_s])
    S = engine.max_seqs
    run_i = np.zeros((replicas, S, NI), dtype=np.int64)
    run_f = np.zeros((replicas, S, NF))
    res_i = np.zeros((replicas, S, NI), dtype=np.int64)
    res_f = np.zeros((replicas, S, NF))
    reps = np.zeros((replicas, 4), dtype=np.int64)  # running count, preempted count, free blocks, busy flag
    reps[:, 2] = kv_blocks
    heap_t = np.zeros(replicas)
    heap_r = np.zeros(replicas, dtype=np.int64)
    idle = np.arange(replicas - 1, -1, -1, dtype=np.int64)
    ev = np.array([0, replicas], dtype=np.int64)  # heap size, idle count
    counters = np.zeros(NC)
    hist = np.zeros((4, latency.BINS), dtype=np.int64)
    per_request = np.full((total if keep_requests else 0, 3), np.nan)
    queue = _Queue()
    limits = np.array([engine.max_batched_tokens, S, engine.block_size, path_code(path, engine.mixed), kv_blocks],
                      dtype=np.int64)
    scratch = np.zeros((3, len(costs.windows)))
    for arrival, prompt, output, cached in requests.chunks():
        queue.push(arrival, prompt, output, cached)
        if queue.overflowed:
            counters[C_ABORTED] = 1
            break
        _advance(queue.t, queue.i, queue.pos, float(arrival[-1]), run_i, run_f, res_i, res_f, reps, heap_t, heap_r,
                 idle, ev, counters, hist, per_request, limits, thresholds, costs.tables, costs.groups,
                 costs.params, costs.windows, scratch)
        if counters[C_ABORTED]:
            break
    else:
        _advance(queue.t, queue.i, queue.pos, math.inf, run_i, run_f, res_i, res_f, reps, heap_t, heap_r, idle, ev,
                 counters, hist, per_request, limits, thresholds, costs.tables, costs.groups, costs.params,
                 costs.windows, scratch)
    return SimResult(replicas, counters, hist, per_request if keep_requests else None)


def _failure_count(measured: int, percentile: float) -> float:
    """Violations that make the ``percentile`` of ``measured`` values certainly exceed the target: the
    sorted value at rank floor(p/100 · (n − 1)) and every one above it."""
    return float(measured - math.floor(percentile / 100.0 * (measured - 1)))


class _Queue:
    """Waiting requests (FCFS): a ring of arrival times and (id, prompt, output, cached), grown as needed."""

    def __init__(self) -> None:
        self.t = np.zeros(1 << 16)
        self.i = np.zeros((1 << 16, 4), dtype=np.int64)
        self.pos = np.zeros(3, dtype=np.int64)  # head (next to admit), tail (next free), next id
        self.overflowed = False

    def push(self, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, cached: np.ndarray) -> None:
        head, tail, next_id = (int(x) for x in self.pos)
        n, cap = len(arrival), len(self.t)
        if tail - head + n > cap:
            new_cap = cap
            while tail - head + n > new_cap:
                new_cap *= 2
            if new_cap > MAX_QUEUE:
                self.overflowed = True
                return
            order = np.arange(head, tail) % cap
            t, i = np.zeros(new_cap), np.zeros((new_cap, 4), dtype=np.int64)
            t[: tail - head], i[: tail - head] = self.t[order], self.i[order]
            self.t, self.i, cap = t, i, new_cap
            head, tail = 0, tail - head
        slots = np.arange(tail, tail + n) % cap
        self.t[slots] = arrival
        self.i[slots, 0] = np.arange(next_id, next_id + n)
        self.i[slots, 1] = prompt
        self.i[slots, 2] = output
        self.i[slots, 3] = cached
        self.pos[:] = (head, tail + n, next_id + n)


@njit(cache=True)
def _record(hist, which, value):  # pragma: no cover - compiled
    hist[which, latency.bin_of(value)] += 1


@njit(cache=True)
def _token(run_i, run_f, r, j, t, counters, hist, per_request, thresholds):  # pragma: no cover - compiled
    """Entry j of replica r produced a token at t; returns True when the request is done."""
    measured = run_i[r, j, I_MEASURED] == 1
    gen = run_i[r, j, I_GEN] + 1
    run_i[r, j, I_GEN] = gen
    if gen == 1:
        run_f[r, j, F_FIRST] = t
        if measured:
            ttft = t - run_f[r, j, F_ARRIVAL]
            _record(hist, H_TTFT, ttft)
            counters[C_TTFT_SUM] += ttft
            if ttft > thresholds[0]:
                counters[C_BAD_TTFT] += 1
    elif measured:
        _record(hist, H_ITL, t - run_f[r, j, F_LAST])
    run_f[r, j, F_LAST] = t
    if gen < run_i[r, j, I_OUTPUT]:
        return False
    counters[C_FINISHED] += 1
    counters[C_OUT_TOKENS] += run_i[r, j, I_OUTPUT]
    counters[C_IN_TOKENS] += run_i[r, j, I_PROMPT]
    if t > counters[C_HORIZON]:
        counters[C_HORIZON] = t
    if measured:
        arrival, first = run_f[r, j, F_ARRIVAL], run_f[r, j, F_FIRST]
        e2e = t - arrival
        counters[C_DONE] += 1
        counters[C_E2E_SUM] += e2e
        _record(hist, H_E2E, e2e)
        tpot = np.nan
        good = first - arrival <= thresholds[0]
        if run_i[r, j, I_OUTPUT] >= 2:
            tpot = (t - first) / (run_i[r, j, I_OUTPUT] - 1)
            _record(hist, H_TPOT, tpot)
            counters[C_TPOT_SUM] += tpot
            counters[C_TPOT_N] += 1
            if tpot > thresholds[1]:
                counters[C_BAD_TPOT] += 1
                good = False
        if good:
            counters[C_GOOD] += 1
        if per_request.shape[0]:
            k = run_i[r, j, I_ID]
            per_request[k, 0] = first - arrival
            per_request[k, 1] = tpot
            per_request[k, 2] = e2e
    return True


@njit(cache=True)
def _finish_step(r, t, run_i, run_f, reps, counters, hist, per_request, thresholds):  # pragma: no cover
    """Apply the tokens of replica r's step that ended at t; drop finished requests (order kept)."""
    n = reps[r, 0]
    keep = 0
    for j in range(n):
        k = run_i[r, j, I_SCHED]
        done = False
        if k > 0:
            run_i[r, j, I_SCHED] = 0
            if run_i[r, j, I_DONE] < run_i[r, j, I_TARGET]:  # a prefill chunk
                run_i[r, j, I_DONE] += k
                run_i[r, j, I_CTX] = run_i[r, j, I_DONE]
                if run_i[r, j, I_DONE] == run_i[r, j, I_TARGET]:
                    done = _token(run_i, run_f, r, j, t, counters, hist, per_request, thresholds)
            else:  # a decode token
                run_i[r, j, I_CTX] += 1
                done = _token(run_i, run_f, r, j, t, counters, hist, per_request, thresholds)
        if done:
            reps[r, 2] += run_i[r, j, I_BLOCKS]
        else:
            if keep != j:
                run_i[r, keep, :] = run_i[r, j, :]
                run_f[r, keep, :] = run_f[r, j, :]
            keep += 1
    reps[r, 0] = keep


@njit(cache=True)
def _reject(counters, measured):  # pragma: no cover - compiled
    """A request that can never fit the replica's KV cache fails every SLO."""
    counters[C_REJECTED] += 1
    counters[C_FINISHED] += 1
    if measured:
        counters[C_BAD_TTFT] += 1
        counters[C_BAD_TPOT] += 1


@njit(cache=True)
def _preempt_last(r, run_i, run_f, res_i, res_f, reps, counters):  # pragma: no cover - compiled
    """Preempt replica r's most recently admitted running request (recompute later)."""
    j = reps[r, 0] - 1
    reps[r, 2] += run_i[r, j, I_BLOCKS]
    k = reps[r, 1]
    res_i[r, k, :] = run_i[r, j, :]
    res_f[r, k, :] = run_f[r, j, :]
    gen = res_i[r, k, I_GEN]
    res_i[r, k, I_TARGET] = res_i[r, k, I_PROMPT] + gen
    res_i[r, k, I_DONE] = 0
    res_i[r, k, I_CTX] = 0
    res_i[r, k, I_BLOCKS] = 0
    res_i[r, k, I_SCHED] = 0
    reps[r, 1] = k + 1
    reps[r, 0] = j
    counters[C_PREEMPT] += 1


@njit(cache=True)
def _form_step(r, t, prefill_only, decode_only, qt, qi, pos, run_i, run_f, res_i, res_f, reps, counters, limits,
               thresholds, windows, scratch):  # pragma: no cover - compiled
    """Schedule replica r's next step at t; returns (prefill tokens, prefill seqs, decode seqs)."""
    budget, max_seqs, bs = limits[0], limits[1], limits[2]
    scratch[:, :] = 0.0
    P, n_p, B = 0, 0, 0
    j = 0
    while j < reps[r, 0] and budget > 0:
        prefill = run_i[r, j, I_DONE] < run_i[r, j, I_TARGET]
        if (prefill and decode_only) or (not prefill and prefill_only):
            j += 1
            continue
        if prefill:
            c = min(run_i[r, j, I_TARGET] - run_i[r, j, I_DONE], budget)
            need = (run_i[r, j, I_DONE] + c + bs - 1) // bs - run_i[r, j, I_BLOCKS]
        else:
            c = 1
            need = (run_i[r, j, I_CTX] + 1 + bs - 1) // bs - run_i[r, j, I_BLOCKS]
        preempted_self = False
        while need > reps[r, 2]:
            if reps[r, 0] - 1 == j:
                preempted_self = True
                break
            _preempt_last(r, run_i, run_f, res_i, res_f, reps, counters)
        if preempted_self:
            if j == 0:  # alone and still too large for the whole cache: it can never run here
                reps[r, 2] += run_i[r, j, I_BLOCKS]
                reps[r, 0] = 0
                _reject(counters, run_i[r, j, I_MEASURED] == 1)
            else:
                _preempt_last(r, run_i, run_f, res_i, res_f, reps, counters)
            break
        reps[r, 2] -= need
        run_i[r, j, I_BLOCKS] += need
        run_i[r, j, I_SCHED] = c
        budget -= c
        if prefill:
            add_chunk(windows, scratch[0], scratch[1], run_i[r, j, I_DONE], c)
            P += c
            n_p += 1
        else:
            add_decode(windows, scratch[2], run_i[r, j, I_CTX] + 1)
            B += 1
        j += 1
    if decode_only:
        return P, n_p, B
    # admit: preempted requests first (last preempted first), then the queue head
    while budget > 0 and reps[r, 0] < max_seqs:
        from_queue = reps[r, 1] == 0
        start = 0
        if from_queue:
            if pos[0] >= pos[1] or qt[pos[0] % qt.shape[0]] > t:
                break
            q = pos[0] % qt.shape[0]
            target = qi[q, 1]
            start = qi[q, 3]
        else:
            target = res_i[r, reps[r, 1] - 1, I_TARGET]
        c = min(target - start, budget)
        need = (start + c + bs - 1) // bs
        if need > limits[4]:  # its first chunk alone exceeds the KV cache: it can never run
            if from_queue:
                _reject(counters, qt[q] >= thresholds[4])
                pos[0] += 1
            else:
                _reject(counters, res_i[r, reps[r, 1] - 1, I_MEASURED] == 1)
                reps[r, 1] -= 1
            continue
        if need > reps[r, 2]:
            break
        j = reps[r, 0]
        if from_queue:
            run_i[r, j, :] = 0
            run_i[r, j, I_ID] = qi[q, 0]
            run_i[r, j, I_PROMPT] = qi[q, 1]
            run_i[r, j, I_OUTPUT] = qi[q, 2]
            run_i[r, j, I_TARGET] = qi[q, 1]
            run_i[r, j, I_DONE] = start
            run_i[r, j, I_CTX] = start
            run_i[r, j, I_MEASURED] = 1 if qt[q] >= thresholds[4] else 0
            run_f[r, j, F_ARRIVAL] = qt[q]
            pos[0] += 1
        else:
            k = reps[r, 1] - 1
            run_i[r, j, :] = res_i[r, k, :]
            run_f[r, j, :] = res_f[r, k, :]
            reps[r, 1] = k
        reps[r, 0] = j + 1
        reps[r, 2] -= need
        run_i[r, j, I_BLOCKS] = need
        run_i[r, j, I_SCHED] = c
        budget -= c
        add_chunk(windows, scratch[0], scratch[1], start, c)
        P += c
        n_p += 1
    return P, n_p, B


@njit(cache=True)
def _heap_push(heap_t, heap_r, ev, t, r):  # pragma: no cover - compiled
    i = ev[0]
    ev[0] += 1
    while i > 0:
        p = (i - 1) // 2
        if heap_t[p] <= t:
            break
        heap_t[i] = heap_t[p]
        heap_r[i] = heap_r[p]
        i = p
    heap_t[i] = t
    heap_r[i] = r


@njit(cache=True)
def _heap_pop(heap_t, heap_r, ev):  # pragma: no cover - compiled
    t, r = heap_t[0], heap_r[0]
    ev[0] -= 1
    size = ev[0]
    last_t, last_r = heap_t[size], heap_r[size]
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
    return t, r


@njit(cache=True)
def _advance(qt, qi, pos, t_limit, run_i, run_f, res_i, res_f, reps, heap_t, heap_r, idle, ev, counters, hist,
             per_request, limits, thresholds, tables, groups, params, windows, scratch):  # pragma: no cover
    """Process events up to ``t_limit`` (the last arrival pushed); stop early once the SLO is missed."""
    code = limits[3]
    while True:
        arrival_next = qt[pos[0] % qt.shape[0]] if pos[0] < pos[1] else np.inf
        if ev[1] > 0 and (ev[0] == 0 or arrival_next <= heap_t[0]):
            if arrival_next == np.inf or arrival_next > t_limit:
                return
            ev[1] -= 1
            r = idle[ev[1]]
            t = arrival_next
        elif ev[0] > 0:
            if heap_t[0] > t_limit:
                return
            t, r = _heap_pop(heap_t, heap_r, ev)
            _finish_step(r, t, run_i, run_f, reps, counters, hist, per_request, thresholds)
            if counters[C_BAD_TTFT] >= thresholds[2] or counters[C_BAD_TPOT] >= thresholds[3]:
                counters[C_ABORTED] = 1
                return
        else:
            return
        if code == SEPARATE:
            P, n_p, B = _form_step(r, t, True, False, qt, qi, pos, run_i, run_f, res_i, res_f, reps, counters,
                                   limits, thresholds, windows, scratch)
            if P == 0:
                P, n_p, B = _form_step(r, t, False, True, qt, qi, pos, run_i, run_f, res_i, res_f, reps,
                                       counters, limits, thresholds, windows, scratch)
        else:
            P, n_p, B = _form_step(r, t, False, False, qt, qi, pos, run_i, run_f, res_i, res_f, reps, counters,
                                   limits, thresholds, windows, scratch)
        if P + B == 0:
            idle[ev[1]] = r
            ev[1] += 1
            continue
        dt, alone = step_time(tables, groups, params, code, P, n_p, B, scratch[0], scratch[1], scratch[2])
        counters[C_BUSY] += dt
        if P > 0:
            counters[C_BUSY_PREFILL] += dt - alone
            if B > 0:
                counters[C_MIXED] += 1
        counters[C_STEPS] += 1
        _heap_push(heap_t, heap_r, ev, t + dt, r)


def solo_times(prompt: np.ndarray, output: np.ndarray, costs: StepCosts, engine: EngineConfig,
               path: str, cached: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT, TPOT) of each request alone on an idle replica: the lowest any fleet can reach.

    Its prompt after the ``cached`` prefix in chunks of the token budget, then one decode step per
    further output token (TPOT nan for fewer than two output tokens)."""
    prompt = np.ascontiguousarray(prompt, dtype=np.int64)
    cached = np.zeros_like(prompt) if cached is None else np.ascontiguousarray(cached, dtype=np.int64)
    return _solo(prompt, np.ascontiguousarray(output, dtype=np.int64), cached, engine.max_batched_tokens,
                 path_code(path, engine.mixed), costs.tables, costs.groups, costs.params, costs.windows)


@njit(cache=True)
def _solo(prompt, output, cached, budget, code, tables, groups, params, windows):  # pragma: no cover - compiled
    n = prompt.shape[0]
    ttft = np.empty(n)
    tpot = np.full(n, np.nan)
    sums = np.zeros((3, windows.shape[0]))
    for i in range(n):
        t, done = 0.0, cached[i]
        while done < prompt[i]:
            c = min(prompt[i] - done, budget)
            sums[:, :] = 0.0
            add_chunk(windows, sums[0], sums[1], done, c)
            t += step_time(tables, groups, params, code, c, 1, 0, sums[0], sums[1], sums[2])[0]
            done += c
        ttft[i] = t
        if output[i] >= 2:
            total = 0.0
            for g in range(1, output[i]):
                sums[:, :] = 0.0
                add_decode(windows, sums[2], prompt[i] + g)
                total += step_time(tables, groups, params, code, 0, 0, 1, sums[0], sums[1], sums[2])[0]
            tpot[i] = total / (output[i] - 1)
    return ttft, tpot
