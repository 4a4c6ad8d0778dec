"""Core types and the CLI shell: patterns, errors, YAML loading, the public API."""
import re

import pytest

from ampersim.cli import build_parser, error_line, flag_for, main
from ampersim.core.errors import InvalidArgument, InvalidData
from ampersim.core.formatting import layer_ranges
from ampersim.core.patterns import NMPattern
from ampersim.core.yamlio import load_model
from ampersim.hardware.profile import HardwareProfile


@pytest.mark.parametrize("text,n,m,sparsity", [("2:4", 2, 4, 0.5), ("8:16", 8, 16, 0.5), ("1:4", 1, 4, 0.75)])
def test_pattern_parse(text, n, m, sparsity):
    p = NMPattern.parse(text)
    assert (p.n, p.m, p.sparsity) == (n, m, sparsity)
    assert str(p) == text
    assert NMPattern.model_validate(text) == p


@pytest.mark.parametrize("bad", ["3:2", "0:4", "a:b", "4:4", "-1:4", "2/4", ""])
def test_pattern_rejects(bad):
    with pytest.raises(InvalidArgument, match="N:M"):
        NMPattern.parse(bad)


def test_yaml_error_names_file_line_field(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nvendor: nvidia\ncompute_units:\n  value: 132\n  source: nowhere\n")
    with pytest.raises(InvalidData) as info:
        load_model(path, HardwareProfile)
    assert str(path) in str(info.value)


def test_malformed_yaml_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\n  bad: [\n")
    with pytest.raises(InvalidData, match=r"bad.yaml:\d+: malformed YAML"):
        load_model(path, HardwareProfile)


def test_cli_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.parametrize("message,field,flag,line", [
    ("tp 3 does not divide 32", "tp", "--tp", "error: --tp 3 does not divide 32"),
    ("prompt_tokens: must be > 0", "prompt_tokens", "--tokens", "error: --tokens: must be > 0"),
    ("the TTFT SLO must be > 0", "slo_ttft_s", "--slo-ttft-ms", "error: --slo-ttft-ms: the TTFT SLO must be > 0"),
    ("tp_size 3 is odd", "tp", "--tp", "error: --tp: tp_size 3 is odd"),  # a longer name is not the field
    ("unknown profile 'x'", None, None, "error: unknown profile 'x'"),
])
def test_error_line_names_the_flag_of_the_field(message, field, flag, line):
    assert error_line(InvalidArgument(message, field=field), flag) == line


def test_flag_for_uses_declared_fields_then_dests():
    parser = build_parser()
    args = parser.parse_args(["predict", "--profile", "a100"])
    assert flag_for(parser, args, "prompt_tokens") == "--tokens"  # declared with map_fields
    assert flag_for(parser, args, "prune_impl") == "--prune-impl"  # the flag whose dest is the field
    assert flag_for(parser, args, "no_such_field") is None
    plan = parser.parse_args(["plan", "--profile", "a100", "--rate", "1", "--slo-ttft-ms", "9"])
    assert flag_for(parser, plan, "rate_per_s") == "--rate" and flag_for(parser, plan, "max_seqs") == "--max-seqs"


def test_write_text_atomic_normal_permissions(tmp_path):
    import os

    from ampersim.core.yamlio import write_text_atomic

    path = tmp_path / "out.txt"
    write_text_atomic(path, "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert not list(tmp_path.glob(".out.txt.*"))


def test_layer_ranges():
    assert layer_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert layer_ranges([3]) == "3" and layer_ranges([]) == "" and layer_ranges(range(4)) == "0-3"


def test_import_ampersim_is_light_and_its_public_names_resolve():
    import subprocess
    import sys

    import ampersim

    code = ("import sys, ampersim\n"
            "heavy = ('torch', 'numba', 'transformers', 'triton')\n"
            "assert not [m for m in heavy if m in sys.modules], 'import ampersim loaded a heavy module'\n"
            "p = ampersim.predict(ampersim.load_profile('a100'), ampersim.load_scenario('prefill-4k'))\n"
            "assert p.speedup > 0 and not [m for m in heavy if m in sys.modules], 'the simulator loaded one'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(re.findall(r"``(\w+)\(", ampersim.__doc__)) == set(ampersim.__all__)  # the docstring lists them all
    assert all(callable(getattr(ampersim, name)) for name in ampersim.__all__)
    with pytest.raises(AttributeError):
        ampersim.no_such_name  # noqa: B018
