"""Prefill queue simulation: exact small cases, and agreement with queueing theory (P-K, Erlang C).

The queueing formulas live here, as test helpers: they check the simulator and serve nothing else."""

import math

import numpy as np
import pytest

from ampersim.econ.capacity import Traffic
from ampersim.econ.queueing import build_step_tables, simulate, solo_prefill_seconds
from ampersim.econ.traffic import fixed, lognormal


def erlang_c(servers, offered_load):
    """Probability that an arrival waits in an M/M/c queue (Erlang C); offered_load = λ/μ < c."""
    if not 0 <= offered_load < servers:
        raise ValueError(f"offered load {offered_load:g} must be in [0, {servers}) for a stable queue")
    inv_b = 1.0  # inverse Erlang-B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, servers + 1):
        inv_b = 1.0 + inv_b * k / offered_load if offered_load > 0 else math.inf
    b = 1.0 / inv_b
    rho = offered_load / servers
    return b / (1.0 - rho * (1.0 - b))


def mgc_mean_wait_s(rate_per_s, mean_service_s, service_scv, servers):
    """Mean queueing delay of M/G/c, Allen–Cunneen approximation (exact P–K formula when c = 1).

    Wq ≈ C(c, a) / (c μ − λ) · (1 + cs²) / 2 with a = λ E[S], μ = 1 / E[S] and cs² the squared
    coefficient of variation of the service time.
    """
    a = rate_per_s * mean_service_s
    if a >= servers:
        return math.inf
    return erlang_c(servers, a) / (servers / mean_service_s - rate_per_s) * (1.0 + service_scv) / 2.0


def linear_step(total, sum_sq):
    """A step cost linear in tokens and attention work (so table interpolation is exact)."""
    dense = 0.003 + 40e-6 * np.asarray(total) + 3e-9 * np.asarray(sum_sq)
    return dense, 0.75 * dense


def tables(max_tokens=4096, max_prompt=16384):
    return build_step_tables(linear_step, max_tokens, max_prompt)


def test_tables_call_step_function_within_its_domain():
    calls = []

    def strict(total, sum_sq):  # the simulator accepts whole prompts only: total <= sum_sq <= total**2
        total, sum_sq = np.asarray(total), np.asarray(sum_sq)
        assert np.all(sum_sq >= total) and np.all(sum_sq <= total**2 * (1 + 1e-12))
        calls.append(len(total))
        return linear_step(total, sum_sq)

    dense, _ = build_step_tables(strict, 2048, 65536)
    assert len(calls) == 1  # one vectorized call
    # a 100-token chunk at offset 60,000 (sum_sq far above 100**2) is extrapolated exactly for a linear cost
    s = 60_100**2 - 60_000**2
    assert dense.lookup(np.array([100]), np.array([s]))[0] == pytest.approx(linear_step(100, s)[0])


def test_table_lookup_matches_step_function():
    dense, sparse = tables()
    t = np.array([1, 7, 255, 256, 1000, 4095, 4096])
    s = t * np.array([1, 3, 100, 2000, 5000, 8000, 30000])
    assert np.allclose(dense.lookup(t, s), linear_step(t, s)[0], rtol=1e-9)
    assert np.allclose(sparse.lookup(t, s), linear_step(t, s)[1], rtol=1e-9)


def test_long_prompt_is_chunked():
    dense, _ = tables(max_tokens=1000)
    # 2,500 tokens = chunks of 1000, 1000, 500 at offsets 0, 1000, 2000
    expected = sum(linear_step(c, (o + c) ** 2 - o**2)[0] for o, c in ((0, 1000), (1000, 1000), (2000, 500)))
    assert solo_prefill_seconds(dense, np.array([2500]))[0] == pytest.approx(expected)
    res = simulate(np.array([0.0]), np.array([2500]), 1, dense, max_seqs=8)
    assert res.ttft_s[0] == pytest.approx(expected)
    assert res.steps == 3


def test_simultaneous_prompts_share_one_step():
    dense, _ = tables()
    res = simulate(np.array([0.0, 0.0]), np.array([300, 500]), 1, dense, max_seqs=8)
    step = linear_step(800, 300**2 + 500**2)[0]
    assert np.allclose(res.ttft_s, [step, step])
    one_at_a_time = simulate(np.array([0.0, 0.0]), np.array([300, 500]), 1, dense, max_seqs=1)
    first, second = linear_step(300, 300**2)[0], linear_step(500, 500**2)[0]
    assert np.allclose(one_at_a_time.ttft_s, [first, first + second])


def test_budget_splits_the_last_prompt():
    dense, _ = tables(max_tokens=1000)
    res = simulate(np.array([0.0, 0.0]), np.array([600, 700]), 1, dense, max_seqs=8)
    step1 = linear_step(1000, 600**2 + 400**2)[0]  # 600 whole + first 400 of the second prompt
    step2 = linear_step(300, 700**2 - 400**2)[0]  # the remaining 300 at offset 400
    assert np.allclose(res.ttft_s, [step1, step1 + step2])


def test_idle_replica_takes_arrivals_while_others_are_busy():
    dense, _ = tables()
    res = simulate(np.array([0.0, 0.001]), np.array([4000, 100]), 2, dense, max_seqs=8)
    assert res.ttft_s[1] == pytest.approx(linear_step(100, 100**2)[0])


def test_erlang_c_known_values():
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(4, 0.0) == 0.0


def _mean_wait(c, dist, rho, n_requests=200_000, seed=5):
    dense, _ = tables(max_tokens=16384)
    probe = dist.sample(np.random.default_rng(0), 100_000)
    mean_s = solo_prefill_seconds(dense, probe).mean()
    rate = rho * c / mean_s
    traffic = Traffic(rate, dist, n_requests / rate, seed=seed, warmup_fraction=0.0)
    arrival, lengths = traffic.draw()
    service = solo_prefill_seconds(dense, lengths)
    res = simulate(arrival, lengths, c, dense, max_seqs=1)  # one prompt per step: a plain M/G/c queue
    theory = mgc_mean_wait_s(len(arrival) / arrival[-1], service.mean(), service.var() / service.mean() ** 2, c)
    return (res.ttft_s - service).mean(), theory


@pytest.mark.parametrize("dist", [fixed(2048), lognormal(2048, 0.8, 16384)], ids=["M/D/1", "M/G/1"])
def test_single_replica_matches_pollaczek_khinchine(dist):
    simulated, theory = _mean_wait(1, dist, rho=0.8)
    assert simulated == pytest.approx(theory, rel=0.05)


def test_many_replicas_match_allen_cunneen():
    simulated, theory = _mean_wait(4, lognormal(2048, 0.8, 16384), rho=0.8)
    assert simulated == pytest.approx(theory, rel=0.15)  # an approximation for c > 1


def test_batching_beats_one_prompt_per_step():
    dense, _ = tables()
    traffic = Traffic(40.0, lognormal(1024, 0.6), 600, seed=1)
    arrival, lengths = traffic.draw()
    batched = simulate(arrival, lengths, 1, dense, max_seqs=256)
    single = simulate(arrival, lengths, 1, dense, max_seqs=1)
    assert np.percentile(batched.ttft_s, 95) < np.percentile(single.ttft_s, 95)
    assert batched.busy_s < single.busy_s  # fixed per-step cost shared


def test_simulation_is_deterministic():
    dense, _ = tables()
    a = Traffic(20.0, lognormal(1024, 0.6), 300, seed=9).draw()
    b = Traffic(20.0, lognormal(1024, 0.6), 300, seed=9).draw()
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(simulate(*a, 2, dense, 64).ttft_s, simulate(*b, 2, dense, 64).ttft_s)


def test_unstable_queue_has_infinite_wait():
    assert math.isinf(mgc_mean_wait_s(10.0, 0.2, 1.0, 2))
