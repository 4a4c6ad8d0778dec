"""Capacity planning: traffic inputs, the replica search, and its bad inputs."""

import numpy as np
import pytest

from ampersim.econ.capacity import Traffic, parse_percentile, plan_capacity, require_feasible
from ampersim.econ.queueing import build_step_tables, simulate
from ampersim.econ.traffic import lognormal, parse_prompt_dist, poisson_arrivals, read_trace
from ampersim.core.errors import InvalidArgument, InvalidData, NotFound


def step(total, sum_sq):
    dense = 0.004 + 50e-6 * np.asarray(total) + 4e-9 * np.asarray(sum_sq)
    return dense, 0.7 * dense


TABLES = dict(zip(("dense", "sparse"), build_step_tables(step, 8192, 32768)))


@pytest.mark.parametrize("text,value", [("p50", 50.0), ("p95", 95.0), ("P99", 99.0), ("p99.9", 99.9)])
def test_percentile_parse(text, value):
    assert parse_percentile(text) == value


@pytest.mark.parametrize("bad", ["95", "p0", "p100", "q95", "p", "p-5"])
def test_bad_percentile(bad):
    with pytest.raises(InvalidArgument, match="^percentile ") as info:
        parse_percentile(bad)
    assert info.value.field == "percentile"


def test_prompt_dist_forms():
    rng = np.random.default_rng(0)
    assert set(parse_prompt_dist("fixed:4096").sample(rng, 10)) == {4096}
    logn = parse_prompt_dist("lognormal:2000,0.7")
    assert logn.sample(rng, 200_000).mean() == pytest.approx(2000, rel=0.01)
    capped = parse_prompt_dist("lognormal:2000,1.5,8000").sample(rng, 10_000)
    assert capped.max() == 8000 and capped.min() >= 1


@pytest.mark.parametrize("bad", ["fixed:0", "fixed:x", "lognormal:2000", "lognormal:0,1", "uniform:5", "trace:"])
def test_bad_prompt_dist(bad):
    with pytest.raises(InvalidArgument, match="^prompt_dist ") as info:
        parse_prompt_dist(bad)
    assert info.value.field == "prompt_dist"


def test_trace_forms(tmp_path):
    plain = tmp_path / "lengths.txt"
    plain.write_text("# one prompt per line\n100\n300\n\n300\n")
    dist = read_trace(plain)
    assert dict(zip(dist.lengths.tolist(), dist.weights.tolist())) == pytest.approx({100: 1 / 3, 300: 2 / 3})
    hist = tmp_path / "hist.csv"
    hist.write_text("tokens,count\n512,3\n2048,1\n")
    assert read_trace(hist).mean() == pytest.approx((3 * 512 + 2048) / 4)
    azure = tmp_path / "azure.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:50.1,1000,9\n"
    )
    assert parse_prompt_dist(f"trace:{azure}").lengths.tolist() == [374, 1000]


def test_trace_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("100\n200\n# fine\nabc\n")
    with pytest.raises(InvalidData, match=r"bad.txt:4: expected a positive integer prompt token count, got 'abc'"):
        read_trace(bad)
    neg = tmp_path / "neg.csv"
    neg.write_text("tokens,count\n100,2\n50,-1\n")
    with pytest.raises(InvalidData, match=r"neg.csv:3: .*count, got '-1'"):
        read_trace(neg)
    header = tmp_path / "header.csv"
    header.write_text("when,what\n1,2\n")
    with pytest.raises(InvalidData, match=r"header.csv:1: no prompt-length column"):
        read_trace(header)
    with pytest.raises(NotFound, match="file not found"):
        parse_prompt_dist(f"trace:{tmp_path / 'missing.txt'}")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(InvalidData, match="cannot read trace"):
        read_trace(binary)


@pytest.mark.parametrize("rate", [0.0, -3.0])
def test_rate_must_be_positive(rate):
    with pytest.raises(InvalidArgument, match="rate_per_s .*must be > 0") as info:
        Traffic(rate, lognormal(100, 0.5), 60)
    assert info.value.field == "rate_per_s"


def test_poisson_arrival_rate():
    times = poisson_arrivals(np.random.default_rng(1), 50.0, 2000.0)
    assert len(times) == pytest.approx(100_000, rel=0.01)
    assert np.all(np.diff(times) >= 0) and times[-1] < 2000.0


def _plan(rate=30.0, slo=0.8, pct=95.0, dist=None):
    traffic = Traffic(rate, dist or lognormal(2048, 0.8, 32768), 600, seed=3)
    return traffic, plan_capacity(
        TABLES, traffic, slo_ttft_s=slo, percentile=pct, max_seqs=256, tp=2, usd_per_gpu_hour=2.0
    )


def test_plan_finds_the_smallest_fleet():
    traffic, plan = _plan()
    arrival, lengths = traffic.draw()
    keep = arrival >= traffic.warmup_fraction * traffic.duration_s
    for path in ("dense", "sparse"):
        n = plan.paths[path].fleet.replicas
        at_n = simulate(arrival, lengths, n, TABLES[path], 256).ttft_s[keep]
        below = simulate(arrival, lengths, n - 1, TABLES[path], 256).ttft_s[keep]
        assert np.percentile(at_n, 95) <= 0.8 < np.percentile(below, 95)
        assert plan.gpus(path) == 2 * n
        assert plan.usd_per_day(path) == pytest.approx(2 * n * 2.0 * 24)
        assert 0 < plan.paths[path].fleet.utilization < 1
    assert plan.paths["sparse"].fleet.replicas <= plan.paths["dense"].fleet.replicas


def test_more_traffic_needs_more_gpus():
    assert _plan(rate=60.0)[1].gpus("dense") > _plan(rate=15.0)[1].gpus("dense")


def test_unmeetable_slo_names_lowest_ttft():
    solo_p95_dense = step(8192, 8192**2)[0]  # an idle replica, one full 8,192-token prompt
    with pytest.raises(InvalidArgument, match=r"TTFT SLO 1 ms:.*lowest achievable.*dense [\d.]+ ms, sparse") as info:
        require_feasible(_plan(slo=0.001, dist=parse_prompt_dist("fixed:8192"))[1])
    assert info.value.field == "slo_ttft_s"
    _, plan = _plan(slo=0.5 * (solo_p95_dense + 0.7 * solo_p95_dense), dist=parse_prompt_dist("fixed:8192"))
    assert not plan.paths["dense"].feasible and plan.paths["sparse"].feasible
    assert plan.paths["dense"].min_ttft_s == pytest.approx(solo_p95_dense)
    assert plan.gpus("dense") is None and plan.usd_per_day("dense") is None


# -- the `ampersim plan` command --------------------------------------------------------------------
def _cli(*args):
    from ampersim.cli import main

    return main(["plan", "--profile", "h100-sxm", *args])


def test_plan_cli_json(capsys):
    import json

    assert (
        _cli(
            "--rate",
            "20",
            "--slo-ttft-ms",
            "800",
            "--pattern",
            "2:4",
            "--prompt-dist",
            "lognormal:2048,0.8",
            "--duration-s",
            "300",
            "--format",
            "json",
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["percentile"] == "p95" and out["usd_per_gpu_hour"] > 0 and out["price_date"]
    rows = {r["path"]: r for r in out["results"]}
    assert rows["sparse"]["gpus"] <= rows["dense"]["gpus"]
    for row in rows.values():
        assert row["ttft_ms"] <= 800 and row["usd_per_day"] == pytest.approx(row["gpus"] * out["usd_per_gpu_hour"] * 24)


def test_plan_cli_table(capsys):
    assert _cli("--rate", "5", "--slo-ttft-ms", "2000", "--percentile", "p99", "--duration-s", "200") == 0
    out = capsys.readouterr().out
    assert "ttft_p99_ms" in out and "dense" in out and "sparse" in out and "$6.16/GPU-hour" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rate", "0", "--slo-ttft-ms", "500"], "--rate 0: the request rate must be > 0"),
        (["--rate", "-2", "--slo-ttft-ms", "500"], "--rate -2: the request rate must be > 0"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--percentile", "p100"], "--percentile 'p100'"),
        (["--rate", "5", "--slo-ttft-ms", "5", "--duration-s", "100"], "--slo-ttft-ms: TTFT SLO 5 ms: no number"),
        (["--rate", "5", "--slo-ttft-ms", "0"], "--slo-ttft-ms: the TTFT SLO must be > 0; got 0 ms"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--max-seqs", "0"], "--max-seqs 0: must be >= 1"),
        (["--rate", "5", "--slo-ttft-ms", "500", "--prompt-dist", "fixed:0"], "--prompt-dist 'fixed:0': expected fixed:TOKENS"),
        (["--rate", "0.001", "--slo-ttft-ms", "500", "--duration-s", "1"], "--duration-s 1: no request arrives"),
    ],
)
def test_plan_cli_bad_input(capsys, args, message):
    assert _cli(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_plan_cli_unreadable_trace(capsys, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("prompt_tokens\n1200\n800\n12x\n")
    assert _cli("--rate", "5", "--slo-ttft-ms", "500", "--prompt-dist", f"trace:{trace}") == 2
    assert f"{trace}:4: expected a positive integer prompt token count, got '12x'" in capsys.readouterr().err
