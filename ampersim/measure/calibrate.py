"""Fit a profile's efficiency parameters to measurements; never judge the fit on the rows it used.

Stages, in order (each fits a few parameters on the fit-split rows of its categories, 16-bit only,
minimizing the mean squared log error of predicted vs measured time):

1. memory-bound ops (norm, elementwise, embedding; and the GEMVs, M <= 16 rows, unless stage 3 runs):
   memory_fraction, kernel_overhead_us
2. dense GEMMs: dense_gemm peak_fraction, m_half, overhead_us (tile_m × tile_n and split_k by grid search)
3. memory-bound dense GEMMs, when the rows hold GEMVs of at least two weight sizes (decode steps: every
   linear at M = batch; a straight line in bytes needs two sizes): dense_gemm memory_fraction and
   memory_latency_us, on every dense GEMM row with the compute terms of stage 2 kept
4. 2:4 sparse GEMMs: the same as stage 2 for sparse_gemm
5. attention: attention_fraction, attention_keys_half (the short-context ramp)
6. decode attention (one query per sequence over its KV cache): decode_attention_fraction, decode_attention_latency_us
7. each prune implementation measured: its bandwidth_fraction
8. interconnect (all-reduce records of a multi-GPU run): efficiency.allreduce_fraction, interconnect.latency_us

Rows of serving steps (decode and mixed steps: records with a ``step``) fit stages 3 and 6 only, the terms
prefill rows cannot pin down; every other term is fitted on prefill rows, so a decode run moves the prefill
terms only through the GEMVs (fitted in stage 3 instead of stage 1). Why: docs/validation.md (the committed
decode run is another machine, whose fused pruner runs 14 % faster; mixed into the prefill terms, it made
the held-out prefill errors worse).

Continuous parameters are searched with Nelder-Mead (numpy only) inside bounds mapped through a
sigmoid, from the middle of each range (so the result depends on the measurements, not on the
profile's assumed values; an optional parameter the profile lacks is added for its stage); tile sizes and split-K
over a small grid. Grouped (MoE expert) and 8-bit GEMM rows are validated,
not fitted: the profile has one GEMM efficiency per path for all dtypes and shapes. How grouped GEMMs execute
(``grouped``: one kernel, or one launch per group) is not fitted either: it is how the harness ran them
(ampersim.measure.ops.GROUPED_KERNEL), written into the calibrated profile.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ampersim.core.errors import InvalidArgument, InvalidData
from ampersim.core.limits import MAX_CALIBRATION_ROWS, check_at_most
from ampersim.core.sourced import PositiveSourced
from ampersim.core.yamlio import validation_message
from ampersim.hardware.profile import HardwareProfile
from ampersim.measure.ops import GROUPED_KERNEL
from ampersim.measure.records import MeasurementFile, OpMeasurement, display_path
from ampersim.measure.validate import (
    Measurements,
    Predictor,
    all_records,
    as_files,
    category_of,
    error_stats,
    resolve_holdout,
)

TILE_CHOICES = (64, 128, 256)
_NAME_RE = re.compile(HardwareProfile.model_fields["name"].metadata[0].pattern)
GEMV_ROWS = 16
FIT_DTYPES = ("bf16", "fp16")


@dataclass(frozen=True)
class Param:
    """A profile number addressed by its dotted path, searched in [lo, hi] (log scale if ``log``)."""

    path: str
    lo: float
    hi: float
    log: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    categories: tuple[str, ...]
    params: tuple[Param, ...]
    tiles: str | None = None  # "efficiency.dense_gemm" / ...sparse_gemm: grid over tile_m, tile_n, split_k
    gemv: bool = False        # also fit on memory-bound GEMMs (GEMVs) costed by these parameters
    serving: bool = False     # also fit on the ops of serving steps (decode, mixed; else prefill rows only)

    def takes(self, record: OpMeasurement) -> bool:
        if record.step is not None and not self.serving:
            return False
        if category_of(record) in self.categories:
            return True
        return self.gemv and is_gemv(record)


def is_gemv(record: OpMeasurement) -> bool:
    """A dense 16-bit GEMM of at most GEMV_ROWS rows: it streams its weights (lm_head on the last token, decode)."""
    return category_of(record) == "dense_gemm" and record.measured.M <= GEMV_ROWS


def fits_gemm_memory(rows: Sequence[OpMeasurement]) -> bool:
    """Whether ``rows`` determine the memory-bound GEMM's latency and bandwidth: GEMVs of two weight sizes."""
    return len({(r.measured.N, r.measured.K) for r in rows if is_gemv(r)}) >= 2


def stages(prune_impls: Sequence[str], interconnect: bool = True, gemm_memory: bool = False) -> list[Stage]:
    """The calibration stages in order; ``gemm_memory``: fit the dense GEMM path's own memory_fraction and
    memory_latency_us (else GEMVs are costed at the streaming memory_fraction and fitted with it)."""
    gemm = lambda path: (Param(f"{path}.peak_fraction", 0.3, 1.0), Param(f"{path}.m_half", 1.0, 4096.0, log=True),  # noqa: E731
                         Param(f"{path}.overhead_us", 0.1, 60.0, log=True))
    dense_memory = (Param("efficiency.dense_gemm.memory_fraction", 0.3, 1.0),
                    Param("efficiency.dense_gemm.memory_latency_us", 0.01, 100.0, log=True))
    out = [
        Stage("memory-bound ops", ("norm", "elementwise", "embedding"),
              (Param("efficiency.memory_fraction", 0.3, 1.0), Param("efficiency.kernel_overhead_us", 0.1, 30.0, log=True)),
              gemv=not gemm_memory),
        Stage("dense GEMM", ("dense_gemm",), gemm("efficiency.dense_gemm"), tiles="efficiency.dense_gemm"),
        *([Stage("memory-bound dense GEMM", ("dense_gemm",), dense_memory, serving=True)] if gemm_memory else []),
        Stage("2:4 sparse GEMM", ("sparse_gemm",), gemm("efficiency.sparse_gemm"), tiles="efficiency.sparse_gemm"),
        Stage("attention", ("attention",), (Param("efficiency.attention_fraction", 0.1, 1.0),
                                            Param("efficiency.attention_keys_half", 1.0, 65536.0, log=True))),
        Stage("decode attention", ("decode_attention",),
              (Param("efficiency.decode_attention_fraction", 0.3, 1.0),
               Param("efficiency.decode_attention_latency_us", 0.01, 100.0, log=True)), serving=True),
    ]
    for impl in prune_impls:
        out.append(Stage(f"prune {impl}", (f"prune:{impl}",),
                         (Param(f"prune_impls.{impl}.bandwidth_fraction", 1e-3, 1.0, log=True),)))
    if interconnect:
        out.append(Stage("interconnect", ("allreduce",), (Param("efficiency.allreduce_fraction", 0.05, 1.0),
                                                          Param("interconnect.latency_us", 0.1, 300.0, log=True))))
    return out


# -- reading and writing profile numbers by path ---------------------------------------------------
def get_value(profile: HardwareProfile, path: str) -> float:
    node: Any = profile
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return float(node.value)


def with_values(profile: HardwareProfile, values: dict[str, float], sources: dict[str, str] | None = None) -> HardwareProfile:
    """A copy of ``profile`` with the Sourced numbers at ``values``' paths replaced (and re-sourced).

    Copies without re-validation (fast, for the search); ``calibrate`` validates the result."""
    for path, value in values.items():
        if isinstance(value, bool):  # a plain switch (e.g. split_k), not a sourced number
            profile = _replace(profile, path.split("."), value)
            continue
        update = {"value": float(value)}
        if sources and path in sources:
            update.update(source=sources[path], date=None)
        profile = _replace(profile, path.split("."), update)
    return profile


def _replace(node: Any, parts: list[str], update: Any) -> Any:
    if not parts:
        return node.model_copy(update=update) if isinstance(update, dict) else update
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, update)}
    return node.model_copy(update={head: _replace(getattr(node, head), rest, update)})


# -- search ---------------------------------------------------------------------------------------
def _to_value(u: np.ndarray, params: Sequence[Param]) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(-u))
    out = np.empty_like(u)
    for i, p in enumerate(params):
        out[i] = math.exp(math.log(p.lo) + s[i] * (math.log(p.hi) - math.log(p.lo))) if p.log else p.lo + s[i] * (p.hi - p.lo)
    return out


def _to_u(values: Sequence[float], params: Sequence[Param]) -> np.ndarray:
    u = []
    for v, p in zip(values, params):
        if p.log:
            s = (math.log(v) - math.log(p.lo)) / (math.log(p.hi) - math.log(p.lo))
        else:
            s = (v - p.lo) / (p.hi - p.lo)
        s = min(max(s, 1e-4), 1 - 1e-4)
        u.append(math.log(s / (1 - s)))
    return np.array(u)


def nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, step: float = 0.5, iters: int = 400,
                tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Minimize ``f`` from ``x0`` (standard reflection/expansion/contraction/shrink)."""
    n = x0.size
    simplex = np.vstack([x0] + [x0 + step * np.eye(n)[i] for i in range(n)])
    values = np.array([f(x) for x in simplex])
    for _ in range(iters):
        order = np.argsort(values)
        simplex, values = simplex[order], values[order]
        if values[-1] - values[0] < tol:
            break
        centroid = simplex[:-1].mean(axis=0)
        reflected = centroid + (centroid - simplex[-1])
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2.0 * (centroid - simplex[-1])
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                simplex[1:] = simplex[0] + 0.5 * (simplex[1:] - simplex[0])
                values[1:] = [f(x) for x in simplex[1:]]
    best = int(np.argmin(values))
    return simplex[best], float(values[best])


def fit_stage(profile: HardwareProfile, stage: Stage, records: list[OpMeasurement]) -> tuple[dict[str, float], float]:
    """Best values of the stage's parameters (and its tile sizes) on ``records``; (values, loss)."""
    predictor = Predictor(records)
    measured = predictor.measured
    params = list(stage.params)

    def loss_for(base: HardwareProfile) -> Callable[[np.ndarray], float]:
        def loss(u: np.ndarray) -> float:
            values = dict(zip((p.path for p in params), _to_value(u, params)))
            predicted = predictor.predict(with_values(base, values))
            return float(np.mean(np.log(predicted / measured) ** 2))
        return loss

    tile_sets: list[dict[str, Any]] = [{}]
    if stage.tiles:
        tile_sets = [{f"{stage.tiles}.tile_m": tm, f"{stage.tiles}.tile_n": tn, f"{stage.tiles}.split_k": split}
                     for tm in TILE_CHOICES for tn in TILE_CHOICES for split in (True, False)]
    best: tuple[dict[str, float], float] | None = None
    for tiles in tile_sets:
        base = with_values(profile, tiles) if tiles else profile
        u, loss = nelder_mead(loss_for(base), np.zeros(len(params)))  # the middle of every range
        if best is None or loss < best[1]:
            best = ({**tiles, **dict(zip((p.path for p in params), _to_value(u, params)))}, loss)
    assert best is not None
    return best


def calibrated_name(path: str | Path) -> str:
    """The name of the profile calibrate writes to ``path``: the file's stem, which must be a valid
    profile name and must not be the name or alias of another profile (loading by that name would give
    the other one; hardware_profiles/calibrated/ also requires name = file stem)."""
    from ampersim.hardware.registry import profile_file

    path = Path(path)
    name = path.stem
    if not _NAME_RE.match(name):
        raise InvalidArgument(f"out {path}: the profile is named after its file, and '{name}' is not a profile name "
                              "(lower-case letters, digits, '.' and '-', starting with a letter or digit)", field="out")
    other = profile_file(name)
    if other is not None and other.resolve() != path.resolve():
        raise InvalidArgument(f"out {path}: the profile is named after its file, and '{name}' already names "
                              f"{display_path(other)}; choose another file name", field="out")
    return name


def calibrate(measurements: Measurements, profile: HardwareProfile, holdout: Sequence[str] | None = None,
              sparse_gemm_impl: str | None = None, *, name: str | None = None
              ) -> tuple[HardwareProfile, list[dict[str, Any]], list[str]]:
    """Fit every stage that has fit-split rows; return (calibrated profile, stage reports, holdout).

    ``measurements``: one file or several (e.g. single-GPU ops plus a multi-GPU all-reduce run); each
    fitted number's source names the file(s) whose rows fitted it. ``sparse_gemm_impl``: the sparse-GEMM
    implementation the measured 2:4 GEMMs ran, when it is not the profile's own (``efficiency.sparse_gemm_impl``):
    then only the 2:4 GEMM stage is fitted, into ``efficiency.sparse_gemm_alternatives[sparse_gemm_impl]``,
    and every other number of ``profile`` is kept (how a second implementation joins a calibrated profile).
    ``name``: the calibrated profile's name (default ``<profile>-calibrated``, or the calibrated profile's own;
    `ampersim calibrate` uses ``calibrated_name`` of its output). Refused (InvalidArgument/InvalidData, nothing
    returned): a holdout naming an unmeasured model or leaving no rows to fit, and a fit that fails its check
    (an error or value that is not a finite number, a profile that does not validate)."""
    files = as_files(measurements)
    records = all_records(files)
    holdout = resolve_holdout(holdout, [r.model for r in records])
    usable = [r for r in records if r.dtype in FIT_DTYPES and isinstance(r, OpMeasurement)]
    fit_rows = [r for r in usable if r.model not in holdout]
    check_at_most(len(fit_rows), MAX_CALIBRATION_ROWS, "measurements", "the 16-bit op rows to fit")
    if not fit_rows:
        raise InvalidArgument(f"holdout: holding out {', '.join(holdout) or 'nothing'} leaves no 16-bit op rows to "
                              f"fit (fit rows come from the models not held out; measured: "
                              f"{', '.join(dict.fromkeys(r.model for r in records))})", field="holdout")
    if sparse_gemm_impl not in (None, profile.efficiency.sparse_gemm_impl):
        calibrated, report = _calibrate_alternative(files, profile, fit_rows, sparse_gemm_impl, name)
        return calibrated, [report], holdout
    measured_impls = sorted({r.prune_impl for r in fit_rows if r.variant == "prune"
                             and r.prune_impl in profile.prune_impls})
    current = profile
    gemm_memory = fits_gemm_memory(fit_rows)
    if not gemm_memory:  # GEMVs are costed (and fitted) at the streaming memory fraction
        current = _replace(current, ["efficiency", "dense_gemm"], current.efficiency.dense_gemm.model_copy(
            update={"memory_fraction": None, "memory_latency_us": None}))
    reports = []
    for stage in stages(measured_impls, interconnect=profile.interconnect is not None, gemm_memory=gemm_memory):
        rows = [r for r in fit_rows if stage.takes(r)]
        if not rows:
            reports.append({"stage": stage.name, "n": 0, "note": "no fit rows: parameters kept"})
            continue
        current, report = _fit_and_source(current, stage, rows)
        reports.append(report)
    if any(isinstance(r, OpMeasurement) and r.op.kind in ("gemm", "sparse_gemm") for r in records):
        current = with_values(current, {f"efficiency.{path}_gemm.grouped": grouped
                                        for path, grouped in GROUPED_KERNEL.items()})
    labels = ", ".join(f.label for f in files)
    runs = "; ".join(_run_description(f) for f in files)
    fit_models = ", ".join(sorted({r.model for r in fit_rows}))
    notes = (f"Efficiency parameters calibrated by `ampersim calibrate` on {runs}; fit on {fit_models}, held out: "
             f"{', '.join(holdout) or 'none'}. Grouped GEMMs (MoE experts) run as the measurements ran them: dense "
             f"as one kernel (torch.bmm), 2:4 as one _cslt_sparse_mm call per group (torch has no grouped 2:4 GEMM). "
             f"Peaks, memory, prices etc. are those of the shipped profile '{profile.name}'. {profile.notes}")
    data = current.model_dump(mode="python")
    data.update(name=name or f"{profile.name}-calibrated", display_name=f"{profile.display_name} (calibrated)",
                aliases=[], status="calibrated", calibrated_from=labels, notes=notes,
                base_profile=profile.base_profile or profile.name)
    return _validated(data), reports, holdout


def _validated(data: dict[str, Any]) -> HardwareProfile:
    """The calibrated profile, or InvalidData: a fit that does not make a valid profile failed its check."""
    try:
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        raise InvalidData(f"calibration failed its check: {validation_message('the calibrated profile', exc)}; "
                          "no profile written") from None


def _with_optional_params(profile: HardwareProfile, params: Sequence[Param]) -> HardwareProfile:
    """``profile`` with a placeholder (the middle of its search range) for each optional parameter it lacks,
    so that the stage can set it."""
    for p in params:
        parent, name = p.path.rsplit(".", 1)
        node: Any = profile
        for part in parent.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        if getattr(node, name) is None:
            middle = float(_to_value(np.zeros(1), [p])[0])
            profile = _replace(profile, p.path.split("."), PositiveSourced(
                value=middle, source="assumed: starting point of the calibration search"))
    return profile


def _calibrate_alternative(files: list[MeasurementFile], profile: HardwareProfile, fit_rows: list[OpMeasurement],
                           name: str, profile_name: str | None) -> tuple[HardwareProfile, dict[str, Any]]:
    """``profile`` with its sparse-GEMM implementation ``name`` (an alternative) fitted on the 2:4 GEMM rows
    (named ``profile_name`` if given)."""
    own = profile.efficiency.sparse_gemm_impl
    eff = profile.efficiency
    if name not in eff.sparse_gemm_alternatives:  # a new one starts as a copy of the profile's own (every fitted
        alternatives = {**eff.sparse_gemm_alternatives, name: eff.sparse_gemm}  # value is searched from mid-range)
        eff = eff.model_copy(update={"sparse_gemm_alternatives": alternatives})
    current = profile.model_copy(update={"efficiency": eff}).with_sparse_gemm(name)
    stage = next(s for s in stages(()) if s.categories == ("sparse_gemm",))
    stage = dataclasses.replace(stage, name=f"{stage.name} ({name})")
    rows = [r for r in fit_rows if stage.takes(r)]
    if not rows:
        raise InvalidData(f"{', '.join(f.label for f in files)}: no 16-bit 2:4 GEMM rows of a fit model to calibrate "
                          f"sparse-GEMM implementation {name} on")
    current, report = _fit_and_source(current, stage, rows)
    current = with_values(current, {"efficiency.sparse_gemm.grouped": GROUPED_KERNEL["sparse"]}).with_sparse_gemm(own)
    sources = [*(profile.calibrated_from or "").split(", "), *(f.label for f in files)]
    note = (f"Sparse-GEMM implementation {name} calibrated by `ampersim calibrate` on "
            f"{'; '.join(_run_description(f) for f in files)}.")
    data = current.model_dump(mode="python")
    data.update(calibrated_from=", ".join(dict.fromkeys(x for x in sources if x)),
                notes=profile.notes if note in profile.notes else f"{profile.notes} {note}".strip())
    if profile.status != "calibrated":
        data.update(name=f"{profile.name}-calibrated", display_name=f"{profile.display_name} (calibrated)",
                    aliases=[], status="calibrated", base_profile=profile.name)
    if profile_name is not None:
        data.update(name=profile_name, aliases=[] if profile_name != profile.name else profile.aliases)
    return _validated(data), report


def _fit_and_source(current: HardwareProfile, stage: Stage, rows: list[OpMeasurement]
                    ) -> tuple[HardwareProfile, dict[str, Any]]:
    """``current`` with ``stage`` fitted on ``rows`` (each value sourced to their files), and the stage report."""
    before = error_stats(Predictor(rows).predict(current), Predictor(rows).measured)
    current = _with_optional_params(current, stage.params)
    values, _ = fit_stage(current, stage, rows)
    values = {k: v if isinstance(v, bool) else float(f"{v:.4g}") for k, v in values.items()}
    where = ", ".join(dict.fromkeys(r.file for r in rows))
    models = ", ".join(sorted({r.model for r in rows}))
    sources = {path: (f"measured: {where} (ampersim calibrate, stage '{stage.name}': fit on {len(rows)} "
                      f"{models} rows; MAPE before {before['mape_pct']:.1f} %)") for path in values}
    current = with_values(current, values, sources)
    after = error_stats(Predictor(rows).predict(current), Predictor(rows).measured)
    if not all(math.isfinite(v) for v in (before["mape_pct"], after["mape_pct"], *values.values())):
        raise InvalidData(f"calibration stage '{stage.name}' failed its check: fit MAPE {after['mape_pct']:g} % on "
                          f"{len(rows)} rows, values {values}; no profile written")
    return current, {"stage": stage.name, "n": len(rows), "fit_mape_before_pct": before["mape_pct"],
                     "fit_mape_after_pct": after["mape_pct"], "values": values}


def _run_description(measured: MeasurementFile) -> str:
    env = measured.environment
    nccl = f", NCCL {env.nccl} on {env.world_size} GPUs" if env.nccl is not None else ""
    return f"{measured.label}: {env.gpu}, torch {env.torch}, CUDA {env.cuda}, cuSPARSELt {env.cusparselt}{nccl}"


def profile_yaml(profile: HardwareProfile) -> str:
    """The profile as YAML in the shipped files' field order."""
    import yaml

    header = (f"# {profile.display_name}: written by `ampersim calibrate`; efficiency numbers say 'measured: <file>'.\n"
              f"# Load it by this file's path (--profile path/to/{profile.name}.yaml); copied into "
              f"hardware_profiles/calibrated/ it also loads by its name, {profile.name}.\n")
    return header + yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False,
                                   allow_unicode=True, width=110)
