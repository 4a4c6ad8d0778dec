"""Shipped hardware profiles, their registry, and `ampersim profiles`."""
import json

import pytest
import yaml
from pydantic import BaseModel

from ampersim.cli import main
from ampersim.core.errors import InvalidData, NotFound
from ampersim.core.resources import data_dir
from ampersim.core.sourced import Sourced, sourced_numbers
from ampersim.hardware.profile import HardwareProfile
from ampersim.hardware.registry import list_profiles, load_profile

REQUIRED = {"a100-sxm", "a100-pcie", "h100-sxm", "h100-pcie", "h200", "l40s", "l4", "b200", "mi300x",
            "rtx4090", "ascend-910b", "h100-sxm-nm816"}
PRUNE_IMPLS = {"torch_eager_mask", "fused_mask", "torch_eager_cslt", "fused_cslt"}
PROFILES = list_profiles()
# Datasheets round every figure to whole TFLOPS (H100: 989 dense, 1979 sparse), so 2x checks get 0.1 %.
ROUNDING = 1e-3


def sourced_values(model):
    for _, value in model:
        if isinstance(value, Sourced):
            yield value
        elif isinstance(value, BaseModel):
            yield from sourced_values(value)
        elif isinstance(value, dict):
            for item in value.values():
                yield from ([item] if isinstance(item, Sourced) else sourced_values(item))


def test_sourced_numbers_walks_nested_models_and_dicts():
    profile = load_profile("h100-sxm")
    found = {path: (value, source) for path, value, _, source in sourced_numbers(profile)}
    assert found["compute_units"] == (132.0, profile.compute_units.source)
    assert found["matrix.bf16.sparse_tflops.2:4"] == (1979.0, profile.matrix["bf16"].sparse_tflops["2:4"].source)
    assert found["prune_impls.fused_cslt.kernels"][1] is None  # a structural count, no source
    assert sorted(src for _, src in found.values() if src) == sorted(v.source for v in sourced_values(profile))


def test_all_shipped_profiles_load_sorted_and_named_after_their_file():
    names = [p.name for p in PROFILES]
    assert REQUIRED <= set(names)
    assert names == sorted(names)
    assert {p.stem for p in data_dir("hardware_profiles").glob("*.yaml")} == set(names)


@pytest.mark.parametrize("alias,name", [("a100", "a100-sxm"), ("h100", "h100-sxm"), ("h200-sxm", "h200"),
                                        ("H100", "h100-sxm"), ("mi300", "mi300x"), ("4090", "rtx4090")])
def test_aliases_resolve(alias, name):
    assert load_profile(alias).name == name


def test_shipped_profiles_are_cached_and_paths_load():
    assert load_profile("a100") is load_profile("a100-sxm")
    path = data_dir("hardware_profiles") / "h100-sxm.yaml"
    assert load_profile(path) == load_profile("h100-sxm")
    assert load_profile(str(path)) == load_profile("h100-sxm")


def test_unknown_profile_suggests_close_names():
    with pytest.raises(NotFound, match=r"unknown hardware profile 'h100-sxn' \(did you mean: h100-sxm"):
        load_profile("h100-sxn")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_profile_invariants(profile):
    assert set(profile.prune_impls) == PRUNE_IMPLS
    assert (profile.default_prune_impl, profile.default_mask_impl) == ("fused_cslt", "fused_mask")
    assert "bf16" in profile.matrix  # the simulator's default dtype
    for dtype, rates in profile.matrix.items():
        dense = rates.dense_tflops.value
        for pattern, sparse in rates.sparse_tflops.items():
            assert sparse.value <= 2 * dense * (1 + ROUNDING), (dtype, pattern)
            if profile.status != "hypothetical":
                assert pattern == "2:4", f"{dtype}: only 2:4 is native on real parts, got {pattern}"
    eff = profile.efficiency
    if profile.native_patterns("bf16"):
        # large-M sparse/dense rate ratio implied by the efficiencies: a gain, never above the 2x peak ratio
        ratio = (eff.sparse_gemm.peak_fraction.value * profile.matrix["bf16"].sparse_tflops["2:4"].value
                 / (eff.dense_gemm.peak_fraction.value * profile.matrix["bf16"].dense_tflops.value))
        assert 1.0 < ratio <= 2.0 * (1 + ROUNDING)
    assert all(v.source for v in sourced_values(profile))


def test_large_m_sparse_ratios_match_public_measurements():
    def ratio(name):
        p = load_profile(name)
        return (p.efficiency.sparse_gemm.peak_fraction.value * p.matrix["bf16"].sparse_tflops["2:4"].value
                / (p.efficiency.dense_gemm.peak_fraction.value * p.matrix["bf16"].dense_tflops.value))
    expected = {"h100-sxm": 1.5, "a100-sxm": 1.4, "b200": 1.6, "mi300x": 1.2, "rtx4090": 1.9}
    for name, value in expected.items():
        assert ratio(name) == pytest.approx(value, rel=0.01), name


def test_ascend_is_unofficial_without_sparse_peaks():
    p = load_profile("ascend-910b")
    assert p.status == "unofficial"
    assert all(not r.sparse_tflops for r in p.matrix.values())
    assert all(r.dense_tflops.is_assumed for r in p.matrix.values())
    assert "weight" in p.notes.lower() and "4:2" in p.notes


def test_hypothetical_differs_from_h100_only_in_declared_patterns():
    real, what_if = load_profile("h100-sxm"), load_profile("h100-sxm-nm816")
    assert what_if.status == "hypothetical" and "HYPOTHETICAL" in what_if.display_name
    identity = {"name", "display_name", "aliases", "status", "notes", "matrix", "prices"}
    assert what_if.model_dump(exclude=identity) == real.model_dump(exclude=identity)
    for dtype, rates in real.matrix.items():
        hypo = what_if.matrix[dtype]
        assert hypo.dense_tflops.value == rates.dense_tflops.value
        assert set(hypo.sparse_tflops) == {"2:4", "4:8", "8:16"}
        assert {v.value for v in hypo.sparse_tflops.values()} == {rates.sparse_tflops["2:4"].value}
    assert what_if.prices.cloud_usd_per_gpu_hour.value == real.prices.cloud_usd_per_gpu_hour.value


def test_prune_impl_traffic():
    impls = load_profile("h100").prune_impls
    assert impls["torch_eager_mask"].bytes_per_input_byte.value == 11.0
    assert impls["fused_mask"].bytes_per_input_byte.value == 2.0
    assert impls["torch_eager_cslt"].bytes_per_input_byte.value == 11.0 + 1 + 0.5625
    assert impls["fused_cslt"].bytes_per_input_byte.value == 1.5625
    assert [n for n, i in impls.items() if i.produces_compressed] == ["torch_eager_cslt", "fused_cslt"]


# ---- bad profile files: one error naming file, line and field ----

def write_variant(tmp_path, mutate):
    data = yaml.safe_load((data_dir("hardware_profiles") / "h100-sxm.yaml").read_text())
    mutate(data)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _set(path, value):
    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return mutate


_DELETE = object()


@pytest.mark.parametrize("mutate,field,problem", [
    (_set(("memory", "bandwidth_gbps", "value"), -1), "memory.bandwidth_gbps.value", "must be > 0"),
    (_set(("compute_units", "source"), _DELETE), "compute_units.source", "Field required"),
    (_set(("compute_units", "source"), "nowhere"), "compute_units.source", "source must be a URL"),
    (_set(("prices", "cloud_usd_per_gpu_hour", "date"), _DELETE), "prices", "needs a 'date'"),
    (_set(("prices", "purchase_usd", "date"), "last year"), "prices.purchase_usd.date", "YYYY-MM"),
    (_set(("matrix", "fp64"), {"dense_tflops": {"value": 67, "source": "assumed: x"}}), "matrix.fp64", "Input should be"),
    (_set(("matrix", "bf16", "sparse_tflops"), {"3:2": {"value": 1, "source": "assumed: x"}}),
     "matrix.bf16.sparse_tflops", "invalid N:M pattern '3:2'"),
    (_set(("efficiency", "memory_fraction", "value"), 1.5), "efficiency.memory_fraction.value", "(0, 1]"),
    (_set(("default_prune_impl",), "fused_mask"), "(top level)", "must have produces_compressed: true"),
    (_set(("vendor",), "intel"), "vendor", "Input should be"),
    (_set(("surprise",), 1), "surprise", "Extra inputs are not permitted"),
])
def test_bad_field_is_named_with_file_and_line(tmp_path, mutate, field, problem):
    path = write_variant(tmp_path, mutate)
    with pytest.raises(InvalidData) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert f"field '{field}" in message
    assert problem in message
    if field != "(top level)":
        assert message.split(":")[1].isdigit(), message


def test_malformed_yaml_reports_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmatrix:\n  bf16: {dense_tflops: [1,\n")
    with pytest.raises(InvalidData, match=r"broken.yaml:\d+: malformed YAML"):
        load_profile(path)


# ---- CLI ----

def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_table_and_default(capsys):
    code, out, err = run_cli(capsys, "profiles", "list")
    assert code == 0 and err == ""
    assert "h100-sxm-nm816" in out and "2:4,4:8,8:16" in out
    assert run_cli(capsys, "profiles") == (0, out, "")


def test_cli_list_json_and_csv(capsys):
    code, out, _ = run_cli(capsys, "profiles", "list", "--format", "json")
    rows = json.loads(out)["profiles"]
    assert code == 0 and len(rows) == len(list_profiles(include_calibrated=True))
    h100 = next(r for r in rows if r["name"] == "h100-sxm")
    assert (h100["bf16_dense_tflops"], h100["bf16_sparse_tflops"], h100["bandwidth_gbps"]) == (989, 1979, 3350)
    code, out, _ = run_cli(capsys, "profiles", "--format", "csv")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("name,display_name,vendor,status") and len(lines) == len(rows) + 1


def test_cli_show_lists_every_source(capsys):
    profile = load_profile("a100-sxm")
    code, out, err = run_cli(capsys, "profiles", "show", "a100")
    assert code == 0 and err == ""
    assert out.startswith("a100-sxm: NVIDIA A100 SXM4 80GB")
    for value in sourced_values(profile):
        assert value.source in out
    assert "efficiency.sparse_gemm.peak_fraction" in out


@pytest.mark.parametrize("fmt,parse", [("json", json.loads), ("yaml", yaml.safe_load)])
def test_cli_show_machine_formats_round_trip(capsys, fmt, parse):
    code, out, _ = run_cli(capsys, "profiles", "show", "h100-sxm-nm816", "--format", fmt)
    assert code == 0
    assert HardwareProfile.model_validate(parse(out)) == load_profile("h100-sxm-nm816")


def test_cli_show_file(capsys):
    path = data_dir("hardware_profiles") / "l4.yaml"
    code, out, _ = run_cli(capsys, "profiles", "show", str(path))
    assert code == 0 and out.startswith("l4: NVIDIA L4")


def test_cli_schema(capsys):
    code, out, _ = run_cli(capsys, "profiles", "schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "HardwareProfile"
    assert {"matrix", "memory", "efficiency", "prune_impls"} <= set(schema["properties"])


@pytest.mark.parametrize("argv,needle", [
    (("profiles", "show", "h100-sxn"), "did you mean: h100-sxm"),
    (("profiles", "show", "missing.yaml"), "missing.yaml: file not found"),
    (("profiles", "show", "h100", "--format", "csv"), "invalid choice"),
])
def test_cli_bad_input_one_line_exit_2(capsys, argv, needle):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error:") and err.count("\n") == 1 and needle in err


def test_catalog_rejects_name_mismatch_and_alias_clash(tmp_path):
    from ampersim.core.catalog import Catalog

    source = yaml.safe_load((data_dir("hardware_profiles") / "l4.yaml").read_text())
    (tmp_path / "gpu-a.yaml").write_text(yaml.safe_dump({**source, "name": "gpu-b"}))
    with pytest.raises(InvalidData, match=r"gpu-a.yaml: field 'name': 'gpu-b' must match the file name"):
        Catalog("hardware profile", tmp_path, HardwareProfile).all()
    (tmp_path / "gpu-a.yaml").write_text(yaml.safe_dump({**source, "name": "gpu-a", "aliases": ["x"]}))
    (tmp_path / "gpu-b.yaml").write_text(yaml.safe_dump({**source, "name": "gpu-b", "aliases": ["X"]}))
    with pytest.raises(InvalidData, match=r"gpu-b.yaml: field 'aliases': 'x' is already used by hardware profile 'gpu-a'"):
        Catalog("hardware profile", tmp_path, HardwareProfile).load("x")
