"""``infocam localize``: CAM, infoCAM and infoCAM+ heat maps and boxes for image files."""

from __future__ import annotations

import argparse
import sys

from infocam.cam import METHODS
from infocam.cli._args import (
    _add_region_padding,
    _box_arg,
    _check_device_arg,
    _class_index,
    _fraction,
    _positive_int,
    one_line_warnings,
)


def _add_localize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "localize",
        help="heat maps and boxes (CAM, infoCAM, infoCAM+) for images",
        description="Localise the predicted (or --target) class in each IMAGE: writes "
        "<stem>_<method>.png (heat map, predicted box in green, --gt-box in red) and "
        "<stem>_grid.png (CAM | infoCAM | infoCAM+) to --out. Images sharing a stem get "
        "longer names (cat_png, a_cat_png); files of an earlier run are replaced only with "
        "--overwrite.",
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
    p.add_argument("--num-classes", type=_positive_int, help="default: from the weights file")
    p.add_argument("--method", default="infocam+", choices=METHODS)
    p.add_argument(
        "--region", type=_positive_int, default=1, help="side r of the region R (default 1)"
    )
    _add_region_padding(p)
    p.add_argument(
        "--threshold", type=_fraction, default=0.2, help="box threshold in [0, 1) (default 0.2)"
    )
    p.add_argument(
        "--image-size", type=_positive_int, default=224, help="side in pixels (at most 4096)"
    )
    p.add_argument("--target", type=_class_index, help="class to localise (default: top-1)")
    p.add_argument("--gt-box", type=_box_arg, help="x1,y1,x2,y2 in original image pixels")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files an earlier run wrote to --out (default: refuse)",
    )
    p.add_argument(
        "--summary",
        metavar="PNG",
        help="also write one figure of the images: image | CAM | infoCAM+ per row (the first "
        "100 images)",
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
    with one_line_warnings(always=True):  # e.g. PIL's DecompressionBombWarning, per image
        return _localize(args)


def _localize(args: argparse.Namespace) -> int:
    from infocam.experiments import localize
    from infocam.experiments.localize_inputs import check_image_size, check_localize_inputs
    from infocam.models.registry import load_classifier_with_input

    # Everything that can be checked is checked before the model loads: the device, the
    # image size, every image file (and --gt-box inside it), distinct output names, and no
    # earlier run's files replaced without --overwrite.
    _check_device_arg(args.device)
    check_image_size(args.image_size, "--image-size")
    check_localize_inputs(
        args.images,
        args.out,
        method=args.method,
        gt_box=args.gt_box,
        overwrite=args.overwrite,
        summary=args.summary,
    )
    # the channels and normalisation it was trained with (1-channel models: grayscale)
    model, input_spec = load_classifier_with_input(args.arch, args.weights, args.num_classes)
    if args.weights is None:
        print(
            f"infocam: warning: no --weights: {args.arch} has random weights, so its classes, "
            "maps and boxes mean nothing (pass a weights file or name)",
            file=sys.stderr,
            flush=True,
        )
    kept = []  # only what --summary draws: thumbnails of its first rows (memory stays flat)
    n_images = 0
    # Each image's line is printed as soon as its files are written: an error on a later
    # image (exit 2) loses nothing already done.
    for r in localize.iter_localize_images(
        args.images,
        model,
        args.out,
        method=args.method,
        region=args.region,
        region_padding=args.region_padding,
        least_likely=args.least_likely,
        threshold=args.threshold,
        normalize=args.normalize,
        image_size=args.image_size,
        gt_box=args.gt_box,
        target=args.target,
        device=args.device,
        overwrite=args.overwrite,
        input_spec=input_spec,
    ):
        iou = f"  IoU {r.iou[args.method]:.3f}" if r.iou else ""
        print(
            f"{r.path}: class {r.predicted_class} (p={r.score:.3f})  {args.method} box "
            f"{r.boxes[args.method]}{iou}  -> {', '.join(map(str, r.files))}",
            flush=True,
        )
        n_images += 1
        if args.summary and len(kept) < localize.SUMMARY_MAX_ROWS:
            kept.append(localize.thumbnails(r))
    if args.summary:
        names = _imagenet_categories(model) if args.weights else ()
        shown = f" (the first {len(kept)} of {n_images} images)" if n_images > len(kept) else ""
        print(f"summary -> {localize.summary_figure(kept, args.summary, class_names=names)}{shown}")
    return 0
