"""Table 4's report: the Markdown table beside the paper's numbers, and the figure of maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from infocam.experiments.wsol.protocol import PAPER_TABLE4
from infocam.training.checkpoint import atomic_write
from infocam.viz import METHOD_TITLES, figure_grid, overlay

__all__ = ["format_table", "json_ready", "save_figure", "write_text"]


def write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def json_ready(result: dict[str, Any]) -> dict[str, Any]:
    """An evaluation result without its ``examples`` (images and maps, not JSON)."""
    return {k: v for k, v in result.items() if k != "examples"}


def save_figure(
    examples: dict[str, Any], path: Path, title: str = "", classes: Sequence[str] = ()
) -> None:
    """Rows of test images: image | CAM | infoCAM | infoCAM+ (green: predicted box, red: GT)."""

    methods = list(examples["maps"])
    rows = []
    row_titles = []
    for i, image in enumerate(examples["images"]):
        img = _display_image(image)
        gt = examples["gt"][i]
        panels = [overlay(img, torch.zeros(img.shape[:2]), None, gt[0], alpha=0.0)]
        for m in methods:
            panels.append(overlay(img, examples["maps"][m][i], examples["boxes"][m][i], gt[0]))
        rows.append(panels)
        y, p = examples["labels"][i], examples["pred"][i]
        name = (lambda k: classes[k] if k < len(classes) else str(k)) if classes else str
        row_titles.append(f"true {name(y)}, pred {name(p)}")
    if not rows:
        return
    fig = figure_grid(rows, ["image", *(METHOD_TITLES[m] for m in methods)], row_titles, title)
    try:
        fig.savefig(path, dpi=80)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _display_image(image: torch.Tensor) -> torch.Tensor:
    """Undo ImageNet normalisation for display (1-channel images are shown as they are)."""
    from infocam.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = image.float()
    if x.shape[0] == 3 and (x.min() < 0 or x.max() > 1):
        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        x = x * std + mean
    return x.clamp(0, 1).permute(1, 2, 0)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_table(rows: Sequence[dict[str, Any]], dataset: str | None = None) -> str:
    """Markdown: one line per (model, method); the paper's numbers beside ours when known.

    Each row: ``{"model": arch, "adl": bool | None, "test": {...}, "settings": {...}}``. A PxAP
    column appears when some row's scores have one (the data set has masks).
    """
    paper = PAPER_TABLE4.get(dataset or "", {})
    pxap = any("PxAP" in s for row in rows for s in row["test"].values())
    head = [
        "Backbone",
        "Method",
        "GT-known Loc",
        "Top-1 Loc",
        "Top-1 Cls",
        "Top-5 Cls",
        "MaxBoxAccV2",
        *(["PxAP"] if pxap else []),
        "r",
        "threshold",
    ]
    if paper:
        head += ["paper GT-known", "paper Top-1 Loc", "paper Top-1 Cls", "paper Top-5 Cls"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for m, s in row["test"].items():
            name = METHOD_TITLES[m] + (" (ADL)" if row.get("adl") else "")
            st = row["settings"][m]
            cells = [
                row["model"],
                name,
                _fmt(s["gt_known_loc"]),
                _fmt(s["top1_loc"]),
                _fmt(s["top1_cls"]),
                _fmt(s["top5_cls"]),
                _fmt(s["MaxBoxAccV2"]),
                *([_fmt(s.get("PxAP"))] if pxap else []),
                str(st["region"]),
                f"{st['threshold']:.2f}",
            ]
            if paper:
                ref = paper.get(row["model"], {}).get((m, bool(row.get("adl"))), ())
                cells += [_fmt(ref[k]) if k < len(ref) else "-" for k in range(4)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
