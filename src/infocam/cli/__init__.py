"""The ``infocam`` command. Thin: it parses arguments and calls the library.

A user's mistake (``ValueError``, ``TypeError``, a missing file) prints one line on stderr
and exits with status 2; no traceback. Set ``INFOCAM_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from infocam import __version__
from infocam.cli._args import one_line_warnings
from infocam.cli.localize import _add_localize
from infocam.cli.mi import _add_mi, _add_reproduce_mi
from infocam.cli.pc_softmax import _add_pc_softmax
from infocam.cli.wsol import _add_evaluate, _add_reproduce_wsol, _add_train

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Each entry adds one subcommand to the ``infocam`` parser: fn(subparsers) -> None.
# The parser it adds sets ``func`` (args -> int exit status) with ``set_defaults``.
CommandAdder = Callable[[argparse._SubParsersAction], None]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce a table of the paper, printing its numbers beside ours",
        description="Reproduce a table of the paper. Each writes results.json, table.md and "
        "a PNG figure to --out.",
    )
    rsub = p.add_subparsers(dest="table", metavar="TABLE", parser_class=_Parser)
    for add in REPRODUCTIONS:
        add(rsub)
    p.set_defaults(func=lambda args: _missing_subcommand(p))


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


# Top-level subcommands, in the order `infocam --help` lists them.
COMMANDS: list[CommandAdder] = [
    _add_mi,
    _add_localize,
    _add_train,
    _add_evaluate,
    _add_reproduce,
]
# `infocam reproduce <table>` subcommands.
REPRODUCTIONS: list[CommandAdder] = [_add_reproduce_mi, _add_pc_softmax, _add_reproduce_wsol]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="infocam",
        description="A softmax classifier is a mutual-information estimator: measure I(X;Y) "
        "with an error bar, train fair to rare classes with PC-softmax, and localise objects "
        "from class labels with infoCAM.",
    )
    parser.add_argument("--version", action="version", version=f"infocam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    print(f"infocam: error: {first_line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``infocam`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    if os.environ.get("INFOCAM_DEBUG"):
        return int(func(args) or 0)
    try:
        with one_line_warnings():  # e.g. a checkpoint from before checksums: loads unverified
            return int(func(args) or 0)
    except KeyboardInterrupt as exc:  # also TrainingInterrupted, whose message names the checkpoint
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "interrupted"
        if getattr(exc, "checkpoint", None) is not None:  # TrainingInterrupted, saved
            detail += " (here: rerun the command with --resume)"
        print(f"infocam: {detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as exc:
        return _fail(str(exc))
    except MemoryError as exc:
        return _fail(f"out of memory: {exc}", 1)
    except RuntimeError as exc:
        # torch.OutOfMemoryError (training's message names the batch size to lower)
        if type(exc).__name__.endswith("OutOfMemoryError"):
            return _fail(str(exc), 1)
        raise
    except OSError as exc:  # FileNotFoundError, DatasetNotFoundError, CorruptImageError, ...
        if exc.filename and exc.strerror:
            return _fail(f"{exc.filename}: {exc.strerror}")
        return _fail(str(exc))
