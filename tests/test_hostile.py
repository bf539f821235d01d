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

MI_CASES: list[Case] = []

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
