"""``infocam mi``: the information between a data file's features and its labels.

:func:`measure_file` reads the file (:func:`infocam.data.tables.load_table`), fits a
cross-fitted :class:`~infocam.ClassifierMIEstimator` and returns a JSON-ready result;
:func:`format_report` is the text the command prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from infocam.data.tables import load_table
from infocam.mi import ClassifierMIEstimator
from infocam.mi.estimate import LOWER_BOUND_COVERS, SoftmaxKind
from infocam.mi.estimator import DEFAULT_CV

__all__ = ["format_report", "measure_file"]


def measure_file(
    path: str | Path,
    label: str,
    *,
    features: Sequence[str] | None = None,
    softmax: SoftmaxKind = "pc",
    cv: int | None = DEFAULT_CV,
    hidden: Sequence[int] = (100, 100, 100),
    max_epochs: int = 200,
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
    bias_correction: Literal["learning_curve"] | None = None,
) -> dict:
    """``infocam mi``: estimate I(X; Y) for a file's features and labels; a JSON-ready dict.

    With ``bias_correction="learning_curve"`` the estimate is extrapolated to infinite
    training data (not a lower bound); the plain held-out one is in ``lower_bound_nat``.
    Each number says what it covers: ``ci95_nat`` is an interval for the expectation of the
    estimate (``ci95_covers``), not for I(X;Y); ``lower_confidence_bound95_nat`` (the plain
    held-out estimate - 1.645 stderr) is a one-sided 95% lower confidence bound for I(X;Y)
    (``lower_confidence_bound95_covers``)."""
    x, y, names = load_table(path, label, features)
    est = ClassifierMIEstimator(
        softmax,
        hidden,
        cv=cv,
        max_epochs=max_epochs,
        random_state=seed,
        device=device,
        progress=progress,
        bias_correction=bias_correction,
    )
    mi = est.fit_estimate(x, y)
    prior = est.prior_.numpy()
    h_y = float(-(prior * np.log(prior)).sum())
    lo, hi = mi.interval()
    bits = mi.to("bit")
    return {
        "data": str(path),
        "label": label,
        "features": names,
        "n_samples": int(x.shape[0]),
        "n_features": int(x.shape[1]),
        "classes": est.classes_.tolist(),
        "mi_nat": mi.value,
        "stderr_nat": mi.stderr,
        "ci95_nat": [lo, hi],
        "mi_bit": bits.value,
        "stderr_bit": bits.stderr,
        "entropy_y_nat": h_y,
        "fraction_of_entropy": mi.value / h_y,
        "ci95_covers": mi.interval_covers,
        "estimate_kind": "bias-corrected (learning curve)" if mi.corrected else "held-out",
        "lower_bound_nat": est.lower_bound_.value,
        "lower_bound_stderr_nat": est.lower_bound_.stderr,
        "lower_confidence_bound95_nat": est.lower_bound_.lower_confidence_bound(0.95),
        "lower_confidence_bound95_covers": LOWER_BOUND_COVERS,
        "heldout_accuracy": est.accuracy_,
        "n_heldout": mi.n,
        "n_duplicate_rows": est.n_duplicate_rows_,
        "method": {
            "softmax": softmax,
            "cv": cv,
            "hidden": list(hidden),
            "seed": seed,
            "bias_correction": bias_correction,
            "best_epochs": list(est.best_epochs_),
        },
    }


def format_report(r: dict) -> str:
    """The plain-text report of a :func:`measure_file` result (what ``infocam mi`` prints)."""
    how = f"{r['method']['cv']}-fold cross-fitting" if r["method"]["cv"] else "20% held out"
    lo, hi = r["ci95_nat"]
    corrected = bool(r["method"].get("bias_correction"))
    kind = "bias-corrected (learning curve)" if corrected else "held-out"
    what = (
        "the bias-corrected estimate's expectation"
        if corrected
        else "the held-out estimate's expectation"
    )
    short = (
        "I(X;Y) is inside only as far as the correction removes the classifier's excess loss"
        if corrected
        else "the held-out estimate falls short of I(X;Y) by the classifier's excess cross-entropy"
    )
    return "\n".join(
        [
            f"{r['data']}: {r['n_samples']} samples, {r['n_features']} feature(s), "
            f"{len(r['classes'])} classes (label {r['label']!r})",
            f"I(X;Y)   = {r['mi_nat']:.4f} ± {r['stderr_nat']:.4f} nat   "
            f"({r['mi_bit']:.4f} ± {r['stderr_bit']:.4f} bit); {kind} estimate",
            *(
                [
                    f"           plain held-out estimate (a lower bound in expectation) "
                    f"{r['lower_bound_nat']:.4f} ± {r['lower_bound_stderr_nat']:.4f} nat"
                ]
                if corrected
                else []
            ),
            f"           95% interval [{lo:.4f}, {hi:.4f}] nat: covers {what}, not I(X;Y)",
            f"           ({short})",
            f"I(X;Y)  >= {r['lower_confidence_bound95_nat']:.4f} nat   one-sided 95% lower "
            "confidence bound (plain held-out estimate - 1.645 stderr)",
            f"H(Y)     = {r['entropy_y_nat']:.4f} nat;  I/H(Y) = {r['fraction_of_entropy']:.3f}",
            f"accuracy = {r['heldout_accuracy']:.4f} held out "
            f"({how}, n={r['n_heldout']}, {r['method']['softmax']} MLP {r['method']['hidden']})",
            *(
                [
                    f"copies   = {r['n_duplicate_rows']} row(s) repeat another row's features; "
                    "each group of copies was kept in one split (never both trained on and "
                    "scored)"
                ]
                if r.get("n_duplicate_rows")
                else []
            ),
        ]
    )
