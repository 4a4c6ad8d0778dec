"""Measurement files: JSON lines, one record per line, appended and flushed as each result lands.

Line 1 is a header (``"record": "header"``) with the format name, the schema version and the
environment (GPU, driver, CUDA, torch, cuSPARSELt). Every later line is one result record
(``op``, ``layer``, ``model``) or a ``skip`` saying what could not be measured and why. A run
appended to an existing file writes a new header first; all headers of one file must name the
same GPU. An interrupted run leaves at most one incomplete last line, which the reader reports
(with its line number) and ignores; anything else malformed is an error naming the line.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ampersim.core.errors import InvalidData, NotFound
from ampersim.core.resources import repository_root

FORMAT = "ampersim-measurements"
SCHEMA_VERSION = 1
RECORD_KINDS = ("header", "op", "layer", "model", "skip")


@dataclass(frozen=True)
class MeasurementFile:
    """A parsed measurement file: its headers, result records (in file order) and any truncation."""

    path: Path
    headers: list[dict[str, Any]]
    records: list[dict[str, Any]]
    truncated_line: int | None = None
    skips: list[dict[str, Any]] = field(default_factory=list)

    @property
    def environment(self) -> dict[str, Any]:
        """Environment of the first run in the file (all runs share the GPU)."""
        return self.headers[0]["environment"]

    @property
    def gpu(self) -> str:
        return str(self.environment.get("gpu", "unknown"))

    @property
    def label(self) -> str:
        """The path as written into calibrated profiles' sources (see display_path)."""
        return display_path(self.path)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["record"] == kind]


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it (e.g. 'validation/h200.jsonl',
    whatever the working directory), else as given: the name profile sources and reports cite."""
    try:
        return Path(path).resolve().relative_to(repository_root()).as_posix()
    except ValueError:
        return str(path)


def header_record(environment: Mapping[str, Any], argv: list[str], created: str) -> dict[str, Any]:
    """The first line of a run: format, schema version, command line, time, environment."""
    return {"record": "header", "format": FORMAT, "schema": SCHEMA_VERSION, "created": created,
            "argv": list(argv), "environment": dict(environment)}


class MeasurementWriter:
    """Appends records to a measurement file, one JSON line each, flushed and synced per line.

    Opening an existing file requires ``append=True`` and that its first run was on the same GPU.
    """

    def __init__(self, path: str | Path, header: Mapping[str, Any], *, append: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.stat().st_size > 0:
            if not append:
                raise InvalidData(f"{self.path}: file exists and append is off: append a run to it "
                                  "or choose another file", field="append")
            existing = read_measurements(self.path)
            new_gpu = header["environment"].get("gpu")
            if existing.gpu != new_gpu:
                raise InvalidData(f"{self.path}: holds measurements of '{existing.gpu}', "
                                  f"cannot append a run on '{new_gpu}'")
            if existing.truncated_line is not None:
                _drop_partial_last_line(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO = self.path.open("a", encoding="utf-8")
        self.write(dict(header))

    def write(self, record: Mapping[str, Any]) -> None:
        kind = record.get("record")
        if kind not in RECORD_KINDS:
            raise ValueError(f"record kind must be one of {RECORD_KINDS}, got {kind!r}")
        self._handle.write(json.dumps(record, allow_nan=False, default=_jsonable) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "MeasurementWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _drop_partial_last_line(path: Path) -> None:
    """Cut an interrupted run's incomplete last line so appended records start on a fresh line."""
    data = path.read_bytes()
    path.write_bytes(data[: data.rfind(b"\n") + 1])


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(1-based line number, text, ends with newline) for each line of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"{path}: measurement file not found") from None
    except UnicodeDecodeError:
        raise InvalidData(f"{path}:1: not an ampersim measurement file (not UTF-8 text)") from None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        yield number, line.rstrip("\n"), line.endswith("\n")


def _check_header(path: Path, number: int, record: Any) -> None:
    if not (isinstance(record, dict) and record.get("format") == FORMAT and record.get("record") == "header"):
        raise InvalidData(f"{path}:{number}: not an ampersim measurement file "
                          f"(expected a header line with format '{FORMAT}')")
    if record.get("schema") != SCHEMA_VERSION:
        raise InvalidData(f"{path}:{number}: field 'schema': version {record.get('schema')!r} is not "
                          f"supported (this ampersim reads {SCHEMA_VERSION})")
    if not isinstance(record.get("environment"), dict):
        raise InvalidData(f"{path}:{number}: field 'environment': missing from the header")


def read_measurements(path: str | Path) -> MeasurementFile:
    """Parse a measurement file; InvalidData names the line of the first problem.

    An incomplete last line (no newline, not valid JSON: the run was interrupted) is skipped and
    reported in ``truncated_line``. Every record gets ``_line`` (its line number) and ``_file``
    (display_path of the file).
    """
    path = Path(path)
    headers: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    skips: list[dict[str, Any]] = []
    truncated: int | None = None
    label = display_path(path)
    for number, text, complete in _lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            if not headers:
                raise InvalidData(f"{path}:{number}: not an ampersim measurement file "
                                  "(line 1 is not JSON)") from None
            if not complete:
                truncated = number
                break
            raise InvalidData(f"{path}:{number}: malformed JSON line ({exc.msg})") from None
        if not headers:
            _check_header(path, number, record)
        kind = record.get("record") if isinstance(record, dict) else None
        if kind not in RECORD_KINDS:
            raise InvalidData(f"{path}:{number}: field 'record': {kind!r} is not one of "
                              f"{', '.join(RECORD_KINDS)}")
        if kind == "header":
            _check_header(path, number, record)
            if headers and record["environment"].get("gpu") != headers[0]["environment"].get("gpu"):
                raise InvalidData(f"{path}:{number}: run on '{record['environment'].get('gpu')}' "
                                  f"mixed into a file of '{headers[0]['environment'].get('gpu')}'")
            headers.append(record)
            continue
        record["_line"] = number
        record["_file"] = label
        (skips if kind == "skip" else records).append(record)
    if not headers:
        raise InvalidData(f"{path}:1: not an ampersim measurement file (empty)")
    return MeasurementFile(path=path, headers=headers, records=records, truncated_line=truncated,
                           skips=skips)
