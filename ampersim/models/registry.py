"""Shipped model specs (workloads/models/*.yaml) and ModelSpec from a Hugging Face config.

``spec_from_hf_config`` reads a config.json dict or a transformers ``PretrainedConfig`` (by
attribute; transformers is not imported) and maps its field names onto ModelSpec.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ampersim.core.catalog import Catalog
from ampersim.core.errors import InvalidArgument
from ampersim.core.resources import data_dir
from ampersim.models.spec import ModelSpec, MoESpec

# HF model_type -> ModelSpec.family ("gemma3" is the multimodal wrapper; its text_config is read).
FAMILIES: dict[str, str] = {
    "llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3",
    "qwen3_moe": "qwen3_moe", "gemma3_text": "gemma3", "gemma3": "gemma3",
}
_QK_NORM_FAMILIES = ("qwen3", "qwen3_moe", "gemma3")
# transformers' config-class default for tie_word_embeddings when config.json omits it.
_TIED_BY_DEFAULT = ("gemma3",)
# transformers' config-class defaults for (rope_theta, rope_local_base_freq) when config.json omits them.
_ROPE_DEFAULTS: dict[str, tuple[float, float | None]] = {"gemma3": (1_000_000.0, 10_000.0)}
_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}


@lru_cache(maxsize=1)
def _catalog() -> Catalog[ModelSpec]:
    return Catalog("model", data_dir("workloads") / "models", ModelSpec)


def load_model_spec(name_or_path: str | Path) -> ModelSpec:
    """Spec by name or alias, or from a YAML file path; NotFound lists close names."""
    return _catalog().load(name_or_path)


def list_model_specs() -> list[ModelSpec]:
    """All shipped model specs, sorted by name."""
    return _catalog().all()


def model_names() -> list[str]:
    """Names and aliases of the shipped model specs."""
    return _catalog().names()


def _getter(config: Mapping[str, Any] | object):
    """``get(key, default=None)`` over a dict or an attribute object."""
    if isinstance(config, Mapping):
        return lambda key, default=None: config.get(key, default)
    return lambda key, default=None: getattr(config, key, default)


def _required_int(get, key: str, name: str) -> int:
    value = get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"config of '{name}': field '{key}' must be a number; got {value!r}")
    return int(value)


def _sliding(get, family: str, name: str) -> tuple[int | None, int | None]:
    """(sliding_window, global_every): None, None when every layer attends over the whole prefix."""
    window = get("sliding_window")
    if not window or get("use_sliding_window") is False:
        return None, None
    layer_types = get("layer_types")
    if layer_types:
        full = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
        if len(full) == len(layer_types):
            return None, None
        every = full[0] + 1 if full else None
        if every is not None and full != list(range(every - 1, len(layer_types), every)):
            raise InvalidArgument(f"config of '{name}': field 'layer_types': only 'every k-th layer is "
                                  "full attention, the rest sliding' is supported")
        return int(window), every
    every = get("sliding_window_pattern") or get("_sliding_window_pattern")
    if family == "gemma3" and every is None:
        raise InvalidArgument(f"config of '{name}': gemma3 needs 'layer_types' or 'sliding_window_pattern'")
    return int(window), every


def _rope(get, family: str) -> dict[str, float | None]:
    """rope_theta and rope_local_theta from config.json's rope_theta / rope_local_base_freq, or from
    the rope_parameters of a transformers >= 5 config (keyed by layer type for Gemma 3)."""
    theta, local = get("rope_theta"), get("rope_local_base_freq")
    params = get("rope_parameters")
    if theta is None and isinstance(params, Mapping):
        by_type = "full_attention" in params
        theta = (params["full_attention"] if by_type else params).get("rope_theta")
        local = params.get("sliding_attention", {}).get("rope_theta") if by_type else None
    default_theta, default_local = _ROPE_DEFAULTS.get(family, (None, None))
    theta = theta if theta is not None else default_theta
    local = local if local is not None else default_local
    return {"rope_local_theta": None if local is None else float(local),
            **({} if theta is None else {"rope_theta": float(theta)})}


def _moe(get, name: str) -> MoESpec | None:
    if not get("num_experts"):
        return None
    if get("mlp_only_layers") or (get("decoder_sparse_step") or 1) != 1:
        raise InvalidArgument(
            f"config of '{name}': fields 'mlp_only_layers'/'decoder_sparse_step': "
            "mixed dense and MoE layers are not supported"
        )
    return MoESpec(
        num_experts=_required_int(get, "num_experts", name),
        experts_per_token=_required_int(get, "num_experts_per_tok", name),
        expert_intermediate_size=_required_int(get, "moe_intermediate_size", name),
        shared_expert_intermediate_size=int(get("shared_expert_intermediate_size") or 0),
    )


def spec_from_hf_config(config: Mapping[str, Any] | object, name: str) -> ModelSpec:
    """ModelSpec from a Hugging Face config (dict or PretrainedConfig-like object) named ``name``.

    Unknown ``model_type`` -> InvalidArgument listing the supported ones; missing or invalid
    fields -> InvalidArgument naming the field.
    """
    get = _getter(config)
    model_type = str(get("model_type", ""))
    if model_type not in FAMILIES:
        raise InvalidArgument(
            f"unsupported model_type '{model_type}' in config of '{name}'; supported: {', '.join(FAMILIES)}"
        )
    family = FAMILIES[model_type]
    if model_type == "gemma3" and get("text_config") is not None:
        get = _getter(get("text_config"))
    act_key = "hidden_activation" if get("hidden_activation") else "hidden_act"
    activation = get(act_key) or "silu"
    if activation not in _ACTIVATIONS:
        raise InvalidArgument(f"config of '{name}': field '{act_key}': '{activation}' not supported; "
                              f"supported: {', '.join(_ACTIVATIONS)}")
    hidden, heads = _required_int(get, "hidden_size", name), _required_int(get, "num_attention_heads", name)
    window, every = _sliding(get, family, name)
    try:
        return ModelSpec(
            name=name,
            display_name=name,
            family=family,
            source=f"config: {get('_name_or_path') or get('name_or_path') or 'Hugging Face config'}",
            num_layers=_required_int(get, "num_hidden_layers", name),
            hidden_size=hidden,
            intermediate_size=_required_int(get, "intermediate_size", name),
            num_heads=heads,
            num_kv_heads=int(get("num_key_value_heads") or heads),
            head_dim=int(get("head_dim") or hidden // heads),
            vocab_size=_required_int(get, "vocab_size", name),
            max_position_embeddings=get("max_position_embeddings"),
            tie_embeddings=bool(get("tie_word_embeddings", family in _TIED_BY_DEFAULT)),
            mlp_activation=_ACTIVATIONS[activation],
            qk_norm=family in _QK_NORM_FAMILIES,
            sliding_window=window,
            global_every=every,
            moe=_moe(get, name),
            **_rope(get, family),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise InvalidArgument(f"config of '{name}': field '{field}': {err['msg']}") from None
