"""N:M sparsity patterns: keep N of every M consecutive elements along the reduction dimension."""
from __future__ import annotations

import re
from typing import Any

from pydantic import model_serializer, model_validator

from ampersim.core.errors import InvalidArgument
from ampersim.core.schema import Frozen
from ampersim.core.vocab import MAX_M

_PATTERN_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


class NMPattern(Frozen):
    """An N:M pattern (0 < n < m). Written and parsed as the string "n:m" (e.g. "8:16")."""

    n: int
    m: int

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return dict(zip(("n", "m"), _split(value)))
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return {"n": value[0], "m": value[1]}
        return value

    @model_validator(mode="after")
    def _check(self) -> NMPattern:
        _validate(self.n, self.m, f"{self.n}:{self.m}")
        return self

    @model_serializer
    def _to_string(self) -> str:
        return str(self)

    @classmethod
    def parse(cls, text: str | NMPattern) -> NMPattern:
        """Parse "n:m"; raise InvalidArgument naming the text and the rule on bad input."""
        if isinstance(text, NMPattern):
            return text
        n, m = _split(str(text))
        _validate(n, m, str(text))
        return cls(n=n, m=m)

    @property
    def density(self) -> float:
        """Fraction of elements kept, n/m."""
        return self.n / self.m

    @property
    def sparsity(self) -> float:
        """Fraction of elements zeroed, 1 - n/m."""
        return 1.0 - self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"

    def __hash__(self) -> int:
        return hash((self.n, self.m))


def _split(text: str) -> tuple[int, int]:
    match = _PATTERN_RE.match(text)
    if not match:
        raise InvalidArgument(
            f"invalid N:M pattern '{text}': expected two integers 'N:M' with 0 < N < M (e.g. 2:4, 8:16)",
            field="pattern")
    return int(match.group(1)), int(match.group(2))


def _validate(n: int, m: int, text: str) -> None:
    if not (0 < n < m <= MAX_M):
        raise InvalidArgument(f"invalid N:M pattern '{text}': need 0 < N < M <= {MAX_M} (e.g. 2:4, 8:16)",
                              field="pattern")
