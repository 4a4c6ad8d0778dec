"""Sparsity policies (amber / all / none / custom YAML) and the one coverage definition."""
import pytest

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.models.registry import load_model_spec
from ampersim.core.vocab import DECODER_LINEAR_KINDS
from ampersim.sparsity import policy as policy_mod
from ampersim.sparsity.policy import coverage, load_amber_skip_list, resolve_policy

LLAMA_SKIP = [19, 21, 28, 30, 31]


@pytest.fixture(scope="module")
def llama():
    return load_model_spec("llama-3.1-8b")


@pytest.fixture(scope="module")
def qwen_moe():
    return load_model_spec("qwen3-30b-a3b")


def test_amber_llama_coverage_matches_hand_computation(llama):
    # Llama-3.1-8B: h=4096, q=4096, kv=1024, ffn=14336, 32 layers.
    q = 4096 * 4096
    kv = 4096 * 1024
    ffn = 4096 * 14336
    per_layer = q + 2 * kv + q + 3 * ffn  # q, k, v, o, gate, up, down = 218,103,808
    sparse = 27 * (q + ffn + ffn) + 5 * ffn  # q+gate+down in 27 layers, down only in the 5 skip layers
    cov = coverage(llama, resolve_policy("amber", llama))
    assert per_layer == 218_103_808
    assert cov.total_macs_per_token == 32 * per_layer
    assert cov.sparse_macs_per_token == sparse
    assert cov.fraction == pytest.approx(3_917_479_936 / 6_979_321_856, rel=1e-12)
    assert cov.fraction == pytest.approx(0.56130, abs=5e-6)  # the paper: "more than 55 %"
    assert cov.by_kind["q_proj"] == pytest.approx(27 / 32)
    assert cov.by_kind["gate_proj"] == pytest.approx(27 / 32)
    assert cov.by_kind["down_proj"] == 1.0
    assert cov.by_kind["k_proj"] == cov.by_kind["up_proj"] == cov.by_kind["o_proj"] == 0.0
    assert "layers.19.q_proj" not in cov.sparse_layers and "layers.19.down_proj" in cov.sparse_layers
    assert len(cov.sparse_layers) == 27 * 3 + 5


def test_amber_rules_and_skip_lists(llama):
    pol = resolve_policy("amber", llama)
    assert pol.dense_layers(llama, "q_proj") == LLAMA_SKIP
    assert pol.dense_layers(llama, "gate_proj") == LLAMA_SKIP
    assert pol.dense_layers(llama, "down_proj") == []
    for kind in ("k_proj", "v_proj", "o_proj", "up_proj"):
        assert pol.dense_layers(llama, kind) == list(range(32))
    assert str(pol.pattern) == "8:16" and pol.scoring == "amber" and pol.prefill_only
    assert "arxiv.org/abs/2508.02128" in pol.note


@pytest.mark.parametrize("model,skip", [("llama-3.1-8b", LLAMA_SKIP), ("qwen2-7b", [0, 6, 23, 26, 27]),
                                        ("qwen3-30b-a3b", [41, 46, 47])])
def test_shipped_skip_lists_are_the_papers(model, skip):
    record, path = load_amber_skip_list(model)
    assert list(record.skip_layers) == skip
    assert path.name == f"{model}.yaml"


def test_moe_coverage_weights_experts_by_top_k(qwen_moe):
    h, q, kv, e = 2048, 32 * 128, 4 * 128, 768
    attn = h * q + 2 * h * kv + q * h
    router = h * 128
    experts = 8 * 3 * h * e  # 8 active experts, gate+up+down
    total = 48 * (attn + router + experts)
    sparse = 45 * (h * q + 8 * 2 * h * e) + 3 * (8 * h * e)  # q+gate+down, skip layers: down only
    cov = coverage(qwen_moe, resolve_policy("amber", qwen_moe))
    assert cov.total_macs_per_token == total
    assert cov.sparse_macs_per_token == sparse
    assert cov.by_kind["router"] == 0.0
    all_cov = coverage(qwen_moe, resolve_policy("all", qwen_moe))
    assert all_cov.fraction == pytest.approx(1 - 48 * router / total)


def test_all_and_none(llama):
    all_pol = resolve_policy("all", llama, "2:4", "magnitude")
    assert coverage(llama, all_pol).fraction == 1.0
    assert not all_pol.is_sparse(3, "router") and not all_pol.is_sparse(3, "lm_head")
    assert all(all_pol.is_sparse(i, k) for i in (0, 31) for k in DECODER_LINEAR_KINDS)
    none = resolve_policy("none", llama)
    assert coverage(llama, none).fraction == 0.0 and coverage(llama, none).sparse_layers == []


def test_amber_without_skip_list_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(policy_mod, "amber_skip_dir", lambda: tmp_path)  # no recorded skip lists
    spec = load_model_spec("smollm2-135m")
    pol = resolve_policy("amber", spec)
    assert "no amber skip list" in pol.note
    # q + gate + down of (q, k, v, o, gate, up, down) = (576*576 + 2*576*1536) / (2*576*576 + 2*576*192 + 3*576*1536)
    assert coverage(spec, pol).fraction == pytest.approx(0.59375)


def test_custom_policy_rules_override_in_order(tmp_path, llama):
    path = tmp_path / "keep-ends.yaml"
    path.write_text(
        "description: q/gate/down except the first and last layer; no down in layers 10-19\n"
        "rules:\n"
        "  - kinds: [q_proj, gate_proj, down_proj]\n"
        "    skip_layers: [0, 31]\n"
        "  - modules: ['layers.1?.down_proj']\n"
        "    sparse: false\n"
        "  - layers: [5]\n"
        "    kinds: [up_proj]\n"
    )
    pol = resolve_policy(path, llama, "2:4")
    assert pol.name == "keep-ends"
    assert not pol.is_sparse(0, "q_proj") and pol.is_sparse(1, "q_proj") and not pol.is_sparse(31, "down_proj")
    assert not pol.is_sparse(12, "down_proj") and pol.is_sparse(12, "gate_proj") and pol.is_sparse(20, "down_proj")
    assert pol.is_sparse(5, "up_proj") and not pol.is_sparse(6, "up_proj")
    cov = coverage(llama, pol)
    q, ffn = 4096 * 4096, 4096 * 14336
    assert cov.sparse_macs_per_token == 30 * (q + ffn) + 20 * ffn + ffn


def test_shipped_example_policy_resolves(llama):
    from ampersim.core.resources import data_dir

    pol = resolve_policy(data_dir("workloads") / "policies" / "example-ffn-only.yaml", llama)
    assert 0 < coverage(llama, pol).fraction < 1


@pytest.mark.parametrize("body,match", [
    ("rules:\n  - kinds: [q_proj, lm_head]\n", r"bad.yaml:2: field 'rules.0.kinds.1'.*'q_proj'"),
    ("rules:\n  - kinds: [router]\n", r"field 'rules.0.kinds.0'.*'down_proj'"),
    ("rules:\n  - layers: [3, 40]\n", r"bad.yaml: rules\[0\].layers: layer 40 is out of range for llama-3.1-8b \(allowed 0..31\)"),
    ("rules:\n  - skip_layers: [-1]\n", r"rules\[0\].skip_layers: layer -1 is out of range"),
    ("rules:\n  - kinds: q_proj\n    colour: red\n", r"bad.yaml:\d+: field 'rules.0"),
    ("rules: [\n", r"bad.yaml:\d+: malformed YAML"),
    ("pattern: '2:4'\nrules: []\n", r"field 'pattern'"),
])
def test_custom_policy_errors_name_file_and_field(tmp_path, llama, body, match):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(InvalidData, match=match):
        resolve_policy(path, llama)


def test_policy_argument_errors(llama, tmp_path):
    with pytest.raises(NotFound, match="neither a preset"):
        resolve_policy("amberr", llama)
    with pytest.raises(InvalidArgument, match="unknown scoring 'wanda'"):
        resolve_policy("amber", llama, scoring="wanda")
    with pytest.raises(InvalidArgument, match="invalid N:M pattern '3:2'"):
        resolve_policy("amber", llama, "3:2")


def test_skip_list_file_checks(tmp_path, llama, monkeypatch):
    (tmp_path / "llama-3.1-8b.yaml").write_text("model: llama-3.1-8b\nskip_layers: [2, 32]\nsource: 'measured: x.json'\n")
    (tmp_path / "other.yaml").write_text("model: qwen2-7b\nskip_layers: []\nsource: 'measured: x.json'\n")
    (tmp_path / "nosource.yaml").write_text("model: nosource\nskip_layers: []\nsource: somewhere\n")
    with pytest.raises(InvalidData, match="does not match the file name 'other'"):
        load_amber_skip_list("other", tmp_path)
    with pytest.raises(InvalidData, match="nosource.yaml:3: field 'source'"):
        load_amber_skip_list("nosource", tmp_path)
    monkeypatch.setattr(policy_mod, "amber_skip_dir", lambda: tmp_path)
    with pytest.raises(InvalidData, match=r"llama-3.1-8b.yaml: skip_layers: layer 32 is out of range"):
        resolve_policy("amber", llama)
