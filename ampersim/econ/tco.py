"""Total cost of ownership of an owned GPU, per GPU-hour: depreciation, hosting and electricity.

Per GPU of an 8-GPU server (every input sourced in a TCO YAML, workloads/tco/*.yaml):

- depreciation = (GPU price + server share) / (depreciation years × 8,766 h), straight line;
- hosting = provisioned power (GPU TDP + the server's non-GPU maximum) × $/kW-month / 730.5 h:
  colocation is paid for capacity, used or not;
- electricity = (GPU draw + server draw) × PUE × $/kWh, where the GPU draws TDP × the profile's
  busy power fraction while busy and TDP × the idle fraction otherwise (``utilization`` = busy share
  of the hour, from the simulated fleet), and the rest of the server draws its maximum × a load fraction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError, ValidationInfo, field_validator

from ampersim.core.catalog import looks_like_path
from ampersim.core.errors import InvalidArgument, not_found
from ampersim.core.resources import data_dir
from ampersim.core.schema import Frozen
from ampersim.core.sourced import FractionSourced, PositiveSourced, Sourced
from ampersim.core.yamlio import load_model
from ampersim.hardware.profile import HardwareProfile

HOURS_PER_YEAR = 8766.0  # 365.25 days
HOURS_PER_MONTH = HOURS_PER_YEAR / 12.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
DEFAULT_TCO = "colocation-us"


TCO_BOUNDS: dict[str, tuple[float, float]] = {
    "server_usd_per_gpu": (0.0, 1e7), "server_max_w_per_gpu": (0.0, 1e5), "hosting_usd_per_kw_month": (0.0, 1e5),
    "pue": (1.0, 10.0), "usd_per_kwh": (0.0, 100.0), "depreciation_years": (0.1, 100.0),
}
"""Sane ranges of the TCO numbers (real ones: $6,250, 575 W, $184/kW-month, PUE 1.58, $0.10/kWh, 5 years):
a number beyond them is a typo, and the products of such numbers overflow to inf dollars."""


class TcoAssumptions(Frozen):
    """Owning and hosting a GPU (see workloads/tco/colocation-us.yaml); every number sourced and dated (and
    finite: ``Frozen``)."""

    name: str
    description: str = ""
    server_usd_per_gpu: Sourced
    server_max_w_per_gpu: Sourced
    server_load_fraction: FractionSourced
    idle_power_fraction: FractionSourced
    hosting_usd_per_kw_month: Sourced
    pue: PositiveSourced
    usd_per_kwh: PositiveSourced
    depreciation_years: PositiveSourced

    @field_validator("server_usd_per_gpu", "server_max_w_per_gpu", "hosting_usd_per_kw_month")
    @classmethod
    def _not_negative(cls, value: Sourced) -> Sourced:
        if value.value < 0:
            raise ValueError(f"value must be >= 0; got {value.value}")
        return value

    @field_validator("pue")
    @classmethod
    def _pue(cls, value: Sourced) -> Sourced:
        if value.value < 1:
            raise ValueError(f"a PUE is >= 1 (facility power / IT power); got {value.value}")
        return value

    @field_validator(*TCO_BOUNDS)
    @classmethod
    def _bounded(cls, value: Sourced, info: ValidationInfo) -> Sourced:
        low, high = TCO_BOUNDS[info.field_name]
        if not low <= value.value <= high:
            raise ValueError(f"value must be in [{low:g}, {high:g}] (far beyond any real figure either way); "
                             f"got {value.value:g}")
        return value

    def with_overrides(self, **values: float | None) -> TcoAssumptions:
        """A copy with the given numbers replaced (each then sourced 'given by the user'); None ignored."""
        update = {field: {"value": value, "source": f"assumed: given by the user ({field})"}
                  for field, value in values.items() if value is not None}
        if not update:
            return self
        try:
            return TcoAssumptions.model_validate({**self.model_dump(), **update})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0])
            msg = err["msg"].removeprefix("Value error, ")
            raise InvalidArgument(f"{field} {values[field]:g}: {msg}", field=field) from None

    def items(self) -> list[tuple[str, Sourced]]:
        return [(k, v) for k, v in self if isinstance(v, Sourced)]


def tco_dir() -> Path:
    return data_dir("workloads") / "tco"


def load_tco(name_or_path: str | Path = DEFAULT_TCO) -> TcoAssumptions:
    """A shipped TCO by name (workloads/tco/NAME.yaml) or a TCO YAML file."""
    if looks_like_path(name_or_path):
        return load_model(Path(name_or_path), TcoAssumptions)
    path = tco_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise not_found("TCO", str(name_or_path), (p.stem for p in tco_dir().glob("*.yaml")))
    return load_model(path, TcoAssumptions)


@dataclass(frozen=True)
class OwnedHour:
    """$ per GPU-hour of an owned GPU, by component, at one utilization."""

    depreciation: float
    hosting: float
    electricity: float
    gpu_w: float      # average GPU draw over the hour
    server_w: float   # average draw of the server's other parts, per GPU
    utilization: float

    @property
    def total(self) -> float:
        return self.depreciation + self.hosting + self.electricity


def busy_power_w(profile: HardwareProfile) -> float:
    """Board power while the GPU runs steps: TDP × the profile's busy power fraction."""
    return profile.power.tdp_w.value * profile.power.prefill_power_fraction.value


def owned_gpu_hour(profile: HardwareProfile, tco: TcoAssumptions, purchase_usd: float,
                   utilization: float) -> OwnedHour:
    """Cost of one owned GPU-hour when the GPU is busy ``utilization`` of the time (see the module docstring)."""
    if not 0 <= utilization <= 1:
        raise InvalidArgument(f"utilization {utilization:g}: must be in [0, 1]", field="utilization")
    tdp = profile.power.tdp_w.value
    gpu_w = utilization * busy_power_w(profile) + (1 - utilization) * tdp * tco.idle_power_fraction.value
    server_w = tco.server_max_w_per_gpu.value * tco.server_load_fraction.value
    depreciation = (purchase_usd + tco.server_usd_per_gpu.value) / (tco.depreciation_years.value * HOURS_PER_YEAR)
    hosting = (tdp + tco.server_max_w_per_gpu.value) / 1000.0 * tco.hosting_usd_per_kw_month.value / HOURS_PER_MONTH
    electricity = (gpu_w + server_w) / 1000.0 * tco.pue.value * tco.usd_per_kwh.value
    return OwnedHour(depreciation, hosting, electricity, gpu_w, server_w, utilization)
