"""Sparsity policies (amber / all / none / custom YAML); their coverage is tested in test_coverage.py."""
import pytest

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.core.vocab import DECODER_LINEAR_KINDS
from ampersim.models.registry import load_model_spec
from ampersim.sparsity import policy as policy_mod
from ampersim.sparsity.coverage import coverage
from ampersim.sparsity.policy import load_amber_skip_list, resolve_policy

LLAMA_SKIP = [19, 21, 28, 30, 31]


@pytest.fixture(scope="module")
def llama():
    return load_model_spec("llama-3.1-8b")


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
