"""The continuous-batching simulator: exact small cases (linear step costs), KV cache, modes, memory."""

import math

import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.econ import latency
from ampersim.econ.serving import (
    C_FINISHED,
    C_MIXED,
    C_PREEMPT,
    C_REJECTED,
    C_STEPS,
    H_ITL,
    H_TTFT,
    SLO,
    check_state_memory,
    simulate,
    solo_times,
)
from ampersim.econ.traffic import RequestTrace, Traffic, fixed, lognormal
from ampersim.sim.engine import EngineConfig
from tests.serving_helpers import linear_costs, step

COSTS = linear_costs()


def engine(**kw):
    return EngineConfig(**{"max_batched_tokens": 8192, "max_seqs": 256, **kw})


def trace(arrival, prompt, output, warmup=0.0):
    return RequestTrace("t", np.asarray(arrival, float), np.asarray(prompt), np.asarray(output), warmup)


def run(requests, replicas=1, kv_blocks=100_000, path="dense", **kw):
    return simulate(requests, replicas, COSTS, engine(**kw), kv_blocks, path, keep_requests=True)


def per_request(result):
    ttft, tpot, e2e = result.per_request.T
    return ttft, tpot, e2e


def test_long_prompt_is_chunked():
    res = run(trace([0.0], [2500], [0]), max_batched_tokens=1000)
    ttft, _, e2e = per_request(res)
    assert ttft[0] == pytest.approx(step(1000) * 2 + step(500)) and e2e[0] == ttft[0]
    assert res.counters[C_STEPS] == 3


def test_simultaneous_prompts_share_one_step_and_budget_splits_the_last():
    ttft, _, _ = per_request(run(trace([0.0, 0.0], [300, 500], [0, 0])))
    assert np.allclose(ttft, step(800))
    ttft, _, _ = per_request(run(trace([0.0, 0.0], [600, 700], [0, 0]), max_batched_tokens=1000))
    assert np.allclose(ttft, [step(1000), step(1000) + step(300)])  # 600 + the first 400 of the second
    ttft, _, _ = per_request(run(trace([0.0, 0.0], [300, 500], [0, 0]), max_seqs=1))
    assert np.allclose(ttft, [step(300), step(300) + step(500)])


def test_decode_after_prefill():
    ttft, tpot, e2e = per_request(run(trace([0.0], [1000], [11])))
    assert ttft[0] == pytest.approx(step(1000))
    assert tpot[0] == pytest.approx(step(1))  # one token per decode step
    assert e2e[0] == pytest.approx(step(1000) + 10 * step(1))


def test_decode_tokens_and_a_new_prompt_share_a_step():
    # request 0 decodes; request 1 arrives during request 0's first decode step and joins the next step
    t1 = step(100) + 0.5 * step(1)
    res = run(trace([0.0, t1], [100, 200], [5, 2]))
    ttft, tpot, e2e = per_request(res)
    mixed = step(1 + 200)  # request 0's decode token + request 1's prompt
    assert ttft[1] == pytest.approx(step(100) + step(1) + mixed - t1)
    assert res.counters[C_MIXED] >= 1
    assert e2e[0] == pytest.approx(step(100) + step(1) + mixed + step(2) + step(1))


def test_output_of_one_token_ends_with_the_prefill():
    ttft, tpot, e2e = per_request(run(trace([0.0], [64], [1])))
    assert e2e[0] == ttft[0] == pytest.approx(step(64)) and math.isnan(tpot[0])


def test_idle_replica_takes_arrivals_while_others_are_busy():
    ttft, _, _ = per_request(run(trace([0.0, 0.001], [4000, 100], [0, 0]), replicas=2))
    assert ttft[1] == pytest.approx(step(100))


def test_kv_blocks_limit_admission_and_preempt_by_recompute():
    # 10 blocks of 16 tokens: two 64-token prompts fit (4 + 4 blocks), but both decoding 40 tokens do not
    res = run(trace([0.0, 0.0], [64, 64], [40, 40]), kv_blocks=10, block_size=16)
    assert res.counters[C_PREEMPT] >= 1 and res.counters[C_FINISHED] == 2
    ttft, tpot, e2e = per_request(res)
    # the later request is preempted; it resumes when the first is done and recomputes its prompt and tokens
    assert e2e[1] > e2e[0] + step(64 + 1)
    assert np.all(np.isfinite(e2e))


def test_request_larger_than_the_cache_is_rejected_not_looped():
    res = run(trace([0.0, 0.0], [64, 4000], [2, 2]), kv_blocks=20, block_size=16)
    assert res.counters[C_REJECTED] == 1 and res.counters[C_FINISHED] == 2


def test_sequence_limit():
    res = run(trace(np.zeros(10), np.full(10, 10), np.full(10, 30)), max_seqs=4)
    ttft, _, _ = per_request(res)
    assert np.sum(ttft < step(100)) == 4  # the other six wait for a running slot


def test_sparse_path_modes():
    requests = Traffic(20.0, lognormal(600, 0.5), 60, outputs=fixed(50, minimum=0), seed=2)
    e = engine()
    dense = simulate(requests, 1, COSTS, e, 100_000, "dense")
    split = simulate(requests, 1, COSTS, e, 100_000, "sparse")
    separate = simulate(requests, 1, COSTS, engine(mixed="separate"), 100_000, "sparse")
    assert split.counters[C_MIXED] > 0 and separate.counters[C_MIXED] == 0
    assert split.pct(H_TTFT, 95) < dense.pct(H_TTFT, 95)  # prefill rows cost less
    assert split.prefill_share < dense.prefill_share
    assert separate.pct(H_ITL, 99) > split.pct(H_ITL, 99)  # decode waits behind whole prefill steps


def test_results_do_not_depend_on_traffic_chunks():
    requests = Traffic(30.0, lognormal(800, 0.6), 120, outputs=lognormal(100, 0.8, 500, field="o"), seed=4)
    arrival, prompt, output, _ = requests.draw()
    whole = simulate(trace(arrival, prompt, output, requests.warmup_fraction), 2, COSTS, engine(), 100_000, "dense")

    class Small(RequestTrace):
        def chunks(self, size=0):
            return super().chunks(97)

    small = simulate(Small("t", arrival, prompt, output, requests.warmup_fraction), 2, COSTS, engine(), 100_000,
                     "dense")
    assert np.array_equal(whole.counters, small.counters) and np.array_equal(whole.hist, small.hist)


def test_deterministic_and_warmup_excluded():
    requests = Traffic(10.0, lognormal(500, 0.5), 100, outputs=fixed(20, minimum=0), seed=9)
    a = simulate(requests, 1, COSTS, engine(), 100_000, "dense")
    b = simulate(requests, 1, COSTS, engine(), 100_000, "dense")
    assert np.array_equal(a.counters, b.counters) and np.array_equal(a.hist, b.hist)
    total, measured = requests.counts()
    assert a.requests == measured < total and a.counters[C_FINISHED] == total


def test_slo_abort_stops_a_failing_fleet_early():
    requests = Traffic(60.0, lognormal(2000, 0.5), 300, outputs=fixed(100, minimum=0), seed=1)
    full = simulate(requests, 1, COSTS, engine(), 100_000, "dense")
    assert full.pct(H_TTFT, 95) > 1.0
    stopped = simulate(requests, 1, COSTS, engine(), 100_000, "dense", slo=SLO(1.0, None, 95.0))
    assert stopped.aborted and stopped.counters[C_STEPS] < full.counters[C_STEPS]


def test_solo_times():
    ttft, tpot = solo_times(np.array([2500, 10]), np.array([5, 1]), COSTS, engine(max_batched_tokens=1000), "dense")
    assert ttft == pytest.approx([2 * step(1000) + step(500), step(10)])
    assert tpot[0] == pytest.approx(step(1)) and math.isnan(tpot[1])


def test_state_memory_is_refused_above_the_limit():
    check_state_memory(1000, engine(max_seqs=1024))
    with pytest.raises(InvalidArgument, match=r"needs \d+\.\d GB of state, more than the 2 GB limit") as err:
        check_state_memory(100_000, engine(max_seqs=1024), what="rate_per_s")
    assert err.value.field == "rate_per_s"


def test_histogram_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.lognormal(-3, 1.2, 50_000)
    counts = np.zeros(latency.BINS, dtype=np.int64)
    np.add.at(counts, [latency.bin_of(v) for v in values], 1)
    for p in (50, 95, 99, 99.9):
        assert latency.percentile(counts, p) == pytest.approx(np.percentile(values, p), rel=1.5e-3)
