"""Synthetic step costs for exact serving-simulator tests: a step of T tokens costs a + b·T seconds."""
import numpy as np

from ampersim.sim.steps import DENSE_SPARSIFIED, LM_HEAD, REST, SPARSE_SPARSIFIED, StepCosts

A, B = 0.003, 40e-6  # fixed cost per step (s), cost per token (s)


def linear_costs(max_tokens=8192, a=A, b=B, sparse_factor=0.75, sparsified_share=0.5):
    """Steps cost a + b·T; half the token cost sits in the sparsified linears, which run
    ``sparse_factor`` times as long on the sparse path. No attention, no lm_head."""
    m = np.arange(max_tokens + 1, dtype=float)
    tables = np.zeros((4, max_tokens + 1))
    tables[REST, 1:] = a + (1 - sparsified_share) * b * m[1:]
    tables[DENSE_SPARSIFIED, 1:] = sparsified_share * b * m[1:]
    tables[SPARSE_SPARSIFIED, 1:] = sparse_factor * sparsified_share * b * m[1:]
    tables[LM_HEAD] = 0.0
    return StepCosts(tables, np.zeros((0, 5)), np.ones(5), np.zeros(1, dtype=np.int64))


def step(tokens, a=A, b=B):
    return a + b * tokens
