"""Command-line entry point: parse arguments, call the library, render. No logic lives here.

Each subcommand is a module in this package with ``register(subparsers)`` which adds its parser
and sets ``run=<function(args) -> int>``. User errors print one line ``error: ...`` and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except AmpersimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
