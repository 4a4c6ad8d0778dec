"""Measurement files: typed JSON lines with a header, appended per record; truncated and foreign files."""
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ampersim.core.errors import InvalidData, NotFound
from ampersim.core.resources import data_dir
from ampersim.measure.harness import summarize
from ampersim.measure.records import (
    FORMAT,
    Check,
    MeasuredShape,
    MeasurementWriter,
    OpMeasurement,
    header_record,
    read_measurements,
)
from ampersim.models.registry import load_model_spec
from ampersim.sim.graph import build_graph
from ampersim.sparsity.policy import resolve_policy

ENV = {"gpu": "NVIDIA H200", "device": "cuda"}
VALIDATION = Path(__file__).resolve().parent.parent / "validation"
_SPEC = load_model_spec("smollm2-135m")
_GATE = next(op for op in build_graph(_SPEC, resolve_policy("none", _SPEC), 32, 1, "bf16", 1) if op.name == "gate_proj")


def _op(i: int) -> OpMeasurement:
    return OpMeasurement(
        workload="m", model="m", tokens=i, batch=1, dtype="bf16", tp=1, pattern="2:4", policy="all", scoring="amber",
        variant="dense", prune_impl=None, op=_GATE.to_record(), also=[],
        measured=MeasuredShape(M=32, N=1536, K=576, groups=1, sets=4), impl="F.linear",
        check=Check(rel_err=1e-3, tol=2e-2, ok=True), timing=summarize([1e-3 * i], "cuda_graph", 4))


def _write(path, n=3, env=ENV):
    with MeasurementWriter(path, header_record(env, ["ampersim", "measure"], "2026-11-27T00:00:00")) as w:
        for i in range(1, n + 1):
            w.write(_op(i))


def test_round_trip_keeps_order_and_line_numbers(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path)
    m = read_measurements(path)
    assert m.gpu == "NVIDIA H200"
    assert [r.tokens for r in m.records] == [1, 2, 3]
    assert [r.line for r in m.records] == [2, 3, 4]
    assert m.truncated_line is None
    first = json.loads(path.read_text().splitlines()[0])
    assert first["format"] == FORMAT and first["schema"] == 1
    assert m.records[0] == _op(1).model_copy(update={"file": m.label, "line": 2})  # every field survives


def test_writer_takes_typed_records_only(tmp_path):
    with MeasurementWriter(tmp_path / "m.jsonl", header_record(ENV, [], "t")) as writer:
        with pytest.raises(TypeError, match="must be one of HeaderRecord, OpMeasurement"):
            writer.write({"record": "op", "model": "m"})
    with pytest.raises(ValidationError, match="variant"):  # building a record validates it
        OpMeasurement.model_validate(_op(1).model_dump() | {"variant": "fast"})


@pytest.mark.parametrize("change,field", [
    (lambda r: r.pop("timing"), "timing"),
    (lambda r: r["timing"].update(median_s="fast"), "timing.median_s"),
    (lambda r: r["op"].update(kind="matmul"), "op.kind"),
    (lambda r: r.update(surprise=1), "surprise"),
])
def test_invalid_record_names_file_line_and_field(tmp_path, change, field):
    path = tmp_path / "m.jsonl"
    _write(path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    change(record)
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidData, match=rf"m.jsonl:3: field '{field}': ") as info:
        read_measurements(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name,results,skips", [
    ("h100.jsonl", 183, 22), ("h200.jsonl", 375, 66), ("h200-run1.jsonl", 435, 1), ("h200-run3.jsonl", 160, 165),
    ("h200x2-allreduce.jsonl", 12, 0), ("h200-run4.jsonl", 35, 0), ("h200-decode.jsonl", 110, 0),
    ("h200-decode-qwen2.jsonl", 72, 0)])
def test_committed_measurement_files_load_unchanged(name, results, skips):
    """Every committed file reads as typed records, and each record holds exactly the values of its line."""
    m = read_measurements(VALIDATION / name)
    assert (len(m.records), len(m.skips), m.truncated_line) == (results, skips, None)
    lines = (VALIDATION / name).read_text().splitlines()
    for record in m.records + m.skips:
        assert record.model_dump(mode="json", by_alias=True, exclude_unset=True) == json.loads(lines[record.line - 1])


def test_each_record_is_on_disk_before_the_next(tmp_path):
    path = tmp_path / "m.jsonl"
    writer = MeasurementWriter(path, header_record(ENV, [], "t"))
    writer.write(_op(1))
    assert len(read_measurements(path).records) == 1  # flushed while the writer is still open
    writer.close()


def test_truncated_last_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path)
    path.write_text(path.read_text() + '{"record": "op", "model": "m", "tok')
    m = read_measurements(path)
    assert m.truncated_line == 5
    assert len(m.records) == 3


def test_malformed_middle_line_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path)
    lines = path.read_text().splitlines()
    lines[2] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidData, match=r"m.jsonl:3: malformed JSON"):
        read_measurements(path)


@pytest.mark.parametrize("text", ['{"some": "other json"}\n', "name,value\n1,2\n", ""])
def test_foreign_file_is_refused_at_line_1(tmp_path, text):
    path = tmp_path / "foreign.jsonl"
    path.write_text(text)
    with pytest.raises(InvalidData, match=r"foreign.jsonl:1: not an ampersim measurement file"):
        read_measurements(path)


def test_unknown_schema_version_and_record_kind(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"record": "header", "format": FORMAT, "schema": 99, "environment": {}}) + "\n")
    with pytest.raises(InvalidData, match=r":1: field 'schema'"):
        read_measurements(path)
    path.unlink()
    _write(path)
    path.write_text(path.read_text() + '{"record": "banana"}\n')
    with pytest.raises(InvalidData, match=r":5: field 'record'"):
        read_measurements(path)


def test_missing_file(tmp_path):
    with pytest.raises(NotFound, match="not found"):
        read_measurements(tmp_path / "nope.jsonl")


def test_append_needs_flag_and_same_gpu(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path)
    with pytest.raises(InvalidData, match="file exists and append is off") as info:
        MeasurementWriter(path, header_record(ENV, [], "t"))
    assert info.value.field == "append"
    with pytest.raises(InvalidData, match="cannot append a run on 'NVIDIA H100 80GB HBM3'"):
        MeasurementWriter(path, header_record({"gpu": "NVIDIA H100 80GB HBM3"}, [], "t"), append=True)
    path.write_text(path.read_text() + '{"record": "op", "trunc')  # an interrupted run: cut, then append
    with MeasurementWriter(path, header_record(ENV, [], "t"), append=True) as w:
        w.write(_op(9))
    m = read_measurements(path)
    assert len(m.headers) == 2 and [r.tokens for r in m.records] == [1, 2, 3, 9]
    assert m.truncated_line is None


def test_mixed_gpus_in_one_file_are_refused(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path)
    other = header_record({"gpu": "NVIDIA A100-SXM4-80GB"}, [], "t")
    path.write_text(path.read_text() + other.model_dump_json(by_alias=True) + "\n")
    with pytest.raises(InvalidData, match=r":5: run on 'NVIDIA A100-SXM4-80GB' mixed into"):
        read_measurements(path)


def test_records_name_their_file_relative_to_the_repository():

    from ampersim.measure.records import display_path

    committed = data_dir("validation") / "h200x2-allreduce.jsonl"
    m = read_measurements(committed)
    assert m.label == "validation/h200x2-allreduce.jsonl"  # whatever the working directory
    assert {r.file for r in m.records} == {"validation/h200x2-allreduce.jsonl"}
    assert display_path("/elsewhere/run.jsonl") == "/elsewhere/run.jsonl"
