"""``sparsify(model, policy)``: N:M-prune the inputs of selected linear layers of a torch model.

How it works: a forward pre-hook on every selected ``nn.Linear`` replaces the layer's input X by a
pruned copy (top-N of every M consecutive input channels per token, score ``|x| * f`` with the
static factor f of :mod:`ampersim.sparsity.scoring`); the caller's tensor is never modified.
Fused MoE expert modules (3-D ``gate_up_proj``/``down_proj``) get a forward that prunes the
expert inputs (magnitude score: the robust-norm factor is not applicable to experts).
CPU tensors go through the numba kernels of :mod:`ampersim.kernels.cpu`, CUDA tensors through the fused
GPU kernel of :mod:`ampersim.kernels.gpu.pruner`, anything else (no Triton, other devices) through
:mod:`ampersim.kernels.torch_eager`; all three are tested bit-equal to :mod:`ampersim.kernels.reference`.
``backend="cuda"`` (2:4 only) instead runs each selected linear's prefill forward as an
activation-sparse linear (:mod:`ampersim.runtime.sparse_linear`: fused prune + compress, the
cuSPARSELt GEMM with persistent plans; a custom op under ``torch.compile``); decode stays dense.

Prefill detection (mode ``"prefill"``, the default): a pre-hook on the model passed to
``sparsify`` reads the tokens per sequence of each forward call — the last dimension of
``input_ids`` (or of the first integer tensor argument), else the second-to-last dimension of
``inputs_embeds`` / the first floating tensor argument. A call with more than one token per
sequence is a prefill step (pruned); exactly one token per sequence is a decode step (dense).
Chunked prefill and speculative-decoding verification (several new tokens against a cache) count
as prefill. A linear called outside a forward of the root model applies the same rule to its own
input. Override with ``handle.mode = "always" | "never" | "prefill"`` or ``with handle.using(mode):``.

``handle.remove()`` takes every hook and patch away and restores swapped weights, leaving the
model exactly as before.
"""
from __future__ import annotations

import contextlib
import fnmatch
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument, NotFound
from ampersim.core.patterns import NMPattern
from ampersim.core.vocab import AMBER_OUTLIERS, DECODER_LINEAR_KINDS, SPARSIFY_BACKENDS, AmberOutliers
from ampersim.models.hf_names import LinearTarget, linear_targets, model_spec
from ampersim.sparsity.coverage import Coverage, coverage
from ampersim.sparsity.policy import PolicyRule, SparsityPolicy, resolve_policy
from ampersim.sparsity.scoring import static_factor

if TYPE_CHECKING:
    import torch

    from ampersim.models.spec import ModelSpec

MODES = ("prefill", "always", "never")
_HANDLE_ATTR = "_ampersim_sparsify_handle"


def prune_activation(x: torch.Tensor, pattern: NMPattern, factor: Any) -> torch.Tensor:
    """Pruned copy of activation ``x``: numba kernels on CPU, the fused GPU kernel on CUDA (Triton),
    eager torch (:func:`ampersim.kernels.torch_eager.prune`) on other devices or without Triton.

    ``factor``: per-input-channel static score factor (float32 numpy array or tensor) or None.
    """
    from ampersim.kernels import gpu, torch_eager

    if x.device.type == "cpu":
        from ampersim.kernels.cpu.pruner import prune

        return prune(x, pattern, factor=factor)
    if gpu.available(x.device) is None:
        from ampersim.kernels.gpu.pruner import prune_gpu

        return prune_gpu(x, pattern, factor=factor)
    return torch_eager.prune(x, pattern, factor=factor)


@dataclass
class _Target:
    """A selected linear (or fused experts module) and what sparsify attached to it."""

    target: LinearTarget
    factor: Any = None  # float32 numpy [in_features] (amber scoring) or None (magnitude / experts)
    smooth: Any = None  # outstanding: inverse-SmoothQuant multipliers s [in_features]
    original_weight: Any = None  # outstanding: the Parameter swapped out
    sparse_kinds: tuple[str, ...] = ()  # fused experts: which of gate/up/down are pruned


@dataclass
class SparsifyHandle:
    """What :func:`sparsify` did to a model; ``remove()`` undoes it."""

    model: Any
    policy: SparsityPolicy
    layers: list[str]  # canonical names of the pruned linears, in module order
    coverage: Coverage | None  # share of decoder linear MACs sparsified, the paper's definition (None without a ModelSpec)
    outstanding: bool = False
    outliers: str = "clamp"  # amber factor: weights outside the clip quantiles clamped or dropped
    _mode: str = "prefill"
    _step: str | None = None  # "prefill" | "decode" while the root model runs, else None
    _targets: list[_Target] = field(default_factory=list, repr=False)
    _hooks: list[Any] = field(default_factory=list, repr=False)
    _removed: bool = False

    @property
    def pattern(self) -> NMPattern:
        return self.policy.pattern

    @property
    def mode(self) -> str:
        """"prefill" (prune prefill steps only), "always" or "never"."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise InvalidArgument(f"invalid sparsify mode '{value}': choose one of {', '.join(MODES)}")
        self._mode = value

    @contextlib.contextmanager
    def using(self, mode: str) -> Iterator[SparsifyHandle]:
        """Temporarily switch mode: ``with handle.using("never"): dense_logits = model(ids)``."""
        previous = self._mode
        self.mode = mode
        try:
            yield self
        finally:
            self._mode = previous

    def prunes(self, x: torch.Tensor) -> bool:
        """Whether an input ``x`` reaching a selected layer right now is pruned."""
        if self._mode != "prefill":
            return self._mode == "always"
        if self._step is not None:
            return self._step == "prefill"
        return (x.shape[-2] if x.dim() >= 2 else 1) > 1

    def remove(self) -> None:
        """Remove hooks and patches; restore swapped weights. The model is exactly as before."""
        if self._removed:
            return
        for hook in self._hooks:
            hook.remove()
        for t in self._targets:
            module = t.target.module
            if t.original_weight is not None:
                module.weight = t.original_weight
            if "forward" in vars(module):
                del module.forward
        if getattr(self.model, _HANDLE_ATTR, None) is self:
            delattr(self.model, _HANDLE_ATTR)
        self._hooks.clear()
        self._removed = True

    def __enter__(self) -> SparsifyHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def sparsify(model: torch.nn.Module, policy: SparsityPolicy | str | Path = "amber", *,
             pattern: str | NMPattern | None = None, scoring: str | None = None,
             prefill_only: bool = True, spec: ModelSpec | None = None,
             outstanding: bool = False, calibration: Any = None, backend: str = "mask",
             outliers: AmberOutliers = "clamp") -> SparsifyHandle:
    """Prune the inputs of the linear layers ``policy`` selects, during prefill; return a handle.

    ``policy``: a SparsityPolicy, a preset ("amber", "all", "none") or a custom policy YAML path,
    resolved with ``resolve_policy`` for ``spec`` (default: the ModelSpec of ``model.config``).
    ``pattern``/``scoring`` override the policy's (default for presets: 8:16, amber).
    Linears outside ``layers.{i}`` decoder layers are selected by rules with ``modules`` globs on
    their module names; in a model without decoder layers (a plain tree of nn.Linear) also by a
    rule covering every kind and layer (the ``all`` preset). lm_head and routers are never pruned. ``prefill_only=False`` starts in mode "always".
    ``outstanding=True`` adds inverse SmoothQuant (alpha 0.10) and simulated W8A8 to the selected
    layers (see :mod:`ampersim.runtime.outstanding`); ``calibration``: iterable of input-id batches
    for its activation statistics (required then).
    ``backend``: "mask" (prune the input, dense GEMM) or "cuda" (2:4 on sparse tensor cores for the
    selected linears; needs pattern 2:4 and no fused experts or outstanding mode).
    ``outliers``: how the amber factor treats weights outside its 0.5/99.5 % quantiles, "clamp"
    (default) or "drop" (:func:`ampersim.sparsity.scoring.amber_factor`).
    """
    if backend not in SPARSIFY_BACKENDS:
        raise InvalidArgument(f"unknown sparsify backend '{backend}'; allowed: {', '.join(SPARSIFY_BACKENDS)}",
                              field="backend")
    if getattr(model, _HANDLE_ATTR, None) is not None:
        raise InvalidArgument("model is already sparsified; call remove() on its handle first")
    if outliers not in AMBER_OUTLIERS:
        raise InvalidArgument(f"outliers must be one of {', '.join(AMBER_OUTLIERS)}, got '{outliers}'",
                              field="outliers")
    targets = linear_targets(model)
    policy, spec = _resolve(model, policy, pattern, scoring, spec, targets)
    _check_module_globs(policy, targets)
    selected = _select(targets, policy)
    handle = SparsifyHandle(model=model, policy=policy, layers=[], coverage=None,
                            outstanding=outstanding, outliers=outliers,
                            _mode="prefill" if prefill_only else "always")
    for t in selected:
        if t.target.in_features % policy.pattern.m:
            raise InvalidArgument(
                f"layer {t.target.name} ({t.target.canonical}): in_features {t.target.in_features} is "
                f"not divisible by M={policy.pattern.m} of pattern {policy.pattern}"
            )
    if backend == "cuda":
        _check_cuda_backend(policy, selected, outstanding)
    if outstanding:
        _prepare_outstanding(model, selected, calibration)
    for t in selected:
        if t.target.kind != "experts":
            if policy.scoring == "amber":
                t.factor = static_factor(t.target.module.weight, "amber", outliers=outliers)
            if outstanding:
                _swap_quantized_weight(t)
    handle.coverage = coverage(spec, policy) if spec is not None else None
    handle.layers = [name for t in selected for name in _names(t)]
    setattr(model, _HANDLE_ATTR, handle)
    try:
        handle._hooks.append(model.register_forward_pre_hook(_root_pre_hook(handle), with_kwargs=True))
        handle._hooks.append(model.register_forward_hook(_root_post_hook(handle)))
        for t in selected:
            handle._targets.append(t)
            if t.target.kind == "experts":
                t.target.module.forward = types.MethodType(_experts_forward(handle, t), t.target.module)
            elif backend == "cuda":
                t.target.module.forward = types.MethodType(_sparse_forward(handle, t), t.target.module)
            else:
                handle._hooks.append(t.target.module.register_forward_pre_hook(_linear_pre_hook(handle, t)))
    except BaseException:
        handle.remove()
        raise
    return handle


def _resolve(model: Any, policy: SparsityPolicy | str | Path, pattern: Any, scoring: str | None,
             spec: ModelSpec | None, targets: list[LinearTarget]) -> tuple[SparsityPolicy, ModelSpec | None]:
    """The policy to apply and the ModelSpec (None for module trees without a supported HF config)."""
    spec_error: InvalidArgument | None = None
    if spec is None and hasattr(model, "config"):
        try:
            spec = model_spec(model, Path(str(getattr(model.config, "name_or_path", "") or "model")).name)
        except InvalidArgument as exc:  # e.g. an architecture ModelSpec does not describe
            spec_error = exc
    if isinstance(policy, SparsityPolicy):
        update = {}
        if pattern is not None:
            update["pattern"] = NMPattern.parse(pattern)
        if scoring is not None:
            update["scoring"] = scoring
        return (SparsityPolicy.model_validate({**policy.model_dump(), **update}) if update else policy), spec
    pattern = pattern if pattern is not None else "8:16"
    scoring = scoring if scoring is not None else "amber"
    if spec is None:
        if str(policy) not in ("all", "none"):
            if spec_error is not None:
                raise spec_error
            raise InvalidArgument(
                f"policy '{policy}' needs a ModelSpec: this model has no Hugging Face config; "
                "pass spec=..., or use 'all' or a SparsityPolicy with module globs"
            )
        rules = (PolicyRule(),) if str(policy) == "all" else ()
        return SparsityPolicy(name=str(policy), pattern=NMPattern.parse(pattern), scoring=scoring,
                              rules=rules), None
    mapped_layers = {t.layer for t in targets if t.layer is not None}
    if mapped_layers and max(mapped_layers) >= spec.num_layers:
        raise InvalidArgument(f"spec '{spec.name}' has {spec.num_layers} layers but the model has "
                              f"{max(mapped_layers) + 1}")
    return resolve_policy(policy, spec, pattern, scoring), spec


def _check_module_globs(policy: SparsityPolicy, targets: list[LinearTarget]) -> None:
    """A rule glob that matches no linear of the model is an error naming the real names."""
    names = [t.canonical for t in targets]
    for index, rule in enumerate(policy.rules):
        for glob in rule.modules or ():
            if not any(fnmatch.fnmatchcase(n, glob) for n in names):
                raise NotFound(
                    f"policy '{policy.name}' rules[{index}].modules: '{glob}' matches no linear of the model; "
                    f"its linears are {_describe_names(targets)}"
                )


def _describe_names(targets: list[LinearTarget]) -> str:
    layers = sorted({t.layer for t in targets if t.layer is not None})
    present = {t.kind for t in targets}
    if "experts" in present:
        present |= {"gate_proj", "up_proj", "down_proj"}
    kinds = [k for k in DECODER_LINEAR_KINDS if k in present]
    parts = [f"layers.{{{layers[0]}..{layers[-1]}}}.{{{','.join(kinds)}}}"] if layers and kinds else []
    others = [t.canonical for t in targets if t.layer is None]
    parts += others[:20] + ([f"... ({len(others) - 20} more)"] if len(others) > 20 else [])
    return ", ".join(parts) or "(none)"


def _select(targets: list[LinearTarget], policy: SparsityPolicy) -> list[_Target]:
    has_decoder = any(t.layer is not None for t in targets)
    out = []
    for t in targets:
        if t.kind in ("lm_head", "router"):
            continue
        if t.kind == "experts":
            kinds = tuple(k for k in ("gate_proj", "up_proj", "down_proj") if policy.is_sparse(t.layer, k))
            if kinds:
                out.append(_Target(t, sparse_kinds=kinds))
        elif t.kind is not None and t.layer is not None:
            if policy.is_sparse(t.layer, t.kind):
                out.append(_Target(t))
        elif _unmapped_selected(t.name, policy, globs_only=has_decoder):
            out.append(_Target(t))
    return out


def _unmapped_selected(name: str, policy: SparsityPolicy, *, globs_only: bool) -> bool:
    """Selection of a linear outside decoder layers: a rule's module glob naming it, or (in a model
    without decoder layers, e.g. a plain tree of nn.Linear) a rule covering every kind and layer."""
    for rule in reversed(policy.rules):
        if rule.modules is not None:
            if any(fnmatch.fnmatchcase(name, g) for g in rule.modules):
                return rule.sparse
        elif (not globs_only and rule.layers is None and not rule.skip_layers
              and set(rule.kinds) == set(DECODER_LINEAR_KINDS)):
            return rule.sparse
    return False


def _names(t: _Target) -> list[str]:
    if t.target.kind == "experts":
        return [f"layers.{t.target.layer}.{k}" for k in t.sparse_kinds]
    return [t.target.canonical]


def _tokens_per_sequence(args: tuple, kwargs: dict) -> int | None:
    import torch

    ids = kwargs.get("input_ids")
    embeds = kwargs.get("inputs_embeds")
    if ids is None and embeds is None:
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is None:
            return None
        ids, embeds = (first, None) if not first.is_floating_point() else (None, first)
    if ids is not None:
        return int(ids.shape[-1])
    return int(embeds.shape[-2]) if embeds.dim() >= 2 else 1


def _root_pre_hook(handle: SparsifyHandle):
    def hook(_module: Any, args: tuple, kwargs: dict) -> None:
        tokens = _tokens_per_sequence(args, kwargs)
        handle._step = None if tokens is None else ("prefill" if tokens > 1 else "decode")
    return hook


def _root_post_hook(handle: SparsifyHandle):
    def hook(_module: Any, _args: tuple, _output: Any) -> None:
        handle._step = None
    return hook


def _linear_pre_hook(handle: SparsifyHandle, t: _Target):
    pattern = handle.policy.pattern

    def hook(_module: Any, args: tuple) -> tuple | None:
        x = args[0]
        prune = handle.prunes(x)
        if t.smooth is None:
            return (prune_activation(x, pattern, t.factor), *args[1:]) if prune else None
        from ampersim.runtime.outstanding import fake_quant_rows

        x = x * t.smooth.to(x.dtype)
        if prune:
            x = prune_activation(x, pattern, t.factor)
        return (fake_quant_rows(x), *args[1:])
    return hook


def _check_cuda_backend(policy: SparsityPolicy, selected: list[_Target], outstanding: bool) -> None:
    if str(policy.pattern) != "2:4":
        raise InvalidArgument(f"backend 'cuda' runs 2:4 on sparse tensor cores; pattern {policy.pattern} is not "
                              "accelerated (use backend 'mask')", field="backend")
    if outstanding:
        raise InvalidArgument("backend 'cuda' does not simulate outstanding W8A8 (use backend 'mask', or "
                              "runtime.sparse_linear.Int8ActivationSparseLinear for real int8)", field="backend")
    experts = [t.target.name for t in selected if t.target.kind == "experts"]
    if experts:
        raise InvalidArgument(f"backend 'cuda' has no grouped 2:4 GEMM for fused experts ({experts[0]}); "
                              "use a policy that leaves experts dense, or backend 'mask'", field="backend")


def _sparse_forward(handle: SparsifyHandle, t: _Target):
    """Forward of a selected nn.Linear: prefill through the 2:4 sparse path, decode dense."""
    import torch

    from ampersim.runtime.sparse_linear import sparse_linear

    module = t.target.module
    original = type(module).forward
    factor = None if t.factor is None else torch.as_tensor(t.factor, device=module.weight.device,
                                                           dtype=torch.float32)

    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        if not handle.prunes(x):
            return original(self, x)
        return sparse_linear(x, self.weight, self.bias, pattern="2:4", factor=factor)
    return forward


def _experts_forward(handle: SparsifyHandle, t: _Target):
    """Forward for fused experts that prunes expert inputs (layout of transformers 5 Qwen3-MoE)."""
    import torch

    module = t.target.module
    original = type(module).forward
    if getattr(module, "is_concatenated", True) is not True or getattr(module, "is_transposed", False) \
            or getattr(module, "has_bias", False) or getattr(module, "has_gate", True) is not True:
        raise InvalidArgument(f"layer {t.target.name}: this fused-experts layout is not supported "
                              "(need concatenated [gate; up], not transposed, no bias)")
    pattern = handle.policy.pattern
    sparse = set(t.sparse_kinds)

    def forward(self: Any, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        if not handle.prunes(hidden_states):
            return original(self, hidden_states, top_k_index, top_k_weights)
        pruned = prune_activation(hidden_states, pattern, None)
        x_gate = pruned if "gate_proj" in sparse else hidden_states
        x_up = pruned if "up_proj" in sparse else hidden_states
        inter = self.gate_up_proj.shape[1] // 2
        out = torch.zeros_like(hidden_states)
        hit = torch.zeros(self.num_experts + 1, dtype=torch.bool, device=top_k_index.device)
        hit[top_k_index.flatten()] = True  # index num_experts: slot routed nowhere (skipped)
        hit = hit[:-1]
        for expert in hit.nonzero().flatten().tolist():
            token_idx, slot = torch.where(top_k_index == expert)
            w = self.gate_up_proj[expert]
            gate_up = torch.cat([torch.nn.functional.linear(x_gate[token_idx], w[:inter]),
                                 torch.nn.functional.linear(x_up[token_idx], w[inter:])], dim=-1)
            h = self._apply_gate(gate_up)
            if "down_proj" in sparse:
                h = prune_activation(h, pattern, None)
            y = torch.nn.functional.linear(h, self.down_proj[expert]) * top_k_weights[token_idx, slot, None]
            out.index_add_(0, token_idx, y.to(out.dtype))
        return out
    return forward


def _prepare_outstanding(model: Any, selected: list[_Target], calibration: Any) -> None:
    """Compute inverse-SmoothQuant multipliers for every selected linear from calibration data."""
    from ampersim.runtime.outstanding import calibrate_input_absmax, smoothing_scales

    if calibration is None:
        raise InvalidArgument("outstanding=True needs calibration= (batches of input ids) for activation maxima")
    experts = [t.target.name for t in selected if t.target.kind == "experts"]
    if experts:
        raise InvalidArgument(f"outstanding-sparse does not support fused experts ({experts[0]}); "
                              "use a policy that leaves experts dense")
    absmax = calibrate_input_absmax(model, {t.target.name: t.target.module for t in selected}, calibration)
    for t in selected:
        if t.target.name not in absmax:
            raise InvalidArgument(f"calibration never reached layer {t.target.name}")
        t.smooth = smoothing_scales(absmax[t.target.name], t.target.module.weight).to(t.target.module.weight.device)


def _swap_quantized_weight(t: _Target) -> None:
    """Replace the weight by the simulated INT8 per-output-channel Q(W / s); remove() restores it."""
    import torch

    from ampersim.runtime.outstanding import fake_quant_rows

    module = t.target.module
    t.original_weight = module.weight
    with torch.no_grad():
        w = fake_quant_rows(module.weight / t.smooth.to(module.weight.dtype))
    module.weight = torch.nn.Parameter(w, requires_grad=False)
