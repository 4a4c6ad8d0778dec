"""Evaluation data: shipped texts, Python code, quizzes, and the user's own text and quiz files.

Shipped (``ampersim/data``, see its README for sources and licences): Pride and Prejudice
(perplexity), Moby Dick (calibration only), an extract of Python standard-library sources (code
perplexity) and the bsdgames quiz files. User files: plain UTF-8 text, and quizzes in the bsdgames
``question:answer|alternative`` format or as JSONL multiple choice
(``{"question": ..., "choices": [...], "answer": INDEX}``). Bad files fail with ``FILE:LINE: ...``.

Perplexity input: the text is tokenized once with ``add_special_tokens=False`` (BOS/EOS handling
differs across tokenizer versions; pinning it keeps numbers reproducible) and cut into consecutive,
non-overlapping windows of ``window`` tokens; the first ``n_windows`` are used. For models that need
BOS (``add_bos``) every window is BOS followed by ``window - 1`` text tokens.
"""
from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import AmpersimError, InvalidArgument, InvalidData, not_found
from ampersim.core.limits import MAX_EVAL_TEXT_BYTES, read_limited
from ampersim.core.resources import package_data

if TYPE_CHECKING:
    import torch

TEXTS: dict[str, tuple[str, str]] = {  # name -> (file under data/text, description)
    "austen": ("austen_prideprejudice_ch1-16.txt", "Pride and Prejudice ch. 1-16"),
    "mobydick": ("mobydick_ch1-3.txt", "Moby Dick ch. 1-3"),  # calibration text (never for evaluation)
}
CODE_FILES: tuple[str, ...] = ("textwrap.py", "shlex.py", "heapq.py", "graphlib.py")
"""Python 3.11.7 standard-library modules under data/code (``NAME.txt``; PSF licence), in corpus order."""
CODE_DESCRIPTION = f"Python 3.11 stdlib sources ({', '.join(CODE_FILES)})"


@dataclass(frozen=True)
class Corpus:
    """A text to compute perplexity on, and what it is (for reports)."""

    text: str
    description: str


def load_text(name: str = "austen") -> str:
    """The shipped public-domain text ``name`` ("austen" for evaluation, "mobydick" for calibration)."""
    if name not in TEXTS:
        raise not_found("text", name, TEXTS)
    return package_data("text", TEXTS[name][0]).read_text(encoding="utf-8")


def shipped_corpus(name: str) -> Corpus:
    """A shipped corpus: a text of :data:`TEXTS` or ``"code"`` (the stdlib extract)."""
    if name == "code":
        sources = [package_data("code", f"{f}.txt").read_text(encoding="utf-8") for f in CODE_FILES]
        return Corpus("\n\n".join(sources), CODE_DESCRIPTION)
    return Corpus(load_text(name), TEXTS[name][1])


def _read_utf8(path: str | Path, field: str) -> str:
    path = Path(path)
    try:
        data = read_limited(path, MAX_EVAL_TEXT_BYTES, "text file")
    except AmpersimError as exc:  # missing, a folder or device, too large, unreadable: name the field
        raise type(exc)(str(exc), field=field) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InvalidData(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                          "save the file as UTF-8", field=field) from None
    if "\x00" in text:  # valid UTF-8 but binary (text never holds NUL)
        line = text[:text.index("\x00")].count("\n") + 1
        raise InvalidData(f"{path}:{line}: a NUL byte: a binary file, not UTF-8 text", field=field)
    return text


def read_corpus(paths: Sequence[str | Path]) -> Corpus:
    """The user's UTF-8 text files joined in order (a blank line between files) as one corpus."""
    if not paths:
        raise InvalidArgument("no text files given", field="texts")
    texts = []
    for path in paths:
        text = _read_utf8(path, "texts")
        if not text.strip():
            raise InvalidData(f"{path}: the file is empty", field="texts")
        texts.append(text)
    names = ", ".join(Path(p).name for p in paths)
    return Corpus("\n\n".join(texts), f"user text ({names})")


def token_windows(tokenizer: Any, text: str, window: int, n_windows: int | None = None,
                  *, add_bos: bool = False) -> torch.Tensor:
    """Non-overlapping windows [n, window] of token ids from ``text`` (first ``n_windows``; None = all)."""
    import torch

    if window < 2:
        raise InvalidArgument(f"window_tokens {window}: must be >= 2 tokens", field="window_tokens")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    body = window - 1 if add_bos else window
    available = len(ids) // body
    if available < 1:
        raise InvalidArgument(f"window_tokens {window}: the text has {len(ids):,} tokens, fewer than one window of "
                              f"{window}; at most {len(ids) + (1 if add_bos else 0):,} tokens per window",
                              field="window_tokens")
    n = available if n_windows is None else n_windows
    if not 1 <= n <= available:
        raise InvalidArgument(f"windows {n_windows}: the text has {len(ids):,} tokens, room for at most {available:,} "
                              f"windows of {window} tokens", field="windows")
    out = torch.tensor(ids[: n * body], dtype=torch.long).view(n, body)
    if add_bos:
        bos = torch.full((n, 1), tokenizer.bos_token_id, dtype=torch.long)
        out = torch.cat([bos, out], dim=1)
    return out


# ----------------------------------------------------------------------------------------------
# Quizzes: multiple choice from bsdgames quiz files (shipped or the user's) and JSONL
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuizTask:
    """How one shipped quiz file becomes questions: which field is asked, which answers, which template."""

    file: str
    prompt: str  # format string with {q}
    question_field: int
    answer_field: int


QUIZ_TASKS: tuple[QuizTask, ...] = (
    *(QuizTask(f, "The capital of {q} is", 0, 1) for f in ("africa", "america", "asia", "europe")),
    QuizTask("elements", "The chemical symbol of {q} is", 3, 0),
    QuizTask("collectives", "A group of {q} is called a", 0, 1),
)
SHIPPED_QUIZ = "bsdgames quiz: capitals, chemical symbols, collective nouns"


@dataclass(frozen=True)
class Question:
    task: str
    prompt: str
    choices: tuple[str, ...]  # each starts with whitespace (a space unless the file gave other)
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


def _multiple_choice(task: str, items: Sequence[tuple[list[str], list[str], str]], rng: random.Random,
                     n_choices: int, seen: set[tuple[str, str]], where: str) -> list[Question]:
    """Questions from (question readings, answer readings, prompt) items of one file.

    Correct answer = the first answer reading; ``n_choices - 1`` distractors drawn from the first
    answer readings of the file, excluding every reading any line gives for the same question;
    choices shuffled; repeated (prompt, answer) pairs asked once.
    """
    pool = sorted({a[0] for _, a, _ in items})
    accepted: dict[str, set[str]] = {}  # question reading -> every answer reading given for it
    for q, answers, _ in items:
        for reading in q:
            accepted.setdefault(reading, set()).update(answers)
    out = []
    for q, answers, prompt in items:
        if (prompt, answers[0]) in seen:
            continue
        seen.add((prompt, answers[0]))
        wrong = set().union(*(accepted[r] for r in q))
        candidates = [p for p in pool if p not in wrong]
        if len(candidates) < n_choices - 1:
            raise InvalidData(f"{where}: only {len(candidates)} other answers to draw {n_choices - 1} distractors "
                              f"for '{q[0]}' from; a bsdgames quiz file needs at least {n_choices} distinct answers",
                              field="quizzes")
        choices = [answers[0], *rng.sample(candidates, n_choices - 1)]
        rng.shuffle(choices)
        out.append(Question(task, prompt, tuple(" " + c for c in choices), choices.index(answers[0])))
    return out


def _spread(questions: list[Question], limit: int | None) -> list[Question]:
    """An evenly spread subset of ``limit`` questions (every k-th), so small runs cover all tasks."""
    if limit is None or limit >= len(questions):
        return questions
    if limit < 1:
        raise InvalidArgument(f"quiz limit must be >= 1, got {limit}", field="questions")
    step = len(questions) / limit
    return [questions[int(i * step)] for i in range(limit)]


def build_quiz(*, seed: int = 0, n_choices: int = 4, limit: int | None = None,
               tasks: Sequence[QuizTask] = QUIZ_TASKS) -> list[Question]:
    """Multiple-choice questions from the shipped quiz files, deterministic for a given ``seed``.

    For every line of every task's file: prompt = template with the first reading of the question
    field; correct answer and distractors as in :func:`_multiple_choice` (``random.Random(seed)``).
    """
    if n_choices < 2:
        raise InvalidArgument(f"n_choices must be >= 2, got {n_choices}")
    rng = random.Random(seed)
    questions: list[Question] = []
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        lines = package_data("quiz", task.file).read_text(encoding="utf-8").splitlines()
        rows = [line.split(":") for line in lines if line.strip()]
        items = []
        for r in rows:
            q = quiz_expansions(r[task.question_field])
            items.append((q, quiz_expansions(r[task.answer_field]), task.prompt.format(q=q[0])))
        questions += _multiple_choice(task.file, items, rng, n_choices, seen, task.file)
    return _spread(questions, limit)


def _bsdgames_items(path: Path, text: str) -> list[tuple[list[str], list[str], str]]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) < 2:
            raise InvalidData(f"{path}:{number}: expected 'question:answer|alternative', got {line.strip()[:60]!r}",
                              field="quizzes")
        question, answers = quiz_expansions(fields[0]), quiz_expansions(fields[1])
        if not question or not answers:
            raise InvalidData(f"{path}:{number}: empty {'question' if not question else 'answer'}", field="quizzes")
        items.append((question, answers, question[0]))
    return items


def _jsonl_questions(path: Path, text: str) -> list[Question]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidData(f"{where}: malformed JSON ({exc.msg})", field="quizzes") from None
        if not isinstance(record, dict):
            raise InvalidData(f"{where}: expected an object with question, choices, answer", field="quizzes")
        question, choices, answer = record.get("question"), record.get("choices"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise InvalidData(f"{where}: field 'question' must be a non-empty string", field="quizzes")
        if (not isinstance(choices, list) or len(choices) < 2
                or not all(isinstance(c, str) and c.strip() for c in choices) or len(set(choices)) != len(choices)):
            raise InvalidData(f"{where}: field 'choices' must be a list of at least 2 distinct non-empty strings",
                              field="quizzes")
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise InvalidData(f"{where}: field 'answer' must be an index 0..{len(choices) - 1} into 'choices'",
                              field="quizzes")
        padded = tuple(c if c[:1].isspace() else " " + c for c in choices)
        out.append(Question(path.name, question.rstrip(), padded, answer))
    return out


def read_quiz_files(paths: Sequence[str | Path], *, seed: int = 0, n_choices: int = 4,
                    limit: int | None = None) -> list[Question]:
    """Questions from the user's quiz files: ``*.jsonl`` as JSONL multiple choice, any other file in
    the bsdgames format (prompt = the question field's first reading, distractors as for the
    shipped quiz, ``random.Random(seed)``). ``limit`` keeps an evenly spread subset."""
    if not paths:
        raise InvalidArgument("no quiz files given", field="quizzes")
    rng = random.Random(seed)
    questions: list[Question] = []
    seen: set[tuple[str, str]] = set()
    for raw in paths:
        path = Path(raw)
        text = _read_utf8(path, "quizzes")
        if path.suffix == ".jsonl":
            found = _jsonl_questions(path, text)
        else:
            found = _multiple_choice(path.name, _bsdgames_items(path, text), rng, n_choices, seen, str(path))
        if not found:
            raise InvalidData(f"{path}: no questions in the file", field="quizzes")
        questions += found
    return _spread(questions, limit)
