"""The accuracy results file (docs/accuracy.json, written by the real-model evaluation) as read by the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError

from ampersim.core.errors import InvalidData
from ampersim.core.resources import data_dir
from ampersim.core.schema import Frozen


class Scores(Frozen):
    model_config = ConfigDict(extra="allow")

    ppl: float | None = None
    quiz_acc: float | None = None


class AccuracyRow(Scores):
    pattern: str
    scoring: str
    policy: str
    coverage: float | None = None
    ppl_delta: float | None = None
    quiz_acc_delta: float | None = None


class AccuracyResults(Frozen):
    model_config = ConfigDict(extra="allow")

    model: str
    environment: dict[str, Any] = {}
    dense: Scores
    rows: list[AccuracyRow]

    @property
    def metric(self) -> str:
        """The score the frontier uses: quiz accuracy when measured, else perplexity."""
        return "quiz_acc" if self.dense.quiz_acc is not None else "ppl"


def default_accuracy_path() -> Path | None:
    """docs/accuracy.json of a source checkout (None in an installed wheel)."""
    try:
        return data_dir("docs") / "accuracy.json"
    except FileNotFoundError:
        return None


def load_accuracy(path: str | Path) -> AccuracyResults:
    """Parse and validate an accuracy results file; InvalidData names the file and field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidData(f"{path}: cannot read accuracy results ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InvalidData(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    try:
        return AccuracyResults.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise InvalidData(f"{path}: field '{field}': {err['msg']}") from None
