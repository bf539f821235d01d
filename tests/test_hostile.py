"""Hostile and careless input to the ``infocam`` command, one table: every case must end in one
line on stderr naming the problem, exit status 2 (or the stated one), no traceback, and nothing
lost or run that should not be.

Grow the table: add a :class:`Case` to the list of the command it belongs to. ``setup`` builds
what the case needs in its own folder (and may set environment variables through
``monkeypatch``); ``argv`` is formatted with ``{d}`` = that folder; ``after`` checks what must
hold afterwards (no marker file written, a previous result intact, ...).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infocam.cli import main


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    stderr: str  # a substring the one-line message must contain ({d} = the case's folder)
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None = None
    after: Callable[[Path], None] | None = None
    exit: int = 2


class _RunsCode:
    """Unpickling this calls ``exec``: a weight file that would write a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _image(d: Path, name: str = "cat.png") -> Path:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / name)
    return d / name


def _poisoned_hub_file(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poisoned resnet18 IMAGENET1K_V1 file where torchvision's cache would have it."""
    monkeypatch.setenv("TORCH_HOME", str(d / "torch"))
    hub = d / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({"conv1.weight": _RunsCode(d / "marker")}, hub / "resnet18-f37072fd.pth")
    _image(d)


def _poisoned_weights_file(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save({"fc.weight": _RunsCode(d / "marker")}, d / "evil.pt")
    _image(d)


def _text_as_weights(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (d / "best.pt").write_text("this is a text file, not weights\n")
    _image(d)


def _no_marker(d: Path) -> None:
    assert not (d / "marker").exists(), "the weight file's code ran"


_LOCALIZE = ("localize", "{d}/cat.png", "--out", "{d}/out", "--image-size", "32")

WEIGHTS_CASES = [
    Case(
        "torchvision hub file that would run code",
        (*_LOCALIZE, "--arch", "resnet18", "--weights", "IMAGENET1K_V1"),
        "resnet18-f37072fd.pth: it stores the Python object exec",
        _poisoned_hub_file,
        _no_marker,
    ),
    Case(
        "weights file that would run code",
        (*_LOCALIZE, "--arch", "resnet18", "--weights", "{d}/evil.pt"),
        "evil.pt: it stores the Python object exec",
        _poisoned_weights_file,
        _no_marker,
    ),
    Case(
        "text file given as weights",
        (*_LOCALIZE, "--arch", "resnet18", "--weights", "{d}/best.pt"),
        "best.pt is not a readable torch file",
        _text_as_weights,
    ),
]


def _csv(d: Path, rows: list[str], name: str = "data.csv") -> None:
    """A small CSV of two informative classes, ``rows`` appended (x, noise, y)."""
    rng = np.random.default_rng(0)
    body = [f"{rng.normal(2 * (i % 2) - 1):.6f},{rng.normal():.6f},{i % 2}" for i in range(60)]
    (d / name).write_text("\n".join(["x,noise,y", *body, *rows]) + "\n")


def _csv_with(*rows: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    return lambda d, monkeypatch: _csv(d, list(rows))


def _npz_with_nan(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.zeros((20, 3))
    x[1, 2] = np.nan
    np.savez(d / "data.npz", X=x, y=np.arange(20) % 2)


def _diverged(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training whose log-probabilities overflow: the estimate was printed as nan +- nan."""
    from infocam.mi import ClassifierMIEstimator

    real = ClassifierMIEstimator._log_posteriors
    monkeypatch.setattr(
        ClassifierMIEstimator,
        "_log_posteriors",
        lambda self, x, half=False: real(self, x, half) * np.nan,
    )
    _csv(d, [])


_GOOD = '{"previous": "good results"}\n'


def _previous_results_and_a_failing_disk(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Good results from an earlier run; this run's write fails (disk full, a file-size
    limit): results.json was truncated first (write_text) and its error named no file."""
    import errno
    import os

    (d / "mi").mkdir()
    (d / "mi" / "results.json").write_text(_GOOD)

    def full(fd: int) -> None:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "fsync", full)


def _previous_results_intact(d: Path) -> None:
    assert (d / "mi" / "results.json").read_text() == _GOOD
    assert sorted(p.name for p in (d / "mi").iterdir()) == ["results.json"]  # no temp files


_MI = ("mi", "{d}/data.csv", "--label", "y", "--hidden", "8", "--max-epochs", "5", "--cv", "2")
_TINY_TABLE = ("--samples-per-class", "40", "--dims", "1", "--cv", "2", "--max-epochs", "1",
               "--truth-samples", "1000", "--bias-correction", "none", "--jobs", "1")  # fmt: skip

MI_CASES: list[Case] = [
    Case(
        "CSV feature holding inf",
        (*_MI, "--quiet"),
        "data.csv: feature 'x' holds inf in data row 61",
        _csv_with("inf,0.5,1"),
    ),
    Case(
        "CSV feature beyond float64 (1e400 reads as inf)",
        (*_MI, "--quiet"),
        "data.csv: feature 'noise' holds -inf in data row 62",
        _csv_with("0.1,0.2,0", "0.3,-1e400,1"),
    ),
    Case(
        "CSV feature holding nan",
        (*_MI, "--json"),
        "data.csv: feature 'x' holds nan in data row 61",
        _csv_with("nan,0.5,1"),
    ),
    Case(
        "NPZ feature holding nan",
        ("mi", "{d}/data.npz", "--label", "y", "--quiet"),
        "data.npz: feature 'X[2]' holds nan in data row 2",
        _npz_with_nan,
    ),
    Case(
        "--device meta (holds no data)",
        (*_MI, "--quiet", "--device", "meta"),
        "device is 'meta', a device that holds no data",
        _csv_with(),
    ),
    Case(
        "an estimate that is not finite",
        (*_MI, "--json"),
        "no finite MI estimate: 60 of 60 point-wise MI values are not finite (60 NaN, 0 inf)",
        _diverged,
    ),
    Case(
        "reproduce mi whose results cannot be written",
        ("reproduce", "mi", "--out", "{d}/mi", *_TINY_TABLE, "--quiet"),
        "{d}/mi/results.json: could not write (File too large); the previous file is unchanged",
        _previous_results_and_a_failing_disk,
        _previous_results_intact,
    ),
]

LOCALIZE_CASES: list[Case] = []

TRAIN_CASES: list[Case] = []

CASES = WEIGHTS_CASES + MI_CASES + LOCALIZE_CASES + TRAIN_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_one_line_and_harmless(case, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("INFOCAM_DEBUG", raising=False)
    if case.setup is not None:
        case.setup(tmp_path, monkeypatch)
    argv = [arg.format(d=tmp_path) for arg in case.argv]
    assert main(argv) == case.exit
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert case.stderr.format(d=tmp_path) in err, err
    assert "weights_only=False" not in err  # never advise the unsafe load
    if case.after is not None:
        case.after(tmp_path)
