"""Evaluate a causal LM offline: perplexity over token windows and zero-shot multiple-choice accuracy.

Perplexity: every window [n, T] predicts its ``T - 1`` next tokens; perplexity is
``exp(total NLL / total predicted tokens)``; the mean NLL of each window is kept for paired
comparisons. Quiz: a question is answered by the candidate with the highest summed log-likelihood
of its tokens after the prompt (prompt and candidate tokenized separately, concatenated). Inputs
(texts, windows, questions) come from :mod:`ampersim.eval.data`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ampersim.eval.data import Question

if TYPE_CHECKING:
    import torch


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


def calibration_forward(model: torch.nn.Module, batches: Iterable[torch.Tensor], hooks: Sequence[Any]) -> None:
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


def perplexity(model: torch.nn.Module, windows: torch.Tensor, *, batch_size: int = 1,
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
# Quiz accuracy
# ----------------------------------------------------------------------------------------------

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


def quiz_accuracy(model: torch.nn.Module, tokenizer: Any, questions: Sequence[Question], *,
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
    """Results of one model variant: perplexity on prose and/or code, quiz accuracy, lm-eval tasks
    (task -> per-document correctness, in the QuizResult shape)."""

    ppl: PerplexityResult | None = None
    code_ppl: PerplexityResult | None = None
    quiz: QuizResult | None = None
    lm_eval: dict[str, QuizResult] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        """Forward throughput: on the perplexity windows if run (prefill-like), else on the quiz."""
        source = self.ppl or self.code_ppl or self.quiz
        return source.tokens_per_s if source is not None else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "ppl": self.ppl.ppl if self.ppl else None,
            "code_ppl": self.code_ppl.ppl if self.code_ppl else None,
            "quiz_acc": self.quiz.accuracy if self.quiz else None,
            "quiz_stderr": self.quiz.stderr if self.quiz else None,
            "lm_eval": {task: {"acc": r.accuracy, "stderr": r.stderr, "n": r.n} for task, r in self.lm_eval.items()},
            "tokens_per_s": self.tokens_per_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to recompute paired deltas later (per-window NLL, per-question results)."""
        def ppl(r: PerplexityResult | None) -> dict[str, Any] | None:
            return None if r is None else {"ppl": r.ppl, "window_nll": r.window_nll, "predicted_tokens":
                                           r.predicted_tokens, "seconds": r.seconds, "tokens": r.tokens}

        def quiz(r: QuizResult) -> dict[str, Any]:
            return {"accuracy": r.accuracy, "correct": r.correct, "seconds": r.seconds, "tokens": r.tokens}

        return {"ppl": ppl(self.ppl), "code_ppl": ppl(self.code_ppl),
                "quiz": quiz(self.quiz) if self.quiz else None,
                "lm_eval": {task: quiz(r) for task, r in self.lm_eval.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`."""
        def ppl(d: dict[str, Any] | None) -> PerplexityResult | None:
            return None if d is None else PerplexityResult(**d)

        return cls(ppl(data.get("ppl")), ppl(data.get("code_ppl")),
                   QuizResult(**data["quiz"]) if data.get("quiz") else None,
                   {task: QuizResult(**d) for task, d in (data.get("lm_eval") or {}).items()})


def _mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _ppl_deltas(dense: PerplexityResult, sparse: PerplexityResult) -> tuple[float, float, float]:
    mean, se = _mean_and_stderr([s - d for s, d in zip(sparse.window_nll, dense.window_nll)])
    return sparse.ppl - dense.ppl, math.exp(mean), se


def _acc_deltas(dense: QuizResult, sparse: QuizResult) -> tuple[float, float]:
    return _mean_and_stderr([float(s) - float(d) for s, d in zip(sparse.correct, dense.correct)])


def paired_deltas(dense: Evaluation, sparse: Evaluation) -> dict[str, Any]:
    """Sparse minus dense, with paired standard errors (same windows, same questions).

    ppl_delta = ppl_sparse - ppl_dense; ppl_ratio = ppl_sparse / ppl_dense = exp(mean per-window NLL
    difference) and log_ppl_delta_stderr its standard error in log space (code_* likewise for code
    perplexity); quiz_acc_delta with quiz_acc_delta_stderr = std of per-question differences /
    sqrt(n); lm_eval: per task acc_delta and acc_delta_stderr, the same way.
    """
    out: dict[str, Any] = {"ppl_delta": None, "ppl_ratio": None, "log_ppl_delta_stderr": None,
                           "code_ppl_delta": None, "code_ppl_ratio": None, "code_log_ppl_delta_stderr": None,
                           "quiz_acc_delta": None, "quiz_acc_delta_stderr": None, "lm_eval": {}}
    if dense.ppl and sparse.ppl:
        out["ppl_delta"], out["ppl_ratio"], out["log_ppl_delta_stderr"] = _ppl_deltas(dense.ppl, sparse.ppl)
    if dense.code_ppl and sparse.code_ppl:
        out["code_ppl_delta"], out["code_ppl_ratio"], out["code_log_ppl_delta_stderr"] = \
            _ppl_deltas(dense.code_ppl, sparse.code_ppl)
    if dense.quiz and sparse.quiz:
        out["quiz_acc_delta"], out["quiz_acc_delta_stderr"] = _acc_deltas(dense.quiz, sparse.quiz)
    for task in dense.lm_eval.keys() & sparse.lm_eval.keys():
        delta, se = _acc_deltas(dense.lm_eval[task], sparse.lm_eval[task])
        out["lm_eval"][task] = {"acc_delta": delta, "acc_delta_stderr": se}
    return out
