"""Coverage: the share of a model's decoder-layer linear MACs per token whose input a policy prunes.

One definition serves the simulator, the real-model pruner, ``ampersim coverage`` and the report.
MACs per token of every decoder-layer linear (q, k, v, o, gate, up, down; MoE experts weighted by
``experts_per_token``, shared experts included); lm_head and embeddings are not decoder-layer
linears and are left out. The MoE router is never pruned; by default it is left out of the total
as well, which is how the Amber paper (arXiv 2508.02128) counts: that reproduces its 56.13 %
(Llama-3.1-8B), 57.59 % (Qwen2-7B) and 56.94 % (Qwen3-30B-A3B). ``include_router=True`` counts
the router's MACs in the total (a slightly lower share for MoE models; no change for dense ones).
"""
from __future__ import annotations

from pydantic import computed_field

from ampersim.core.schema import Frozen
from ampersim.core.vocab import LinearKind
from ampersim.models.spec import ModelSpec
from ampersim.sparsity.policy import SparsityPolicy, canonical_name

ROUTER_EXCLUDED = "MoE router excluded from the total, as in the Amber paper"
ROUTER_INCLUDED = "MoE router included in the total"



class KindCoverage(Frozen):
    """One projection kind summed over the decoder layers."""

    kind: LinearKind
    macs_per_token: float
    sparse_macs_per_token: float
    sparse_layers: tuple[int, ...]
    dense_layers: tuple[int, ...]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fraction(self) -> float:
        """Share of this kind's MACs whose input is pruned."""
        return self.sparse_macs_per_token / self.macs_per_token


class Coverage(Frozen):
    """Share of decoder-layer linear MACs per token whose input is sparsified (see the module doc)."""

    sparse_macs_per_token: float
    total_macs_per_token: float
    fraction: float
    router_included: bool
    router_macs_per_token: float  # of the MoE router (0 for dense models), in the total only if router_included
    kinds: tuple[KindCoverage, ...]  # in the order the layers list them
    sparse_layers: list[str]  # canonical names of the sparsified linears

    @computed_field  # type: ignore[prop-decorator]
    @property
    def definition(self) -> str:
        """Which coverage definition these numbers follow."""
        return ROUTER_INCLUDED if self.router_included else ROUTER_EXCLUDED

    @computed_field  # type: ignore[prop-decorator]
    @property
    def by_kind(self) -> dict[str, float]:
        """Per kind: share of that kind's MACs sparsified."""
        return {k.kind: k.fraction for k in self.kinds}


def coverage(spec: ModelSpec, policy: SparsityPolicy, *, include_router: bool = False) -> Coverage:
    """Coverage of ``policy`` on ``spec``; ``include_router`` counts the MoE router in the total."""
    macs: dict[str, float] = {}
    sparse_macs: dict[str, float] = {}
    sparse_in: dict[str, list[int]] = {}
    dense_in: dict[str, list[int]] = {}
    names: dict[str, None] = {}  # ordered set
    router = 0.0
    for layer in range(spec.num_layers):
        for linear in spec.layer_linears(layer):
            if linear.kind == "router":
                router += linear.macs_per_token
                if not include_router:
                    continue
            sparse = policy.is_sparse(layer, linear.kind)
            macs[linear.kind] = macs.get(linear.kind, 0.0) + linear.macs_per_token
            sparse_macs[linear.kind] = sparse_macs.get(linear.kind, 0.0) + (linear.macs_per_token if sparse else 0.0)
            layers = (sparse_in if sparse else dense_in).setdefault(linear.kind, [])
            if layer not in layers:  # a shared expert repeats the kind in its layer
                layers.append(layer)
            if sparse:
                names[canonical_name(layer, linear.kind)] = None
    kinds = tuple(
        KindCoverage(kind=kind, macs_per_token=total, sparse_macs_per_token=sparse_macs[kind],
                     sparse_layers=tuple(sparse_in.get(kind, ())), dense_layers=tuple(dense_in.get(kind, ())))
        for kind, total in macs.items()
    )
    total = sum(macs.values())
    sparse_total = sum(sparse_macs.values())
    return Coverage(sparse_macs_per_token=sparse_total, total_macs_per_token=total, fraction=sparse_total / total,
                    router_included=include_router, router_macs_per_token=router, kinds=kinds,
                    sparse_layers=list(names))
