"""``infocam mi`` (I(X;Y) of a data file) and ``infocam reproduce mi`` (Table 2)."""

from __future__ import annotations

import argparse
import os

from infocam.cli._args import _THREADS_HELP, _int_list, _set_threads
from infocam.mi.estimate import SOFTMAX_KINDS
from infocam.mi.estimator import BIAS_CORRECTIONS, DEFAULT_CV


def _add_bias_correction(p: argparse.ArgumentParser, default: str, help: str) -> None:
    """``--bias-correction``: the estimator's choices, "none" for ``bias_correction=None``."""
    choices = tuple("none" if b is None else b for b in BIAS_CORRECTIONS)
    p.add_argument("--bias-correction", choices=choices, default=default, help=help)


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
    p.add_argument("--softmax", choices=SOFTMAX_KINDS, default="pc")
    p.add_argument(
        "--cv",
        type=int,
        default=DEFAULT_CV,
        help=f"cross-fitting folds (default {DEFAULT_CV}, as ClassifierMIEstimator); "
        "0 = one 20%% split",
    )
    p.add_argument(
        "--hidden",
        type=_int_list,
        default=(100, 100, 100),
        help="hidden layer widths, e.g. 100,100,100 (empty: linear)",
    )
    p.add_argument("--max-epochs", type=int, default=200)
    _add_bias_correction(
        p,
        "none",
        "learning_curve: extrapolate to infinite training data (no longer a lower bound; the "
        "plain value is printed too). Default none",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="e.g. cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help=_THREADS_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_mi)


def _run_mi(args: argparse.Namespace) -> int:
    import json

    from infocam.experiments.mi_file import format_report, measure_file

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
        bias_correction=None if args.bias_correction == "none" else args.bias_correction,
    )
    # allow_nan=False: never bare NaN (invalid JSON); the estimate is checked finite.
    print(json.dumps(result, indent=2, allow_nan=False) if args.json else format_report(result))
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
    p.add_argument("--max-epochs", type=int, default=5, help="one-cycle epochs (default 5)")
    _add_bias_correction(
        p,
        "learning_curve",
        "learning_curve (default): extrapolate the held-out estimate to infinite training "
        "data; none: the plain held-out estimate (a lower bound)",
    )
    p.add_argument("--truth-samples", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help=_THREADS_HELP)
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes, one fit each at a time (default: the CPU cores this "
        "process may use, at most 8; 1 on a GPU); the numbers do not depend on it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_reproduce_mi)


def _default_jobs(jobs: int | None, device: str | None) -> int:
    """``--jobs``: as given (checked), else one per usable CPU core up to 8; 1 on a GPU."""
    if jobs is not None:
        if jobs < 1:
            raise ValueError(f"--jobs must be a positive integer; got {jobs}")
        return jobs
    if device is not None and not str(device).startswith("cpu"):
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))  # fmt: skip


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
        bias_correction=None if args.bias_correction == "none" else args.bias_correction,
        jobs=_default_jobs(args.jobs, args.device),
    )
    print(mi_table.format_table(res))
    print(mi_table.summary(res))
    print(f"wrote {args.out}/results.json, table.md, mi_table.png")
    return 0
