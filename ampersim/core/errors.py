"""Error hierarchy: every user-facing failure is an AmpersimError with a one-line message.

The CLI prints ``error: <message>`` on stderr and exits with status 2; messages name the file,
field or argument at fault and say what is allowed. The library never names command-line flags:
an error about an input value carries ``field`` (the parameter or schema field name) and, where it
reads naturally, starts with that name (``"tp 3 does not divide ..."``); the CLI puts the flag that
sets the field in its place, or in front of the message (see ``ampersim.cli.error_line``).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class AmpersimError(Exception):
    """Base class for errors caused by user input or the environment (not bugs)."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(" ".join(str(message).split()))
        self.field = field  # the input field at fault, for the CLI to name its flag


class InvalidArgument(AmpersimError, ValueError):
    """A function or CLI argument has a value outside what is allowed."""


class NotFound(AmpersimError, LookupError):
    """A named profile, model, workload, layer or file does not exist."""


class InvalidData(AmpersimError, ValueError):
    """A YAML/JSON/measurement file is malformed or violates its schema."""


class MissingDependency(AmpersimError, ImportError):
    """An optional dependency (torch, transformers, a model wheel, a GPU) is not available."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean: a, b?)' for close matches of ``name`` in ``choices``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


def not_found(kind: str, name: str, choices: Iterable[str], *, field: str | None = None) -> NotFound:
    """Build a NotFound error listing close names and all available ones (``field``: the input at fault)."""
    choices = sorted(choices)
    return NotFound(
        f"unknown {kind} '{name}'{did_you_mean(name, choices)}; available: {', '.join(choices)}", field=field
    )
