"""`ampersim measure`: plan the measurements of each target's op graph, run them, append records.

Decode and mixed steps (``what`` "decode", "mixed") are the same graph at a serving step
(ampersim.sim.graph.graph_for_step): their ops through the same registry — decode attention over a
real KV cache, a prefill chunk's attention after its cached prefix — and whole decoder layers run
as that step (ampersim.measure.model.DecoderLayer.step), dense, and for mixed steps sparse under
``split`` and ``prune_all``; every record carries the step (records.StepPoint).

The plan is the op graph (ampersim.sim.graph.build_graph) of each target at each token count,
built with policy ``all`` so that every decoder GEMM shape is measured dense and 2:4-sparse and
every activation's prune op exists; which ops are measured, in which variants, and which share a
measurement comes from the op-preparation registry (ampersim.measure.ops.PREPARATIONS). Whole
decoder layers and the whole model run with the target's own policy (amber by default). Items run
in priority order (GEMMs of every target, whole layers, the whole model, attention and
memory-bound ops, prune implementations, extra dtypes) so that a deadline cuts the least important
ones; each result is appended to the file as soon as it exists.
"""
from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from tqdm import tqdm

from ampersim.core.errors import InvalidArgument
from ampersim.core.limits import MAX_STEP_SEQUENCES, MAX_STEP_TOKENS, check_at_most, check_positive
from ampersim.core.vocab import POLICY_PRESETS
from ampersim.measure import ops
from ampersim.measure.harness import time_calls
from ampersim.measure.prune_impls import PRUNE_IMPLS, runnable_impl, unavailable_impls
from ampersim.measure.records import (
    Check,
    GemmChoice,
    LayerMeasurement,
    MeasurementWriter,
    ModelMeasurement,
    OpMeasurement,
    Result,
    SkipRecord,
    StepPoint,
)
from ampersim.models.spec import ModelSpec
from ampersim.sim.graph import Op, build_graph, graph_for_step, layer_groups
from ampersim.sparsity.policy import SparsityPolicy, resolve_policy

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
    targets: Sequence[MeasureTarget]
    tokens: Sequence[int]
    dtypes: Sequence[str] = ("bf16",)          # first: every op; others: GEMMs only
    pattern: str = "2:4"
    what: frozenset[str] = frozenset({"ops", "layers", "model"})
    prune_impls: Sequence[str] | None = None   # None: every implementation available here
    layer_tokens: Sequence[int] | None = None  # None: same as tokens
    model_tokens: Sequence[int] = (1024, 4096)
    extra_dtype_tokens: Sequence[int] | None = None  # None: same as tokens (first target only)
    deadline_s: float | None = None
    device: str = "cuda"
    decode_batches: Sequence[int] = (1, 16, 64, 256)  # decode steps: sequences decoding together
    decode_contexts: Sequence[int] = (512, 4096, 32768)  # tokens in each sequence's KV cache
    mixed_tokens: Sequence[int] = (2048, 8192)  # mixed steps: token budget (first decode batch + a prefill chunk)

    def check_bounds(self) -> None:
        """Refuse, before any GPU work, sizes beyond a target's context length or the step bounds
        (ampersim.core.limits), and a deadline that is not a positive number of seconds."""
        if self.deadline_s is not None:
            check_positive(self.deadline_s, "deadline", "the deadline (s)")
        for name, values, limit in (("tokens", self.tokens, MAX_STEP_TOKENS),
                                    ("layer_tokens", self.layer_tokens or (), MAX_STEP_TOKENS),
                                    ("model_tokens", self.model_tokens, MAX_STEP_TOKENS),
                                    ("extra_dtype_tokens", self.extra_dtype_tokens or (), MAX_STEP_TOKENS),
                                    ("mixed_tokens", self.mixed_tokens, MAX_STEP_TOKENS),
                                    ("decode_batch", self.decode_batches, MAX_STEP_SEQUENCES)):
            for value in values:
                check_at_most(value, limit, name, "a step's size")
        for target in self.targets:
            for name, values in (("tokens", self.tokens), ("layer_tokens", self.layer_tokens or ()),
                                 ("model_tokens", self.model_tokens), ("decode_context", self.decode_contexts)):
                for value in values:
                    target.spec.check_context(value, name, "a sequence")

    def step_points(self) -> list[tuple[int, StepPoint]]:
        """(prefill tokens, step) of every decode step, and of every mixed step under split and prune_all:
        the first decode batch and context beside a prefill chunk filling the budget."""
        points = []
        if "decode" in self.what:
            points += [(0, StepPoint(decode_batch=b, decode_context=c))
                       for b in self.decode_batches for c in self.decode_contexts]
        if "mixed" in self.what and self.decode_batches and self.decode_contexts:
            b, c = self.decode_batches[0], self.decode_contexts[0]
            for budget in self.mixed_tokens:
                if budget <= b or (budget - b) % 16 or budget % 16:
                    raise InvalidArgument(f"mixed_tokens {budget}: the prefill chunk ({budget} - {b} decode tokens) "
                                          "and the whole step must be multiples of 16 rows (the 2:4 kernels)",
                                          field="mixed_tokens")
                points += [(budget - b, StepPoint(decode_batch=b, decode_context=c, mixed=mode))
                           for mode in ("split", "prune_all")]
        return points


DRY_RUN_SUFFIX = "-tiny"


def tiny_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` scaled down for a CPU dry run: 2 layers of width 64 (2 heads of 32, grouped-query where the
    model is, 128-wide FFN, 256-token vocabulary), its family, norms, activation and attention window
    kept, MoE as 4 experts of width 64."""
    moe = spec.moe
    return ModelSpec.model_validate({**spec.model_dump(), **{
        "name": f"{spec.name}{DRY_RUN_SUFFIX}", "display_name": f"{spec.display_name} (tiny dry-run shape)",
        "source": f"derived: {spec.name} scaled down for a CPU dry run of ampersim measure", "aliases": [],
        "num_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2,
        "num_kv_heads": 1 if spec.num_kv_heads < spec.num_heads else 2, "head_dim": 32, "vocab_size": 256,
        "max_position_embeddings": None,
        "sliding_window": None if spec.sliding_window is None else 16,
        "global_every": None if spec.global_every is None else 2,
        "moe": None if moe is None else {
            "num_experts": 4, "experts_per_token": min(2, moe.experts_per_token), "expert_intermediate_size": 64,
            "shared_expert_intermediate_size": 64 if moe.shared_expert_intermediate_size else 0},
    }})


def dry_run(config: MeasureConfig) -> MeasureConfig:
    """``config`` for a CPU dry run of the harness on tiny shapes: each model as ``tiny_spec`` (a policy
    file, written for the real layer count, becomes 'all'), 32-token prompts, layers and model, decode steps
    of 16 sequences over 64 cached tokens, one 64-token mixed step. Minutes of full-size CPU work become
    seconds; the numbers time the host, not a GPU."""
    targets = [replace(t, spec=tiny_spec(t.spec), policy=t.policy if t.policy in POLICY_PRESETS else "all")
               for t in config.targets]
    return replace(config, targets=targets, tokens=(32,), layer_tokens=(32,), model_tokens=(32,),
                   extra_dtype_tokens=(32,), decode_batches=(16,), decode_contexts=(64,), mixed_tokens=(64,))


class ModelSlot:
    """The random-weight whole model of one ``execute`` run: kept while consecutive whole-model items
    share (model, policy, dtype), replaced when they do not (one at a time: a 70B model fills a GPU),
    dropped after a failure and when the run ends."""

    def __init__(self) -> None:
        self._key: Hashable = None
        self._model: Any = None

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The model for ``key``, built (after the previous one is freed) if it is not the one held."""
        if self._model is None or self._key != key:
            self.clear()
            self._model = build()
            self._key = key
        return self._model

    def clear(self) -> None:
        self._key = self._model = None
        gc.collect()


@dataclass
class Context:
    """What the items of one ``execute`` run share."""

    config: MeasureConfig
    l2_bytes: float
    models: ModelSlot = field(default_factory=ModelSlot)


SPARSE_GEMM_NEEDS_CUDA = "2:4 sparse GEMMs run on cuSPARSELt, which needs a CUDA device"


@dataclass
class Item:
    """One planned measurement; ``run`` returns the records it produced; ``needs_cuda``: it cannot run elsewhere."""

    label: str
    run: Callable[[Context], list[Result]]
    needs_cuda: bool = False


def _base(target: MeasureTarget, tokens: int, dtype: str, pattern: str, policy: str,
          step: StepPoint | None = None) -> dict[str, Any]:
    """The fields of the workload point every result record of this target, size and dtype carries."""
    return {"workload": target.name, "model": target.spec.name, "tokens": tokens, "batch": 1, "dtype": dtype,
            "tp": 1, "pattern": pattern, "policy": policy, "scoring": target.scoring, "step": step}


def _distinct(graph: Iterable[Op]) -> list[tuple[Op, list[str], ops.Preparation]]:
    """The measured ops of a graph, one per (registry entry, shared key): (first op, names of the
    others measured by it, its Preparation). Ops without a preparation (all-reduce) are left out."""
    seen: dict[tuple, tuple[Op, list[str], ops.Preparation]] = {}
    for op in graph:
        how = ops.preparation(op)
        if how is None:
            continue
        key = (how, how.same(op))
        if key in seen:
            seen[key][1].append(op.name)
        else:
            seen[key] = (op, [], how)
    return list(seen.values())


def graph_ops(target: MeasureTarget, tokens: int, dtype: str, pattern: str) -> list[Op]:
    """The op graph with every decoder linear sparsified (policy 'all') at ``pattern``."""
    policy = resolve_policy("all", target.spec, pattern, target.scoring)
    return build_graph(target.spec, policy, tokens, 1, dtype, 1)


def step_ops(target: MeasureTarget, tokens: int, step: StepPoint, dtype: str, pattern: str) -> list[Op]:
    """The graph of a decode or mixed step with every decoder linear sparsified (policy 'all')."""
    policy = resolve_policy("all", target.spec, pattern, target.scoring)
    return graph_for_step(target.spec, policy, step.shape(tokens), dtype, 1, mixed=step.mixed)


def plan(config: MeasureConfig, prune_impls: Sequence[str]) -> list[Item]:
    """Every measurement of ``config`` in priority order."""
    primary, extra_dtypes = config.dtypes[0], list(config.dtypes[1:])
    ranked: dict[ops.Rank, list[Item]] = {"first": [], "after_models": [], "last": []}
    steps: list[Item] = []
    for target in config.targets:
        seen: set[Hashable] = set()  # an op of equal shape in another step is timed once
        for P, point in config.step_points():
            base = _base(target, P, primary, config.pattern, "all", point)
            for op, also, how in _distinct(step_ops(target, P, point, primary, config.pattern)):
                if (how, how.same(op)) in seen:
                    continue
                seen.add((how, how.same(op)))
                if how.variants != ("prune",):
                    ranked[how.rank] += [_op_item(base, target.spec, op, also, v) for v in how.variants]
                elif "fused_cslt" in prune_impls:
                    ranked[how.rank].append(_op_item(base, target.spec, op, also, "prune", "fused_cslt"))
            if target.spec.moe is None and target.spec.sliding_window is None:
                policy = resolve_policy(target.policy, target.spec, config.pattern, target.scoring)
                steps += _step_items(target, policy, P, point, primary, config.pattern, prune_impls)
    if "ops" in config.what:
        for target in config.targets:
            for T in config.tokens:
                base = _base(target, T, primary, config.pattern, "all")
                for op, also, how in _distinct(graph_ops(target, T, primary, config.pattern)):
                    if how.variants != ("prune",):
                        ranked[how.rank] += [_op_item(base, target.spec, op, also, v) for v in how.variants]
                        continue
                    for impl in prune_impls:
                        if not PRUNE_IMPLS[impl].fused and (target is not config.targets[0] or
                                                             float(op.M) * float(op.K) > EAGER_PRUNE_MAX_ELEMENTS):
                            continue  # stock-torch paths: the first target, moderate sizes
                        ranked[how.rank].append(_op_item(base, target.spec, op, also, "prune", impl))
    layers: list[Item] = []
    if "layers" in config.what:
        for target in config.targets:
            if target.spec.moe is not None or target.spec.sliding_window is not None:
                continue
            policy = resolve_policy(target.policy, target.spec, config.pattern, target.scoring)
            for T in config.layer_tokens or config.tokens:
                layers += _layer_items(target, policy, T, primary, config.pattern, prune_impls)
    model: list[Item] = []
    if "model" in config.what and config.targets:
        target = config.targets[0]
        if target.spec.moe is None and target.spec.sliding_window is None:
            policy = resolve_policy(target.policy, target.spec, config.pattern, target.scoring)
            for T in config.model_tokens:
                model += _model_items(target, policy, T, primary, config.pattern, prune_impls)
    extra: list[Item] = []
    if "ops" in config.what:
        for dtype in extra_dtypes:
            for target in config.targets[:1]:
                for T in config.extra_dtype_tokens or config.tokens:
                    base = _base(target, T, dtype, config.pattern, "all")
                    for op, also, how in _distinct(graph_ops(target, T, dtype, config.pattern)):
                        if how.extra_dtypes and float(op.groups) == 1 and op.name != "lm_head":
                            extra += [_op_item(base, target.spec, op, also, v) for v in how.variants]
    return ranked["first"] + layers + model + steps + ranked["after_models"] + ranked["last"] + extra


def _label(base: dict[str, Any], what: str) -> str:
    step = base.get("step")
    where = (f"T={base['tokens']}" if step is None else
             f"{'mixed ' + step.mixed + ' P=' + str(base['tokens']) + ' ' if base['tokens'] else 'decode '}"
             f"B={step.decode_batch} L={step.decode_context}")
    return f"{base['model']} {where} {base['dtype']} {what}"


def _op_item(base: dict[str, Any], spec: ModelSpec, op: Op, also: list[str], variant: str,
             prune_impl: str | None = None) -> Item:
    def run(ctx: Context) -> list[Result]:
        request = ops.Request(ctx.config.device, ctx.l2_bytes, spec, variant, prune_impl, ctx.config.pattern)
        prepared = ops.prepare(op, request)
        timing = time_calls(prepared.calls, device=ctx.config.device, use_graph=prepared.use_graph)
        return [OpMeasurement(
            **base, variant=variant, prune_impl=prune_impl, op=op.to_record(), also=also, measured=prepared.shape,
            impl=prepared.impl, check=prepared.check, timing=timing,
            note="; ".join(x for x in (prepared.note, timing.note) if x),
            extra=GemmChoice(alg=prepared.alg) if prepared.alg is not None else None)]
    return Item(_label(base, f"{op.name} {prune_impl or variant}"), run, needs_cuda=variant == "sparse")


def _sparse_path(impl: str, pattern: str, device: str) -> Any:
    """How the sparsified linears of a layer or model run with compressing implementation ``impl``."""
    from ampersim.measure.model import SparsePath

    chosen = runnable_impl(impl, device)
    n, m = (int(v) for v in pattern.split(":"))
    return SparsePath(impl, chosen.pruner(pattern), chosen.compressed, (n, m))


def _layer_items(target: MeasureTarget, policy: SparsityPolicy, T: int, dtype: str, pattern: str,
                 prune_impls: Sequence[str]) -> list[Item]:
    from ampersim.measure.model import layer_kinds

    items = []
    base = _base(target, T, dtype, pattern, policy.name)
    for index, (layers, _sparse, _window) in enumerate(layer_groups(target.spec, policy)):
        kinds = layer_kinds(policy, layers[0])
        dense = [None] if index == 0 else []  # the dense layer is the same in every group
        for impl in dense + (["fused_cslt", "torch_eager_cslt"] if kinds else []):
            if impl is not None and impl not in prune_impls:
                continue
            if impl == "torch_eager_cslt" and T > EAGER_WHOLE_MAX_TOKENS:
                continue
            items.append(Item(_label(base, f"layer {layers[0]} {'dense' if impl is None else impl}"),
                              _layer_runner(base, target, layers, kinds, T, dtype, pattern, impl)))
    return items


def _layer_runner(base: dict[str, Any], target: MeasureTarget, layers: tuple[int, ...], kinds: frozenset[str],
                  T: int, dtype: str, pattern: str, impl: str | None) -> Callable[[Context], list[Result]]:
    def run(ctx: Context) -> list[Result]:
        import torch

        from ampersim.measure.model import DecoderLayer, rotary_tables

        device, spec = ctx.config.device, target.spec
        path = None if impl is None else _sparse_path(impl, pattern, device)
        layer = DecoderLayer(spec, kinds if impl else frozenset(), dtype, device)
        cos, sin = rotary_tables(T, spec.head_dim, device, dtype, spec.rope_theta)
        x = torch.randn(T, spec.hidden_size, device=device, dtype=ops.torch_dtype(dtype))
        check = _layer_check(lambda ref: layer(x, cos, sin, path, reference=ref), path)
        call = lambda: layer(x, cos, sin, path)  # noqa: E731
        return [LayerMeasurement(
            **base, variant="sparse" if impl else "dense", prune_impl=impl, layer=layers[0], layers=layers,
            sparse_kinds=sorted(kinds) if impl else [], check=check,
            timing=time_calls([call], device=device, use_graph=True),
            timing_eager=time_calls([call], device=device, use_graph=False),
            note="timing: CUDA-graph replay (GPU time); timing_eager: back-to-back eager calls")]
    return run


def _layer_check(forward: Callable[[bool], Any], path: Any, tol: float = 2e-2) -> Check:
    """Sparse path vs the same computation with eager masking and dense GEMMs (pruned inputs).

    Looser than a single GEMM: rounding differences upstream can flip near-tied prune choices."""
    if path is None:
        if not bool(forward(False).isfinite().all()):
            raise ops.CheckFailed("dense layer output has NaN/inf")
        return Check(rel_err=0.0, tol=0.0, ok=True, what="finite output (dense path is the reference)")
    return ops.require_within(ops.rel_err(forward(False), forward(True)), tol, "sparse path vs pruned dense reference",
                              compared="sparse path vs eager masking + F.linear on the same pruned activations")


def _step_items(target: MeasureTarget, policy: SparsityPolicy, P: int, point: StepPoint, dtype: str, pattern: str,
                prune_impls: Sequence[str]) -> list[Item]:
    """A decoder layer as a decode step (dense) or a mixed step (dense once, sparse per mode), for the
    first layer the policy sparsifies (decode-only steps: the first layer)."""
    from ampersim.measure.model import layer_kinds

    groups = layer_groups(target.spec, policy)
    layers, _, _ = next((g for g in groups if layer_kinds(policy, g[0][0])), groups[0])
    kinds = layer_kinds(policy, layers[0])
    base = _base(target, P, dtype, pattern, policy.name, point)
    impls: list[str | None] = [None] if P == 0 or point.mixed == "split" else []  # the dense path mixes one way
    if P and kinds:
        impls += [i for i in ("fused_cslt", "torch_eager_cslt") if i in prune_impls]
    return [Item(_label(base, f"layer {layers[0]} {impl or 'dense'}"),
                 _step_runner(base, target, layers, kinds, P, point, dtype, pattern, impl)) for impl in impls]


def _step_runner(base: dict[str, Any], target: MeasureTarget, layers: tuple[int, ...], kinds: frozenset[str], P: int,
                 point: StepPoint, dtype: str, pattern: str, impl: str | None) -> Callable[[Context], list[Result]]:
    def run(ctx: Context) -> list[Result]:
        import torch

        from ampersim.measure.model import DecoderLayer, ServingStep

        device, spec = ctx.config.device, target.spec
        path = None if impl is None else _sparse_path(impl, pattern, device)
        layer = DecoderLayer(spec, kinds if impl else frozenset(), dtype, device)
        step = ServingStep.build(spec, P, point.prefill_offset, point.decode_batch, point.decode_context,
                                 point.mixed, dtype, device)
        x = torch.randn(P + point.decode_batch, spec.hidden_size, device=device, dtype=ops.torch_dtype(dtype))
        check = _layer_check(lambda ref: layer.step(x, step, path, reference=ref), path)
        call = lambda: layer.step(x, step, path)  # noqa: E731
        sparse = "sparse" if impl else "dense"
        return [LayerMeasurement(
            **{**base, "step": point if impl else point.model_copy(update={"mixed": "split"})}, variant=sparse,
            prune_impl=impl, layer=layers[0], layers=layers, sparse_kinds=sorted(kinds) if impl else [], check=check,
            timing=time_calls([call], device=device, use_graph=True),
            timing_eager=time_calls([call], device=device, use_graph=False),
            note="a serving step of one layer: KV caches as [B, kv_heads, L, head_dim] tensors read by SDPA, the "
                 "step's K/V written into them; timing: CUDA-graph replay; timing_eager: back-to-back eager calls")]
    return run


def _model_items(target: MeasureTarget, policy: SparsityPolicy, T: int, dtype: str, pattern: str,
                 prune_impls: Sequence[str]) -> list[Item]:
    base = _base(target, T, dtype, pattern, policy.name)
    items = []
    for impl in (None, "fused_cslt", "torch_eager_cslt"):
        if impl is not None and impl not in prune_impls:
            continue
        if impl == "torch_eager_cslt" and T > EAGER_MODEL_MAX_TOKENS:
            continue
        items.append(Item(_label(base, f"whole model {'dense' if impl is None else impl}"),
                          _model_runner(base, target, policy, T, dtype, pattern, impl)))
    return items


def _model_runner(base: dict[str, Any], target: MeasureTarget, policy: SparsityPolicy, T: int, dtype: str,
                  pattern: str, impl: str | None) -> Callable[[Context], list[Result]]:
    def run(ctx: Context) -> list[Result]:
        import torch

        from ampersim.measure.model import DecoderModel, rotary_tables

        device, spec = ctx.config.device, target.spec
        path = None if impl is None else _sparse_path(impl, pattern, device)
        model = ctx.models.get((spec.name, policy.name, dtype), lambda: DecoderModel(spec, policy, dtype, device))
        cos, sin = rotary_tables(T, spec.head_dim, device, dtype, spec.rope_theta)
        ids = torch.randint(0, spec.vocab_size, (T,), device=device)
        if path is None:
            check = _layer_check(lambda ref: model(ids, cos, sin, path, reference=ref), path)
        else:
            check = ops.require_within(max(model.layer_errors(ids, cos, sin, path)), 5e-2,
                                       "sparse model layers vs pruned dense reference",
                                       compared="worst layer (teacher-forced): sparse path vs eager masking + F.linear")
        call = lambda: model(ids, cos, sin, path)  # noqa: E731
        return [ModelMeasurement(
            **base, variant="sparse" if impl else "dense", prune_impl=impl, layers=spec.num_layers, check=check,
            timing=time_calls([call], device=device, use_graph=True),
            timing_eager=time_calls([call], device=device, use_graph=False),
            note="random weights; lm_head on the last token; timing: CUDA-graph replay; "
                 "timing_eager: back-to-back eager forwards")]
    return run


def execute(config: MeasureConfig, writer: MeasurementWriter, l2_bytes: float,
            stream: TextIO | None = None) -> dict[str, int]:
    """Run every planned item, appending its records (or a skip record) as it finishes; a progress
    bar (and a line per skipped or failed item) goes to ``stream`` (stderr by default)."""
    unavailable = unavailable_impls(config.device)
    wanted = list(config.prune_impls or PRUNE_IMPLS)
    impls = [i for i in wanted if i not in unavailable]
    for name in wanted:
        if name in unavailable:
            writer.write(SkipRecord(what=f"prune impl {name}", reason=unavailable[name]))
    items = plan(config, impls)
    ctx = Context(config, l2_bytes)
    counts = {"measured": 0, "skipped": 0}
    out = stream or sys.stderr
    if config.device != "cuda":  # known before anything runs: one line, not an error per GEMM
        cuda_only = [item for item in items if item.needs_cuda]
        for item in cuda_only:
            writer.write(SkipRecord(what=item.label, reason=SPARSE_GEMM_NEEDS_CUDA))
        if cuda_only:
            print(f"  {len(cuda_only)} sparse GEMM measurements skipped: {SPARSE_GEMM_NEEDS_CUDA}", file=out)
        counts["skipped"] += len(cuda_only)
        items = [item for item in items if not item.needs_cuda]
    started = time.monotonic()
    try:
        with tqdm(total=len(items), file=out, unit="item", dynamic_ncols=True) as bar:
            for item in items:
                bar.set_postfix_str(item.label, refresh=False)
                written, problem = _run_item(item, ctx, writer, started)
                counts["measured"] += written
                if problem is not None:
                    counts["skipped"] += 1
                    bar.write(problem, file=out)
                bar.update()
                _release_device_memory(config.device)
    finally:
        ctx.models.clear()
        _release_device_memory(config.device)
    return counts


def _run_item(item: Item, ctx: Context, writer: MeasurementWriter, started: float) -> tuple[int, str | None]:
    """Run one item and append what it produced: (records written, None), or (0, a line saying why
    it was skipped) after appending a skip record."""
    deadline = ctx.config.deadline_s
    if deadline is not None and time.monotonic() - started > deadline:
        writer.write(SkipRecord(what=item.label, reason=f"deadline {deadline:g} s reached"))
        return 0, f"skipped (deadline): {item.label}"
    try:
        records = item.run(ctx)
    except (InvalidArgument, ops.CheckFailed) as exc:
        writer.write(SkipRecord(what=item.label, reason=str(exc)))
        return 0, f"SKIP {item.label}: {exc}"
    except Exception as exc:  # a failing op must not end the run: record it and go on
        ctx.models.clear()
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        writer.write(SkipRecord(what=item.label, reason=reason))
        return 0, f"ERROR {item.label}: {reason}"
    for record in records:
        writer.write(record)
    return len(records), None


def _release_device_memory(device: str) -> None:
    """Collect garbage and hand the CUDA caching allocator's free blocks back (between items)."""
    gc.collect()
    if device != "cpu":
        import torch

        torch.cuda.empty_cache()
