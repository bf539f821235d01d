"""Table 3: softmax vs PC-softmax on balanced and imbalanced training sets.

The dataset modules (:mod:`~infocam.experiments.pc_softmax.mnist`,
:mod:`~infocam.experiments.pc_softmax.cub`; :func:`dataset_module` picks one by name) build,
for every seed, a balanced and an imbalanced *setting* (training, validation and test data).
:func:`~infocam.experiments.pc_softmax.run.run_table3` trains every method on every setting
with :func:`infocam.training.fit`, evaluates on the test data, and writes ``results.json``,
``table.md`` and ``per_class_accuracy.png``.

Modules: ``protocol`` (methods, losses, rules, the paper's numbers), ``stats`` (accuracies,
mean ± std, Mann-Whitney U), ``run`` (the trainings), ``report`` (table, verdict, figure),
``mnist`` and ``cub`` (the data of each; they import ``run``, nothing imports them but
:func:`dataset_module`).

Methods (``p`` = the empirical class prior of the training set, ``class_prior(train_labels)``):

* ``softmax``: cross-entropy; prediction ``predict(n) = argmax_y n_y``.
* ``pc-softmax``: PC-softmax cross-entropy ``-log_pc_softmax(n, p)_y``; prediction
  ``predict(n) = argmax_y n_y`` (balanced target distribution).
* ``weighted-ce``: cross-entropy with class weights ``w_y = (1/p_y) / mean_k(1/p_k)``
  (imbalanced settings only: on a balanced set the weights are all 1 and it *is* softmax).
* ``logit-adjusted``: no training of its own; the ``softmax`` model's test logits with
  post-hoc logit adjustment ``predict(n, train_prior=p) = argmax_y (n_y - log p_y)``.

Model selection: the epoch with the best validation *balanced accuracy* (mean per-class
accuracy, the metric the table is about), measured with each trained model's own rule
(``argmax n``); the test data is never looked at before the end.

Statistics: mean and sample standard deviation (``ddof=1``) over seeds; two-sided
Mann-Whitney U test (:func:`scipy.stats.mannwhitneyu`) of each method against softmax.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from infocam.experiments.pc_softmax.protocol import (
    METHODS,
    PAPER_TABLE3,
    PREDICTION_RULES,
    PRIOR_RULE,
    SELECTION_RULE,
    SETTINGS,
    TRAINED,
    Setting,
    class_weights,
    make_loss,
)
from infocam.experiments.pc_softmax.report import plot_per_class, render_table, verdict
from infocam.experiments.pc_softmax.run import OUTPUTS, claim_output, run_table3
from infocam.experiments.pc_softmax.stats import accuracy_report, mann_whitney, summarize
from infocam.training import TrainConfig

__all__ = [
    "DATASETS",
    "METHODS",
    "OUTPUTS",
    "PAPER_TABLE3",
    "PREDICTION_RULES",
    "PRIOR_RULE",
    "SELECTION_RULE",
    "SETTINGS",
    "TRAINED",
    "Setting",
    "accuracy_report",
    "class_weights",
    "dataset_module",
    "make_loss",
    "mann_whitney",
    "plot_per_class",
    "render_table",
    "reproduce",
    "run_table3",
    "summarize",
    "verdict",
]

# The data sets of Table 3: each name is a module of this package with DEFAULTS (its
# training settings), settings(...) and run(...).
DATASETS = ("mnist", "cub")
Dataset = Literal["mnist", "cub"]


def dataset_module(dataset: str) -> ModuleType:
    """The module of ``dataset`` (one of :data:`DATASETS`), imported on first use."""
    if dataset not in DATASETS:
        raise ValueError(
            f"dataset must be one of {', '.join(map(repr, DATASETS))}; got {dataset!r}"
        )
    return importlib.import_module(f"{__name__}.{dataset}")


def reproduce(
    dataset: Dataset,
    *,
    config: TrainConfig,
    seeds: Sequence[int],
    out: str | Path,
    data_root: str | Path | None = None,
    weights: Any = None,
    image_size: int = 299,
    val_fraction: float = 0.1,
    verify: bool = True,
    keep_checkpoints: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """``infocam reproduce pc-softmax``: Table 3 on ``dataset`` ("mnist" or "cub").

    ``out`` is claimed (locked, refused when it holds results without ``config.resume`` /
    ``config.overwrite``) before any data loads."""
    module = dataset_module(dataset)
    if dataset == "cub" and data_root is None:
        raise ValueError("dataset 'cub' needs data_root (the CUB_200_2011 folder)")
    with claim_output(Path(out), config):
        if dataset == "mnist":
            return module.run(
                seeds,
                out,
                config,
                data_root=data_root,
                val_fraction=val_fraction,
                verify=verify,
                keep_checkpoints=keep_checkpoints,
                quiet=quiet,
            )
        return module.run(
            data_root,
            seeds,
            out,
            config,
            weights=weights,
            image_size=image_size,
            keep_checkpoints=keep_checkpoints,
            quiet=quiet,
        )
