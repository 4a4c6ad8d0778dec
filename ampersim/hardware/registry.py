"""Hardware profiles by name, alias or YAML path.

Shipped profiles live in hardware_profiles/*.yaml; profiles written by `ampersim calibrate` and
committed with their measurements live in hardware_profiles/calibrated/*.yaml (status
``calibrated``, e.g. ``h200-calibrated``). Both load by name; the shipped set is listed by default.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ampersim.core.catalog import Catalog, looks_like_path
from ampersim.core.errors import not_found
from ampersim.core.resources import data_dir
from ampersim.hardware.profile import HardwareProfile

CALIBRATED_DIR = "calibrated"


@lru_cache(maxsize=1)
def _catalog() -> Catalog[HardwareProfile]:
    return Catalog("hardware profile", data_dir("hardware_profiles"), HardwareProfile)


@lru_cache(maxsize=1)
def _calibrated() -> Catalog[HardwareProfile]:
    return Catalog("calibrated hardware profile", data_dir("hardware_profiles") / CALIBRATED_DIR, HardwareProfile)


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """Profile by name or alias ("a100" -> a100-sxm; "h200-calibrated"), or from a YAML file path.

    Raises NotFound (with close names, shipped and calibrated) for an unknown name, InvalidData
    (file:line: field) for a malformed or invalid file.
    """
    if looks_like_path(name_or_path):
        return _catalog().load(name_or_path)
    key = str(name_or_path).strip().lower()
    for catalog in (_catalog(), _calibrated()):
        if key in catalog.names():
            return catalog.load(key)
    raise not_found("hardware profile", str(name_or_path), profile_names(include_calibrated=True))


def profile_file(name: str) -> Path | None:
    """The file of the shipped or calibrated profile named (or aliased) ``name``; None if none is."""
    return _catalog().file_of(name) or _calibrated().file_of(name)


def list_profiles(include_calibrated: bool = False) -> list[HardwareProfile]:
    """Shipped profiles sorted by name; then, if asked, the calibrated ones sorted by name."""
    return _catalog().all() + (_calibrated().all() if include_calibrated else [])


def profile_names(include_calibrated: bool = False) -> list[str]:
    """Names and aliases of the shipped (and, if asked, calibrated) profiles, for help and suggestions."""
    return sorted(_catalog().names() + (_calibrated().names() if include_calibrated else []))
