"""A profile can describe several sparse-GEMM library paths (cuSPARSELt searched vs default
algorithm); `predict` says which one it costs and can be asked for another."""
import pytest

from ampersim.core.errors import NotFound
from ampersim.hardware.profile import Efficiency
from ampersim.hardware.registry import load_profile
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
