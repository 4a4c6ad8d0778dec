"""End-to-end fleet cost, TCO and the saving chain: hand-computed cases, prefix caching, trace import,
`roi` against `plan`, and the prefill-only ROI of before (list prices) reproduced."""

import json

import numpy as np
import pytest

from ampersim.cli import main
from ampersim.core.errors import InvalidArgument, InvalidData
from ampersim.econ.capacity import FleetStats
from ampersim.econ.fleet import FleetCost, path_cost
from ampersim.econ.serving import simulate, solo_times
from ampersim.econ.tco import HOURS_PER_MONTH, HOURS_PER_YEAR, load_tco, owned_gpu_hour
from ampersim.econ.traffic import RequestTrace, Traffic, cached_tokens, fixed, read_request_trace
from ampersim.hardware.registry import load_profile
from ampersim.sim.engine import EngineConfig
from tests.serving_helpers import linear_costs, step


def _fleet(replicas, tp, *, req=10.0, inp=10_000.0, out=2_000.0, share=0.25, util=0.5):
    nan = {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return FleetStats(replicas, tp, nan, nan, nan, nan, 1.0, req, inp, out, share, util, 1.0, 0, 100)


def test_path_cost_by_hand():
    cost = path_cost("dense", _fleet(2, 2), 3.6)  # 4 GPUs at $3.60: $0.004 per second
    assert cost.gpus == 4 and cost.usd_per_day == pytest.approx(4 * 3.6 * 24)
    assert cost.usd_per_m_input_tokens == pytest.approx(0.004 * 0.25 / 10_000 * 1e6)   # $0.10
    assert cost.usd_per_m_output_tokens == pytest.approx(0.004 * 0.75 / 2_000 * 1e6)   # $1.50
    assert cost.usd_per_1k_requests == pytest.approx(0.4)
    prefill_only = path_cost("dense", _fleet(1, 1, out=0.0, share=1.0), 3.6)
    assert prefill_only.usd_per_m_output_tokens is None
    assert prefill_only.usd_per_m_input_tokens == pytest.approx(0.001 / 10_000 * 1e6)  # all GPU time on prompts


def test_saving_by_hand():
    fleet = FleetCost("cloud", {"dense": path_cost("dense", _fleet(4, 1), 3.6),
                                "sparse": path_cost("sparse", _fleet(3, 1), 3.6)})
    assert fleet.saving == pytest.approx(0.25)
    assert fleet.saving_usd_per_month == pytest.approx(3.6 * 24 * HOURS_PER_MONTH / 24)


def test_owned_gpu_hour_by_hand():
    h100 = load_profile("h100-sxm")
    profile = h100.model_copy(update={"power": h100.power.model_copy(update={
        "tdp_w": h100.power.tdp_w.model_copy(update={"value": 1000.0}),
        "prefill_power_fraction": h100.power.prefill_power_fraction.model_copy(update={"value": 0.8})})})
    tco = load_tco().with_overrides(server_usd_per_gpu=2000, server_max_w_per_gpu=500, server_load_fraction=0.5,
                                    idle_power_fraction=0.1, hosting_usd_per_kw_month=100, pue=1.5,
                                    usd_per_kwh=0.1, depreciation_years=1)
    hour = owned_gpu_hour(profile, tco, HOURS_PER_YEAR - 2000, 0.5)
    assert hour.depreciation == pytest.approx(1.0)                         # ($6,766 + $2,000) / 8,766 h
    assert hour.hosting == pytest.approx(1.5 * 100 / HOURS_PER_MONTH)      # 1.5 kW provisioned
    assert hour.gpu_w == pytest.approx(450.0) and hour.server_w == pytest.approx(250.0)
    assert hour.electricity == pytest.approx(0.7 * 1.5 * 0.1)             # 700 W x PUE x $/kWh
    assert hour.total == pytest.approx(1.0 + 1.5 * 100 / HOURS_PER_MONTH + 0.105)
    assert tco.pue.source == "assumed: given by the user (pue)"


def test_tco_file_is_sourced_and_checked():
    tco = load_tco()
    assert all(v.date for _, v in tco.items()) and not any(v.source.startswith("assumed: given") for _, v in tco.items())
    with pytest.raises(InvalidArgument, match="^pue 0.9: a PUE is >= 1") as info:
        tco.with_overrides(pue=0.9)
    assert info.value.field == "pue"


def test_cached_prefix_is_not_prefilled():
    costs, engine = linear_costs(), EngineConfig(max_batched_tokens=8192, max_seqs=256)
    ttft, _ = solo_times(np.array([4000, 4000]), np.array([1, 1]), costs, engine, "dense", np.array([0, 3000]))
    assert ttft == pytest.approx([step(4000), step(1000)])
    trace = RequestTrace("t", np.array([0.0, 10.0]), np.array([4000, 4000]), np.array([1, 1]), 0.0,
                         cached=np.array([0, 3000]))
    res = simulate(trace, 1, costs, engine, 100_000, "dense", keep_requests=True)
    assert res.per_request[:, 0] == pytest.approx([step(4000), step(1000)])
    assert cached_tokens(np.array([10, 1000]), 0.95).tolist() == [9, 950]  # at most prompt - 1


def test_saving_shrinks_as_the_hit_rate_grows():
    costs, engine = linear_costs(), EngineConfig(max_batched_tokens=8192, max_seqs=256)
    saved = []
    for hit in (0.0, 0.5, 0.9):
        busy = {}
        for path in ("dense", "sparse"):
            traffic = Traffic(2.0, fixed(4000), 300, outputs=fixed(50, field="o", minimum=0), seed=1,
                              cache_hit_rate=hit)
            busy[path] = simulate(traffic, 1, costs, engine, 100_000, path).counters[0]
        saved.append(1 - busy["sparse"] / busy["dense"])
    assert saved[0] > saved[1] > saved[2] > 0


def _write(path, text):
    path.write_text(text)
    return path


def test_trace_jsonl_mooncake_and_cached_column(tmp_path):
    mooncake = _write(tmp_path / "m.jsonl", "\n".join(json.dumps(r) for r in [
        {"timestamp": 0, "input_length": 1200, "output_length": 5, "hash_ids": [0, 1, 2]},
        {"timestamp": 1500, "input_length": 1100, "output_length": 7, "hash_ids": [0, 1, 3]},
    ]) + "\n")
    trace = read_request_trace(mooncake)
    assert trace.arrival_s.tolist() == [0.0, 1.5]        # milliseconds
    assert trace.cached_tokens.tolist() == [0, 1024]      # two 512-token blocks seen before
    csv = _write(tmp_path / "c.csv", "arrival_s,input_tokens,output_tokens,cached_tokens\n0,100,5,60\n2,80,3,0\n")
    assert read_request_trace(csv).cached_tokens.tolist() == [60, 0]


@pytest.mark.parametrize("text,message", [
    ("arrival_s,input_tokens,output_tokens,cached_tokens\n0,100,5,100\n", r":2: expected cached tokens, .*0 to .* \(99\), got '100'"),
    ('{"arrival_s": 0, "input_tokens": 10, "output_tokens": 2}\nnot json\n', r":2: not a JSON object"),
    ('{"arrival_s": 0, "input_tokens": 10}\n', r":1: no output-length key"),
    ('{"arrival_s": 0, "input_tokens": 0, "output_tokens": 2}\n', r":1: expected a positive integer input token count"),
])
def test_trace_errors_name_the_line(tmp_path, text, message):
    path = _write(tmp_path / ("t.csv" if text.startswith("arrival") else "t.jsonl"), text)
    with pytest.raises(InvalidData, match=message):
        read_request_trace(path)


def test_zero_output_roi_reproduces_the_prefill_only_numbers(capsys):
    """Before this change `roi` priced prompt tokens at the list price; with --cloud-price list the
    prefill-only workload gives the same numbers (README tour of the commit before)."""
    assert main(["roi", "--profile", "h100-sxm", "--profile", "a100", "--profile", "mi300x", "--pattern", "2:4",
                 "--cloud-price", "list", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {p["profile"]: p for p in out["profiles"]}
    assert out["fleet"] == []  # no outputs, no --rate: the prefill step only
    for name, tokens, dense, sparse in (("h100-sxm", 43159, 0.03965, 0.03606), ("a100-sxm", 14483, 0.05178, 0.04668),
                                        ("mi300x", 42160, 0.02214, 0.02141)):
        assert round(rows[name]["tokens_per_s"]["dense"]) == tokens
        assert rows[name]["cloud_usd_per_m_tokens"]["dense"] == pytest.approx(dense, abs=5e-6)
        assert rows[name]["cloud_usd_per_m_tokens"]["sparse"] == pytest.approx(sparse, abs=5e-6)
    assert rows["h100-sxm"]["cloud_price"] == "list" and rows["mi300x"]["cloud_price"] == "market"
    assert any("mi300x has no list cloud price" in n for n in out["notes"])


FLEET_ARGS = ["--workload", "chat", "--pattern", "2:4", "--rate", "3", "--slo-ttft-ms", "1000", "--slo-tpot-ms", "50",
              "--duration-s", "150", "--tp", "1", "--format", "json"]


def test_roi_fleet_agrees_with_plan(capsys):
    assert main(["plan", "--profile", "h100-sxm", *FLEET_ARGS]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert main(["roi", "--profile", "h100-sxm", *FLEET_ARGS]) == 0
    (fleet,) = json.loads(capsys.readouterr().out)["fleet"]
    assert fleet["costs"] == plan["costs"]
    for row in plan["results"]:
        assert fleet["paths"][row["path"]]["gpus"] == row["gpus"]
        assert plan["costs"]["cloud"]["paths"][row["path"]]["usd_per_day"] == pytest.approx(row["usd_per_day"])
    chain = plan["costs"]["chain"]
    assert chain["formula_saving"] == pytest.approx(plan["effect"]["expected_saving"])
    assert chain["prefill_share"] * (1 - 1 / chain["in_fleet_prefill_speedup"]) == pytest.approx(chain["formula_saving"])
    dense = plan["costs"]["cloud"]["paths"]["dense"]
    assert dense["usd_per_gpu_hour"] == load_profile("h100-sxm").prices.cloud_market_usd_per_gpu_hour.value


def test_kv_transfer_by_hand():
    from ampersim.econ.disagg import kv_transfer_s

    # 1,000 tokens x 128 KiB per token per GPU over 50 GB/s: 131,072,000 B / 5e10 B/s
    assert kv_transfer_s(np.array([1000]), 131072.0, 50.0)[0] == pytest.approx(131_072_000 / 50e9)


def test_disaggregated_pools():
    from ampersim.econ.capacity import scenario_outputs, scenario_prompts
    from ampersim.econ.disagg import plan_disaggregated
    from ampersim.econ.serving import SLO
    from ampersim.models.registry import load_model_spec
    from ampersim.sim.engine import engine_for
    from ampersim.sim.scenario import load_scenario

    h100, chat = load_profile("h100-sxm"), load_scenario("chat").with_overrides(pattern="2:4")
    traffic = Traffic(4.0, scenario_prompts(chat), 150.0, outputs=scenario_outputs(chat), seed=2)
    spec, engine = load_model_spec(chat.model), engine_for(h100)
    with pytest.raises(InvalidArgument, match="needs a TTFT SLO .* and a TPOT SLO"):
        plan_disaggregated(h100, chat, traffic, SLO(1.0, None, 95.0), engine, spec=spec, tp=1)
    split = plan_disaggregated(h100, chat, traffic, SLO(1.0, 0.05, 95.0), engine, spec=spec, tp=1)
    assert split.decode_gpus >= 1 and split.prefill_gpus("sparse") <= split.prefill_gpus("dense")
    assert split.gpus("dense") == split.prefill_gpus("dense") + split.decode_gpus
    _, prompt, output, _ = traffic.draw()
    mean_kv = prompt[output >= 2].mean() * split.kv_bytes_per_token / 50e9
    assert split.transfer_s["mean"] == pytest.approx(mean_kv)
    decode = split.decode.paths["dense"].fleet
    assert decode.tpot_s["p95"] <= 0.05 and decode.input_tokens_per_s > 0


def test_plan_cli_disaggregated(capsys, tmp_path):
    assert main(["plan", "--profile", "h100-sxm", *FLEET_ARGS, "--disaggregate", "--kv-link-gbps", "25"]) == 0
    split = json.loads(capsys.readouterr().out)["disaggregated"]
    assert {p["pool"] for p in split["pools"]} == {"prefill", "decode"} and split["kv_link_gbps"] == 25
    assert split["gpus"]["dense"] == split["prefill_gpus"]["dense"] + split["decode_gpus"]
    trace = _write(tmp_path / "t.csv", "arrival_s,input_tokens,output_tokens\n0,100,5\n1,80,3\n")
    assert main(["plan", "--profile", "h100-sxm", "--trace", str(trace), "--slo-ttft-ms", "500", "--slo-tpot-ms", "50",
                 "--disaggregate"]) == 2
    assert "--disaggregate plans generated traffic" in capsys.readouterr().err


def test_break_even_gemm_speedup_by_hand():
    from ampersim.econ.fleet import break_even_gemm_speedup

    # f = 0.5, g = 0.6, o = 0.05: a 10 % saving needs 0.6 / (0.6 - 0.05 - 0.2) = 1.714x
    assert break_even_gemm_speedup(0.10, 0.5, 0.6, 0.05) == pytest.approx(0.6 / 0.35)
    assert break_even_gemm_speedup(0.30, 0.5, 0.6, 0.05) is None  # 0.6 - 0.05 - 0.6 <= 0: out of reach
    k = break_even_gemm_speedup(0.02, 0.4, 0.5)
    assert 0.4 * (1 - ((1 - 0.5) + 0.5 / k)) == pytest.approx(0.02)  # the saving it promises


def test_workload_serving_and_cache_are_validated(tmp_path):
    from ampersim.sim.scenario import load_scenario

    bad = tmp_path / "w.yaml"
    bad.write_text("name: w\nmodel: llama-3.1-8b\nprompt_tokens: 100\n"
                   "prefix_cache:\n  hit_rate: {value: 1.0, source: 'assumed: all'}\n")
    with pytest.raises(InvalidData, match=r"w.yaml:5.*hit_rate must be in \[0, 1\)"):
        load_scenario(bad)
    presets = {name: load_scenario(name) for name in
               ("conversation", "coding", "long-context", "summarization", "rag", "agent-loop")}
    for scenario in presets.values():
        assert scenario.serving is not None and scenario.prompt_source and scenario.output_source
    assert presets["conversation"].mean_prompt_tokens() == pytest.approx(1155, abs=1)
    assert presets["coding"].mean_output_tokens() == pytest.approx(28, abs=0.1)
    assert presets["long-context"].cache_hit_rate == 0.374


def test_roi_notes_a_profile_without_a_fleet(capsys):
    assert main(["roi", "--profile", "l4", "--workload", "chat", "--pattern", "2:4", "--rate", "30", "--tp", "1",
                 "--duration-s", "120", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fleet"] == [] and any(n.startswith("l4: no fleet: no fleet meets p95 TTFT") for n in out["notes"])
