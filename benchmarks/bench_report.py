"""Render time of `ampersim report` and how many predictions it makes.

    python benchmarks/bench_report.py [--repeat 3] [--wait-idle SECONDS] [-- REPORT ARGS...]

Runs the report through the CLI entry point in this process ``--repeat`` times (the first run also
pays imports and numba's cache load; it is reported apart), timing each run's wall clock and the
process's CPU time (user + system of all its threads: less sensitive than the wall clock to other
work on a shared machine, though not immune to it), and counts every call of
``ampersim.sim.predict.predict`` (per-op prediction of one step) and ``step_seconds`` (the vectorized
step model: one call per speedup sweep line and per capacity step table), keyed by
(profile, scenario, pattern, policy, scoring, prompt lengths) for ``predict``. The load average is
printed before and after: the machine may be shared. Default report arguments are those of
docs/example-report.html.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_REPORT = [
    "--workload",
    "prefill-4k",
    "--pattern",
    "2:4",
    "--profile",
    "h100-sxm",
    "--profile",
    "a100-sxm",
    "--profile",
    "mi300x",
    "--profile",
    "l4",
]


def wait_idle(max_s: float, below: float) -> None:
    """Wait up to ``max_s`` seconds for the 1-minute load average to drop below ``below``."""
    deadline = time.monotonic() + max_s
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        print(f"waiting: load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        time.sleep(10.0)


def count_calls(counts: collections.Counter, keys: collections.Counter) -> None:
    """Wrap predict and step_seconds wherever a loaded ampersim module holds them."""
    import ampersim.sim.predict as sim_predict

    originals = {"predict": sim_predict.predict, "step_seconds": sim_predict.step_seconds}

    def counted(name, fn):
        def wrapper(profile, scenario, *args, **kwargs):
            counts[name] += 1
            if name == "predict":
                keys[
                    (
                        profile.name,
                        scenario.name,
                        scenario.pattern,
                        scenario.policy,
                        scenario.scoring,
                        tuple(scenario.sequence_lengths()),
                    )
                ] += 1
            return fn(profile, scenario, *args, **kwargs)

        return wrapper

    wrappers = {name: counted(name, fn) for name, fn in originals.items()}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("ampersim"):
            for name, fn in originals.items():
                if getattr(module, name, None) is fn:
                    setattr(module, name, wrappers[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for the load average to fall below --idle-load",
    )
    parser.add_argument("--idle-load", type=float, default=0.5)
    parser.add_argument("report_args", nargs="*", help="arguments of ampersim report (after --)")
    args = parser.parse_args()
    report_args = args.report_args or DEFAULT_REPORT

    import ampersim.cli.report  # noqa: F401  (loads the modules whose predict references get wrapped)
    from ampersim.cli import main as cli

    wait_idle(args.wait_idle, args.idle_load)
    load_before = os.getloadavg()
    runs, cpu = [], []
    counts: collections.Counter = collections.Counter()
    keys: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "report.html")
        for i in range(args.repeat):
            if i == 0:  # imports inside the CLI's run() happen now; wrap after they are loaded
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    start = time.perf_counter()
                    cli(["report", *report_args, "--out", out])
                    first = time.perf_counter() - start
                count_calls(counts, keys)
                continue
            counts.clear()
            keys.clear()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                start, start_cpu = time.perf_counter(), time.process_time()
                cli(["report", *report_args, "--out", out])
                runs.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
    result = {
        "report_args": " ".join(report_args),
        "first_run_s": round(first, 3),
        "runs_s": [round(r, 3) for r in runs],
        "median_s": round(statistics.median(runs), 3) if runs else None,
        "cpu_s": [round(c, 3) for c in cpu],
        "min_cpu_s": round(min(cpu), 3) if cpu else None,
        "calls": dict(counts),
        "predict_keys": len(keys),
        "max_predictions_per_key": max(keys.values()) if keys else 0,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
