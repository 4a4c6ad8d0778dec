"""Compact text forms of values that several outputs show (CLI tables, reports)."""
from __future__ import annotations

from collections.abc import Iterable


def layer_ranges(layers: Iterable[int]) -> str:
    """Sorted layer indices as ranges: [0, 1, 2, 5, 7, 8] -> '0-2,5,7-8'; [] -> ''."""
    parts: list[str] = []
    start = prev = None
    for i in [*layers, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ",".join(parts)
