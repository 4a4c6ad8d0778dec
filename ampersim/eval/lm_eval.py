"""lm-evaluation-harness adapter (optional extra: ``pip install 'ampersim[lm-eval]'``).

``evaluate_tasks`` wraps the live model — sparsify hooks attached or not — in lm-eval's ``HFLM``
and runs lm-eval's own tasks on it. HFLM calls the model's forward, so the sparsify handle sees
every call: log-likelihood requests (multiple-choice tasks) are whole-sequence forward passes, i.e.
prefill, and are pruned; in generation tasks the prompt pass is pruned and every one-token decode
step stays dense, exactly as in :func:`ampersim.sparsify`.

The project's quiz is exposed as the lm-eval task ``ampersim_quiz`` over local files (a JSONL of the
experiment's questions and a task YAML in a temporary folder), so it runs offline. Other tasks need
their datasets to be reachable (or already in the Hugging Face datasets cache); nothing else here
needs a network. Per-document correctness is kept for paired deltas.
"""
from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument, MissingDependency
from ampersim.eval.data import Question
from ampersim.eval.metrics import QuizResult

if TYPE_CHECKING:
    from ampersim.models.load import LoadedModel

LOCAL_QUIZ_TASK = "ampersim_quiz"
INSTALL = "pip install 'ampersim[lm-eval]'  (lm-eval==0.4.13)"

# A multiple-choice task over a local JSONL: prompt, choices (each with its leading space), answer.
_QUIZ_TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def _missing() -> MissingDependency:
    return MissingDependency(f"lm-eval tasks need lm-evaluation-harness; install it with: {INSTALL}")


def check_installed() -> None:
    """Refuse lm-eval tasks without lm-evaluation-harness, cheaply (no import): before a model loads."""
    if importlib.util.find_spec("lm_eval") is None:
        raise _missing()


def _import_lm_eval() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download models; datasets only if a task asks
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except ImportError:
        raise _missing() from None
    return lm_eval


def write_quiz_task(questions: Sequence[Question], folder: Path) -> Path:
    """Write ``questions`` as the local lm-eval task ``ampersim_quiz`` into ``folder``; return it."""
    if not questions:
        raise InvalidArgument(f"the {LOCAL_QUIZ_TASK} task needs quiz questions", field="eval")
    data = folder / f"{LOCAL_QUIZ_TASK}.jsonl"
    with data.open("w", encoding="utf-8") as out:
        for q in questions:
            out.write(json.dumps({"prompt": q.prompt, "choices": list(q.choices), "answer": q.answer}) + "\n")
    (folder / f"{LOCAL_QUIZ_TASK}.yaml").write_text(
        _QUIZ_TASK_YAML.format(task=LOCAL_QUIZ_TASK, data=json.dumps(str(data))), encoding="utf-8")
    return folder


def evaluate_tasks(loaded: LoadedModel, tasks: Sequence[str], *, questions: Sequence[Question] = (),
                   limit: int | None = None, batch_size: int = 16) -> dict[str, QuizResult]:
    """Accuracy of the live model on lm-eval ``tasks`` (``ampersim_quiz`` = the project's quiz over
    ``questions``); ``limit`` documents per task. Result per task: accuracy and per-document
    correctness (``acc``), in the QuizResult shape used for paired deltas."""
    lm_eval = _import_lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, device=str(loaded.model.device),
              batch_size=batch_size, add_bos_token=loaded.add_bos)
    with tempfile.TemporaryDirectory(prefix="ampersim-lm-eval-") as tmp:
        include = str(write_quiz_task(questions, Path(tmp))) if LOCAL_QUIZ_TASK in tasks else None
        manager = TaskManager(include_path=include)
        unknown = [t for t in tasks if t not in manager.all_tasks]
        if unknown:
            raise InvalidArgument(f"unknown lm-eval task '{unknown[0]}'; see `lm-eval ls tasks`, or use "
                                  f"{LOCAL_QUIZ_TASK} (the project's quiz, offline)", field="eval")
        out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, limit=limit,
                                      log_samples=True, bootstrap_iters=0)
    results: dict[str, QuizResult] = {}
    for task in tasks:
        samples = sorted(out["samples"].get(task, []), key=lambda s: s["doc_id"])
        if not samples or "acc" not in samples[0]:
            raise InvalidArgument(f"lm-eval task '{task}' reports no per-document 'acc' (only multiple-choice "
                                  "tasks with an acc metric are supported)", field="eval")
        correct = [bool(s["acc"]) for s in samples]
        results[task] = QuizResult(sum(correct) / len(correct), correct)
    return results
