"""Rendering of results at the CLI edge: aligned text tables, CSV, and single-object JSON."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("table", "json", "csv")


def format_cell(value: Any) -> str:
    """Human formatting: floats with 4 significant digits, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 headers: Mapping[str, str] | None = None) -> str:
    """Aligned plain-text table; numbers right-aligned, text left-aligned."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    headers = dict(headers or {})
    titles = [headers.get(c, c) for c in columns]
    cells = [[format_cell(r.get(c)) for c in columns] for r in rows]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]
    widths = [max(len(t), *(len(row[i]) for row in cells)) for i, t in enumerate(titles)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(titles), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def render_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    columns = list(columns or (rows[0].keys() if rows else []))
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(obj: Any) -> str:
    """One JSON document; NaN/inf become null so the output is strict JSON."""
    return json.dumps(_clean(obj), indent=2, sort_keys=False)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def emit(text: str) -> None:
    """Write a rendered result to stdout (with a trailing newline)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def add_format_argument(parser: Any, default: str = "table") -> None:
    parser.add_argument("--format", choices=FORMATS, default=default,
                        help="table (default): human-readable; json: one object on stdout; csv: rows")
