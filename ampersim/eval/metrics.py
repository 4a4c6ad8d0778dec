"""Evaluate a causal LM offline: perplexity on shipped text and a zero-shot multiple-choice quiz.

Perplexity: the evaluation text (``ampersim/data/text``) is tokenized once with
``add_special_tokens=False`` (BOS/EOS handling differs across tokenizer versions; pinning it keeps
numbers reproducible) and cut into consecutive, non-overlapping windows of ``window`` tokens; the
first ``n_windows`` are used. For models that need BOS (``add_bos``) every window is BOS followed by
``window - 1`` text tokens. Every window predicts its ``window - 1`` next tokens; perplexity is
``exp(total NLL / total predicted tokens)``.

Quiz: multiple-choice questions built from the bsdgames quiz files (``ampersim/data/quiz``), see
:func:`build_quiz`. A question is answered by the candidate with the highest summed log-likelihood
of its tokens after the prompt (prompt and candidate tokenized separately, concatenated).
"""
from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument, not_found
from ampersim.core.resources import package_data

if TYPE_CHECKING:
    import torch

TEXTS: dict[str, str] = {
    "austen": "austen_prideprejudice_ch1-16.txt",  # evaluation text
    "mobydick": "mobydick_ch1-3.txt",  # calibration text (never used for evaluation)
}


def load_text(name: str = "austen") -> str:
    """The shipped public-domain text ``name`` ("austen" for evaluation, "mobydick" for calibration)."""
    if name not in TEXTS:
        raise not_found("text", name, TEXTS)
    return package_data("text", TEXTS[name]).read_text(encoding="utf-8")


def token_windows(tokenizer: Any, text: str, window: int, n_windows: int | None = None,
                  *, add_bos: bool = False) -> "torch.Tensor":
    """Non-overlapping windows [n, window] of token ids from ``text`` (first ``n_windows``; None = all)."""
    import torch

    if window < 2:
        raise InvalidArgument(f"window_tokens {window}: must be >= 2 tokens", field="window_tokens")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    body = window - 1 if add_bos else window
    available = len(ids) // body
    if available < 1:
        raise InvalidArgument(f"window_tokens {window}: the text has {len(ids):,} tokens, fewer than one window; "
                              f"at most {len(ids) + (1 if add_bos else 0):,} tokens per window", field="window_tokens")
    n = available if n_windows is None else n_windows
    if not 1 <= n <= available:
        raise InvalidArgument(f"windows {n_windows}: the text has {len(ids):,} tokens, room for at most {available:,} "
                              f"windows of {window} tokens", field="windows")
    out = torch.tensor(ids[: n * body], dtype=torch.long).view(n, body)
    if add_bos:
        bos = torch.full((n, 1), tokenizer.bos_token_id, dtype=torch.long)
        out = torch.cat([bos, out], dim=1)
    return out


@dataclass
class PerplexityResult:
    ppl: float
    window_nll: list[float]  # mean NLL per predicted token, per window (for paired comparisons)
    predicted_tokens: int
    seconds: float
    tokens: int  # tokens processed by forward passes

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.nan


def calibration_forward(model: "torch.nn.Module", batches: Iterable["torch.Tensor"], hooks: Sequence[Any]) -> None:
    """Run ``model`` over token ``batches`` (inference mode, no KV cache) with ``hooks`` attached,
    then remove the hook handles, also when a forward fails."""
    import torch

    try:
        with torch.inference_mode():
            for batch in batches:
                model(input_ids=batch, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()


def perplexity(model: "torch.nn.Module", windows: "torch.Tensor", *, batch_size: int = 1,
               progress: Any = None) -> PerplexityResult:
    """Perplexity of ``model`` over token ``windows`` [n, T] (one forward pass per batch)."""
    import torch

    nll: list[float] = []
    seconds = 0.0
    with torch.inference_mode():
        for start in range(0, windows.shape[0], batch_size):
            batch = windows[start:start + batch_size]
            t0 = time.perf_counter()
            logits = model(input_ids=batch, use_cache=False).logits
            seconds += time.perf_counter() - t0
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten(), reduction="none"
            ).view(batch.shape[0], -1)
            nll += losses.mean(dim=1).tolist()
            if progress is not None:
                progress(batch.shape[0])
    predicted = windows.shape[1] - 1
    ppl = math.exp(sum(nll) / len(nll))  # equal-length windows: mean of means == overall mean
    return PerplexityResult(ppl, nll, predicted * len(nll), seconds, windows.numel())


# ----------------------------------------------------------------------------------------------
# Quiz: multiple choice from the bsdgames quiz files
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuizTask:
    """How one quiz file becomes questions: which field is asked, which answers, which template."""

    file: str
    prompt: str  # format string with {q}
    question_field: int
    answer_field: int


QUIZ_TASKS: tuple[QuizTask, ...] = (
    *(QuizTask(f, "The capital of {q} is", 0, 1) for f in ("africa", "america", "asia", "europe")),
    QuizTask("elements", "The chemical symbol of {q} is", 3, 0),
    QuizTask("collectives", "A group of {q} is called a", 0, 1),
)


@dataclass(frozen=True)
class Question:
    task: str
    prompt: str
    choices: tuple[str, ...]  # each starts with a space
    answer: int  # index into choices


def quiz_expansions(field_text: str) -> list[str]:
    """Canonical readings of a quiz field: one per top-level ``|`` alternative.

    ``{x}`` (optional text) is kept; in ``[a|b]`` groups the first alternative made only of
    letters is taken (else the first): ``Yaound['e|e'|e]`` -> "Yaounde", ``Rom[e|a]`` -> "Rome".
    """
    def group(match: re.Match[str]) -> str:
        options = match.group(1).split("|")
        return next((o for o in options if o.isalpha()), options[0])

    def optional(match: re.Match[str]) -> str:
        return match.group(1).split("|")[0]

    text = field_text
    while "[" in text:
        text = re.sub(r"\[([^\[\]]*)\]", group, text)
    alternatives, depth, current = [], 0, ""
    for char in text:  # split on '|' outside braces
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "|" and depth == 0:
            alternatives.append(current)
            current = ""
        else:
            current += char
    alternatives.append(current)
    out = []
    for alt in alternatives:
        while "{" in alt:
            alt = re.sub(r"\{([^{}]*)\}", optional, alt)
        out.append(" ".join(alt.split()))
    return [a for a in out if a]


def build_quiz(*, seed: int = 0, n_choices: int = 4, limit: int | None = None,
               tasks: Sequence[QuizTask] = QUIZ_TASKS) -> list[Question]:
    """Multiple-choice questions from the quiz files, deterministic for a given ``seed``.

    For every line of every task's file: prompt = template with the first reading of the question
    field; correct answer = the first reading of the answer field; ``n_choices - 1`` distractors
    drawn (``random.Random(seed)``) from the first answer readings of the same file, excluding every
    answer reading that any line gives for the same question (e.g. both "gam" and "school" for
    whales); choices shuffled. Repeated (prompt, answer) pairs are asked once. ``limit`` keeps an evenly
    spread subset (every k-th question), so small runs still cover all tasks.
    """
    if n_choices < 2:
        raise InvalidArgument(f"n_choices must be >= 2, got {n_choices}")
    rng = random.Random(seed)
    questions: list[Question] = []
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        lines = package_data("quiz", task.file).read_text(encoding="utf-8").splitlines()
        rows = [line.split(":") for line in lines if line.strip()]
        items = [(quiz_expansions(r[task.question_field]), quiz_expansions(r[task.answer_field]))
                 for r in rows]
        pool = sorted({a[0] for _, a in items})
        accepted: dict[str, set[str]] = {}  # question reading -> every answer reading given for it
        for q, answers in items:
            for reading in q:
                accepted.setdefault(reading, set()).update(answers)
        for q, answers in items:
            prompt = task.prompt.format(q=q[0])
            if (prompt, answers[0]) in seen:
                continue
            seen.add((prompt, answers[0]))
            wrong = set().union(*(accepted[r] for r in q))
            candidates = [p for p in pool if p not in wrong]
            choices = [answers[0], *rng.sample(candidates, n_choices - 1)]
            rng.shuffle(choices)
            questions.append(Question(task.file, prompt, tuple(" " + c for c in choices),
                                      choices.index(answers[0])))
    if limit is not None and limit < len(questions):
        if limit < 1:
            raise InvalidArgument(f"quiz limit must be >= 1, got {limit}")
        step = len(questions) / limit
        questions = [questions[int(i * step)] for i in range(limit)]
    return questions


@dataclass
class QuizResult:
    accuracy: float
    correct: list[bool] = field(repr=False)
    seconds: float = 0.0
    tokens: int = 0

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def stderr(self) -> float:
        """Binomial standard error of the accuracy."""
        return math.sqrt(self.accuracy * (1 - self.accuracy) / self.n) if self.n else math.nan

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.nan


def quiz_accuracy(model: "torch.nn.Module", tokenizer: Any, questions: Sequence[Question], *,
                  add_bos: bool = False, batch_size: int = 64, progress: Any = None) -> QuizResult:
    """Zero-shot accuracy: pick the choice with the highest summed token log-likelihood.

    Sequences (prompt + one choice) are right-padded into batches; under causal attention padding
    after a sequence cannot change its logits, so no attention mask is needed.
    """
    import torch

    seqs: list[tuple[list[int], int]] = []  # (ids, number of prompt tokens)
    for q in questions:
        prompt = tokenizer(q.prompt, add_special_tokens=False)["input_ids"]
        if add_bos:
            prompt = [tokenizer.bos_token_id, *prompt]
        for choice in q.choices:
            seqs.append((prompt + tokenizer(choice, add_special_tokens=False)["input_ids"], len(prompt)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores: list[float] = []
    seconds, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start:start + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            batch = torch.full((len(chunk), width), pad, dtype=torch.long)
            for row, (ids, _) in enumerate(chunk):
                batch[row, :len(ids)] = torch.tensor(ids)
            t0 = time.perf_counter()
            logits = model(input_ids=batch, use_cache=False).logits
            seconds += time.perf_counter() - t0
            tokens += batch.numel()
            for row, (ids, n_prompt) in enumerate(chunk):
                logprobs = torch.log_softmax(logits[row, n_prompt - 1:len(ids) - 1].float(), dim=-1)
                targets = torch.tensor(ids[n_prompt:])
                scores.append(float(logprobs.gather(1, targets[:, None]).sum()))
            if progress is not None:
                progress(len(chunk))
    correct, offset = [], 0
    for q in questions:
        block = scores[offset:offset + len(q.choices)]
        correct.append(max(range(len(block)), key=block.__getitem__) == q.answer)
        offset += len(q.choices)
    return QuizResult(sum(correct) / len(correct), correct, seconds, tokens)


# ----------------------------------------------------------------------------------------------
# One evaluation run and dense-vs-sparse comparison
# ----------------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """Perplexity and/or quiz results of one model variant."""

    ppl: PerplexityResult | None = None
    quiz: QuizResult | None = None

    @property
    def tokens_per_s(self) -> float:
        """Forward throughput: on the perplexity windows if run (prefill-like), else on the quiz."""
        source = self.ppl or self.quiz
        return source.tokens_per_s if source is not None else math.nan

    def summary(self) -> dict[str, float | None]:
        return {
            "ppl": self.ppl.ppl if self.ppl else None,
            "quiz_acc": self.quiz.accuracy if self.quiz else None,
            "quiz_stderr": self.quiz.stderr if self.quiz else None,
            "tokens_per_s": self.tokens_per_s,
        }


def evaluate(model: "torch.nn.Module", tokenizer: Any, *, windows: "torch.Tensor | None",
             questions: Sequence[Question] | None, add_bos: bool = False,
             progress: Any = None) -> Evaluation:
    """Perplexity over ``windows`` (if given) and quiz accuracy over ``questions`` (if given)."""
    return Evaluation(
        perplexity(model, windows, progress=progress) if windows is not None else None,
        quiz_accuracy(model, tokenizer, questions, add_bos=add_bos, progress=progress) if questions else None,
    )


def _mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def paired_deltas(dense: Evaluation, sparse: Evaluation) -> dict[str, float | None]:
    """Sparse minus dense, with paired standard errors (same windows, same questions).

    ppl_delta = ppl_sparse - ppl_dense; ppl_ratio = ppl_sparse / ppl_dense = exp(mean per-window NLL
    difference) and log_ppl_delta_stderr its standard error in log space; quiz_acc_delta with
    quiz_acc_delta_stderr = std of per-question differences / sqrt(n).
    """
    out: dict[str, float | None] = {"ppl_delta": None, "ppl_ratio": None, "log_ppl_delta_stderr": None,
                                    "quiz_acc_delta": None, "quiz_acc_delta_stderr": None}
    if dense.ppl and sparse.ppl:
        mean, se = _mean_and_stderr([s - d for s, d in zip(sparse.ppl.window_nll, dense.ppl.window_nll)])
        out.update(ppl_delta=sparse.ppl.ppl - dense.ppl.ppl, ppl_ratio=math.exp(mean), log_ppl_delta_stderr=se)
    if dense.quiz and sparse.quiz:
        mean, se = _mean_and_stderr([float(s) - float(d) for s, d in zip(sparse.quiz.correct, dense.quiz.correct)])
        out.update(quiz_acc_delta=mean, quiz_acc_delta_stderr=se)
    return out
