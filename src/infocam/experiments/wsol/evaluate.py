"""Evaluate a trained WSOL model: settings chosen on validation (or fixed), scores on test."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from infocam.experiments.wsol.datasets import WSOLData
from infocam.experiments.wsol.protocol import PAPER_EVAL, paper_regions
from infocam.experiments.wsol.report import format_table, json_ready, save_figure, write_text
from infocam.experiments.wsol_eval import (
    BoxSetting,
    WSOLEvalOptions,
    evaluate_fixed,
    evaluate_wsol,
)
from infocam.training.checkpoint import write_json
from infocam.training.distributed import is_main_process

__all__ = ["evaluate_run", "paper_settings"]


def paper_settings(
    dataset: str, arch: str, methods: Sequence[str]
) -> tuple[dict[str, BoxSetting], dict[str, dict[str, Any]]]:
    """The paper protocol's fixed settings of ``methods`` for ``arch`` on ``dataset``, and
    each value with its source (``{method: {"region": (r, source), "threshold": (t,
    source)}}``, for results.json)."""
    regions = paper_regions(dataset, arch)
    t = PAPER_EVAL["threshold"]
    settings = {m: BoxSetting(regions[m][0], t[0]) for m in methods}
    sources = {
        m: {
            "region": {"value": regions[m][0], "source": regions[m][1]},
            "threshold": {"value": t[0], "source": t[1]},
        }
        for m in methods
    }
    return settings, sources


def evaluate_run(
    model: nn.Module,
    data: WSOLData,
    out: str | Path | None,
    options: WSOLEvalOptions | None = None,
    *,
    label: str = "",
    figure_rows: int = 4,
    settings: dict[str, BoxSetting] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Select on ``data.val``, score ``data.test``; write results.json, table.md, figure.png.

    With ``settings`` (fixed per method: the paper protocol) nothing is selected and the
    validation split is not used. ``options`` / ``overrides``: see
    :class:`~infocam.experiments.wsol_eval.WSOLEvalOptions`. Returns the JSON-ready result
    (``settings``, ``val_grid`` when selected, ``test``) plus ``seconds``.
    """
    opts = WSOLEvalOptions.of(options, **overrides)
    t0 = time.perf_counter()
    if settings is None:
        result = evaluate_wsol(model, data.val, data.test, opts, keep=figure_rows)
    else:
        result = evaluate_fixed(model, data.test, settings, opts, keep=figure_rows)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["protocol"] = "selected" if settings is None else "paper"
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
