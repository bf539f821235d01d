"""What ``infocam localize`` checks and reads before and while it works: image files (opened
at their real bit depth), the image size, ground-truth boxes inside the images, and distinct
output names that replace nothing unasked.

* ``check_image_files(paths)``: every path is an image PIL can open (before any work);
* ``check_localize_inputs(...)``: that and everything else the pipeline can check before the
  model loads (boxes inside the images, distinct output names, no earlier outputs replaced);
* ``read_image(path, size)``: an image as float32 RGB in [0, 1] at ``size`` x ``size``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infocam._validation import check_int
from infocam.cam import METHODS
from infocam.errors import CorruptImageError

__all__ = [
    "MAX_IMAGE_SIZE",
    "check_image_files",
    "check_image_size",
    "check_localize_inputs",
    "output_file",
    "read_image",
]

# The largest --image-size: maps, overlays and the float image are image_size^2 each (4096:
# 200 MB for the image), and far beyond it the allocator fails with a traceback.
MAX_IMAGE_SIZE = 4096


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


def output_file(stem: str, method: str) -> str:
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
        (p, [out / output_file(stem, method), out / f"{stem}_grid.png"])
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
                "output folder (or summary file name)"
            )
    if not overwrite:
        # Never replace an earlier run's results unasked (the same rule as `infocam train`).
        existing = [f for f in [*every, *([Path(summary)] if summary else [])] if f.exists()]
        if existing:
            more = f" and {len(existing) - 1} more file(s)" if len(existing) > 1 else ""
            raise ValueError(
                f"{existing[0]} exists already{more} (from an earlier run?); overwrite "
                "replaces them, or choose another output folder"
            )
    return files


def check_image_size(image_size: Any, name: str = "image_size") -> int:
    """``image_size`` as an int in [1, :data:`MAX_IMAGE_SIZE`]; ``name`` is used in errors."""
    image_size = check_int(image_size, name, minimum=1)
    if image_size > MAX_IMAGE_SIZE:
        raise ValueError(
            f"{name} must be at most {MAX_IMAGE_SIZE} pixels (the image, its maps and overlays "
            f"are {name}^2 each); got {image_size}"
        )
    return image_size
