"""Subprocess helper for the kill/resume and torchrun tests (not collected by pytest).

Trains a small MLP on fixed synthetic data with ``infocam.training.fit`` and writes the final
weights and history to ``--save`` (rank 0). ``--kill-at K`` sends SIGKILL to itself at the
K-th training step, ``--term-at K`` sends SIGTERM (a clean, checkpointed stop).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
import torch.nn.functional as F
from torch import nn

from infocam.training import TrainConfig, TrainingInterrupted, evaluate, fit, seed_everything

EXIT_INTERRUPTED = 3


def make_data(n: int, seed: int, dim: int = 12, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    w = torch.randn(dim, classes, generator=g)
    y = (x @ w + 0.5 * torch.randn(n, classes, generator=g)).argmax(dim=1)
    return x, y


def make_model(dropout: float) -> nn.Module:
    seed_everything(7)
    layers: list[nn.Module] = [nn.Linear(12, 32), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(32, 3))
    return nn.Sequential(*layers)


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class SuicidalLoss:
    """Cross-entropy that kills or terminates its own process at a given training step."""

    def __init__(self, kill_at: int, term_at: int) -> None:
        self.kill_at, self.term_at, self.calls = kill_at, term_at, 0

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.calls == self.term_at:
                os.kill(os.getpid(), signal.SIGTERM)
        return F.cross_entropy(logits, target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None)
    p.add_argument("--save", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=250)
    p.add_argument("--n-val", type=int, default=101)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--schedule", default="constant")
    p.add_argument("--kill-at", type=int, default=0)
    p.add_argument("--term-at", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--dataset", action="store_true", help="use the Dataset path, not tensors")
    p.add_argument("--val-dataset", action="store_true", help="validation data as a Dataset")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    x, y = make_data(args.n_train + args.n_val, seed=123)
    x_val, y_val = x[args.n_train :], y[args.n_train :]
    train, val = (x[: args.n_train], y[: args.n_train]), (x_val, y_val)
    if args.dataset:
        train, val = PairDataset(*train), PairDataset(*val)
    if args.val_dataset:
        val = PairDataset(*val)
    model = make_model(args.dropout)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=0.01,
        optimizer=args.optimizer,
        schedule=args.schedule,
        seed=5,
        out=args.out,
        resume=args.resume,
        quiet=True,
        restore_best=False,
    )
    try:
        result = fit(model, SuicidalLoss(args.kill_at, args.term_at), train, val, config)
    except TrainingInterrupted:
        return EXIT_INTERRUPTED
    # Every process gets all validation logits, in dataset order.
    ev = evaluate(model, val, loss_fn=F.cross_entropy, batch_size=16)
    model.eval()
    with torch.no_grad():
        expected = model(x_val)
    ok = torch.allclose(ev.logits, expected, atol=1e-6) and torch.equal(ev.targets, y_val)
    if os.environ.get("RANK", "0") == "0":
        torch.save(
            {
                "model": model.state_dict(),
                "history": result.history,
                "eval_ok": ok,
                "eval_metrics": ev.metrics,
                "resumed_from": str(result.resumed_from),
            },
            args.save,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
