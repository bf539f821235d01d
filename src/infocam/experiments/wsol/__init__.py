"""Weakly supervised object localisation (the paper's Table 4): train, evaluate, reproduce.

Modules: ``protocol`` (data sets, recipes, the paper's numbers), ``datasets`` (the splits),
``train`` (model, training, run folders), ``evaluate`` (select on validation, score test),
``report`` (table, figure), ``reproduce`` (the whole protocol).

* :func:`load_wsol_data` builds the train / validation / test splits of ClutteredDigits,
  CUB-200-2011 or Tiny-ImageNet, with boxes (the paper's halving of the official test set
  into validation and test for the two real data sets).
* :func:`train_wsol` trains a GAP classifier with plain softmax cross-entropy (as the paper)
  through :func:`infocam.training.fit` (checkpoints, resume, seed, progress come with it);
  the epoch with the best validation top-1 accuracy is kept, as in the paper.
* :func:`evaluate_run` chooses each method's region size and box threshold on the
  validation split and scores the test split (:mod:`infocam.experiments.wsol_eval`), then
  writes ``results.json``, ``table.md`` and ``figure.png``; given fixed settings
  (:func:`paper_settings`: the paper protocol, threshold 0.2, CAM without region,
  infoCAM / infoCAM+ at the paper's R, each value with its source) it selects nothing.
* :func:`reproduce_wsol` runs the whole protocol: every backbone with and without ADL, every
  method; for CUB / Tiny-ImageNet it prints the paper's Table 4 beside ours.

The synthetic default (``cluttered-digits``) is sized to finish in well under 30 minutes on
two busy CPU cores: 96 x 96 canvases, 6,000 training / 1,000 validation / 2,000 test images,
``small_gap_cnn`` (12 x 12 maps), 6 epochs of Adam (lr 2e-3, cosine) at batch 64: 564 steps
per model, 2 models (without and with ADL). Measured with one thread on a shared machine:
0.5-1.4 s per step, 12-18 minutes for the whole protocol (evaluation about 1 minute a model).
"""

from infocam.experiments.wsol.datasets import WSOLData, load_wsol_data
from infocam.experiments.wsol.evaluate import evaluate_run, paper_settings
from infocam.experiments.wsol.protocol import (
    DATASETS,
    EVAL_PROTOCOLS,
    PAPER_EVAL,
    PAPER_TABLE4,
    PROTOCOLS,
)
from infocam.experiments.wsol.report import format_table, save_figure
from infocam.experiments.wsol.reproduce import reproduce_wsol
from infocam.experiments.wsol.train import (
    WSOLRun,
    build_wsol_model,
    claim_wsol_run,
    load_trained,
    train_wsol,
)

__all__ = [
    "DATASETS",
    "EVAL_PROTOCOLS",
    "PAPER_EVAL",
    "PAPER_TABLE4",
    "PROTOCOLS",
    "WSOLData",
    "WSOLRun",
    "build_wsol_model",
    "claim_wsol_run",
    "evaluate_run",
    "format_table",
    "load_trained",
    "load_wsol_data",
    "paper_settings",
    "reproduce_wsol",
    "save_figure",
    "train_wsol",
]
