"""``infocam reproduce wsol``: Table 4's whole protocol on one data set."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from infocam.cam import DEFAULT_REGION_PADDING
from infocam.experiments.wsol.datasets import load_wsol_data
from infocam.experiments.wsol.evaluate import evaluate_run, paper_settings
from infocam.experiments.wsol.protocol import (
    EVAL_DIRS,
    PAPER_TABLE4,
    PROTOCOLS,
    WSOL_TOP_FILES,
    check_dataset,
    eval_protocols,
    paper_regions,
    protocol_sources,
)
from infocam.experiments.wsol.report import format_table, json_ready, save_figure, write_text
from infocam.experiments.wsol.train import WSOLRun, build_wsol_model, claim_wsol_run, train_wsol
from infocam.experiments.wsol_eval import DEFAULT_REGIONS, DEFAULT_THRESHOLDS, WSOLEvalOptions
from infocam.training import TrainConfig, seed_everything
from infocam.training.checkpoint import write_json
from infocam.training.distributed import is_main_process
from infocam.training.run_folder import claim_run_folder

__all__ = ["reproduce_wsol"]


def reproduce_wsol(
    dataset: str,
    out: str | Path,
    *,
    data_root: str | Path | None = None,
    archs: Sequence[str] | None = None,
    weights: dict[str, str | None] | None = None,
    adl: Sequence[bool] = (False, True),
    image_size: int | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    train_overrides: dict[str, Any] | None = None,
    head_lr_mult: float | None = None,
    regions: Sequence[int] = DEFAULT_REGIONS,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    region_padding: str = DEFAULT_REGION_PADDING,
    least_likely: str = "global",
    normalize: str = "minmax",
    protocol: str = "selected",
    seed: int = 0,
    device: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Table 4's protocol on ``dataset``: each backbone with and without ADL, trained with
    softmax, evaluated with CAM / infoCAM / infoCAM+.

    ``protocol``: ``"selected"`` (default: each method's region and threshold chosen on the
    validation split, ``out/<run>/eval/``), ``"paper"`` (the paper's fixed settings: threshold
    0.2, CAM without region, infoCAM / infoCAM+ at the paper's R; ``out/<run>/eval-paper/``)
    or ``"both"``. The paper's Table 4 numbers are printed beside the paper protocol's table
    only. ``least_likely`` / ``normalize`` / ``region_padding``: see
    :class:`~infocam.experiments.wsol_eval.WSOLEvalOptions`.

    Writes ``out/<arch>[_adl]/`` (the run: checkpoints, log, ``wsol.json``, its own
    ``results.json`` / ``table.md`` / ``figure.png`` under ``eval/``) and ``out/results.json``,
    ``out/table.md`` and ``out/figure.png`` (the first model's test images). Returns the
    combined results. ``out`` and each run folder are locked while in use; a non-empty ``out``
    is refused unless ``resume`` (continue each run with its own settings) or ``overwrite``
    (replace the runs and results).
    """
    check_dataset(dataset)
    protos = eval_protocols(protocol)
    protocol = PROTOCOLS[dataset]
    archs = tuple(archs or protocol["archs"])
    if "paper" in protos:
        for arch in archs:  # refused before any data loads or training starts
            paper_regions(dataset, arch)
    base_options = WSOLEvalOptions(  # checked before any data loads or training starts
        regions=regions,
        thresholds=thresholds,
        region_padding=region_padding,
        least_likely=least_likely,
        normalize=normalize,
    )
    weights = dict(weights or {})
    out = Path(out)
    claim = (
        claim_run_folder(
            out, resume=resume, overwrite=overwrite, remove=WSOL_TOP_FILES, what="output folder"
        )
        if is_main_process()
        else contextlib.nullcontext(out)
    )
    with claim:
        t_start = time.perf_counter()
        data = load_wsol_data(
            dataset,
            data_root,
            image_size=image_size,
            n_train=n_train,
            n_val=n_val,
            n_test=n_test,
            seed=seed,
            cache_dir=out / "cache" if dataset == "cluttered-digits" else None,
        )
        log(
            f"{dataset}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test "
            f"images of {data.image_size} px, {data.num_classes} classes "
            f"({time.perf_counter() - t_start:.0f} s)"
        )
        train_kw = {**protocol["train"], **(train_overrides or {})}
        mult = protocol["head_lr_mult"] if head_lr_mult is None else head_lr_mult
        run_kw = {"seed": seed, "device": device, "workers": workers, "quiet": quiet}
        run_kw |= {"resume": resume, "overwrite": overwrite}
        rows: dict[str, list[dict[str, Any]]] = {p: [] for p in protos}
        for arch in archs:
            for use_adl in adl:
                name = arch + ("_adl" if use_adl else "")
                run_dir = out / name
                w = weights.get(arch, protocol["weights"])
                w = None if w in (None, "none") else w
                seed_everything(seed)  # the initial weights depend on the seed only
                model = build_wsol_model(
                    arch, data.num_classes, adl=use_adl, weights=w, in_channels=data.in_channels
                )
                config = TrainConfig(**train_kw, **run_kw, out=run_dir)
                with claim_wsol_run(run_dir, resume=resume, overwrite=overwrite):
                    WSOLRun(
                        dataset,
                        arch,
                        use_adl,
                        data.num_classes,
                        data.in_channels,
                        data.image_size,
                        None if data_root is None else str(data_root),
                        seed,
                        n_train,
                        n_val,
                        n_test,
                    ).save(run_dir, resume=resume)
                    t0 = time.perf_counter()
                    trained = train_wsol(model, data, config, head_lr_mult=mult)
                    train_s = time.perf_counter() - t0
                log(
                    f"{name}: trained {len(trained.history)} epoch(s) in {train_s:.0f} s, "
                    f"best epoch {trained.best_epoch} "
                    f"(val top-1 {100 * (trained.best_metric or 0):.2f}%)"
                )
                ev_device = torch.device(device or next(trained.model.parameters()).device)
                ev_workers = (
                    workers if workers is not None else (4 if ev_device.type == "cuda" else 0)
                )
                options = WSOLEvalOptions.of(
                    base_options,
                    batch_size=train_kw.get("batch_size", 64),
                    device=ev_device,
                    workers=ev_workers,
                    quiet=quiet,
                )
                for proto in protos:
                    fixed, fixed_sources = (
                        paper_settings(dataset, arch, options.methods)
                        if proto == "paper"
                        else (None, None)
                    )
                    result = evaluate_run(
                        trained.model,
                        data,
                        run_dir / EVAL_DIRS[proto],
                        options,
                        label=name,
                        settings=fixed,
                    )
                    log(f"{name}: evaluated ({proto} protocol) in {result['seconds']:.0f} s")
                    row = {
                        "model": arch,
                        "adl": use_adl,
                        "train_seconds": round(train_s, 1),
                        "best_epoch": trained.best_epoch,
                        **json_ready(result),
                    }
                    if fixed_sources is not None:
                        row["settings_sources"] = fixed_sources
                    rows[proto].append(row)
                    if len(rows[proto]) == 1 and proto == protos[0] and is_main_process():
                        save_figure(
                            result["examples"],
                            out / "figure.png",
                            f"{dataset}: {name}",
                            data.classes,
                        )
        values = {
            "archs": list(archs),
            "train": train_kw,
            "head_lr_mult": mult,
            "image_size": data.image_size,
            "n": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "regions": list(regions),
            "thresholds": [float(t) for t in thresholds],
            "region_padding": region_padding,
            "least_likely": least_likely,
            "normalize": normalize,
            "eval_protocols": list(protos),
            "seed": seed,
            "selection": "region and threshold per method: best GT-known Loc on val"
            if "selected" in protos
            else "none: the paper's fixed settings (validation not read)",
        }
        given = {
            "archs": archs != tuple(protocol["archs"]),
            "image_size": image_size is not None,
            "n": any(v is not None for v in (n_train, n_val, n_test)),
            "head_lr_mult": head_lr_mult is not None,
        }
        summary = {
            "dataset": dataset,
            "protocol": values,
            "sources": protocol_sources(dataset, values, given, train_overrides or {}),
            "runs": rows.get("selected", []),
            "paper": {
                arch: {f"{m}{' (ADL)' if a else ''}": v for (m, a), v in t.items()}
                for arch, t in PAPER_TABLE4.get(dataset, {}).items()
            },
            "paper_numbers_from": "the paper protocol (fixed R and threshold 0.2), not selected",
            "seconds": round(time.perf_counter() - t_start, 1),
        }
        if "paper" in rows:
            summary["paper_protocol"] = {"runs": rows["paper"]}
        tables = []
        for proto in protos:
            title = (
                "Protocol 'selected' (region and threshold chosen on validation; "
                "the paper's numbers come from the other protocol)"
                if proto == "selected"
                else "Protocol 'paper' (fixed: threshold 0.2, CAM r = 1, infoCAM r = the "
                "paper's R)" + (", beside the paper's Table 4" if dataset in PAPER_TABLE4 else "")
            )
            rows_table = format_table(rows[proto], dataset if proto == "paper" else None)
            tables.append(f"{title}\n\n{rows_table}")
        table = "\n\n".join(tables)
        if not is_main_process():  # under torchrun all hold the same scores; rank 0 writes
            return summary
        write_json(summary, out / "results.json")
        write_text(out / "table.md", table + "\n")
        log(table)
        log(f"total {summary['seconds']:.0f} s; wrote {out / 'results.json'}, table.md, figure.png")
        return summary
