"""``infocam localize``: maps, boxes and overlays for image files.

* ``localize_images(paths, model, ...)``: read, predict, maps of every method, boxes, one
  overlay PNG per image and a grid of methods; ``iter_localize_images`` yields each image's
  result as soon as its files are written.
* ``summary_figure(results, path)``: one PNG of the results, a row per image
  (``thumbnails`` keeps what one row needs).

The checks made before any work, and the reading of images, are in
:mod:`infocam.experiments.localize_inputs`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infocam._validation import check_device, check_int, check_real
from infocam.cam import DEFAULT_REGION_PADDING, METHODS, CAMExtractor, class_activation_maps
from infocam.cam.maps import check_least_likely, check_region
from infocam.experiments.localize_inputs import check_image_size, check_localize_inputs, read_image
from infocam.localization import box_iou, boxes_from_maps, normalize_maps, upsample_maps
from infocam.localization.maps import check_normalize
from infocam.models.inputs import IMAGENET_INPUT, InputSpec
from infocam.training.checkpoint import atomic_write
from infocam.viz import METHOD_TITLES, as_uint8_image, figure_grid, method_grid, overlay

__all__ = [
    "SUMMARY_MAX_ROWS",
    "LocalizedImage",
    "iter_localize_images",
    "localize_images",
    "summary_figure",
    "thumbnails",
]

# Rows of one summary figure: 2.4 in x 80 dpi = 192 px per row stays well inside matplotlib's
# 2^16-pixel limit; the CLI keeps thumbnails of only this many images for it.
SUMMARY_MAX_ROWS = 100
SUMMARY_PANEL_PX = 192


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
    (CAM | infoCAM | infoCAM+). Images sharing a stem get longer, distinct names
    (``cat_png``, ``a_cat_png``; see :func:`check_localize_inputs`); files already in
    ``out_dir`` are replaced only with ``overwrite=True``. The class is ``target`` or the
    top-1 prediction. ``options`` are those of :func:`iter_localize_images` (``method``,
    ``region``, ``region_padding``, ``threshold``, ``image_size``, ``gt_box``, ``target``,
    ``device``, ``overwrite``, ``input_spec``).
    Every argument and every image file is checked before the first image is processed.
    Each result keeps its full-size panels: for many images iterate
    :func:`iter_localize_images` instead and keep only what you need (e.g. :func:`thumbnails`).
    """
    return list(iter_localize_images(paths, model, out_dir, **options))


def iter_localize_images(
    paths: Sequence[str | Path],
    model: torch.nn.Module,
    out_dir: str | Path,
    *,
    method: str = "infocam+",
    region: int = 1,
    region_padding: str = DEFAULT_REGION_PADDING,
    least_likely: str = "global",
    threshold: float = 0.2,
    normalize: str = "minmax",
    image_size: int = 224,
    gt_box: Sequence[int] | None = None,
    target: int | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    input_spec: InputSpec | None = None,
) -> Iterator[LocalizedImage]:
    """:func:`localize_images` one image at a time: each result is yielded once its PNGs are
    written, so an error on a later image loses nothing already done. The arguments and all
    image files are checked on the first ``next()``, before any image is processed. Nothing
    of earlier results is kept here: memory stays flat in the number of images.

    ``method``: the map drawn in ``<stem>_<method>.png`` (all three go in the grid);
    ``region`` / ``region_padding`` / ``least_likely``: see
    :func:`infocam.class_activation_maps`; ``threshold``: the box threshold, of the per-map
    range (``normalize="minmax"``) or of the maximum (``"max"``, see
    :func:`infocam.normalize_maps`); ``image_size``: the side images are resized to, at most
    :data:`~infocam.experiments.localize_inputs.MAX_IMAGE_SIZE`; ``gt_box``: a ground-truth
    box in original-image pixels; ``target``: the class (default: top-1); ``overwrite``:
    replace files an earlier run wrote to ``out_dir``; ``input_spec``: how the model takes
    images (channels, normalisation; default ImageNet's), e.g. from
    :func:`infocam.models.registry.load_classifier_with_input`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    region = check_region(region, region_padding)
    least_likely = check_least_likely(least_likely)
    threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
    normalize = check_normalize(normalize)
    image_size = check_image_size(image_size)
    if target is not None:
        target = check_int(target, "target", minimum=0)
    device = check_device(device)
    planned = check_localize_inputs(
        paths, out_dir, method=method, gt_box=gt_box, overwrite=overwrite
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(device)
    extractor = CAMExtractor(model)
    spec = IMAGENET_INPUT if input_spec is None else input_spec
    grids = _GridWriter()
    try:
        yield from _localize_each(
            planned, model, extractor, spec, grids, method, region, region_padding,
            least_likely, threshold, normalize, image_size, gt_box, target, device,
        )  # fmt: skip
    finally:
        grids.close()


def _localize_each(
    planned: list[tuple[Path, list[Path]]],
    model: torch.nn.Module,
    extractor: CAMExtractor,
    spec: InputSpec,
    grids: _GridWriter,
    method: str,
    region: int,
    region_padding: str,
    least_likely: str,
    threshold: float,
    normalize: str,
    image_size: int,
    gt_box: Sequence[int] | None,
    target: int | None,
    device: torch.device,
) -> Iterator[LocalizedImage]:
    """The per-image loop of :func:`iter_localize_images` (arguments already checked)."""
    for path, (single, grid) in planned:
        img, original = read_image(path, image_size)  # float32 in [0, 1], real bit depth
        x = torch.from_numpy(img).to(device).permute(2, 0, 1)
        x = spec.prepare(x)[None]  # the model's channels and normalisation
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
                "check the image size and the architecture"
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
                    least_likely=least_likely,
                )
            )
            maps[m] = normalize_maps(upsample_maps(raw, image_size), normalize)
            boxes[m] = boxes_from_maps(maps[m], threshold, normalize=normalize)[0].tolist()
        probs = res.logits.float().softmax(1)[0]
        cls = int(res.target[0])
        gt = None if gt_box is None else _resize_box(gt_box, original, image_size)
        item = LocalizedImage(Path(path), cls, float(probs[cls]), boxes, gt)
        if gt is not None:
            for m in METHODS:
                iou = box_iou(torch.tensor([boxes[m]]), torch.tensor([gt]))
                item.iou[m] = float(iou[0, 0])
        rgb = as_uint8_image(img)
        panels = [overlay(rgb, maps[m][0].cpu(), boxes[m], gt) for m in METHODS]
        _save_png(panels[METHODS.index(method)], single)
        titles = [
            METHOD_TITLES[m] + (f"  IoU {item.iou[m]:.2f}" if m in item.iou else "")
            for m in METHODS
        ]
        stem = grid.name[: -len("_grid.png")]
        grids.write(panels, titles, f"{stem}: class {cls} (p = {item.score:.3f})", grid)
        item.files = [single, grid]
        item.panels = {"image": rgb, **dict(zip(METHODS, panels, strict=True))}
        yield item


def thumbnails(result: LocalizedImage, side: int = SUMMARY_PANEL_PX) -> LocalizedImage:
    """A copy of ``result`` whose panels are shrunk to at most ``side`` pixels (what one row of
    :func:`summary_figure` shows), so that a summary of many images needs little memory."""
    from PIL import Image

    side = check_int(side, "side", minimum=1)

    def shrink(panel: np.ndarray) -> np.ndarray:
        h, w = panel.shape[:2]
        if max(h, w) <= side:
            return panel
        scale = side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(Image.fromarray(panel).resize(size, Image.Resampling.LANCZOS))

    return replace(result, panels={k: shrink(v) for k, v in result.panels.items()})


class _GridWriter:
    """Writes every image's ``method_grid`` with ONE matplotlib figure, its panels and titles
    replaced per image. A new figure per image is freed only by Python's cyclic garbage
    collector (a figure is a web of cycles): memory grew with the number of images, about
    6 MB per 512 px image, and a ``gc.collect()`` per image cost more than drawing it."""

    def __init__(self) -> None:
        self.fig: Any = None

    def write(
        self, panels: Sequence[np.ndarray], titles: Sequence[str], suptitle: str, path: Path
    ) -> None:
        if self.fig is None or any(
            ax.images[0].get_array().shape != panel.shape
            for ax, panel in zip(self.fig.axes, panels, strict=True)
        ):
            self.close()
            self.fig = method_grid(panels, titles, suptitle)
        else:
            for ax, panel, title in zip(self.fig.axes, panels, titles, strict=True):
                ax.images[0].set_data(panel)
                ax.set_title(title)
            self.fig.suptitle(suptitle)
        atomic_write(path, lambda f: self.fig.savefig(f, format="png", dpi=100))

    def close(self) -> None:
        if self.fig is not None:
            import matplotlib.pyplot as plt

            plt.close(self.fig)
            self.fig = None


def _save_png(img: np.ndarray, path: Path) -> None:
    """Write atomically: an interrupted run (or --overwrite) never leaves half a PNG."""
    from PIL import Image

    atomic_write(path, lambda f: Image.fromarray(img).save(f, format="PNG"))


def _save_figure(fig: Any, path: Path, dpi: int) -> None:
    """``fig.savefig`` to ``path`` atomically; the figure is closed either way."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def summary_figure(
    results: Sequence[LocalizedImage],
    path: str | Path,
    methods: Sequence[str] = ("cam", "infocam+"),
    class_names: Sequence[str] = (),
    panel_size: float = 2.4,
    dpi: int = 80,
) -> Path:
    """One PNG of ``localize_images`` results: a row per image, image | each method (at most
    :data:`SUMMARY_MAX_ROWS` rows; :func:`thumbnails` of the results draw the same figure).

    Rows are labelled with the predicted class (its name from ``class_names`` when given) and
    its probability; boxes are those ``localize_images`` drew.
    """
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}; got {methods!r}")
    if not results:
        raise ValueError("results is empty: nothing to draw")
    if len(results) > SUMMARY_MAX_ROWS:
        raise ValueError(
            f"results must hold at most {SUMMARY_MAX_ROWS} images (one row each) for one "
            f"summary figure; got {len(results)}"
        )
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
    _save_figure(fig, out, dpi=dpi)
    return out
