"""Request traffic for capacity planning: arrivals, prompt lengths and output lengths.

A length distribution is given as text: ``fixed:N``, ``lognormal:MEAN,SIGMA[,MAX]`` (MEAN is the
arithmetic mean in tokens, SIGMA the standard deviation of log-length, MAX an optional cap) or
``trace:FILE`` (one length per line, ``tokens,count`` histogram rows, or a CSV whose header names
the column). Output lengths count every generated token, the first included; ``fixed:0`` is the
explicit prefill-only workload. A request trace (``read_request_trace``) replays arrival time,
input and output tokens per request (CSV with a header; the Azure LLM inference traces load as
they are).

Traffic is produced in chunks so that a simulation holds only the requests in flight: Poisson
arrivals and prompt lengths are drawn exactly as one vectorized draw of the whole window would
(so results do not depend on the chunk size), output lengths from a second stream of the seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound

DIST_FORMS = "fixed:TOKENS, lognormal:MEAN,SIGMA[,MAX] or trace:FILE"
# Header names accepted for a CSV trace's columns (the Azure LLM inference traces call them
# TIMESTAMP, ContextTokens and GeneratedTokens), and for an optional histogram count column.
PROMPT_COLUMNS = ("prompt_tokens", "input_tokens", "contexttokens", "context_tokens", "tokens")
OUTPUT_COLUMNS = ("output_tokens", "generatedtokens", "generated_tokens", "completion_tokens", "tokens")
ARRIVAL_COLUMNS = ("arrival_s", "arrival", "timestamp", "time_s", "time")
COUNT_COLUMNS = ("count", "requests", "n")
CHUNK = 1 << 16  # requests per chunk of generated traffic
_OUTPUT_STREAM = 1  # output lengths come from the seed's second stream: SeedSequence([seed, 1])


@dataclass(frozen=True)
class LengthDist:
    """Lengths (tokens) drawn i.i.d. from a fixed value, a lognormal or an empirical table."""

    kind: str
    description: str
    lengths: np.ndarray = field(repr=False)  # support (fixed / empirical) or empty (lognormal)
    weights: np.ndarray = field(repr=False)
    log_mu: float = 0.0
    log_sigma: float = 0.0
    cap: int | None = None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths (int64)."""
        if self.kind == "lognormal":
            draw = np.rint(rng.lognormal(self.log_mu, self.log_sigma, n))
            hi = self.cap if self.cap is not None else np.inf
            return np.clip(draw, 1, hi).astype(np.int64)
        if len(self.lengths) == 1:
            return np.full(n, self.lengths[0], dtype=np.int64)
        return rng.choice(self.lengths, size=n, p=self.weights).astype(np.int64)

    def max_tokens(self) -> int:
        """Longest length this distribution produces (lognormal without a cap: its 1 - 1e-9 quantile)."""
        if self.kind == "lognormal":
            tail = math.ceil(math.exp(self.log_mu + 6.0 * self.log_sigma))
            return min(tail, self.cap) if self.cap is not None else max(tail, 1)
        return int(self.lengths.max())

    def mean(self) -> float:
        """Mean length in tokens (before rounding and capping for lognormal)."""
        if self.kind == "lognormal":
            return math.exp(self.log_mu + self.log_sigma**2 / 2)
        return float(np.dot(self.lengths, self.weights))


def fixed(tokens: int, *, field: str = "prompt_dist", minimum: int = 1) -> LengthDist:
    """Every length is ``tokens`` (>= ``minimum``: 1 for prompts, 0 for outputs, 0 meaning prefill only)."""
    if tokens < minimum:
        raise InvalidArgument(f"{field} fixed:{tokens}: tokens must be >= {minimum}", field=field)
    return LengthDist("fixed", f"fixed {tokens:,} tokens", np.array([tokens], dtype=np.int64), np.ones(1))


def lognormal(mean_tokens: float, sigma: float, cap: int | None = None, *, field: str = "prompt_dist") -> LengthDist:
    """Lognormal lengths with arithmetic mean ``mean_tokens`` and log-space std ``sigma``."""
    if not mean_tokens >= 1 or not sigma >= 0 or (cap is not None and cap < 1):
        raise InvalidArgument(
            f"{field} lognormal:{mean_tokens:g},{sigma:g}{'' if cap is None else f',{cap}'}: "
            "need MEAN >= 1 token, SIGMA >= 0 and MAX >= 1", field=field)
    mu = math.log(mean_tokens) - sigma**2 / 2
    capped = "" if cap is None else f", capped at {cap}"
    return LengthDist("lognormal", f"lognormal, mean {mean_tokens:g} tokens, sigma {sigma:g}{capped}",
                      np.zeros(0, dtype=np.int64), np.zeros(0), mu, sigma, cap)


def empirical(lengths: np.ndarray, counts: np.ndarray, description: str) -> LengthDist:
    """Distribution over observed ``lengths`` with frequencies ``counts``."""
    values, inverse = np.unique(np.asarray(lengths, dtype=np.int64), return_inverse=True)
    totals = np.bincount(inverse, weights=np.asarray(counts, dtype=float))
    return LengthDist("trace", description, values, totals / totals.sum())


def read_trace(path: str | Path, *, what: str = "prompt", field: str = "prompt_dist") -> LengthDist:
    """Read ``what`` ("prompt" or "output") lengths from a text/CSV trace; errors name the file and line."""
    columns = PROMPT_COLUMNS if what == "prompt" else OUTPUT_COLUMNS
    rows = _read_rows(path, field)
    if not rows:
        raise InvalidData(f"{path}: trace has no {what} lengths (one token count per line, or tokens,count)")
    token_col, count_col = 0, 1
    if not _is_number(rows[0][1][0]):
        header_line, header = rows.pop(0)
        token_col = _column(path, header_line, header, columns, f"{what}-length")
        count_col = _optional_column(header, COUNT_COLUMNS)
    lengths, counts = [], []
    for line, row in rows:
        lengths.append(_positive_int(path, line, row, token_col, f"{what} token count"))
        has_count = count_col is not None and count_col < len(row) and row[count_col] != ""
        counts.append(_positive_int(path, line, row, count_col, "count") if has_count else 1)
    return empirical(np.array(lengths), np.array(counts),
                     f"trace {Path(path).name}: {sum(counts)} requests, {len(set(lengths))} distinct lengths")


def parse_length_dist(text: str, *, what: str = "prompt", field: str = "prompt_dist") -> LengthDist:
    """Parse ``fixed:N``, ``lognormal:MEAN,SIGMA[,MAX]`` or ``trace:FILE`` (outputs may be ``fixed:0``)."""
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind == "trace" and arg:
        return read_trace(arg, what=what, field=field)
    try:
        numbers = [float(p) for p in arg.split(",")] if kind in ("fixed", "lognormal") else []
    except ValueError:
        numbers = []
    if kind == "fixed" and len(numbers) == 1 and numbers[0].is_integer():
        return fixed(int(numbers[0]), field=field, minimum=1 if what == "prompt" else 0)
    if kind == "lognormal" and len(numbers) in (2, 3) and (len(numbers) == 2 or numbers[2].is_integer()):
        return lognormal(numbers[0], numbers[1], int(numbers[2]) if len(numbers) == 3 else None, field=field)
    raise InvalidArgument(f"{field} '{text}': expected {DIST_FORMS}", field=field)


def poisson_arrivals(rng: np.random.Generator, rate_per_s: float, duration_s: float) -> np.ndarray:
    """Sorted arrival times (s) of a Poisson process of ``rate_per_s`` over [0, duration_s)."""
    return np.concatenate(list(_arrival_chunks(rng, rate_per_s, duration_s, math.inf)))


def _draw_size(rate_per_s: float, duration_s: float) -> int:
    expected = rate_per_s * duration_s
    return int(expected + 8 * math.sqrt(expected) + 16)


def _arrival_chunks(rng: np.random.Generator, rate_per_s: float, duration_s: float,
                    chunk: float) -> Iterator[np.ndarray]:
    """Arrival times in chunks, identical to one vectorized draw: exponential gaps in blocks of the
    expected count plus 8 standard deviations, until the window is covered."""
    if not (rate_per_s > 0 and duration_s > 0):
        raise InvalidArgument(f"rate_per_s {rate_per_s:g} over duration_s {duration_s:g}: both must be > 0",
                              field="rate_per_s")
    block, last, covered = _draw_size(rate_per_s, duration_s), 0.0, False
    while not covered:
        left = block
        while left > 0:
            n = int(min(left, chunk))
            left -= n
            times = np.cumsum(np.concatenate([[last], rng.exponential(1.0 / rate_per_s, n)]))[1:]
            last = float(times[-1])
            yield times[times < duration_s]
        covered = last >= duration_s


@dataclass(frozen=True)
class Traffic:
    """Poisson arrivals of ``rate_per_s`` for ``duration_s``, prompt and output lengths, seeded.

    Requests arriving in the first ``warmup_fraction`` of the window are simulated but left out of
    the statistics (the fleet starts empty).
    """

    rate_per_s: float
    prompts: LengthDist
    duration_s: float
    outputs: LengthDist = field(default_factory=lambda: fixed(0, field="output_dist", minimum=0))
    seed: int = 0
    warmup_fraction: float = 0.05

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise InvalidArgument(f"rate_per_s {self.rate_per_s:g}: the request rate must be > 0 requests/s",
                                  field="rate_per_s")
        if not self.duration_s > 0:
            raise InvalidArgument(f"duration_s {self.duration_s:g}: must be > 0 seconds", field="duration_s")

    @property
    def warmup_s(self) -> float:
        return self.warmup_fraction * self.duration_s

    @cached_property
    def _arrival_pass(self) -> tuple[int, int, dict]:
        """One pass over the arrival stream, holding no times: (requests, requests after the warm-up,
        the generator state the prompt lengths are drawn from: right after the last arrival gap)."""
        rng = np.random.default_rng(self.seed)
        total = measured = 0
        for times in _arrival_chunks(rng, self.rate_per_s, self.duration_s, CHUNK):
            total += len(times)
            measured += int(np.count_nonzero(times >= self.warmup_s))
        return total, measured, rng.bit_generator.state

    def counts(self) -> tuple[int, int]:
        """(requests, requests after the warm-up)."""
        total, measured, _ = self._arrival_pass
        if total == 0:
            raise InvalidArgument(f"duration_s {self.duration_s:g}: no request arrives at {self.rate_per_s:g} "
                                  "requests/s; lengthen the window", field="duration_s")
        return total, measured

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(arrival s, prompt tokens, output tokens) in arrival order, ``size`` requests at most per chunk."""
        arrivals = np.random.default_rng(self.seed)
        lengths = np.random.default_rng(self.seed)
        lengths.bit_generator.state = self._arrival_pass[2]
        outputs = np.random.default_rng([self.seed, _OUTPUT_STREAM])
        for times in _arrival_chunks(arrivals, self.rate_per_s, self.duration_s, size):
            if len(times):
                yield times, self.prompts.sample(lengths, len(times)), self.outputs.sample(outputs, len(times))

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All requests at once (arrival s, prompt tokens, output tokens): for small windows and tests."""
        parts = list(self.chunks())
        if not parts:
            self.counts()  # raises: no request arrives
        return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]

    def describe(self) -> str:
        return f"{self.rate_per_s:g} req/s Poisson for {self.duration_s:g} s"


@dataclass(frozen=True)
class RequestTrace:
    """Recorded requests (arrival s from the first, prompt tokens, output tokens), replayed as they are."""

    name: str
    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    warmup_fraction: float = 0.05

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self.arrival_s) > 1 else 1.0

    @property
    def rate_per_s(self) -> float:
        return len(self.arrival_s) / self.duration_s

    @property
    def warmup_s(self) -> float:
        return self.warmup_fraction * self.duration_s

    @property
    def prompts(self) -> LengthDist:
        return empirical(self.prompt, np.ones(len(self.prompt)), f"trace {self.name} prompts")

    @property
    def outputs(self) -> LengthDist:
        return empirical(self.output, np.ones(len(self.output)), f"trace {self.name} outputs")

    def scaled_to(self, rate_per_s: float) -> "RequestTrace":
        """The same requests with arrival times stretched or compressed to a mean rate of ``rate_per_s``."""
        if not rate_per_s > 0:
            raise InvalidArgument(f"rate_per_s {rate_per_s:g}: the request rate must be > 0 requests/s",
                                  field="rate_per_s")
        return RequestTrace(self.name, self.arrival_s * (self.rate_per_s / rate_per_s), self.prompt, self.output,
                            self.warmup_fraction)

    def counts(self) -> tuple[int, int]:
        return len(self.arrival_s), int(np.count_nonzero(self.arrival_s >= self.warmup_s))

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for start in range(0, len(self.arrival_s), size):
            part = slice(start, start + size)
            yield self.arrival_s[part], self.prompt[part], self.output[part]

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.arrival_s, self.prompt, self.output

    def describe(self) -> str:
        return f"trace {self.name}: {len(self.arrival_s):,} requests over {self.duration_s:g} s " \
               f"({self.rate_per_s:.3g} req/s)"


def read_request_trace(path: str | Path, *, field: str = "trace") -> RequestTrace:
    """Requests from a CSV with a header naming arrival, input and output columns (ARRIVAL_COLUMNS,
    PROMPT_COLUMNS, OUTPUT_COLUMNS); arrival is seconds or a date-time. Errors name the file and line."""
    rows = _read_rows(path, field)
    if not rows or _is_number(rows[0][1][0]):
        raise InvalidData(f"{path}:1: a request trace needs a header naming the arrival "
                          f"({', '.join(ARRIVAL_COLUMNS)}), input and output columns")
    header_line, header = rows.pop(0)
    cols = [_column(path, header_line, header, names, what) for names, what in
            ((ARRIVAL_COLUMNS, "arrival-time"), (PROMPT_COLUMNS, "input-length"), (OUTPUT_COLUMNS, "output-length"))]
    if not rows:
        raise InvalidData(f"{path}: the trace has a header but no requests")
    arrival, prompt, output = [], [], []
    for line, row in rows:
        arrival.append(_time(path, line, row, cols[0]))
        prompt.append(_positive_int(path, line, row, cols[1], "input token count"))
        output.append(_positive_int(path, line, row, cols[2], "output token count"))
    order = np.argsort(np.array(arrival), kind="stable")
    times = np.array(arrival)[order]
    return RequestTrace(Path(path).name, times - times[0], np.array(prompt, dtype=np.int64)[order],
                        np.array(output, dtype=np.int64)[order])


# -- reading ----------------------------------------------------------------------------------------
def _read_rows(path: str | Path, field: str) -> list[tuple[int, list[str]]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"{field} {path}: file not found", field=field) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise InvalidData(f"{path}: cannot read trace ({reason})") from None
    return [(i, row) for i, row in enumerate(_split_rows(text), start=1) if row]


def _split_rows(text: str) -> list[list[str]]:
    """Cells of each line (comments after '#' dropped; comma separated, else tab/space separated)."""
    rows = []
    for raw in text.splitlines():
        body = raw.split("#", 1)[0].strip()
        cells = body.split(",") if "," in body else re.split(r"\s+", body)
        rows.append([c.strip().strip('"') for c in cells] if body else [])
    return rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _optional_column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def _column(path: str | Path, line: int, header: list[str], names: tuple[str, ...], what: str) -> int:
    col = _optional_column(header, names)
    if col is None:
        raise InvalidData(f"{path}:{line}: no {what} column in header {header}; name it one of {', '.join(names)}")
    return col


def _positive_int(path: str | Path, line: int, row: list[str], col: int, what: str) -> int:
    cell = row[col] if col < len(row) else ""
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value == int(value)):
        raise InvalidData(f"{path}:{line}: expected a positive integer {what}, got '{cell}'")
    return int(value)


def _time(path: str | Path, line: int, row: list[str], col: int) -> float:
    cell = row[col] if col < len(row) else ""
    try:
        return float(cell)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(cell).timestamp()
    except ValueError:
        raise InvalidData(f"{path}:{line}: expected an arrival time in seconds or a date-time, got '{cell}'") from None
