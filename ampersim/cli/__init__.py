"""Command-line entry point: parse arguments, call the library, render. No logic lives here.

Each subcommand is a module in this package with ``register(subparsers)`` which adds its parser
and sets ``run=<function(args) -> int>``. User errors print one line ``error: ...`` and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from ampersim.core.errors import AmpersimError

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


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr with exit status 2."""

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
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
