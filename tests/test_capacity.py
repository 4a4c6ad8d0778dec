"""Capacity planning: the replicas × tp search under TTFT/TPOT SLOs, its physics, and `ampersim plan`."""

import json

import numpy as np
import pytest

from ampersim.cli import main
from ampersim.core.errors import InvalidArgument
from ampersim.econ.capacity import (
    build_replica,
    parse_percentile,
    plan_capacity,
    require_feasible,
    scenario_outputs,
    scenario_prompts,
)
from ampersim.econ.serving import H_E2E, H_TPOT, H_TTFT, SLO, simulate
from ampersim.econ.traffic import Traffic, fixed
from ampersim.hardware.registry import load_profile
from ampersim.models.registry import load_model_spec
from ampersim.sim.engine import engine_for
from ampersim.sim.scenario import load_scenario

H100 = load_profile("h100-sxm")
CHAT = load_scenario("chat").with_overrides(pattern="2:4")
SPEC = load_model_spec(CHAT.model)
ENGINE = engine_for(H100)


@pytest.fixture(scope="module")
def replica():
    return build_replica(H100, CHAT, SPEC, 1, ENGINE)


@pytest.mark.parametrize("text,value", [("p50", 50.0), ("p95", 95.0), ("P99", 99.0), ("p99.9", 99.9)])
def test_percentile_parse(text, value):
    assert parse_percentile(text) == value


@pytest.mark.parametrize("bad", ["95", "p0", "p100", "q95", "p", "p-5"])
def test_bad_percentile(bad):
    with pytest.raises(InvalidArgument) as err:
        parse_percentile(bad)
    assert err.value.field == "percentile"


def test_workload_lengths():
    assert scenario_prompts(CHAT).mean() == pytest.approx(0.5 * 512 + 0.3 * 1024 + 0.2 * 2048)
    assert scenario_outputs(CHAT).mean() == pytest.approx(211)
    assert scenario_outputs(load_scenario("prefill-4k")).mean() == 0


def _traffic(rate, outputs=None, duration=120.0, seed=1):
    return Traffic(rate, scenario_prompts(CHAT), duration, outputs=outputs or scenario_outputs(CHAT), seed=seed)


def test_latency_grows_with_rate_and_output_length(replica):
    def run(requests, replicas=1):
        return simulate(requests, replicas, replica.costs, ENGINE, replica.memory.kv_blocks, "dense")

    low, high = run(_traffic(5.0)), run(_traffic(25.0))
    assert high.pct(H_TTFT, 95) > low.pct(H_TTFT, 95) and high.pct(H_TPOT, 95) > low.pct(H_TPOT, 95)
    short, long = run(_traffic(10.0, fixed(50, minimum=0))), run(_traffic(10.0, fixed(400, minimum=0)))
    assert long.pct(H_E2E, 50) > short.pct(H_E2E, 50) and long.pct(H_TPOT, 95) > short.pct(H_TPOT, 95)
    assert long.prefill_share < short.prefill_share


CHAT_SLO = SLO(1.0, 0.05, 95.0)


def _plan(rate, outputs=None, slo=CHAT_SLO, tp=1, duration=120.0):
    prompts = scenario_prompts(CHAT)
    outputs = outputs or scenario_outputs(CHAT)
    return plan_capacity(H100, CHAT, _traffic(rate, outputs, duration), slo, ENGINE, prompts=prompts,
                         outputs=outputs, spec=SPEC, tp=tp, usd_per_gpu_hour=2.0)


def test_plan_finds_the_smallest_fleet(replica):
    slo = SLO(0.3, 0.02, 95.0)
    plan = _plan(40.0, slo=slo)
    requests = _traffic(40.0)
    for path in ("dense", "sparse"):
        fleet = plan.paths[path].fleet
        n = fleet.replicas
        at_n = simulate(requests, n, replica.costs, ENGINE, replica.memory.kv_blocks, path)
        below = simulate(requests, n - 1, replica.costs, ENGINE, replica.memory.kv_blocks, path)
        assert at_n.pct(H_TTFT, 95) <= 0.3 and at_n.pct(H_TPOT, 95) <= 0.02
        assert below.pct(H_TTFT, 95) > 0.3 or below.pct(H_TPOT, 95) > 0.02
        assert plan.gpus(path) == n and plan.usd_per_day(path) == pytest.approx(n * 2.0 * 24)
        assert 0 < fleet.prefill_share < 1 and 0.99 < fleet.goodput <= 1
    assert plan.gpus("sparse") <= plan.gpus("dense")
    effect = plan.effect
    assert effect.isolated_prefill_speedup > 1 and effect.in_fleet_prefill_speedup > 1
    assert effect.expected_saving == pytest.approx(effect.prefill_share * (1 - 1 / effect.in_fleet_prefill_speedup))


def test_more_traffic_and_longer_outputs_need_more_gpus():
    slo = SLO(0.5, 0.03, 95.0)
    assert _plan(40.0, slo=slo).gpus("dense") > _plan(10.0, slo=slo).gpus("dense")
    short = _plan(20.0, fixed(50, minimum=0), slo=slo).gpus("dense")
    assert _plan(20.0, fixed(600, minimum=0), slo=slo).gpus("dense") > short


def test_tp_search_prefers_fewest_gpus():
    plan = _plan(10.0, tp=None)
    tried = {c.tp for c in plan.candidates if c.path == "dense"}
    assert tried == {1, 2, 4, 8}
    best = plan.paths["dense"]
    assert best.fleet.gpus == min(c.fleet.gpus for c in plan.candidates if c.path == "dense" and c.fleet)


def test_unmeetable_slo_names_the_lowest_achievable():
    with pytest.raises(InvalidArgument, match=r"no fleet meets p95 TTFT <= 5 ms and TPOT <= 1 ms; the lowest "
                                              r"achievable .* is dense TTFT [\d.]+ ms \(tp 1\), TPOT [\d.]+ ms") as err:
        require_feasible(_plan(5.0, slo=SLO(0.005, 0.001, 95.0)))
    assert err.value.field == "slo_ttft_s"


def test_model_that_fits_nowhere_says_what_it_needs():
    rag = load_scenario("rag-long-prompt")  # llama-3.1-70b: 141 GB of bf16 weights
    l4 = load_profile("l4")
    with pytest.raises(InvalidArgument, match=r"llama-3.1-70b fits at no tensor-parallel degree on l4 \(tried tp 1\): "
                                              r"at tp 1 each GPU needs 141\.\d GB of weights .* more than the 21\.6 GB "
                                              r"usable") as err:
        plan_capacity(l4, rag, Traffic(1.0, scenario_prompts(rag), 60, outputs=scenario_outputs(rag)),
                      SLO(10.0, None, 95.0), engine_for(l4), prompts=scenario_prompts(rag),
                      outputs=scenario_outputs(rag), tp=1)
    assert err.value.field == "profile"


# -- prefill-only planning reproduces the results of the prefill-only planner it replaced --------------
# `ampersim plan --profile h100-sxm ... --format json` at commit 490de05 (prefill queue, no decode).
BEFORE = {
    "fixed 4096 at 40/s": (["--workload", "prefill-4k", "--rate", "40", "--slo-ttft-ms", "800", "--prompt-dist",
                            "fixed:4096", "--pattern", "2:4"], 47509,
                           {"dense": (4, 596.4174, 247.2679, 851.5332, 0.93675),
                            "sparse": (4, 299.6837, 169.3395, 386.6123, 0.84960)}),
    "lognormal 2048 at 20/s": (["--workload", "prefill-4k", "--rate", "20", "--slo-ttft-ms", "800", "--prompt-dist",
                                "lognormal:2048,0.8", "--pattern", "2:4", "--duration-s", "600"], 11530,
                               {"dense": (2, 231.7203, 56.5092, 381.9619, 0.53453),
                                "sparse": (2, 188.3476, 42.9558, 325.1568, 0.48189)}),
}


@pytest.mark.parametrize("case", list(BEFORE))
def test_prefill_only_reproduces_the_previous_planner(capsys, case):
    args, requests, before = BEFORE[case]
    assert main(["plan", "--profile", "h100-sxm", *args, "--output-dist", "fixed:0", "--tp", "1", "--max-seqs",
                 "256", "--format", "json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    for path, (replicas, p95, p50, p99, utilization) in before.items():
        row = rows[path]
        assert row["replicas"] == replicas and row["requests"] == requests
        assert row["ttft_ms"] == pytest.approx(p95, rel=0.005)  # the SLO percentile
        assert row["ttft_p99_ms"] == pytest.approx(p99, rel=0.005)
        assert row["ttft_p50_ms"] == pytest.approx(p50, rel=0.035)  # the old step table interpolated in context
        assert row["utilization"] == pytest.approx(utilization, rel=0.005)


# -- the command -----------------------------------------------------------------------------------
def _cli(*args):
    return main(["plan", "--profile", "h100-sxm", *args])


def test_plan_cli_done_when(capsys):
    assert _cli("--workload", "chat", "--rate", "20", "--slo-ttft-ms", "1000", "--slo-tpot-ms", "50",
                "--duration-s", "120", "--format", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["percentile"] == "p95" and out["usd_per_gpu_hour"] > 0 and out["output_source"].startswith("derived:")
    rows = {r["path"]: r for r in out["results"]}
    for row in rows.values():
        assert row["ttft_ms"] <= 1000 and row["tpot_ms"] <= 50 and row["tp"] >= 1 and row["replicas"] >= 1
        assert 0 < row["prefill_share"] < 1 and row["goodput"] > 0.9 and row["itl_p99_ms"] > 0
        assert row["usd_per_day"] == pytest.approx(row["gpus"] * out["usd_per_gpu_hour"] * 24)
    effect = out["effect"]
    assert set(effect) >= {"isolated_prefill_speedup", "in_fleet_prefill_speedup", "prefill_share",
                           "expected_saving", "gpus", "same_fleet"}
    assert {c["tp"] for c in out["candidates"]} == {1, 2, 4, 8}


def test_plan_cli_table(capsys):
    assert _cli("--rate", "5", "--slo-tpot-ms", "40", "--percentile", "p99", "--pattern", "2:4", "--tp", "1",
                "--duration-s", "100") == 0
    out = capsys.readouterr().out
    assert "tpot_p99_ms" in out and "$2.95/GPU-hour, market" in out and "end-to-end effect of 2:4 sparsity" in out
    assert "what 2:4 sparsity buys this fleet" in out and "$/M output tokens" in out
    assert "no TTFT SLO" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rate", "0", "--slo-ttft-ms", "500"], "--rate 0.0: the request rate (requests/s) must be > 0"),
        (["--workload", "batch-summarization", "--rate", "5"], "give --slo-ttft-ms, --slo-tpot-ms or both"),
        (["--workload", "batch-summarization", "--slo-ttft-ms", "500"], "give --rate"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--cache-hit-rate", "1"], "--cache-hit-rate 1: the share"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--pue", "0.5"], "--pue 0.5: a PUE is >= 1"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--percentile", "p100"], "--percentile 'p100'"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--output-dist", "fixed:-2"], "--output-dist fixed:-2: tokens"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--output-dist", "lots"], "--output-dist 'lots': expected"),
        (["--rate", "5", "--slo-ttft-ms", "1", "--tp", "1", "--duration-s", "60"], "lowest achievable"),
        (["--rate", "1e6", "--slo-ttft-ms", "1000"], "more than the 2 GB limit"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--max-batched-tokens", "0"], "--max-batched-tokens 0:"),
    ],
)
def test_plan_cli_bad_input(capsys, args, message):
    assert _cli(*args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing written
    assert captured.err.startswith("error: ") and message in captured.err and captured.err.count("\n") == 1


def test_plan_cli_bad_traces(capsys, tmp_path):
    lengths = tmp_path / "outputs.csv"
    lengths.write_text("output_tokens\n120\n80\n-4\n")
    assert _cli("--rate", "5", "--slo-ttft-ms", "500", "--output-dist", f"trace:{lengths}") == 2
    assert f"{lengths}:4: expected a positive integer output token count, got '-4'" in capsys.readouterr().err
    requests = tmp_path / "requests.csv"
    requests.write_text("arrival_s,input_tokens,output_tokens\n0.0,100,10\n0.5,abc,3\n")
    assert _cli("--trace", str(requests), "--slo-ttft-ms", "500") == 2
    assert f"{requests}:3: expected a positive integer input token count, got 'abc'" in capsys.readouterr().err


def test_plan_cli_replays_a_trace(capsys, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["arrival_s,input_tokens,output_tokens"] + [
        f"{t:.3f},{p},{o}" for t, p, o in zip(np.sort(rng.uniform(0, 60, 300)), rng.integers(100, 2000, 300),
                                              rng.integers(1, 300, 300))]
    trace = tmp_path / "requests.csv"
    trace.write_text("\n".join(rows) + "\n")
    assert _cli("--trace", str(trace), "--slo-ttft-ms", "1000", "--tp", "1", "--pattern", "2:4",
                "--format", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["traffic"].startswith("trace requests.csv: 300 requests") and out["results"][0]["gpus"] >= 1
