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
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import flip_tensor_bytes
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

# ----------------------------------------------------------------------------- train / evaluate

_TINY = ("--dataset", "cluttered-digits", "--image-size", "64", "--n-train", "16", "--n-val",
         "8", "--n-test", "8", "--epochs", "1", "--batch-size", "8", "--quiet")  # fmt: skip
_TRAIN = ("train", *_TINY, "--out", "{d}/run")
_trained: list[Path] = []  # one real run, trained once, copied into each case that needs it
_holders: dict[Path, subprocess.Popen] = {}


def _run(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real run of `infocam train` in d/run (best.pt, last.pt, log.jsonl, wsol.json)."""
    if not _trained:
        assert main([arg.format(d=d) for arg in _TRAIN]) == 0
        _trained.append(d / "run")
    else:
        shutil.copytree(_trained[0], d / "run")
    (d / "before").mkdir()
    for name in ("best.pt", "last.pt"):
        shutil.copy(d / "run" / name, d / "before" / name)


def _run_unchanged(d: Path) -> None:
    for name in ("best.pt", "last.pt"):
        assert (d / "run" / name).read_bytes() == (d / "before" / name).read_bytes(), name


def _corrupt_best(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(d, monkeypatch)
    flip_tensor_bytes(d / "run" / "best.pt")


def _run_in_use(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """d/run locked by another live process, as a concurrent `infocam train` holds it."""
    (d / "run").mkdir()
    code = (
        "import fcntl, os, sys; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write(str(os.getpid())); f.flush(); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(d / "run" / ".lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    _holders[d] = holder
    assert holder.stdout.readline().strip() == "locked"


def _release_holder(d: Path) -> None:
    holder = _holders.pop(d)
    holder.stdin.close()
    holder.wait(timeout=30)
    assert not (d / "run" / "log.jsonl").exists(), "the refused run wrote into the folder"


def _one_channel_weights(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infocam.models import get_model

    torch.save(get_model("small_gap_cnn", 10).state_dict(), d / "w.pt")  # no "input" record
    _image(d)


def _nothing_created(d: Path) -> None:
    assert not (d / "new").exists(), "the refused run left its folder behind"


def _used_output_folder(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (d / "rw").mkdir()
    (d / "rw" / "results.json").write_text('{"earlier": "results"}')


def _output_folder_unchanged(d: Path) -> None:
    assert (d / "rw" / "results.json").read_text() == '{"earlier": "results"}'


TRAIN_CASES: list[Case] = [
    Case(
        "corrupted best.pt (64 flipped bytes in a tensor)",
        ("evaluate", "{d}/run", "--regions", "1", "--thresholds", "0.2", "--quiet"),
        "{d}/run/best.pt: checksum mismatch, the file is corrupt",
        _corrupt_best,
    ),
    Case(
        "train into a folder that holds a run",
        (*_TRAIN, "--seed", "1"),
        "run folder {d}/run is not empty (best.pt, last.pt, log.jsonl, results.json ...): "
        "pass --resume",
        _run,
        _run_unchanged,
    ),
    Case(
        "train into a folder another run is using",
        (*_TRAIN, "--resume"),
        "run folder {d}/run is in use by another run (pid ",
        _run_in_use,
        _release_holder,
    ),
    Case(
        "--overwrite and --resume together",
        (*_TRAIN, "--resume", "--overwrite"),
        "overwrite and resume exclude each other",
        _run,
        _run_unchanged,
    ),
    Case(
        "resume with another learning rate",
        (*_TRAIN, "--resume", "--lr", "0.01"),
        "with other settings: --lr 0.002 -> 0.01",
        _run,
        _run_unchanged,
    ),
    Case(
        "resume with more epochs, not accepted",
        (*_TRAIN, "--resume", "--epochs", "3"),
        "--epochs 1 -> 3 (pass --change-epochs to accept it)",
        _run,
        _run_unchanged,
    ),
    Case(
        "resume with another --n-train",
        (*_TRAIN, "--resume", "--n-train", "24"),
        "with other settings: training set 16 samples -> 24 samples",
        _run,
        _run_unchanged,
    ),
    Case(
        "resume with another --image-size",
        (*_TRAIN, "--resume", "--image-size", "72"),
        "with other settings: --image-size 64 -> 72",
        _run,
        _run_unchanged,
    ),
    Case(
        "--n-train 0 (not 'all')",
        ("train", *_TINY, "--n-train", "0", "--out", "{d}/new"),
        "n_train (--n-train) must be a positive number of images, or left out",
        after=_nothing_created,
    ),
    Case(
        "--n-val 0 in reproduce wsol",
        ("reproduce", "wsol", "--n-val", "0", "--out", "{d}/rw"),
        "n_val (--n-val) must be a positive number of images",
    ),
    Case(
        "reproduce wsol into an output folder holding results",
        ("reproduce", "wsol", *_TINY[2:], "--out", "{d}/rw"),
        "output folder {d}/rw is not empty (results.json): pass --resume",
        _used_output_folder,
        _output_folder_unchanged,
    ),
    Case(
        "reproduce pc-softmax into an output folder holding results",
        ("reproduce", "pc-softmax", "--seeds", "1", "--epochs", "1", "--quiet", "--out", "{d}/rw"),
        "output folder {d}/rw is not empty (results.json): pass --resume",
        _used_output_folder,
        _output_folder_unchanged,
    ),
    Case(
        "localize a 1-channel weights file that does not say how it was fed",
        (*_LOCALIZE, "--arch", "small_gap_cnn", "--weights", "{d}/w.pt"),
        "w.pt are for a 1-channel model and do not record how its inputs were normalised",
        _one_channel_weights,
    ),
]

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
