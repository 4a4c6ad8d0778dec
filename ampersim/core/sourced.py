"""Numbers that carry their provenance: every constant in a profile or workload says where it came from."""
from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel, field_validator

from ampersim.core.limits import MAX_SOURCED_VALUE
from ampersim.core.schema import Frozen

_SOURCE_RE = re.compile(r"^(https?://\S+|(assumed|measured|datasheet|derived|config):\s*\S.*)", re.S)
_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")

SOURCE_RULE = (
    "a URL (https://...), 'datasheet: <document>', 'config: <url or file>', "
    "'derived: <how>', 'assumed: <why>' or 'measured: <file>'"
)


def is_source(text: str) -> bool:
    """True if ``text`` is a valid source (see SOURCE_RULE)."""
    return bool(_SOURCE_RE.match(text.strip()))


class Sourced(Frozen):
    """A number with its source; ``date`` (YYYY-MM[-DD]) is required where values age (prices)."""

    value: float
    source: str
    date: str | None = None

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if abs(value) > MAX_SOURCED_VALUE:
            raise ValueError(f"value must be at most {MAX_SOURCED_VALUE:g} in magnitude (core.limits); got {value:g}")
        return value

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        if not is_source(value):
            raise ValueError(f"source must be {SOURCE_RULE}; got '{value}'")
        return value.strip()

    @field_validator("date", mode="before")
    @classmethod
    def _check_date(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value)  # YAML turns 2026-02-15 into a date object
        if not _DATE_RE.match(text):
            raise ValueError(f"date must be YYYY-MM or YYYY-MM-DD; got '{value}'")
        return text

    @property
    def is_assumed(self) -> bool:
        return self.source.startswith("assumed:")

    @property
    def is_measured(self) -> bool:
        return self.source.startswith("measured:")


class PositiveSourced(Sourced):
    """A Sourced value that must be > 0."""

    @field_validator("value")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"value must be > 0; got {value}")
        return value


class NonNegativeSourced(Sourced):
    """A Sourced value that must be >= 0 (a time that may be zero, never negative)."""

    @field_validator("value")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if not value >= 0:
            raise ValueError(f"value must be >= 0; got {value}")
        return value


class FractionSourced(Sourced):
    """A Sourced value in (0, 1]."""

    @field_validator("value")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"value must be in (0, 1]; got {value}")
        return value


def sourced_numbers(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, float, str | None, str | None]]:
    """(field path, value, date, source) for every number in ``model``; source None if it has none."""
    for field, value in model:
        path = f"{prefix}{field}"
        if isinstance(value, Sourced):
            yield path, value.value, value.date, value.source
        elif isinstance(value, BaseModel):
            yield from sourced_numbers(value, path + ".")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, Sourced):
                    yield f"{path}.{key}", item.value, item.date, item.source
                elif isinstance(item, BaseModel):
                    yield from sourced_numbers(item, f"{path}.{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield path, value, None, None
