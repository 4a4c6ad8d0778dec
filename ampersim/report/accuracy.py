"""The accuracy results file (docs/accuracy.json, written by benchmarks/accuracy_study.py) as read by the report.

Format (one study, several models)::

    {"environment": {...}, "evaluation": {...},
     "models": [{"model": "smollm2-135m", "parameters": 134515008, "family": "llama",
                 "evaluation": {...}, "dense": {"ppl": ..., "code_ppl": ..., "quiz_acc": ...},
                 "rows": [{"pattern": "8:16", "scoring": "amber", "policy": "amber", "coverage": ...,
                           "ppl": ..., "ppl_ratio": ..., "quiz_acc": ..., "quiz_acc_delta": ..., ...}],
                 "extra_rows": [...]}]}

``rows`` is the grid pattern x scoring x policy (default amber outliers, no quantization);
``extra_rows`` hold the other variants (``outliers: drop``, ``outstanding: true`` = + W8A8).
The single-model file of earlier versions (``model``, ``dense``, ``rows`` at the top level) is read too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError

from ampersim.core.errors import InvalidData, not_found
from ampersim.core.limits import MAX_DATA_FILE_BYTES, read_limited
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
    outstanding: bool = False  # a W8A8 variant (inverse SmoothQuant + simulated W8A8): accuracy only
    coverage: float | None = None
    ppl_delta: float | None = None
    quiz_acc_delta: float | None = None
    quiz_acc_delta_stderr: float | None = None


class AccuracyResults(Frozen):
    """One model's dense scores and pruned variants."""

    model_config = ConfigDict(extra="allow")

    model: str
    environment: dict[str, Any] = {}
    parameters: int | None = None
    family: str | None = None
    dense: Scores
    rows: list[AccuracyRow]
    extra_rows: list[AccuracyRow] = []

    @property
    def metric(self) -> str:
        """The score the frontier uses: quiz accuracy when measured, else perplexity."""
        return "quiz_acc" if self.dense.quiz_acc is not None else "ppl"


class AccuracyFile(Frozen):
    """An accuracy results file: every model of one study, in the study's order."""

    model_config = ConfigDict(extra="allow")

    environment: dict[str, Any] = {}
    models: list[AccuracyResults]

    def for_model(self, name: str | None = None) -> AccuracyResults:
        """The results of model ``name`` (default: the first model of the study)."""
        if name is None:
            return self.models[0]
        for results in self.models:
            if results.model == name:
                return results
        raise not_found("model in the accuracy results", name, [m.model for m in self.models])


def default_accuracy_path() -> Path | None:
    """docs/accuracy.json of a source checkout (None in an installed wheel)."""
    try:
        return data_dir("docs") / "accuracy.json"
    except FileNotFoundError:
        return None


def load_accuracy_file(path: str | Path) -> AccuracyFile:
    """Parse and validate an accuracy results file; InvalidData names the file and field."""
    path = Path(path)
    raw = read_limited(path, MAX_DATA_FILE_BYTES, "accuracy results file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidData(f"{path}: not UTF-8 text (offset {exc.start}); an accuracy results file is JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidData(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    single = isinstance(data, dict) and "models" not in data and "model" in data  # earlier single-model file
    try:
        if single:
            results = AccuracyResults.model_validate(data)
            study = AccuracyFile(environment=results.environment, models=[results])
        else:
            study = AccuracyFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise InvalidData(f"{path}: field '{field}': {err['msg']}") from None
    if not study.models:
        raise InvalidData(f"{path}: field 'models': no model results")
    names = [m.model for m in study.models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidData(f"{path}: field 'models': model {', '.join(twice)} listed more than once")
    return study


def load_accuracy(path: str | Path, model: str | None = None) -> AccuracyResults:
    """One model's results from an accuracy results file (default: the study's first model)."""
    return load_accuracy_file(path).for_model(model)
