"""Return on investment of the prefill step: cost per million prompt tokens, energy per token and
payback, dense vs sparse (the end-to-end cost of a whole serving fleet is ampersim.econ.fleet).

Definitions (per GPU; a tensor-parallel replica of ``tp`` GPUs shares its throughput over them):
- cloud $/M tokens = rent $/GPU-hour / (3600 × tokens/s × utilization) × 1e6 — rent is paid for
  every hour, tokens flow only while busy. Rent is the profile's market price by default
  (``cloud="list"``: a provider's list price); a profile with only one of the two uses it, with a note.
- owned $/M tokens = (purchase / (lifetime years × 8766 h) + power kW × $/kWh × utilization)
  / (3600 × tokens/s × utilization) × 1e6 — the GPU alone; power = TDP × prefill power fraction,
  drawn only while busy. ``tco`` $/M tokens prices the same GPU-hours with the whole cost of owning
  it (server share, hosting, electricity with PUE and idle power: ampersim.econ.tco).
- energy J/token = power W / tokens/s (same power for dense and sparse: no measurement says otherwise).
- payback of moving from A to B (per path, dense→dense or sparse→sparse): buy enough B GPUs to
  match the prompt throughput of one rented A GPU (fractional count tokens/s_A / tokens/s_B); the
  payback is their purchase price divided by the monthly saving, rent_A × 730.5 h minus the B GPUs'
  power while busy. A and B may be the same profile (buy instead of rent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ampersim.core.errors import InvalidArgument
from ampersim.core.sourced import Sourced
from ampersim.core.vocab import CLOUD_PRICES
from ampersim.econ.tco import HOURS_PER_MONTH, HOURS_PER_YEAR, TcoAssumptions, load_tco, owned_gpu_hour
from ampersim.hardware.profile import HardwareProfile
from ampersim.models.registry import load_model_spec
from ampersim.sim.predict import predict
from ampersim.sim.scenario import Scenario

__all__ = ["HOURS_PER_MONTH", "HOURS_PER_YEAR"]  # re-exported: the ROI definitions use them
PATHS = ("dense", "sparse")
CLOUD_FIELDS = {"market": "cloud_market_usd_per_gpu_hour", "list": "cloud_usd_per_gpu_hour"}
DEFAULT_CLOUD_PRICE = "market"
DEFAULT_UTILIZATION = Sourced(
    value=1.0, source="assumed: GPUs busy with prefill every hour (lowest cost per token); set utilization to change"
)


def _given(value: float, field: str) -> Sourced:
    return Sourced(value=value, source=f"assumed: given by the user ({field})")


@dataclass(frozen=True)
class PriceBasis:
    """Every price and economic assumption used for one profile, each with its source (and date)."""

    cloud_usd_per_gpu_hour: Sourced | None
    purchase_usd: Sourced | None
    lifetime_years: Sourced
    usd_per_kwh: Sourced
    utilization: Sourced
    tco: TcoAssumptions
    cloud_price: str = DEFAULT_CLOUD_PRICE  # which rent cloud_usd_per_gpu_hour is: market, list or given
    note: str = ""                          # e.g. the market price was asked for but only a list price exists

    def items(self) -> list[tuple[str, Sourced]]:
        named = [
            ("cloud_usd_per_gpu_hour", self.cloud_usd_per_gpu_hour),
            ("purchase_usd", self.purchase_usd),
            ("lifetime_years", self.lifetime_years),
            ("usd_per_kwh", self.usd_per_kwh),
            ("utilization", self.utilization),
        ]
        return [(k, v) for k, v in named if v is not None]


def missing_price_message(profile: HardwareProfile, field: str, override: str) -> str:
    """Note for a profile without ``prices.<field>``; ``override``: how the caller can give the price."""
    return f"profile '{profile.name}' has no prices.{field}: add it (value, source, date) to its YAML or pass {override}"


def cloud_price(profile: HardwareProfile, usd_per_hour: float | None = None,
                which: str = DEFAULT_CLOUD_PRICE) -> Sourced | None:
    """Rent per GPU-hour: ``usd_per_hour`` (given by the user) if given, else the profile's ``which``
    price (market or list), else its other cloud price, else None."""
    return _cloud(profile, usd_per_hour, which)[0]


def _cloud(profile: HardwareProfile, usd_per_hour: float | None, which: str) -> tuple[Sourced | None, str, str]:
    """(rent, which rent it is, note when the asked-for kind is missing)."""
    if which not in CLOUD_PRICES:
        raise InvalidArgument(f"cloud_price '{which}': expected one of {', '.join(CLOUD_PRICES)}", field="cloud_price")
    if usd_per_hour is not None:
        if not usd_per_hour > 0:
            raise InvalidArgument(f"usd_per_hour {usd_per_hour:g}: must be > 0", field="usd_per_hour")
        return _given(usd_per_hour, "usd_per_hour"), "given", ""
    wanted = getattr(profile.prices, CLOUD_FIELDS[which])
    if wanted is not None:
        return wanted, which, ""
    other = next(k for k in CLOUD_PRICES if k != which)
    fallback = getattr(profile.prices, CLOUD_FIELDS[other])
    if fallback is None:
        return None, which, ""
    return fallback, other, f"{profile.name} has no {which} cloud price (prices.{CLOUD_FIELDS[which]}): its {other} " \
                            f"price is used"


def price_basis(
    profile: HardwareProfile,
    *,
    usd_per_hour: float | None = None,
    purchase_usd: float | None = None,
    lifetime_years: float | None = None,
    usd_per_kwh: float | None = None,
    utilization: float | None = None,
    cloud: str = DEFAULT_CLOUD_PRICE,
    tco: TcoAssumptions | None = None,
) -> PriceBasis:
    """Profile prices overridden by the values given; InvalidArgument if the profile has no price at all.
    ``cloud``: the market or list rent; ``tco``: the ownership assumptions (default: workloads/tco/
    colocation-us.yaml), whose depreciation period and electricity price are the lifetime and $/kWh."""
    given = {"usd_per_hour": usd_per_hour, "purchase_usd": purchase_usd, "lifetime_years": lifetime_years,
             "usd_per_kwh": usd_per_kwh}
    for field, value in given.items():
        if value is not None and not 0 < value < math.inf:
            raise InvalidArgument(f"{field} {value:g}: must be > 0 and finite", field=field)
    if utilization is not None and not 0 < utilization <= 1:
        raise InvalidArgument(f"utilization {utilization:g}: must be in (0, 1]", field="utilization")
    rent, which, note = _cloud(profile, usd_per_hour, cloud)
    buy = _given(purchase_usd, "purchase_usd") if purchase_usd is not None else profile.prices.purchase_usd
    if rent is None and buy is None:
        raise InvalidArgument(
            f"profile '{profile.name}' has no price: add prices.cloud_market_usd_per_gpu_hour, "
            "prices.cloud_usd_per_gpu_hour or prices.purchase_usd (value, source, date) to its YAML, or give "
            "usd_per_hour or purchase_usd",
            field="usd_per_hour",
        )
    tco = (tco or load_tco()).with_overrides(depreciation_years=lifetime_years, usd_per_kwh=usd_per_kwh)
    return PriceBasis(
        rent,
        buy,
        tco.depreciation_years,
        tco.usd_per_kwh,
        _given(utilization, "utilization") if utilization is not None else DEFAULT_UTILIZATION,
        tco,
        which,
        note,
    )


def usd_per_million_tokens(usd_per_gpu_hour: float, tokens_per_s: float, utilization: float) -> float:
    """Cost of a million prompt tokens on one GPU paid ``usd_per_gpu_hour`` and busy ``utilization``."""
    return usd_per_gpu_hour / (3600.0 * tokens_per_s * utilization) * 1e6


def owned_usd_per_hour(
    purchase_usd: float, lifetime_years: float, power_w: float, usd_per_kwh: float, utilization: float
) -> float:
    """Amortized purchase (straight line over the lifetime) plus electricity while busy, per GPU-hour."""
    return purchase_usd / (lifetime_years * HOURS_PER_YEAR) + power_w / 1000.0 * usd_per_kwh * utilization


def energy_j_per_token(power_w: float, tokens_per_s: float) -> float:
    return power_w / tokens_per_s


@dataclass(frozen=True)
class ProfileEconomics:
    """ROI numbers of one profile for one workload (per GPU)."""

    profile: str
    display_name: str
    tp: int
    power_w: float  # per GPU during prefill
    tokens_per_s: dict[str, float]  # per GPU, by path
    speedup: float
    energy_j_per_token: dict[str, float]
    cloud_usd_per_m_tokens: dict[str, float | None]
    owned_usd_per_m_tokens: dict[str, float | None]
    tco_usd_per_m_tokens: dict[str, float | None]  # the whole cost of owning (server, hosting, PUE, idle power)
    prices: PriceBasis
    native: bool
    note: str


def profile_economics(
    profile: HardwareProfile,
    replica_tokens_per_s: dict[str, float],
    tp: int,
    basis: PriceBasis,
    *,
    native: bool = True,
    note: str = "",
) -> ProfileEconomics:
    """Economics from a replica's prompt tokens/s per path (``tp`` GPUs per replica)."""
    power = profile.power.tdp_w.value * profile.power.prefill_power_fraction.value
    util = basis.utilization.value
    tps = {p: replica_tokens_per_s[p] / tp for p in PATHS}
    cloud = {
        p: None
        if basis.cloud_usd_per_gpu_hour is None
        else usd_per_million_tokens(basis.cloud_usd_per_gpu_hour.value, tps[p], util)
        for p in PATHS
    }
    owned = {
        p: None
        if basis.purchase_usd is None
        else usd_per_million_tokens(
            owned_usd_per_hour(
                basis.purchase_usd.value, basis.lifetime_years.value, power, basis.usd_per_kwh.value, util
            ),
            tps[p],
            util,
        )
        for p in PATHS
    }
    tco = {
        p: None
        if basis.purchase_usd is None
        else usd_per_million_tokens(owned_gpu_hour(profile, basis.tco, basis.purchase_usd.value, util).total,
                                    tps[p], util)
        for p in PATHS
    }
    return ProfileEconomics(
        profile.name,
        profile.display_name,
        tp,
        power,
        tps,
        tps["sparse"] / tps["dense"],
        {p: energy_j_per_token(power, tps[p]) for p in PATHS},
        cloud,
        owned,
        tco,
        basis,
        native,
        note,
    )


@dataclass(frozen=True)
class Payback:
    """Buying ``to_profile`` GPUs instead of renting ``from_profile`` for the same prompt throughput."""

    from_profile: str
    to_profile: str
    path: str
    gpus_needed: float | None  # fractional 'to' GPUs per rented 'from' GPU
    capex_usd: float | None
    saving_usd_per_month: float | None
    months: float | None  # None: never pays back (saving <= 0) or a price is missing
    missing: str = ""  # which price is missing when nothing could be computed


PAYBACK_DEFINITION = (
    "payback = months until buying enough GPUs of the target profile to match one rented GPU of the "
    "baseline (the first profile) in prompt tokens/s pays for itself: their purchase price / (baseline "
    f"rent x {HOURS_PER_MONTH:g} h/month - their electricity while busy); same path (dense or sparse) on both"
)


def payback(base: ProfileEconomics, target: ProfileEconomics, path: str) -> Payback:
    """Payback of replacing one rented ``base`` GPU by owned ``target`` GPUs (see PAYBACK_DEFINITION)."""
    rent, buy = base.prices.cloud_usd_per_gpu_hour, target.prices.purchase_usd
    if rent is None or buy is None:
        missing = (
            f"{base.profile}: prices.cloud_usd_per_gpu_hour" if rent is None else f"{target.profile}: prices.purchase_usd"
        )
        return Payback(base.profile, target.profile, path, None, None, None, None, missing)
    gpus = base.tokens_per_s[path] / target.tokens_per_s[path]
    power_usd_per_hour = (
        gpus * target.power_w / 1000.0 * target.prices.usd_per_kwh.value * target.prices.utilization.value
    )
    saving = (rent.value - power_usd_per_hour) * HOURS_PER_MONTH
    capex = gpus * buy.value
    return Payback(base.profile, target.profile, path, gpus, capex, saving, capex / saving if saving > 0 else None)


def paybacks(rows: Sequence[ProfileEconomics]) -> list[Payback]:
    """Payback of every profile (itself included) against the first one, both paths."""
    return [payback(rows[0], row, path) for row in rows for path in PATHS]


def compare(
    profiles: Sequence[HardwareProfile], scenario: Scenario, bases: Sequence[PriceBasis]
) -> list[ProfileEconomics]:
    """Predict ``scenario`` on every profile and work out its economics with the matching price basis."""
    spec = load_model_spec(scenario.model)
    rows = []
    for profile, basis in zip(profiles, bases, strict=True):
        pred = predict(profile, scenario, spec=spec)
        rows.append(
            profile_economics(
                profile,
                {"dense": pred.tokens_per_s_dense, "sparse": pred.tokens_per_s_sparse},
                pred.tp,
                basis,
                native=pred.native,
                note=pred.note,
            )
        )
    return rows
