"""One training runtime for every experiment.

``fit`` trains a classifier on in-memory tensors or a Dataset, in one process or under
``torchrun`` (DDP), with atomic checkpoints, exact resume, one seed for everything,
AMP/channels_last on GPU, a progress bar, a JSON-lines log and ``results.json``.
``evaluate`` returns a model's logits, targets and metrics on a dataset.

    from infocam.training import TrainConfig, fit, evaluate

    result = fit(model, loss_fn, (x_train, y_train), (x_val, y_val),
                 TrainConfig(epochs=10, lr=1e-3, seed=0, out="runs/a"))
    test = evaluate(model, (x_test, y_test), loss_fn=loss_fn)
"""

from infocam.training.checkpoint import (
    atomic_write,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from infocam.training.config import TrainConfig
from infocam.training.distributed import DistContext, setup_distributed
from infocam.training.evaluation import evaluate
from infocam.training.loading import SkipCorrupt, Skipped, collate_skipping, epoch_indices
from infocam.training.loop import fit
from infocam.training.metrics import EpochMetrics
from infocam.training.results import (
    EvalResult,
    TrainingInterrupted,
    TrainingOutOfMemoryError,
    TrainResult,
)
from infocam.training.seeding import (
    capture_rng_state,
    restore_rng_state,
    seed_everything,
    set_deterministic,
)

__all__ = [
    "DistContext",
    "EpochMetrics",
    "EvalResult",
    "SkipCorrupt",
    "Skipped",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingOutOfMemoryError",
    "add_training_arguments",
    "atomic_write",
    "capture_rng_state",
    "collate_skipping",
    "config_from_args",
    "epoch_indices",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_model_state",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_deterministic",
    "setup_distributed",
]

# The command-line flags of a TrainConfig live with the CLI (infocam.cli._args); these two
# names stay reachable here, imported on first use (the runtime does not depend on the CLI).
_CLI_HELPERS = ("add_training_arguments", "config_from_args")


def __getattr__(name: str):
    if name in _CLI_HELPERS:
        from infocam.cli import _args

        return getattr(_args, name)
    raise AttributeError(f"module 'infocam.training' has no attribute {name!r}")
