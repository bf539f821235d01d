"""Table 3's statistics: accuracies per class, mean ± std over seeds, Mann-Whitney U tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats

__all__ = ["accuracy_report", "mann_whitney", "summarize"]


def accuracy_report(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, rare: Sequence[int] = ()
) -> dict[str, Any]:
    """Micro accuracy, per-class accuracies (recall) and their mean, in percent.

    ``per_class_mean`` averages over the classes present in ``target``; with ``rare``
    classes, ``rare_mean`` and ``frequent_mean`` average over the two groups.
    """
    pred, target = pred.reshape(-1).cpu().long(), target.reshape(-1).cpu().long()
    if pred.shape != target.shape or target.numel() == 0:
        raise ValueError(
            f"pred and target must be equal, non-empty; got {pred.shape}, {target.shape}"
        )
    total = torch.bincount(target, minlength=num_classes).double()
    hits = torch.bincount(target[pred == target], minlength=num_classes).double()
    per_class = torch.where(total > 0, 100.0 * hits / total.clamp_min(1), torch.nan)
    present = total > 0
    out: dict[str, Any] = {
        "micro": 100.0 * float((pred == target).double().mean()),
        "per_class_mean": float(per_class[present].mean()),
        "per_class": [None if math.isnan(v) else v for v in per_class.tolist()],
    }
    if rare:
        mask = torch.zeros(num_classes, dtype=torch.bool)
        mask[list(rare)] = True
        out["rare_mean"] = float(per_class[mask & present].mean())
        out["frequent_mean"] = float(per_class[~mask & present].mean())
    return out


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two-sided Mann-Whitney U test of ``a`` against ``b`` (scipy's ``method='auto'``).

    Returns ``u`` (the statistic of ``a``), ``p`` and ``n``. With fewer than two values on a
    side there is no test (``p`` is ``None``).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return {"u": None, "p": None, "n": [int(a.size), int(b.size)]}
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return {"u": float(res.statistic), "p": float(res.pvalue), "n": [int(a.size), int(b.size)]}


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return {
        "mean": float(v.mean()) if v.size else None,
        "std": float(v.std(ddof=1)) if v.size > 1 else None,
        "values": v.tolist(),
    }


def summarize(runs: Sequence[dict[str, Any]]) -> tuple[dict, dict]:
    """Mean ± std per (setting, method, metric), and Mann-Whitney tests against softmax."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        summary.setdefault(r["setting"], {}).setdefault(r["method"], {"runs": []})["runs"].append(r)
    tests: dict[str, dict[str, dict[str, Any]]] = {}
    for setting, methods in summary.items():
        for s in methods.values():
            rs = sorted(s.pop("runs"), key=lambda r: r["seed"])
            for key in ("micro", "per_class_mean", "rare_mean", "frequent_mean"):
                if key in rs[0]:
                    s[key] = _mean_std([r[key] for r in rs])
            per_class = np.array(
                [[np.nan if v is None else v for v in r["per_class"]] for r in rs], dtype=float
            )
            s["per_class"] = {
                "mean": np.nanmean(per_class, axis=0).tolist(),
                "std": (
                    np.nanstd(per_class, axis=0, ddof=1) if len(rs) > 1 else per_class[0] * 0
                ).tolist(),
            }
            s["seeds"] = [r["seed"] for r in rs]
        if "softmax" in methods:
            base = methods["softmax"]
            for method, s in methods.items():
                if method == "softmax":
                    continue
                tests.setdefault(setting, {})[method] = {
                    key: mann_whitney(s[key]["values"], base[key]["values"])
                    for key in ("micro", "per_class_mean")
                }
    return summary, tests
