"""The lm-evaluation-harness adapter, offline: the project's quiz as the local lm-eval task.

The model tests need the lm-eval extra and the SmolLM2 wheel and skip cleanly without them."""
import importlib.util
import json

import pytest
import yaml
from conftest import needs_smollm2

from ampersim.core.errors import InvalidArgument, MissingDependency
from ampersim.eval import lm_eval as adapter
from ampersim.eval.data import Question, build_quiz

needs_lm_eval = pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None,
                                   reason="lm-eval not installed (pip install 'ampersim[lm-eval]')")


def test_quiz_task_files(tmp_path):
    questions = [Question("t", "The capital of France is", (" Paris", " Rome"), 0)]
    adapter.write_quiz_task(questions, tmp_path)
    config = yaml.safe_load((tmp_path / "ampersim_quiz.yaml").read_text())
    assert config["task"] == "ampersim_quiz" and config["output_type"] == "multiple_choice"
    assert config["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "ampersim_quiz.jsonl")
    assert config["target_delimiter"] == ""  # choices carry their own leading space, as in our quiz
    record = json.loads((tmp_path / "ampersim_quiz.jsonl").read_text())
    assert record == {"prompt": "The capital of France is", "choices": [" Paris", " Rome"], "answer": 0}
    with pytest.raises(InvalidArgument, match="needs quiz questions"):
        adapter.write_quiz_task([], tmp_path)


def test_missing_lm_eval_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lm_eval(name, *args, **kwargs):
        if name == "lm_eval" or name.startswith("lm_eval."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lm_eval)
    with pytest.raises(MissingDependency, match=r"pip install 'ampersim\[lm-eval\]'"):
        adapter.evaluate_tasks(None, ["ampersim_quiz"])


@needs_lm_eval
@needs_smollm2
def test_local_quiz_task_matches_own_quiz_dense_and_sparsified(smollm2):
    """lm-eval's HFLM over the live model picks the same answers as ampersim's quiz, dense and with
    the sparsify hooks attached (log-likelihood requests are prefill passes, so they are pruned)."""
    import ampersim
    from ampersim.eval.metrics import quiz_accuracy

    questions = build_quiz(seed=0, limit=6)
    dense = adapter.evaluate_tasks(smollm2, ["ampersim_quiz"], questions=questions)["ampersim_quiz"]
    assert dense.correct == quiz_accuracy(smollm2.model, smollm2.tokenizer, questions).correct
    with ampersim.sparsify(smollm2.model, "all", pattern="2:4", scoring="magnitude", spec=smollm2.spec):
        ours = quiz_accuracy(smollm2.model, smollm2.tokenizer, questions)
        theirs = adapter.evaluate_tasks(smollm2, ["ampersim_quiz"], questions=questions)["ampersim_quiz"]
    assert theirs.correct == ours.correct and theirs.n == 6
    with pytest.raises(InvalidArgument, match="unknown lm-eval task 'no_such_task'"):
        adapter.evaluate_tasks(smollm2, ["no_such_task"], questions=questions)
