"""What a run tells its user: a tqdm bar, a JSON-lines log, ``results.json``. Rank 0 only."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = ["RunLog", "epoch_line", "run_results"]


def clean_json(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (strict JSON readers reject NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


class RunLog:
    """Append one JSON object per line to ``path`` (flushed each time); ``None``: a no-op.

    Every line has ``event`` and ``time`` (Unix seconds). A resumed run appends to the same
    file, so the log tells the whole story of the run.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **clean_json(fields)}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, *, enabled: bool, initial: int = 0) -> tqdm:
    """A per-epoch bar over batches (to stderr); disabled bars cost nothing."""
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="batch",
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
        mininterval=0.5,
    )


def epoch_line(r: dict[str, Any], epochs: int) -> str:
    """The line printed after an epoch: its losses, accuracies and throughput."""
    parts = [
        f"epoch {r['epoch']}/{epochs}",
        f"train loss {r['train_loss']:.4f} acc {r['train_accuracy']:.4f}",
    ]
    if "val_loss" in r:
        parts.append(
            f"val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.4f}"
            + (" *" if r.get("best") else "")
        )
    if r.get("samples_per_s"):
        parts.append(f"{r['samples_per_s']:.0f} samples/s")
    return " | ".join(parts)


def run_results(result: Any, ctx: Any, config: Any, **extra: Any) -> dict[str, Any]:
    """The ``results.json`` of a finished :func:`~infocam.training.fit` run (a ``TrainResult``,
    the run's ``DistContext`` and ``TrainConfig``; ``extra``: the skipped files)."""
    return clean_json(
        {
            "metric": result.metric,
            "best_epoch": result.best_epoch,
            "best_metric": result.best_metric,
            "epochs": len(result.history),
            "best": result.best,
            "final": result.last,
            **extra,
            "world_size": ctx.world_size,
            "device": str(ctx.device),
            "seconds": round(result.seconds, 3),
            "config": config.to_dict(),
            "history": result.history,
        }
    )
