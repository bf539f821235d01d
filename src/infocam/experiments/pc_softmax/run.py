"""Table 3's runs: train every method on every setting of every seed, test, write results.

Model selection: the epoch with the best validation *balanced accuracy* (mean per-class
accuracy, the metric the table is about), measured with each trained model's own rule
(``argmax n``); the test data is never looked at before the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from infocam.errors import CheckpointError
from infocam.experiments.pc_softmax.protocol import (
    PAPER_TABLE3,
    PREDICTION_RULES,
    PRIOR_RULE,
    SELECTION_RULE,
    TRAINED,
    Setting,
    make_loss,
)
from infocam.experiments.pc_softmax.report import plot_per_class, render_table
from infocam.experiments.pc_softmax.stats import accuracy_report, summarize
from infocam.softmax import predict
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
from infocam.training.distributed import is_main_process
from infocam.training.progress import clean_json
from infocam.training.run_folder import claim_run_folder

__all__ = ["OUTPUTS", "claim_output", "run_table3"]

OUTPUTS = "test_outputs.pt"


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
    if not is_main_process():  # under torchrun every process has all test logits; rank 0 writes
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


def claim_output(out: Path, config: TrainConfig) -> contextlib.AbstractContextManager:
    """Lock ``out`` (rank 0) and refuse it when it holds results, unless resume / overwrite."""
    if not is_main_process():
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
        changed.append(f"epochs {old['epochs']} -> {cfg.epochs}")
    if "train_size" in saved and saved["train_size"] != train_size:
        changed.append(f"training set {saved['train_size']} -> {train_size} samples")
    if changed:
        raise CheckpointError(
            f"cannot resume with {path}, a training finished with other settings: "
            f"{'; '.join(changed)}. Use its settings, or start anew (overwrite, or another "
            "folder)"
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
    with claim_output(out, config):
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        config = dataclasses.replace(config, quiet=quiet or config.quiet or not is_main_process())
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
        if not is_main_process():
            return results
        write_json(results, out / "results.json")
        table = render_table(results)
        atomic_write(out / "table.md", lambda f: f.write(table.encode()))
        plot_per_class(results, out / "per_class_accuracy.png")
        return results
