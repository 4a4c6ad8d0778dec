"""A profile can describe several sparse-GEMM library paths (cuSPARSELt searched vs default
algorithm); `predict` says which one it costs and can be asked for another; `validate` costs the path a
measurement ran and `calibrate` fits one path into a profile that already has the others."""
import pytest

from ampersim.cli import main
from ampersim.core.errors import NotFound
from ampersim.core.resources import data_dir
from ampersim.hardware.profile import Efficiency
from ampersim.hardware.registry import load_profile
from ampersim.measure.calibrate import calibrate
from ampersim.measure.records import read_measurements
from ampersim.measure.validate import validate
from ampersim.sim.predict import predict
from ampersim.sim.scenario import load_scenario


def _with_default_alternative(profile, factor=0.8):
    """The profile plus a 'cusparselt_default' path whose sparse peak fraction is ``factor`` x its own."""
    eff = profile.efficiency
    slower = eff.sparse_gemm.model_copy(update={"peak_fraction": eff.sparse_gemm.peak_fraction.model_copy(
        update={"value": eff.sparse_gemm.peak_fraction.value * factor, "source": "assumed: test"})})
    efficiency = eff.model_copy(update={"sparse_gemm_alternatives": {"cusparselt_default": slower}})
    return profile.model_copy(update={"efficiency": efficiency})


def test_predict_names_the_sparse_gemm_path_and_costs_the_chosen_one():
    profile = _with_default_alternative(load_profile("h200-calibrated"))
    scenario = load_scenario("prefill-4k").with_overrides(pattern="2:4")
    own = predict(profile, scenario)
    other = predict(profile, scenario, sparse_gemm_impl="cusparselt_default")
    assert own.sparse_gemm_impl == "cusparselt_searched" and other.sparse_gemm_impl == "cusparselt_default"
    assert "sparse GEMMs costed as cusparselt_searched" in own.timing_note
    assert "sparse GEMMs costed as cusparselt_default" in other.timing_note
    for a, b in zip(own.ops, other.ops):
        assert a.dense_s == b.dense_s
        if a.kind == "sparse_gemm":
            assert b.sparse_s > a.sparse_s
        else:
            assert b.sparse_s == a.sparse_s
    assert other.speedup < own.speedup


def test_unknown_sparse_gemm_path_names_the_field_and_the_known_ones():
    with pytest.raises(NotFound, match="available: cusparselt_searched") as err:
        predict(load_profile("h200"), load_scenario("prefill-4k"), sparse_gemm_impl="cusparselt_default")
    assert err.value.field == "sparse_gemm_impl"


def test_alternatives_cannot_repeat_the_profiles_own_path():
    eff = load_profile("h200").efficiency.model_dump()
    eff["sparse_gemm_alternatives"] = {"cusparselt_searched": eff["sparse_gemm"]}
    with pytest.raises(ValueError, match="repeats sparse_gemm_impl 'cusparselt_searched'"):
        Efficiency(**eff)


def test_switching_keeps_every_path():
    eff = _with_default_alternative(load_profile("h200")).efficiency
    switched = eff.with_sparse_gemm("cusparselt_default")
    assert switched.sparse_gemm_impls == ["cusparselt_default", "cusparselt_searched"]
    assert switched.with_sparse_gemm("cusparselt_searched").sparse_gemm == eff.sparse_gemm


# -- the H200 measurements of both paths (validation/h200-gemm-*.jsonl, benchmarks/gpu_eager_prefill.py) --
SEARCHED = data_dir("validation") / "h200-gemm-searched.jsonl"
DEFAULT = data_dir("validation") / "h200-gemm-default.jsonl"


def _stats(result, category, split):
    return next(s for s in result["summary"] if s["category"] == category and s["split"] == split)


def test_committed_default_algorithm_model_is_reproduced_and_nothing_else_changes():
    committed = load_profile("h200-calibrated")
    profile, stages, holdout = calibrate(read_measurements(DEFAULT), committed, sparse_gemm_impl="cusparselt_default")
    assert holdout == ["llama-3.1-70b"] and [s["stage"] for s in stages] == ["2:4 sparse GEMM (cusparselt_default)"]
    fitted = profile.efficiency.sparse_gemm_alternatives["cusparselt_default"]
    want = committed.efficiency.sparse_gemm_alternatives["cusparselt_default"]
    for field in ("peak_fraction", "m_half", "overhead_us"):
        assert getattr(fitted, field).value == pytest.approx(getattr(want, field).value, rel=1e-3), field
        assert getattr(want, field).source.startswith("measured: validation/h200-gemm-default.jsonl ("), field
    assert (fitted.tile_m.value, fitted.tile_n.value) == (want.tile_m.value, want.tile_n.value)
    assert fitted.split_k is want.split_k is False and fitted.grouped is want.grouped is False
    rest = {"efficiency": {"sparse_gemm_alternatives"}}  # the searched path, dense GEMMs, names, notes: untouched
    assert profile.model_dump(exclude=rest) == committed.model_dump(exclude=rest)
    assert committed.calibrated_from.endswith("validation/h200-gemm-default.jsonl")


def test_validate_costs_the_implementation_the_measurements_ran():
    measured, profile = read_measurements(DEFAULT), load_profile("h200-calibrated")
    own = validate(measured, profile)
    default = validate(measured, profile, sparse_gemm_impl="cusparselt_default")
    assert (own["sparse_gemm_impl"], default["sparse_gemm_impl"]) == ("cusparselt_searched", "cusparselt_default")
    # docs/validation.md: default-algorithm GEMMs costed with the searched model 10.7 % fit / 23.8 % held-out
    # MAPE, with their own 5.3 % / 17.2 %
    assert _stats(default, "sparse_gemm", "fit")["mape_pct"] < 6 < 10 < _stats(own, "sparse_gemm", "fit")["mape_pct"]
    assert _stats(default, "sparse_gemm", "held-out")["mape_pct"] < _stats(own, "sparse_gemm", "held-out")["mape_pct"]
    dense = lambda r: [x["predicted_s"] for x in r["rows"] if x["category"] == "dense_gemm"]  # noqa: E731
    assert dense(own) == dense(default)
    searched = validate(read_measurements(SEARCHED), profile)  # the searched path as the profile's own
    assert _stats(searched, "sparse_gemm", "fit")["mape_pct"] < 5


def test_cli_validate_and_calibrate_take_the_implementation(tmp_path, capsys):
    assert main(["validate", "--measurements", str(DEFAULT), "--profile", "h200-calibrated",
                 "--sparse-gemm-impl", "cusparselt_default"]) == 0
    assert "sparse GEMMs costed as cusparselt_default" in capsys.readouterr().out.splitlines()[0]
    assert main(["validate", "--measurements", str(DEFAULT), "--profile", "h200",
                 "--sparse-gemm-impl", "cusparselt_default"]) == 2
    assert "error: --sparse-gemm-impl: unknown sparse GEMM implementation 'cusparselt_default'" in capsys.readouterr().err
    out = tmp_path / "h200-default.yaml"  # a shipped profile gains a calibrated alternative, its own path kept
    assert main(["calibrate", "--measurements", str(DEFAULT), "--profile", "h200", "--sparse-gemm-impl",
                 "cusparselt_default", "--out", str(out)]) == 0
    written, shipped = load_profile(str(out)), load_profile("h200")
    assert written.name == "h200-default" and written.status == "calibrated"  # named after its file
    assert written.base_profile == "h200"
    assert written.calibrated_from == "validation/h200-gemm-default.jsonl"
    assert written.efficiency.sparse_gemm == shipped.efficiency.sparse_gemm
    assert written.efficiency.sparse_gemm_impls == ["cusparselt_searched", "cusparselt_default"]
