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
    from ampersim.models.spec import ModelSpec
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

    windows: torch.Tensor | None = None  # perplexity windows [n, T]
    text: str = ""  # what the windows are cut from
    code_windows: torch.Tensor | None = None
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
        def shape(w: torch.Tensor | None) -> tuple[int, int]:
            return (int(w.shape[0]), int(w.shape[1])) if w is not None else (0, 0)

        return {"text": self.text, "windows": shape(self.windows)[0], "window_tokens": shape(self.windows)[1],
                "code": self.code, "code_windows": shape(self.code_windows)[0],
                "quiz": self.quiz, "quiz_questions": len(self.questions or self.lm_eval_questions),
                "lm_eval_tasks": list(self.lm_eval_tasks), "lm_eval_limit": self.lm_eval_limit}


def _check_at_least(name: str, value: int | None, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise InvalidArgument(f"{name} {value}: must be a whole number >= {low}", field=name)


def check_counts(*, windows: int | None = None, window_tokens: int | None = None, code_windows: int | None = None,
                 questions: int | None = None, calibration_windows: int | None = None,
                 lm_eval_limit: int | None = None) -> None:
    """Refuse counts below their minimum (None: not given): windows, code windows, calibration windows and
    lm-eval documents >= 1, tokens per window >= 2, quiz questions >= 0 (0 = all). InvalidArgument names the
    field."""
    for name, value, low in (("windows", windows, 1), ("window_tokens", window_tokens, 2),
                             ("code_windows", code_windows, 1), ("questions", questions, 0),
                             ("calibration_windows", calibration_windows, 1), ("lm_eval_limit", lm_eval_limit, 1)):
        _check_at_least(name, value, low)


def check_model_inputs(model: str | Path, variants: Sequence[Variant], *, window_tokens: int = 512
                       ) -> ModelSpec | None:
    """What can be checked of a model before its weights load (seconds to minutes): for a built-in model,
    a window of ``window_tokens`` within its context length and every variant's policy and pattern against
    its shapes (the simulator's one check, ``resolve_policy``). Returns the model's spec, or None for a
    model given by path (checked once loaded: ``prepare_eval_set``, ``check_variants``)."""
    from ampersim.models.load import builtin_model
    from ampersim.models.registry import load_model_spec
    from ampersim.sparsity.policy import resolve_policy

    builtin = builtin_model(str(model))
    if builtin is None:
        return None
    spec = load_model_spec(builtin.name)
    spec.check_context(window_tokens, "window_tokens", "a perplexity window")
    for variant in variants:
        resolve_policy(variant.policy, spec, variant.pattern, variant.scoring)
    return spec


@dataclass(frozen=True)
class EvalInputs:
    """The texts and questions of an experiment, read and checked before any model loads (no tokenizer
    needed): a bad --text or --quiz file fails in one line before the weights load, and each file is read
    once (it may be a pipe)."""

    evals: tuple[str, ...]
    lm_eval_tasks: tuple[str, ...] = ()
    corpus: evdata.Corpus | None = None  # perplexity text ("ppl")
    code: evdata.Corpus | None = None  # code perplexity text ("code")
    questions: tuple[evdata.Question, ...] = ()  # the quiz ("quiz", or the local lm-eval quiz task)
    quiz: str = ""  # what the questions are


def read_eval_inputs(evals: Sequence[str], *, lm_eval_tasks: Sequence[str] = (), texts: Sequence[str | Path] = (),
                     quizzes: Sequence[str | Path] = (), questions: int | None = 120, seed: int = 0) -> EvalInputs:
    """Read the user's ``texts``/``quizzes`` (else the shipped Pride and Prejudice / quiz) for ``evals``;
    ``questions`` None or 0 = all."""
    check_counts(questions=questions or 0)
    if texts and "ppl" not in evals:
        raise InvalidArgument("texts given, but they replace the prose of the 'ppl' evaluation, which is not "
                              "asked for; add ppl to the evaluations or drop the texts", field="texts")
    if quizzes and "quiz" not in evals and LOCAL_QUIZ_TASK not in lm_eval_tasks:
        raise InvalidArgument(f"quizzes given, but they replace the questions of the 'quiz' evaluation (or lm-eval "
                              f"{LOCAL_QUIZ_TASK}), which is not asked for; add quiz to the evaluations or drop "
                              "the quizzes", field="quizzes")
    out: dict[str, Any] = {"evals": tuple(evals), "lm_eval_tasks": tuple(lm_eval_tasks)}
    if "ppl" in evals:
        out["corpus"] = evdata.read_corpus(texts) if texts else evdata.shipped_corpus("austen")
    if "code" in evals:
        out["code"] = evdata.shipped_corpus("code")
    if "quiz" in evals or LOCAL_QUIZ_TASK in lm_eval_tasks:
        limit = questions or None
        chosen = (evdata.read_quiz_files(quizzes, seed=seed, limit=limit) if quizzes
                  else evdata.build_quiz(seed=seed, limit=limit))
        out["questions"] = tuple(chosen)
        out["quiz"] = f"user quiz ({', '.join(Path(q).name for q in quizzes)})" if quizzes else evdata.SHIPPED_QUIZ
    return EvalInputs(**out)


def prepare_eval_set(loaded: LoadedModel, evals: Sequence[str], *, lm_eval_tasks: Sequence[str] = (),
                     texts: Sequence[str | Path] = (), quizzes: Sequence[str | Path] = (),
                     windows: int = 8, window_tokens: int = 512, code_windows: int = 4,
                     questions: int | None = 120, seed: int = 0, lm_eval_limit: int | None = None,
                     inputs: EvalInputs | None = None) -> EvalSet:
    """The inputs of an experiment: ``texts``/``quizzes`` (the user's files) replace the shipped
    Pride and Prejudice / quiz; ``questions`` None or 0 = all; ``code_windows`` of the stdlib extract.
    ``inputs``: the texts and questions already read by ``read_eval_inputs`` (then ``evals``,
    ``lm_eval_tasks``, ``texts``, ``quizzes``, ``questions`` and ``seed`` are its)."""
    check_counts(windows=windows, window_tokens=window_tokens, code_windows=code_windows,
                 questions=questions or 0, lm_eval_limit=lm_eval_limit)
    if inputs is None:
        inputs = read_eval_inputs(evals, lm_eval_tasks=lm_eval_tasks, texts=texts, quizzes=quizzes,
                                  questions=questions, seed=seed)
    if inputs.corpus is not None or inputs.code is not None:  # windows of text: within the context length
        loaded.spec.check_context(window_tokens, "window_tokens", "a perplexity window")
    tok, bos = loaded.tokenizer, loaded.add_bos
    tasks = inputs.lm_eval_tasks
    out: dict[str, Any] = {"add_bos": bos, "lm_eval_tasks": tasks, "lm_eval_limit": lm_eval_limit}
    if inputs.corpus is not None:
        out.update(windows=evdata.token_windows(tok, inputs.corpus.text, window_tokens, windows, add_bos=bos),
                   text=inputs.corpus.description)
    if inputs.code is not None:
        out.update(code_windows=_code_windows(tok, inputs.code.text, window_tokens, code_windows, bos),
                   code=inputs.code.description)
    if inputs.quiz:
        out["quiz"] = inputs.quiz
        if "quiz" in inputs.evals:
            out["questions"] = inputs.questions
        if LOCAL_QUIZ_TASK in tasks:
            out["lm_eval_questions"] = inputs.questions
    return EvalSet(**out)


def _code_windows(tokenizer: Any, text: str, window_tokens: int, n: int, bos: bool) -> torch.Tensor:
    try:
        return evdata.token_windows(tokenizer, text, window_tokens, n, add_bos=bos)
    except InvalidArgument as exc:  # the message is about the code corpus, not --windows
        raise InvalidArgument(f"code corpus: {exc}", field="code_windows") from None


def calibration_batches(loaded: LoadedModel, n_windows: int = 8, window_tokens: int = 512) -> list[torch.Tensor]:
    """``n_windows`` single-window batches of Moby Dick (calibration text, never evaluated on)."""
    check_counts(calibration_windows=n_windows, window_tokens=window_tokens)
    loaded.spec.check_context(window_tokens, "window_tokens", "a calibration window")
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


def sparsify_variant(loaded: LoadedModel, variant: Variant,
                     calibration: Sequence[torch.Tensor] | None = None) -> SparsifyHandle:
    """Attach ``variant`` to the loaded model (``handle.remove()`` undoes it)."""
    from ampersim.runtime.sparsify import sparsify

    if variant.outstanding and calibration is None:
        raise InvalidArgument("the outstanding-sparse variant needs calibration batches", field="outstanding")
    return sparsify(loaded.model, variant.policy, pattern=variant.pattern, scoring=variant.scoring,
                    spec=loaded.spec, outstanding=variant.outstanding,
                    calibration=calibration if variant.outstanding else None, outliers=variant.outliers)


def check_variants(loaded: LoadedModel, variants: Sequence[Variant]) -> None:
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


def evaluate(loaded: LoadedModel, eval_set: EvalSet, *, phase: str = "",
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


def _skip_layers(handle: SparsifyHandle, num_layers: int) -> list[int]:
    if handle.policy.name != "amber":
        return []
    return [i for i in range(num_layers) if not handle.policy.is_sparse(i, "q_proj")]


def evaluate_variant(loaded: LoadedModel, eval_set: EvalSet, variant: Variant, dense: Evaluation, *,
                     calibration: Sequence[torch.Tensor] | None = None,
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


def run_experiment(loaded: LoadedModel, eval_set: EvalSet, variants: Sequence[Variant], *,
                   calibration: Sequence[torch.Tensor] | None = None,
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


def skip_list_path(model: str | None, out: str | Path | None = None) -> Path | None:
    """Where the sensitivity pass writes the skip list of ``model`` (its spec name): ``out``, else the amber
    skip-list folder's ``<model>.yaml``, checked before any work (a .yaml file that can be written:
    ``check_output``, errors name the field 'out'). None when neither is known yet (a model given by path,
    before it loads). Whether an existing file may be replaced is the caller's choice."""
    from ampersim.core.outputs import check_output
    from ampersim.sparsity.policy import amber_skip_dir

    if out is None and model is None:
        return None
    return check_output(out if out is not None else amber_skip_dir() / f"{model}.yaml", "out",
                        suffixes=(".yaml", ".yml"))


def run_sensitivity(loaded: LoadedModel, *, pattern: str = "8:16", scoring: str = "amber",
                    calibration_windows: int = 8, window_tokens: int = 512) -> Sensitivity:
    """The sensitivity pass on Moby Dick calibration windows (chooses the amber skip layers)."""
    from ampersim.eval.sensitivity import sensitivity_pass

    batches = calibration_batches(loaded, calibration_windows, window_tokens)
    spec = loaded.spec
    what = f"{len(batches)} windows x {window_tokens} tokens of {CALIBRATION_TEXT}"
    return sensitivity_pass(loaded.model, spec.name, spec.num_layers, batches, pattern=pattern,
                            scoring=scoring, calibration=what)
