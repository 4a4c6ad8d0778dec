"""Map the modules of a Hugging Face (or any) module tree to canonical linear names.

Canonical names are ``layers.{i}.{kind}`` with kind in q_proj, k_proj, v_proj, o_proj, gate_proj,
up_proj, down_proj, router, plus ``lm_head`` — the names the simulator's ModelSpec and the
SparsityPolicy use. The decoder layer index comes from the first ``layers.<i>.`` in the module path
below the model's text decoder (``get_decoder()`` of Hugging Face models; the whole tree otherwise):
``model.layers.3.self_attn.q_proj`` -> ``layers.3.q_proj``; the kind from the module's own name.
Modules that match neither keep their qualified module name as canonical name (layer/kind None),
so a plain tree of ``nn.Linear`` can still be targeted by module globs.

Routed experts appear in two layouts: per-expert ``nn.Linear`` modules
(``mlp.experts.5.gate_proj`` -> kind gate_proj, expert) or one fused module holding 3-D
``gate_up_proj`` [E, 2I, H] and ``down_proj`` [E, H, I] parameters (transformers 5 Qwen3-MoE,
Qwen2-MoE, Mixtral), reported once with kind ``experts``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ampersim.core.vocab import DECODER_LINEAR_KINDS

if TYPE_CHECKING:
    import torch

    from ampersim.models.spec import ModelSpec

_ROUTER_NAMES = {"gate", "router", "shared_expert_gate"}  # inside an MoE block
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_EXPERT_RE = re.compile(r"\.experts\.\d+\.")


@dataclass(frozen=True)
class LinearTarget:
    """One prunable linear module (or fused experts module) of a model."""

    name: str  # qualified module name
    module: Any  # torch.nn.Module
    layer: int | None
    kind: str | None  # a DECODER_LINEAR_KINDS entry, "router", "lm_head", "experts" (fused), or None
    expert: bool = False  # a routed expert (its inputs are per expert)

    @property
    def canonical(self) -> str:
        if self.kind == "lm_head":
            return "lm_head"
        if self.layer is None or self.kind is None:
            return self.name
        return f"layers.{self.layer}.{self.kind}"

    @property
    def in_features(self) -> int:
        if self.kind == "experts":
            return int(self.module.gate_up_proj.shape[-1])
        return int(self.module.in_features)


def is_fused_experts(module: Any) -> bool:
    """True for a fused experts module with 3-D gate_up_proj/down_proj parameters."""
    gate_up, down = getattr(module, "gate_up_proj", None), getattr(module, "down_proj", None)
    return getattr(gate_up, "ndim", 0) == 3 and getattr(down, "ndim", 0) == 3


def linear_targets(model: torch.nn.Module) -> list[LinearTarget]:
    """Every nn.Linear and fused experts module of ``model``, in module order, with layer/kind."""
    import torch

    prefix = _decoder_prefix(model)
    targets = []
    for name, module in model.named_modules():
        fused = is_fused_experts(module)
        if not fused and not isinstance(module, torch.nn.Linear):
            continue
        leaf = name.rsplit(".", 1)[-1]
        in_decoder = prefix is None or name.startswith(prefix)
        match = _LAYER_RE.search(f".{name[len(prefix or ''):]}") if in_decoder else None
        layer = int(match.group(1)) if match else None
        if fused:
            kind = "experts"
        elif leaf == "lm_head":
            kind, layer = "lm_head", None
        elif leaf in DECODER_LINEAR_KINDS:
            kind = leaf
        elif leaf in _ROUTER_NAMES and layer is not None:
            kind = "router"
        else:
            kind = None
        expert = fused or bool(_EXPERT_RE.search(f".{name}."))
        targets.append(LinearTarget(name, module, layer if kind else None, kind, expert))
    return targets


def _decoder_prefix(model: torch.nn.Module) -> str | None:
    """Qualified-name prefix of a Hugging Face model's text decoder ("model." for LlamaForCausalLM,
    "model.language_model." for multimodal Gemma 3), so that e.g. a vision tower's
    ``encoder.layers.N`` are not taken for decoder layers; None when there is no decoder."""
    get_decoder = getattr(model, "get_decoder", None)
    if get_decoder is None:
        return None
    try:
        decoder = get_decoder()
    except (AttributeError, NotImplementedError):
        return None
    for name, module in model.named_modules():
        if module is decoder:
            return f"{name}." if name else ""
    return None


def model_spec(model: torch.nn.Module, name: str) -> ModelSpec:
    """ModelSpec of a loaded Hugging Face model, from its config (same type the simulator uses)."""
    from ampersim.models.registry import spec_from_hf_config

    return spec_from_hf_config(model.config, _spec_name(name))


def _spec_name(name: str) -> str:
    """A ModelSpec-valid name (lower case, [a-z0-9.-]) from a model or folder name."""
    cleaned = re.sub(r"[^a-z0-9.\-]+", "-", name.lower()).strip("-.")
    return cleaned if cleaned and cleaned[0].isalnum() else f"m{cleaned}"
