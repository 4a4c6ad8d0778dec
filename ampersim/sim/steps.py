"""Step times of one serving replica, compiled for the serving simulator.

The simulator costs millions of steps of varying shape (prefill chunks after cached prefixes, decode
tokens, both). Every op of a step's graph (ampersim.sim.graph.graph_for_step) except attention and
lm_head depends on the step only through its row count, so those ops are tabulated once per row
count from the graph itself and the cost model; lm_head is tabulated by sequences; attention is
costed in closed form from the step's causal pairs and keys read (the same equations as
ampersim.sim.cost.attention_terms). ``StepCosts.seconds`` equals costing the step's graph (tested).

Row tables (index = rows): ``rest`` (ops that are the same on both paths), ``dense_sparsified``
(the linears the policy sparsifies, run dense) and ``sparse_sparsified`` (the same linears on the
sparse path, with their pruning). A step of T = prefill tokens P + decode tokens B costs

    dense path         rest[T] + dense_sparsified[T]
    sparse, no decode  rest[T] + sparse_sparsified[T]
    sparse, no prefill rest[T] + dense_sparsified[T]          (decode stays dense)
    sparse, mixed      split:     rest[T] + sparse_sparsified[P] + dense_sparsified[B]
                       prune_all: rest[T] + sparse_sparsified[T]
    + lm_head[sequences] + Σ layers × (prefill attention + decode attention)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from ampersim.core.vocab import DTYPE_BYTES, MIXED_STEP_MODES
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.spec import ModelSpec
from ampersim.sim.cost import OpColumns, attention_peak_tflops, cost_graph, decode_attention_memory
from ampersim.sim.execution import SparseExecution
from ampersim.sim.graph import BatchShape, graph_for_shape, layer_groups
from ampersim.sim.memory import kv_dtype_bytes
from ampersim.sparsity.policy import SparsityPolicy

DENSE_PATH = -1  # path code of the dense path; the sparse path's codes index MIXED_STEP_MODES
REST, DENSE_SPARSIFIED, SPARSE_SPARSIFIED, LM_HEAD = range(4)
_CHUNK = 2048  # row counts costed per pass when building the tables


def path_code(path: str, mixed: str) -> int:
    """DENSE_PATH for "dense", else the index of the mixed-step mode in MIXED_STEP_MODES."""
    return DENSE_PATH if path == "dense" else MIXED_STEP_MODES.index(mixed)


@dataclass(frozen=True)
class StepCosts:
    """Everything the simulator needs to cost a step of one replica (arrays, for compiled code)."""

    tables: np.ndarray   # (4, max_tokens + 1): REST, DENSE_SPARSIFIED, SPARSE_SPARSIFIED by rows; LM_HEAD by seqs
    groups: np.ndarray   # (layer groups, 5): layers, 4·heads·head_dim, 2·q_dim·act bytes, 2·kv_dim·kv bytes, slot
    params: np.ndarray   # attention: peak FLOP/s, fraction, keys at half rate (0: no ramp), bytes/s, overhead s,
                         # decode attention's bytes/s and latency s
    windows: np.ndarray  # attention window of each slot (0: full attention)

    @property
    def max_tokens(self) -> int:
        return self.tables.shape[1] - 1

    def seconds(self, chunks: Sequence[tuple[int, int]], contexts: Sequence[int], path: str = "dense",
                mixed: str = "split") -> tuple[float, float]:
        """(step seconds, seconds of its decode part alone) for prefill ``chunks`` (offset, tokens) and
        decode sequences with KV ``contexts`` (the new token included)."""
        pairs, keys_p, keys_d = step_sums(self.windows, chunks, contexts)
        tokens = sum(c for _, c in chunks)
        return step_time(self.tables, self.groups, self.params, path_code(path, mixed), tokens, len(chunks),
                         len(contexts), pairs, keys_p, keys_d)


def step_sums(windows: np.ndarray, chunks: Sequence[tuple[int, int]],
              contexts: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window slot: causal pairs and keys read of the chunks, keys read by the decode tokens."""
    pairs, keys_p, keys_d = (np.zeros(len(windows)) for _ in range(3))
    for o, c in chunks:
        add_chunk(windows, pairs, keys_p, o, c)
    for length in contexts:
        add_decode(windows, keys_d, length)
    return pairs, keys_p, keys_d


@njit(cache=True)
def _window_pairs(length, window):  # pragma: no cover - compiled
    if window == 0 or length <= window:
        return length * (length + 1) / 2
    return window * (window + 1) / 2 + (length - window) * window


@njit(cache=True)
def add_chunk(windows, pairs, keys, offset, tokens):  # pragma: no cover - compiled
    """Add a prefill chunk of ``tokens`` after ``offset`` cached tokens to the per-slot sums."""
    for s in range(windows.shape[0]):
        w = windows[s]
        pairs[s] += _window_pairs(float(offset + tokens), w) - _window_pairs(float(offset), w)
        keys[s] += tokens + (offset if w == 0 else min(offset, w - 1))


@njit(cache=True)
def add_decode(windows, keys, context):  # pragma: no cover - compiled
    """Add one decode token whose sequence holds ``context`` tokens (itself included)."""
    for s in range(windows.shape[0]):
        w = windows[s]
        keys[s] += context if w == 0 else min(context, w)


@njit(cache=True)
def _attention(params, flops, nbytes, keys, decode):  # pragma: no cover - compiled
    fraction = params[1]
    if params[2] > 0:
        fraction = fraction * keys / (keys + params[2])
    memory = params[6] + nbytes / params[5] if decode else nbytes / params[3]
    return max(flops / (params[0] * fraction), memory) + params[4]


@njit(cache=True)
def step_time(tables, groups, params, code, prefill_tokens, prefill_seqs, decode_seqs, pairs, keys_p,
              keys_d):  # pragma: no cover - compiled
    """(seconds of the step, seconds its decode part would take alone) on path ``code``."""
    P, B = prefill_tokens, decode_seqs
    T = P + B
    if code == DENSE_PATH or P == 0:
        linear = tables[REST, T] + tables[DENSE_SPARSIFIED, T]
    elif B == 0 or code == 1:  # no decode rows, or prune_all (MIXED_STEP_MODES[1])
        linear = tables[REST, T] + tables[SPARSE_SPARSIFIED, T]
    else:  # split (or a separate-mode step, which never has both)
        linear = tables[REST, T] + tables[SPARSE_SPARSIFIED, P] + tables[DENSE_SPARSIFIED, B]
    total = linear + tables[LM_HEAD, prefill_seqs + B]
    alone = 0.0
    if B > 0:
        alone = tables[REST, B] + tables[DENSE_SPARSIFIED, B] + tables[LM_HEAD, B]
    for g in range(groups.shape[0]):
        layers, flop, q_bytes, kv_bytes = groups[g, 0], groups[g, 1], groups[g, 2], groups[g, 3]
        s = int(groups[g, 4])
        if P > 0:
            total += layers * _attention(params, flop * pairs[s], P * q_bytes + keys_p[s] * kv_bytes, pairs[s] / P,
                                         False)
        if B > 0:
            a = layers * _attention(params, flop * keys_d[s], B * q_bytes + keys_d[s] * kv_bytes, keys_d[s] / B, True)
            total += a
            alone += a
    return total, alone


def step_costs(profile: HardwareProfile, spec: ModelSpec, policy: SparsityPolicy, execution: SparseExecution,
               dtype: str, tp: int, max_tokens: int, kv_dtype: str | None = None) -> StepCosts:
    """Tabulate the step times of a replica for steps of up to ``max_tokens`` rows."""
    rows = np.arange(1, max_tokens + 1, dtype=float)
    tables = np.zeros((4, max_tokens + 1))
    for start in range(0, rows.size, _CHUNK):
        m = rows[start:start + _CHUNK]
        ops = graph_for_shape(spec, policy, BatchShape.from_moments(m, m * m, np.ones_like(m)), dtype, tp)
        cols = OpColumns.from_ops(ops)
        cost = cost_graph(cols, profile, dtype, execution, tp)
        where = slice(start + 1, start + 1 + m.size)
        for i, op in enumerate(ops):
            if op.kind in ("attention", "decode_attention") or op.name == "lm_head":
                continue
            if op.kind == "sparse_gemm":
                tables[DENSE_SPARSIFIED, where] += op.count * cost.dense_s[i]
            if op.kind in ("sparse_gemm", "prune"):
                tables[SPARSE_SPARSIFIED, where] += op.count * cost.sparse_s[i]
            else:
                tables[REST, where] += op.count * cost.dense_s[i]
        lm_ops = graph_for_shape(spec, policy, BatchShape.from_moments(m, m, m), dtype, tp)
        lm = [i for i, op in enumerate(lm_ops) if op.name == "lm_head"]
        lm_cols = OpColumns.from_ops([lm_ops[i] for i in lm])
        tables[LM_HEAD, where] = cost_graph(lm_cols, profile, dtype, execution, tp).dense_s[0]
    windows = sorted({w or 0 for _, _, w in layer_groups(spec, policy)})
    act_b = max(DTYPE_BYTES[dtype], 2.0)  # activations between kernels, as in the graph
    kv_b = kv_dtype_bytes(dtype, kv_dtype)
    heads, kv_heads, hd = spec.num_heads // tp, spec.num_kv_heads // tp, spec.head_dim
    per_window: dict[int, int] = {}
    for layers, _, w in layer_groups(spec, policy):
        per_window[w or 0] = per_window.get(w or 0, 0) + len(layers)
    groups = np.array([[n, 4.0 * heads * hd, 2.0 * heads * hd * act_b, 2.0 * kv_heads * hd * kv_b,
                        windows.index(w)] for w, n in per_window.items()])
    eff, bw = profile.efficiency, profile.memory.bandwidth_gbps.value
    keys_half = eff.attention_keys_half.value if eff.attention_keys_half else 0.0
    decode_fraction, decode_latency_us = decode_attention_memory(eff)
    params = np.array([attention_peak_tflops(profile, dtype) * 1e12, eff.attention_fraction.value, keys_half,
                       bw * 1e9 * eff.memory_fraction.value, eff.kernel_overhead_us.value * 1e-6,
                       bw * 1e9 * decode_fraction, decode_latency_us * 1e-6])
    return StepCosts(tables, groups, params, np.array(windows, dtype=np.int64))
