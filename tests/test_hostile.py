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
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
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


def _huge_png(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real, valid 15000 x 15000 1-bit PNG (28 kB): over PIL's decompression-bomb limit."""
    side = 15000
    raw = zlib.compress(bytes(side * (1 + side // 8)), 9)  # each row: filter byte + 1875 bytes

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    (d / "huge.png").write_bytes(png)


def _same_stems(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ("a", "b"):
        (d / sub).mkdir()
        _image(d / sub)
    _image(d, "cat.jpg")
    _image(d)


def _earlier_run(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _image(d)
    (d / "out").mkdir()
    (d / "out" / "cat_grid.png").write_text("an earlier run's result")


def _earlier_run_kept(d: Path) -> None:
    assert (d / "out" / "cat_grid.png").read_text() == "an earlier run's result"
    assert not (d / "out" / "cat_infocamplus.png").exists()  # refused before any work


def _inputs_intact(d: Path) -> None:
    assert (d / "cat_grid.png").read_bytes() == (d / "cat.png").read_bytes()  # same image
    assert not (d / "cat_infocamplus.png").exists()  # refused before any work


def _both_cats_written(d: Path) -> None:
    # cat.jpg differs from the three cat.png by its extension, they from each other by folder
    names = sorted(f.name for f in (d / "out").iterdir())
    assert names == sorted(
        f"{stem}_{kind}.png"
        for stem in ("a_cat_png", "b_cat_png", "cat_jpg", f"{d.name}_cat_png")
        for kind in ("infocamplus", "grid")
    ), names


def _tiny_weights(d: Path) -> None:
    torch.manual_seed(0)
    net = torchvision.models.get_model("shufflenet_v2_x0_5", weights=None, num_classes=3)
    torch.save(net.state_dict(), d / "w.pt")


def _float_tiff(values: np.ndarray) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        _tiny_weights(d)
        Image.fromarray(values.astype(np.float32)).save(d / "cat.tif")

    return setup


_RAMP = np.linspace(-3, 5, 40 * 50).reshape(40, 50)
_R18 = ("--arch", "resnet18")
_CATS = ("{d}/a/cat.png", "{d}/b/cat.png", "{d}/cat.png", "{d}/cat.jpg")
_TINY = ("--arch", "shufflenet_v2_x0_5", "--weights", "{d}/w.pt")

LOCALIZE_CASES: list[Case] = [
    Case(
        "15000 x 15000 PNG (decompression bomb)",
        ("localize", "{d}/huge.png", "--out", "{d}/out", "--arch", "resnet18"),
        "huge.png: image too large: Image size (225000000 pixels) exceeds limit of 178956970",
        _huge_png,
    ),
    Case(
        "--image-size 20000",
        (*_LOCALIZE[:-1], "20000", "--arch", "resnet18"),
        "--image-size must be at most 4096 pixels",
        lambda d, mp: _image(d),
    ),
    Case(
        "--gt-box outside the image",
        (*_LOCALIZE, "--arch", "resnet18", "--gt-box", "10,5,50,30"),
        "gt_box 10,5,50,30 is not inside image {d}/cat.png (50 x 40 pixels)",
        lambda d, mp: _image(d),
    ),
    Case(
        "the same image twice",
        ("localize", "{d}/cat.png", "{d}/sub/../cat.png", "--out", "{d}/out", "--arch", "resnet18"),
        "image {d}/sub/../cat.png is given twice (also as {d}/cat.png)",
        lambda d, mp: (d / "sub").mkdir() or _image(d),
    ),
    Case(
        "a second run into the same --out",
        (*_LOCALIZE, "--arch", "resnet18"),
        "cat_grid.png exists already (from an earlier run?); overwrite replaces them",
        _earlier_run,
        _earlier_run_kept,
    ),
    Case(
        "--summary naming an image's own output",
        (*_LOCALIZE, "--arch", "resnet18", "--summary", "{d}/out/cat_grid.png"),
        "summary {d}/out/cat_grid.png is also an image's output file",
        lambda d, mp: _image(d),
    ),
    Case(
        "an input image named like an output, even with --overwrite",
        ("localize", "{d}/cat.png", "{d}/cat_grid.png", "--out", "{d}", "--overwrite", *_R18),
        "{d}/cat_grid.png is an input image and would be an output of this run",
        lambda d, mp: _image(d) and _image(d, "cat_grid.png"),
        _inputs_intact,
    ),
    Case(
        "float TIFF holding NaN",
        ("localize", "{d}/cat.tif", "--out", "{d}/out", "--image-size", "32", *_TINY),
        "cat.tif: the float image holds NaN or infinite values",
        _float_tiff(np.where(_RAMP > 4, np.nan, _RAMP)),
    ),
    # exit 0 from here on: the one line on stderr is a warning
    Case(
        "float TIFF outside [0, 1] (min-max rescaled, with a note)",
        ("localize", "{d}/cat.tif", "--out", "{d}/out", "--image-size", "32", *_TINY),
        "warning: {d}/cat.tif: float image with values in [-3, 5], not [0, 1]: rescaled by its "
        "own minimum and maximum",
        _float_tiff(_RAMP),
        exit=0,
    ),
    Case(
        "same stems in two folders and two formats, random weights",
        ("localize", *_CATS, "--out", "{d}/out", "--image-size", "32", "--arch", "resnet18"),
        "warning: no --weights: resnet18 has random weights",
        _same_stems,
        _both_cats_written,
        exit=0,
    ),
]

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
        "resume continues the run",
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
        "with other settings: lr 0.002 -> 0.01",
        _run,
        _run_unchanged,
    ),
    Case(
        "resume with more epochs, not accepted",
        (*_TRAIN, "--resume", "--epochs", "3"),
        "epochs 1 -> 3 (allow it with change_epochs)",
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
        "output folder {d}/rw is not empty (results.json): resume continues",
        _used_output_folder,
        _output_folder_unchanged,
    ),
    Case(
        "reproduce pc-softmax into an output folder holding results",
        ("reproduce", "pc-softmax", "--seeds", "1", "--epochs", "1", "--quiet", "--out", "{d}/rw"),
        "output folder {d}/rw is not empty (results.json): resume continues",
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
