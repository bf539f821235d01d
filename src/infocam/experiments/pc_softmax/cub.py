"""Table 3 on CUB-200-2011: fine-tune Inception-V3 with softmax or PC-softmax.

Needs the official ``CUB_200_2011`` folder (not shipped; see :class:`infocam.data.CUB200`).
For each seed ``s``:

* balanced: the official training split (5,994 images; 194 classes have 30, 6 have 29);
* imbalanced: the paper's split, half of the classes (chosen with seed ``s``) keep a random
  half of their images (``CUB200(..., imbalanced=True, imbalance_seed=s)``).

Model selection on ``val``, report on ``test``: the paper's two seeded halves of the official
test set (``split_seed=0``, the same for every seed).

Hyper-parameters: the paper follows Cui et al. (CVPR 2018) for CUB and gives no numbers; we
take those of the fine-tuning script published with their code (read from public copies of
it): momentum SGD (0.9), learning rate 0.01 divided by 10 every 10 epochs, 30 epochs,
batch 64, 299 px crops; plus weight decay 4e-5 (Inception's usual value) and the usual
augmentation (random crop of a 342 px resize and horizontal flip for training, centre crop
for evaluation). The
whole network is fine-tuned in one stage. The auxiliary classifier adds 0.4 x its loss
(:func:`infocam.models.inception_loss`); it needs 299 px inputs, so smaller ``image_size``
(down to Inception's minimum of 75 px, for quick tests) trains without it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from infocam.data import CUB200
from infocam.data.transforms import wsol_transform
from infocam.experiments.pc_softmax.protocol import Setting
from infocam.experiments.pc_softmax.run import run_table3
from infocam.models import inception_loss, inception_v3
from infocam.models.inputs import IMAGENET_INPUT
from infocam.models.weights import WeightsLike
from infocam.training import TrainConfig

__all__ = ["AUX_MIN_SIZE", "DEFAULTS", "MIN_SIZE", "run", "settings"]

MIN_SIZE = 75  # the smallest input torchvision's Inception-V3 accepts
AUX_MIN_SIZE = 299  # the auxiliary head's pooling needs a 17x17 Mixed_6e map
DEFAULTS = {
    "epochs": 30,
    "batch_size": 64,
    "lr": 0.01,
    "optimizer": "sgd",
    "schedule": "step",
    "lr_step": 10,
    "lr_gamma": 0.1,
    "weight_decay": 4e-5,
    "momentum": 0.9,
}


def _transforms(image_size: int) -> tuple[Any, Any]:
    resize = round(image_size * 342 / 299)
    return (
        wsol_transform(True, resize=resize, crop=image_size),
        wsol_transform(False, resize=resize, crop=image_size),
    )


def settings(
    root: str | Path, seed: int, image_size: int = 299, *, val: Any = None, test: Any = None
) -> Iterator[Setting]:
    """The balanced and the imbalanced :class:`Setting` of ``seed`` (CUB's val / test)."""
    train_tf, eval_tf = _transforms(image_size)
    val = val if val is not None else CUB200(root, "val", eval_tf)
    test = test if test is not None else CUB200(root, "test", eval_tf)
    for name, imbalanced in (("balanced", False), ("imbalanced", True)):
        train = CUB200(root, "train", train_tf, imbalanced=imbalanced, imbalance_seed=seed)
        yield Setting(
            name=name,
            seed=seed,
            train=train,
            val=val,
            test=test,
            train_labels=train.labels,
            num_classes=len(train.classes),
            rare_classes=list(train.halved_classes),
            info={"val": len(val), "test": len(test)},
        )


def run(
    root: str | Path,
    seeds: Iterable[int] = range(5),
    out: str | Path = "results/pc-softmax-cub",
    config: TrainConfig | None = None,
    *,
    weights: WeightsLike = "IMAGENET1K_V1",
    image_size: int = 299,
    keep_checkpoints: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run Table 3 on CUB-200-2011; write ``results.json``, ``table.md`` and the figure.

    ``weights``: a torchvision ``Inception_V3_Weights`` name, a state-dict file, or ``None``
    (random initialisation, for tests only).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MIN_SIZE:
        raise ValueError(
            f"image_size must be an integer >= {MIN_SIZE} (Inception-V3); got {image_size!r}"
        )
    config = config if config is not None else TrainConfig(**DEFAULTS)
    _, eval_tf = _transforms(image_size)
    val, test = CUB200(root, "val", eval_tf), CUB200(root, "test", eval_tf)
    num_classes = len(val.classes)
    aux = image_size >= AUX_MIN_SIZE
    make_model = functools.partial(inception_v3, num_classes, weights, aux_logits=aux)
    make_model()  # fail now, not after the data is read, if the weights cannot be loaded
    return run_table3(
        "cub",
        lambda seed: settings(root, seed, image_size, val=val, test=test),
        make_model,
        config,
        list(seeds),
        out,
        wrap_loss=lambda loss: functools.partial(inception_loss, loss_fn=loss),
        info={
            "source": str(val.root),
            "model": "inception_v3 (torchvision), auxiliary head "
            + ("on (0.4 x its loss)" if aux else f"off (needs >= {AUX_MIN_SIZE} px)"),
            "weights": None if weights is None else str(weights),
            "image_size": image_size,
            "test": "CUB-200-2011 'test': half of the official test set (split_seed=0)",
        },
        validation="CUB-200-2011 'val', the other half of the official test set",
        keep_checkpoints=keep_checkpoints,
        quiet=quiet,
        input_spec=IMAGENET_INPUT.to_dict(),
    )
