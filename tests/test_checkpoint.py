"""Checkpoints: atomic saves, safe loads, clear errors, and exact resume after a kill."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import infocam.training.checkpoint as ckpt_mod
from data_fixtures import flip_tensor_bytes
from infocam.errors import CheckpointError, UnverifiedCheckpointWarning
from infocam.training import (
    TrainConfig,
    capture_rng_state,
    fit,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "_training_worker.py"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_save_load_round_trip_leaves_nothing_behind(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 4, "name": "x", "nested": [1, {"a": 2}]}
    path = save_checkpoint(state, tmp_path / "sub" / "c.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"])
    assert loaded["epoch"] == 4 and loaded["nested"] == [1, {"a": 2}]
    assert _leftovers(path.parent) == []
    assert path.stat().st_mode & 0o777 == 0o666 & ~ckpt_mod._UMASK  # not mkstemp's 0600


def test_a_checkpoint_with_flipped_bytes_is_refused_as_corrupt(tmp_path):
    state = {"format": "infocam.weights/1", "model": {"w": torch.randn(64, 64)}, "epoch": 3}
    path = save_checkpoint(state, tmp_path / "best.pt")
    loaded = load_checkpoint(path)
    assert "sha256" not in loaded and list(loaded) == ["format", "model", "epoch"]
    assert torch.load(path, weights_only=True)["sha256"]  # stored in the file
    flip_tensor_bytes(path)
    assert torch.load(path, weights_only=True)["epoch"] == 3  # torch itself sees nothing wrong
    message = re.escape(f"{path}: checksum mismatch, the file is corrupt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    from infocam.models import load_classifier

    with pytest.raises(CheckpointError, match="checksum mismatch"):  # every load path checks
        load_classifier("small_gap_cnn", str(path))
    # any change counts, numbers outside tensors included
    raw = torch.load(save_checkpoint(state, tmp_path / "b.pt"), weights_only=True)
    torch.save({**raw, "epoch": 4}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "b.pt")


def test_checkpoints_without_a_checksum(tmp_path):
    """Files infocam did not write load as they are; an infocam checkpoint written before
    checksums loads with a warning; the checksum key is reserved."""
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(load_checkpoint(tmp_path / "plain.pt")["w"], torch.ones(2))
    torch.save({"format": "infocam.weights/1", "model": {}}, tmp_path / "old.pt")
    with pytest.warns(UnverifiedCheckpointWarning, match="old.pt has no checksum"):
        load_checkpoint(tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"'sha256'.* reserved"):
        save_checkpoint({"sha256": "x"}, tmp_path / "c.pt")


class _DiskFullFile:
    """A file that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        data = memoryview(data)
        self.real.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_disk_full_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, path)
    real_fdopen = os.fdopen
    monkeypatch.setattr(ckpt_mod.os, "fdopen", lambda *a, **k: _DiskFullFile(real_fdopen(*a, **k)))
    with pytest.raises(OSError) as info:
        save_checkpoint({"epoch": 2, "w": torch.zeros(1000)}, path)
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value) and "previous file is unchanged" in str(info.value)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert _leftovers(tmp_path) == []


def test_interrupt_while_writing_removes_temp_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"a": 1}, tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_load_refuses_a_file_that_would_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_load_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint(tmp_path / "nope" / "last.pt")
    assert info.value.filename.endswith(str(Path("nope") / "last.pt"))
    path = save_checkpoint({"w": torch.randn(100)}, tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_checkpoint_for_another_model_lists_keys_and_shapes():
    a = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    b = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5), nn.Linear(5, 2))
    with pytest.raises(CheckpointError) as info:
        load_model_state(b, a.state_dict(), source="run/last.pt")
    msg = str(info.value)
    assert "run/last.pt" in msg
    assert "2 missing key(s): 3.weight, 3.bias" in msg
    assert "2 shape mismatch(es): 2.weight (3, 8) vs model (5, 8), 2.bias (3,) vs model (5,)" in msg
    c = nn.Sequential(nn.Linear(4, 8))
    with pytest.raises(CheckpointError, match=r"2 unexpected key\(s\): 2.weight, 2.bias"):
        load_model_state(c, a.state_dict())


def test_load_model_state_strips_ddp_prefix():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    wrapped = {f"module.{k}": v for k, v in a.state_dict().items()}
    load_model_state(b, wrapped)
    assert torch.equal(a.weight, b.weight)


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)  # noqa: NPY002
    torch.manual_seed(1)
    np.random.standard_normal()  # noqa: NPY002 - leaves a cached Gaussian in the state
    path = save_checkpoint({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.random(), torch.rand(3))  # noqa: NPY002
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(path)["rng"])
    got = (random.random(), np.random.random(), torch.rand(3))  # noqa: NPY002
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def _data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] + 0.3 * x[:, 1] > 0).long()


def _model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def _config(out, **kw):
    base = dict(epochs=3, batch_size=16, lr=0.02, optimizer="sgd", schedule="cosine", seed=1)
    base.update(kw)
    return TrainConfig(out=out, quiet=True, restore_best=False, **base)


def test_disk_full_during_training_keeps_last_epoch_checkpoint(tmp_path, monkeypatch):
    x, y = _data()
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        if str(dst).endswith("last.pt"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt_mod.os, "replace", replace)
    with pytest.raises(OSError, match="No space left on device"):
        fit(_model(), nn.functional.cross_entropy, (x, y), None, _config(tmp_path))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert _leftovers(tmp_path) == []
    log = (tmp_path / "log.jsonl").read_text()
    assert '"checkpoint_failed"' in log


def test_sigint_saves_mid_epoch_and_resume_is_exact(tmp_path):
    """In one process: SIGINT at step 17 (epoch 2), resume, same weights as no interruption."""
    x, y = _data()
    loss = nn.functional.cross_entropy
    reference = fit(_model(), loss, (x, y), None, _config(tmp_path / "ref")).model

    calls = {"n": 0}

    def interrupting_loss(logits, target):
        calls["n"] += 1
        if calls["n"] == 17:
            os.kill(os.getpid(), signal.SIGINT)
        return loss(logits, target)

    from infocam.training import TrainingInterrupted

    with pytest.raises(TrainingInterrupted) as info:
        fit(_model(), interrupting_loss, (x, y), None, _config(tmp_path / "run"))
    assert isinstance(info.value, KeyboardInterrupt)
    saved = load_checkpoint(info.value.checkpoint)
    assert (saved["epoch"], saved["batch"]) == (1, 4)  # 13 batches per epoch: 17 = 13 + 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = fit(_model(), loss, (x, y), None, _config(tmp_path / "run", resume=True))
    assert resumed.resumed_from == tmp_path / "run" / "last.pt"
    for (k, a), b in zip(
        reference.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in fit_history(tmp_path / "ref")], rel=1e-12
    )


def fit_history(out: Path) -> list[dict]:
    return load_checkpoint(out / "last.pt")["history"]


def _worker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), "--dropout", "0.2", "--schedule", "cosine", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def _load_worker():
    spec = importlib.util.spec_from_file_location("_training_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    """250 samples, batch 32: 8 steps per epoch. SIGKILL at step 12 is in epoch 2; the run
    resumes from the end of epoch 1 and ends bit-for-bit where an uninterrupted run ends
    (dropout, Adam and a cosine schedule make every RNG and optimiser state matter)."""
    flags = ["--dropout", "0.2", "--schedule", "cosine"]
    reference = _load_worker().main([*flags, "--save", str(tmp_path / "ref.pt")])
    assert reference == 0
    run = ["--out", str(tmp_path / "k"), "--save", str(tmp_path / "k.pt")]
    killed = _worker(*run, "--kill-at", "12", check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "k.pt").exists()
    assert load_checkpoint(tmp_path / "k" / "last.pt")["epoch"] == 1
    assert _leftovers(tmp_path / "k") == []
    _worker(*run, "--resume")

    ref, got = _weights(tmp_path / "ref.pt"), _weights(tmp_path / "k.pt")
    assert got["resumed_from"] == str(tmp_path / "k" / "last.pt")
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key
    assert [r["train_loss"] for r in got["history"]] == [r["train_loss"] for r in ref["history"]]
    events = [json.loads(line)["event"] for line in (tmp_path / "k" / "log.jsonl").open()]
    assert events == ["start", "epoch", "resume", "epoch", "epoch", "end"]


def test_signal_during_validation_stops_at_the_epoch_checkpoint(tmp_path):
    x, y = _data()
    calls = {"n": 0}

    def loss(logits, target):
        if not torch.is_grad_enabled():  # validation
            calls["n"] += 1
            if calls["n"] == 1:
                os.kill(os.getpid(), signal.SIGTERM)
        return nn.functional.cross_entropy(logits, target)

    from infocam.training import TrainingInterrupted

    with pytest.raises(TrainingInterrupted, match="SIGTERM at epoch 2, batch 0") as info:
        fit(_model(), loss, (x, y), (x[:40], y[:40]), _config(tmp_path))
    assert info.value.signum == signal.SIGTERM
    saved = load_checkpoint(tmp_path / "last.pt")
    assert (saved["epoch"], saved["batch"], len(saved["history"])) == (1, 0, 1)


def test_write_json_is_always_valid_json(tmp_path):
    """NaN / inf were written as bare NaN / Infinity (allow_nan=True): invalid JSON."""
    from infocam.training.checkpoint import write_json

    path = write_json(
        {"a": float("nan"), "b": [1.0, float("inf")], "c": -float("inf")}, tmp_path / "r.json"
    )

    def strict(name):
        raise AssertionError(f"not JSON: {name}")

    assert json.loads(path.read_text(), parse_constant=strict) == {
        "a": None,
        "b": [1.0, None],
        "c": None,
    }
