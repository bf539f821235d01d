"""Table 3 on real MNIST: softmax vs PC-softmax on balanced and imbalanced training sets.

For each seed ``s``:

* balanced: ``balanced_subset(train_labels, seed=s)`` (5,421 per class, the size of the
  smallest class, digit 5);
* imbalanced: ``imbalanced_subset(train_labels, (0, 2, 4, 6, 8), keep=0.5, seed=s)`` (the
  paper: "randomly drop one half of images for digit 0, 2, 4, 6 and 8");

then ``stratified_split(..., val_fraction, seed=s)`` carves a validation set out of that
training set (same class proportions). Every model is tested on the official 10,000-image
test set. Network: :func:`infocam.models.mnist_cnn`; inputs scaled to [0, 1] and normalised
with MNIST's mean 0.1307 and std 0.3081.

    from infocam.experiments.pc_softmax.mnist import run
    results = run(seeds=range(5), out="results/pc-softmax-mnist")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from infocam.data import balanced_subset, imbalanced_subset, load_mnist, stratified_split
from infocam.errors import DatasetNotFoundError
from infocam.experiments.pc_softmax.protocol import Setting
from infocam.experiments.pc_softmax.run import run_table3
from infocam.models import mnist_cnn
from infocam.training import TrainConfig

__all__ = ["DEFAULTS", "RARE_CLASSES", "run", "settings"]

RARE_CLASSES = (0, 2, 4, 6, 8)
MEAN, STD = 0.1307, 0.3081
# Adam 1e-3, batch 64: a 40k-image epoch of mnist_cnn takes about 10 s on one loaded CPU core,
# so 5 seeds x 5 trainings x 4 epochs take under 30 minutes on 2 shared cores (see the README).
DEFAULTS = {
    "epochs": 4,
    "batch_size": 64,
    "lr": 1e-3,
    "optimizer": "adam",
    "schedule": "constant",
    "weight_decay": 0.0,
}


def _inputs(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)


def settings(
    data: Any, seed: int, val_fraction: float = 0.1, test: tuple | None = None
) -> Iterator[Setting]:
    """The balanced and the imbalanced :class:`Setting` of ``seed`` for an ``MNISTData``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    x_all, y_all = data.train_images, data.train_labels
    if test is None:
        test = (_inputs(data.test_images), data.test_labels)
    for name, idx, rare in (
        ("balanced", balanced_subset(y_all, seed=seed), []),
        ("imbalanced", imbalanced_subset(y_all, RARE_CLASSES, keep=0.5, seed=seed), RARE_CLASSES),
    ):
        val, train = stratified_split(y_all[idx], val_fraction, seed=seed)
        tr, va = idx[train], idx[val]
        if va.numel() == 0:
            raise ValueError(
                f"val_fraction={val_fraction} leaves no validation image in the {name} set"
            )
        yield Setting(
            name=name,
            seed=seed,
            train=(_inputs(x_all[tr]), y_all[tr]),
            val=(_inputs(x_all[va]), y_all[va]),
            test=test,
            train_labels=y_all[tr],
            num_classes=10,
            rare_classes=list(rare),
            info={"val": int(va.numel()), "test": int(test[1].numel())},
        )


def run(
    seeds: Iterable[int] = range(5),
    out: str | Path = "results/pc-softmax-mnist",
    config: TrainConfig | None = None,
    *,
    data_root: str | Path | None = None,
    val_fraction: float = 0.1,
    verify: bool = True,
    keep_checkpoints: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run Table 3 on MNIST; write ``results.json``, ``table.md`` and the figure to ``out``.

    ``data_root`` and ``verify`` (md5 check of the files) go to :func:`infocam.data.load_mnist`.
    """
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        raise DatasetNotFoundError(
            f"MNIST: data root {data_root} does not exist (expected MNIST/raw/ with the four "
            "IDX files inside it)",
            Path(data_root),
        )
    config = config if config is not None else TrainConfig(**DEFAULTS)
    data = load_mnist(data_root, verify=verify)
    test = (_inputs(data.test_images), data.test_labels)
    seeds = list(seeds)
    return run_table3(
        "mnist",
        lambda seed: settings(data, seed, val_fraction, test),
        lambda: mnist_cnn(10),
        config,
        seeds,
        out,
        info={
            "source": str(data.source),
            "model": "mnist_cnn (conv 1-10-20, fc 320-50-10)",
            "val_fraction": val_fraction,
            "test": "official MNIST test set (10,000 images)",
        },
        validation=f"a stratified {val_fraction:.0%} of each training set, seeded with the seed",
        keep_checkpoints=keep_checkpoints,
        quiet=quiet,
        input_spec={"channels": 1, "mean": [MEAN], "std": [STD]},
    )
