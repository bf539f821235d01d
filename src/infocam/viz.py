"""Overlays like the paper's Figures 2-3: heat map, predicted box (green), ground truth (red).

* ``overlay(image, heatmap, pred_box=None, gt_box=None)`` -> (H, W, 3) uint8.
* ``method_grid(panels, titles)`` -> a matplotlib figure, panels side by side.
* ``localize_images(paths, model, ...)``: the ``infocam localize`` pipeline: read, predict,
  maps of every method, boxes, one overlay PNG per image and a grid of methods;
  ``iter_localize_images`` yields each image's result as soon as its files are written.
* ``check_image_files(paths)``: every path is an image PIL can open (before any work).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infocam._validation import check_device, check_int, check_real
from infocam.cam import METHODS, CAMExtractor, _check_region, class_activation_maps
from infocam.errors import CorruptImageError
from infocam.localization import box_iou, boxes_from_maps, normalize_maps, upsample_maps
from infocam.models.inputs import IMAGENET_INPUT, InputSpec

__all__ = [
    "LocalizedImage",
    "check_image_files",
    "figure_grid",
    "iter_localize_images",
    "localize_images",
    "method_grid",
    "overlay",
    "read_image",
    "summary_figure",
]

PRED_COLOUR = (0, 200, 0)
GT_COLOUR = (230, 0, 0)
METHOD_TITLES = {"cam": "CAM", "infocam": "infoCAM", "infocam+": "infoCAM+"}


def _to_uint8_image(image: Any) -> np.ndarray:
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W, 3), (3, H, W) or (H, W); got {img.shape}")
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.dtype != np.uint8:
        img = np.clip(np.asarray(img, dtype=np.float64) * 255.0, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(img)


def _draw_box(img: np.ndarray, box: Sequence[int], colour: tuple[int, int, int]) -> None:
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box)
    thickness = max(1, round(min(img.shape[:2]) / 112))
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, thickness)


def overlay(
    image: Any,
    heatmap: Any,
    pred_box: Sequence[int] | None = None,
    gt_box: Sequence[int] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> np.ndarray:
    """Blend a heat map over an image and draw boxes (inclusive x1, y1, x2, y2).

    ``image``: (H, W, 3) uint8 or float in [0, 1], or (3, H, W); ``heatmap``: (H, W), min-max
    normalised here. Returns (H, W, 3) uint8.
    """
    import matplotlib

    img = _to_uint8_image(image)
    hm = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
    if hm.dim() != 2 or tuple(hm.shape) != img.shape[:2]:
        raise ValueError(
            f"heatmap must be (H, W) = {img.shape[:2]} like the image; got {tuple(hm.shape)}"
        )
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}")
    norm = normalize_maps(hm[None])[0].numpy()
    colours = matplotlib.colormaps[cmap](norm)[..., :3] * 255.0
    out = ((1 - alpha) * img + alpha * colours).round().astype(np.uint8)
    if gt_box is not None:
        _draw_box(out, gt_box, GT_COLOUR)
    if pred_box is not None:
        _draw_box(out, pred_box, PRED_COLOUR)
    return out


def method_grid(panels: Sequence[np.ndarray], titles: Sequence[str], suptitle: str = "") -> Any:
    """A matplotlib figure with the panels side by side, one title each."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if len(panels) != len(titles) or not panels:
        raise ValueError(f"need one title per panel; got {len(panels)} panels, {len(titles)}")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, panel, title in zip(axes[0], panels, titles, strict=True):
        ax.imshow(panel)
        ax.set_title(title)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


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
    input_spec: InputSpec | None = None,
) -> list[LocalizedImage]:
    """Maps, boxes and overlays for image files; writes PNGs to ``out_dir``.

    Per image: ``<stem>_<method>.png`` (heat map of ``method`` with its box, and ``gt_box`` in
    red when given, in the original image's pixel coordinates) and ``<stem>_grid.png``
    (CAM | infoCAM | infoCAM+). The class is ``target`` or the top-1 prediction.
    ``region`` / ``region_padding``: see :func:`infocam.class_activation_maps`.
    ``input_spec``: how the model takes images (channels, normalisation; default ImageNet's),
    e.g. from :func:`infocam.models.registry.load_classifier_with_input`.
    Every argument and every image file is checked before the first image is processed.
    """
    return list(
        iter_localize_images(
            paths,
            model,
            out_dir,
            method=method,
            region=region,
            region_padding=region_padding,
            threshold=threshold,
            image_size=image_size,
            gt_box=gt_box,
            target=target,
            device=device,
            input_spec=input_spec,
        )
    )


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
    input_spec: InputSpec | None = None,
) -> Iterator[LocalizedImage]:
    """:func:`localize_images` one image at a time: each result is yielded once its PNGs are
    written, so an error on a later image loses nothing already done. The arguments and all
    image files are checked on the first ``next()``, before any image is processed."""
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
    spec = IMAGENET_INPUT if input_spec is None else input_spec
    for path in paths:
        rgb, original = read_image(path, image_size)
        x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).float().div(255)
        x = spec.prepare(x)[None]
        maps, boxes = {}, {}
        # One forward pass: the other methods' maps are einsums on the same features.
        t = None if target is None else [target]
        try:
            res = extractor(x, t, "cam", region, region_padding=region_padding)
        except RuntimeError as exc:  # e.g. a flatten + linear head sized for other images
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"{type(model).__name__} cannot take a {tuple(x.shape)} input ({detail}); "
                "check --image-size and --arch"
            ) from exc
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


def figure_grid(
    rows: Sequence[Sequence[np.ndarray]],
    col_titles: Sequence[str],
    row_titles: Sequence[str] = (),
    suptitle: str = "",
    panel_size: float = 2.2,
) -> Any:
    """A matplotlib figure of images in rows (e.g. image | CAM | infoCAM | infoCAM+ per row).

    ``col_titles`` label the first row's panels; ``row_titles`` (optional) the first panel of
    each row, below it.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not rows or any(len(r) != len(col_titles) for r in rows):
        raise ValueError(f"every row must hold {len(col_titles)} panels (one per column title)")
    if row_titles and len(row_titles) != len(rows):
        raise ValueError(f"need one row title per row; got {len(row_titles)} for {len(rows)}")
    n, k = len(rows), len(col_titles)
    fig, axes = plt.subplots(n, k, figsize=(panel_size * k, panel_size * n + 0.4), squeeze=False)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            ax = axes[i][j]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0 and row_titles:
                ax.set_xlabel(row_titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


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
