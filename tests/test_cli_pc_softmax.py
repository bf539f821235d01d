"""`infocam reproduce pc-softmax`: end to end on the MNIST and CUB fixtures; one-line errors."""

from __future__ import annotations

import json

import pytest

from data_fixtures import write_cub_fixture, write_mnist_fixture
from infocam.cli import main
from infocam.data import CUB200


def _one_line_error(capsys, code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("infocam") and " error: " in err, err
    return err


# The command sets torch's threads (--threads); the fixture puts the caller's count back.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_mnist_end_to_end(tmp_path, capsys):
    write_mnist_fixture(tmp_path, n_train=300, n_test=60)
    out = tmp_path / "out"
    args = ["reproduce", "pc-softmax", "--data-root", str(tmp_path), "--no-verify"]
    args += ["--seeds", "2", "--epochs", "1", "--batch-size", "32", "--out", str(out), "--quiet"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no bar, no epoch lines
    assert "| imbalanced | pc-softmax |" in captured.out
    assert "class_prior(train_labels)" in captured.out  # the prior used, stated
    assert "predict(logits, train_prior=p)" in captured.out  # the prediction rules, stated
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    assert results["config"]["epochs"] == 1 and results["config"]["optimizer"] == "adam"
    assert (out / "table.md").read_text().strip() in captured.out
    assert (out / "per_class_accuracy.png").stat().st_size > 1000
    # --resume reads the finished trainings back: same rows, no retraining
    assert main([*args, "--resume"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["runs"] == results["runs"]
    assert again["training_seconds"] == results["training_seconds"]


def test_mnist_progress_without_quiet(tmp_path, capsys):
    write_mnist_fixture(tmp_path, n_train=200, n_test=40)
    args = ["reproduce", "pc-softmax", "--data-root", str(tmp_path), "--no-verify", "--seeds"]
    args += ["1", "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "trainings" in err and "imbalanced weighted-ce" in err


def test_cub_end_to_end(tmp_path, capsys):
    root = write_cub_fixture(tmp_path, n_classes=4, train_per_class=4, test_per_class=4)
    out = tmp_path / "out"
    args = ["reproduce", "pc-softmax", "--dataset", "cub", "--data-root", str(root)]
    args += ["--weights", "none", "--image-size", "75", "--seeds", "1", "--epochs", "1"]
    args += ["--batch-size", "4", "--threads", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "cub"
    assert results["config"]["optimizer"] == "sgd" and results["config"]["lr"] == 0.01
    assert "off" in results["data"]["model"]  # no auxiliary head below 299 px
    imb = CUB200(root, "train", imbalanced=True, imbalance_seed=0)
    info = results["data"]["settings"]["imbalanced"]["0"]
    assert info["rare_classes"] == imb.halved_classes and info["train"] == len(imb)
    assert info["test"] == len(CUB200(root, "test")) and info["val"] == len(CUB200(root, "val"))
    methods = {(r["setting"], r["method"]) for r in results["runs"]}
    assert ("imbalanced", "weighted-ce") in methods and ("balanced", "pc-softmax") in methods
    assert "89.73*" in (out / "table.md").read_text()


def test_missing_data_root_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    for dataset in ("mnist", "cub"):
        code = main(["reproduce", "pc-softmax", "--dataset", dataset, "--data-root", str(missing)])
        assert str(missing) in _one_line_error(capsys, code)
    code = main(["reproduce", "pc-softmax", "--dataset", "cub"])
    assert "--data-root" in _one_line_error(capsys, code)


def test_weights_error_is_one_line(tmp_path, capsys):
    root = write_cub_fixture(tmp_path, n_classes=2, train_per_class=2, test_per_class=2)
    missing = tmp_path / "no_such_weights.pt"
    args = ["reproduce", "pc-softmax", "--dataset", "cub", "--data-root", str(root)]
    out = str(tmp_path / "out")  # not the folder holding the data: a non-empty --out is refused
    code = main([*args, "--weights", str(missing), "--image-size", "75", "--out", out])
    assert "no_such_weights.pt" in _one_line_error(capsys, code)
    code = main([*args, "--weights", "NO_SUCH_NAME", "--out", out])
    assert "IMAGENET1K_V1" in _one_line_error(capsys, code)  # lists the valid names


def test_bad_flags_are_one_line(tmp_path, capsys):
    base = ["reproduce", "pc-softmax", "--out", str(tmp_path)]
    assert "--seeds" in _one_line_error(capsys, main([*base, "--seeds", "0"]))
    assert "--weights" in _one_line_error(capsys, main([*base, "--weights", "x.pt"]))
    assert "--resume" in _one_line_error(capsys, main([*base, "--resume", "a.pt"]))
    with pytest.raises(SystemExit) as exc:
        main([*base, "--dataset", "imagenet"])
    _one_line_error(capsys, exc.value.code)
