"""A catalog of shipped YAML records (profiles, model specs, ...) looked up by name, alias or path.

Each record is a pydantic model with ``name`` and ``aliases``; its file is ``<name>.yaml`` in one
shipped data folder. The shipped set is loaded once and cached; explicit paths are loaded each call.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from ampersim.core.errors import InvalidData, not_found
from ampersim.core.yamlio import load_model

_YAML_SUFFIXES = (".yaml", ".yml")


R = TypeVar("R", bound=BaseModel)  # a model with ``name: str`` and ``aliases: list[str]``


def looks_like_path(value: str | Path) -> bool:
    """True if ``value`` names a file rather than a catalog entry (a Path, a YAML suffix or a separator)."""
    if isinstance(value, Path):
        return True
    return value.lower().endswith(_YAML_SUFFIXES) or "/" in value or "\\" in value


class Catalog(Generic[R]):
    """Records of type ``model`` stored as ``<directory>/<name>.yaml``; ``kind`` names them in errors."""

    def __init__(self, kind: str, directory: Path, model: type[R]) -> None:
        self.kind = kind
        self.directory = directory
        self.model = model

    @cached_property
    def _records(self) -> dict[str, R]:
        records: dict[str, R] = {}
        for path in sorted(self.directory.glob("*.yaml")):
            record = load_model(path, self.model)
            if record.name != path.stem:  # type: ignore[attr-defined]
                raise InvalidData(f"{path}: field 'name': '{record.name}' must match the file name "  # type: ignore[attr-defined]
                                  f"'{path.stem}'")
            records[path.stem] = record
        return records

    @cached_property
    def _index(self) -> dict[str, str]:
        """Lower-case name or alias -> record name."""
        index: dict[str, str] = {}
        for name, record in self._records.items():
            for key in (name, *record.aliases):  # type: ignore[attr-defined]
                key = key.lower()
                if key in index and index[key] != name:
                    raise InvalidData(f"{self.directory / (name + '.yaml')}: field 'aliases': "
                                      f"'{key}' is already used by {self.kind} '{index[key]}'")
                index[key] = name
        return index

    def names(self) -> list[str]:
        """Names and aliases of the shipped records."""
        return sorted(self._index)

    def all(self) -> list[R]:
        """All shipped records, sorted by name."""
        return [self._records[name] for name in sorted(self._records)]

    def file_of(self, name: str) -> Path | None:
        """The file of the shipped record named (or aliased) ``name``, None if there is none."""
        key = name.strip().lower()
        return self.directory / f"{self._index[key]}.yaml" if key in self._index else None

    def load(self, name_or_path: str | Path) -> R:
        """Shipped record by name or alias (case-insensitive), or the YAML file at a path."""
        if looks_like_path(name_or_path):
            return load_model(Path(name_or_path), self.model)
        key = str(name_or_path).strip().lower()
        if key not in self._index:
            raise not_found(self.kind, str(name_or_path), self.names())
        return self._records[self._index[key]]
