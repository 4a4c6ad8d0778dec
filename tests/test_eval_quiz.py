"""Evaluation helpers that need no model: quiz parsing/construction and token windows."""
import collections

import pytest

from ampersim.core.errors import InvalidArgument, NotFound
from ampersim.eval.data import build_quiz, load_text, quiz_expansions, token_windows


@pytest.mark.parametrize("field,expected", [
    ("Yaound['e|e'|e]", ["Yaounde"]),
    ("Rom[e|a]", ["Rome"]),
    ("Mo[z|,c|c,|c]ambique", ["Mozambique"]),
    ("Port[-| ]au[-| ]Prince", ["Port-au-Prince"]),
    ("Central Africa{n Rep{ublic}}", ["Central African Republic"]),
    ("{DR |Democratic Republic of the }Congo", ["DR Congo"]),
    ("Vienna|Wien", ["Vienna", "Wien"]),
    ("United States|US{A}", ["United States", "USA"]),
    ("{H|h}uns", ["Huns"]),
    ("ducks", ["ducks"]),
])
def test_quiz_expansions(field, expected):
    assert quiz_expansions(field) == expected


def test_build_quiz_is_deterministic_and_well_formed():
    questions = build_quiz(seed=0)
    assert questions == build_quiz(seed=0)
    assert questions != build_quiz(seed=1)
    assert len(questions) > 400
    assert set(collections.Counter(q.task for q in questions)) == {
        "africa", "america", "asia", "europe", "elements", "collectives"}
    for q in questions:
        assert len(q.choices) == 4 and len(set(q.choices)) == 4
        assert all(c.startswith(" ") for c in q.choices)
    france = next(q for q in questions if q.prompt == "The capital of France is")
    assert france.choices[france.answer] == " Paris"


def test_quiz_distractors_exclude_other_correct_answers():
    # "whales" is answered both "gam" and "school" in the collectives file: never a distractor.
    for q in build_quiz(seed=0):
        if q.prompt == "A group of whales is called a":
            wrong = {c for i, c in enumerate(q.choices) if i != q.answer}
            assert not wrong & {" gam", " pod", " school"}


def test_quiz_limit_covers_all_tasks():
    subset = build_quiz(seed=0, limit=60)
    assert len(subset) == 60
    assert len({q.task for q in subset}) == 6
    with pytest.raises(InvalidArgument, match="n_choices"):
        build_quiz(n_choices=1)


class _CharTokenizer:
    """One token per character; BOS id 0."""

    bos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


def test_token_windows_non_overlapping_and_bos():
    tok = _CharTokenizer()
    windows = token_windows(tok, "abcdefghij", 4, 2)
    assert windows.tolist() == [[97, 98, 99, 100], [101, 102, 103, 104]]
    with_bos = token_windows(tok, "abcdefghij", 4, 3, add_bos=True)
    assert with_bos.tolist() == [[0, 97, 98, 99], [0, 100, 101, 102], [0, 103, 104, 105]]
    assert token_windows(tok, "abcdefghij", 4).shape == (2, 4)
    with pytest.raises(InvalidArgument, match="windows 3: the text has 10 tokens, room for at most 2 windows"):
        token_windows(tok, "abcdefghij", 4, 3)
    with pytest.raises(InvalidArgument, match="window_tokens 20: the text has 10 tokens, fewer than one window of 20; "
                                              "at most 10 tokens per window") as info:
        token_windows(tok, "abcdefghij", 20)
    assert info.value.field == "window_tokens"


def test_load_text():
    assert load_text("austen").startswith("PRIDE AND PREJUDICE")
    assert "Call me Ishmael" in load_text("mobydick")
    with pytest.raises(NotFound, match="available: austen, mobydick"):
        load_text("wikitext")
