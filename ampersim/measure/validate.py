"""Predictions of the cost model vs measurements, on the same op graph.

Each measured record (an op, a whole decoder layer, the whole model) is turned back into the ops
of ampersim.sim.graph it timed: an op record carries its Op (with the shape actually measured),
a layer record names the layer whose ops the graph lists, a model record is the whole graph.
``Predictor`` costs them all with ampersim.sim.cost.cost_graph, vectorized per (dtype, prune
implementation) group, so calibration can re-cost thousands of parameter sets quickly.

Errors are relative, ``predicted / measured - 1``; MAPE is the mean of their absolute values;
the speedup error is ``|predicted speedup - measured speedup|`` for dense/sparse pairs of the same
GEMM (or layer, or model). Several measurement files (e.g. single-GPU ops and a multi-GPU
all-reduce run) are validated together as one set of rows.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ampersim.core.errors import InvalidArgument, InvalidData
from ampersim.core.vocab import DIAGNOSTIC_PRUNE_IMPLS
from ampersim.hardware.profile import HardwareProfile
from ampersim.measure.env import check_gpu_matches_profile
from ampersim.measure.records import (
    LayerMeasurement,
    MeasurementFile,
    ModelMeasurement,
    OpMeasurement,
    Result,
    read_measurements,
)
from ampersim.models.spec import ModelSpec
from ampersim.sim.cost import OpColumns, cost_graph
from ampersim.sim.execution import sparse_execution
from ampersim.sim.graph import Op, build_graph, graph_for_step

DEFAULT_FIT_MODEL = "llama-3.1-8b"
Measurements = MeasurementFile | Sequence[MeasurementFile]


def as_files(measurements: Measurements) -> list[MeasurementFile]:
    return [measurements] if isinstance(measurements, MeasurementFile) else list(measurements)


def read_for_profile(paths: Sequence[str | Path], profile: HardwareProfile, *,
                     force: bool = False) -> tuple[list[MeasurementFile], list[str]]:
    """The measurement files at ``paths`` checked for comparison with ``profile``, and GPU-mismatch warnings.

    Every file must hold records and come from the profile's GPU: InvalidArgument naming the file
    otherwise, unless ``force``, which turns the refusal into a warning.
    """
    if not paths:
        raise InvalidArgument("no measurement file given", field="measurements")
    files, warnings = [], []
    for path in paths:
        mfile = read_measurements(path)
        if not mfile.records:
            raise InvalidData(f"{mfile.path}: holds no measurement records")
        try:
            mismatch = check_gpu_matches_profile(mfile.gpu, profile, force=force)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{mfile.path}: {exc}", field=exc.field) from None
        if mismatch:
            warnings.append(f"{mfile.path}: {mismatch}")
        files.append(mfile)
    return files, warnings


def all_records(measurements: Measurements) -> list[Result]:
    """The result records of every file, in file order."""
    return [r for f in as_files(measurements) for r in f.records]


@dataclass(frozen=True)
class Row:
    """One measured record with its prediction slot."""

    category: str
    model: str
    tokens: int
    dtype: str
    name: str
    variant: str
    measured_s: float
    file: str
    line: int
    pair_key: tuple
    timing_eager_s: float | None = None


def category_of(record: Result) -> str:
    """dense_gemm, sparse_gemm (``_grouped`` for MoE experts, ``[int8]``/``[fp8]`` for 8-bit), attention,
    decode_attention, norm, elementwise (``:eager_torch``: the eager diagnostic of a fused op), embedding,
    prune:<impl>, layer_dense, layer_sparse:<impl>, model_dense, model_sparse:<impl>; whole decode steps
    ``decode_layer_dense``, mixed steps ``mixed_layer_dense`` and ``mixed_layer_sparse:<impl>[<mode>]``."""
    if not isinstance(record, OpMeasurement):
        step = "" if record.step is None else ("decode_" if record.tokens == 0 else "mixed_")
        if record.variant == "dense":
            return f"{step}{record.record}_dense"
        mode = f"[{record.step.mixed}]" if step == "mixed_" else ""
        return f"{step}{record.record}_sparse:{record.prune_impl}{mode}"
    op_kind = record.op.kind
    if record.variant == "eager":
        return f"{op_kind}:eager_torch"
    if record.variant == "prune":
        return f"prune:{record.prune_impl}"
    if op_kind in ("gemm", "sparse_gemm"):
        grouped = "_grouped" if record.measured.groups > 1 else ""
        wide = "" if record.dtype in ("bf16", "fp16") else f"[{record.dtype}]"
        return f"{record.variant}_gemm{grouped}{wide}"
    return op_kind


def measured_op(record: OpMeasurement) -> Op:
    """The record's Op with the shape that was actually timed (rows rounded up, whole groups), costed as
    the variant it was timed in whichever path of a mixed step it belongs to."""
    op = dataclasses.replace(record.op.to_op(), path="both")
    M, groups = record.measured.M, float(record.measured.groups)
    scale = M / float(op.M) if float(op.M) else 1.0
    if op.kind in ("gemm", "sparse_gemm"):
        return dataclasses.replace(op, M=M, groups=groups)
    if op.kind == "attention":
        return op
    return dataclasses.replace(op, M=M, bytes=float(op.bytes) * scale)


def measured_spec(name: str) -> ModelSpec:
    """The spec of a measured model: a shipped one, or the tiny shape of one that a CPU dry run measured
    (ampersim.measure.runner.tiny_spec: '<model>-tiny')."""
    from ampersim.measure.runner import DRY_RUN_SUFFIX, tiny_spec
    from ampersim.models.registry import load_model_spec, model_names

    base = name.removesuffix(DRY_RUN_SUFFIX)
    if name.endswith(DRY_RUN_SUFFIX) and name not in model_names() and base in model_names():
        return tiny_spec(load_model_spec(base))
    return load_model_spec(name)


@dataclass
class _Group:
    """Ops sharing dtype, pattern, prune implementation and TP degree: one cost_graph call."""

    dtype: str
    pattern: str | None  # None: dense-only records (e.g. all-reduce runs)
    prune_impl: str | None
    tp: int
    ops: list[Op] = dataclasses.field(default_factory=list)
    entries: list[tuple[int, int, float, bool]] = dataclasses.field(default_factory=list)  # row, op, weight, sparse
    cols: OpColumns | None = None


class Predictor:
    """Predicted seconds of every usable record of a measurement file, for any profile."""

    def __init__(self, records: Iterable[Result]) -> None:
        from ampersim.sparsity.policy import resolve_policy

        self.rows: list[Row] = []
        groups: dict[tuple, _Group] = {}
        graphs: dict[tuple, list[Op]] = {}
        for record in records:
            if record.prune_impl in DIAGNOSTIC_PRUNE_IMPLS:
                continue
            row_index = len(self.rows)
            key = (record.dtype, record.pattern, record.prune_impl, record.tp)
            group = groups.setdefault(key, _Group(*key))
            sparse = record.variant in ("sparse", "prune")
            if isinstance(record, OpMeasurement):
                group.entries.append((row_index, len(group.ops), 1.0, sparse))
                group.ops.append(measured_op(record))
                name = record.op.name
            else:
                gkey = (record.model, record.policy, record.pattern, record.scoring, record.tokens, record.batch,
                        record.dtype, record.tp, record.step)
                if gkey not in graphs:
                    spec = measured_spec(record.model)
                    policy = resolve_policy(record.policy, spec, record.pattern, record.scoring)
                    graphs[gkey] = (build_graph(spec, policy, record.tokens, record.batch, record.dtype, record.tp)
                                    if record.step is None else
                                    graph_for_step(spec, policy, record.step.shape(record.tokens), record.dtype,
                                                   record.tp, mixed=record.step.mixed))
                for op in graphs[gkey]:
                    if isinstance(record, ModelMeasurement):
                        weight = float(op.count)
                    elif record.layer in op.layers:
                        weight = 1.0
                    else:
                        continue
                    group.entries.append((row_index, len(group.ops), weight, sparse))
                    group.ops.append(op)
                name = f"layer {record.layer}" if isinstance(record, LayerMeasurement) else "model"
            eager = None if isinstance(record, OpMeasurement) else record.timing_eager
            self.rows.append(Row(
                category=category_of(record), model=record.model, tokens=record.tokens, dtype=record.dtype,
                name=name, variant=record.variant, measured_s=record.timing.median_s, file=record.file,
                line=record.line, pair_key=(record.record, record.model, record.tokens, record.dtype, name,
                                            None if record.step is None else record.step.model_copy(
                                                update={"mixed": "split"})),
                timing_eager_s=eager.median_s if eager else None))
        self.groups = list(groups.values())
        for group in self.groups:
            group.cols = OpColumns.from_ops(group.ops)

    @property
    def measured(self) -> np.ndarray:
        return np.array([r.measured_s for r in self.rows])

    def predict(self, profile: HardwareProfile) -> np.ndarray:
        """Predicted seconds per row (same order as ``rows``)."""
        out = np.zeros(len(self.rows))
        for group in self.groups:
            execution = (sparse_execution(profile, group.dtype, group.pattern, group.prune_impl)
                         if group.pattern is not None else None)
            cost = cost_graph(group.cols, profile, group.dtype, execution, group.tp)
            for row, op, weight, sparse in group.entries:
                out[row] += weight * (cost.sparse_s[op, 0] if sparse else cost.dense_s[op, 0])
        return out


def split_of(model: str, holdout: Iterable[str]) -> str:
    return "held-out" if model in set(holdout) else "fit"


def default_holdout(models: Sequence[str], fit_model: str = DEFAULT_FIT_MODEL) -> list[str]:
    """Every model but the fit one (llama-3.1-8b, else the first model measured)."""
    unique = list(dict.fromkeys(models))
    fit = fit_model if fit_model in unique else (unique[0] if unique else fit_model)
    return [m for m in unique if m != fit]


def resolve_holdout(holdout: Sequence[str] | None, models: Sequence[str]) -> list[str]:
    """The held-out models: ``holdout`` (each must have been measured), else ``default_holdout``."""
    if holdout is None:
        return default_holdout(models)
    measured = list(dict.fromkeys(models))
    unknown = [m for m in holdout if m not in measured]
    if unknown:
        raise InvalidArgument(f"holdout: '{unknown[0]}' was not measured; the measured models are "
                              f"{', '.join(measured)}", field="holdout")
    return list(dict.fromkeys(holdout))


def error_stats(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    err = predicted / measured - 1.0
    return {"n": int(err.size), "mape_pct": float(np.mean(np.abs(err)) * 100) if err.size else float("nan"),
            "max_abs_err_pct": float(np.max(np.abs(err)) * 100) if err.size else float("nan"),
            "bias_pct": float(np.mean(err) * 100) if err.size else float("nan")}


def summary(rows: Sequence[Row], predicted: np.ndarray, holdout: Iterable[str]) -> list[dict[str, Any]]:
    """Error statistics per (category, split), in a stable order."""
    holdout = list(holdout)
    buckets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        buckets[(row.category, split_of(row.model, holdout))].append(i)
    measured = np.array([r.measured_s for r in rows])
    out = []
    for (category, split), idx in sorted(buckets.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        out.append({"category": category, "split": split, **error_stats(predicted[idx], measured[idx])})
    return out


def _order(category: str) -> tuple[int, str]:
    head = ("dense_gemm", "sparse_gemm", "attention", "decode_attention", "norm", "elementwise", "embedding", "prune",
            "allreduce", "layer", "model", "decode_layer", "mixed_layer")
    for i, prefix in enumerate(head):
        if category.startswith(prefix):
            return i, category
    return len(head), category


def speedups(rows: Sequence[Row], predicted: np.ndarray, holdout: Iterable[str]) -> list[dict[str, Any]]:
    """Dense/sparse pairs (same GEMM, layer or model): measured and predicted speedup."""
    holdout = list(holdout)
    dense = {r.pair_key: i for i, r in enumerate(rows) if r.variant == "dense"}
    out = []
    for i, row in enumerate(rows):
        if row.variant != "sparse" or row.pair_key not in dense:
            continue
        j = dense[row.pair_key]
        measured = rows[j].measured_s / row.measured_s
        pred = predicted[j] / predicted[i]
        out.append({"category": row.category, "split": split_of(row.model, holdout), "model": row.model,
                    "tokens": row.tokens, "dtype": row.dtype, "name": row.name,
                    "measured_speedup": measured, "predicted_speedup": pred,
                    "abs_err": abs(pred - measured)})
    return out


def speedup_summary(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    buckets: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p in pairs:
        buckets[(p["category"], p["split"])].append(p["abs_err"])
    return [{"category": c, "split": s, "n": len(v), "mean_abs_err": float(np.mean(v)),
             "max_abs_err": float(np.max(v))} for (c, s), v in sorted(buckets.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1]))]


def validate(measurements: Measurements, profile: HardwareProfile,
             holdout: Sequence[str] | None = None, sparse_gemm_impl: str | None = None) -> dict[str, Any]:
    """Every number `ampersim validate` reports (one file or several together), as one JSON-ready dict.

    ``sparse_gemm_impl``: the sparse-GEMM implementation the measured 2:4 GEMMs ran (one of the profile's,
    e.g. cusparselt_default for a run with cuSPARSELt's default algorithm); None: the profile's own."""
    if sparse_gemm_impl is not None:
        profile = profile.with_sparse_gemm(sparse_gemm_impl)
    files = as_files(measurements)
    predictor = Predictor(all_records(files))
    with np.errstate(divide="ignore", invalid="ignore"):  # a record the model cannot cost is refused below
        predicted = predictor.predict(profile)
    rows = predictor.rows
    bad = next((r for r, p in zip(rows, predicted) if not (np.isfinite(p) and p > 0)), None)
    if bad is not None:  # e.g. an op with a zero dimension where its kind has none: no error can be stated
        raise InvalidData(f"{bad.file}:{bad.line}: record '{bad.name}' ({bad.category}, {bad.tokens} tokens) has no "
                          "finite positive prediction; its op's shape or pattern is not one the cost model can cost",
                          field="op")
    holdout = resolve_holdout(holdout, [r.model for r in rows])
    pairs = speedups(rows, predicted, holdout)
    return {
        "measurements": [f.label for f in files], "gpu": ", ".join(dict.fromkeys(f.gpu for f in files)),
        "profile": profile.name, "sparse_gemm_impl": profile.efficiency.sparse_gemm_impl, "holdout": holdout,
        "summary": summary(rows, predicted, holdout),
        "speedup_summary": speedup_summary(pairs),
        "speedups": pairs,
        "rows": [{**dataclasses.asdict(r), "pair_key": None, "split": split_of(r.model, holdout),
                  "predicted_s": float(p), "err_pct": float((p / r.measured_s - 1) * 100)}
                 for r, p in zip(rows, predicted)],
        "skipped": [{"file": s.file, "line": s.line, "what": s.what, "reason": s.reason}
                    for f in files for s in f.skips],
        "truncated": [{"file": f.label, "line": f.truncated_line} for f in files if f.truncated_line is not None],
    }


def compare_runs(reference: Measurements, other: Measurements) -> list[dict[str, Any]]:
    """Run-to-run difference of two measurement sets (e.g. two machines of one GPU kind), per category:
    the records both hold (same record kind, model, tokens, dtype, op or layer, variant, prune
    implementation), error = other / reference − 1, in the summary's statistics."""
    def key(r: Result) -> tuple:
        what = r.op.name if isinstance(r, OpMeasurement) else r.layer if isinstance(r, LayerMeasurement) else None
        return (r.record, r.model, r.tokens, r.dtype, what, r.variant, r.prune_impl)

    base = {key(r): r for r in all_records(reference)}
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in all_records(other):
        if key(r) in base:
            buckets[category_of(r)].append((r.timing.median_s, base[key(r)].timing.median_s))
    return [{"category": c, **error_stats(np.array([o for o, _ in v]), np.array([b for _, b in v]))}
            for c, v in sorted(buckets.items(), key=lambda kv: _order(kv[0]))]
