"""``torchrun`` with 2 CPU processes over gloo gives what 1 process gives with the same batch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from infocam.training import setup_distributed

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "_training_worker.py"


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stderr[-4000:]}")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    """250 training samples, global batch 32 (16 per process; the last step 13 + 13 = 26),
    101 validation samples (shards of 51 and 50: no padding, nothing counted twice)."""
    args = ["--optimizer", "sgd", "--epochs", "3", "--batch-size", "32"]
    # --standalone: torchrun picks a free port itself.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    # The processes train on tensors (fast path) and validate on a Dataset (DataLoader path).
    _run([*torchrun, "--nproc_per_node", "2", str(WORKER), *args, "--val-dataset",
          "--out", str(tmp_path / "ddp"), "--save", str(tmp_path / "ddp.pt")])  # fmt: skip
    spec = importlib.util.spec_from_file_location("_training_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    assert worker.main([*args, "--save", str(tmp_path / "one.pt")]) == 0  # in this process
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)
    one = torch.load(tmp_path / "one.pt", weights_only=False)

    assert ddp["eval_ok"] and one["eval_ok"]  # evaluate() gathers logits in dataset order
    for key, value in one["model"].items():
        assert torch.allclose(ddp["model"][key], value, rtol=1e-5, atol=1e-6), key
    for a, b in zip(one["history"], ddp["history"], strict=True):
        for name in ("train_n", "val_n", "train_class_total", "val_class_total",
                     "val_class_correct", "train_class_correct", "val_accuracy"):  # fmt: skip
            assert a[name] == b[name], name
        assert a["train_n"] == 250 and a["val_n"] == 101
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-6)
    assert ddp["eval_metrics"].n == 101
    assert ddp["eval_metrics"].accuracy == one["eval_metrics"].accuracy

    # Only rank 0 wrote: one log with one start, results for a world of 2.
    out = tmp_path / "ddp"
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.jsonl",
                                                      "results.json"]  # fmt: skip
    events = [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert events == ["start", "epoch", "epoch", "epoch", "end"]
    assert json.loads((out / "results.json").read_text())["world_size"] == 2


def test_single_process_context_without_torchrun(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    ctx = setup_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.device == torch.device("cpu")


def test_world_size_without_rendezvous_address_is_explained(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="launch with torchrun"):
        setup_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer; got 'two'"):
        setup_distributed("cpu")


def test_cuda_device_requested_without_cuda_is_explained():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        setup_distributed("cuda")
    with pytest.raises(ValueError, match="device must be"):
        setup_distributed("tpu:x")


@pytest.mark.slow
def test_wsol_evaluation_sharded_over_two_processes_equals_one(tmp_path):
    """Validation 9 images (shards 4 + 5), test 11 (5 + 6): every count summed once."""
    worker_path = ROOT / "tests" / "_wsol_eval_worker.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    _run([*torchrun, "--nproc_per_node", "2", str(worker_path), "--save",
          str(tmp_path / "ddp.pt")])  # fmt: skip
    spec = importlib.util.spec_from_file_location("_wsol_eval_worker", worker_path)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    one = worker.run()
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=False)
    assert ddp["world"] == 2
    assert ddp["settings"] == one["settings"]
    assert ddp["val_grid"] == one["val_grid"]
    assert ddp["test"] == one["test"]
    assert all(s["n"] == 11 for s in ddp["test"].values())
    assert all(0 < s["PxAP"] < 100 for s in ddp["test"].values())  # masks: PxAP, summed
    # rank 0's shard starts the data set: its examples are the first images
    assert ddp["examples"]["labels"] == one["examples"]["labels"] == [0, 1, 2]
    for a, b in zip(ddp["examples"]["images"], one["examples"]["images"], strict=True):
        assert torch.equal(a, b)
