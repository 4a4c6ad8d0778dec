"""Property-based fuzzing (hypothesis) of hardware profiles and measurement records.

A profile with any one number replaced by any value, and a measurement record with any one field
replaced by any JSON value, either loads, and then every number in it is finite and what uses it
(predict, validate) gives finite results, or is refused with InvalidData naming the file and the
field: never another exception, never a silent nan. Bounded for CI: a fixed number of examples,
derandomized (the same examples on every run).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampersim.core.errors import AmpersimError, InvalidData
from ampersim.core.resources import data_dir, repository_root
from ampersim.core.sourced import sourced_numbers
from ampersim.hardware.registry import load_profile
from ampersim.measure.records import read_measurements
from ampersim.measure.validate import validate
from ampersim.sim.predict import predict
from ampersim.sim.scenario import load_scenario

FUZZ = settings(max_examples=120, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = yaml.safe_load((data_dir("hardware_profiles") / "h100-sxm.yaml").read_text())
HEADER, RECORD = (repository_root() / "validation" / "h100.jsonl").read_text().splitlines()[:2]


def _leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every scalar in a parsed YAML/JSON tree."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _leaves(value, (*path, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in _leaves(value, (*path, i))]
    return [path]


def _replaced(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, head: _replaced(tree[head], rest, value)}
    return [_replaced(v, rest, value) if i == head else v for i, v in enumerate(tree)]


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from([0, -1, 1e-300, 1e300, 0.5, 2]))
VALUES = st.one_of(NUMBERS, st.text(max_size=12), st.none(), st.booleans(), st.lists(st.integers(), max_size=3))


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _load_or_refused(tmp_path_factory, name: str, data: dict, loader):
    """Write ``data`` as YAML and load it: the loaded object, or None when it was refused naming the file
    and the field (the only refusal a bad value may give)."""
    file = tmp_path_factory.mktemp("fuzz") / name
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        return loader(file)
    except InvalidData as exc:
        assert str(exc).startswith(str(file)) and "field '" in str(exc)
        return None


PROFILE_PATHS = [p for p in _leaves(PROFILE) if isinstance(_get(PROFILE, p), (int, float))
                 and not isinstance(_get(PROFILE, p), bool)]


@FUZZ
@given(path=st.sampled_from(PROFILE_PATHS), value=VALUES)
def test_fuzzed_profile_loads_finite_or_is_refused_naming_the_field(tmp_path_factory, path, value):
    profile = _load_or_refused(tmp_path_factory, "p.yaml", _replaced(PROFILE, path, value), load_profile)
    if profile is None:
        return
    assert all(math.isfinite(v) for _, v, _, _ in sourced_numbers(profile) if isinstance(v, float))
    try:
        result = predict(profile, load_scenario("prefill-4k"))
    except AmpersimError:
        return
    assert math.isfinite(result.dense_total_s) and result.dense_total_s > 0
    assert math.isfinite(result.sparse_total_s) and result.sparse_total_s > 0


RECORD_TREE = json.loads(RECORD)
RECORD_PATHS = _leaves(RECORD_TREE) + [("timing",), ("measured",), ("op",), ("check",)]
JSON_VALUES = st.one_of(VALUES, st.sampled_from(["NaN", "Infinity", "-Infinity"]).map(lambda t: ("raw", t)),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _record_line(path: tuple, value: Any) -> str:
    if isinstance(value, tuple) and value[:1] == ("raw",):  # JSON's non-standard NaN/Infinity tokens
        marker = "__RAW__"
        return json.dumps(_replaced(RECORD_TREE, path, marker)).replace(f'"{marker}"', value[1])
    return json.dumps(_replaced(RECORD_TREE, path, value))


@FUZZ
@given(path=st.sampled_from(RECORD_PATHS), value=JSON_VALUES)
def test_fuzzed_record_reads_and_validates_finite_or_is_refused_naming_line_and_field(tmp_path_factory, path, value):
    file: Path = tmp_path_factory.mktemp("fuzz") / "m.jsonl"
    file.write_text(f"{HEADER}\n{_record_line(path, value)}\n")
    try:
        measured = read_measurements(file)
    except InvalidData as exc:
        assert str(exc).startswith(f"{file}:2: ") or str(exc).startswith(f"{file}:1: "), str(exc)
        return
    try:
        result = validate(measured, load_profile("h100-sxm"))
    except AmpersimError:
        return
    for row in result["summary"]:
        assert all(math.isfinite(row[k]) for k in ("mape_pct", "max_abs_err_pct", "bias_pct")), row


def test_every_profile_number_is_fuzzed():
    assert len(PROFILE_PATHS) > 40 and len(RECORD_PATHS) > 30


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_times_are_refused(tmp_path, token):
    file = tmp_path / "m.jsonl"
    file.write_text(f"{HEADER}\n{_record_line(('timing', 'median_s'), ('raw', token))}\n")
    with pytest.raises(InvalidData, match=r"m\.jsonl:2: field 'timing\.median_s'"):
        read_measurements(file)


@pytest.mark.parametrize("field", ["usd_per_hour", "purchase_usd", "lifetime_years", "usd_per_kwh", "utilization"])
def test_non_finite_prices_are_refused_by_the_library(field):
    from ampersim.core.errors import InvalidArgument
    from ampersim.econ.roi import price_basis

    for value in (math.inf, math.nan):
        with pytest.raises(InvalidArgument) as info:
            price_basis(load_profile("a100"), **{field: value})
        assert info.value.field == field


SCENARIO = yaml.safe_load((data_dir("workloads") / "scenarios" / "chat.yaml").read_text())
SCENARIO_PATHS = [p for p in _leaves(SCENARIO) if p[0] not in ("name", "description", "output_source")]


@FUZZ
@given(path=st.sampled_from(SCENARIO_PATHS), value=VALUES)
def test_fuzzed_workload_predicts_finite_or_is_refused(tmp_path_factory, path, value):
    """A workload with any one field replaced: refused naming file and field (loading), refused in one
    line (bounds, context, an unknown model), or predicted with finite times and a finite request time."""
    scenario = _load_or_refused(tmp_path_factory, "w.yaml", _replaced(SCENARIO, path, value), load_scenario)
    if scenario is None:
        return
    try:
        result = predict(load_profile("h100-sxm"), scenario)
    except AmpersimError as exc:  # a bound, the model's context, an unknown model or policy: one line
        assert str(exc) and "\n" not in str(exc)
        return
    assert math.isfinite(result.dense_total_s) and math.isfinite(result.sparse_total_s)
    if result.request is not None:
        assert math.isfinite(result.request.e2e_dense_s) and math.isfinite(result.request.e2e_sparse_s)


@FUZZ
@given(text=st.one_of(st.text(max_size=30), st.builds(
    lambda kind, numbers: f"{kind}:{','.join(numbers)}", st.sampled_from(["fixed", "lognormal", "trace", "x"]),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                       st.sampled_from(["inf", "nan", "-0", "1e300", ""])), max_size=4))))
def test_length_distribution_text_parses_or_is_refused_in_one_line(text):
    """Whatever --prompt-dist / --output-dist holds: a distribution whose lengths and mean are finite, or an
    AmpersimError (never OverflowError, ValueError from numpy, or a numba typing error)."""
    from ampersim.econ.traffic import parse_length_dist

    for what, field in (("prompt", "prompt_dist"), ("output", "output_dist")):
        try:
            dist = parse_length_dist(text, what=what, field=field)
        except AmpersimError:
            continue
        assert math.isfinite(dist.mean()) and dist.max_tokens() >= 0


DECODE_PROFILE = yaml.safe_load((data_dir("hardware_profiles") / "calibrated" / "h200-calibrated.yaml").read_text())
DECODE_PATHS = [p for p in _leaves(DECODE_PROFILE) if p[-1] == "value" and any(
    k in ("memory_fraction", "memory_latency_us", "decode_attention_fraction", "decode_attention_latency_us",
          "cloud_market_usd_per_gpu_hour") for k in p)]


@FUZZ
@given(path=st.sampled_from(DECODE_PATHS), value=VALUES)
def test_fuzzed_decode_fields_load_finite_or_are_refused(tmp_path_factory, path, value):
    """The decode-calibration fields (issue 15) and market prices (issue 12): any value loads finite, and a
    decode step predicts finite, or is refused naming the file and the field."""
    from ampersim.sim.predict import predict

    data = {**_replaced(DECODE_PROFILE, path, value), "name": "h200-fuzz"}
    profile = _load_or_refused(tmp_path_factory, "h200-fuzz.yaml", data, load_profile)
    if profile is None:
        return
    assert all(math.isfinite(v) for _, v, _, _ in sourced_numbers(profile) if isinstance(v, float))
    result = predict(profile, load_scenario("chat"))
    assert math.isfinite(result.request.e2e_dense_s) and result.request.e2e_dense_s > 0


def test_decode_fields_are_fuzzed():
    assert {p[-2] for p in DECODE_PATHS} >= {"memory_fraction", "memory_latency_us", "decode_attention_fraction",
                                             "decode_attention_latency_us", "cloud_market_usd_per_gpu_hour"}


TCO = yaml.safe_load((data_dir("workloads") / "tco" / "colocation-us.yaml").read_text())
TCO_PATHS = [p for p in _leaves(TCO) if p[-1] == "value"]


@FUZZ
@given(path=st.sampled_from(TCO_PATHS), value=VALUES)
def test_fuzzed_tco_loads_finite_or_is_refused_naming_the_field(tmp_path_factory, path, value):
    """A TCO file (issue 12) with any one number replaced: refused naming file and field, or an owned
    GPU-hour that is finite and positive at every utilization."""
    from ampersim.econ.tco import load_tco, owned_gpu_hour

    tco = _load_or_refused(tmp_path_factory, "tco.yaml", _replaced(TCO, path, value), load_tco)
    if tco is None:
        return
    for utilization in (0.0, 0.5, 1.0):
        hour = owned_gpu_hour(load_profile("h100-sxm"), tco, 27_500.0, utilization)
        assert math.isfinite(hour.total) and hour.total > 0


TRACE_RECORD = {"timestamp": 1000, "input_length": 2048, "output_length": 120, "hash_ids": [1, 2, 3, 4]}
TRACE_KEYS = [*TRACE_RECORD, "cached_tokens"]


def _trace_line(key: str, value: Any) -> str:
    record = {**TRACE_RECORD, key: "__RAW__" if isinstance(value, tuple) else value}
    text = json.dumps(record)
    return text.replace('"__RAW__"', value[1]) if isinstance(value, tuple) else text


@FUZZ
@given(key=st.sampled_from(TRACE_KEYS), value=JSON_VALUES)
def test_fuzzed_trace_record_reads_finite_or_is_refused_naming_the_line(tmp_path_factory, key, value):
    """A request trace in JSON lines (issue 12: Mooncake format, cached tokens) whose second request has any
    one key replaced by any JSON value: finite arrivals, 1 <= lengths, 0 <= cached < prompt; or InvalidData
    naming the file and line (never another exception)."""
    import numpy as np

    from ampersim.econ.traffic import read_request_trace

    file = tmp_path_factory.mktemp("fuzz") / "t.jsonl"
    file.write_text(json.dumps({**TRACE_RECORD, "timestamp": 0}) + "\n" + _trace_line(key, value) + "\n")
    try:
        trace = read_request_trace(file)
    except InvalidData as exc:
        assert str(exc).startswith(f"{file}:") or str(exc).startswith(f"{file}: "), str(exc)
        return
    arrival, prompt, output, cached = trace.draw()
    assert np.isfinite(arrival).all() and (prompt >= 1).all() and (output >= 1).all()
    assert ((cached >= 0) & (cached < prompt)).all() and math.isfinite(trace.rate_per_s)
