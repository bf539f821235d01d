"""``infocam reproduce pc-softmax``: Table 3, softmax vs PC-softmax on imbalanced data."""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_pc_softmax(sub: argparse._SubParsersAction) -> None:
    from infocam.cli._args import add_training_arguments
    from infocam.experiments.pc_softmax import DATASETS

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
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
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

    from infocam.cli._args import config_from_args
    from infocam.experiments import pc_softmax
    from infocam.training.distributed import is_main_process

    defaults = pc_softmax.dataset_module(args.dataset).DEFAULTS
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1; got {args.seeds}")
    if args.resume not in (False, True):
        raise ValueError(
            "--resume takes no CHECKPOINT here: each training resumes from its "
            "own folder under --out/runs"
        )
    if args.dataset == "mnist" and args.weights is not None:
        raise ValueError("--weights applies to --dataset cub only")
    if args.dataset == "cub" and args.data_root is None:
        raise ValueError("--dataset cub needs --data-root (the CUB_200_2011 folder)")
    weights = args.weights or "IMAGENET1K_V1"
    threads = args.threads if args.threads is not None else (1 if args.dataset == "mnist" else None)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1; got {threads}")
        torch.set_num_threads(threads)
    out = args.out if args.out is not None else Path("results") / f"pc-softmax-{args.dataset}"
    unset = {k: v for k, v in defaults.items() if getattr(args, k, None) is None}
    config = config_from_args(args, **unset, out=out)
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
    if not is_main_process():
        return 0  # under torchrun, rank 0 reports
    print(pc_softmax.render_table(results))
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'per_class_accuracy.png'}")
    return 0
