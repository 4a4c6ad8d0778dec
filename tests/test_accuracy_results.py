"""The accuracy results file format (docs/accuracy.json): several models, and earlier single-model files."""
import json

import pytest


def test_multi_model_accuracy_study_file(tmp_path):
    from ampersim.core.errors import NotFound
    from ampersim.report.accuracy import load_accuracy, load_accuracy_file

    row = {"pattern": "8:16", "scoring": "amber", "policy": "amber", "ppl": 30.0, "quiz_acc": 0.6}
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps({"environment": {"date": "2026-12-03"}, "models": [
        {"model": "a", "parameters": 135, "family": "llama", "dense": {"ppl": 25.0, "quiz_acc": 0.7}, "rows": [row]},
        {"model": "b", "dense": {"ppl": 10.0}, "rows": [row], "extra_rows": [{**row, "outliers": "drop"}]}]}))
    study = load_accuracy_file(path)
    assert [m.model for m in study.models] == ["a", "b"] and study.models[1].extra_rows[0].outliers == "drop"
    assert load_accuracy(path).model == "a" and load_accuracy(path, "b").metric == "ppl"
    with pytest.raises(NotFound, match="unknown model in the accuracy results 'c'"):
        load_accuracy(path, "c")
