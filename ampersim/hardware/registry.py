"""Shipped hardware profiles (hardware_profiles/*.yaml) by name, alias or YAML path."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ampersim.catalog import Catalog
from ampersim.hardware.profile import HardwareProfile
from ampersim.resources import data_dir


@lru_cache(maxsize=1)
def _catalog() -> Catalog[HardwareProfile]:
    return Catalog("hardware profile", data_dir("hardware_profiles"), HardwareProfile)


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """Profile by name or alias ("a100" -> a100-sxm), or from a YAML file path.

    Raises NotFound (with close names) for an unknown name, InvalidData (file:line: field) for a
    malformed or invalid file.
    """
    return _catalog().load(name_or_path)


def list_profiles() -> list[HardwareProfile]:
    """All shipped profiles, sorted by name."""
    return _catalog().all()


def profile_names() -> list[str]:
    """Names and aliases of the shipped profiles (for CLI help and suggestions)."""
    return _catalog().names()
