"""Drawing only: overlays like the paper's Figures 2-3 (heat map, predicted box in green, ground
truth in red) and figures of them. Nothing here reads or writes a file.

* ``overlay(image, heatmap, pred_box=None, gt_box=None)`` -> (H, W, 3) uint8.
* ``method_grid(panels, titles)`` -> a matplotlib figure, panels side by side.
* ``figure_grid(rows, col_titles)`` -> a matplotlib figure of panels in rows.

The ``infocam localize`` pipeline that reads images and draws with these lives in
:mod:`infocam.experiments.localize`; its names are still reachable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from infocam.localization import normalize_maps

__all__ = ["METHOD_TITLES", "as_uint8_image", "figure_grid", "method_grid", "overlay"]

PRED_COLOUR = (0, 200, 0)
GT_COLOUR = (230, 0, 0)
METHOD_TITLES = {"cam": "CAM", "infocam": "infoCAM", "infocam+": "infoCAM+"}


def as_uint8_image(image: Any) -> np.ndarray:
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

    img = as_uint8_image(image)
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


# The localize pipeline moved to infocam.experiments.localize (and its input checks to
# infocam.experiments.localize_inputs); their public names are still reachable here, imported
# on first use: drawing does not depend on them.
def __getattr__(name: str) -> Any:
    from infocam.experiments import localize, localize_inputs

    for module in (localize, localize_inputs):
        if name in module.__all__:
            return getattr(module, name)
    raise AttributeError(f"module 'infocam.viz' has no attribute {name!r}")
