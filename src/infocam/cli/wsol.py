"""Weakly supervised localisation: ``infocam train``, ``infocam evaluate`` and
``infocam reproduce wsol`` (Table 4)."""

from __future__ import annotations

import argparse

from infocam.cli import _args
from infocam.cli._args import _add_wsol_data_arguments, _add_wsol_eval_arguments, _check_device_arg


def _add_train(sub: argparse._SubParsersAction) -> None:
    from infocam.cli._args import add_training_arguments

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
    from infocam.cli._args import config_from_args
    from infocam.experiments.wsol import (
        WSOLRun,
        build_wsol_model,
        claim_wsol_run,
        load_wsol_data,
        train_wsol,
    )
    from infocam.training import seed_everything

    if args.out is None:
        raise ValueError("--out is required (the run folder)")
    _check_device_arg(args.device)  # before the data loads and OUT/wsol.json is written
    _args._require_data_root(args)
    config = config_from_args(args)
    sizes = {f"n_{split}": getattr(args, f"n_{split}") for split in ("train", "val", "test")}
    # Locked and checked (not empty unless --resume / --overwrite) before the data loads.
    with claim_wsol_run(config.out, resume=bool(config.resume), overwrite=config.overwrite):
        data = load_wsol_data(
            args.dataset, args.data_root, image_size=args.image_size, seed=args.seed, **sizes
        )
        seed_everything(args.seed)  # the initial weights depend on --seed only
        model = build_wsol_model(
            args.arch,
            data.num_classes,
            adl=args.adl,
            weights=args.weights,
            in_channels=data.in_channels,
        )
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
        ).save(config.out, resume=bool(config.resume))
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
        "split (--protocol selected, the default), or take the paper's fixed ones (--protocol "
        "paper), then score the test split: GT-known Loc, Top-1 Loc, Top-1/Top-5 Cls, "
        "MaxBoxAccV2, and PxAP when the test items carry masks (cluttered-digits does). Writes "
        "results.json, table.md and figure.png to --out (default RUN/eval; the paper protocol: "
        "RUN/eval-paper, or --out when it runs alone).",
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

    from infocam.experiments.wsol import evaluate_run, format_table, load_trained, paper_settings
    from infocam.experiments.wsol.protocol import EVAL_DIRS, eval_protocols
    from infocam.experiments.wsol_eval import WSOLEvalOptions
    from infocam.training import setup_distributed

    _check_device_arg(args.device)
    protos = eval_protocols(args.protocol)
    run, model = load_trained(args.run, args.checkpoint)
    methods = WSOLEvalOptions().methods
    fixed = paper_settings(run.dataset, run.arch, methods)[0] if "paper" in protos else None
    data = run.data(args.data_root)
    outs = {p: Path(args.run) / d for p, d in EVAL_DIRS.items()}
    if args.out:
        out = Path(args.out)
        outs = {"selected": out, "paper": out if protos == ("paper",) else Path(f"{out}-paper")}
    # under torchrun each process scores a shard; the counts are summed over processes
    ctx = setup_distributed(args.device)
    options = WSOLEvalOptions(
        regions=args.regions,
        thresholds=args.thresholds,
        region_padding=args.region_padding,
        least_likely=args.least_likely,
        normalize=args.normalize,
        batch_size=args.batch_size,
        device=ctx.device,
        workers=args.workers,
        quiet=args.quiet or not ctx.is_main,
    )
    label = run.arch + ("_adl" if run.adl else "")
    for proto in protos:
        settings = fixed if proto == "paper" else None
        result = evaluate_run(model, data, outs[proto], options, label=label, settings=settings)
        if not ctx.is_main:
            continue  # rank 0 reports
        row = {"model": run.arch, "adl": run.adl, **result}
        if len(protos) > 1:
            print(f"protocol {proto}:")
        # the paper's numbers belong beside the paper protocol only
        print(format_table([row], run.dataset if proto == "paper" else None))
        out = outs[proto]
        print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'figure.png'}")
    return 0


def _add_reproduce_wsol(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wsol",
        help="Table 4: CAM / infoCAM / infoCAM+ with and without ADL",
        description="Table 4's protocol: each backbone trained with softmax, with and without "
        "ADL; CAM, infoCAM and infoCAM+ boxes with region size and threshold chosen on the "
        "validation split (--protocol selected, the default) or fixed as the paper did "
        "(--protocol paper: threshold 0.2, CAM r = 1, infoCAM r = 5 / 4 on CUB for VGG / "
        "ResNet, 3 on Tiny-ImageNet; --protocol both prints both tables), scored on the test "
        "split. cluttered-digits runs here in about 15 minutes (quicker: --n-train 2000 "
        "--epochs 3); cub / tiny-imagenet need --data-root, ImageNet weights and a GPU, and "
        "print the paper's numbers beside the paper protocol's table.",
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
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the runs and results already in --out (default: a non-empty --out is "
        "refused)",
    )
    g.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default="results/wsol", help="output folder (default results/wsol)")
    p.set_defaults(func=_run_reproduce_wsol)


def _run_reproduce_wsol(args: argparse.Namespace) -> int:
    from infocam.experiments.wsol import PROTOCOLS, reproduce_wsol

    _check_device_arg(args.device)
    _args._require_data_root(args)
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
        least_likely=args.least_likely,
        normalize=args.normalize,
        protocol=args.protocol,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        quiet=args.quiet,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    return 0
