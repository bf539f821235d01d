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


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}"
        ) from None


# Small MLPs gain little from intra-op threads and, on a busy machine, lose a lot to them
# (measured: 0.2 s -> 8 s for the same small fit with 2 threads on a loaded 2-core box).
_THREADS_HELP = "torch CPU threads (default 1: small MLPs gain little from more)"


def _set_threads(n: int) -> None:
    import torch

    if n < 1:
        raise ValueError(f"--threads must be a positive integer; got {n}")
    torch.set_num_threads(n)


def _add_mi(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mi",
        help="how much do my features tell about the label? I(X;Y) with an error bar",
        description="Estimate I(X;Y) between feature columns and an integer label column of a "
        "CSV (header row) or NPZ file with a classifier's held-out point-wise MI.",
    )
    p.add_argument("data", metavar="DATA", help="a .csv/.tsv (with header) or .npz file")
    p.add_argument("--label", required=True, help="label column (CSV) or array (NPZ)")
    p.add_argument(
        "--features",
        type=lambda s: s.split(","),
        default=None,
        help="comma-separated feature columns/arrays (default: all others)",
    )
    p.add_argument("--softmax", choices=("pc", "softmax"), default="pc")
    p.add_argument("--cv", type=int, default=5, help="cross-fitting folds; 0 = one 20%% split")
    p.add_argument(
        "--hidden",
        type=_int_list,
        default=(100, 100, 100),
        help="hidden layer widths, e.g. 100,100,100 (empty: linear)",
    )
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="e.g. cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help=_THREADS_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_mi)


def _run_mi(args: argparse.Namespace) -> int:
    import json

    from infocam._tabular import format_report, measure_file

    _set_threads(args.threads)
    result = measure_file(
        args.data,
        args.label,
        features=args.features,
        softmax=args.softmax,
        cv=args.cv or None,
        hidden=args.hidden,
        max_epochs=args.max_epochs,
        seed=args.seed,
        device=args.device,
        progress=not (args.quiet or args.json),
    )
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def _add_reproduce_mi(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mi",
        help="Table 2: MI of Gaussian mixtures, estimated by softmax and PC-softmax",
        description="Reproduce Table 2 (balanced and imbalanced 5-class Gaussian mixtures).",
    )
    p.add_argument("--out", default="results/mi", help="output folder (default: results/mi)")
    p.add_argument("--dims", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="balanced samples per class (paper: 12000); imbalanced scaled alike",
    )
    p.add_argument("--cv", type=int, default=5, help="cross-fitting folds (default 5)")
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--truth-samples", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help=_THREADS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_reproduce_mi)


def _run_reproduce_mi(args: argparse.Namespace) -> int:
    from infocam.experiments import mi_table

    _set_threads(args.threads)
    res = mi_table.run(
        args.out,
        dims=args.dims,
        samples_per_class=args.samples_per_class,
        cv=args.cv,
        max_epochs=args.max_epochs,
        truth_samples=args.truth_samples,
        seed=args.seed,
        quiet=args.quiet,
        device=args.device,
    )
    print(mi_table.format_table(res))
    print(mi_table.summary(res))
    print(f"wrote {args.out}/results.json, table.md, mi_table.png")
    return 0


# Top-level subcommands, in the order `infocam --help` lists them.
COMMANDS: list[CommandAdder] = [_add_reproduce, _add_mi]
# `infocam reproduce <table>` subcommands.
REPRODUCTIONS: list[CommandAdder] = [_add_reproduce_mi]


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
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("infocam: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as exc:
        return _fail(str(exc))
    except OSError as exc:  # FileNotFoundError, DatasetNotFoundError, CorruptImageError, ...
        if exc.filename and exc.strerror:
            return _fail(f"{exc.filename}: {exc.strerror}")
        return _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
