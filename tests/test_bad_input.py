"""Bad input across every command: one line on stderr naming what is wrong, exit 2, nothing else.

Each case runs ``ampersim.cli.main`` in-process (``--format json`` added where the command has it)
and asserts: exit status 2; stdout empty; exactly one stderr line, ``error: ...``, containing the
fragment that names the argument, file or field at fault; no traceback and no warning; and every
pre-existing output file (``{keep...}``) byte for byte as it was.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import yaml

from ampersim.cli import main
from ampersim.core.limits import MAX_EVAL_TEXT_BYTES, MAX_YAML_BYTES
from ampersim.core.resources import data_dir, repository_root

MEASUREMENTS = repository_root() / "validation" / "h100.jsonl"
FORMAT_COMMANDS = {"predict", "coverage", "prune", "plan", "roi", "validate", "calibrate"}
KEEP = {"keep.yaml": "name: keep\n", "keep.html": "<p>keep</p>\n", "keep.png": "keep\n", "keep.jsonl": "keep\n"}


def _profile_with(tmp: Path, name: str, path: list[str], value: object) -> None:
    data = yaml.safe_load((data_dir("hardware_profiles") / "a100-sxm.yaml").read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (tmp / name).write_text(yaml.safe_dump(data, sort_keys=False))


def _measurements_with(tmp: Path, name: str, change: dict | None = None, *, line: str | None = None) -> None:
    header, record = MEASUREMENTS.read_text().splitlines()[:2]
    data = json.loads(record)
    for dotted, value in (change or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    (tmp / name).write_text(f"{header}\n{line if line is not None else json.dumps(data)}\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """The bad inputs the cases read, and the pre-existing outputs they must not touch."""
    tmp = tmp_path_factory.mktemp("bad")
    for name, text in KEEP.items():
        (tmp / name).write_text(text)
    (tmp / "folder").mkdir()
    (tmp / "latin1.yaml").write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with open(tmp / "huge.yaml", "wb") as handle:  # sparse: no 8 MiB written
        handle.truncate(MAX_YAML_BYTES + 1)
    (tmp / "list.yaml").write_text("- a\n- b\n")
    (tmp / "broken.yaml").write_text("name: [unclosed\n")
    _profile_with(tmp, "inf.yaml", ["matrix", "bf16", "dense_tflops", "value"], float("inf"))
    _profile_with(tmp, "nan.yaml", ["memory", "bandwidth_gbps", "value"], float("nan"))
    _profile_with(tmp, "negative.yaml", ["power", "tdp_w", "value"], -400.0)
    _profile_with(tmp, "vast.yaml", ["memory", "capacity_gb", "value"], 1.8e299)  # overflowed memory_fit to nan
    _profile_with(tmp, "nosource.yaml", ["compute_units", "source"], "trust me")
    _profile_with(tmp, "fraction.yaml", ["efficiency", "memory_fraction", "value"], 1.5)
    _profile_with(tmp, "extra.yaml", ["warp_drive"], 1)
    scenario = yaml.safe_load((data_dir("workloads") / "scenarios" / "chat.yaml").read_text())
    (tmp / "shares.yaml").write_text(yaml.safe_dump({**scenario, "prompt_tokens": [
        {"tokens": 512, "share": 0.5}, {"tokens": 1024, "share": 0.2}]}))
    (tmp / "nanshare.yaml").write_text(yaml.safe_dump({**scenario, "prompt_tokens": [
        {"tokens": 512, "share": float("nan")}]}))
    (tmp / "longctx.yaml").write_text(yaml.safe_dump({**scenario, "prompt_tokens": 200000}))
    (tmp / "policy.yaml").write_text("rules:\n  - kinds: [q_proj]\n    layers: [99]\n")
    (tmp / "badkind.yaml").write_text("rules:\n  - kinds: [w_proj]\n")
    spec = yaml.safe_load((data_dir("workloads") / "models" / "llama-3.1-8b.yaml").read_text())
    (tmp / "heads.yaml").write_text(yaml.safe_dump({**spec, "num_kv_heads": 5}))
    (tmp / "ropeinf.yaml").write_text(yaml.safe_dump({**spec, "rope_theta": float("inf")}))
    _measurements_with(tmp, "zero.jsonl", {"timing.median_s": 0})
    _measurements_with(tmp, "string.jsonl", {"timing.median_s": "fast"})
    _measurements_with(tmp, "negative.jsonl", {"timing.median_s": -1e-5})
    _measurements_with(tmp, "unordered.jsonl", {"timing.max_s": 1e-9})
    _measurements_with(tmp, "measured.jsonl", {"measured": "4096x4096"})
    _measurements_with(tmp, "shape.jsonl", {"measured.M": -256})
    _measurements_with(tmp, "zeron.jsonl", {"op.N": 0})  # a GEMM without columns: no finite prediction
    _measurements_with(tmp, "nopattern.jsonl", {"variant": "sparse", "pattern": None})
    _measurements_with(tmp, "dtype.jsonl", {"dtype": "fp64"})
    header, record = MEASUREMENTS.read_text().splitlines()[:2]
    _measurements_with(tmp, "nan.jsonl", line=record.replace(
        f'"median_s": {json.loads(record)["timing"]["median_s"]!r}', '"median_s": NaN'))
    _measurements_with(tmp, "infinity.jsonl", line=record.replace('"p90_s": ', '"p90_s": Infinity, "x": '))
    _measurements_with(tmp, "kind.jsonl", {"record": "opp"})
    (tmp / "headerless.jsonl").write_text(record + "\n")
    (tmp / "empty.jsonl").write_text("")
    (tmp / "bytes.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    (tmp / "onlyheader.jsonl").write_text(header + "\n")
    (tmp / "trace.csv").write_text("arrival_s,input_tokens,output_tokens\n0,100,10\n1,abc,10\n")
    (tmp / "notrace.csv").write_text("when,input_tokens,output_tokens\n0,100,10\n")
    (tmp / "lengths.txt").write_text("100\n-5\n")
    (tmp / "accuracy.json").write_text('{"model": "x", "dense": {"ppl": NaN}, "rows": []}')
    (tmp / "garbage.gguf").write_bytes(b"GGUF" + os.urandom(64))
    (tmp / "truncated.gguf").write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little"))
    # fleet (issue 12): TCO files, workloads' serving and prefix-cache blocks, profiles' market prices,
    # request traces with cached tokens (CSV and JSON lines)
    tco = yaml.safe_load((data_dir("workloads") / "tco" / "colocation-us.yaml").read_text())
    (tmp / "tcoinf.yaml").write_text(yaml.safe_dump({**tco, "pue": {**tco["pue"], "value": float("inf")}}))
    (tmp / "tconan.yaml").write_text(yaml.safe_dump(
        {**tco, "usd_per_kwh": {**tco["usd_per_kwh"], "value": float("nan")}}))
    (tmp / "tconeg.yaml").write_text(yaml.safe_dump(
        {**tco, "server_usd_per_gpu": {**tco["server_usd_per_gpu"], "value": -1}}))
    (tmp / "tcoextra.yaml").write_text(yaml.safe_dump({**tco, "discount": 0.5}))
    (tmp / "servingnan.yaml").write_text(yaml.safe_dump(
        {**scenario, "serving": {**scenario["serving"], "rate_per_s": {"value": float("nan"),
                                                                       "source": "assumed: x"}}}))
    (tmp / "hitrate.yaml").write_text(yaml.safe_dump(
        {**scenario, "prefix_cache": {"hit_rate": {"value": 1.5, "source": "assumed: x"}}}))
    (tmp / "hitnan.yaml").write_text(yaml.safe_dump(
        {**scenario, "prefix_cache": {"hit_rate": {"value": float("nan"), "source": "assumed: x"}}}))
    _profile_with(tmp, "marketinf.yaml", ["prices", "cloud_market_usd_per_gpu_hour", "value"], float("inf"))
    _profile_with(tmp, "decodeneg.yaml", ["efficiency", "decode_attention_latency_us"],
                  {"value": -3.0, "source": "assumed: x"})
    _profile_with(tmp, "memfrac.yaml", ["efficiency", "dense_gemm", "memory_fraction"],
                  {"value": float("nan"), "source": "assumed: x"})
    header = "arrival_s,input_tokens,output_tokens,cached_tokens\n"
    (tmp / "cachedall.csv").write_text(header + "0,100,10,100\n1,100,10,5\n")
    (tmp / "cachedneg.csv").write_text(header + "0,100,10,-1\n1,100,10,5\n")
    (tmp / "cachedword.csv").write_text(header + "0,100,10,many\n1,100,10,5\n")
    (tmp / "cachednan.csv").write_text(header + "0,100,10,nan\n1,100,10,5\n")
    (tmp / "arrivalinf.csv").write_text(header + "inf,100,10,5\n1,100,10,5\n")
    (tmp / "inputinf.csv").write_text(header + "0,inf,10,5\n1,100,10,5\n")
    (tmp / "sametime.csv").write_text(header + "3,100,10,5\n3,200,10,5\n")
    line = '{"timestamp": %s, "input_length": %s, "output_length": 10, "hash_ids": %s}\n'
    (tmp / "mooncake.jsonl").write_text(line % (0, 1024, "[1, 2]") + line % (1000, "Infinity", "[1, 3]"))
    (tmp / "hashids.jsonl").write_text(line % (0, 1024, "[[1], {}]"))
    (tmp / "cachedbig.jsonl").write_text('{"arrival_s": 0, "input_tokens": 100, "output_tokens": 5, '
                                         '"cached_tokens": 250}\n')
    (tmp / "nokey.jsonl").write_text('{"arrival_s": 0, "output_tokens": 5}\n')
    (tmp / "halfjson.jsonl").write_text('{"arrival_s": 0, "input_tokens": 5\n')
    (tmp / "notobject.jsonl").write_text('[0, 100, 10]\n')
    (tmp / "nanjson.jsonl").write_text('{"arrival_s": NaN, "input_tokens": 100, "output_tokens": 5}\n')
    (tmp / "cachedover.csv").write_text(header + "0,100,10,150\n1,100,10,5\n")
    (tmp / "cachedfrac.csv").write_text(header + "0,100,10,2.5\n1,100,10,5\n")
    (tmp / "single.csv").write_text(header + "0,100,10,5\n")
    (tmp / "hugeout.jsonl").write_text('{"arrival_s": 0, "input_tokens": 100, "output_tokens": 5}\n'
                                       '{"arrival_s": 1, "input_tokens": 100, "output_tokens": 1e20}\n')
    (tmp / "hugelen.txt").write_text("100\n1e20\n")
    (tmp / "tinyspan.jsonl").write_text(line % (0, 1024, "[1]") + line % ("1e-310", 1024, "[2]"))
    (tmp / "samejson.jsonl").write_text(line % (7000, 1024, "[1, 2]") + line % (7000, 2048, "[1, 3]"))
    (tmp / "tcoword.yaml").write_text(yaml.safe_dump({**tco, "pue": {**tco["pue"], "value": "low"}}))
    (tmp / "tcohuge.yaml").write_text(yaml.safe_dump(
        {**tco, "hosting_usd_per_kw_month": {**tco["hosting_usd_per_kw_month"], "value": 1e6}}))
    (tmp / "tconosource.yaml").write_text(yaml.safe_dump({**tco, "pue": {"value": 1.4}}))
    (tmp / "servingextra.yaml").write_text(yaml.safe_dump({**scenario, "serving": {**scenario["serving"], "burst": 3}}))
    (tmp / "servingneg.yaml").write_text(yaml.safe_dump(
        {**scenario, "serving": {**scenario["serving"], "rate_per_s": {"value": -5, "source": "assumed: x"}}}))
    (tmp / "sloinf.yaml").write_text(yaml.safe_dump(
        {**scenario, "serving": {**scenario["serving"], "slo_tpot_ms": {"value": float("inf"),
                                                                        "source": "assumed: x"}}}))
    # accuracy (issue 13): the user's text and quiz files, accuracy results
    (tmp / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    (tmp / "blank.txt").write_text("   \n\n")
    (tmp / "prose.txt").write_text("It is a truth universally acknowledged.\n" * 50)
    (tmp / "answer.jsonl").write_text('{"question": "2 + 2 =", "choices": ["4", "5"], "answer": 2}\n')
    (tmp / "choices.jsonl").write_text('{"question": "2 + 2 =", "choices": ["4", "4"], "answer": 0}\n')
    (tmp / "boolanswer.jsonl").write_text('{"question": "2 + 2 =", "choices": ["4", "5"], "answer": true}\n')
    (tmp / "quizjson.jsonl").write_text('{"question": "2 + 2 =", "choices": ["4", "5"]\n')
    (tmp / "quizlist.jsonl").write_text('["2 + 2 =", ["4", "5"], 0]\n')
    (tmp / "nocolon.quiz").write_text("The capital of France is Paris\n")
    (tmp / "emptyanswer.quiz").write_text("The capital of France is:\n")
    (tmp / "accinf.json").write_text('{"models": [{"model": "x", "dense": {"ppl": Infinity}, "rows": []}]}')
    (tmp / "accnone.json").write_text('{"models": []}')
    (tmp / "acclatin1.json").write_bytes('{"model": "caf\u00e9"}'.encode("latin-1"))
    (tmp / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp / "nul.txt").write_bytes(b"It is a truth\nuniversally\x00acknowledged.\n")
    for name in ("huge.txt", "huge.jsonl"):  # sparse: no 64 MiB written
        with open(tmp / name, "wb") as handle:
            handle.truncate(MAX_EVAL_TEXT_BYTES + 1)
    (tmp / "noquestion.jsonl").write_text('{"choices": ["4", "5"], "answer": 0}\n')
    (tmp / "nochoices.jsonl").write_text('{"question": "2 + 2 =", "answer": 0}\n')
    (tmp / "emptyquiz.jsonl").write_text("")
    (tmp / "blankquiz.jsonl").write_text("\n  \n")
    return tmp


# (command line with {tmp} for the fixture folder, fragment the one error line must contain)
CASES: list[tuple[str, str]] = [
    # -- the parser: unknown, repeated, missing, non-finite, malformed --
    ("predict", "--profile"),
    ("predict --profile a100 --profile h100", "--profile: given more than once"),
    ("predict --profile a100 --format json --format csv", "--format: given more than once"),
    ("predict --profile a100 --tokens many", "--tokens"),
    ("predict --profile a100 --tokens 1.5", "--tokens"),
    ("predict --profile a100 --dtype fp64", "--dtype"),
    ("predict --profile a100 --wibble", "--wibble"),
    ("frobnicate", "frobnicate"),
    ("plan --profile a100 --profile h100 --rate 1 --slo-ttft-ms 1000", "--profile: given more than once"),
    ("plan --profile a100 --rate inf --slo-ttft-ms 1000", "--rate: expected a finite number"),
    ("plan --profile a100 --rate nan --slo-ttft-ms 1000", "--rate: expected a finite number"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms=-inf", "--slo-ttft-ms: expected a finite number"),
    ("plan --profile a100 --rate 1 --slo-tpot-ms nan", "--slo-tpot-ms: expected a finite number"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --duration-s inf", "--duration-s: expected a finite number"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --usd-per-hour inf", "--usd-per-hour: expected a finite"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --gpu-memory-utilization nan", "--gpu-memory-utilization"),
    ("roi --profile a100 --usd-per-hour inf", "--usd-per-hour: expected a finite number"),
    ("roi --profile a100 --usd-per-kwh inf", "--usd-per-kwh: expected a finite number"),
    ("roi --profile a100 --purchase-usd inf", "--purchase-usd: expected a finite number"),
    ("roi --profile a100 --lifetime-years nan", "--lifetime-years: expected a finite number"),
    ("roi --profile a100 --utilization 1e999", "--utilization: expected a finite number"),
    ("report --profile a100 --out {tmp}/keep.html --slo-ttft-ms inf", "--slo-ttft-ms: expected a finite number"),
    ("report --profile a100 --out {tmp}/keep.html --rates 1,inf", "--rates inf"),
    ("report --profile a100 --out {tmp}/keep.html --rates 1,nan", "--rates nan"),
    ("measure --out {tmp}/new.jsonl --deadline inf", "--deadline: expected a finite number"),
    ("calibrate --measurements {tmp}/zero.jsonl --profile h100-sxm", "--out"),
    # -- profiles --
    ("profiles show nosuch", "unknown hardware profile 'nosuch'"),
    ("profiles show {tmp}/latin1.yaml", "latin1.yaml:1: not UTF-8"),
    ("profiles show {tmp}/folder/x.yaml", "x.yaml: file not found"),
    ("profiles show {tmp}/huge.yaml", "huge.yaml"),
    ("profiles show {tmp}/list.yaml", "list.yaml: expected a mapping"),
    ("profiles show {tmp}/broken.yaml", "broken.yaml"),
    ("profiles show {tmp}/inf.yaml", "matrix.bf16.dense_tflops.value"),
    ("profiles show {tmp}/nan.yaml", "memory.bandwidth_gbps.value"),
    ("profiles show {tmp}/negative.yaml", "power.tdp_w.value"),
    ("predict --profile {tmp}/vast.yaml", "memory.capacity_gb.value"),
    ("profiles show {tmp}/nosource.yaml", "compute_units.source"),
    ("profiles show {tmp}/fraction.yaml", "efficiency.memory_fraction.value"),
    ("profiles show {tmp}/extra.yaml", "warp_drive"),
    ("profiles show a100 --format xml", "--format"),
    ("profiles show /dev/zero", "/dev/zero: is a device"),
    ("profiles show /proc/self/status", "/proc/self/status:1: malformed YAML"),
    # -- predict --
    ("predict --profile nosuch", "unknown hardware profile 'nosuch'"),
    ("predict --profile {tmp}/inf.yaml", "inf.yaml"),
    ("predict --profile {tmp}/latin1.yaml", "latin1.yaml"),
    ("predict --profile {tmp}/folder", "folder"),
    ("predict --profile a100 --workload nosuch", "unknown workload 'nosuch'"),
    ("predict --profile a100 --workload {tmp}/shares.yaml", "shares.yaml"),
    ("predict --profile a100 --workload {tmp}/nanshare.yaml", "nanshare.yaml"),
    ("predict --profile a100 --workload {tmp}/longctx.yaml", "--tokens"),
    ("predict --profile a100 --model nosuch", "unknown model 'nosuch'"),
    ("predict --profile a100 --model {tmp}/heads.yaml", "heads.yaml"),
    ("predict --profile a100 --model {tmp}/ropeinf.yaml", "rope_theta"),
    ("predict --profile a100 --tokens 0", "--tokens"),
    ("predict --profile a100 --tokens -5", "--tokens"),
    ("predict --profile a100 --tokens 99999999999999999999", "--tokens: a prompt has"),
    ("predict --profile a100 --tokens 200000", "context length of 131,072"),
    ("predict --profile a100 --model smollm2 --tokens 9000", "context length of 8,192"),
    ("predict --profile a100 --tokens 131072 --output-tokens 10", "--output-tokens"),
    ("predict --profile a100 --output-tokens -1", "--output-tokens"),
    ("predict --profile a100 --batch 0", "--batch"),
    ("predict --profile a100 --batch 100000000", "--batch: the prompts in one prefill step"),
    ("predict --profile a100 --batch 1000 --tokens 100000", "--batch: the tokens in one prefill step"),
    ("predict --profile a100 --tp 0", "--tp"),
    ("predict --profile a100 --tp 3", "--tp 3 does not divide"),
    ("predict --profile a100 --pattern 3:7", "--pattern 3:7 needs"),
    ("predict --profile a100 --pattern 4:4", "--pattern"),
    ("predict --profile a100 --pattern 1:64", "--pattern"),
    ("predict --profile a100 --pattern eight", "--pattern"),
    ("predict --profile a100 --policy {tmp}/policy.yaml", "policy.yaml"),
    ("predict --profile a100 --policy {tmp}/badkind.yaml", "badkind.yaml"),
    ("predict --profile a100 --policy {tmp}/missing.yaml", "missing.yaml"),
    ("predict --profile a100 --prune-impl nosuch", "--prune-impl"),
    ("predict --profile a100 --prune-impl torch_eager_cslt", "--prune-impl torch_eager_cslt"),
    ("predict --profile a100 --sparse-gemm-impl cusparselt_default", "--sparse-gemm-impl"),
    # -- coverage --
    ("coverage --model nosuch", "unknown model 'nosuch'"),
    ("coverage --model llama-3.1-8b --pattern 3:7", "--pattern 3:7 needs"),
    ("coverage --model llama-3.1-8b --pattern 9:8", "--pattern"),
    ("coverage --model llama-3.1-8b --policy {tmp}/policy.yaml", "layer 99"),
    ("coverage --model {tmp}/latin1.yaml", "latin1.yaml"),
    ("coverage --model llama-3.1-8b --scoring loud", "--scoring"),
    # -- plan --
    ("plan --profile a100 --workload batch-summarization --rate 1", "--slo-ttft-ms"),
    ("plan --profile a100 --workload batch-summarization --slo-ttft-ms 1000", "--rate"),
    ("plan --profile a100 --rate 0 --slo-ttft-ms 1000", "--rate 0.0"),
    ("plan --profile a100 --rate -3 --slo-ttft-ms 1000", "--rate -3.0"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 0", "--slo-ttft-ms"),
    ("plan --profile a100 --rate 1e6 --slo-ttft-ms 1000", "--rate: simulating"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --duration-s 1e9", "--duration-s: requests to simulate"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --duration-s 0", "--duration-s 0.0"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --seed -1", "--seed -1"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --percentile p100", "--percentile"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist fixed:99999999999", "--prompt-dist"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist fixed:0", "--prompt-dist"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist lognormal:-5,1", "--prompt-dist"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist poisson:5", "--prompt-dist"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist trace:{tmp}/lengths.txt", "lengths.txt:2"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist trace:{tmp}/folder", "folder"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --output-dist fixed:131000", "--output-dist"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --trace {tmp}/trace.csv", "trace.csv:3"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --trace {tmp}/notrace.csv", "notrace.csv:1"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --trace {tmp}/folder", "folder"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --trace {tmp}/nothere.csv", "nothere.csv"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --trace /dev/zero", "/dev/zero: is a device"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --prompt-dist=", "--prompt-dist ''"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --max-batched-tokens 0", "--max-batched-tokens"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --gpu-memory-utilization 1.5", "--gpu-memory-utilization"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --pattern 3:7", "--pattern 3:7"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --tp 3", "--tp 3"),
    ("plan --profile a100 --rate 1 --slo-ttft-ms 1000 --workload {tmp}/latin1.yaml", "latin1.yaml"),
    # -- roi --
    ("roi --profile a100 --usd-per-hour 0", "--usd-per-hour"),
    ("roi --profile a100 --usd-per-hour -2", "--usd-per-hour"),
    ("roi --profile a100 --profile h100 --usd-per-hour 1 --usd-per-hour 2 --usd-per-hour 3", "--usd-per-hour"),
    ("roi --profile a100 --utilization 1.5", "--utilization"),
    ("roi --profile a100 --lifetime-years 0", "--lifetime-years"),
    ("roi --profile a100 --tokens 200000", "--tokens"),
    ("roi --profile a100 --pattern 3:7", "--pattern 3:7"),
    ("roi --profile nosuch", "unknown hardware profile 'nosuch'"),
    # -- report --
    ("report --profile a100 --out {tmp}/report.pdf", "--out"),
    ("report --profile a100 --out {tmp}/folder", "--out"),
    ("report --profile a100 --out {tmp}/nodir/r.html", "--out"),
    ("report --profile a100 --out /proc/r.html", "--out /proc/r.html"),
    ("report --profile a100 --out /sys/r.html", "--out /sys/r.html"),
    ("report --profile a100 --out {tmp}/keep.html --rates 1,a", "--rates"),
    ("report --profile a100 --out {tmp}/keep.html --rates 1,0", "--rates"),
    ("report --profile a100 --out {tmp}/keep.html --rates " + ",".join(map(str, range(1, 22))), "--rates"),
    ("report --profile a100 --out {tmp}/keep.html --duration-s 1e9", "--duration-s"),
    ("report --profile a100 --out {tmp}/keep.html --tokens 200000", "--tokens"),
    ("report --profile a100 --out {tmp}/keep.html --pattern 3:7", "--pattern 3:7"),
    ("report --profile a100 --out {tmp}/keep.html --percentile 95", "--percentile"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy {tmp}/nothere.json", "--accuracy"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy {tmp}/accuracy.json", "accuracy.json"),
    ("report --profile a100 --out {tmp}/keep.html --seed -1", "--seed"),
    # -- measure --
    ("measure --out {tmp}/folder --device cpu", "--out"),
    ("measure --out {tmp}/keep.jsonl --device cpu", "keep.jsonl: file exists"),
    ("measure --out {tmp}/nodir/m.jsonl --device cpu", "--out"),
    ("measure --out /proc/m.jsonl --device cpu", "--out /proc/m.jsonl"),
    ("measure --out {tmp}/new.jsonl --tokens 0,5", "--tokens"),
    ("measure --out {tmp}/new.jsonl --tokens 200000", "--tokens"),
    ("measure --out {tmp}/new.jsonl --decode-batch 100000", "--decode-batch"),
    ("measure --out {tmp}/new.jsonl --deadline -1", "--deadline"),
    ("measure --out {tmp}/new.jsonl --workload nosuch", "--workload"),
    ("measure --out {tmp}/new.jsonl --dtype fp64", "--dtype"),
    ("measure --out {tmp}/new.jsonl --what everything", "--what"),
    ("measure --out {tmp}/new.jsonl --prune-impls magic", "--prune-impls"),
    ("measure --out {tmp}/new.jsonl --pattern 5:4", "--pattern"),
    ("measure --out {tmp}/new.jsonl --what mixed --mixed-tokens 50", "--mixed-tokens"),
    # -- validate --
    ("validate --measurements {tmp}/zero.jsonl --profile h100-sxm", "zero.jsonl:2: field 'timing.median_s'"),
    ("validate --measurements {tmp}/string.jsonl --profile h100-sxm", "string.jsonl:2: field 'timing.median_s'"),
    ("validate --measurements {tmp}/negative.jsonl --profile h100-sxm", "negative.jsonl:2: field 'timing.median_s'"),
    ("validate --measurements {tmp}/nan.jsonl --profile h100-sxm", "nan.jsonl:2: field 'timing.median_s'"),
    ("validate --measurements {tmp}/infinity.jsonl --profile h100-sxm", "infinity.jsonl:2: field 'timing"),
    ("validate --measurements {tmp}/unordered.jsonl --profile h100-sxm", "unordered.jsonl:2: field 'timing'"),
    ("validate --measurements {tmp}/measured.jsonl --profile h100-sxm", "measured.jsonl:2: field 'measured'"),
    ("validate --measurements {tmp}/shape.jsonl --profile h100-sxm", "shape.jsonl:2: field 'measured.M'"),
    ("validate --measurements {tmp}/zeron.jsonl --profile h100-sxm", "zeron.jsonl:2: record 'q_proj'"),
    ("validate --measurements {tmp}/nopattern.jsonl --profile h100-sxm", "nopattern.jsonl:2: field 'variant'"),
    ("validate --measurements {tmp}/dtype.jsonl --profile h100-sxm", "dtype.jsonl:2: field 'dtype'"),
    ("validate --measurements {tmp}/kind.jsonl --profile h100-sxm", "kind.jsonl:2: field 'record'"),
    ("validate --measurements {tmp}/headerless.jsonl --profile h100-sxm", "headerless.jsonl:1"),
    ("validate --measurements {tmp}/empty.jsonl --profile h100-sxm", "empty.jsonl"),
    ("validate --measurements {tmp}/bytes.jsonl --profile h100-sxm", "bytes.jsonl"),
    ("validate --measurements {tmp}/onlyheader.jsonl --profile h100-sxm", "onlyheader.jsonl: holds no"),
    ("validate --measurements {tmp}/folder --profile h100-sxm", "folder: is a directory"),
    ("validate --measurements {tmp}/nothere.jsonl --profile h100-sxm", "nothere.jsonl"),
    ("validate --measurements /dev/zero --profile h100-sxm", "/dev/zero: is a device"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --plot=", "--plot: give a file name"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h200", "--force"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --holdout nosuch", "--holdout: 'nosuch'"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --plot {tmp}/plot.xyz", "--plot"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --plot {tmp}/folder", "--plot"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --plot {tmp}/nodir/p.png", "--plot"),
    ("validate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --plot /proc/p.png", "--plot /proc/p.png"),
    # -- calibrate --
    ("calibrate --measurements {tmp}/nan.jsonl --profile h100-sxm --out {tmp}/keep.yaml", "nan.jsonl:2"),
    ("calibrate --measurements {tmp}/zero.jsonl --profile h100-sxm --out {tmp}/keep.yaml", "zero.jsonl:2"),
    ("calibrate --measurements {tmp}/folder --profile h100-sxm --out {tmp}/keep.yaml", "folder: is a directory"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/keep.yaml "
     "--holdout llama-3.1-8b,llama-3.1-70b", "--holdout: holding out llama-3.1-8b, llama-3.1-70b leaves no"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/keep.yaml --holdout nosuch",
     "--holdout: 'nosuch' was not measured"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/h100-sxm.yaml",
     "--out " + "{tmp}/h100-sxm.yaml: the profile is named after its file"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/Mine.yaml", "'Mine'"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/keep.txt", "--out"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/folder", "--out"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out {tmp}/nodir/x.yaml", "--out"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h100-sxm --out /proc/x.yaml", "--out /proc"),
    ("calibrate --measurements " + str(MEASUREMENTS) + " --profile h200 --out {tmp}/keep.yaml", "--force"),
    # -- prune (arguments are checked before the model loads) --
    ("prune --pattern 3:3", "--pattern"),
    ("prune --pattern 3:7", "--pattern 3:7 needs"),
    ("prune --windows 0", "--windows"),
    ("prune --window-tokens 999999", "--window-tokens: a perplexity window has 999,999 tokens"),
    ("prune --eval ppl,mmlu", "--eval"),
    ("prune --scoring loud", "--scoring"),
    ("prune --policy {tmp}/missing.yaml", "--policy"),
    ("prune --policy {tmp}/policy.yaml", "layer 99"),
    ("prune --out {tmp}/keep.yaml", "--out is where --sensitivity writes"),
    ("prune --sensitivity --out {tmp}/keep.yaml", "keep.yaml exists; pass --force"),
    ("prune --sensitivity --out {tmp}/folder", "--out"),
    ("prune --sensitivity --out {tmp}/nodir/skip.yaml", "--out"),
    ("prune --sensitivity --out /proc/skip.yaml --force", "--out /proc/skip.yaml"),
    ("prune --model {tmp}/garbage.gguf", "garbage.gguf: not a readable GGUF model file"),
    ("prune --model {tmp}/nothere.gguf", "nothere.gguf"),
    ("prune --seed=-1 --dtype fp64", "--dtype"),
    # -- fleet (issue 12): cloud price kinds, TCO files and overrides, cache hit rates, fleet rate, disaggregation,
    #    workloads' serving and prefix-cache blocks, traces with cached tokens (CSV and JSON lines) --
    ("roi --profile a100 --cloud-price cheapest", "--cloud-price"),
    ("roi --profile a100 --cloud-price list --cloud-price market", "--cloud-price: given more than once"),
    ("roi --profile a100 --tco nosuch", "unknown TCO 'nosuch'"),
    ("roi --profile a100 --tco {tmp}/tcoinf.yaml", "tcoinf.yaml:"),
    ("roi --profile a100 --tco {tmp}/tconan.yaml", "field 'usd_per_kwh.value'"),
    ("roi --profile a100 --tco {tmp}/tconeg.yaml", "field 'server_usd_per_gpu'"),
    ("roi --profile a100 --tco {tmp}/tcoextra.yaml", "discount"),
    ("roi --profile a100 --tco {tmp}/latin1.yaml", "latin1.yaml:1: not UTF-8"),
    ("roi --profile a100 --tco {tmp}/folder", "folder"),
    ("roi --profile a100 --tco /dev/zero", "/dev/zero: is a device"),
    ("roi --profile a100 --tco colocation-us --tco colocation-us", "--tco: given more than once"),
    ("roi --profile a100 --pue inf", "--pue: expected a finite number"),
    ("roi --profile a100 --pue 0.5", "--pue 0.5: a PUE is >= 1"),
    ("roi --profile a100 --pue 1.2 --pue 1.3", "--pue: given more than once"),
    ("roi --profile a100 --server-usd-per-gpu nan", "--server-usd-per-gpu: expected a finite number"),
    ("roi --profile a100 --server-usd-per-gpu -5", "--server-usd-per-gpu -5"),
    ("roi --profile a100 --hosting-usd-per-kw-month=-inf", "--hosting-usd-per-kw-month: expected a finite"),
    ("roi --profile a100 --idle-power-fraction 1.5", "--idle-power-fraction 1.5"),
    ("roi --profile a100 --idle-power-fraction nan", "--idle-power-fraction: expected a finite number"),
    ("roi --profile a100 --rate 5 --seed -1", "--seed -1"),
    ("roi --profile a100 --rate 5 --cache-hit-rate 1", "--cache-hit-rate 1"),
    ("roi --profile a100 --rate 5 --duration-s 1e9", "--duration-s: requests to simulate"),
    ("roi --profile a100 --rate inf", "--rate: expected a finite number"),
    ("roi --profile a100 --rate 5 --prompt-dist fixed:999999", "--prompt-dist"),
    ("roi --profile a100 --workload {tmp}/servingnan.yaml", "servingnan.yaml"),
    ("roi --profile {tmp}/marketinf.yaml", "prices.cloud_market_usd_per_gpu_hour.value"),
    ("plan --profile a100 --cache-hit-rate nan", "--cache-hit-rate: expected a finite number"),
    ("plan --profile a100 --cache-hit-rate -0.1", "--cache-hit-rate -0.1"),
    ("plan --profile a100 --cache-hit-rate 0.2 --cache-hit-rate 0.3", "--cache-hit-rate: given more than once"),
    ("plan --profile a100 --cloud-price list --usd-per-hour inf", "--usd-per-hour: expected a finite number"),
    ("plan --profile a100 --purchase-usd -1", "--purchase-usd"),
    ("plan --profile a100 --tco {tmp}/tcoinf.yaml", "tcoinf.yaml"),
    ("plan --profile a100 --pue nan", "--pue: expected a finite number"),
    ("plan --profile a100 --disaggregate --trace {tmp}/trace.csv", "--disaggregate plans generated traffic"),
    ("plan --profile a100 --disaggregate --kv-link-gbps 0", "--kv-link-gbps 0"),
    ("plan --profile a100 --disaggregate --kv-link-gbps inf", "--kv-link-gbps: expected a finite number"),
    ("plan --profile a100 --kv-link-gbps 10 --kv-link-gbps 20", "--kv-link-gbps: given more than once"),
    ("plan --profile a100 --workload {tmp}/servingnan.yaml", "servingnan.yaml:"),
    ("plan --profile a100 --workload {tmp}/hitrate.yaml", "prefix_cache.hit_rate"),
    ("plan --profile a100 --workload {tmp}/hitnan.yaml", "prefix_cache.hit_rate"),
    ("plan --profile a100 --workload batch-summarization --slo-ttft-ms 1000", "--rate"),
    ("plan --profile {tmp}/decodeneg.yaml", "efficiency.decode_attention_latency_us.value"),
    ("plan --profile {tmp}/memfrac.yaml", "efficiency.dense_gemm.memory_fraction.value"),
    ("plan --profile a100 --trace {tmp}/cachedall.csv", "cachedall.csv:2: expected cached tokens"),
    ("plan --profile a100 --trace {tmp}/cachedneg.csv", "cachedneg.csv:2"),
    ("plan --profile a100 --trace {tmp}/cachedword.csv", "cachedword.csv:2"),
    ("plan --profile a100 --trace {tmp}/cachednan.csv", "cachednan.csv:2"),
    ("plan --profile a100 --trace {tmp}/arrivalinf.csv", "arrivalinf.csv:2: expected a finite arrival time"),
    ("plan --profile a100 --trace {tmp}/inputinf.csv", "inputinf.csv:2: expected a positive integer input"),
    ("plan --profile a100 --trace {tmp}/sametime.csv", "sametime.csv: all 2 requests arrive at the same time; a"),
    ("plan --profile a100 --trace {tmp}/mooncake.jsonl", "mooncake.jsonl:2: expected a positive integer input"),
    ("plan --profile a100 --trace {tmp}/hashids.jsonl", "hashids.jsonl:1: expected hash_ids"),
    ("plan --profile a100 --trace {tmp}/cachedbig.jsonl", "cachedbig.jsonl:1: expected cached tokens"),
    ("plan --profile a100 --trace {tmp}/nokey.jsonl", "nokey.jsonl:1: no input-length key"),
    ("plan --profile a100 --trace {tmp}/halfjson.jsonl", "halfjson.jsonl:1: not a JSON object"),
    ("plan --profile a100 --trace {tmp}/notobject.jsonl", "notobject.jsonl:1: expected a JSON object"),
    ("plan --profile a100 --trace {tmp}/nanjson.jsonl", "nanjson.jsonl:1: expected a finite arrival time"),
    ("plan --profile a100 --trace {tmp}/latin1.txt", "latin1.txt: cannot read trace (not UTF-8 text)"),
    ("plan --profile a100 --trace=", "--trace"),
    ("plan --profile a100 --trace {tmp}/cachedover.csv", "cachedover.csv:2: expected cached tokens, a whole number"),
    ("plan --profile a100 --trace {tmp}/cachedfrac.csv", "cachedfrac.csv:2: expected cached tokens"),
    ("plan --profile a100 --trace {tmp}/single.csv", "single.csv: a single request; a trace's rate is"),
    ("plan --profile a100 --trace {tmp}/samejson.jsonl", "samejson.jsonl: all 2 requests arrive at the same time"),
    ("plan --profile a100 --trace {tmp}/tinyspan.jsonl", "tinyspan.jsonl: all 2 requests arrive within 1e-313 s"),
    ("plan --profile a100 --trace {tmp}/hugeout.jsonl", "hugeout.jsonl:2: output token count 1e+20 is above the"),
    ("plan --profile a100 --prompt-dist trace:{tmp}/hugelen.txt", "hugelen.txt:2: prompt token count 1e20 is above"),
    ("plan --profile a100 --prompt-dist fixed:1e30", "--prompt-dist: tokens of one request: 1,000,000,000,000,000,0"),
    ("plan --profile a100 --trace {tmp}/sametime.csv --rate 5", "sametime.csv: all 2 requests"),
    ("plan --profile a100 --rate 0.01 --duration-s 100 --seed 33", "--duration-s 100: at 0.01 requests/s every"),
    ("plan --profile a100 --tco {tmp}/tcoword.yaml", "field 'pue.value': Input should be a valid number"),
    ("plan --profile a100 --tco {tmp}/tcohuge.yaml", "field 'hosting_usd_per_kw_month': value must be in [0, 100000]"),
    ("plan --profile a100 --tco {tmp}/tconosource.yaml", "field 'pue.source': Field required"),
    ("plan --profile a100 --tco=", "unknown TCO ''"),
    ("plan --profile a100 --server-usd-per-gpu 1e12", "--server-usd-per-gpu"),
    ("plan --profile a100 --lifetime-years -1", "--lifetime-years -1"),
    ("plan --profile a100 --workload {tmp}/servingextra.yaml", "field 'serving.burst': Extra inputs are not permitted"),
    ("plan --profile a100 --workload {tmp}/servingneg.yaml", "field 'serving.rate_per_s.value': value must be > 0"),
    ("plan --profile a100 --workload {tmp}/sloinf.yaml", "field 'serving.slo_tpot_ms.value': Input should be a finite"),
    ("plan --profile a100 --kv-link-gbps 10", "--kv-link-gbps is the link between the pools of --disaggregate"),
    ("plan --profile a100 --disaggregate --slo-ttft-ms 500", "--disaggregate sizes a prefill pool"),
    ("plan --profile a100 --cache-hit-rate many", "--cache-hit-rate: expected a number"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate inf", "--fleet-rate: expected a finite number"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate 0", "--fleet-rate 0"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate 1e7", "--fleet-rate"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate 1 --fleet-rate 2", "--fleet-rate: given more"),
    ("report --profile a100 --out {tmp}/keep.html --cache-hit-rate 1", "--cache-hit-rate 1"),
    ("report --profile a100 --out {tmp}/keep.html --cloud-price spot", "--cloud-price"),
    ("report --profile a100 --out {tmp}/keep.html --tco {tmp}/tconeg.yaml", "tconeg.yaml"),
    ("report --profile a100 --out {tmp}/keep.html --pue 0", "--pue 0"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy {tmp}/accinf.json", "accinf.json: field 'models.0"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy {tmp}/accnone.json", "accnone.json: field 'models'"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy {tmp}/acclatin1.json", "acclatin1.json: not UTF-8"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy {tmp}/folder", "--accuracy '{tmp}/folder': is a dir"),
    ("report --profile a100 --out {tmp}/keep.html --accuracy=", "--accuracy '': give a file name"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate -2", "--fleet-rate -2"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate fast", "--fleet-rate: expected a number"),
    ("report --profile a100 --out {tmp}/keep.html --fleet-rate=nan", "--fleet-rate: expected a finite number"),
    ("report --profile a100 --out {tmp}/keep.html --cache-hit-rate=-inf", "--cache-hit-rate: expected a finite"),
    ("report --profile a100 --out {tmp}/keep.html --cache-hit-rate 0.1 --cache-hit-rate 0.2", "--cache-hit-rate: giv"),
    ("report --profile a100 --out {tmp}/keep.html --workload {tmp}/servingneg.yaml", "servingneg.yaml"),
    ("report --profile a100 --out {tmp}/keep.html --tco {tmp}/tcoword.yaml", "field 'pue.value': Input should be"),
    ("report --profile a100 --out {tmp}/keep.html --rates 1 --fleet-rate 1 --duration-s 1e9", "--duration-s"),
    # -- accuracy (issue 13): the user's text and quiz files, the new counts and choices, the built-in models
    #    (all checked before any model loads) --
    ("prune --text {tmp}/nothere.txt", "--text: {tmp}/nothere.txt: file not found"),
    ("prune --text {tmp}/folder", "--text: {tmp}/folder: is a directory"),
    ("prune --text /dev/zero", "--text: /dev/zero: is a device"),
    ("prune --text {tmp}/latin1.txt", "--text: {tmp}/latin1.txt:1: not UTF-8"),
    ("prune --text {tmp}/blank.txt", "--text: {tmp}/blank.txt: the file is empty"),
    ("prune --text {tmp}/prose.txt --eval quiz", "--text given, but"),
    ("prune --sensitivity --text {tmp}/prose.txt", "--text: --sensitivity"),
    ("prune --quiz {tmp}/answer.jsonl", "answer.jsonl:1: field 'answer'"),
    ("prune --quiz {tmp}/boolanswer.jsonl", "boolanswer.jsonl:1: field 'answer'"),
    ("prune --quiz {tmp}/choices.jsonl", "choices.jsonl:1: field 'choices'"),
    ("prune --quiz {tmp}/quizjson.jsonl", "quizjson.jsonl:1: malformed JSON"),
    ("prune --quiz {tmp}/quizlist.jsonl", "quizlist.jsonl:1: expected an object"),
    ("prune --quiz {tmp}/nocolon.quiz", "nocolon.quiz:1: expected 'question:answer|alternative'"),
    ("prune --quiz {tmp}/emptyanswer.quiz", "emptyanswer.quiz:1: empty answer"),
    ("prune --quiz {tmp}/nothere.jsonl", "--quiz: {tmp}/nothere.jsonl: file not found"),
    ("prune --quiz {tmp}/latin1.txt", "latin1.txt:1: not UTF-8"),
    ("prune --quiz {tmp}/answer.jsonl --eval ppl", "--quiz given, but"),
    ("prune --text {tmp}/binary.txt", "--text: {tmp}/binary.txt:1: not UTF-8 (byte 0x89)"),
    ("prune --text {tmp}/nul.txt", "--text: {tmp}/nul.txt:2: a NUL byte: a binary file"),
    ("prune --text {tmp}/huge.txt", "--text: {tmp}/huge.txt: more than 67,108,864 bytes"),
    ("prune --text {tmp}/prose.txt {tmp}/blank.txt", "--text: {tmp}/blank.txt: the file is empty"),
    ("prune --quiz {tmp}/huge.jsonl", "--quiz: {tmp}/huge.jsonl: more than 67,108,864 bytes"),
    ("prune --quiz {tmp}/noquestion.jsonl", "noquestion.jsonl:1: field 'question'"),
    ("prune --quiz {tmp}/nochoices.jsonl", "nochoices.jsonl:1: field 'choices'"),
    ("prune --quiz {tmp}/emptyquiz.jsonl", "emptyquiz.jsonl: no questions in the file"),
    ("prune --quiz {tmp}/blankquiz.jsonl", "blankquiz.jsonl: no questions in the file"),
    ("prune --quiz {tmp}/binary.txt", "--quiz: {tmp}/binary.txt:1: not UTF-8"),
    ("prune --quiz {tmp}/folder", "--quiz: {tmp}/folder: is a directory"),
    ("prune --outliers trim", "--outliers"),
    ("prune --outliers clamp --outliers drop", "--outliers: given more than once"),
    ("prune --code-windows 0 --eval code", "--code-windows 0"),
    ("prune --lm-eval-limit 0", "--lm-eval-limit 0"),
    ("prune --questions -1", "--questions -1"),
    ("prune --calibration-windows 0 --outstanding", "--calibration-windows 0"),
    ("prune --windows 2 --windows 3", "--windows: given more than once"),
    ("prune --eval lm-eval:", "--eval"),
    ("prune --eval ppl,bleu", "--eval"),
    ("prune --model gemma-3-270m --window-tokens 40000", "gemma-3-270m's context length of 32,768"),
    ("prune --model qwen2.5-coder-0.5b --pattern 3:7", "--pattern 3:7 needs"),
    ("prune --model qwen2.5-coder-1.5b --policy {tmp}/policy.yaml", "layer 99"),
    ("prune --model {tmp}/truncated.gguf", "truncated.gguf: not a readable GGUF model file"),
]


def _argv(case: str, tmp: Path) -> list[str]:
    argv = case.replace("{tmp}", str(tmp)).split()
    if argv[0] in FORMAT_COMMANDS and "--format" not in argv:
        argv += ["--format", "json"]
    return argv


def _run(argv: list[str], capsys) -> tuple[int, str, str, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse ends with SystemExit(2)
            code = exc.code
    out, err = capsys.readouterr()
    return code, out, err, caught


def test_enough_cases_across_every_command():
    from ampersim.cli import COMMANDS

    assert len(CASES) >= 100
    assert {case.split()[0] for case, _ in CASES} >= set(COMMANDS)


@pytest.mark.parametrize("case,fragment", CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_exit_2(case, fragment, files, capsys):
    before = {name: (files / name).read_bytes() for name in KEEP}
    code, out, err, caught = _run(_argv(case, files), capsys)
    assert code == 2, err
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment.replace("{tmp}", str(files)) in err
    assert "Traceback" not in err
    assert not [str(w.message) for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))]
    assert {name: (files / name).read_bytes() for name in KEEP} == before
    assert not (files / "nodir").exists()  # no folder made for a refused output


# -- the items one by one, beyond the table ---------------------------------------------------------------
def test_calibrated_profile_is_named_after_its_file_and_loads_by_path(tmp_path, capsys):
    """`calibrate --out h100-mine.yaml` writes profile h100-mine (not the shipped h100-sxm-calibrated), whose
    header says to load it by its path, and which validate compares with the H100 measurements it came from."""
    from ampersim.hardware.registry import load_profile

    out = tmp_path / "h100-mine.yaml"
    assert main(["calibrate", "--measurements", str(MEASUREMENTS), "--profile", "h100-sxm", "--out", str(out),
                 "--format", "json"]) == 0
    capsys.readouterr()
    profile = load_profile(out)
    assert (profile.name, profile.base_profile, profile.status) == ("h100-mine", "h100-sxm", "calibrated")
    assert "Load it by this file's path" in out.read_text().splitlines()[1]
    assert main(["validate", "--measurements", str(MEASUREMENTS), "--profile", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "h100-mine"


def test_measure_on_cpu_is_a_quick_dry_run_on_tiny_shapes(tmp_path, capsys):
    from ampersim.measure.records import read_measurements

    out = tmp_path / "dry.jsonl"
    assert main(["measure", "--device", "cpu", "--out", str(out), "--what", "ops,layers"]) == 0
    err = capsys.readouterr().err
    assert "ERROR" not in err and "sparse GEMM measurements skipped" in err
    records = read_measurements(out).records
    assert records and {r.model for r in records} == {"llama-3.1-8b-tiny"} and {r.tokens for r in records} == {32}
    assert main(["validate", "--measurements", str(out), "--profile", "h100-sxm", "--force", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]


@pytest.mark.parametrize("module,argv,extra", [
    ("torch", ["measure", "--device", "cpu", "--out", "{tmp}/m.jsonl"], "ampersim[models]"),
    ("torch", ["measure", "--out", "{tmp}/m.jsonl"], "ampersim[models]"),
    ("transformers", ["prune", "--model", "smollm2-135m"], "ampersim[models]"),
    ("torch", ["prune", "--model", "smollm2-135m"], "ampersim[models]"),
    ("gguf", ["prune", "--model", "{tmp}/m.gguf"], "ampersim[models]"),
])
def test_missing_optional_dependency_is_one_line_naming_the_extra(module, argv, extra, tmp_path, capsys, monkeypatch):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setitem(__import__("sys").modules, module, None)  # `import torch` now fails as if not installed
    code, out, err, _ = _run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"needs {module}, which is not installed: pip install '{extra}'" in err


def test_lm_eval_tasks_without_the_extra_are_refused_before_the_model_loads(capsys, monkeypatch):
    import ampersim.models.load

    def no_load(*args, **kwargs):
        raise AssertionError("the model loaded before the arguments were checked")

    monkeypatch.setitem(__import__("sys").modules, "lm_eval", None)  # lm-eval not installed
    monkeypatch.setattr(ampersim.models.load, "load_model", no_load)
    code, out, err, _ = _run(["prune", "--eval", "ppl,lm-eval:arc_easy"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: lm-eval tasks need lm-evaluation-harness; install it with: pip install "
                          "'ampersim[lm-eval]'") and err.count("\n") == 1


def test_a_stray_import_of_an_optional_module_still_names_the_extra(capsys, monkeypatch):
    """The CLI's safety net: a ModuleNotFoundError of an optional dependency outside any require()."""
    import ampersim.cli.coverage as coverage_cli

    def run(args):
        import transformers  # noqa: F401

    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    monkeypatch.setattr(coverage_cli, "run", run)
    code, out, err, _ = _run(["coverage", "--model", "llama-3.1-8b"], capsys)
    assert (code, out) == (2, "")
    assert err == "error: ampersim coverage needs transformers, which is not installed: pip install 'ampersim[models]'\n"


def test_a_chart_with_nothing_drawn_makes_no_legend_warning():
    from ampersim.report.plots import Series, line_chart

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = line_chart([Series("a100", "dense", "a100 dense", (1.0, 2.0), (None, None))], xlabel="x", ylabel="y",
                         title="t")
    assert png.startswith(b"\x89PNG")


def test_every_option_has_a_uniform_placeholder():
    """Options that take a value show a placeholder (NAME|FILE, N:M, N, FILE, ...) or their choices, never
    argparse's default upper-cased destination (PROFILE, SLO_TTFT_MS)."""
    import argparse

    from ampersim.cli import build_parser

    def options(parser: argparse.ArgumentParser, name: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    yield from options(subparser, f"{name} {sub}")
            elif action.option_strings and action.nargs != 0 and action.dest != "help":
                yield name, action

    for command, action in options(build_parser(), "ampersim"):
        assert action.choices or (action.metavar and action.metavar != action.dest.upper()), (command, action.dest)
    assert {a.metavar for c, a in options(build_parser(), "") if a.dest == "profile"} == {"NAME|FILE"}
    assert {a.metavar for c, a in options(build_parser(), "") if a.dest == "pattern"} == {"N:M"}


def test_every_resource_bound_is_listed_in_the_readme():
    from ampersim.core import limits

    readme = (repository_root() / "README.md").read_text()
    section = readme[readme.index("## Limits"):]
    section = section[:section.index("\n## ", 4)] if "\n## " in section[4:] else section
    for name in (n for n in dir(limits) if n.startswith("MAX_")):
        assert name in section, name
    assert "max_position_embeddings" in section


def test_every_shipped_model_records_its_context_length():
    from ampersim.models.registry import list_model_specs

    assert all(spec.max_position_embeddings for spec in list_model_specs())


def test_auto_window_stays_within_the_simulation_bound():
    from ampersim.core.limits import MAX_SIMULATED_REQUESTS
    from ampersim.econ.capacity import auto_duration_s

    assert auto_duration_s(20) == 2500  # ~50,000 requests, as before
    assert auto_duration_s(1e5) * 1e5 <= MAX_SIMULATED_REQUESTS


def test_a_trace_beyond_its_byte_bound_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """A request trace is read whole: one larger than core.limits.MAX_DATA_FILE_BYTES is refused after reading
    at most the bound + 1 bytes (here a bound of 1,000 bytes stands in for the 256 MiB one)."""
    from ampersim.core.errors import InvalidData
    from ampersim.econ import traffic

    file = tmp_path / "big.csv"
    file.write_text("arrival_s,input_tokens,output_tokens,cached_tokens\n"
                    + "".join(f"{i},100,10,5\n" for i in range(100)))
    assert len(traffic.read_request_trace(file).prompt) == 100  # within the real bound: read as it is
    monkeypatch.setattr(traffic, "MAX_DATA_FILE_BYTES", 1000)
    with pytest.raises(InvalidData, match=r"big.csv: more than 1,000 bytes, larger than a trace file may be"):
        traffic.read_request_trace(file)


def test_calibration_beyond_its_row_bound_is_refused_before_fitting(monkeypatch):
    from ampersim.core.errors import InvalidArgument
    from ampersim.hardware.registry import load_profile
    from ampersim.measure import calibrate as calibrate_mod
    from ampersim.measure.records import read_measurements

    monkeypatch.setattr(calibrate_mod, "MAX_CALIBRATION_ROWS", 10)
    with pytest.raises(InvalidArgument, match=r"measurements: the 16-bit op rows to fit: \d+, above the bound of 10"):
        calibrate_mod.calibrate(read_measurements(MEASUREMENTS), load_profile("h100-sxm"))
