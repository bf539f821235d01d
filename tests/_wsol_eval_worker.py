"""Subprocess helper for the sharded WSOL evaluation test (not collected by pytest).

Scores a fixed random small_gap_cnn on fixed synthetic boxed images with ``evaluate_wsol``;
under ``torchrun`` each process scores its shard. Rank 0 writes the result to ``--save``.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.data import Dataset

from infocam.experiments.wsol_eval import evaluate_wsol
from infocam.models import small_gap_cnn
from infocam.training import seed_everything, setup_distributed


class BoxedImages(Dataset):
    """``n`` random 3 x 24 x 24 images, label i % 3, one or two boxes each, and a random mask
    (1 foreground, 0 background, 255 ignored: PxAP's counts are summed over processes too)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 24, 24, generator=g)
        corner = torch.randint(0, 12, (n, 2), generator=g)
        size = torch.randint(4, 12, (n, 2), generator=g)
        self.boxes = torch.cat([corner, corner + size], 1)
        self.masks = torch.randint(0, 3, (n, 24, 24), generator=g, dtype=torch.uint8)
        self.masks[self.masks == 2] = 255
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        boxes = self.boxes[i : i + 1]
        if i % 2:
            boxes = torch.cat([boxes, torch.tensor([[0, 0, 23, 23]])])
        return self.images[i], i % 3, boxes, self.masks[i]


def run() -> dict:
    seed_everything(3)
    model = small_gap_cnn(3, in_channels=3).eval()
    return evaluate_wsol(
        model,
        BoxedImages(9, seed=1),
        BoxedImages(11, seed=2),
        regions=(1, 2, 3),
        thresholds=(0.1, 0.3, 0.5, 0.7),
        # one image per batch: a shard's batches hold the same images as one process's, so
        # the maps are bit-identical (a conv's float rounding depends on the batch, and PxAP,
        # unlike the quantised box metrics, sees it: this random model's maps are near-flat)
        batch_size=1,
        keep=3,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--save", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ctx = setup_distributed("cpu")
    result = run()
    if ctx.is_main:
        torch.save({"world": ctx.world_size, **result}, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
