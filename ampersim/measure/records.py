"""Measurement files: JSON lines, one typed record per line, appended and flushed as each result lands.

Line 1 is a ``header`` (format name, schema version, command line, time, environment). Every later
line is a result (``op``: one op of the graph; ``layer``: a whole decoder layer; ``model``: the whole
model) or a ``skip`` saying what could not be measured and why. A result of a decode or mixed step
says so in ``step``; without it the record is a prefill step. A run appended to an existing file
writes a new header first; all headers of one file must name the same GPU. Each kind is a frozen
pydantic model: writing takes only these, reading validates every line and names the file, line
and field of the first problem. An interrupted run leaves at most one incomplete last line, which
the reader reports (with its line number) and ignores.

Fields that files written by earlier versions of the harness lack are optional; each says what
its absence means.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TextIO

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ampersim.core.errors import InvalidData
from ampersim.core.limits import MAX_DATA_FILE_BYTES, read_limited
from ampersim.core.outputs import check_output
from ampersim.core.resources import repository_root
from ampersim.core.schema import Frozen
from ampersim.core.vocab import DecoderLinearKind, DiagnosticPruneImpl, DType, MixedStepMode, PruneImplName, Scoring
from ampersim.measure.harness import Timing
from ampersim.sim.graph import BatchShape, DecodeShape, OpRecord, StepShape

FORMAT = "ampersim-measurements"
SCHEMA_VERSION = 1


class _Model(Frozen):
    model_config = ConfigDict(populate_by_name=True)


class _Record(_Model):
    """A line of the file; ``record`` (its kind) comes first, each kind fixes its value."""

    record: str


class Environment(_Model):
    """Where a run was measured (ampersim.measure.env.capture_environment). Only ``gpu`` is always
    there; a CPU dry run records no GPU details (None), a multi-GPU run adds its NCCL fields."""

    gpu: str
    device: Literal["cuda", "cpu"] | None = None
    profile: str | None = Field(None, description="shipped profile of this GPU; None: none matches")
    torch: str | None = None
    python: str | None = None
    platform: str | None = None
    sm_count: int | None = None
    l2_bytes: int | None = None
    memory_bytes: int | None = None
    capability: str | None = None
    cuda: str | None = None
    cusparselt: int | None = Field(None, description="cuSPARSELt version; None: not available")
    driver: str | None = None
    nvidia_smi: dict[str, str] = Field(default_factory=dict, description="clocks, power limit, temperature")
    world_size: int | None = Field(None, description="GPUs of a multi-GPU run (benchmarks/allreduce_bench.py)")
    nccl: str | None = None
    nccl_nvls_enable: str | None = None


class HeaderRecord(_Record):
    """The first line of a run."""

    record: Literal["header"] = "header"
    format: Literal["ampersim-measurements"] = FORMAT
    schema_version: int = Field(SCHEMA_VERSION, alias="schema")
    created: str
    argv: list[str]
    environment: Environment


class Check(_Model):
    """The correctness check that passed before anything was timed (a failed one is a skip)."""

    rel_err: float = Field(ge=0)
    tol: float = Field(ge=0)
    ok: bool
    what: str | None = Field(None, description="what was compared; None (op records): the op vs its float64 reference")


class MeasuredShape(_Model):
    """The shape actually timed: rows rounded up to whole tokens (and the sparse kernel's row
    multiple), whole groups; ``sets`` input sets rotated so that runs stream from device memory."""

    M: float = Field(ge=0)
    N: float = Field(ge=0)
    K: float = Field(ge=0)
    groups: int = Field(ge=1)
    sets: int = Field(ge=1)
    launches: int | None = Field(None, ge=1, description="GEMM kernel launches per call (one per group where no "
                                                   "grouped kernel exists); None: not recorded (other ops, "
                                                   "and GEMMs in files written before the field)")


class GemmChoice(_Model):
    """The cuSPARSELt algorithm a 2:4 GEMM ran with."""

    alg: tuple[int, int, int] = Field(description="(alg_id, split_k, split_k_mode)")


class StepPoint(_Model):
    """A serving step: ``decode_batch`` sequences decoding one token each with ``decode_context``
    tokens in their KV cache (the new one included), beside the record's ``tokens`` prefill tokens:
    one chunk after ``prefill_offset`` cached tokens (0 tokens: a decode-only step). ``mixed``: how
    the sparse path runs a step with both (core.vocab.MIXED_STEP_MODES)."""

    decode_batch: int = Field(ge=0)
    decode_context: int = Field(ge=0)
    prefill_offset: int = Field(0, ge=0)
    mixed: MixedStepMode = "split"

    def shape(self, tokens: int) -> StepShape:
        """The step's shape for the op graph (ampersim.sim.graph.graph_for_step)."""
        return StepShape(
            prefill=BatchShape.from_chunks([(self.prefill_offset, tokens)]) if tokens else None,
            decode=DecodeShape.from_contexts([self.decode_context] * self.decode_batch) if self.decode_batch else None)


class _Result(_Record):
    """What every result carries: the workload point measured, the check, the timing, and where
    it was read from (``file``, ``line``: set by the reader, never written)."""

    workload: str
    model: str
    tokens: int = Field(ge=0)
    batch: int = Field(ge=1)
    dtype: DType
    tp: int = Field(ge=1)
    pattern: str | None = Field(description="N:M of the sparse paths; None: a dense-only run (all-reduce)")
    policy: str
    scoring: Scoring | None = Field(description="None: a dense-only run (all-reduce)")
    variant: str
    prune_impl: PruneImplName | DiagnosticPruneImpl | None
    check: Check
    timing: Timing
    note: str = ""
    step: StepPoint | None = Field(None, description="a decode or mixed step; None: a prefill step of ``batch`` "
                                                     "prompts of ``tokens`` tokens (every record before decode)")
    file: str = Field("", exclude=True)
    line: int = Field(0, exclude=True)

    @field_validator("variant")
    @classmethod
    def _sparse_needs_pattern(cls, variant: str, info: ValidationInfo) -> str:
        if variant in ("sparse", "prune") and info.data.get("pattern") is None:
            raise ValueError(f"a '{variant}' record needs its N:M pattern; 'pattern' is null")
        return variant


class OpMeasurement(_Result):
    """One op of the graph (``op``), timed as ``variant``: dense, sparse (2:4 GEMM), eager (the
    eager-torch diagnostic of an op that runs as one fused kernel) or prune (``prune_impl``)."""

    record: Literal["op"] = "op"
    variant: Literal["dense", "sparse", "eager", "prune"]
    op: OpRecord
    also: list[str] = Field(description="other ops of the graph with the same shape, not timed again")
    measured: MeasuredShape
    impl: str = Field(description="the torch implementation timed")
    extra: GemmChoice | None = Field(None, description="2:4 GEMMs only")


class LayerMeasurement(_Result):
    """A whole decoder layer (``layer``, standing for every layer in ``layers``), dense or with the
    inputs of ``sparse_kinds`` pruned by ``prune_impl``."""

    record: Literal["layer"] = "layer"
    variant: Literal["dense", "sparse"]
    layer: int
    layers: tuple[int, ...]
    sparse_kinds: tuple[DecoderLinearKind, ...]
    timing_eager: Timing = Field(description="back-to-back eager calls (``timing``: CUDA-graph replay)")


class ModelMeasurement(_Result):
    """The whole model (``layers`` decoder layers, random weights), dense or sparsified by its policy."""

    record: Literal["model"] = "model"
    variant: Literal["dense", "sparse"]
    layers: int
    timing_eager: Timing = Field(description="back-to-back eager forwards (``timing``: CUDA-graph replay)")


class SkipRecord(_Record):
    """A planned measurement that did not happen, and why."""

    record: Literal["skip"] = "skip"
    what: str
    reason: str
    file: str = Field("", exclude=True)
    line: int = Field(0, exclude=True)


Result = OpMeasurement | LayerMeasurement | ModelMeasurement
Record = HeaderRecord | OpMeasurement | LayerMeasurement | ModelMeasurement | SkipRecord
RECORD_TYPES: Mapping[str, type[Record]] = MappingProxyType({
    "header": HeaderRecord, "op": OpMeasurement, "layer": LayerMeasurement, "model": ModelMeasurement,
    "skip": SkipRecord,
})
"""Each record kind (the ``record`` field) -> its model."""


@dataclass(frozen=True)
class MeasurementFile:
    """A parsed measurement file: its headers, result records and skips (in file order), and the
    line number of an incomplete last line (None if the file is whole)."""

    path: Path
    headers: list[HeaderRecord]
    records: list[Result]
    skips: list[SkipRecord]
    truncated_line: int | None = None

    @property
    def environment(self) -> Environment:
        """Environment of the first run in the file (all runs share the GPU)."""
        return self.headers[0].environment

    @property
    def gpu(self) -> str:
        return self.environment.gpu

    @property
    def label(self) -> str:
        """The path as written into calibrated profiles' sources (see display_path)."""
        return display_path(self.path)


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it (e.g. 'validation/h200.jsonl',
    whatever the working directory), else as given: the name profile sources and reports cite."""
    try:
        return Path(path).resolve().relative_to(repository_root()).as_posix()
    except ValueError:
        return str(path)


def header_record(environment: Environment | Mapping[str, Any], argv: list[str], created: str) -> HeaderRecord:
    """The first line of a run: format, schema version, command line, time, environment."""
    return HeaderRecord(created=created, argv=list(argv), environment=Environment.model_validate(environment))


def check_measurement_output(path: str | Path, *, append: bool) -> Path:
    """``path`` if a run can be written there (core.outputs.check_output; an existing file only with
    ``append``): what `ampersim measure` checks before it starts."""
    out = check_output(path, "out")
    if out.exists() and out.stat().st_size > 0 and not append:
        raise InvalidData(f"{out}: file exists and append is off: append a run to it or choose another file",
                          field="append")
    return out


class MeasurementWriter:
    """Appends records to a measurement file, one JSON line each, flushed and synced per line.

    Opening an existing file requires ``append=True`` and that its first run was on the same GPU.
    """

    def __init__(self, path: str | Path, header: HeaderRecord, *, append: bool = False) -> None:
        self.path = check_measurement_output(path, append=append)
        if self.path.exists() and self.path.stat().st_size > 0:
            existing = read_measurements(self.path)
            if existing.gpu != header.environment.gpu:
                raise InvalidData(f"{self.path}: holds measurements of '{existing.gpu}', "
                                  f"cannot append a run on '{header.environment.gpu}'")
            if existing.truncated_line is not None:
                _drop_partial_last_line(self.path)
        self._handle: TextIO = self.path.open("a", encoding="utf-8")
        self.write(header)

    def write(self, record: Record) -> None:
        """Append one record (a validated model: plain dicts are refused)."""
        if not isinstance(record, tuple(RECORD_TYPES.values())):
            raise TypeError(f"a measurement record must be one of {', '.join(t.__name__ for t in RECORD_TYPES.values())}, "
                            f"got {type(record).__name__}")
        data = record.model_dump(mode="json", by_alias=True)
        self._handle.write(json.dumps(data, allow_nan=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> MeasurementWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_partial_last_line(path: Path) -> None:
    """Cut an interrupted run's incomplete last line so appended records start on a fresh line."""
    data = path.read_bytes()
    path.write_bytes(data[: data.rfind(b"\n") + 1])


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(1-based line number, text, ends with newline) for each line of ``path``."""
    try:
        text = read_limited(path, MAX_DATA_FILE_BYTES, "measurement file").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidData(f"{path}:1: not an ampersim measurement file (not UTF-8 text)") from None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        yield number, line.rstrip("\n"), line.endswith("\n")


def _check_header(path: Path, number: int, data: Any) -> None:
    if not (isinstance(data, dict) and data.get("format") == FORMAT and data.get("record") == "header"):
        raise InvalidData(f"{path}:{number}: not an ampersim measurement file "
                          f"(expected a header line with format '{FORMAT}')")
    if data.get("schema") != SCHEMA_VERSION:
        raise InvalidData(f"{path}:{number}: field 'schema': version {data.get('schema')!r} is not "
                          f"supported (this ampersim reads {SCHEMA_VERSION})")


def _parse(path: Path, number: int, data: dict[str, Any], kind: str) -> Record:
    """Validate one line as its record kind; InvalidData names the file, line and field."""
    try:
        return RECORD_TYPES[kind].model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise InvalidData(f"{path}:{number}: field '{field}': {error['msg']}") from None


def read_measurements(path: str | Path) -> MeasurementFile:
    """Parse a measurement file; InvalidData names the line (and field) of the first problem.

    An incomplete last line (no newline, not valid JSON: the run was interrupted) is skipped and
    reported in ``truncated_line``. Results and skips carry ``file`` (display_path of the file) and
    ``line`` (their line number).
    """
    path = Path(path)
    headers: list[HeaderRecord] = []
    records: list[Result] = []
    skips: list[SkipRecord] = []
    truncated: int | None = None
    where = {"file": display_path(path)}
    for number, text, complete in _lines(path):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if not headers:
                raise InvalidData(f"{path}:{number}: not an ampersim measurement file "
                                  "(line 1 is not JSON)") from None
            if not complete:
                truncated = number
                break
            raise InvalidData(f"{path}:{number}: malformed JSON line ({exc.msg})") from None
        if not headers:
            _check_header(path, number, data)
        kind = data.get("record") if isinstance(data, dict) else None
        if not isinstance(kind, str) or kind not in RECORD_TYPES:
            raise InvalidData(f"{path}:{number}: field 'record': {kind!r} is not one of "
                              f"{', '.join(RECORD_TYPES)}")
        if kind == "header":
            _check_header(path, number, data)
        record = _parse(path, number, data, kind)
        if isinstance(record, HeaderRecord):
            if headers and record.environment.gpu != headers[0].environment.gpu:
                raise InvalidData(f"{path}:{number}: run on '{record.environment.gpu}' "
                                  f"mixed into a file of '{headers[0].environment.gpu}'")
            headers.append(record)
        elif isinstance(record, SkipRecord):
            skips.append(record.model_copy(update={**where, "line": number}))
        else:
            records.append(record.model_copy(update={**where, "line": number}))
    if not headers:
        raise InvalidData(f"{path}:1: not an ampersim measurement file (empty)")
    return MeasurementFile(path=path, headers=headers, records=records, skips=skips, truncated_line=truncated)
