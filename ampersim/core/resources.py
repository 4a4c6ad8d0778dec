"""Locate the data shipped with ampersim (hardware profiles, workloads, evaluation data).

In a source checkout or editable install the folders sit at the repository root; in a wheel
they are packaged under ``ampersim/_data``. Never relative to the working directory.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ampersim/


def repository_root() -> Path:
    """The folder that holds the ampersim package: the repository root in a source checkout or
    editable install (where validation/ and docs/ live), site-packages in a wheel install."""
    return _PACKAGE_DIR.parent


def data_dir(name: str) -> Path:
    """Return the directory of shipped data ``name`` ("hardware_profiles", "workloads", ...)."""
    for candidate in (_PACKAGE_DIR / "_data" / name, repository_root() / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ampersim data folder '{name}' is missing from the installation")


def package_data(*parts: str) -> Path:
    """Path to a file inside the ampersim package's own data folder (ampersim/data)."""
    return _PACKAGE_DIR.joinpath("data", *parts)
