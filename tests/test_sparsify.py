"""ampersim.sparsify on small random models: selection, prefill/decode, exact removal, errors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import ampersim  # noqa: E402
from ampersim.core.errors import InvalidArgument, InvalidData, NotFound  # noqa: E402
from ampersim.core.patterns import NMPattern  # noqa: E402
from ampersim.core.vocab import DECODER_LINEAR_KINDS as KINDS  # noqa: E402
from ampersim.kernels.torch_eager import prune as eager_prune  # noqa: E402
from ampersim.runtime import sparsify as ti  # noqa: E402
from ampersim.runtime.sparsify import prune_activation  # noqa: E402
from ampersim.sparsity.coverage import coverage  # noqa: E402
from ampersim.sparsity.policy import PolicyRule, SparsityPolicy, resolve_policy  # noqa: E402


def tiny_llama(layers=3, hidden=64, inter=128):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=hidden, intermediate_size=inter,
                                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()


def ids(batch=2, tokens=12, seed=1):
    return torch.randint(0, 96, (batch, tokens), generator=torch.Generator().manual_seed(seed))


def logits(model, x):
    with torch.inference_mode():
        return model(input_ids=x).logits


def capture_inputs(model, names):
    """Register pre-hooks recording each named module's input (registered before/after sparsify)."""
    seen = {n: [] for n in names}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_pre_hook(lambda _m, a, n=n: seen[n].append(a[0].detach().clone()))
             for n in names]
    return seen, hooks


def same(a, b):
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def test_cpu_kernels_match_torch_fallback():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 64, generator=g)
    x[0, 0, :16] = 1.0  # ties: lower index wins
    x[1, 1, 3] = float("nan")  # NaN ranks highest
    factor = torch.rand(64, generator=g) + 1
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for pattern in ("2:4", "4:8", "8:16", "16:32"):
            p = NMPattern.parse(pattern)
            for f in (None, factor):
                xd = x.to(dtype)
                assert same(prune_activation(xd, p, f), eager_prune(xd, p, factor=f)), (dtype, pattern)


def test_prefill_pruned_exactly_and_removal_bit_identical():
    model = tiny_llama()
    x = ids()
    before = logits(model, x)
    name = "model.layers.1.mlp.down_proj"
    raw, raw_hooks = capture_inputs(model, [name])  # registered first: sees the unpruned input
    handle = ampersim.sparsify(model, "all", pattern="2:4", scoring="amber")
    pruned, pruned_hooks = capture_inputs(model, [name])  # registered after: sees what the layer gets
    sparse = logits(model, x)
    assert not torch.equal(sparse, before)
    factor = handle._targets[[t.target.name for t in handle._targets].index(name)].factor
    assert torch.equal(pruned[name][0], eager_prune(raw[name][0], NMPattern.parse("2:4"), factor=factor))
    assert torch.equal(raw[name][0], raw[name][0].clone())  # the caller's tensor was not modified
    assert len(handle.layers) == 3 * 7 and handle.layers[0] == "layers.0.q_proj"
    for h in raw_hooks + pruned_hooks:
        h.remove()
    handle.remove()
    assert torch.equal(logits(model, x), before)
    assert not hasattr(model, "_ampersim_sparsify_handle")
    handle.remove()  # idempotent


def test_decode_steps_stay_dense_and_modes():
    model = tiny_llama()
    handle = ampersim.sparsify(model, "all", pattern="2:4", scoring="magnitude")
    seen, hooks = capture_inputs(model, ["model.layers.0.mlp.gate_proj"])  # after sparsify: pruned input
    prompt = ids(batch=2, tokens=6)
    with torch.inference_mode():
        model.generate(prompt, max_new_tokens=3, do_sample=False, pad_token_id=0)
    calls = seen["model.layers.0.mlp.gate_proj"]
    assert [c.shape[1] for c in calls] == [6, 1, 1]
    zeros = [float((c == 0).float().mean()) for c in calls]
    assert zeros[0] == pytest.approx(0.5) and zeros[1] == 0 and zeros[2] == 0
    calls.clear()
    handle.mode = "always"
    with torch.inference_mode():
        model.generate(prompt, max_new_tokens=2, do_sample=False, pad_token_id=0)
    assert all(float((c == 0).float().mean()) == pytest.approx(0.5) for c in calls)
    calls.clear()
    with handle.using("never"):
        assert handle.mode == "never"
        with torch.inference_mode():
            model(input_ids=prompt)
    assert handle.mode == "always" and float((calls[0] == 0).float().mean()) == 0
    with pytest.raises(InvalidArgument, match="invalid sparsify mode 'sometimes'"):
        handle.mode = "sometimes"
    for h in hooks:
        h.remove()
    handle.remove()


def test_amber_policy_selection_and_coverage_match_simulator():
    model = tiny_llama(layers=4)
    spec = ti.model_spec(model, "tiny-llama")
    handle = ampersim.sparsify(model, "amber", pattern="8:16", spec=spec)
    policy = resolve_policy("amber", spec, "8:16", "amber")
    assert handle.policy == policy
    expected = [f"layers.{i}.{k}" for i in range(4) for k in KINDS if policy.is_sparse(i, k)]
    assert handle.layers == expected
    assert handle.coverage == coverage(spec, policy)
    assert "no amber skip list" in handle.policy.note
    assert all(t.factor is not None and float(t.factor.min()) == pytest.approx(1.0) for t in handle._targets)
    handle.remove()


def test_plain_module_tree():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    x = torch.randn(4, 10, 32)
    x_copy = x.clone()
    dense = model(x).detach()
    p = NMPattern.parse("4:8")
    with ampersim.sparsify(model, "all", pattern="4:8", scoring="magnitude") as handle:
        assert handle.layers == ["0", "2"] and handle.coverage is None
        out = model(x)
        assert torch.equal(x, x_copy)  # the caller's activations are untouched
        with handle.using("never"):
            expected = model[2](eager_prune(torch.relu(model[0](eager_prune(x, p))), p))
        assert torch.equal(out, expected)
    assert torch.equal(model(x), dense)
    only_second = SparsityPolicy(name="globs", pattern="4:8", scoring="magnitude",
                                 rules=(PolicyRule(modules=("2",)),))
    with ampersim.sparsify(model, only_second) as handle:
        assert handle.layers == ["2"]
        out = model(x)
        with handle.using("never"):
            expected = model[2](eager_prune(torch.relu(model[0](x)), p))
        assert torch.equal(out, expected)


def test_bad_inputs(tmp_path):
    model = tiny_llama(layers=3, hidden=64, inter=120)  # down_proj in_features 120: not a multiple of 16
    with pytest.raises(InvalidArgument, match=r"multiple of 16; layers\.0\.down_proj of \S+ has 120") as info:
        ampersim.sparsify(model, "all", pattern="8:16")  # the pattern check every command shares
    assert info.value.field == "pattern"
    assert not hasattr(model, "_ampersim_sparsify_handle")
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - kinds: [q_proj]\n    layers: [7]\n")
    with pytest.raises(InvalidData, match=r"layer 7 is out of range .*allowed 0\.\.2"):
        ampersim.sparsify(model, policy, pattern="2:4")
    policy.write_text("rules:\n  - modules: ['layers.9.q_proj']\n")
    with pytest.raises(NotFound, match=r"'layers\.9\.q_proj' matches no linear.*layers\.\{0\.\.2\}\.\{q_proj,k_proj"):
        ampersim.sparsify(model, policy, pattern="2:4")
    with pytest.raises(NotFound, match="neither a preset"):
        ampersim.sparsify(model, tmp_path / "missing.yaml")
    handle = ampersim.sparsify(model, "amber", pattern="2:4")
    with pytest.raises(InvalidArgument, match="already sparsified"):
        ampersim.sparsify(model, "all", pattern="2:4")
    handle.remove()
    with pytest.raises(InvalidArgument, match="needs a ModelSpec"):
        ampersim.sparsify(torch.nn.Sequential(torch.nn.Linear(8, 8)), "amber")
    with pytest.raises(InvalidArgument, match="outstanding=True needs calibration"):
        ampersim.sparsify(model, "amber", pattern="2:4", outstanding=True)


def test_outstanding_sparse_w8a8():
    model = tiny_llama()
    x = ids()
    before = logits(model, x)
    name = "model.layers.0.self_attn.q_proj"
    original = dict(model.named_modules())[name].weight
    handle = ampersim.sparsify(model, "amber", pattern="2:4", outstanding=True, calibration=[ids(seed=5)])
    seen, hooks = capture_inputs(model, [name])
    out = logits(model, x)
    layer = dict(model.named_modules())[name]
    assert layer.weight is not original
    rows = seen[name][0].reshape(-1, 64)
    steps = rows.abs().amax(dim=1, keepdim=True) / 127  # per-token INT8 grid
    assert torch.allclose(rows / steps, torch.round(rows / steps), atol=1e-3)
    assert float((rows == 0).float().mean()) >= 0.5
    wsteps = layer.weight.abs().amax(dim=1, keepdim=True) / 127  # per-output-channel INT8 grid
    assert torch.allclose(layer.weight / wsteps, torch.round(layer.weight / wsteps), atol=1e-3)
    assert torch.isfinite(out).all()
    for h in hooks:
        h.remove()
    handle.remove()
    assert dict(model.named_modules())[name].weight is original
    assert torch.equal(logits(model, x), before)


def tiny_moe():
    torch.manual_seed(0)
    config = transformers.Qwen3MoeConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_experts=4,
        num_experts_per_tok=2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=64)
    return transformers.Qwen3MoeForCausalLM(config).eval()


def test_moe_experts(monkeypatch):
    model = tiny_moe()
    x = ids()
    before = logits(model, x)
    spec = ti.model_spec(model, "tiny-moe")
    calls = []
    real = ti.prune_activation

    def identity(t, pattern, factor):
        calls.append(tuple(t.shape))
        return t

    monkeypatch.setattr(ti, "prune_activation", identity)
    handle = ampersim.sparsify(model, "all", pattern="8:16", spec=spec)
    assert handle.layers[:7] == [f"layers.0.{k}" for k in ("q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj")]
    assert handle.coverage == coverage(spec, handle.policy)
    # With pruning replaced by identity, the experts forward reproduces transformers' output.
    torch.testing.assert_close(logits(model, x), before, rtol=1e-5, atol=1e-5)
    assert (24, 64) in calls  # gate/up input: all 2 x 12 tokens, pruned once
    assert any(c[1] == 32 and c[0] < 24 for c in calls)  # down_proj inputs: per expert, routed tokens
    with handle.using("never"):
        assert torch.equal(logits(model, x), before)
    monkeypatch.setattr(ti, "prune_activation", real)
    assert not torch.allclose(logits(model, x), before)
    handle.remove()
    assert torch.equal(logits(model, x), before)
    assert "forward" not in vars(model.model.layers[0].mlp.experts)


def test_lazy_import_and_amber_factor_is_per_layer():
    import subprocess
    import sys

    code = "import sys, ampersim; ampersim.__getattr__; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    model = tiny_llama()
    with ampersim.sparsify(model, "all", pattern="2:4", scoring="amber") as handle:
        factors = {t.target.name: t.factor for t in handle._targets}
    w = model.model.layers[0].self_attn.q_proj.weight
    from ampersim.sparsity.scoring import amber_factor
    np.testing.assert_array_equal(factors["model.layers.0.self_attn.q_proj"], amber_factor(w))


def test_unsupported_config_works_with_all_but_not_amber():
    import types

    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))
    model.config = types.SimpleNamespace(model_type="my-mlp", name_or_path="mlp")
    with ampersim.sparsify(model, "all", pattern="2:4") as handle:
        assert handle.layers == ["0", "1"] and handle.coverage is None
    with pytest.raises(InvalidArgument, match="unsupported model_type 'my-mlp'"):
        ampersim.sparsify(model, "amber")


def test_linears_outside_the_decoder_need_a_glob():
    model = tiny_llama(layers=2)
    model.vision_tower = torch.nn.Module()  # e.g. a multimodal model's image encoder
    model.vision_tower.layers = torch.nn.ModuleList([torch.nn.Module()])
    model.vision_tower.layers[0].q_proj = torch.nn.Linear(16, 16)
    from ampersim.models.hf_names import linear_targets

    vision = next(t for t in linear_targets(model) if t.name.startswith("vision_tower"))
    assert vision.layer is None and vision.canonical == "vision_tower.layers.0.q_proj"
    with ampersim.sparsify(model, "all", pattern="2:4") as handle:
        assert "vision_tower.layers.0.q_proj" not in handle.layers and len(handle.layers) == 14
    spec = ti.model_spec(model, "tiny")
    policy = resolve_policy("all", spec, "2:4", "amber")
    policy = SparsityPolicy.model_validate({**policy.model_dump(), "rules": [
        *[r.model_dump() for r in policy.rules], {"modules": ["vision_tower.*"]}]})
    with ampersim.sparsify(model, policy) as handle:
        assert handle.layers[-1] == "vision_tower.layers.0.q_proj" and len(handle.layers) == 15
