"""Coverage: the one definition (router out of the total, as in the Amber paper) and its router-included option."""
import pytest

from ampersim.cli import main
from ampersim.models.registry import load_model_spec
from ampersim.sparsity.coverage import ROUTER_EXCLUDED, ROUTER_INCLUDED, coverage
from ampersim.sparsity.policy import resolve_policy


@pytest.fixture(scope="module")
def llama():
    return load_model_spec("llama-3.1-8b")


@pytest.fixture(scope="module")
def qwen_moe():
    return load_model_spec("qwen3-30b-a3b")


@pytest.mark.parametrize("model,paper_pct", [("llama-3.1-8b", 56.13), ("qwen2-7b", 57.59), ("qwen3-30b-a3b", 56.94)])
def test_amber_coverage_reproduces_the_paper(model, paper_pct):
    # the shares of linear MACs the Amber paper (arXiv 2508.02128) sparsifies with its skip lists (issue 16)
    spec = load_model_spec(model)
    assert 100 * coverage(spec, resolve_policy("amber", spec)).fraction == pytest.approx(paper_pct, abs=0.005)


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
    assert cov.by_kind["q_proj"] == pytest.approx(27 / 32)
    assert cov.by_kind["gate_proj"] == pytest.approx(27 / 32)
    assert cov.by_kind["down_proj"] == 1.0
    assert cov.by_kind["k_proj"] == cov.by_kind["up_proj"] == cov.by_kind["o_proj"] == 0.0
    assert "layers.19.q_proj" not in cov.sparse_layers and "layers.19.down_proj" in cov.sparse_layers
    assert len(cov.sparse_layers) == 27 * 3 + 5
    q_kind = next(k for k in cov.kinds if k.kind == "q_proj")
    assert q_kind.dense_layers == (19, 21, 28, 30, 31) and len(q_kind.sparse_layers) == 27
    assert q_kind.macs_per_token == 32 * q and q_kind.sparse_macs_per_token == 27 * q
    # a dense model has no router: both definitions agree
    assert coverage(llama, resolve_policy("amber", llama), include_router=True).fraction == cov.fraction


def test_moe_coverage_weights_experts_by_top_k_and_leaves_the_router_out(qwen_moe):
    h, q, kv, e = 2048, 32 * 128, 4 * 128, 768
    attn = h * q + 2 * h * kv + q * h
    router = h * 128
    experts = 8 * 3 * h * e  # 8 active experts, gate+up+down
    sparse = 45 * (h * q + 8 * 2 * h * e) + 3 * (8 * h * e)  # q+gate+down, skip layers: down only
    paper = coverage(qwen_moe, resolve_policy("amber", qwen_moe))
    assert paper.total_macs_per_token == 48 * (attn + experts)
    assert paper.sparse_macs_per_token == sparse
    assert paper.router_macs_per_token == 48 * router and not paper.router_included
    assert "router" not in paper.by_kind and paper.definition == ROUTER_EXCLUDED
    counted = coverage(qwen_moe, resolve_policy("amber", qwen_moe), include_router=True)
    assert counted.total_macs_per_token == 48 * (attn + router + experts)
    assert counted.sparse_macs_per_token == sparse
    assert counted.by_kind["router"] == 0.0 and counted.definition == ROUTER_INCLUDED
    assert 100 * counted.fraction == pytest.approx(56.68, abs=0.005)  # what the project reported before issue 16
    assert coverage(qwen_moe, resolve_policy("all", qwen_moe)).fraction == 1.0
    all_counted = coverage(qwen_moe, resolve_policy("all", qwen_moe), include_router=True)
    assert all_counted.fraction == pytest.approx(1 - 48 * router / counted.total_macs_per_token)


def test_coverage_cli_says_which_definition(capsys):
    assert main(["coverage", "--model", "qwen3-30b-a3b"]) == 0
    out = capsys.readouterr().out
    assert "56.94 % of decoder-layer linear MACs" in out and ROUTER_EXCLUDED in out
    assert "router" not in out.split("\n\n", 1)[1]  # no router row in the table
    assert main(["coverage", "--model", "qwen3-30b-a3b", "--include-router"]) == 0
    out = capsys.readouterr().out
    assert "56.68 % of decoder-layer linear MACs" in out and ROUTER_INCLUDED in out
    assert "\nrouter " in out
