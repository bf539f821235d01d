"""`infocam mi DATA --label COLUMN` and `infocam reproduce mi`, end to end on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infocam.cli import main

TINY = ["--hidden", "8", "--max-epochs", "30", "--cv", "2", "--quiet"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 2)) + 2.0 * np.stack([y, -y], 1)
    return x, y


@pytest.fixture
def csv_file(tmp_path):
    x, y = tiny_data()
    path = tmp_path / "data.csv"
    lines = ["a,label,b"] + [f"{r[0]:.6f},{c},{r[1]:.6f}" for r, c in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mi_on_csv_prints_nats_bits_entropy_and_accuracy(csv_file, capsys):
    assert main(["mi", str(csv_file), "--label", "label", *TINY]) == 0
    out = capsys.readouterr().out
    assert "300 samples, 2 feature(s), 3 classes" in out
    for word in ("I(X;Y)", "nat", "bit", "H(Y)", "I/H(Y)", "accuracy"):
        assert word in out


def test_mi_json_is_consistent_and_reproducible(csv_file, capsys):
    assert main(["mi", str(csv_file), "--label", "label", "--json", *TINY]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["n_samples"] == 300 and first["features"] == ["a", "b"]
    assert first["classes"] == [0, 1, 2]
    assert first["mi_bit"] == pytest.approx(first["mi_nat"] / np.log(2))
    assert 0.0 < first["mi_nat"] < first["entropy_y_nat"] + 4 * first["stderr_nat"]
    assert first["n_heldout"] == 300  # cross-fitting scores every sample
    assert main(["mi", str(csv_file), "--label", "label", "--json", *TINY]) == 0
    assert json.loads(capsys.readouterr().out)["mi_nat"] == first["mi_nat"]


def test_mi_bias_correction_prints_both_and_keeps_the_plain_value(csv_file, capsys):
    args = ["mi", str(csv_file), "--label", "label", "--json", *TINY]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["lower_bound_nat"] == plain["mi_nat"]
    assert main([*args, "--bias-correction", "learning_curve"]) == 0
    corrected = json.loads(capsys.readouterr().out)
    assert corrected["lower_bound_nat"] == plain["mi_nat"]  # same main members
    assert corrected["mi_nat"] != plain["mi_nat"]
    assert corrected["method"]["bias_correction"] == "learning_curve"
    text = [a for a in args if a != "--json"]
    assert main([*text, "--bias-correction", "learning_curve"]) == 0
    assert "plain held-out (a lower bound)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # argparse: one line, exit 2
        main([*args, "--bias-correction", "jackknife"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'jackknife'" in capsys.readouterr().err


def test_mi_on_npz(tmp_path, capsys):
    x, y = tiny_data(seed=1)
    path = tmp_path / "data.npz"
    np.savez(path, X=x, y=y)
    assert main(["mi", str(path), "--label", "y", "--json", *TINY]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_features"] == 2 and result["features"] == ["X"]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,label\n1,0\n2,1\n", ["--label", "nope"], "column 'nope' not found"),
        ("a,label\n1,0.5\n2,1\n", ["--label", "label"], "integer class labels"),
        ("a,label\n1,cat\n2,dog\n", ["--label", "label"], "integer class labels"),
        ("a,label\nx,0\n2,1\n", ["--label", "label"], "numeric"),
        ("a,label\nnan,0\n2,1\n3,0\n4,1\n", ["--label", "label"], "X must be finite"),
        ("a,label\n1,0\n2,0\n3,0\n", ["--label", "label"], "at least 2 classes"),
        ("a,label\n1,0\n2,1\n3,0\n4,1\n", ["--label", "label"], "fewer than 2|has 1 sample"),
    ],
)
def test_mi_user_errors_are_one_line_exit_2(tmp_path, capsys, content, args, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["mi", str(path), *args, *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("infocam: error:")
    assert any(m in err for m in message.split("|")), err


def test_mi_missing_file_names_it(tmp_path, capsys):
    missing = tmp_path / "none.csv"
    assert main(["mi", str(missing), "--label", "y"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "looked in" in err


def test_mi_npz_needs_feature_names_when_ambiguous(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, a=np.zeros(4), b=np.zeros(4), y=np.arange(4))
    assert main(["mi", str(path), "--label", "y"]) == 2
    assert "--features" in capsys.readouterr().err


def test_reproduce_mi_tiny(tmp_path, capsys):
    out = tmp_path / "mi"
    argv = ["reproduce", "mi", "--out", str(out), "--samples-per-class", "40", "--dims", "1"]
    argv += ["--cv", "2", "--max-epochs", "3", "--truth-samples", "2000", "--quiet", "--jobs", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "paper softmax" in printed and "cells within" in printed
    results = json.loads((out / "results.json").read_text())
    setups = [(r["setup"], r["dim"]) for r in results["rows"]]
    assert setups == [("balanced", 1), ("imbalanced", 1)]
    imb = results["rows"][1]
    assert imb["counts"] == [20, 40, 60, 80, 100]
    assert imb["truth"]["value"] == pytest.approx(1.0224, abs=1e-3)  # quadrature in 1-D
    for key in ("softmax", "pc", "softmax_paper_formula"):
        assert np.isfinite(imb[key]["value"])
    # The paper's +log M formula exceeds the prior-corrected one on imbalanced data by
    # E[log M + log p_y] = log 5 - H(Y) on the scored samples (exactly, per sample).
    # (Both plain: the reported cells are bias-corrected, the paper's formula is not.)
    gap = imb["softmax_paper_formula"]["value"] - imb["softmax"]["lower_bound"]["value"]
    counts = np.array(imb["counts"])
    p = counts / counts.sum()
    assert gap == pytest.approx(np.log(5) + (p * np.log(p)).sum(), abs=2e-3)
    assert (out / "table.md").read_text().startswith("| setup |")
    assert (out / "mi_table.png").stat().st_size > 1000


def test_reproduce_mi_rows_in_worker_processes_equal_one_process(tmp_path):
    from infocam.experiments import mi_table

    kw = {"dims": [1, 2], "samples_per_class": 40, "cv": 2, "max_epochs": 2}
    kw |= {"truth_samples": 2000, "quiet": True, "hidden": (8,)}
    one = mi_table.run(tmp_path / "one", jobs=1, **kw)
    two = mi_table.run(tmp_path / "two", jobs=2, **kw)
    assert two["config"]["jobs"] == 2
    assert [(r["setup"], r["dim"]) for r in two["rows"]] == [
        ("balanced", 1), ("balanced", 2), ("imbalanced", 1), ("imbalanced", 2)
    ]  # fmt: skip
    assert two["rows"] == one["rows"]


def test_reproduce_mi_bad_jobs_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "mi", "--out", str(tmp_path), "--jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--jobs must be a positive integer" in err and "Traceback" not in err


def test_reproduce_mi_worker_error_is_one_line(tmp_path, capsys):
    # 10 per class: the rarest imbalanced class has 5 samples, too few for 5 folds; the
    # ValueError is raised in a worker process and reaches the user as one line.
    argv = ["reproduce", "mi", "--out", str(tmp_path), "--samples-per-class", "10"]
    argv += ["--dims", "1", "--jobs", "2", "--truth-samples", "1000", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "class index 0 has 1 sample(s)" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
