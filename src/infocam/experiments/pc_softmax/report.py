"""Table 3's report: the Markdown table beside the paper's, a verdict, per-class figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from infocam.experiments.pc_softmax.protocol import METHODS, SETTINGS

__all__ = ["plot_per_class", "render_table", "verdict"]


def _pm(s: dict[str, Any] | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    std = s.get("std")
    return f"{s['mean']:.2f} ± {std:.2f}" if std is not None else f"{s['mean']:.2f}"


def _p(test: dict[str, Any] | None) -> str:
    if not test or test.get("p") is None:
        return "-"
    p = test["p"]
    return (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}") + ("*" if p < 0.05 else "")


def verdict(results: dict[str, Any]) -> str:
    """One sentence on PC-softmax vs softmax, per-class accuracy, imbalanced training set."""
    s = results["summary"].get("imbalanced", {})
    if "softmax" not in s or "pc-softmax" not in s:
        return ""
    a, b = s["pc-softmax"]["per_class_mean"], s["softmax"]["per_class_mean"]
    t = results["tests"]["imbalanced"]["pc-softmax"]["per_class_mean"]
    n = len(a["values"])
    diff = a["mean"] - b["mean"]
    if t["p"] is None:
        sig = "no test with a single seed"
    elif t["p"] < 0.05:
        sig = f"significant at 0.05 (p = {t['p']:.3g})"
    else:
        sig = f"NOT significant at 0.05 (p = {t['p']:.3g})"
    word = "higher" if diff > 0 else "lower" if diff < 0 else "equal"
    return (
        f"Imbalanced training set, average per-class accuracy: PC-softmax {_pm(a)} vs softmax "
        f"{_pm(b)} ({diff:+.2f} points, {word}); two-sided Mann-Whitney U over {n} seeds each: "
        f"{sig}."
    )


def render_table(results: dict[str, Any]) -> str:
    """Markdown: ours (mean ± std, p vs softmax) beside the paper's Table 3."""
    paper = results["paper"]
    lines = [
        f"# Table 3 ({results['dataset']}): softmax vs PC-softmax, "
        f"{len(results['seeds'])} seeds (test accuracy, %)",
        "",
        "| training set | method | micro acc. | p vs softmax | per-class acc. | p vs softmax "
        "| rare classes | paper micro | paper per-class |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        methods = results["summary"].get(setting, {})
        tests = results["tests"].get(setting, {})
        for method in METHODS:
            if method not in methods:
                continue
            s = methods[method]
            t = tests.get(method, {})
            pp = paper.get(setting, {})
            col = {"softmax": 0, "pc-softmax": 1}.get(method)
            pm = pp["micro"][col] if col is not None and pp else ""
            pc = pp["per_class"][col] if col is not None and pp else ""
            lines.append(
                f"| {setting} | {method} | {_pm(s['micro'])} | {_p(t.get('micro'))} | "
                f"{_pm(s['per_class_mean'])} | {_p(t.get('per_class_mean'))} | "
                f"{_pm(s.get('rare_mean'))} | {pm} | {pc} |"
            )
    lines += [
        "",
        verdict(results),
        "",
        f"- Prior: {results['prior_rule']}.",
        "- Prediction: "
        + "; ".join(f"{k}: `{v}`" for k, v in results["prediction_rules"].items())
        + ".",
        "- On the balanced set the prior is uniform: PC-softmax's loss is softmax's minus "
        "log M (same gradients), weighted-ce would be softmax, and logit adjustment changes "
        "no prediction.",
        f"- Selection: {results['selection']}.",
        f"- Statistics: {results['statistics']}; * marks p < 0.05. 'rare classes': mean "
        "accuracy over the subsampled classes. Paper: * = p < 0.05 in the paper.",
        f"- Time: {results['training_seconds'] / 60:.1f} min of training and testing (sum over "
        f"the trainings, resumed ones included); this call ran {results['seconds'] / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def plot_per_class(results: dict[str, Any], path: Path) -> None:
    """Per-class test accuracy (mean ± std over seeds), one panel per training set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(METHODS, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    settings = [s for s in SETTINGS if s in results["summary"]]
    fig, axes = plt.subplots(len(settings), 1, figsize=(11, 3.4 * len(settings)), squeeze=False)
    for ax, setting in zip(axes[:, 0], settings, strict=True):
        methods = [m for m in METHODS if m in results["summary"][setting]]
        m = len(results["summary"][setting][methods[0]]["per_class"]["mean"])
        x = np.arange(m)
        width = 0.8 / len(methods)
        lo = 100.0
        for i, method in enumerate(methods):
            pc = results["summary"][setting][method]["per_class"]
            mean = np.asarray(pc["mean"], dtype=float)
            std = np.nan_to_num(np.asarray(pc["std"], dtype=float))
            lo = min(lo, float(np.nanmin(mean - std)))
            if m <= 20:
                offset = (i - (len(methods) - 1) / 2) * width
                ax.bar(
                    x + offset, mean, width, yerr=std, label=method, capsize=2, color=colors[method]
                )
            else:
                ax.plot(x, mean, ".", ms=3, label=method, color=colors[method])
        rare = {
            c
            for d in results["data"]["settings"].get(setting, {}).values()
            for c in d["rare_classes"]
        }
        if m <= 20:
            ax.set_xticks(x, [f"{c}{'*' if c in rare else ''}" for c in x])
        ax.set_ylim(max(0.0, lo - 1.0), 100.0)
        ax.set_ylabel("test accuracy (%)")
        title = (
            f"{results['dataset']}, {setting} training set: mean ± std over "
            f"{len(results['seeds'])} seed(s)"
        )
        if rare and m <= 20:
            title += " (* = class subsampled)"
        ax.set_title(title)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes[-1, 0].set_xlabel("class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
