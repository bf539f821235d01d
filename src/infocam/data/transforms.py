"""Box-aware image transforms: each maps ``(image, boxes) -> (image, boxes)``.

Boxes are ``(G, 4)`` tensors of INCLUSIVE pixel coordinates ``x1, y1, x2, y2``: the box covers
pixel columns ``x1..x2`` and rows ``y1..y2``. Geometry is done on pixel *edges*: an inclusive
box ``[x1, x2]`` is the continuous interval ``[x1, x2 + 1)`` (pixel ``i`` covers ``[i, i+1)``,
which is also how ``torch``/PIL resampling without ``align_corners`` sees it). So

* resize by ``s``:  ``x1' = s * x1``,  ``x2' = s * (x2 + 1) - 1``;
* crop at ``left``: ``x' = x - left``, then the edges are clipped to ``[0, W')``;
* horizontal flip:  ``x1' = W - 1 - x2``,  ``x2' = W - 1 - x1``.

Returned boxes are float32 (a resize makes them fractional). A box cropped away entirely comes
back empty, with ``x2 = x1 - 1`` or ``y2 = y1 - 1`` (zero width/height); G never changes.

Images may be PIL images or tensors ``(..., H, W)``; the image ops are
``torchvision.transforms.v2.functional``, called with the same numbers as the box ops.
Random transforms draw from ``generator`` (a ``torch.Generator``), or from torch's global RNG
when it is ``None``, so ``torch.manual_seed`` makes them repeatable. In a ``DataLoader`` with
``num_workers > 0`` prefer ``generator=None``: torch seeds each worker's global RNG differently,
whereas an explicit generator is copied into every worker, which then repeat the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from infocam._imagenet import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ToTensor",
    "crop_boxes",
    "hflip_boxes",
    "resize_boxes",
    "wsol_transform",
]


Image_ = Image.Image | torch.Tensor
BoxTransform = Callable[[Any, torch.Tensor], tuple[Any, torch.Tensor]]


# ---------------------------------------------------------------- pure box geometry
def _as_boxes(boxes: Any) -> torch.Tensor:
    b = torch.as_tensor(boxes)
    if b.dim() != 2 or b.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (G, 4); got {tuple(b.shape)}")
    return b.to(torch.float32) if not torch.is_floating_point(b) else b.float()


def _edges(boxes: torch.Tensor) -> torch.Tensor:
    """Inclusive pixel boxes -> half-open edge boxes [x1, x2 + 1) x [y1, y2 + 1)."""
    return torch.cat([boxes[:, :2], boxes[:, 2:] + 1], dim=1)


def _inclusive(edges: torch.Tensor) -> torch.Tensor:
    return torch.cat([edges[:, :2], edges[:, 2:] - 1], dim=1)


def resize_boxes(boxes: Any, in_size: Sequence[int], out_size: Sequence[int]) -> torch.Tensor:
    """Boxes of an ``in_size = (H, W)`` image resized to ``out_size = (H', W')``."""
    b = _edges(_as_boxes(boxes))
    sy, sx = out_size[0] / in_size[0], out_size[1] / in_size[1]
    scale = b.new_tensor([sx, sy, sx, sy])
    return _inclusive(b * scale)


def crop_boxes(boxes: Any, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Boxes after cropping the window ``[top, top + height) x [left, left + width)``.

    The window may extend past the image (the image is zero-padded there). Edges are clipped to
    the window; a box entirely outside becomes empty (``x2 = x1 - 1`` or ``y2 = y1 - 1``).
    """
    b = _edges(_as_boxes(boxes))
    b = b - b.new_tensor([left, top, left, top])
    lo = b.new_zeros(2)
    hi = b.new_tensor([width, height])
    mins = torch.minimum(torch.maximum(b[:, :2], lo), hi)
    maxs = torch.minimum(torch.maximum(b[:, 2:], mins), hi)  # max >= min: empty, not negative
    return _inclusive(torch.cat([mins, maxs], dim=1))


def hflip_boxes(boxes: Any, width: int) -> torch.Tensor:
    """Boxes after mirroring an image of ``width`` pixels left-right."""
    b = _as_boxes(boxes)
    return torch.stack([width - 1 - b[:, 2], b[:, 1], width - 1 - b[:, 0], b[:, 3]], dim=1)


# ---------------------------------------------------------------- transforms
def _size_pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    elif isinstance(size, Sequence) and len(size) == 2:
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"{name} must be an int or an (h, w) pair; got {size!r}")
    if min(pair) <= 0:
        raise ValueError(f"{name} must be positive; got {size!r}")
    return pair


def _hw(image: Image_) -> tuple[int, int]:
    h, w = F.get_size(image)
    return int(h), int(w)


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1, dtype=torch.float64).uniform_(lo, hi, generator=generator))


def _randint(hi: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, hi] (inclusive)."""
    return int(torch.randint(0, hi + 1, (1,), generator=generator))


class Compose:
    """Apply box-aware transforms in order."""

    def __init__(self, transforms: Sequence[BoxTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[Any, torch.Tensor]:
        for t in self.transforms:
            image, boxes = t(image, boxes)
        return image, boxes

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class Resize:
    """Resize to ``(h, w)``, or (an int) so that the shorter side is ``size``.

    For an int, the longer side becomes ``int(size * long / short)`` (as torchvision).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        antialias: bool = True,
    ) -> None:
        self.size = size
        _size_pair(size, "size")
        self.interpolation = interpolation
        self.antialias = antialias

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if isinstance(self.size, int):
            if h <= w:
                return self.size, int(self.size * w / h)
            return int(self.size * h / w), self.size
        return _size_pair(self.size, "size")

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[Any, torch.Tensor]:
        h, w = _hw(image)
        out = self.output_size(h, w)
        image = F.resize(
            image, list(out), interpolation=self.interpolation, antialias=self.antialias
        )
        return image, resize_boxes(boxes, (h, w), out)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class CenterCrop:
    """Crop the central ``(h, w)`` window (zero-padded if the image is smaller).

    Offsets as torchvision: ``top = round((H - h) / 2)``, ``left = round((W - w) / 2)``.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size_pair(size, "size")

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[Any, torch.Tensor]:
        h, w = _hw(image)
        ch, cw = self.size
        top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
        return F.crop(image, top, left, ch, cw), crop_boxes(boxes, top, left, ch, cw)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomCrop:
    """Crop a uniformly placed ``(h, w)`` window; the image must be at least that large."""

    def __init__(self, size: int | Sequence[int], generator: torch.Generator | None = None) -> None:
        self.size = _size_pair(size, "size")
        self.generator = generator

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[Any, torch.Tensor]:
        h, w = _hw(image)
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop size {self.size} is larger than the image ({h}, {w})")
        top, left = _randint(h - ch, self.generator), _randint(w - cw, self.generator)
        return F.crop(image, top, left, ch, cw), crop_boxes(boxes, top, left, ch, cw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


class RandomResizedCrop:
    """Crop a random area/aspect window and resize it to ``size`` (torchvision's algorithm).

    Ten tries to draw area ``~ U(scale) * H * W`` and log-aspect ``~ U(log ratio)`` that fit;
    otherwise a central crop with the aspect clamped to ``ratio``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        antialias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        self.size = _size_pair(size, "size")
        if not (0 < scale[0] <= scale[1]):
            raise ValueError(f"scale must be (min, max) with 0 < min <= max; got {scale}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max; got {ratio}")
        self.scale, self.ratio = scale, ratio
        self.interpolation, self.antialias = interpolation, antialias
        self.generator = generator

    def get_params(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of the crop window."""
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], self.generator)
            aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], self.generator))
            cw = round(math.sqrt(target * aspect))
            ch = round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top = _randint(h - ch, self.generator)
                left = _randint(w - cw, self.generator)
                return top, left, ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, round(w / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            ch, cw = h, round(h * self.ratio[1])
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[Any, torch.Tensor]:
        h, w = _hw(image)
        top, left, ch, cw = self.get_params(h, w)
        image = F.resized_crop(
            image,
            top,
            left,
            ch,
            cw,
            list(self.size),
            interpolation=self.interpolation,
            antialias=self.antialias,
        )
        boxes = resize_boxes(crop_boxes(boxes, top, left, ch, cw), (ch, cw), self.size)
        return image, boxes

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1]; got {p}")
        self.p = p
        self.generator = generator

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[Any, torch.Tensor]:
        if float(torch.rand(1, generator=self.generator)) >= self.p:
            return image, _as_boxes(boxes)
        _, w = _hw(image)
        return F.horizontal_flip(image), hflip_boxes(boxes, w)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ToTensor:
    """PIL image or uint8 tensor -> float32 ``(C, H, W)`` tensor in [0, 1]; boxes unchanged.

    A 2-D tensor gains a channel axis; float tensors pass through as float32.
    """

    def __call__(self, image: Any, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(image, Image.Image):
            image = F.pil_to_tensor(image)
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"image must be a PIL image or a tensor; got {type(image).__name__}")
        if image.dim() == 2:
            image = image.unsqueeze(0)
        if image.dtype == torch.uint8:
            image = image.float().div_(255.0)
        else:
            image = image.float()
        return image, _as_boxes(boxes)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(image - mean) / std`` per channel of a float tensor; boxes unchanged."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have equal lengths; got {len(mean)}, {len(std)}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive; got {tuple(std)}")
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, Any]:
        if not isinstance(image, torch.Tensor) or not torch.is_floating_point(image):
            raise TypeError("Normalize needs a float tensor image; put ToTensor() before it")
        return F.normalize(image, list(self.mean), list(self.std)), _as_boxes(boxes)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def wsol_transform(
    train: bool,
    resize: int = 256,
    crop: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    generator: torch.Generator | None = None,
) -> Compose:
    """The ADL / infoCAM pipeline: train ``Resize((resize, resize))``, ``RandomCrop(crop)``,
    ``RandomHorizontalFlip``; evaluation ``Resize((resize, resize))``, ``CenterCrop(crop)``;
    both end with ``ToTensor`` and ``Normalize(mean, std)``."""
    geometry: list[BoxTransform] = [Resize((resize, resize))]
    if train:
        geometry += [RandomCrop(crop, generator), RandomHorizontalFlip(0.5, generator)]
    else:
        geometry += [CenterCrop(crop)]
    return Compose([*geometry, ToTensor(), Normalize(mean, std)])
