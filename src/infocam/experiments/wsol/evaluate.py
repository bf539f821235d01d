"""Evaluate a trained WSOL model: settings chosen on validation, scores on test, files out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from infocam.experiments.wsol.datasets import WSOLData
from infocam.experiments.wsol.report import format_table, json_ready, save_figure, write_text
from infocam.experiments.wsol_eval import WSOLEvalOptions, evaluate_wsol
from infocam.training.checkpoint import write_json
from infocam.training.distributed import is_main_process

__all__ = ["evaluate_run"]


def evaluate_run(
    model: nn.Module,
    data: WSOLData,
    out: str | Path | None,
    options: WSOLEvalOptions | None = None,
    *,
    label: str = "",
    figure_rows: int = 4,
    **overrides: Any,
) -> dict[str, Any]:
    """Select on ``data.val``, score ``data.test``; write results.json, table.md, figure.png.

    ``options`` / ``overrides``: see :class:`~infocam.experiments.wsol_eval.WSOLEvalOptions`.
    Returns the JSON-ready result (``settings``, ``val_grid``, ``test``) plus ``seconds``.
    """
    opts = WSOLEvalOptions.of(options, **overrides)
    t0 = time.perf_counter()
    result = evaluate_wsol(model, data.val, data.test, opts, keep=figure_rows)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["n_val"], result["n_test"] = len(data.val), len(data.test)
    if out is not None and is_main_process():  # under torchrun, rank 0 writes
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(json_ready(result), out / "results.json")
        rows = [{"model": label or "model", "adl": None, **json_ready(result)}]
        write_text(out / "table.md", format_table(rows) + "\n")
        if figure_rows:
            save_figure(result["examples"], out / "figure.png", label, data.classes)
    return result
