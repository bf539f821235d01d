"""Run folders: one run at a time, no silent overwriting, and resume only with the run's own
settings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infocam.errors import CheckpointError, RunFolderError
from infocam.training import TrainConfig, fit, load_checkpoint
from infocam.training.run_folder import LOCK_NAME, claim_run_folder

torch.set_num_threads(1)

# Holds an flock on argv[1] (as a concurrent run does) until its stdin closes.
_HOLDER = (
    "import fcntl, os, sys; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
    "f.write(str(os.getpid())); f.flush(); print('locked', flush=True); sys.stdin.read()"
)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x @ torch.randn(8, 3, generator=g)).argmax(dim=1)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def _cfg(out, **kw):
    return TrainConfig(
        **{"epochs": 2, "batch_size": 16, "lr": 0.02, "quiet": True, "out": out, **kw}
    )


def _fit(out, data=None, **kw):
    x, y = data if data is not None else _data()
    return fit(_model(), F.cross_entropy, (x, y), (x[:16], y[:16]), _cfg(out, **kw))


def _events(out):
    return [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- no overwriting


def test_a_second_run_into_a_used_folder_is_refused_unless_overwrite(tmp_path):
    _fit(tmp_path, seed=0)
    best = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(RunFolderError, match=r"is not empty \(best.pt, last.pt, log.jsonl"):
        _fit(tmp_path, seed=1)
    assert (tmp_path / "best.pt").read_bytes() == best  # nothing of the first run lost
    assert not (tmp_path / LOCK_NAME).exists()  # the refused run released its lock
    _fit(tmp_path, seed=1, overwrite=True)
    assert load_checkpoint(tmp_path / "last.pt")["config"]["seed"] == 1
    assert _events(tmp_path) == ["start", "epoch", "epoch", "end"]  # the old log is gone
    with pytest.raises(ValueError, match="overwrite and resume exclude each other"):
        _cfg(tmp_path, resume=True, overwrite=True)


def test_an_empty_or_new_folder_is_fine_and_keeps_no_lock(tmp_path):
    (tmp_path / "empty").mkdir()
    _fit(tmp_path / "empty")
    _fit(tmp_path / "new" / "run")
    assert not (tmp_path / "new" / "run" / LOCK_NAME).exists()


# ----------------------------------------------------------------------------- the lock


def test_a_folder_in_use_by_another_process_is_refused_naming_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run / LOCK_NAME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            RunFolderError, match=rf"{run} is in use by another run \(pid {holder.pid}"
        ):
            _fit(run, resume=True)  # not even --resume may write into it
        assert not (run / "log.jsonl").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    _fit(run, resume=True)  # the holder ended: the folder is free (its lock file taken over)


def test_a_stale_lock_of_a_dead_run_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / LOCK_NAME).write_text(dead.stdout)
    _fit(tmp_path)
    assert (tmp_path / "best.pt").is_file() and not (tmp_path / LOCK_NAME).exists()


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    def broken(logits, target):
        raise RuntimeError("boom")

    x, y = _data()
    with pytest.raises(RuntimeError, match="boom"):
        fit(_model(), broken, (x, y), None, _cfg(tmp_path))
    assert not (tmp_path / LOCK_NAME).exists()
    _fit(tmp_path, resume=True)


def test_claims_nest_within_one_thread_and_lock_the_pid(tmp_path):
    with claim_run_folder(tmp_path / "r") as folder:
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
        (folder / "wsol.json").write_text("{}")  # what the CLI writes before fit
        _fit(folder)  # fit's own claim nests: no 'not empty', no 'in use'
        assert (folder / LOCK_NAME).exists()
    assert not (tmp_path / "r" / LOCK_NAME).exists()
    with claim_run_folder(tmp_path / "failed"):
        pass
    assert not (tmp_path / "failed").exists()  # created, never written: removed


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr": 0.05}, "lr 0.02 -> 0.05"),
        ({"batch_size": 32}, "batch_size 16 -> 32"),
        ({"seed": 3}, "seed 0 -> 3"),
        ({"schedule": "cosine"}, "schedule 'constant' -> 'cosine'"),
        ({"epochs": 3}, "epochs 2 -> 3 (allow it with change_epochs)"),
        ({"epochs": 1, "change_epochs": True}, "epochs 2 -> 1 (it has already trained 2"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_them(tmp_path, change, message):
    _fit(tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"cannot resume .*last.pt with other settings") as e:
        _fit(tmp_path, resume=True, **change)
    assert message in str(e.value)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_resume_with_another_training_set_is_refused(tmp_path):
    _fit(tmp_path)
    with pytest.raises(CheckpointError, match="training set 64 samples -> 48 samples"):
        _fit(tmp_path, data=_data(48), resume=True)


def test_more_epochs_with_a_constant_schedule_is_exactly_the_longer_run(tmp_path):
    longer = _fit(tmp_path / "a", epochs=4)
    _fit(tmp_path / "b", epochs=2)
    resumed = _fit(tmp_path / "b", epochs=4, resume=True, change_epochs=True)
    for (k, a), b in zip(
        longer.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    assert [r["lr"] for r in resumed.history] == [0.02] * 4


def test_more_epochs_with_a_cosine_schedule_replans_it(tmp_path, capsys):
    _fit(tmp_path, epochs=2, schedule="cosine")  # epoch 2 ran at lr 0.01, the next would be 0
    resumed = _fit(
        tmp_path, epochs=4, schedule="cosine", resume=True, change_epochs=True, quiet=False
    )
    lrs = [r["lr"] for r in resumed.history]
    expected = [0.01 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert lrs[:2] == pytest.approx([0.02, 0.01])  # the first two as they ran
    assert lrs[2:] == pytest.approx(expected[2:])  # then the cosine of 4 epochs, not 0
    err = capsys.readouterr().err
    assert "re-planned over 4 epochs, so the learning rate of epoch 3 goes from 0 to 0.01" in err
    assert "resume_changed" in _events(tmp_path)
