"""The training loop: data paths, metrics, model selection, seeds, logs, failures, flags."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from infocam.errors import CorruptImageError, DatasetNotFoundError
from infocam.training import (
    EpochMetrics,
    SkipCorrupt,
    Skipped,
    TrainConfig,
    TrainingOutOfMemoryError,
    add_training_arguments,
    config_from_args,
    epoch_indices,
    evaluate,
    fit,
    load_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _data(n=300, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, classes, generator=g)
    return x, (x @ w).argmax(dim=1)


def _model(seed=0, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, classes))


def _cfg(**kw):
    base = dict(epochs=3, batch_size=32, lr=0.02, seed=0, quiet=True)
    base.update(kw)
    return TrainConfig(**base)


class Pairs(torch.utils.data.Dataset):
    """A map-style dataset; ``bad`` indices raise CorruptImageError, ``missing`` a missing root."""

    def __init__(self, x, y, bad=(), missing=False):
        self.x, self.y, self.bad, self.missing = x, y, set(bad), missing

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.missing:
            raise DatasetNotFoundError("CUB_200_2011/images.txt not found under /data/cub")
        if i in self.bad:
            raise CorruptImageError(f"/data/img_{i}.jpg", "cannot identify image file")
        return self.x[i], self.y[i]


# ----------------------------------------------------------------------------- data order


@pytest.mark.parametrize(("n", "world"), [(10, 1), (10, 2), (11, 2), (7, 3), (5, 4)])
def test_epoch_indices_match_distributed_sampler(n, world):
    for epoch in (0, 3):
        for rank in range(world):
            s = DistributedSampler(range(n), num_replicas=world, rank=rank, seed=9)
            s.set_epoch(epoch)
            got = epoch_indices(n, epoch=epoch, seed=9, rank=rank, world_size=world)
            assert got.tolist() == list(s)


def test_tensor_fast_path_and_dataset_path_train_identically():
    x, y = _data()
    a = fit(_model(), F.cross_entropy, (x, y), (x[:50], y[:50]), _cfg()).model
    b = fit(_model(), F.cross_entropy, Pairs(x, y), Pairs(x[:50], y[:50]), _cfg()).model
    c = fit(_model(), F.cross_entropy, TensorDataset(x, y), None, _cfg(restore_best=False)).model
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert torch.allclose(pa, pc)  # no val data: last epoch, which is also the best here


def test_same_seed_same_weights_other_seed_other_weights():
    x, y = _data()
    runs = [fit(_model(), F.cross_entropy, (x, y), None, _cfg(seed=s)).model for s in (4, 4, 5)]
    w = [m[0].weight for m in runs]
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])


def test_deterministic_flag_turns_on_deterministic_algorithms():
    x, y = _data(64)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        fit(_model(), F.cross_entropy, (x, y), None, _cfg(epochs=1, deterministic=True))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


# ----------------------------------------------------------------------------- metrics


def test_metrics_are_sums_over_the_set_not_means_of_batch_means():
    x, y = _data(103)
    model = _model()
    ev = evaluate(model, (x, y), loss_fn=F.cross_entropy, batch_size=10)
    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(1).numpy()
    yn = y.numpy()
    assert torch.allclose(ev.logits, logits, atol=1e-6)
    assert torch.equal(ev.targets, y)
    assert ev.metrics.n == 103
    assert ev.metrics.accuracy == pytest.approx((pred == yn).mean(), abs=1e-15)
    assert ev.metrics.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    total = np.bincount(yn, minlength=3)
    correct = np.bincount(yn, weights=(pred == yn), minlength=3)
    assert ev.metrics.class_total == tuple(total)
    assert ev.metrics.class_correct == tuple(correct.astype(int))
    assert ev.metrics.balanced_accuracy == pytest.approx(np.mean(correct / total))


def test_per_class_accuracy_marks_absent_classes_nan():
    m = EpochMetrics(loss=0.1, accuracy=0.5, n=4, class_correct=(1, 0, 1), class_total=(2, 0, 2))
    acc = m.per_class_accuracy
    assert acc[0] == 0.5 and math.isnan(acc[1]) and acc[2] == 0.5
    assert m.balanced_accuracy == 0.5
    assert EpochMetrics.from_dict(m.to_dict("v_", per_class=True), "v_") == m


def test_evaluate_restores_training_mode_and_names_bad_output():
    x, y = _data(20)
    model = _model()
    model.train()
    evaluate(model, (x, y))
    assert model.training
    with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\)"):
        evaluate(nn.Flatten(0), (x, y))
    assert model.training


# ----------------------------------------------------------------------------- fit


def test_fit_selects_best_epoch_on_validation_and_writes_logs(tmp_path):
    x, y = _data(400)
    (xt, yt), (xv, yv) = (x[:300], y[:300]), (x[300:], y[300:])
    result = fit(_model(), F.cross_entropy, (xt, yt), (xv, yv), _cfg(epochs=4, out=tmp_path))
    accs = [r["val_accuracy"] for r in result.history]
    assert len(accs) == 4 and result.metric == "accuracy"
    assert result.best_epoch == 1 + int(np.argmax(accs))  # first of ties, on validation
    assert result.best_metric == max(accs)
    assert result.history[-1]["train_accuracy"] > 0.6  # it learns (3 classes: chance 1/3)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == result.best_epoch
    for k, v in result.model.state_dict().items():  # best weights restored in the model
        assert torch.equal(v, best["model"][k])
    assert evaluate(result.model, (xv, yv)).metrics.accuracy == result.best_metric
    assert result.val_metrics.accuracy == result.best_metric

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["best_epoch"] == result.best_epoch and results["epochs"] == 4
    assert results["history"] == json.loads(json.dumps(result.history))
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start"] + ["epoch"] * 4 + ["end"]
    assert events[1]["train_n"] == 300 and events[1]["val_n"] == 100
    assert sum(events[1]["val_class_total"]) == 100
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 4


def test_select_on_loss_picks_the_lowest_validation_loss():
    x, y = _data(400)
    cfg = _cfg(epochs=4, select_metric="loss", lr=0.5, optimizer="sgd")
    result = fit(_model(), F.cross_entropy, (x[:300], y[:300]), (x[300:], y[300:]), cfg)
    losses = [r["val_loss"] for r in result.history]
    assert result.best_epoch == 1 + int(np.argmin(losses))


def test_resume_of_a_finished_run_trains_no_more(tmp_path):
    x, y = _data()
    first = fit(_model(), F.cross_entropy, (x, y), None, _cfg(out=tmp_path, restore_best=False))
    again = fit(_model(1), F.cross_entropy, (x, y), None, _cfg(out=tmp_path, resume=True))
    assert again.history == first.history
    assert torch.equal(again.model[0].weight, first.model[0].weight)


def test_resume_without_checkpoint_starts_fresh_and_logs_it(tmp_path):
    x, y = _data(64)
    fit(_model(), F.cross_entropy, (x, y), None, _cfg(epochs=1, out=tmp_path, resume=True))
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "resume" and events[0]["found"] is False


def test_resume_refuses_weights_of_another_model(tmp_path):
    x, y = _data(64)
    fit(_model(), F.cross_entropy, (x, y), None, _cfg(epochs=1, out=tmp_path))
    other = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    from infocam.errors import CheckpointError

    with pytest.raises(
        CheckpointError, match=r"shape mismatch.*0.weight \(16, 8\) vs model \(4, 8\)"
    ):
        fit(other, F.cross_entropy, (x, y), None, _cfg(epochs=1, out=tmp_path, resume=True))


def test_custom_optimizer_and_step_scheduler():
    x, y = _data(64)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def sched(o):
        return torch.optim.lr_scheduler.LambdaLR(o, lambda step: seen.append(step) or 1.0)

    fit(
        model,
        F.cross_entropy,
        (x, y),
        None,
        _cfg(epochs=2),
        optimizer=opt,
        scheduler=sched,
        scheduler_interval="step",
    )
    assert seen == list(range(0, 2 * 2 + 1))  # batch 32, 64 samples: 2 steps per epoch


def test_progress_bar_and_epoch_lines_unless_quiet(capsys):
    x, y = _data(64)
    fit(_model(), F.cross_entropy, (x, y), (x, y), _cfg(epochs=1, quiet=False))
    err = capsys.readouterr().err
    assert "epoch 1/1 | train loss" in err and "val loss" in err and "samples/s" in err
    fit(_model(), F.cross_entropy, (x, y), (x, y), _cfg(epochs=1, quiet=True))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


# ----------------------------------------------------------------------------- failures


def test_corrupt_image_stops_naming_the_file_or_is_skipped_and_counted(tmp_path):
    x, y = _data(64)
    data = Pairs(x, y, bad={3, 40})
    with pytest.raises(CorruptImageError) as info:
        fit(_model(), F.cross_entropy, data, None, _cfg(epochs=1))
    assert str(info.value.path) in ("/data/img_3.jpg", "/data/img_40.jpg")
    assert "skip_corrupt=True" in str(info.value)
    result = fit(
        _model(), F.cross_entropy, data, None, _cfg(epochs=2, skip_corrupt=True, out=tmp_path)
    )
    assert result.skipped == 4  # two files, two epochs
    assert result.history[0]["train_n"] == 62
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["skipped_corrupt"] == 4
    assert set(saved["skipped_files"]) == {"/data/img_3.jpg", "/data/img_40.jpg"}


def test_corrupt_image_in_a_worker_process_still_names_the_file():
    x, y = _data(16)
    with pytest.raises(CorruptImageError) as info:
        fit(_model(), F.cross_entropy, Pairs(x, y, bad={5}), None, _cfg(epochs=1, workers=1))
    assert str(info.value.path) == "/data/img_5.jpg"


def test_skip_corrupt_wrapper_for_own_loops():
    x, y = _data(4)
    data = SkipCorrupt(Pairs(x, y, bad={1}))
    assert isinstance(data[1], Skipped) and data[1].path == "/data/img_1.jpg"
    assert torch.equal(data[0][0], x[0])


def test_missing_dataset_error_passes_through():
    x, y = _data(8)
    with pytest.raises(DatasetNotFoundError, match=r"images\.txt not found under /data/cub"):
        fit(_model(), F.cross_entropy, Pairs(x, y, missing=True), None, _cfg(epochs=1))


def test_out_of_memory_names_the_batch_size_to_lower():
    class Hungry(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 3)

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    x, y = _data(64)
    with pytest.raises(
        TrainingOutOfMemoryError, match=r"batch size 32 per process.*lower batch_size"
    ):
        fit(Hungry(), F.cross_entropy, (x, y), None, _cfg(epochs=1))


def test_diverging_loss_is_reported():
    x, y = _data(64)
    with pytest.raises(ValueError, match=r"training diverged.*lower the learning rate"):
        fit(_model(), lambda lo, t: F.cross_entropy(lo, t) * math.nan, (x, y), None, _cfg())


def test_bad_inputs_raise_naming_the_argument():
    x, y = _data(10)
    with pytest.raises(ValueError, match="train_data inputs and targets must have the same length"):
        fit(_model(), F.cross_entropy, (x, y[:5]), None, _cfg())
    with pytest.raises(TypeError, match="train_data targets must be integer"):
        fit(_model(), F.cross_entropy, (x, y.float()), None, _cfg())
    with pytest.raises(TypeError, match="train_data must be a torch Dataset"):
        fit(_model(), F.cross_entropy, 42, None, _cfg())
    with pytest.raises(ValueError, match="amp='fp16' needs a CUDA device"):
        fit(_model(), F.cross_entropy, (x, y), None, _cfg(amp="fp16", device="cpu"))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        fit(_model(), F.cross_entropy, (x, y), None, {"epochs": 1})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be an integer >= 1; got 0"),
        ("batch_size", 2.5, "batch_size must be an integer"),
        ("lr", -1.0, "lr must be > 0"),
        ("weight_decay", math.nan, "weight_decay must be a finite number"),
        ("amp", "fp8", "amp must be one of off, fp16, bf16; got 'fp8'"),
        ("select_metric", "test_accuracy", "select_metric must be one of"),
        ("resume", True, "resume=True needs out"),
    ],
)
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{field: value})


def test_bf16_autocast_runs_on_cpu():
    x, y = _data(64)
    result = fit(_model(), F.cross_entropy, (x, y), None, _cfg(epochs=1, amp="bf16"))
    assert math.isfinite(result.history[0]["train_loss"])


# ----------------------------------------------------------------------------- flags


def test_training_flags_fill_a_config():
    parser = add_training_arguments(argparse.ArgumentParser(), epochs=7)
    args = parser.parse_args([])
    assert config_from_args(args) == TrainConfig(epochs=7)
    args = parser.parse_args(
        "--epochs 2 --batch-size 64 --lr 0.1 --weight-decay 1e-4 --seed 3 --deterministic "
        "--quiet --device cpu --amp --workers 2 --out runs/x --skip-corrupt --resume".split()
    )
    cfg = config_from_args(args, select_metric="balanced_accuracy")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.seed) == (2, 64, 0.1, 1e-4, 3)
    assert cfg.deterministic and cfg.quiet and cfg.skip_corrupt and cfg.resume is True
    assert (cfg.device, cfg.amp, cfg.workers, cfg.out) == ("cpu", "fp16", 2, Path("runs/x"))
    assert cfg.select_metric == "balanced_accuracy"
    args = parser.parse_args(["--resume", "old/last.pt", "--amp", "bf16"])
    assert config_from_args(args).resume == Path("old/last.pt")
    assert config_from_args(args).amp == "bf16"
    with pytest.raises(TypeError, match="unknown training default"):
        add_training_arguments(argparse.ArgumentParser(), epoch=3)
