"""The user's own evaluation data (text, bsdgames and JSONL quizzes), the code corpus, --eval parsing."""
import json

import pytest

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.eval.data import CODE_FILES, read_corpus, read_quiz_files, shipped_corpus
from ampersim.eval.experiment import Variant, parse_evals


def test_read_corpus_joins_files_and_names_bad_lines(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("first file\n", encoding="utf-8")
    b.write_text("second\n", encoding="utf-8")
    corpus = read_corpus([a, b])
    assert corpus.text == "first file\n\n\nsecond\n" and corpus.description == "user text (a.txt, b.txt)"
    b.write_bytes(b"ok line\nline two \xff here\n")
    with pytest.raises(InvalidData, match=r"b\.txt:2: not UTF-8 \(byte 0xff\)") as info:
        read_corpus([a, b])
    assert info.value.field == "texts"
    b.write_text("  \n")
    with pytest.raises(InvalidData, match="b.txt: the file is empty"):
        read_corpus([b])
    with pytest.raises(NotFound, match="missing.txt: file not found"):
        read_corpus([tmp_path / "missing.txt"])


def test_code_corpus_is_the_stdlib_extract():
    corpus = shipped_corpus("code")
    assert "def wrap(text, width=70, **kwargs)" in corpus.text and "class TopologicalSorter" in corpus.text
    assert all(name in corpus.description for name in CODE_FILES)


BSD = """\
The capital of France is:Paris
The capital of Italy is:Rom[e|a]
The capital of Spain is:Madrid
The capital of Austria is:Vienna|Wien
The largest planet is:Jupiter
"""


def test_bsdgames_quiz_file(tmp_path):
    path = tmp_path / "mine"
    path.write_text(BSD, encoding="utf-8")
    questions = read_quiz_files([path], seed=0)
    assert questions == read_quiz_files([path], seed=0) and len(questions) == 5
    france = questions[0]
    assert france.prompt == "The capital of France is" and france.choices[france.answer] == " Paris"
    assert all(len(q.choices) == 4 and len(set(q.choices)) == 4 for q in questions)
    austria = questions[3]
    assert " Wien" not in austria.choices  # an accepted answer is never a distractor
    assert len(read_quiz_files([path], limit=2)) == 2


def test_jsonl_quiz_file(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [{"question": "2 + 2 =", "choices": ["4", "5", " 22"], "answer": 0},
             {"question": "The sky is", "choices": ["blue", "green"], "answer": 0}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    questions = read_quiz_files([path])
    assert [q.choices for q in questions] == [(" 4", " 5", " 22"), (" blue", " green")]
    assert questions[0].task == "q.jsonl" and questions[1].answer == 0


@pytest.mark.parametrize("line,message", [
    ('{"question": "x", "choices": ["a", "b"], "answer": 2}', r"q\.jsonl:2: field 'answer' must be an index 0\.\.1"),
    ('{"question": "x", "choices": ["a"], "answer": 0}', r"q\.jsonl:2: field 'choices' must be a list of at least 2"),
    ('{"question": "", "choices": ["a", "b"], "answer": 0}', r"q\.jsonl:2: field 'question' must be a non-empty"),
    ('{"question": "x", "choices": ["a", "a"], "answer": 0}', "distinct"),
    ('{"question": "x", "choices": ["a", "b"], "answer": true}', "field 'answer'"),
    ('[1, 2]', r"q\.jsonl:2: expected an object"),
    ('{"question": "x",', r"q\.jsonl:2: malformed JSON"),
])
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "ok", "choices": ["a", "b"], "answer": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidData, match=message) as info:
        read_quiz_files([path])
    assert info.value.field == "quizzes"


def test_bsdgames_errors_name_the_line(tmp_path):
    path = tmp_path / "mine"
    path.write_text(BSD + "no separator here\n", encoding="utf-8")
    with pytest.raises(InvalidData, match=r"mine:6: expected 'question:answer\|alternative'"):
        read_quiz_files([path])
    path.write_text("a:x\nb:y\n", encoding="utf-8")
    with pytest.raises(InvalidData, match="needs at least 4 distinct answers"):
        read_quiz_files([path])
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InvalidData, match="no questions in the file"):
        read_quiz_files([path])


def test_parse_evals():
    assert parse_evals("ppl,quiz") == (("ppl", "quiz"), ())
    assert parse_evals("ppl, code ,lm-eval:arc_easy,piqa") == (("ppl", "code"), ("arc_easy", "piqa"))
    assert parse_evals("lm-eval:ampersim_quiz,quiz") == (("quiz",), ("ampersim_quiz",))
    with pytest.raises(InvalidArgument, match="unknown evaluation 'bleu'") as info:
        parse_evals("ppl,bleu")
    assert info.value.field == "eval"
    with pytest.raises(InvalidArgument, match="needs task names"):
        parse_evals("lm-eval:")
    with pytest.raises(InvalidArgument, match="no evaluation given"):
        parse_evals(" , ")


def test_variant_labels_and_checks():
    assert Variant().label == "8:16 amber/amber"
    assert Variant("2:4", "magnitude", "all", True, "drop").label == "2:4 magnitude/all +W8A8 outliers=drop"
    assert Variant(policy="/x/my_policy.yaml").label == "8:16 amber/my_policy"
    with pytest.raises(InvalidArgument, match="unknown outliers 'cut'"):
        Variant(outliers="cut")
    with pytest.raises(InvalidArgument, match="unknown scoring"):
        Variant(scoring="wanda")


def test_user_text_too_short_names_the_window(tmp_path):
    from test_eval_quiz import _CharTokenizer

    from ampersim.eval.data import token_windows

    with pytest.raises(InvalidArgument, match="the text has 3 tokens, fewer than one window of 8") as info:
        token_windows(_CharTokenizer(), "abc", 8, 1)
    assert info.value.field == "window_tokens"


def test_local_lm_eval_task_does_not_run_the_quiz_twice():
    from types import SimpleNamespace

    from ampersim.eval.experiment import prepare_eval_set

    loaded = SimpleNamespace(tokenizer=None, add_bos=False)
    only_lm_eval = prepare_eval_set(loaded, (), lm_eval_tasks=("ampersim_quiz",), questions=12)
    assert only_lm_eval.questions == () and len(only_lm_eval.lm_eval_questions) == 12
    both = prepare_eval_set(loaded, ("quiz",), lm_eval_tasks=("ampersim_quiz",), questions=12)
    assert both.questions == both.lm_eval_questions and both.describe()["quiz_questions"] == 12
