"""Request traffic for capacity planning: arrivals, prompt lengths and output lengths.

A length distribution is given as text: ``fixed:N``, ``lognormal:MEAN,SIGMA[,MAX]`` (MEAN is the
arithmetic mean in tokens, SIGMA the standard deviation of log-length, MAX an optional cap) or
``trace:FILE`` (one length per line, ``tokens,count`` histogram rows, or a CSV whose header names
the column). Output lengths count every generated token, the first included; ``fixed:0`` is the
explicit prefill-only workload. A request trace (``read_request_trace``) replays arrival time,
input, output and (optionally) cached tokens per request: a CSV with a header (the Azure LLM
inference traces load as they are) or JSON lines (the Mooncake traces load as they are: their
``timestamp`` is in milliseconds and their 512-token prefix-block ``hash_ids`` give the cached tokens).

Prefix caching: a request's first ``cached`` prompt tokens already have their KV in the cache, so its
prefill computes only the rest (its chunks start after the cached prefix; attention still reads it).
Generated traffic caches ``floor(hit_rate × prompt)`` tokens of every prompt (at most prompt − 1).

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
from ampersim.core.limits import (
    MAX_DATA_FILE_BYTES,
    MAX_LOG_SIGMA,
    MAX_REQUEST_TOKENS,
    MAX_SIMULATED_REQUESTS,
    check_at_most,
    check_positive,
    read_limited,
)

DIST_FORMS = "fixed:TOKENS, lognormal:MEAN,SIGMA[,MAX] or trace:FILE"
# Header names accepted for a CSV trace's columns (the Azure LLM inference traces call them
# TIMESTAMP, ContextTokens and GeneratedTokens), and for an optional histogram count column.
PROMPT_COLUMNS = ("prompt_tokens", "input_tokens", "contexttokens", "context_tokens", "tokens")
OUTPUT_COLUMNS = ("output_tokens", "generatedtokens", "generated_tokens", "completion_tokens", "tokens")
ARRIVAL_COLUMNS = ("arrival_s", "arrival", "timestamp", "time_s", "time", "arrival_ms", "timestamp_ms")
MS_COLUMNS = ("arrival_ms", "timestamp_ms")  # arrival columns in milliseconds
CACHED_COLUMNS = ("cached_tokens", "cached", "cache_hit_tokens", "prefix_tokens")
MOONCAKE_BLOCK_TOKENS = 512  # prefix block of the Mooncake traces' hash_ids
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
    check_at_most(tokens, MAX_REQUEST_TOKENS, field, "tokens of one request")
    return LengthDist("fixed", f"fixed {tokens:,} tokens", np.array([tokens], dtype=np.int64), np.ones(1))


def lognormal(mean_tokens: float, sigma: float, cap: int | None = None, *, field: str = "prompt_dist") -> LengthDist:
    """Lognormal lengths with arithmetic mean ``mean_tokens`` and log-space std ``sigma``."""
    if (not 1 <= mean_tokens < math.inf or not 0 <= sigma <= MAX_LOG_SIGMA
            or (cap is not None and not 1 <= mean_tokens <= cap)):
        raise InvalidArgument(
            f"{field} lognormal:{mean_tokens:g},{sigma:g}{'' if cap is None else f',{cap}'}: "
            f"need a finite MEAN >= 1 token, 0 <= SIGMA <= {MAX_LOG_SIGMA:g} and MAX >= MEAN", field=field)
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
    check_positive(rate_per_s, "rate_per_s", "the request rate (requests/s)")
    check_positive(duration_s, "duration_s", "the simulated time (s)")
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
    cache_hit_rate: float = 0.0  # share of every prompt's tokens already in the prefix cache

    def __post_init__(self) -> None:
        check_positive(self.rate_per_s, "rate_per_s", "the request rate (requests/s)")
        check_positive(self.duration_s, "duration_s", "the simulated time (s)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidArgument(f"seed {self.seed!r}: must be a whole number >= 0", field="seed")
        check_hit_rate(self.cache_hit_rate)
        check_at_most(self.rate_per_s * self.duration_s, MAX_SIMULATED_REQUESTS, "duration_s",
                      f"requests to simulate ({self.rate_per_s:g} requests/s for {self.duration_s:g} s)")

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
        if measured == 0:
            raise InvalidArgument(f"duration_s {self.duration_s:g}: at {self.rate_per_s:g} requests/s every request "
                                  f"({total:,}) arrives in the warm-up, the first {100 * self.warmup_fraction:g} % of "
                                  "the window, which the statistics leave out; lengthen the window",
                                  field="duration_s")
        return total, measured

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(arrival s, prompt tokens, output tokens, cached prompt tokens) in arrival order, ``size``
        requests at most per chunk."""
        arrivals = np.random.default_rng(self.seed)
        lengths = np.random.default_rng(self.seed)
        lengths.bit_generator.state = self._arrival_pass[2]
        outputs = np.random.default_rng([self.seed, _OUTPUT_STREAM])
        for times in _arrival_chunks(arrivals, self.rate_per_s, self.duration_s, size):
            if len(times):
                prompt = self.prompts.sample(lengths, len(times))
                yield times, prompt, self.outputs.sample(outputs, len(times)), cached_tokens(prompt, self.cache_hit_rate)

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All requests at once (arrival s, prompt, output and cached tokens): for small windows and tests."""
        parts = list(self.chunks())
        if not parts:
            self.counts()  # raises: no request arrives
        return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]

    def describe(self) -> str:
        cache = f", {100 * self.cache_hit_rate:g} % of prompt tokens cached" if self.cache_hit_rate else ""
        return f"{self.rate_per_s:g} req/s Poisson for {self.duration_s:g} s{cache}"


def check_hit_rate(hit_rate: float) -> None:
    if not 0 <= hit_rate < 1:
        raise InvalidArgument(f"cache_hit_rate {hit_rate:g}: the share of prompt tokens found in the prefix cache "
                              "must be in [0, 1)", field="cache_hit_rate")


def cached_tokens(prompt: np.ndarray, hit_rate: float) -> np.ndarray:
    """Cached prefix of each prompt at a token hit rate: floor(hit_rate × prompt), at most prompt − 1."""
    return np.minimum(np.floor(hit_rate * prompt).astype(np.int64), np.asarray(prompt, dtype=np.int64) - 1)


@dataclass(frozen=True)
class RequestTrace:
    """Recorded requests (arrival s from the first, prompt, output and cached tokens), replayed as they are."""

    name: str
    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    warmup_fraction: float = 0.05
    cached: np.ndarray | None = None  # cached prompt tokens per request (None: no prefix cache)

    @property
    def cached_tokens(self) -> np.ndarray:
        return self.cached if self.cached is not None else np.zeros(len(self.prompt), dtype=np.int64)

    @property
    def cache_hit_rate(self) -> float:
        """Share of all prompt tokens that were cached."""
        return float(self.cached_tokens.sum() / self.prompt.sum())

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

    def scaled_to(self, rate_per_s: float) -> RequestTrace:
        """The same requests with arrival times stretched or compressed to a mean rate of ``rate_per_s``."""
        check_positive(rate_per_s, "rate_per_s", "the request rate (requests/s)")
        return RequestTrace(self.name, self.arrival_s * (self.rate_per_s / rate_per_s), self.prompt, self.output,
                            self.warmup_fraction, self.cached)

    def counts(self) -> tuple[int, int]:
        return len(self.arrival_s), int(np.count_nonzero(self.arrival_s >= self.warmup_s))

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        cached = self.cached_tokens
        for start in range(0, len(self.arrival_s), size):
            part = slice(start, start + size)
            yield self.arrival_s[part], self.prompt[part], self.output[part], cached[part]

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.arrival_s, self.prompt, self.output, self.cached_tokens

    def describe(self) -> str:
        cache = f", {100 * self.cache_hit_rate:.3g} % of prompt tokens cached" if self.cached is not None else ""
        return f"trace {self.name}: {len(self.arrival_s):,} requests over {self.duration_s:g} s " \
               f"({self.rate_per_s:.3g} req/s){cache}"


def read_request_trace(path: str | Path, *, field: str = "trace") -> RequestTrace:
    """Requests from a CSV with a header, or from JSON lines (one object per request), naming arrival,
    input, output and optionally cached-token columns or keys (ARRIVAL_COLUMNS, PROMPT_COLUMNS,
    OUTPUT_COLUMNS, CACHED_COLUMNS; Mooncake's input_length/output_length/hash_ids too). Arrival is
    seconds, a date-time, or milliseconds (``*_ms``, and a Mooncake trace's ``timestamp``). Errors name
    the file and line."""
    text = _read_text(path, field)  # read once: the trace may be a pipe
    if Path(path).suffix.lower() in (".jsonl", ".json") or text.lstrip().startswith("{"):
        records = _json_records(path, field, text)
    else:
        records = _csv_records(path, field, text)
    if not records:
        raise InvalidData(f"{path}: the trace has no requests")
    arrival = np.array([r[0] for r in records])
    prompt = np.array([r[1] for r in records], dtype=np.int64)
    output = np.array([r[2] for r in records], dtype=np.int64)
    cached = np.array([r[3] for r in records], dtype=np.int64)
    has_cache = any(r[4] for r in records)
    order = np.argsort(arrival, kind="stable")
    times = arrival[order]
    span = float(times[-1] - times[0])
    if span == 0 or not math.isfinite(len(times) / span):  # no rate (requests / span of arrivals), or no finite one
        which = ("a single request" if len(times) == 1 else f"all {len(times):,} requests arrive at the same time"
                 if span == 0 else f"all {len(times):,} requests arrive within {span:.3g} s")
        raise InvalidData(f"{path}: {which}; a trace's rate is requests / the span of their arrivals, so it needs "
                          "requests at two different times at least")
    return RequestTrace(Path(path).name, times - times[0], prompt[order], output[order],
                        cached=cached[order] if has_cache else None)


# one request: (arrival s, prompt, output, cached, whether a cached value was given)
_Record = tuple[float, int, int, int, bool]


def _csv_records(path: str | Path, field: str, text: str) -> list[_Record]:
    rows = _rows(text)
    if not rows or _is_number(rows[0][1][0]):
        raise InvalidData(f"{path}:1: a request trace needs a header naming the arrival "
                          f"({', '.join(ARRIVAL_COLUMNS)}), input and output columns")
    header_line, header = rows.pop(0)
    cols = [_column(path, header_line, header, names, what) for names, what in
            ((ARRIVAL_COLUMNS, "arrival-time"), (PROMPT_COLUMNS, "input-length"), (OUTPUT_COLUMNS, "output-length"))]
    cached_col = _optional_column(header, CACHED_COLUMNS)
    scale = 1e-3 if header[cols[0]].strip().lower() in MS_COLUMNS else 1.0
    if not rows:
        raise InvalidData(f"{path}: the trace has a header but no requests")
    check_at_most(len(rows), MAX_SIMULATED_REQUESTS, field, f"requests in {path}")
    records = []
    for line, row in rows:
        prompt = _positive_int(path, line, row, cols[1], "input token count")
        cells = {"arrival": row[cols[0]] if cols[0] < len(row) else "",
                 "output": row[cols[2]] if cols[2] < len(row) else "",
                 "cached": row[cached_col] if cached_col is not None and cached_col < len(row) else None}
        records.append(_record(path, line, cells, prompt, scale))
    return records


def _json_records(path: str | Path, field: str, text: str) -> list[_Record]:
    import json

    records: list[_Record] = []
    seen: set = set()  # prefix blocks of earlier requests (Mooncake hash_ids)
    lines = [(i, raw) for i, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    check_at_most(len(lines), MAX_SIMULATED_REQUESTS, field, f"requests in {path}")
    for line, raw in lines:
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidData(f"{path}:{line}: not a JSON object ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InvalidData(f"{path}:{line}: expected a JSON object per line")
        keys = {str(k).lower(): v for k, v in obj.items()}
        arrival_key = _key(path, line, keys, ARRIVAL_COLUMNS, "arrival-time")
        prompt_key = _key(path, line, keys, PROMPT_COLUMNS + ("input_length",), "input-length")
        output_key = _key(path, line, keys, OUTPUT_COLUMNS + ("output_length",), "output-length")
        prompt = _positive_int(path, line, [str(keys[prompt_key])], 0, "input token count")
        cached = next((keys[k] for k in CACHED_COLUMNS if k in keys), None)
        mooncake = isinstance(keys.get("hash_ids"), list)
        if cached is None and mooncake:
            blocks = keys["hash_ids"]
            if not all(isinstance(h, (int, str)) and not isinstance(h, bool) for h in blocks):
                raise InvalidData(f"{path}:{line}: expected hash_ids, a list of prefix-block ids (integers)")
            hits = next((i for i, h in enumerate(blocks) if h not in seen), len(blocks))
            cached = min(hits * MOONCAKE_BLOCK_TOKENS, prompt - 1)
            seen.update(blocks)
        scale = 1e-3 if arrival_key in MS_COLUMNS or (mooncake and arrival_key == "timestamp") else 1.0
        cells = {"arrival": str(keys[arrival_key]), "output": str(keys[output_key]),
                 "cached": None if cached is None else str(cached)}
        records.append(_record(path, line, cells, prompt, scale))
    return records


def _key(path: str | Path, line: int, keys: dict, names: tuple[str, ...], what: str) -> str:
    key = next((n for n in names if n in keys), None)
    if key is None:
        raise InvalidData(f"{path}:{line}: no {what} key in {sorted(keys)}; name it one of {', '.join(names)}")
    return key


def _record(path: str | Path, line: int, cells: dict, prompt: int, scale: float) -> _Record:
    """One request from its cells: arrival (scaled to seconds), output >= 1, 0 <= cached < prompt."""
    arrival = _time(path, line, [cells["arrival"]], 0) * (scale if _is_number(cells["arrival"]) else 1.0)
    output = _positive_int(path, line, [cells["output"]], 0, "output token count")
    if cells["cached"] in (None, ""):
        return arrival, prompt, output, 0, False
    try:
        cached = float(cells["cached"])
    except ValueError:
        cached = float("nan")
    if not (0 <= cached < prompt and cached == int(cached)):
        raise InvalidData(f"{path}:{line}: expected cached tokens, a whole number from 0 to the input token count "
                          f"minus 1 ({prompt - 1}), got '{cells['cached']}'")
    return arrival, prompt, output, int(cached), True


# -- reading ----------------------------------------------------------------------------------------
def _read_text(path: str | Path, field: str) -> str:
    if not str(path).strip():
        raise InvalidArgument(f"{field} '{path}': give a trace file", field=field)
    path = Path(path)
    try:
        return read_limited(path, MAX_DATA_FILE_BYTES, "trace file").decode("utf-8")
    except NotFound:
        raise NotFound(f"{field} {path}: file not found", field=field) from None
    except UnicodeDecodeError:
        raise InvalidData(f"{path}: cannot read trace (not UTF-8 text)") from None


def _read_rows(path: str | Path, field: str) -> list[tuple[int, list[str]]]:
    return _rows(_read_text(path, field))


def _rows(text: str) -> list[tuple[int, list[str]]]:
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
    if not (1 <= value < math.inf and value == int(value)):
        raise InvalidData(f"{path}:{line}: expected a positive integer {what}, got '{cell}'")
    if value > MAX_REQUEST_TOKENS:
        raise InvalidData(f"{path}:{line}: {what} {cell} is above the bound of {MAX_REQUEST_TOKENS:,} "
                          "(README, Limits)")
    return int(value)


def _time(path: str | Path, line: int, row: list[str], col: int) -> float:
    cell = row[col] if col < len(row) else ""
    try:
        value = float(cell)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise InvalidData(f"{path}:{line}: expected a finite arrival time in seconds, got '{cell}'")
        return value
    try:
        return datetime.fromisoformat(cell).timestamp()
    except ValueError:
        raise InvalidData(f"{path}:{line}: expected an arrival time in seconds or a date-time, got '{cell}'") from None
