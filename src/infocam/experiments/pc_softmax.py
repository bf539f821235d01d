"""Table 3: softmax vs PC-softmax on balanced and imbalanced training sets (the shared part).

The dataset modules (:mod:`~infocam.experiments.pc_softmax_mnist`,
:mod:`~infocam.experiments.pc_softmax_cub`) build, for every seed, a balanced and an
imbalanced *setting* (training, validation and test data). This module trains every method
on every setting with :func:`infocam.training.fit`, evaluates on the test data, and writes
``results.json``, ``table.md`` and ``per_class_accuracy.png``.

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

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from infocam.errors import CheckpointError
from infocam.softmax import PCSoftmaxCrossEntropy, class_prior, predict
from infocam.training import (
    TrainConfig,
    atomic_write,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from infocam.training.checkpoint import write_json
from infocam.training.config import resume_conflicts
from infocam.training.progress import clean_json
from infocam.training.run_folder import claim_run_folder

__all__ = [
    "METHODS",
    "PAPER_TABLE3",
    "PREDICTION_RULES",
    "PRIOR_RULE",
    "Setting",
    "accuracy_report",
    "class_weights",
    "mann_whitney",
    "reproduce",
    "run_table3",
    "summarize",
]

METHODS = ("softmax", "pc-softmax", "weighted-ce", "logit-adjusted")
TRAINED = ("softmax", "pc-softmax", "weighted-ce")
SETTINGS = ("balanced", "imbalanced")

PRIOR_RULE = (
    "PC-softmax is trained with the empirical class prior of the training set, "
    "p = class_prior(train_labels)"
)
PREDICTION_RULES = {
    "softmax": "predict(logits) = argmax_y n_y",
    "pc-softmax": "predict(logits) = argmax_y n_y (balanced target distribution)",
    "weighted-ce": "predict(logits) = argmax_y n_y; loss weights w_y = (1/p_y) / mean_k(1/p_k)",
    "logit-adjusted": "softmax model, predict(logits, train_prior=p) = argmax_y (n_y - log p_y)",
}
SELECTION_RULE = (
    "best epoch by validation balanced accuracy (each model's own argmax rule); the test "
    "data is used once, at the end"
)

# Table 3 of the paper (percent): (softmax, PC-softmax); a star marks p < 0.05 (Mann-Whitney).
PAPER_TABLE3: dict[str, dict[str, dict[str, tuple[str, str]]]] = {
    "mnist": {
        "balanced": {"micro": ("97.95", "97.91"), "per_class": ("97.95", "97.91")},
        "imbalanced": {"micro": ("96.81", "96.86"), "per_class": ("95.05", "96.30*")},
    },
    "cub": {
        "balanced": {"micro": ("89.23", "89.18"), "per_class": ("89.21", "89.16")},
        "imbalanced": {"micro": ("89.21", "89.73*"), "per_class": ("84.63", "87.69*")},
    },
}


@dataclass
class Setting:
    """One training set of one seed, with its validation and test data.

    ``train``/``val``/``test`` are what :func:`infocam.training.fit` takes (``(x, y)``
    tensors or Datasets). ``train_labels`` gives the prior; ``rare_classes`` are the classes
    that were subsampled (empty when balanced).
    """

    name: str
    seed: int
    train: Any
    val: Any
    test: Any
    train_labels: torch.Tensor
    num_classes: int
    rare_classes: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def prior(self) -> torch.Tensor:
        return class_prior(self.train_labels, self.num_classes, dtype=torch.float64)


# ----------------------------------------------------------------------------- losses


def class_weights(prior: Any) -> torch.Tensor:
    """Inverse-frequency class weights ``w_y = (1/p_y) / mean_k(1/p_k)`` (mean weight 1)."""
    p = torch.as_tensor(prior, dtype=torch.float64)
    if p.dim() != 1 or p.numel() == 0 or not bool((p > 0).all()):
        raise ValueError(f"prior must be a 1-D tensor of positive frequencies; got {p.tolist()}")
    inv = 1.0 / p
    return (inv / inv.mean()).to(torch.float32)


class _WeightedCrossEntropy(nn.Module):
    """Class-weighted cross-entropy, ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (torch's mean)."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight.to(logits.dtype))


class _FollowDevice:
    """Call a loss module, moving it to the logits' device first (fit moves only the model)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        buf = next(self.module.buffers(), None)
        if buf is not None and buf.device != logits.device:
            self.module.to(logits.device)
        return self.module(logits, target)


def make_loss(method: str, prior: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    """The training loss of ``method`` on logits (prior: the training set's class prior)."""
    if method == "softmax":
        return F.cross_entropy
    if method == "pc-softmax":
        return _FollowDevice(PCSoftmaxCrossEntropy(prior))
    if method == "weighted-ce":
        return _FollowDevice(_WeightedCrossEntropy(class_weights(prior)))
    raise ValueError(f"method must be one of {', '.join(TRAINED)}; got {method!r}")


# ----------------------------------------------------------------------------- metrics


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


# ----------------------------------------------------------------------------- running


OUTPUTS = "test_outputs.pt"


def _is_main() -> bool:
    """Rank 0 under ``torchrun`` (or no ``torchrun``): the process that prints and writes."""
    return os.environ.get("RANK", "0") == "0"


def _train_one(
    setting: Setting,
    method: str,
    make_model: Callable[[], nn.Module],
    wrap_loss: Callable[[Callable], Callable],
    config: TrainConfig,
    run_dir: Path,
    collate_fn: Callable | None,
    keep_checkpoints: bool,
    input_spec: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Train ``method`` on ``setting``; return its record and the test logits/targets.

    The outputs are saved to ``run_dir/test_outputs.pt``; with ``config.resume`` a training
    whose outputs exist is not run again. The checkpoints of a finished training are removed
    unless ``keep_checkpoints``. Finished outputs are read back only when they were made with
    the same settings and training set; otherwise a ``CheckpointError`` names what changed.
    """
    done = run_dir / OUTPUTS
    cfg = dataclasses.replace(
        config, seed=setting.seed, out=run_dir, select_metric="balanced_accuracy"
    )
    if config.resume and done.is_file():
        saved = load_checkpoint(done)
        _check_reusable(saved, cfg, len(setting.train), done)
        return dict(saved["record"]), saved["logits"], saved["targets"]
    if config.overwrite:
        done.unlink(missing_ok=True)
    seed_everything(setting.seed)  # same initial weights for every method of a seed
    model = make_model()
    t0 = time.perf_counter()
    result = fit(
        model,
        wrap_loss(make_loss(method, setting.prior)),
        setting.train,
        setting.val,
        cfg,
        collate_fn=collate_fn,
        input_spec=input_spec,
    )
    test = evaluate(
        result.model,
        setting.test,
        batch_size=cfg.eval_batch_size or cfg.batch_size,
        device=cfg.device,
        amp=cfg.amp,
        workers=cfg.workers,
        collate_fn=collate_fn,
    )
    assert test.logits is not None and test.targets is not None
    record = {
        "best_epoch": result.best_epoch,
        "val_balanced_accuracy": None
        if result.best_metric is None
        else 100.0 * float(result.best_metric),
        "epochs": len(result.history),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    logits, targets = test.logits.float().cpu(), test.targets.cpu()
    if not _is_main():  # under torchrun every process has all test logits; rank 0 writes
        return record, logits, targets
    save_checkpoint(
        {
            "logits": logits,
            "targets": targets,
            "train_prior": setting.prior,
            "record": record,
            "config": cfg.to_dict(),
            "train_size": len(setting.train),
        },
        done,
    )
    if not keep_checkpoints:
        for name in ("last.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    return record, logits, targets


def _claim_output(out: Path, config: TrainConfig) -> contextlib.AbstractContextManager:
    """Lock ``out`` (rank 0) and refuse it when it holds results, unless resume / overwrite."""
    if not _is_main():
        return contextlib.nullcontext(out)
    return claim_run_folder(
        out,
        resume=config.resume not in (False, None),
        overwrite=config.overwrite,
        remove=("results.json", "table.md", "per_class_accuracy.png"),
        what="output folder",
    )


def _check_reusable(saved: dict[str, Any], cfg: TrainConfig, train_size: int, path: Path) -> None:
    """Refuse finished outputs made with other settings (a table mixing two protocols)."""
    old = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    changed = resume_conflicts(old, cfg)
    if "epochs" in old and old["epochs"] != cfg.epochs:
        changed.append(f"--epochs {old['epochs']} -> {cfg.epochs}")
    if "train_size" in saved and saved["train_size"] != train_size:
        changed.append(f"training set {saved['train_size']} -> {train_size} samples")
    if changed:
        raise CheckpointError(
            f"cannot resume with {path}, a training finished with other settings: "
            f"{'; '.join(changed)}. Use its settings, or start anew (--overwrite, or another "
            "--out)"
        )


def run_table3(
    dataset: str,
    settings: Callable[[int], Iterable[Setting]],
    make_model: Callable[[], nn.Module],
    config: TrainConfig,
    seeds: Sequence[int],
    out: str | Path,
    *,
    wrap_loss: Callable[[Callable], Callable] = lambda loss: loss,
    collate_fn: Callable | None = None,
    info: dict[str, Any] | None = None,
    validation: str = "",
    keep_checkpoints: bool = False,
    quiet: bool = False,
    input_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and test every method on every setting of every seed; write the results.

    ``settings(seed)`` yields that seed's :class:`Setting`\\ s. ``wrap_loss(loss)`` turns a
    loss on logits into the loss on the model's output (e.g. Inception's auxiliary head).
    Each training runs in ``out/runs/<setting>-<method>-seed<s>/`` (log, test logits in
    ``test_outputs.pt``; checkpoints while it runs, kept with ``keep_checkpoints``), so
    ``config.resume=True`` continues an interrupted reproduction: finished trainings are
    read back, an interrupted one resumes from its ``last.pt``. ``validation`` says where
    the validation data comes from (for the report). ``input_spec`` (channels, mean, std of
    the model's inputs) is stored with the checkpoints. ``out`` is locked while in use, and a
    non-empty ``out`` is refused unless ``config.resume`` or ``config.overwrite``.
    Returns the ``results.json`` content.
    """
    out = Path(out)
    with _claim_output(out, config):
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        config = dataclasses.replace(config, quiet=quiet or config.quiet or not _is_main())
        # Balanced settings train 2 models (weighted-ce would be softmax), imbalanced ones 3.
        total = len(seeds) * 5
        bar = tqdm(total=total, desc="trainings", unit="run", disable=config.quiet, file=sys.stderr)
        runs: list[dict[str, Any]] = []
        data_info: dict[str, Any] = {}
        t_start = time.perf_counter()
        try:
            for seed in seeds:
                for setting in settings(seed):
                    data_info.setdefault(setting.name, {})[str(seed)] = {
                        "train": int(setting.train_labels.numel()),
                        "prior": [round(v, 6) for v in setting.prior.tolist()],
                        "rare_classes": setting.rare_classes,
                        **setting.info,
                    }
                    methods = [
                        m for m in TRAINED if setting.name != "balanced" or m != "weighted-ce"
                    ]
                    for method in methods:
                        run_dir = out / "runs" / f"{setting.name}-{method}-seed{seed}"
                        bar.set_description(f"{setting.name} {method} seed {seed}")
                        record, logits, targets = _train_one(
                            setting,
                            method,
                            make_model,
                            wrap_loss,
                            config,
                            run_dir,
                            collate_fn,
                            keep_checkpoints,
                            input_spec,
                        )
                        evaluated = [(method, predict(logits))]
                        if method == "softmax":
                            adjusted = predict(logits, train_prior=setting.prior)
                            evaluated.append(("logit-adjusted", adjusted))
                        for name, pred in evaluated:
                            acc = accuracy_report(
                                pred, targets, setting.num_classes, setting.rare_classes
                            )
                            runs.append(
                                {"setting": setting.name, "method": name, "seed": seed}
                                | record
                                | acc
                            )
                        bar.update(1)
                        r = runs[-len(evaluated)]
                        if not config.quiet:
                            tqdm.write(
                                f"{setting.name:>10} {method:<12} seed {seed}: test micro "
                                f"{r['micro']:.2f}%, per-class {r['per_class_mean']:.2f}% "
                                f"(best epoch {record['best_epoch']}, {record['seconds']:.0f} s)",
                                file=sys.stderr,
                            )
        finally:
            bar.close()
        summary, tests = summarize(runs)
        results = {
            "experiment": "pc-softmax (Table 3)",
            "dataset": dataset,
            "seeds": seeds,
            "prior_rule": PRIOR_RULE,
            "prediction_rules": PREDICTION_RULES,
            "selection": SELECTION_RULE
            + (f"; validation data: {validation}" if validation else ""),
            "statistics": "mean and sample std (ddof=1) over seeds; two-sided Mann-Whitney U "
            "(scipy.stats.mannwhitneyu) of each method against softmax",
            "config": config.to_dict(),
            "data": {**(info or {}), "settings": data_info},
            "seconds": round(time.perf_counter() - t_start, 1),
            "training_seconds": round(sum(r["seconds"] for r in runs if r["method"] in TRAINED), 1),
            "summary": summary,
            "tests": tests,
            "paper": PAPER_TABLE3[dataset],
            "runs": runs,
        }
        results = clean_json(results)
        if not _is_main():
            return results
        write_json(results, out / "results.json")
        table = render_table(results)
        atomic_write(out / "table.md", lambda f: f.write(table.encode()))
        plot_per_class(results, out / "per_class_accuracy.png")
        return results


# ----------------------------------------------------------------------------- reporting


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


# ----------------------------------------------------------------------------- entry point


def reproduce(
    dataset: str,
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
    if dataset not in ("mnist", "cub"):
        raise ValueError(f"dataset must be 'mnist' or 'cub'; got {dataset!r}")
    if dataset == "cub" and data_root is None:
        raise ValueError("--dataset cub needs --data-root (the CUB_200_2011 folder)")
    with _claim_output(Path(out), config):
        return _reproduce(
            dataset,
            config=config,
            seeds=seeds,
            out=out,
            data_root=data_root,
            weights=weights,
            image_size=image_size,
            val_fraction=val_fraction,
            verify=verify,
            keep_checkpoints=keep_checkpoints,
            quiet=quiet,
        )


def _reproduce(
    dataset: str,
    *,
    config: TrainConfig,
    seeds: Sequence[int],
    out: str | Path,
    data_root: str | Path | None,
    weights: Any,
    image_size: int,
    val_fraction: float,
    verify: bool,
    keep_checkpoints: bool,
    quiet: bool,
) -> dict[str, Any]:
    if dataset == "mnist":
        from infocam.experiments import pc_softmax_mnist

        return pc_softmax_mnist.run(
            seeds,
            out,
            config,
            data_root=data_root,
            val_fraction=val_fraction,
            verify=verify,
            keep_checkpoints=keep_checkpoints,
            quiet=quiet,
        )
    from infocam.experiments import pc_softmax_cub

    return pc_softmax_cub.run(
        data_root,
        seeds,
        out,
        config,
        weights=weights,
        image_size=image_size,
        keep_checkpoints=keep_checkpoints,
        quiet=quiet,
    )
