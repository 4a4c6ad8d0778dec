"""Command-line entry point: parse arguments, call the library, render. No logic lives here.

Each subcommand is a module in this package with ``register(subparsers)`` which adds its parser
and sets ``run=<function(args) -> int>``. User errors print one line ``error: ...`` and exit 2.
Every parser refuses a flag given twice unless it is meant to repeat (``action="append"``), and
every ``type=float`` argument refuses ``inf`` and ``nan``.
"""
from __future__ import annotations

import argparse
import importlib
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

from ampersim.core.deps import is_optional, missing
from ampersim.core.errors import AmpersimError, MissingDependency

# subcommand name -> module (imported when the parser is built; heavy imports stay inside run()).
COMMANDS: dict[str, str] = {
    "profiles": "ampersim.cli.profiles",
    "predict": "ampersim.cli.predict",
    "coverage": "ampersim.cli.coverage",
    "prune": "ampersim.cli.prune",
    "plan": "ampersim.cli.plan",
    "roi": "ampersim.cli.roi",
    "report": "ampersim.cli.report",
    "measure": "ampersim.cli.measure",
    "validate": "ampersim.cli.validate",
    "calibrate": "ampersim.cli.calibrate",
}


def finite_float(text: str) -> float:
    """A float argument: any finite number (``inf`` and ``nan`` are never a length, rate, price or time)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


_GIVEN = "_flags_given"  # namespace attribute that records the single-value flags seen in one parse


class _StoreOnce(argparse._StoreAction):
    """``store`` that refuses a second value: ``--profile a --profile b`` would silently keep only b."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault(_GIVEN, set())
        if self.option_strings and self.dest in given:
            raise argparse.ArgumentError(self, "given more than once; give it once")
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr with exit status 2, whose single-value flags
    may be given once, and whose float arguments are finite."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("type") is float:
            kwargs["type"] = finite_float
        return super().add_argument(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        parsed.__dict__.pop(_GIVEN, None)
        return parsed, rest

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ampersim",
        description="What N:M activation sparsity in LLM prefill really buys on real hardware.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def map_fields(parser: argparse.ArgumentParser, **flags: str) -> None:
    """Declare the flags that set library fields whose names differ from the flags' dests
    (``map_fields(parser, prompt_tokens="--tokens")``); merges with mappings declared before."""
    parser.set_defaults(field_flags={**(parser.get_default("field_flags") or {}), **flags})


def flag_for(parser: argparse.ArgumentParser, args: argparse.Namespace, field: str | None) -> str | None:
    """The command-line flag that sets library field ``field`` in the command ``args`` ran, if any:
    the one declared with ``map_fields``, else the flag whose dest is ``field``."""
    if field is None:
        return None
    explicit = (getattr(args, "field_flags", None) or {}).get(field)
    if explicit:
        return explicit
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    command = sub.choices.get(args.command) if sub is not None else None
    for action in command._actions if command is not None else ():
        if action.dest == field and action.option_strings:
            return action.option_strings[0]
    return None


def error_line(exc: AmpersimError, flag: str | None) -> str:
    """``error: message`` naming the flag: a message that starts with the field's name gets the
    flag in its place (``tp 3 does not divide`` -> ``--tp 3 does not divide``); any other message
    gets ``flag: `` in front unless it already starts with the flag."""
    text = str(exc)
    if flag and exc.field and re.match(rf"{re.escape(exc.field)}(?![\w-])", text):
        text = flag + text[len(exc.field):]
    elif flag and not text.startswith(flag):
        text = f"{flag}: {text}"
    return f"error: {text}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except AmpersimError as exc:
        print(error_line(exc, flag_for(parser, args, exc.field)), file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:  # an optional dependency imported where no require() guards it
        name = (exc.name or "").split(".")[0]
        if not is_optional(name):
            raise
        print(f"error: {missing(name, f'ampersim {args.command}')}", file=sys.stderr)
        return MissingDependency.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
