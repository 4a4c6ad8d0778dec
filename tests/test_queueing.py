"""The serving simulator against queueing theory (Pollaczek–Khinchine, Erlang C / Allen–Cunneen).

With one request per replica at a time (max_seqs = 1) each replica serves a whole request, prefill and
decode, before the next: the fleet is an M/G/c FCFS queue whose service time is a request's time alone
on an idle replica, so the mean wait before its first step must match the formulas.
"""

import numpy as np
import pytest

from ampersim.econ.serving import simulate, solo_times
from ampersim.econ.traffic import Traffic, fixed, lognormal
from ampersim.sim.engine import EngineConfig
from tests.serving_helpers import linear_costs

COSTS = linear_costs(max_tokens=16384)
ENGINE = EngineConfig(max_batched_tokens=16384, max_seqs=1)


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue; offered_load = λ/μ < c."""
    inv_b = 1.0  # inverse Erlang B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, servers + 1):
        inv_b = 1.0 + inv_b * k / offered_load
    b = 1.0 / inv_b
    rho = offered_load / servers
    return b / (1.0 - rho * (1.0 - b))


def mgc_mean_wait_s(rate: float, mean_service: float, scv: float, servers: int) -> float:
    """Mean wait of M/G/c, Allen–Cunneen: C(c, a) / (cμ − λ) · (1 + cs²) / 2 (exact P–K when c = 1)."""
    a = rate * mean_service
    return erlang_c(servers, a) / (servers / mean_service - rate) * (1.0 + scv) / 2.0


def test_erlang_c_known_values():
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


def _mean_wait(c, prompts, outputs, rho, n_requests=60_000, seed=5):
    probe = Traffic(1.0, prompts, 10_000, outputs=outputs, seed=99).draw()
    ttft, tpot = solo_times(probe[1], probe[2], COSTS, ENGINE, "dense")
    service = ttft + np.nan_to_num(tpot) * np.maximum(probe[2] - 1, 0)
    rate = rho * c / service.mean()
    requests = Traffic(rate, prompts, n_requests / rate, outputs=outputs, seed=seed, warmup_fraction=0.0)
    arrival, prompt, output, _ = requests.draw()
    ttft, tpot = solo_times(prompt, output, COSTS, ENGINE, "dense")
    service = ttft + np.nan_to_num(tpot) * np.maximum(output - 1, 0)
    res = simulate(requests, c, COSTS, ENGINE, 1_000_000, "dense", keep_requests=True)
    wait = res.per_request[:, 0] - ttft
    theory = mgc_mean_wait_s(len(arrival) / arrival[-1], service.mean(), service.var() / service.mean() ** 2, c)
    return wait.mean(), theory


@pytest.mark.parametrize("prompts,outputs", [(fixed(2048), fixed(0, minimum=0)),
                                             (lognormal(2048, 0.8, 16384), fixed(0, minimum=0)),
                                             (lognormal(1000, 0.6, 8000), lognormal(50, 0.8, 300, field="o"))],
                         ids=["M/D/1 prefill", "M/G/1 prefill", "M/G/1 prefill+decode"])
def test_single_replica_matches_pollaczek_khinchine(prompts, outputs):
    simulated, theory = _mean_wait(1, prompts, outputs, rho=0.8)
    assert simulated == pytest.approx(theory, rel=0.06)


def test_many_replicas_match_allen_cunneen():
    simulated, theory = _mean_wait(4, lognormal(1000, 0.6, 8000), lognormal(50, 0.8, 300, field="o"), rho=0.8)
    assert simulated == pytest.approx(theory, rel=0.15)  # an approximation for c > 1

