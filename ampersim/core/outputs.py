"""Output paths, checked before any work starts (the writing itself: core.yamlio.write_*_atomic).

``check_output`` is what every command that writes a file calls first, so that a typo in an output
path costs nothing: no minutes of work followed by a traceback, no folder tree created by accident.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ampersim.core.errors import InvalidArgument, NotFound

SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))
"""Kernel and device file systems: writing a result there is never what was meant."""


def check_output(path: str | Path, field: str, *, suffixes: Sequence[str] | None = None,
                 parents: bool = False) -> Path:
    """``path`` as a Path if a result can be written there; else InvalidArgument/NotFound naming ``field``.

    Refused: an empty path, a path under /proc, /sys or /dev, an existing directory or other
    non-regular file, a suffix outside ``suffixes`` (lower-case, with the dot), a parent that is
    missing (unless ``parents``: then the nearest existing ancestor must be writable) or not a
    directory, and a folder where no file can be created (read-only, no permission).
    """
    text = str(path)
    if not text.strip():
        raise InvalidArgument(f"{field}: give a file name", field=field)
    out = Path(text)
    resolved = out.resolve()
    if any(resolved == d or d in resolved.parents for d in SYSTEM_DIRS):
        raise InvalidArgument(f"{field} {out}: {resolved.parts[1]} is a system folder, not a place for output files",
                              field=field)
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise InvalidArgument(f"{field} {out}: the file name must end in {', '.join(suffixes)}", field=field)
    if resolved.is_dir():
        raise InvalidArgument(f"{field} {out}: is a directory; give a file name", field=field)
    if resolved.exists() and not resolved.is_file():
        raise InvalidArgument(f"{field} {out}: exists and is not a regular file", field=field)
    folder = resolved.parent
    if not folder.exists():
        if not parents:
            raise NotFound(f"{field} {out}: folder {out.parent} does not exist; create it first", field=field)
        while not folder.exists():
            folder = folder.parent
    if not folder.is_dir():
        raise InvalidArgument(f"{field} {out}: {folder} is not a folder", field=field)
    try:  # the one test that holds for root, read-only mounts and network file systems alike
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ampersim-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidArgument(f"{field} {out}: cannot write in {folder} ({exc.strerror})", field=field) from None
    return out
