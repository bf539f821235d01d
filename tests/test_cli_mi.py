"""`infocam mi DATA --label COLUMN` and `infocam reproduce mi`, end to end on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infocam.cli import main
from infocam.experiments.mi_file import format_report

TINY = ["--hidden", "8", "--max-epochs", "30", "--cv", "2", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread_module")


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
    out = capsys.readouterr().out
    assert "plain held-out estimate (a lower bound in expectation)" in out
    assert "covers the bias-corrected estimate's expectation, not I(X;Y)" in out
    assert corrected["estimate_kind"] == "bias-corrected (learning curve)"
    assert corrected["ci95_covers"].startswith("the expectation of the bias-corrected")
    # The one-sided bound always comes from the plain held-out estimate.
    assert corrected["lower_confidence_bound95_nat"] == plain["lower_confidence_bound95_nat"]
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
        (
            "a,label\nnan,0\n2,1\n3,0\n4,1\n",
            ["--label", "label"],
            "feature 'a' holds nan in data row 1",
        ),
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
    assert "name the feature array(s) (features)" in capsys.readouterr().err


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
    assert "class 0 has 1 sample(s) in a cross-fitting fold (cv=5)" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("infocam: error:"), err
    assert "Traceback" not in err
    return err


def _npz_bytes(tmp_path, compressed: bool = True) -> bytes:
    x, y = tiny_data()
    good = tmp_path / "good.npz"
    (np.savez_compressed if compressed else np.savez)(good, X=x, y=y)
    return good.read_bytes()


def _flip_compressed_bytes(data: bytes) -> bytes:
    # Inside the first member's deflate stream (after its local header and name).
    name_len = int.from_bytes(data[26:28], "little")
    extra_len = int.from_bytes(data[28:30], "little")
    start = 30 + name_len + extra_len + 20
    return data[:start] + bytes(b ^ 0xFF for b in data[start : start + 40]) + data[start + 40 :]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: b"PK\x03\x04garbage" * 20, "BadZipFile"),
        (lambda tmp: _npz_bytes(tmp)[:600], "BadZipFile"),
        (lambda tmp: _flip_compressed_bytes(_npz_bytes(tmp)), ""),
        (lambda tmp: b"", "the file is empty"),
        (lambda tmp: b"hello world, this is not an npz file\n", "not a zip archive"),
        (lambda tmp: _npy_bytes(tmp), "a single .npy array"),
    ],
    ids=["garbage-zip", "truncated", "flipped-bytes", "empty", "text", "npy-renamed"],
)
def test_mi_unreadable_npz_is_one_line_naming_the_file(tmp_path, capsys, make, reason):
    path = tmp_path / "broken.npz"
    path.write_bytes(make(tmp_path))
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    err = _one_line_error(capsys)
    assert "broken.npz: not a readable .npz file (" in err and reason in err, err


def _npy_bytes(tmp_path) -> bytes:
    np.save(tmp_path / "a.npy", np.zeros((4, 2)))
    return (tmp_path / "a.npy").read_bytes()


def test_mi_npz_object_array_is_refused_without_unpickling(tmp_path, capsys):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([[1, None]] * 10, dtype=object), y=np.arange(10) % 2)
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    assert "array 'X' in obj.npz holds Python objects" in _one_line_error(capsys)


def test_mi_npz_feature_rows_must_match_the_labels(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((3, 2)), y=np.arange(4) % 2)
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    assert "must have one row per label (4, ...); got shape (3, 2)" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ("a,label", "features: 'label' is the label; it cannot also be a feature"),
        ("a,a", "features: ['a'] given more than once"),
    ],
)
def test_mi_features_must_not_repeat_or_hold_the_label(
    csv_file, tmp_path, capsys, features, message
):
    assert main(["mi", str(csv_file), "--label", "label", "--features", features, *TINY]) == 2
    assert message in _one_line_error(capsys)
    x, y = tiny_data()
    npz = tmp_path / "d.npz"
    np.savez(npz, a=x[:, 0], label=y)
    assert main(["mi", str(npz), "--label", "label", "--features", features, *TINY]) == 2
    assert message in _one_line_error(capsys)


def test_mi_csv_duplicate_header_is_refused(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,label\n1,2,0\n3,4,1\n")
    assert main(["mi", str(path), "--label", "label", *TINY]) == 2
    assert "column name(s) ['a'] appear more than once" in _one_line_error(capsys)


def test_mi_csv_with_a_byte_order_mark_reads_the_first_column(tmp_path, capsys):
    x, y = tiny_data()
    path = tmp_path / "excel.csv"
    lines = ["label,a,b"] + [f"{c},{r[0]:.6f},{r[1]:.6f}" for r, c in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # Excel's "CSV UTF-8"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert main(["mi", str(path), "--label", "label", "--json", *TINY]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["features"] == ["a", "b"] and result["classes"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (
            "1e300",
            "must hold integer class labels that fit in 64 bits (|label| < 2**63); got '1e300'",
        ),
        ("99999999999999999999", "fit in 64 bits"),
        ("1.5", "must hold integer class labels; got '1.5'"),
    ],
)
def test_mi_csv_bad_label_is_quoted_as_typed(tmp_path, capsys, label, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"a,label\n1,0\n2,1\n3,{label}\n")
    assert main(["mi", str(path), "--label", "label", *TINY]) == 2
    err = _one_line_error(capsys)
    assert message in err and "np.str_" not in err, err


def test_mi_npz_bad_labels_name_the_value_or_dtype(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((3, 1)), y=np.array([0.0, 1.0, 1.5]))
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    assert "label array 'y' in d.npz must hold integer class labels; got 1.5" in _one_line_error(
        capsys
    )
    np.savez(path, X=np.zeros((3, 1)), y=np.array(["a", "b", "a"]))
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    assert "got dtype <U1 (e.g. 'a')" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden", "0"], "hidden must be a sequence of integer layer widths >= 1"),
        (["--hidden", "8,-3"], "got (8, -3)"),
        (
            ["--device", "tpu"],
            "device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got 'tpu'",
        ),
    ],
)
def test_mi_bad_hidden_or_device_is_one_line(csv_file, capsys, args, message):
    assert main(["mi", str(csv_file), "--label", "label", *TINY, *args]) == 2
    assert message in _one_line_error(capsys)


def test_mi_cuda_without_cuda_is_one_line(csv_file, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["mi", str(csv_file), "--label", "label", *TINY, "--device", "cuda"]) == 2
    assert "device is 'cuda' but CUDA is not available" in _one_line_error(capsys)
    argv = ["reproduce", "mi", "--out", str(tmp_path), "--device", "cuda", "--quiet"]
    assert main(argv) == 2
    assert "CUDA is not available" in _one_line_error(capsys)
    assert not (tmp_path / "results.json").exists()


def test_mi_npz_without_feature_columns_or_rows_is_one_line(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((10, 0)), y=np.arange(10) % 2)
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    assert "X must hold at least 1 sample and 1 feature" in _one_line_error(capsys)
    np.savez(path, X=np.zeros((0, 2)), y=np.zeros(0, dtype=int))
    assert main(["mi", str(path), "--label", "y", *TINY]) == 2
    assert "got shape (0, 2)" in _one_line_error(capsys)


def test_mi_rare_class_message_names_the_label_value(tmp_path, capsys):
    x, y = tiny_data()
    labels = np.array([5, 15, 15])[y]
    labels[0] = 99  # one sample of class 99
    path = tmp_path / "rare.csv"
    rows = [f"{r[0]:.6f},{c}" for r, c in zip(x, labels, strict=True)]
    path.write_text("\n".join(["a,label", *rows]) + "\n")
    assert main(["mi", str(path), "--label", "label", "--max-epochs", "1", "--quiet"]) == 2  # cv 5
    err = _one_line_error(capsys)
    assert "y: class 99 has" in err and "a class needs 10; class 99 has 1" in err, err
    assert "index" not in err and "val_fraction" not in err


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_mi_json_with_a_1e308_feature_is_valid_and_the_column_still_informs(tmp_path, capsys):
    """One entry of 1e308: the output was `I = nan ± nan` and bare NaN in --json (the std of the
    column overflowed); with it in the informative column the estimate is the clean one's."""
    x, y = tiny_data()
    results = {}
    for name, wild in (("clean", None), ("wild", 1e308)):
        a = x[:, 0].copy()
        if wild is not None:
            a[5] = wild
        lines = ["a,label,b"] + [f"{u},{c},{v}" for u, c, v in zip(a, y, x[:, 1], strict=True)]
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n")
        argv = ["mi", str(path), "--label", "label", "--features", "a", "--max-epochs", "300"]
        assert main([*argv, "--hidden", "8", "--cv", "2", "--json"]) == 0
        results[name] = _strict_json(capsys.readouterr().out)
    clean, wild = results["clean"], results["wild"]
    assert clean["mi_nat"] > 0.3
    bound = 3 * np.hypot(clean["stderr_nat"], wild["stderr_nat"])
    assert abs(wild["mi_nat"] - clean["mi_nat"]) < bound, (wild["mi_nat"], clean["mi_nat"])


def test_mi_copied_rows_do_not_inflate_and_are_reported(tmp_path, capsys):
    """Random labels (I = 0), every row 4 times, the default settings: copies split between
    training and held-out rows gave 0.55 nat with held-out accuracy 0.96."""
    rng = np.random.default_rng(1)
    rows = [",".join(f"{v:.6f}" for v in rng.normal(size=5)) + f",{rng.integers(0, 2)}"
            for _ in range(200)]  # fmt: skip
    path = tmp_path / "copied.csv"
    path.write_text("\n".join(["a,b,c,d,e,label", *(rows * 4)]) + "\n")
    assert main(["mi", str(path), "--label", "label", "--quiet", "--json"]) == 0
    r = _strict_json(capsys.readouterr().out)
    assert r["mi_nat"] < 3 * r["stderr_nat"] and r["heldout_accuracy"] < 0.6, r
    assert r["n_duplicate_rows"] == 600
    assert "600 row(s) repeat another row's features" in format_report(r)


_TINY_TABLE = ["--samples-per-class", "40", "--dims", "1", "--cv", "2", "--max-epochs", "1"]
_TINY_TABLE += ["--truth-samples", "1000", "--bias-correction", "none", "--jobs", "1", "--quiet"]


def test_reproduce_mi_under_a_file_size_limit_keeps_the_previous_results(tmp_path):
    """`ulimit -f`: results.json was truncated (written in place) and the error named no file."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "mi"
    out.mkdir()
    good = '{"previous": "good results"}\n'
    (out / "results.json").write_text(good)
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
        "from infocam.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**__import__("os").environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    env.pop("INFOCAM_DEBUG", None)
    argv = ["reproduce", "mi", "--out", str(out), *_TINY_TABLE]
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"infocam: error: {out / 'results.json'}: could not write (File too large); "
        "the previous file is unchanged"
    )
    assert (out / "results.json").read_text() == good
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_reproduce_mi_figure_that_fails_half_written_keeps_the_previous_one(
    tmp_path, capsys, monkeypatch
):
    """Every file `reproduce mi` writes is atomic, the PNG too (savefig wrote in place)."""
    import errno
    from pathlib import Path

    from matplotlib.figure import Figure

    out = tmp_path / "mi"
    assert main(["reproduce", "mi", "--out", str(out), *_TINY_TABLE]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["mi_table.png", "results.json", "table.md"]

    def disk_full(self, fname, **kw):
        if hasattr(fname, "write"):
            fname.write(b"\x89PNG half")
        else:
            Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    assert main(["reproduce", "mi", "--out", str(out), *_TINY_TABLE]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'mi_table.png'}: could not write (No space left on device)" in err
    assert (out / "mi_table.png").read_bytes() == before["mi_table.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_api_and_cli_share_one_default_number_of_folds(capsys):
    """Issue 18: ``ClassifierMIEstimator()`` held out one 20% split (cv=None) while
    ``infocam mi`` cross-fitted 5 folds; the same data gave two different answers."""
    import argparse
    import inspect

    from infocam import ClassifierMIEstimator
    from infocam.cli.mi import _add_mi
    from infocam.experiments.mi_file import measure_file

    api = ClassifierMIEstimator().cv
    parser = argparse.ArgumentParser()
    _add_mi(parser.add_subparsers())
    cli = parser.parse_args(["mi", "data.csv", "--label", "y"]).cv
    assert api == cli == inspect.signature(measure_file).parameters["cv"].default == 5


def test_mi_says_what_each_number_covers(csv_file, capsys):
    """Issue 18: the interval is for the held-out estimate's expectation, not I(X;Y); the
    one-sided 95% lower confidence bound (value - 1.645 stderr) is for I(X;Y)."""
    args = ["mi", str(csv_file), "--label", "label", *TINY]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["estimate_kind"] == "held-out" and "not I(X;Y)" in r["ci95_covers"]
    want = r["lower_bound_nat"] - 1.6448536 * r["lower_bound_stderr_nat"]
    assert r["lower_confidence_bound95_nat"] == pytest.approx(want, abs=1e-6)
    assert r["lower_confidence_bound95_covers"].startswith("I(X;Y): a one-sided lower")
    assert r["ci95_nat"][0] < r["lower_confidence_bound95_nat"] < r["mi_nat"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "covers the held-out estimate's expectation, not I(X;Y)" in out
    assert f"I(X;Y)  >= {r['lower_confidence_bound95_nat']:.4f} nat   one-sided 95% lower" in out
    assert "95% CI" not in out
