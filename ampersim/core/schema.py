"""The one base of every typed record (profiles, workloads, specs, policies, measurements, results).

``Frozen`` models are immutable, refuse fields they do not declare, and refuse ``inf`` and ``nan``
in every float field: a non-finite number is never a meaningful profile value, length, price or
time, and letting one through turns into a nan or a 147 % error far from its cause. A model that
must keep unknown fields (a results file other tools extend) overrides ``extra`` only.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Frozen(BaseModel):
    """Immutable, no undeclared fields, finite floats only."""

    model_config = FROZEN
