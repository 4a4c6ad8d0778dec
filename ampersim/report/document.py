"""The report as data: sections of paragraphs, figures and tables, rendered by html.py and markdown.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    name: str  # file stem when written next to a Markdown report
    png: bytes
    alt: str
    source: str = ""  # where its numbers come from, shown under it


@dataclass(frozen=True)
class Table:
    rows: list[dict[str, Any]]
    columns: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    caption: str = ""
    collapsed: bool = False  # long reference tables: folded in HTML
    source: str = ""  # where its numbers come from, shown under it

    def title(self, column: str) -> str:
        return self.headers.get(column, column)

    def numeric(self, column: str) -> bool:
        return all(isinstance(r.get(column), (int, float)) or r.get(column) is None for r in self.rows)


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    meta: list[tuple[str, str]]
    sections: list[Section]


def cell(value: Any) -> str:
    """Readable number formatting for report tables (thousands separators, 3-4 significant digits)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}" if abs(value) >= 1 else f"{value:.3g}"
    return str(value)
