"""ROI arithmetic, price resolution and the `ampersim roi` command."""

import json

import pytest

from ampersim.cli import main
from ampersim.core.errors import InvalidArgument
from ampersim.econ.roi import (
    HOURS_PER_MONTH,
    HOURS_PER_YEAR,
    compare,
    energy_j_per_token,
    owned_usd_per_hour,
    payback,
    price_basis,
    profile_economics,
    usd_per_million_tokens,
)
from ampersim.hardware.profile import Prices
from ampersim.hardware.registry import load_profile
from ampersim.sim.predict import predict
from ampersim.sim.scenario import load_scenario


@pytest.fixture(scope="module")
def h100():
    return load_profile("h100-sxm")


def unpriced(profile):
    return profile.model_copy(update={"prices": Prices()})


def test_cost_arithmetic():
    # $3.60 per GPU-hour at 1,000 tokens/s fully busy: 3.6M tokens per hour -> $1 per million
    assert usd_per_million_tokens(3.6, 1000.0, 1.0) == pytest.approx(1.0)
    assert usd_per_million_tokens(3.6, 1000.0, 0.5) == pytest.approx(2.0)  # rent is paid while idle too
    # $8,766 over 1 year = $1/hour; 500 W at $0.20/kWh busy half the time = $0.05/hour
    assert owned_usd_per_hour(HOURS_PER_YEAR, 1.0, 500.0, 0.20, 0.5) == pytest.approx(1.05)
    assert energy_j_per_token(700.0, 1400.0) == pytest.approx(0.5)


def test_given_values_override_profile_prices(h100):
    basis = price_basis(h100)
    assert basis.cloud_usd_per_gpu_hour == h100.prices.cloud_market_usd_per_gpu_hour  # market by default
    assert (basis.cloud_price, basis.note) == ("market", "")
    listed = price_basis(h100, cloud="list")
    assert (listed.cloud_usd_per_gpu_hour, listed.cloud_price) == (h100.prices.cloud_usd_per_gpu_hour, "list")
    assert basis.lifetime_years.date and basis.usd_per_kwh.value > 0  # from the TCO file, dated
    over = price_basis(h100, usd_per_hour=2.5, purchase_usd=20000, lifetime_years=3, usd_per_kwh=0.2, utilization=0.6)
    assert (over.cloud_usd_per_gpu_hour.value, over.purchase_usd.value) == (2.5, 20000)
    assert (over.lifetime_years.value, over.usd_per_kwh.value, over.utilization.value) == (3, 0.2, 0.6)
    assert over.cloud_usd_per_gpu_hour.source == "assumed: given by the user (usd_per_hour)"


def test_missing_cloud_kind_falls_back_with_a_note(h100):
    list_only = h100.model_copy(update={"prices": Prices(cloud_usd_per_gpu_hour=h100.prices.cloud_usd_per_gpu_hour)})
    basis = price_basis(list_only)
    assert basis.cloud_usd_per_gpu_hour.value == 6.16 and basis.cloud_price == "list"
    assert "no market cloud price" in basis.note and "list price is used" in basis.note


def test_profile_without_price_names_fields(h100):
    with pytest.raises(InvalidArgument, match=r"prices.cloud_usd_per_gpu_hour.*usd_per_hour") as info:
        price_basis(unpriced(h100))
    assert info.value.field == "usd_per_hour"
    assert price_basis(unpriced(h100), usd_per_hour=1.0).purchase_usd is None


@pytest.mark.parametrize(
    "kwargs",
    [{"usd_per_hour": 0}, {"utilization": 1.5}, {"lifetime_years": -1}, {"usd_per_kwh": 0}],
)
def test_bad_prices_name_their_field(h100, kwargs):
    (field,) = kwargs
    with pytest.raises(InvalidArgument, match=f"^{field} ") as info:
        price_basis(h100, **kwargs)
    assert info.value.field == field


def test_economics_follow_prediction(h100):
    scenario = load_scenario("prefill-4k").with_overrides(pattern="2:4")
    pred = predict(h100, scenario)
    (row,) = compare([h100], scenario, [price_basis(h100)])
    assert row.tokens_per_s["dense"] == pytest.approx(pred.tokens_per_s_dense)
    assert row.speedup == pytest.approx(pred.speedup)
    assert row.cloud_usd_per_m_tokens["dense"] / row.cloud_usd_per_m_tokens["sparse"] == pytest.approx(pred.speedup)
    power = h100.power.tdp_w.value * h100.power.prefill_power_fraction.value
    assert row.energy_j_per_token["sparse"] == pytest.approx(power / pred.tokens_per_s_sparse)


def test_tensor_parallel_shares_throughput(h100):
    basis = price_basis(h100)
    one = profile_economics(h100, {"dense": 8000.0, "sparse": 10000.0}, 1, basis)
    four = profile_economics(h100, {"dense": 8000.0, "sparse": 10000.0}, 4, basis)
    assert four.tokens_per_s["dense"] == pytest.approx(2000.0)
    assert four.cloud_usd_per_m_tokens["sparse"] == pytest.approx(4 * one.cloud_usd_per_m_tokens["sparse"])


def test_payback_definition(h100):
    base = profile_economics(
        h100, {"dense": 1000.0, "sparse": 1000.0}, 1, price_basis(h100, usd_per_hour=2.0, utilization=1.0)
    )
    target = profile_economics(
        h100, {"dense": 2000.0, "sparse": 4000.0}, 1, price_basis(h100, purchase_usd=10000.0, usd_per_kwh=0.1)
    )
    back = payback(base, target, "sparse")
    assert back.gpus_needed == pytest.approx(0.25)
    power_per_hour = 0.25 * target.power_w / 1000 * 0.1
    assert back.saving_usd_per_month == pytest.approx((2.0 - power_per_hour) * HOURS_PER_MONTH)
    assert back.months == pytest.approx(2500.0 / back.saving_usd_per_month)
    cheap_rent = price_basis(h100, usd_per_hour=0.01)  # below the target's electricity bill
    never = payback(profile_economics(h100, {"dense": 2000.0, "sparse": 4000.0}, 1, cheap_rent), target, "dense")
    assert never.months is None and not never.missing
    missing = payback(
        base,
        profile_economics(h100, {"dense": 1.0, "sparse": 1.0}, 1, price_basis(unpriced(h100), usd_per_hour=1.0)),
        "dense",
    )
    assert missing.months is None and "prices.purchase_usd" in missing.missing


def test_roi_cli_json(capsys):
    assert (
        main(
            [
                "roi",
                "--profile",
                "h100-sxm",
                "--profile",
                "mi300x",
                "--pattern",
                "2:4",
                "--usd-per-kwh",
                "0.2",
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [p["profile"] for p in out["profiles"]] == ["h100-sxm", "mi300x"]
    first = out["profiles"][0]
    assert first["speedup"] > 1 and first["prices"]["usd_per_kwh"]["value"] == 0.2
    assert first["prices"]["cloud_usd_per_gpu_hour"]["date"]
    assert {b["to_profile"] for b in out["payback"]} == {"h100-sxm", "mi300x"}
    assert "payback" in out["payback_definition"]


def test_roi_cli_table_lists_prices_and_sources(capsys):
    assert (
        main(["roi", "--profile", "a100-sxm", "--profile", "h100-sxm", "--usd-per-hour", "1.5", "--usd-per-hour", "3"])
        == 0
    )
    out = capsys.readouterr().out
    assert "cloud $/M tokens, sparse" in out and "prices and assumptions used" in out
    assert "given by the user (usd_per_hour)" in out


def test_roi_cli_missing_price_is_one_line_error(capsys, tmp_path):
    profile = unpriced(load_profile("h100-sxm")).model_copy(update={"name": "no-price"})
    path = tmp_path / "no-price.yaml"
    import yaml

    path.write_text(yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True)))
    assert main(["roi", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --usd-per-hour: profile 'no-price' has no price")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv,line", [
    (["--utilization", "1.5"], "error: --utilization 1.5: must be in (0, 1]\n"),
    (["--usd-per-hour", "0"], "error: --usd-per-hour 0: must be > 0 and finite\n"),
    (["--tp", "3"], "error: --tp 3 does not divide the attention heads of llama-3.1-8b"),
])
def test_roi_cli_errors_name_the_flag(capsys, argv, line):
    assert main(["roi", "--profile", "h100-sxm", *argv]) == 2
    assert capsys.readouterr().err.startswith(line)


def test_roi_cli_flag_count_mismatch(capsys):
    assert (
        main(
            [
                "roi",
                "--profile",
                "h100-sxm",
                "--profile",
                "a100-sxm",
                "--profile",
                "l4",
                "--usd-per-hour",
                "1",
                "--usd-per-hour",
                "2",
            ]
        )
        == 2
    )
    assert "--usd-per-hour given 2 times for 3 profiles" in capsys.readouterr().err
