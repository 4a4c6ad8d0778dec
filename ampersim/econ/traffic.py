"""Request traffic for capacity planning: Poisson arrivals and prompt-length distributions.

A prompt-length distribution (field ``prompt_dist``) is written as text:
``fixed:4096``, ``lognormal:MEAN,SIGMA[,MAX]`` (MEAN is the arithmetic mean in tokens, SIGMA the
standard deviation of log-length, MAX an optional cap) or ``trace:FILE`` (one prompt length per
line, or ``tokens,count`` histogram rows, or a CSV with a header naming the token column).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound

DIST_FORMS = "fixed:TOKENS, lognormal:MEAN,SIGMA[,MAX] or trace:FILE"
# Header names accepted for the prompt-length column of a CSV trace (Azure LLM inference traces
# call it ContextTokens) and for an optional histogram count column.
TOKEN_COLUMNS = ("prompt_tokens", "input_tokens", "contexttokens", "context_tokens", "tokens")
COUNT_COLUMNS = ("count", "requests", "n")


@dataclass(frozen=True)
class PromptDist:
    """Prompt lengths (tokens) drawn i.i.d. from a fixed value, a lognormal or an empirical table."""

    kind: str
    description: str
    lengths: np.ndarray = field(repr=False)  # support (fixed / empirical) or empty (lognormal)
    weights: np.ndarray = field(repr=False)
    log_mu: float = 0.0
    log_sigma: float = 0.0
    cap: int | None = None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` prompt lengths (int64, >= 1)."""
        if self.kind == "lognormal":
            draw = np.rint(rng.lognormal(self.log_mu, self.log_sigma, n))
            hi = self.cap if self.cap is not None else np.inf
            return np.clip(draw, 1, hi).astype(np.int64)
        if len(self.lengths) == 1:
            return np.full(n, self.lengths[0], dtype=np.int64)
        return rng.choice(self.lengths, size=n, p=self.weights).astype(np.int64)

    def max_tokens(self) -> int:
        """Longest prompt this distribution produces (lognormal without a cap: its 1 - 1e-9 quantile)."""
        if self.kind == "lognormal":
            tail = math.ceil(math.exp(self.log_mu + 6.0 * self.log_sigma))
            return min(tail, self.cap) if self.cap is not None else max(tail, 1)
        return int(self.lengths.max())

    def mean(self) -> float:
        """Mean prompt length in tokens (before rounding and capping for lognormal)."""
        if self.kind == "lognormal":
            return math.exp(self.log_mu + self.log_sigma**2 / 2)
        return float(np.dot(self.lengths, self.weights))


def fixed(tokens: int) -> PromptDist:
    if tokens < 1:
        raise InvalidArgument(f"prompt_dist fixed:{tokens}: tokens must be >= 1", field="prompt_dist")
    return PromptDist("fixed", f"fixed {tokens:,} tokens", np.array([tokens], dtype=np.int64), np.ones(1))


def lognormal(mean_tokens: float, sigma: float, cap: int | None = None) -> PromptDist:
    """Lognormal lengths with arithmetic mean ``mean_tokens`` and log-space std ``sigma``."""
    if not mean_tokens >= 1 or not sigma >= 0 or (cap is not None and cap < 1):
        raise InvalidArgument(
            f"prompt_dist lognormal:{mean_tokens},{sigma}{'' if cap is None else f',{cap}'}: "
            "need MEAN >= 1 token, SIGMA >= 0 and MAX >= 1",
            field="prompt_dist",
        )
    mu = math.log(mean_tokens) - sigma**2 / 2
    capped = "" if cap is None else f", capped at {cap}"
    return PromptDist(
        "lognormal",
        f"lognormal, mean {mean_tokens:g} tokens, sigma {sigma:g}{capped}",
        np.zeros(0, dtype=np.int64),
        np.zeros(0),
        mu,
        sigma,
        cap,
    )


def empirical(lengths: np.ndarray, counts: np.ndarray, description: str) -> PromptDist:
    """Distribution over observed ``lengths`` with frequencies ``counts``."""
    values, inverse = np.unique(np.asarray(lengths, dtype=np.int64), return_inverse=True)
    totals = np.bincount(inverse, weights=np.asarray(counts, dtype=float))
    return PromptDist("trace", description, values, totals / totals.sum())


def read_trace(path: str | Path) -> PromptDist:
    """Read prompt lengths from a text/CSV trace; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"prompt_dist trace:{path}: file not found", field="prompt_dist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise InvalidData(f"{path}: cannot read trace ({reason})") from None
    rows = [(i, row) for i, row in enumerate(_split_rows(text), start=1) if row]
    if not rows:
        raise InvalidData(f"{path}: trace has no prompt lengths (one token count per line, or tokens,count)")
    token_col, count_col = 0, 1
    if not _is_number(rows[0][1][0]):
        header_line, header = rows.pop(0)
        token_col, count_col = _header_columns(path, header_line, header)
    lengths, counts = [], []
    for line, row in rows:
        lengths.append(_positive_int(path, line, row, token_col, "prompt token count"))
        has_count = count_col is not None and count_col < len(row) and row[count_col] != ""
        counts.append(_positive_int(path, line, row, count_col, "count") if has_count else 1)
    total = sum(counts)
    return empirical(
        np.array(lengths),
        np.array(counts),
        f"trace {path.name}: {total} requests, {len(set(lengths))} distinct lengths",
    )


def parse_prompt_dist(text: str) -> PromptDist:
    """Parse ``fixed:N``, ``lognormal:MEAN,SIGMA[,MAX]`` or ``trace:FILE``."""
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    try:
        if kind == "fixed":
            return fixed(int(arg))
        if kind == "lognormal":
            parts = [p.strip() for p in arg.split(",")]
            if len(parts) not in (2, 3):
                raise ValueError
            cap = int(parts[2]) if len(parts) == 3 else None
            return lognormal(float(parts[0]), float(parts[1]), cap)
    except ValueError:
        raise InvalidArgument(f"prompt_dist '{text}': expected {DIST_FORMS}", field="prompt_dist") from None
    if kind == "trace" and arg:
        return read_trace(arg)
    raise InvalidArgument(f"prompt_dist '{text}': expected {DIST_FORMS}", field="prompt_dist")


def poisson_arrivals(rng: np.random.Generator, rate_per_s: float, duration_s: float) -> np.ndarray:
    """Sorted arrival times (s) of a Poisson process of ``rate_per_s`` over [0, duration_s)."""
    if not (rate_per_s > 0 and duration_s > 0):
        raise InvalidArgument(f"rate {rate_per_s:g}/s over {duration_s:g} s: both must be > 0")
    expected = rate_per_s * duration_s
    n_draw = int(expected + 8 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate_per_s, n_draw))
    while times[-1] < duration_s:  # rare: extend until the window is covered
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate_per_s, n_draw))])
    return times[times < duration_s]


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


def _header_columns(path: Path, line: int, header: list[str]) -> tuple[int, int | None]:
    names = [h.strip().lower() for h in header]
    token_col = next((names.index(n) for n in TOKEN_COLUMNS if n in names), None)
    if token_col is None:
        raise InvalidData(
            f"{path}:{line}: no prompt-length column in header {header}; "
            f"name it one of {', '.join(TOKEN_COLUMNS)} (or omit the header)"
        )
    count_col = next((names.index(n) for n in COUNT_COLUMNS if n in names), None)
    return token_col, count_col


def _positive_int(path: Path, line: int, row: list[str], col: int, what: str) -> int:
    cell = row[col] if col < len(row) else ""
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value == int(value)):
        raise InvalidData(f"{path}:{line}: expected a positive integer {what}, got '{cell}'")
    return int(value)
