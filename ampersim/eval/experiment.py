"""The accuracy experiment: a real model evaluated dense and with N:M activation pruning, paired.

``prepare_eval_set`` builds the inputs every variant sees (perplexity windows of prose or the
user's text, code windows, quiz questions, lm-eval tasks); ``evaluate_dense`` and
``evaluate_variant`` run them with and without ``sparsify`` and compute paired deltas (same
windows, same questions); ``run_experiment`` does a list of variants; ``run_sensitivity`` chooses
amber skip layers. ``ampersim prune`` and ``benchmarks/accuracy_study.py`` are thin callers.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.core.vocab import AMBER_OUTLIERS, POLICY_PRESETS, SCORINGS
from ampersim.eval import data as evdata
from ampersim.eval.lm_eval import LOCAL_QUIZ_TASK
from ampersim.eval.metrics import Evaluation, paired_deltas, perplexity, quiz_accuracy

if TYPE_CHECKING:
    import torch

    from ampersim.eval.sensitivity import Sensitivity
    from ampersim.models.load import LoadedModel
    from ampersim.runtime.sparsify import SparsifyHandle

EVALS = ("ppl", "code", "quiz")
"""Built-in evaluations: perplexity on prose (or --text), on Python code, the multiple-choice quiz."""
LM_EVAL_PREFIX = "lm-eval:"
Progress = Callable[[str, int, int], None]  # (phase, done, total)


def parse_evals(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"ppl,quiz,lm-eval:arc_easy,piqa"`` -> (("ppl", "quiz"), ("arc_easy", "piqa")).

    Items after ``lm-eval:`` that are not built-in evaluations are lm-eval task names.
    """
    evals: list[str] = []
    tasks: list[str] = []
    in_tasks = False
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if item.startswith(LM_EVAL_PREFIX):
            in_tasks = True
            item = item[len(LM_EVAL_PREFIX):].strip()
            if not item:
                raise InvalidArgument("'lm-eval:' needs task names, e.g. lm-eval:arc_easy,piqa", field="eval")
            tasks.append(item)
        elif item in EVALS:
            evals.append(item)
        elif in_tasks:
            tasks.append(item)
        else:
            raise InvalidArgument(f"unknown evaluation '{item}'; allowed: {', '.join(EVALS)}, "
                                  "lm-eval:TASK[,TASK...] (comma-separated)", field="eval")
    if not evals and not tasks:
        raise InvalidArgument(f"no evaluation given; allowed: {', '.join(EVALS)}, lm-eval:TASKS", field="eval")
    return tuple(dict.fromkeys(evals)), tuple(dict.fromkeys(tasks))


@dataclass(frozen=True)
class EvalSet:
    """What every variant of one experiment is evaluated on (the same inputs, so deltas are paired)."""

    windows: "torch.Tensor | None" = None  # perplexity windows [n, T]
    text: str = ""  # what the windows are cut from
    code_windows: "torch.Tensor | None" = None
    code: str = ""
    questions: tuple[evdata.Question, ...] = ()
    quiz: str = ""
    lm_eval_tasks: tuple[str, ...] = ()
    lm_eval_limit: int | None = None
    lm_eval_questions: tuple[evdata.Question, ...] = ()  # the local ampersim_quiz task's questions
    add_bos: bool = False

    @property
    def units(self) -> int:
        """Work items of one evaluation (windows + quiz sequences), for progress reports."""
        n = sum(w.shape[0] for w in (self.windows, self.code_windows) if w is not None)
        return n + sum(len(q.choices) for q in self.questions)

    def describe(self) -> dict[str, Any]:
        """Plain description for reports and JSON output."""
        def shape(w: "torch.Tensor | None") -> tuple[int, int]:
            return (int(w.shape[0]), int(w.shape[1])) if w is not None else (0, 0)

        return {"text": self.text, "windows": shape(self.windows)[0], "window_tokens": shape(self.windows)[1],
                "code": self.code, "code_windows": shape(self.code_windows)[0],
                "quiz": self.quiz, "quiz_questions": len(self.questions or self.lm_eval_questions),
                "lm_eval_tasks": list(self.lm_eval_tasks), "lm_eval_limit": self.lm_eval_limit}


def _check_at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise InvalidArgument(f"must be >= {low}, got {value}", field=name)


def prepare_eval_set(loaded: "LoadedModel", evals: Sequence[str], *, lm_eval_tasks: Sequence[str] = (),
                     texts: Sequence[str | Path] = (), quizzes: Sequence[str | Path] = (),
                     windows: int = 8, window_tokens: int = 512, code_windows: int = 4,
                     questions: int | None = 120, seed: int = 0, lm_eval_limit: int | None = None) -> EvalSet:
    """The inputs of an experiment: ``texts``/``quizzes`` (the user's files) replace the shipped
    Pride and Prejudice / quiz; ``questions`` None or 0 = all; ``code_windows`` of the stdlib extract."""
    _check_at_least("windows", windows, 1)
    _check_at_least("window_tokens", window_tokens, 2)
    _check_at_least("code_windows", code_windows, 1)
    _check_at_least("questions", questions or 0, 0)
    tok, bos = loaded.tokenizer, loaded.add_bos
    out: dict[str, Any] = {"add_bos": bos, "lm_eval_tasks": tuple(lm_eval_tasks), "lm_eval_limit": lm_eval_limit}
    if "ppl" in evals:
        corpus = evdata.read_corpus(texts) if texts else evdata.shipped_corpus("austen")
        out.update(windows=evdata.token_windows(tok, corpus.text, window_tokens, windows, add_bos=bos),
                   text=corpus.description)
    if "code" in evals:
        corpus = evdata.shipped_corpus("code")
        out.update(code_windows=_code_windows(tok, corpus.text, window_tokens, code_windows, bos),
                   code=corpus.description)
    if "quiz" in evals or LOCAL_QUIZ_TASK in lm_eval_tasks:
        limit = questions or None
        chosen = (evdata.read_quiz_files(quizzes, seed=seed, limit=limit) if quizzes
                  else evdata.build_quiz(seed=seed, limit=limit))
        what = f"user quiz ({', '.join(Path(q).name for q in quizzes)})" if quizzes else evdata.SHIPPED_QUIZ
        out["quiz"] = what
        if "quiz" in evals:
            out["questions"] = tuple(chosen)
        if LOCAL_QUIZ_TASK in lm_eval_tasks:
            out["lm_eval_questions"] = tuple(chosen)
    return EvalSet(**out)


def _code_windows(tokenizer: Any, text: str, window_tokens: int, n: int, bos: bool) -> "torch.Tensor":
    try:
        return evdata.token_windows(tokenizer, text, window_tokens, n, add_bos=bos)
    except InvalidArgument as exc:  # the message is about the code corpus, not --windows
        raise InvalidArgument(f"code corpus: {exc}", field="code_windows") from None


def calibration_batches(loaded: "LoadedModel", n_windows: int = 8, window_tokens: int = 512) -> list["torch.Tensor"]:
    """``n_windows`` single-window batches of Moby Dick (calibration text, never evaluated on)."""
    _check_at_least("calibration_windows", n_windows, 1)
    try:
        windows = evdata.token_windows(loaded.tokenizer, evdata.load_text("mobydick"), window_tokens, n_windows,
                                       add_bos=loaded.add_bos)
    except InvalidArgument as exc:
        raise InvalidArgument(f"calibration text: {exc}", field="calibration_windows") from None
    return list(windows.split(1))


CALIBRATION_TEXT = "Moby Dick ch. 1-3 (ampersim/data/text/mobydick_ch1-3.txt)"


# ----------------------------------------------------------------------------------------------
# Variants and their evaluation
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One sparsified configuration: pattern, scoring, policy (preset or YAML path), extras."""

    pattern: str = "8:16"
    scoring: str = "amber"
    policy: str = "amber"
    outstanding: bool = False  # + inverse SmoothQuant and simulated W8A8
    outliers: str = "clamp"  # amber factor: weights outside the clip quantiles clamped or dropped

    def __post_init__(self) -> None:
        NMPattern.parse(self.pattern)
        if self.scoring not in SCORINGS:
            raise InvalidArgument(f"unknown scoring '{self.scoring}'; allowed: {', '.join(SCORINGS)}", field="scoring")
        if self.outliers not in AMBER_OUTLIERS:
            raise InvalidArgument(f"unknown outliers '{self.outliers}'; allowed: {', '.join(AMBER_OUTLIERS)}",
                                  field="outliers")

    @property
    def label(self) -> str:
        policy = self.policy if self.policy in POLICY_PRESETS else Path(self.policy).stem
        extra = (" +W8A8" if self.outstanding else "") + (" outliers=drop" if self.outliers == "drop" else "")
        return f"{self.pattern} {self.scoring}/{policy}{extra}"

    def key(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "scoring": self.scoring, "policy": self.policy,
                "outstanding": self.outstanding, "outliers": self.outliers}


@dataclass
class VariantResult:
    """A variant's evaluation, its paired deltas against dense, and what sparsify selected."""

    variant: Variant
    evaluation: Evaluation
    deltas: dict[str, Any]
    coverage: float | None
    sparse_linears: int
    skip_layers: list[int]  # amber policy: layers whose q_proj and gate_proj stayed dense
    policy_note: str = ""
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """Flat JSON-ready record (the accuracy results' row format, see report/accuracy.py)."""
        s = self.evaluation.summary()
        return {**self.variant.key(), "coverage": self.coverage, "sparse_linears": self.sparse_linears,
                "skip_layers": self.skip_layers, "policy_note": self.policy_note,
                "ppl": s["ppl"], "code_ppl": s["code_ppl"], "quiz_acc": s["quiz_acc"],
                "quiz_stderr": s["quiz_stderr"], "lm_eval": s["lm_eval"], "tokens_per_s": s["tokens_per_s"],
                "seconds": round(self.seconds, 1), **self.deltas}


def sparsify_variant(loaded: "LoadedModel", variant: Variant,
                     calibration: Sequence["torch.Tensor"] | None = None) -> "SparsifyHandle":
    """Attach ``variant`` to the loaded model (``handle.remove()`` undoes it)."""
    from ampersim.runtime.sparsify import sparsify

    if variant.outstanding and calibration is None:
        raise InvalidArgument("the outstanding-sparse variant needs calibration batches", field="outstanding")
    return sparsify(loaded.model, variant.policy, pattern=variant.pattern, scoring=variant.scoring,
                    spec=loaded.spec, outstanding=variant.outstanding,
                    calibration=calibration if variant.outstanding else None, outliers=variant.outliers)


def check_variants(loaded: "LoadedModel", variants: Sequence[Variant]) -> None:
    """Fail fast on a bad policy or a pattern the model's layers cannot take, before any evaluation."""
    for variant in variants:
        handle = sparsify_variant(loaded, Variant(variant.pattern, "magnitude", variant.policy))
        handle.remove()


def _warm_up(model: Any, eval_set: EvalSet) -> None:
    """One untimed forward pass (allocator, kernel caches), so tokens/s reflects steady state."""
    import torch

    ids = next((w[:1] for w in (eval_set.windows, eval_set.code_windows) if w is not None), None)
    if ids is not None:
        with torch.inference_mode():
            model(input_ids=ids, use_cache=False)


def evaluate(loaded: "LoadedModel", eval_set: EvalSet, *, phase: str = "",
             progress: Progress | None = None) -> Evaluation:
    """Every evaluation of ``eval_set`` on the model as it is now (dense or sparsified)."""
    total, done = eval_set.units, [0]

    def step(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(phase, done[0], total)

    _warm_up(loaded.model, eval_set)
    result = Evaluation()
    if eval_set.windows is not None:
        result.ppl = perplexity(loaded.model, eval_set.windows, progress=step)
    if eval_set.code_windows is not None:
        result.code_ppl = perplexity(loaded.model, eval_set.code_windows, progress=step)
    if eval_set.questions:
        result.quiz = quiz_accuracy(loaded.model, loaded.tokenizer, eval_set.questions, add_bos=eval_set.add_bos,
                                    progress=step)
    if eval_set.lm_eval_tasks:
        from ampersim.eval.lm_eval import evaluate_tasks

        result.lm_eval = evaluate_tasks(loaded, eval_set.lm_eval_tasks, questions=eval_set.lm_eval_questions,
                                        limit=eval_set.lm_eval_limit)
    return result


def _skip_layers(handle: "SparsifyHandle", num_layers: int) -> list[int]:
    if handle.policy.name != "amber":
        return []
    return [i for i in range(num_layers) if not handle.policy.is_sparse(i, "q_proj")]


def evaluate_variant(loaded: "LoadedModel", eval_set: EvalSet, variant: Variant, dense: Evaluation, *,
                     calibration: Sequence["torch.Tensor"] | None = None,
                     progress: Progress | None = None) -> VariantResult:
    """Sparsify with ``variant``, evaluate, remove the hooks; deltas are paired against ``dense``."""
    t0 = time.perf_counter()
    handle = sparsify_variant(loaded, variant, calibration)
    try:
        result = evaluate(loaded, eval_set, phase=variant.label, progress=progress)
    finally:
        handle.remove()
    return VariantResult(variant, result, paired_deltas(dense, result),
                         handle.coverage.fraction if handle.coverage is not None else None, len(handle.layers),
                         _skip_layers(handle, loaded.spec.num_layers), handle.policy.note or "",
                         time.perf_counter() - t0)


@dataclass
class Experiment:
    """Dense evaluation and one result per variant."""

    model: str
    source: str
    eval_set: EvalSet
    dense: Evaluation
    results: list[VariantResult] = field(default_factory=list)


def run_experiment(loaded: "LoadedModel", eval_set: EvalSet, variants: Sequence[Variant], *,
                   calibration: Sequence["torch.Tensor"] | None = None,
                   progress: Progress | None = None) -> Experiment:
    """Check every variant, evaluate dense, then each variant (hooks removed after each)."""
    if not variants:
        raise InvalidArgument("no variants to evaluate")
    check_variants(loaded, variants)
    dense = evaluate(loaded, eval_set, phase="dense", progress=progress)
    experiment = Experiment(loaded.name, loaded.source, eval_set, dense)
    for variant in variants:
        experiment.results.append(evaluate_variant(loaded, eval_set, variant, dense, calibration=calibration,
                                                   progress=progress))
    return experiment


def run_sensitivity(loaded: "LoadedModel", *, pattern: str = "8:16", scoring: str = "amber",
                    calibration_windows: int = 8, window_tokens: int = 512) -> "Sensitivity":
    """The sensitivity pass on Moby Dick calibration windows (chooses the amber skip layers)."""
    from ampersim.eval.sensitivity import sensitivity_pass

    batches = calibration_batches(loaded, calibration_windows, window_tokens)
    spec = loaded.spec
    what = f"{len(batches)} windows x {window_tokens} tokens of {CALIBRATION_TEXT}"
    return sensitivity_pass(loaded.model, spec.name, spec.num_layers, batches, pattern=pattern,
                            scoring=scoring, calibration=what)
