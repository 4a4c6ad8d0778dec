"""Traffic: length distributions, traces with line-numbered errors, Poisson arrivals in chunks."""

import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.econ.traffic import (
    Traffic,
    lognormal,
    parse_length_dist,
    poisson_arrivals,
    read_request_trace,
    read_trace,
)


def test_length_dist_forms():
    rng = np.random.default_rng(0)
    assert set(parse_length_dist("fixed:4096").sample(rng, 10)) == {4096}
    logn = parse_length_dist("lognormal:2000,0.7")
    assert logn.sample(rng, 200_000).mean() == pytest.approx(2000, rel=0.01)
    capped = parse_length_dist("lognormal:2000,1.5,8000").sample(rng, 10_000)
    assert capped.max() == 8000 and capped.min() >= 1
    assert parse_length_dist("fixed:0", what="output", field="output_dist").mean() == 0  # prefill only


@pytest.mark.parametrize("bad", ["fixed:0", "fixed:x", "lognormal:2000", "lognormal:0,1", "uniform:5", "trace:",
                                 "fixed:-3"])
def test_bad_prompt_dist(bad):
    with pytest.raises(InvalidArgument) as err:
        parse_length_dist(bad)
    assert err.value.field == "prompt_dist"


@pytest.mark.parametrize("bad", ["fixed:-1", "fixed:abc", "lognormal:0.5,1", "lognormal:200,-1"])
def test_bad_output_dist(bad):
    with pytest.raises(InvalidArgument) as err:
        parse_length_dist(bad, what="output", field="output_dist")
    assert err.value.field == "output_dist"


def test_trace_forms(tmp_path):
    plain = tmp_path / "lengths.txt"
    plain.write_text("# one prompt per line\n100\n300\n\n300\n")
    dist = read_trace(plain)
    assert dict(zip(dist.lengths.tolist(), dist.weights.tolist())) == pytest.approx({100: 1 / 3, 300: 2 / 3})
    hist = tmp_path / "hist.csv"
    hist.write_text("tokens,count\n512,3\n2048,1\n")
    assert read_trace(hist).mean() == pytest.approx((3 * 512 + 2048) / 4)
    azure = tmp_path / "azure.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
                     "2023-11-16 18:15:50.1,1000,9\n")
    assert parse_length_dist(f"trace:{azure}").lengths.tolist() == [374, 1000]
    assert parse_length_dist(f"trace:{azure}", what="output", field="output_dist").lengths.tolist() == [9, 44]


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
        parse_length_dist(f"trace:{tmp_path / 'missing.txt'}")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(InvalidData, match="cannot read trace"):
        read_trace(binary)


def test_request_trace(tmp_path):
    azure = tmp_path / "azure.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:50.5,1000,9\n"
                     "2023-11-16 18:15:46.5,374,44\n")
    trace = read_request_trace(azure)
    assert trace.arrival_s.tolist() == [0.0, 4.0] and trace.prompt.tolist() == [374, 1000]
    assert trace.output.tolist() == [44, 9] and trace.rate_per_s == pytest.approx(0.5)
    assert trace.scaled_to(2.0).arrival_s.tolist() == [0.0, 1.0]
    plain = tmp_path / "plain.csv"
    plain.write_text("arrival_s,input_tokens,output_tokens\n0.0,100,10\n0.5,200,0\n")
    with pytest.raises(InvalidData, match=r"plain.csv:3: expected a positive integer output token count, got '0'"):
        read_request_trace(plain)
    plain.write_text("arrival_s,input_tokens,output_tokens\n0.0,100,10\nsoon,200,5\n")
    with pytest.raises(InvalidData, match=r"plain.csv:3: expected an arrival time .* got 'soon'"):
        read_request_trace(plain)
    plain.write_text("arrival_s,prompt_tokens\n0.0,100\n")
    with pytest.raises(InvalidData, match=r"plain.csv:1: no output-length column"):
        read_request_trace(plain)


def test_rate_must_be_positive():
    for rate in (0.0, -3.0):
        with pytest.raises(InvalidArgument, match="rate .*must be > 0") as err:
            Traffic(rate, lognormal(100, 0.5), 60)
        assert err.value.field == "rate_per_s"


def test_poisson_arrival_rate():
    times = poisson_arrivals(np.random.default_rng(1), 50.0, 2000.0)
    assert len(times) == pytest.approx(100_000, rel=0.01)
    assert np.all(np.diff(times) >= 0) and times[-1] < 2000.0


def test_chunks_equal_one_draw():
    """Chunked traffic is the same as drawing the window at once (arrivals, then prompt lengths)."""
    requests = Traffic(40.0, lognormal(2048, 0.8), 300, outputs=lognormal(200, 1.0, field="o"), seed=3)
    rng = np.random.default_rng(3)
    arrival = poisson_arrivals(rng, 40.0, 300)
    prompts = requests.prompts.sample(rng, len(arrival))
    for size in (7, 1000, 1 << 16):
        parts = list(requests.chunks(size))
        assert np.array_equal(np.concatenate([p[0] for p in parts]), arrival)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), prompts)
    total, measured = requests.counts()
    assert total == len(arrival) and measured == int(np.sum(arrival >= requests.warmup_s))
