"""Resource bounds: how much work or memory one command may be asked for, checked before work starts.

Each bound is an assumption (documented here and in README "Limits"), set far above any real
workload and far below what would exhaust a laptop: an input beyond one is refused in one line that
names the bound, instead of running for hours, printing meaningless numbers or being killed for
memory. The per-model bound (tokens of one sequence <= the model's context length) lives on the
model spec (``ModelSpec.check_context``).
"""
from __future__ import annotations

import math
from pathlib import Path

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound

MAX_YAML_BYTES = 8 << 20
"""Profiles, workloads, model specs and policies are a few kB each."""
MAX_DATA_FILE_BYTES = 256 << 20
"""Measurement files and request/length traces are read whole: the committed measurement files are < 1 MB,
a trace holds a line per request (the Azure conversation trace behind workload 'chat': 19,366)."""
MAX_EVAL_TEXT_BYTES = 64 << 20
"""Text and quiz files of ``prune --text/--quiz`` are read and tokenized whole: 8 windows of 512 tokens need
~16 kB of English (the shipped Pride and Prejudice ch. 1-16 is 0.2 MB, the quiz files a few kB each)."""
MAX_SOURCED_VALUE = 1e12
"""Magnitude of a sourced number (profiles, TCO files, workloads): the shipped files' largest is 35,000 (a
GPU's price); far beyond it the cost model's products (GB x 1e9, TFLOPS x 1e12) overflow to inf and nan."""
MAX_REQUEST_TOKENS = (1 << 31) - 1
"""Tokens of one request (a prompt or an output) as a length distribution or a trace gives it, before the model's
context length is checked: 2,147,483,647, far above any model's context, and small enough that the lengths of
a whole simulation sum in 64-bit integers."""
MAX_STEP_TOKENS = 1 << 24
"""Tokens in one prefill step (batch x prompt tokens, 16.8 M): serving engines schedule 2-64 k per step."""
MAX_STEP_SEQUENCES = 1 << 16
"""Sequences in one step (the batch, 65,536): vLLM runs at most 256-1,024."""
MAX_SIMULATED_REQUESTS = 1_000_000
"""Requests in one serving simulation (rate x duration): ~11 s per simulation on two cores (derived: an hour
at 50 req/s, 180,000 requests, takes ~2 s in docs/benchmarks.md); a plan search runs several."""
MAX_SIMULATION_STATE_BYTES = 2e9
"""In-flight state of one serving simulation (replicas x running sequences)."""
MAX_LOG_SIGMA = 5.0
"""Log-length standard deviation of a lognormal length distribution: traces show 0.5-1.5 (the Azure
conversation trace 0.86); at 5 lengths spread over e^±10, and beyond ~100 its tail overflows a float."""
MAX_CALIBRATION_ROWS = 5_000
"""Op records one calibration fits: each stage searches 18 tile shapes x up to 400 parameter sets over its
rows (the committed runs have 150-440 records and fit in ~7 s on two cores; 5,000 take minutes)."""
MAX_REPORT_RATES = 20
"""Request rates in one report's capacity sweep (each is a plan search of its own)."""


def check_positive(value: float, field: str, what: str) -> None:
    """Refuse ``value`` unless it is a finite number > 0; ``what`` says what it is (with its unit)."""
    if not (isinstance(value, (int, float)) and 0 < value < math.inf):
        raise InvalidArgument(f"{field} {value!r}: {what} must be > 0 and finite", field=field)


def check_at_most(value: float, limit: float, field: str, what: str) -> None:
    """Refuse ``value`` above the bound ``limit``; ``what`` names the quantity and the bound."""
    if value > limit:
        raise InvalidArgument(f"{field}: {what}: {value:,.0f}, above the bound of {limit:,.0f} "
                              "(README, Limits)", field=field)


def read_limited(path: str | Path, limit: int, kind: str) -> bytes:
    """The bytes of the ``kind`` file at ``path`` (a regular file or a pipe), refused (InvalidData; NotFound
    if missing) when it is a folder or a device, or holds more than ``limit`` bytes: files are read whole,
    at most ``limit`` + 1 bytes of them."""
    path = Path(path)
    try:
        if path.is_dir():
            raise InvalidData(f"{path}: is a directory, not a {kind}")
        if path.exists() and not (path.is_file() or path.is_fifo()):
            raise InvalidData(f"{path}: is a device, not a {kind}")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{path}: file not found") from None
    except OSError as exc:
        raise InvalidData(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > limit:
        raise InvalidData(f"{path}: more than {limit:,} bytes, larger than a {kind} may be (README, Limits)")
    return data
