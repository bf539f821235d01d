"""Overlays like the paper's Figures 2-3: heat map, predicted box (green), ground truth (red).

* ``overlay(image, heatmap, pred_box=None, gt_box=None)`` -> (H, W, 3) uint8.
* ``method_grid(panels, titles)`` -> a matplotlib figure, panels side by side.
* ``localize_images(paths, model, ...)``: the ``infocam localize`` pipeline: read, predict,
  maps of every method, boxes, one overlay PNG per image and a grid of methods;
  ``iter_localize_images`` yields each image's result as soon as its files are written.
* ``check_image_files(paths)``: every path is an image PIL can open (before any work);
  ``check_localize_inputs(...)``: that and everything else the pipeline can check before the
  model loads (boxes inside the images, distinct output names, no earlier outputs replaced).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
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
    "MAX_IMAGE_SIZE",
    "SUMMARY_MAX_ROWS",
    "LocalizedImage",
    "check_image_files",
    "check_image_size",
    "check_localize_inputs",
    "figure_grid",
    "iter_localize_images",
    "localize_images",
    "method_grid",
    "overlay",
    "read_image",
    "summary_figure",
    "thumbnails",
]

PRED_COLOUR = (0, 200, 0)
GT_COLOUR = (230, 0, 0)
METHOD_TITLES = {"cam": "CAM", "infocam": "infoCAM", "infocam+": "infoCAM+"}
# The largest --image-size: maps, overlays and the float image are image_size^2 each (4096:
# 200 MB for the image), and far beyond it the allocator fails with a traceback.
MAX_IMAGE_SIZE = 4096
# Rows of one summary figure: 2.4 in x 80 dpi = 192 px per row stays well inside matplotlib's
# 2^16-pixel limit; the CLI keeps thumbnails of only this many images for it.
SUMMARY_MAX_ROWS = 100
SUMMARY_PANEL_PX = 192


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
    except Image.DecompressionBombError as exc:  # not an OSError: was a traceback
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ValueError(
            f"{p}: image too large: {exc.args[0] if exc.args else exc} (PIL refuses more than "
            f"{limit:,} pixels, 2 x PIL.Image.MAX_IMAGE_PIXELS); downscale it first"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(p, str(exc)) from exc


def read_image(path: str | Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB image resized to ``size`` x ``size`` as float32 (size, size, 3) in [0, 1], and its
    original (width, height).

    Intensities follow the image's real bit depth: 8-bit modes (L, RGB, palette, LA, RGBA,
    CMYK, ...) are ``/ 255`` after PIL's RGB conversion (alpha dropped); 16-bit images
    ``/ 65535``; float images as they are when in [0, 1], else min-max rescaled with a
    ``UserWarning``; NaN or infinite values raise ``ValueError``
    (:func:`infocam.data._images.unit_range`). High-bit-depth images are resized in float.
    """
    from PIL import Image

    from infocam.data._images import HIGH_DEPTH_MODES, rgb_image, unit_range

    size = check_int(size, "size", minimum=1)

    def load(im: Any) -> Any:
        im.load()  # decode errors are raised here, inside _open_image's handler
        return im

    im = _open_image(path, load)
    bilinear = Image.Resampling.BILINEAR
    if im.mode in HIGH_DEPTH_MODES:
        unit = Image.fromarray(unit_range(im, path), mode="F")  # (H, W) float32 in [0, 1]
        grey = np.asarray(unit.resize((size, size), bilinear), dtype=np.float32)
        img = np.repeat(grey[..., None], 3, axis=-1)
    else:
        rgb = rgb_image(im, path).resize((size, size), bilinear)
        img = np.asarray(rgb, dtype=np.float32) / np.float32(255)
    return np.ascontiguousarray(img), im.size


def check_image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Check, before any work, that every path is an image file PIL can open.

    Opens each header and runs ``Image.verify()`` (no full decode, so a file truncated in
    its pixel data is only found when read). Raises for the first bad file, naming it:
    ``FileNotFoundError`` (missing or not a file), ``PermissionError`` or
    ``CorruptImageError``. Returns the paths as ``Path`` objects.
    """
    return [p for p, _ in _image_sizes(paths)]


def _image_sizes(paths: Sequence[str | Path]) -> list[tuple[Path, tuple[int, int]]]:
    """:func:`check_image_files`, returning each image's (width, height)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("paths must name at least one image file; got none")

    def size(im: Any) -> tuple[int, int]:
        im.verify()
        return im.size

    return [(p, _open_image(p, size)) for p in out]


def _output_stems(paths: Sequence[Path]) -> list[str]:
    """One distinct output stem per image (compared case-insensitively, as macOS and Windows
    file systems do): the file's stem where no other image shares it; where stems collide, the
    extension is kept and, for those still colliding, parent folders are prefixed until the
    names differ (``cat.png`` + ``cat.jpg`` -> ``cat_png``, ``cat_jpg``; ``a/cat.png`` +
    ``b/cat.png`` -> ``a_cat_png``, ``b_cat_png``). The same file given twice, or names that
    stay equal, raise ``ValueError``."""
    first: dict[Path, Path] = {}
    for p in paths:
        q = first.setdefault(p.resolve(), p)
        if q is not p:
            also = "" if str(q) == str(p) else f" (also as {q})"
            raise ValueError(f"image {p} is given twice{also}; give each image once")
    full = [p.absolute() for p in paths]

    def name(i: int, depth: int) -> str:
        if depth == 0:
            return full[i].stem
        f, ext = full[i], full[i].suffix.lstrip(".")
        folders = f.parent.parts[1:][-(depth - 1) :] if depth > 1 else ()
        return "_".join([*folders, f"{f.stem}_{ext}" if ext else f.stem])

    stems = [""] * len(paths)
    todo, depth = [list(range(len(paths)))], 0
    while todo:  # each round lengthens only the names that still collide
        groups: dict[str, list[int]] = defaultdict(list)
        for idx in todo:
            for i in idx:
                stems[i] = name(i, depth)
                groups[f"{id(idx)}/{stems[i].casefold()}"].append(i)
        depth += 1
        todo = [g for g in groups.values() if len(g) > 1 and depth <= len(full[g[0]].parts)]
    seen: dict[str, int] = {}
    for i, stem in enumerate(stems):
        j = seen.setdefault(stem.casefold(), i)
        if j != i:
            raise ValueError(
                f"images {paths[j]} and {paths[i]} would both write {stem}_*.png; rename one"
            )
    return stems


def _method_file(stem: str, method: str) -> str:
    return f"{stem}_{method.replace('+', 'plus')}.png"


def check_localize_inputs(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    method: str = "infocam+",
    gt_box: Sequence[int] | None = None,
    overwrite: bool = False,
    summary: str | Path | None = None,
) -> list[tuple[Path, list[Path]]]:
    """Everything :func:`iter_localize_images` checks before its first image, and no model is
    needed for: run it before loading one.

    Every image opens (:func:`check_image_files`; also PIL's decompression-bomb limit);
    ``gt_box`` lies inside every image (inclusive pixel coordinates); output names are
    distinct (:func:`_output_stems`) and none is an input image; and, unless ``overwrite``,
    no output file of this run (nor ``summary``) exists already. Returns each image with the
    two files it will write: ``<stem>_<method>.png`` and ``<stem>_grid.png``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    sizes = _image_sizes(paths)
    if gt_box is not None:
        if len(gt_box) != 4 or gt_box[2] < gt_box[0] or gt_box[3] < gt_box[1]:
            raise ValueError(f"gt_box must be x1,y1,x2,y2 with x2 >= x1, y2 >= y1; got {gt_box}")
        x1, y1, x2, y2 = gt_box
        for p, (w, h) in sizes:
            if x1 < 0 or y1 < 0 or x2 > w - 1 or y2 > h - 1:
                raise ValueError(
                    f"gt_box {','.join(map(str, gt_box))} is not inside image {p} ({w} x {h} "
                    f"pixels): x1,y1,x2,y2 are inclusive pixel coordinates, x in [0, {w - 1}], "
                    f"y in [0, {h - 1}]"
                )
    out = Path(out_dir)
    files = [
        (p, [out / _method_file(stem, method), out / f"{stem}_grid.png"])
        for (p, _), stem in zip(sizes, _output_stems([p for p, _ in sizes]), strict=True)
    ]
    every = [f for _, pair in files for f in pair]
    if summary is not None and Path(summary).absolute() in {f.absolute() for f in every}:
        raise ValueError(f"summary {summary} is also an image's output file; choose another name")
    inputs = {p.resolve() for p, _ in sizes}
    for f in [*every, *([Path(summary)] if summary is not None else [])]:
        if f.resolve() in inputs:  # even with overwrite: it would destroy an image to read
            raise ValueError(
                f"{f} is an input image and would be an output of this run; choose another "
                "output folder (or --summary name)"
            )
    if not overwrite:
        # Never replace an earlier run's results unasked (the same rule as `infocam train`).
        existing = [f for f in [*every, *([Path(summary)] if summary else [])] if f.exists()]
        if existing:
            more = f" and {len(existing) - 1} more file(s)" if len(existing) > 1 else ""
            raise ValueError(
                f"{existing[0]} exists already{more} (from an earlier run?); pass overwrite=True "
                "(--overwrite) to replace them, or choose another output folder"
            )
    return files


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
    overwrite: bool = False,
    input_spec: InputSpec | None = None,
) -> list[LocalizedImage]:
    """Maps, boxes and overlays for image files; writes PNGs to ``out_dir``.

    Per image: ``<stem>_<method>.png`` (heat map of ``method`` with its box, and ``gt_box`` in
    red when given, in the original image's pixel coordinates) and ``<stem>_grid.png``
    (CAM | infoCAM | infoCAM+). Images sharing a stem get longer, distinct names
    (``cat_png``, ``a_cat_png``; see :func:`check_localize_inputs`); files already in
    ``out_dir`` are replaced only with ``overwrite=True``. The class is ``target`` or the
    top-1 prediction. ``region`` / ``region_padding``: see
    :func:`infocam.class_activation_maps`. ``image_size`` is at most :data:`MAX_IMAGE_SIZE`.
    ``input_spec``: how the model takes images (channels, normalisation; default ImageNet's),
    e.g. from :func:`infocam.models.registry.load_classifier_with_input`.
    Every argument and every image file is checked before the first image is processed.
    Each result keeps its full-size panels: for many images iterate
    :func:`iter_localize_images` instead and keep only what you need (e.g. :func:`thumbnails`).
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
            overwrite=overwrite,
            input_spec=input_spec,
        )
    )


def check_image_size(image_size: Any, name: str = "image_size") -> int:
    """``image_size`` as an int in [1, :data:`MAX_IMAGE_SIZE`]; ``name`` is used in errors."""
    image_size = check_int(image_size, name, minimum=1)
    if image_size > MAX_IMAGE_SIZE:
        raise ValueError(
            f"{name} must be at most {MAX_IMAGE_SIZE} pixels (the image, its maps and overlays "
            f"are {name}^2 each); got {image_size}"
        )
    return image_size


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
    overwrite: bool = False,
    input_spec: InputSpec | None = None,
) -> Iterator[LocalizedImage]:
    """:func:`localize_images` one image at a time: each result is yielded once its PNGs are
    written, so an error on a later image loses nothing already done. The arguments and all
    image files are checked on the first ``next()``, before any image is processed. Nothing
    of earlier results is kept here: memory stays flat in the number of images."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    region = _check_region(region, region_padding)
    threshold = check_real(threshold, "threshold", 0, 1, high_open=True)
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
            threshold, image_size, gt_box, target, device,
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
    threshold: float,
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
        rgb = _to_uint8_image(img)
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
        from infocam.training.checkpoint import atomic_write

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

    from infocam.training.checkpoint import atomic_write

    atomic_write(path, lambda f: Image.fromarray(img).save(f, format="PNG"))


def _save_figure(fig: Any, path: Path, dpi: int) -> None:
    """``fig.savefig`` to ``path`` atomically; the figure is closed either way."""
    import matplotlib.pyplot as plt

    from infocam.training.checkpoint import atomic_write

    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


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
