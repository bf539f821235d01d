"""``infocam localize``: maps, boxes and overlays for image files.

* ``localize_images(paths, model, ...)``: read, predict, maps of every method, boxes, one
  overlay PNG per image and a grid of methods; ``iter_localize_images`` yields each image's
  result as soon as its files are written.
* ``check_image_files(paths)``: every path is an image PIL can open (before any work).
* ``summary_figure(results, path)``: one PNG of all results, a row per image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infocam._imagenet import IMAGENET_MEAN, IMAGENET_STD
from infocam._validation import check_device, check_int, check_real
from infocam.cam import METHODS, CAMExtractor, _check_region, class_activation_maps
from infocam.errors import CorruptImageError
from infocam.localization import box_iou, boxes_from_maps, normalize_maps, upsample_maps
from infocam.viz import METHOD_TITLES, figure_grid, method_grid, overlay

__all__ = [
    "LocalizedImage",
    "check_image_files",
    "iter_localize_images",
    "localize_images",
    "read_image",
    "summary_figure",
]


def _open_image(path: str | Path, use: Any) -> Any:
    """``use(image)`` on the opened image file; a missing, unreadable or undecodable file
    raises ``FileNotFoundError``, ``PermissionError`` or ``CorruptImageError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, "image not found", str(p))
    try:
        with Image.open(p) as im:
            return use(im)
    except PermissionError:
        raise  # not a corrupt image: the message says "Permission denied" and names the file
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(p, str(exc)) from exc


def read_image(path: str | Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB image resized to ``size`` x ``size`` (uint8) and its original (width, height)."""
    from PIL import Image

    size = check_int(size, "size", minimum=1)

    def load(im: Any) -> tuple[np.ndarray, tuple[int, int]]:
        rgb = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.array(rgb), im.size

    return _open_image(path, load)


def check_image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Check, before any work, that every path is an image file PIL can open.

    Opens each header and runs ``Image.verify()`` (no full decode, so a file truncated in
    its pixel data is only found when read). Raises for the first bad file, naming it:
    ``FileNotFoundError`` (missing or not a file), ``PermissionError`` or
    ``CorruptImageError``. Returns the paths as ``Path`` objects.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("paths must name at least one image file; got none")
    for p in out:
        _open_image(p, lambda im: im.verify())
    return out


def _resize_box(box: Sequence[int], original: tuple[int, int], size: int) -> list[int]:
    """wsolevaluation's resize_bbox: scale each coordinate and truncate."""
    w, h = original
    x1, y1, x2, y2 = (float(v) for v in box)
    return [int(x1 * size / w), int(y1 * size / h), int(x2 * size / w), int(y2 * size / h)]


@dataclass
class LocalizedImage:
    """What ``localize_images`` found for one image (boxes in resized-image pixels)."""

    path: Path
    predicted_class: int
    score: float
    boxes: dict[str, list[int]]
    gt_box: list[int] | None
    iou: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    panels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def localize_images(
    paths: Sequence[str | Path], model: torch.nn.Module, out_dir: str | Path, **options: Any
) -> list[LocalizedImage]:
    """Maps, boxes and overlays for image files; writes PNGs to ``out_dir``.

    Per image: ``<stem>_<method>.png`` (heat map of ``method`` with its box, and ``gt_box`` in
    red when given, in the original image's pixel coordinates) and ``<stem>_grid.png``
    (CAM | infoCAM | infoCAM+). The class is ``target`` or the top-1 prediction.
    ``options`` are those of :func:`iter_localize_images` (``method``, ``region``,
    ``region_padding``, ``threshold``, ``image_size``, ``gt_box``, ``target``, ``device``).
    Every argument and every image file is checked before the first image is processed.
    """
    return list(iter_localize_images(paths, model, out_dir, **options))


def iter_localize_images(
    paths: Sequence[str | Path],
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    method: str = "infocam+",
    region: int = 1,
    region_padding: str = "same",
    threshold: float = 0.2,
    image_size: int = 224,
    gt_box: Sequence[int] | None = None,
    target: int | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[LocalizedImage]:
    """:func:`localize_images` one image at a time: each result is yielded once its PNGs are
    written, so an error on a later image loses nothing already done. The arguments and all
    image files are checked on the first ``next()``, before any image is processed.

    ``method``: the map drawn in ``<stem>_<method>.png`` (all three go in the grid);
    ``region`` / ``region_padding``: see :func:`infocam.class_activation_maps`; ``threshold``:
    the box threshold; ``image_size``: the side images are resized to; ``gt_box``: a
    ground-truth box in original-image pixels; ``target``: the class (default: top-1).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    region = _check_region(region, region_padding)
    threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
    image_size = check_int(image_size, "image_size", minimum=1)
    if target is not None:
        target = check_int(target, "target", minimum=0)
    if gt_box is not None and (len(gt_box) != 4 or gt_box[2] < gt_box[0] or gt_box[3] < gt_box[1]):
        raise ValueError(f"gt_box must be x1,y1,x2,y2 with x2 >= x1, y2 >= y1; got {gt_box}")
    device = check_device(device)
    paths = check_image_files(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(device)
    extractor = CAMExtractor(model)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    for path in paths:
        rgb, original = read_image(path, image_size)
        x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).float().div(255)
        x = ((x - mean) / std)[None]
        maps, boxes = {}, {}
        # One forward pass: the other methods' maps are einsums on the same features.
        t = None if target is None else [target]
        res = extractor(x, t, "cam", region, region_padding=region_padding)
        assert res.target is not None
        fc_weight = dict(model.named_modules())[extractor.classifier_].weight
        for m in METHODS:
            raw = (
                res.maps
                if m == "cam"
                else class_activation_maps(
                    res.features,
                    fc_weight,
                    res.target,
                    m,
                    region,
                    res.logits,
                    region_padding=region_padding,
                )
            )
            maps[m] = normalize_maps(upsample_maps(raw, image_size))
            boxes[m] = boxes_from_maps(maps[m], threshold)[0].tolist()
        probs = res.logits.float().softmax(1)[0]
        cls = int(res.target[0])
        gt = None if gt_box is None else _resize_box(gt_box, original, image_size)
        item = LocalizedImage(Path(path), cls, float(probs[cls]), boxes, gt)
        if gt is not None:
            for m in METHODS:
                iou = box_iou(torch.tensor([boxes[m]]), torch.tensor([gt]))
                item.iou[m] = float(iou[0, 0])
        panels = [overlay(rgb, maps[m][0].cpu(), boxes[m], gt) for m in METHODS]
        stem = Path(path).stem
        single = out / f"{stem}_{method.replace('+', 'plus')}.png"
        _save_png(panels[METHODS.index(method)], single)
        grid = out / f"{stem}_grid.png"
        titles = [
            METHOD_TITLES[m] + (f"  IoU {item.iou[m]:.2f}" if m in item.iou else "")
            for m in METHODS
        ]
        fig = method_grid(panels, titles, f"{stem}: class {cls} (p = {item.score:.3f})")
        fig.savefig(grid, dpi=100)
        import matplotlib.pyplot as plt

        plt.close(fig)
        item.files = [single, grid]
        item.panels = {"image": rgb, **dict(zip(METHODS, panels, strict=True))}
        yield item


def _save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(img).save(path)


def summary_figure(
    results: Sequence[LocalizedImage],
    path: str | Path,
    methods: Sequence[str] = ("cam", "infocam+"),
    class_names: Sequence[str] = (),
    panel_size: float = 2.4,
    dpi: int = 80,
) -> Path:
    """One PNG of all ``localize_images`` results: a row per image, image | each method.

    Rows are labelled with the predicted class (its name from ``class_names`` when given) and
    its probability; boxes are those ``localize_images`` drew.
    """
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}; got {methods!r}")
    if not results:
        raise ValueError("results is empty: nothing to draw")
    rows, labels = [], []
    for r in results:
        if not r.panels:
            raise ValueError(f"{r.path}: no panels (not made by localize_images)")
        rows.append([r.panels["image"], *(r.panels[m] for m in methods)])
        c = r.predicted_class
        name = class_names[c] if c < len(class_names) else f"class {c}"
        labels.append(f"{r.path.name}: {name} (p={r.score:.2f})")
    fig = figure_grid(
        rows, ["image", *(METHOD_TITLES[m] for m in methods)], labels, panel_size=panel_size
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=dpi)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out
