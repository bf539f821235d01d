"""`infocam localize` end to end: a tiny random-weight model file and a generated image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from infocam.cli import main
from infocam.models import load_classifier


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loc")
    torch.manual_seed(0)
    model = torchvision.models.get_model("shufflenet_v2_x0_5", weights=None, num_classes=3)
    torch.save(model.state_dict(), tmp / "w.pt")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    img[10:30, 15:35] = (250, 20, 20)
    Image.fromarray(img).save(tmp / "cat.png")
    (tmp / "broken.jpg").write_bytes(b"not an image")
    return tmp


def test_localize_writes_overlays_and_grid(files, capsys):
    out = files / "out"
    argv = [str(files / "cat.png"), "--arch", "shufflenet_v2_x0_5", "--weights",
            str(files / "w.pt"), "--method", "infocam+", "--region", "3", "--out", str(out),
            "--image-size", "64", "--gt-box", "15,10,34,29"]  # fmt: skip
    assert main(["localize", *argv]) == 0
    line = capsys.readouterr().out
    assert "cat.png: class " in line and "infocam+ box [" in line and "IoU" in line
    single, grid = out / "cat_infocamplus.png", out / "cat_grid.png"
    assert single.is_file() and grid.is_file()
    with Image.open(single) as im:
        assert im.size == (64, 64)
        px = np.asarray(im)
    # the ground-truth box, scaled to 64 x 64 like wsolevaluation, is drawn in red
    x1, y1 = int(15 * 64 / 50), int(10 * 64 / 40)
    assert tuple(px[y1, x1 + 5]) == (230, 0, 0)
    with Image.open(grid) as im:
        assert im.size[0] > 2 * im.size[1]  # three panels side by side
    argv[argv.index("--region") + 1] = "4"
    assert main(["localize", *argv, "--region-padding", "centered"]) == 0
    assert "infocam+ box [" in capsys.readouterr().out


def test_localize_errors_are_one_line(files, capsys):
    base = ["localize", "--arch", "shufflenet_v2_x0_5", "--out", str(files / "o2")]
    assert main([*base, str(files / "missing.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.png" in err
    assert main([*base, str(files / "broken.jpg")]) == 2
    assert "corrupt image" in capsys.readouterr().err
    assert main([*base, "--weights", str(files / "nope.pt"), str(files / "cat.png")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert main(["localize", "--arch", "no_such_net", "--out", "o", "x.png"]) == 2
    assert "arch must be" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*base, "--gt-box", "1,2,3", str(files / "cat.png")])
    assert exc.value.code == 2
    assert main([*base, "--weights", str(files / "w.pt"), "--target", "7",
                 str(files / "cat.png")]) == 2  # fmt: skip
    assert "target must hold class indices in [0, 2]" in capsys.readouterr().err


def test_load_classifier_infers_classes_and_rejects_bad_files(files, tmp_path):
    model = load_classifier("shufflenet_v2_x0_5", str(files / "w.pt"))
    assert model.fc.out_features == 3 and not model.training
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot load weights"):
        load_classifier("shufflenet_v2_x0_5", str(tmp_path / "junk.pt"))
    with pytest.raises(ValueError, match="do not fit resnet18"):
        load_classifier("resnet18", str(files / "w.pt"))
