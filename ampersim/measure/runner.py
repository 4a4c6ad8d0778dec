"""`ampersim measure`: plan the measurements of a workload's op graph, run them, append records.

The plan is the op graph (ampersim.sim.graph.build_graph) of each workload at each token count,
built with policy ``all`` so that every decoder GEMM shape is measured dense and 2:4-sparse and
every activation's prune op exists; shapes shared by several ops are measured once. Whole decoder
layers and the whole model run with the workload's own policy (amber by default). Items run in
priority order (GEMMs of every workload, whole layers, the whole model, attention and memory-bound ops, prune
implementations, extra dtypes) so that a deadline cuts the least important
ones; each result is appended to the file as soon as it exists.
"""
from __future__ import annotations

import dataclasses
import gc
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ampersim.core.errors import InvalidArgument
from ampersim.measure import ops as ops_torch
from ampersim.measure.harness import Timing, time_calls
from ampersim.measure.prune_impls import PRUNE_IMPLS, runnable_impl, unavailable_impls
from ampersim.measure.records import MeasurementWriter
from ampersim.models.spec import ModelSpec
from ampersim.sparsity.policy import SparsityPolicy, resolve_policy
from ampersim.sim.graph import Op, build_graph

GEMM_KINDS = ("gemm", "sparse_gemm")
STREAM_KINDS = ("norm", "elementwise", "embedding")
EAGER_PRUNE_MAX_ELEMENTS = 2**26  # eager torch masking beyond this many elements costs ~0.1 s per call
EAGER_WHOLE_MAX_TOKENS = 4096     # whole layers with eager-torch pruning: larger ones cost seconds per run
EAGER_MODEL_MAX_TOKENS = 1024     # whole model with eager-torch pruning in every layer: ~0.4 s per run at 1024


@dataclass(frozen=True)
class MeasureTarget:
    """A model measured under a policy (the policy picks the sparsified linears of layers / model)."""

    name: str
    spec: ModelSpec
    policy: str = "amber"
    scoring: str = "amber"


@dataclass(frozen=True)
class MeasureConfig:
    workloads: Sequence[MeasureTarget]
    tokens: Sequence[int]
    dtypes: Sequence[str] = ("bf16",)          # first: every op; others: GEMMs only
    pattern: str = "2:4"
    what: frozenset[str] = frozenset({"ops", "layers", "model"})
    prune_impls: Sequence[str] | None = None   # None: every implementation available here
    layer_tokens: Sequence[int] | None = None  # None: same as tokens
    model_tokens: Sequence[int] = (1024, 4096)
    extra_dtype_tokens: Sequence[int] | None = None  # None: same as tokens (first workload only)
    deadline_s: float | None = None
    device: str = "cuda"


@dataclass
class Context:
    config: MeasureConfig
    l2_bytes: float
    writer: MeasurementWriter


@dataclass
class Item:
    """One planned measurement; ``run`` returns the records it produced."""

    label: str
    run: Callable[[Context], list[dict[str, Any]]]
    meta: dict[str, Any] = field(default_factory=dict)


def op_dict(op: Op) -> dict[str, Any]:
    """An Op as plain JSON data (numpy scalars to floats, tuples to lists)."""
    out = {}
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if hasattr(value, "item"):
            value = value.item()
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def op_from_dict(data: dict[str, Any]) -> Op:
    """Inverse of op_dict."""
    data = dict(data)
    data["layers"] = tuple(data.get("layers") or ())
    return Op(**data)


def _base(workload: MeasureTarget, tokens: int, dtype: str, pattern: str, policy: str) -> dict[str, Any]:
    return {"workload": workload.name, "model": workload.spec.name, "tokens": tokens, "batch": 1,
            "dtype": dtype, "tp": 1, "pattern": pattern, "policy": policy, "scoring": workload.scoring}


def _timed(ctx: Context, prepared: ops_torch.Prepared, use_graph: bool = True) -> Timing:
    return time_calls(prepared.calls, device=ctx.config.device, use_graph=use_graph and prepared.use_graph)


def _op_record(base: dict[str, Any], op: Op, also: list[str], variant: str, prune_impl: str | None,
               prepared: ops_torch.Prepared, timing: Timing) -> dict[str, Any]:
    return {"record": "op", **base, "variant": variant, "prune_impl": prune_impl, "op": op_dict(op),
            "also": also, "measured": prepared.shape, "impl": prepared.impl, "check": prepared.check,
            "timing": timing.as_dict(), "note": "; ".join(x for x in (prepared.note, timing.note) if x),
            **({"extra": prepared.extra} if prepared.extra else {})}


def _unique(ops: Iterable[Op], key: Callable[[Op], Any]) -> list[tuple[Op, list[str]]]:
    """Ops deduplicated by ``key``: (first op, names of the others with the same key)."""
    seen: dict[Any, tuple[Op, list[str]]] = {}
    for op in ops:
        k = key(op)
        if k in seen:
            seen[k][1].append(op.name)
        else:
            seen[k] = (op, [])
    return list(seen.values())


def _gemm_key(op: Op) -> tuple:
    return (op.kind, round(float(op.M), 6), float(op.N), float(op.K), round(float(op.groups), 6))


def _stream_key(op: Op) -> tuple:
    name = op.name.split(".")[-1] if op.name.startswith("shared_expert.") else op.name
    family = "norm" if op.kind == "norm" and name not in ("q_norm", "k_norm") else name.split(".")[0]
    return (family, op.kind, round(float(op.M), 6), float(op.K))


def graph_ops(workload: MeasureTarget, tokens: int, dtype: str, pattern: str) -> list[Op]:
    """The op graph with every decoder linear sparsified (policy 'all') at ``pattern``."""
    policy = resolve_policy("all", workload.spec, pattern, workload.scoring)
    return build_graph(workload.spec, policy, tokens, 1, dtype, 1)


def plan(config: MeasureConfig, prune_impls: Sequence[str]) -> list[Item]:
    """Every measurement of ``config`` in priority order."""
    primary, extra_dtypes = config.dtypes[0], list(config.dtypes[1:])
    gemms: list[Item] = []
    others: list[Item] = []
    prunes: list[Item] = []
    for wl in config.workloads:
        for T in config.tokens:
            ops = graph_ops(wl, T, primary, config.pattern)
            base = _base(wl, T, primary, config.pattern, "all")
            if "ops" in config.what:
                for op, also in _unique((o for o in ops if o.kind in GEMM_KINDS), _gemm_key):
                    for variant in ("dense", "sparse") if op.kind == "sparse_gemm" else ("dense",):
                        gemms.append(_gemm_item(base, op, also, variant))
                for op, also in _unique((o for o in ops if o.kind == "attention"), _gemm_key):
                    others.append(_attention_item(base, op, also))
                for op, also in _unique((o for o in ops if o.kind in STREAM_KINDS), _stream_key):
                    others.append(_stream_item(base, wl.spec, op, also))
                    if op.name.split(".")[-1] in ops_torch.FUSABLE:
                        others.append(_stream_item(base, wl.spec, op, also, eager=True))
                for op, also in _unique((o for o in ops if o.kind == "prune"), _stream_key_prune):
                    for impl in prune_impls:
                        if not PRUNE_IMPLS[impl].fused and (wl is not config.workloads[0] or
                                                               float(op.M) * float(op.K) > EAGER_PRUNE_MAX_ELEMENTS):
                            continue  # stock-torch paths: the first workload, moderate sizes
                        prunes.append(_prune_item(base, op, also, impl, config.pattern))
    layers: list[Item] = []
    if "layers" in config.what:
        for wl in config.workloads:
            if wl.spec.moe is not None or wl.spec.sliding_window is not None:
                continue
            policy = resolve_policy(wl.policy, wl.spec, config.pattern, wl.scoring)
            for T in config.layer_tokens or config.tokens:
                layers += _layer_items(wl, policy, T, primary, config.pattern, prune_impls)
    model: list[Item] = []
    if "model" in config.what and config.workloads:
        wl = config.workloads[0]
        if wl.spec.moe is None and wl.spec.sliding_window is None:
            policy = resolve_policy(wl.policy, wl.spec, config.pattern, wl.scoring)
            for T in config.model_tokens:
                model += _model_items(wl, policy, T, primary, config.pattern, prune_impls)
    extra: list[Item] = []
    if "ops" in config.what:
        for dtype in extra_dtypes:
            for wl in config.workloads[:1]:
                for T in config.extra_dtype_tokens or config.tokens:
                    ops = graph_ops(wl, T, dtype, config.pattern)
                    base = _base(wl, T, dtype, config.pattern, "all")
                    for op, also in _unique((o for o in ops if o.kind in GEMM_KINDS and float(o.groups) == 1
                                             and o.name != "lm_head"), _gemm_key):
                        for variant in ("dense", "sparse") if op.kind == "sparse_gemm" else ("dense",):
                            extra.append(_gemm_item(base, op, also, variant))
    return gemms + layers + model + others + prunes + extra


def _stream_key_prune(op: Op) -> tuple:
    return (round(float(op.M), 6), float(op.K))


def _label(base: dict[str, Any], what: str) -> str:
    return f"{base['model']} T={base['tokens']} {base['dtype']} {what}"


def _gemm_item(base: dict[str, Any], op: Op, also: list[str], variant: str) -> Item:
    def run(ctx: Context) -> list[dict[str, Any]]:
        prepared = ops_torch.prepare_gemm(op, variant, ctx.config.device, ctx.l2_bytes)
        return [_op_record(base, op, also, variant, None, prepared, _timed(ctx, prepared))]
    return Item(_label(base, f"{op.name} {variant}"), run)


def _attention_item(base: dict[str, Any], op: Op, also: list[str]) -> Item:
    def run(ctx: Context) -> list[dict[str, Any]]:
        prepared = ops_torch.prepare_attention(op, ctx.config.device, ctx.l2_bytes)
        return [_op_record(base, op, also, "dense", None, prepared, _timed(ctx, prepared))]
    return Item(_label(base, op.name), run)


def _stream_item(base: dict[str, Any], spec: ModelSpec, op: Op, also: list[str], eager: bool = False) -> Item:
    variant = "eager" if eager else "dense"

    def run(ctx: Context) -> list[dict[str, Any]]:
        prepared = ops_torch.prepare_stream(op, spec, ctx.config.device, ctx.l2_bytes, eager=eager)
        return [_op_record(base, op, also, variant, None, prepared, _timed(ctx, prepared))]
    return Item(_label(base, f"{op.name}{' eager' if eager else ''}"), run)


def _prune_item(base: dict[str, Any], op: Op, also: list[str], impl: str, pattern: str) -> Item:
    def run(ctx: Context) -> list[dict[str, Any]]:
        prepared = ops_torch.prepare_prune(op, impl, ctx.config.device, ctx.l2_bytes, pattern)
        return [_op_record(base, op, also, "prune", impl, prepared, _timed(ctx, prepared))]
    return Item(_label(base, f"{op.name} {impl}"), run)


def _sparse_path(impl: str, pattern: str, device: str) -> Any:
    """How the sparsified linears of a layer or model run with compressing implementation ``impl``."""
    from ampersim.measure.model import SparsePath

    chosen = runnable_impl(impl, device)
    n, m = (int(v) for v in pattern.split(":"))
    return SparsePath(impl, chosen.pruner(pattern), chosen.compressed, (n, m))


def _layer_items(wl: MeasureTarget, policy: SparsityPolicy, T: int, dtype: str, pattern: str,
                 prune_impls: Sequence[str]) -> list[Item]:
    from ampersim.measure.model import layer_kinds
    from ampersim.sim.graph import layer_groups

    items = []
    base = _base(wl, T, dtype, pattern, policy.name)
    for index, (layers, _sparse, _window) in enumerate(layer_groups(wl.spec, policy)):
        kinds = layer_kinds(policy, layers[0])
        dense = [None] if index == 0 else []  # the dense layer is the same in every group
        for impl in dense + (["fused_cslt", "torch_eager_cslt"] if kinds else []):
            if impl is not None and impl not in prune_impls:
                continue
            if impl == "torch_eager_cslt" and T > EAGER_WHOLE_MAX_TOKENS:
                continue
            items.append(Item(_label(base, f"layer {layers[0]} {'dense' if impl is None else impl}"),
                              _layer_runner(base, wl, policy, layers, kinds, T, dtype, pattern, impl)))
    return items


def _layer_runner(base: dict[str, Any], wl: MeasureTarget, policy: SparsityPolicy, layers: tuple[int, ...],
                  kinds: frozenset[str], T: int, dtype: str, pattern: str, impl: str | None) -> Callable:
    def run(ctx: Context) -> list[dict[str, Any]]:
        import torch

        from ampersim.measure.model import DecoderLayer, rotary_tables

        device = ctx.config.device
        path = None if impl is None else _sparse_path(impl, pattern, device)
        layer = DecoderLayer(wl.spec, kinds if impl else frozenset(), dtype, device)
        cos, sin = rotary_tables(T, wl.spec.head_dim, device, dtype)
        x = torch.randn(T, wl.spec.hidden_size, device=device, dtype=ops_torch.torch_dtype(dtype))
        check = _layer_check(lambda ref: layer(x, cos, sin, path, reference=ref), path)
        call = lambda: layer(x, cos, sin, path)  # noqa: E731
        timing = time_calls([call], device=device, use_graph=True)
        eager = time_calls([call], device=device, use_graph=False)
        return [{"record": "layer", **base, "layer": layers[0], "layers": list(layers),
                 "sparse_kinds": sorted(kinds) if impl else [], "variant": "sparse" if impl else "dense",
                 "prune_impl": impl, "check": check, "timing": timing.as_dict(), "timing_eager": eager.as_dict(),
                 "note": "timing: CUDA-graph replay (GPU time); timing_eager: back-to-back eager calls"}]
    return run


def _layer_check(forward: Callable[[bool], Any], path: Any, tol: float = 2e-2) -> dict[str, Any]:
    """Sparse path vs the same computation with eager masking and dense GEMMs (pruned inputs).

    Looser than a single GEMM: rounding differences upstream can flip near-tied prune choices."""
    if path is None:
        out = forward(False)
        if not bool(out.isfinite().all()):
            raise ops_torch.CheckFailed("dense layer output has NaN/inf")
        return {"rel_err": 0.0, "tol": 0.0, "ok": True, "what": "finite output (dense path is the reference)"}
    err = ops_torch.rel_err(forward(False), forward(True))
    return {**ops_torch._checked(err, tol, "sparse path vs pruned dense reference"),
            "what": "sparse path vs eager masking + F.linear on the same pruned activations"}


def _model_items(wl: MeasureTarget, policy: SparsityPolicy, T: int, dtype: str, pattern: str,
                 prune_impls: Sequence[str]) -> list[Item]:
    base = _base(wl, T, dtype, pattern, policy.name)
    items = []
    for impl in (None, "fused_cslt", "torch_eager_cslt"):
        if impl is not None and impl not in prune_impls:
            continue
        if impl == "torch_eager_cslt" and T > EAGER_MODEL_MAX_TOKENS:
            continue
        items.append(Item(_label(base, f"whole model {'dense' if impl is None else impl}"),
                          _model_runner(base, wl, policy, T, dtype, pattern, impl), {"impl": impl}))
    return items


def _model_runner(base: dict[str, Any], wl: MeasureTarget, policy: SparsityPolicy, T: int, dtype: str,
                  pattern: str, impl: str | None) -> Callable:
    def run(ctx: Context) -> list[dict[str, Any]]:
        import torch

        from ampersim.measure.model import DecoderModel, rotary_tables

        device = ctx.config.device
        path = None if impl is None else _sparse_path(impl, pattern, device)
        model = _MODEL_CACHE.get((wl.spec.name, policy.name, dtype))
        if model is None:
            _MODEL_CACHE.clear()
            gc.collect()
            model = DecoderModel(wl.spec, policy, dtype, device)
            _MODEL_CACHE[(wl.spec.name, policy.name, dtype)] = model
        cos, sin = rotary_tables(T, wl.spec.head_dim, device, dtype)
        ids = torch.randint(0, wl.spec.vocab_size, (T,), device=device)
        if path is None:
            check = _layer_check(lambda ref: model(ids, cos, sin, path, reference=ref), path)
        else:
            worst = max(model.layer_errors(ids, cos, sin, path))
            check = {**ops_torch._checked(worst, 5e-2, "sparse model layers vs pruned dense reference"),
                     "what": "worst layer (teacher-forced): sparse path vs eager masking + F.linear"}
        call = lambda: model(ids, cos, sin, path)  # noqa: E731
        timing = time_calls([call], device=device, use_graph=True)
        eager = time_calls([call], device=device, use_graph=False)
        return [{"record": "model", **base, "layers": wl.spec.num_layers, "variant": "sparse" if impl else "dense",
                 "prune_impl": impl, "check": check, "timing": timing.as_dict(), "timing_eager": eager.as_dict(),
                 "note": "random weights; lm_head on the last token; timing: CUDA-graph replay; "
                         "timing_eager: back-to-back eager forwards"}]
    return run


_MODEL_CACHE: dict[tuple, Any] = {}


class Progress:
    """A one-line progress bar on stderr (a new line per item when stderr is not a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, label: str) -> None:
        self.done += 1
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.monotonic() - self.start
        text = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:6.1f}s {label}"
        if self.tty:
            self.stream.write("\r" + text[:150].ljust(150))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def execute(config: MeasureConfig, writer: MeasurementWriter, l2_bytes: float,
            stream: TextIO | None = None) -> dict[str, int]:
    """Run every planned item, appending its records (or a skip record) as it finishes."""
    unavailable = unavailable_impls(config.device)
    wanted = list(config.prune_impls or PRUNE_IMPLS)
    impls = [i for i in wanted if i not in unavailable]
    for name in wanted:
        if name in unavailable:
            writer.write({"record": "skip", "what": f"prune impl {name}", "reason": unavailable[name]})
    items = plan(config, impls)
    ctx = Context(config, l2_bytes, writer)
    progress = Progress(len(items), stream)
    counts = {"measured": 0, "skipped": 0}
    start = time.monotonic()
    for item in items:
        if config.deadline_s is not None and time.monotonic() - start > config.deadline_s:
            writer.write({"record": "skip", "what": item.label, "reason": f"deadline {config.deadline_s:g} s reached"})
            counts["skipped"] += 1
            progress.step("skipped (deadline): " + item.label)
            continue
        try:
            records = item.run(ctx)
        except (InvalidArgument, ops_torch.CheckFailed) as exc:
            writer.write({"record": "skip", "what": item.label, "reason": str(exc)})
            counts["skipped"] += 1
            progress.step(f"SKIP {item.label}: {exc}")
        except Exception as exc:  # a failing op must not end the run: record it and go on
            _free(config.device)
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            writer.write({"record": "skip", "what": item.label, "reason": reason})
            counts["skipped"] += 1
            progress.step(f"ERROR {item.label}: {reason}")
        else:
            for record in records:
                writer.write(record)
            counts["measured"] += len(records)
            progress.step(item.label)
        _free(config.device, keep_model=True)
    _MODEL_CACHE.clear()
    return counts


def _free(device: str, keep_model: bool = False) -> None:
    if not keep_model:
        _MODEL_CACHE.clear()
    gc.collect()
    if device != "cpu":
        import torch

        torch.cuda.empty_cache()
