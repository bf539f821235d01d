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
    # (images are checked first, before the model: an existing one, to reach the arch check)
    assert main(["localize", "--arch", "no_such_net", "--out", "o", str(files / "cat.png")]) == 2
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
    with pytest.raises(ValueError, match=r"junk\.pt is not a readable torch file"):
        load_classifier("shufflenet_v2_x0_5", str(tmp_path / "junk.pt"))
    with pytest.raises(ValueError, match="do not fit resnet18"):
        load_classifier("resnet18", str(files / "w.pt"))


def _base(files, out):
    return ["localize", "--arch", "shufflenet_v2_x0_5", "--weights", str(files / "w.pt"),
            "--image-size", "32", "--out", str(out)]  # fmt: skip


@pytest.mark.parametrize(("bad", "needle"), [("missing.png", "image not found"),
                                             ("broken.jpg", "corrupt image")])  # fmt: skip
def test_every_image_is_checked_before_the_model_loads(files, tmp_path, capsys, bad, needle):
    out = tmp_path / "out"
    # --weights names no file: were the model loaded first, the error would name nope.pt
    argv = ["localize", "--arch", "shufflenet_v2_x0_5", "--weights", str(tmp_path / "nope.pt"),
            "--out", str(out), str(files / "cat.png"), str(files / bad)]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and bad in captured.err and needle in captured.err
    assert captured.out == "" and not out.exists()  # nothing done, nothing half-written


def test_each_image_is_reported_as_soon_as_it_is_done(files, tmp_path, capsys, monkeypatch):
    import infocam.experiments.localize as localize

    read = localize.read_image

    def fail_on_second(path, size):
        if "second" in str(path):
            raise ValueError(f"cannot read {path}")
        return read(path, size)

    second = tmp_path / "second.png"
    second.write_bytes((files / "cat.png").read_bytes())
    monkeypatch.setattr(localize, "read_image", fail_on_second)
    out = tmp_path / "out"
    assert main([*_base(files, out), str(files / "cat.png"), str(second)]) == 2
    captured = capsys.readouterr()
    # the first image's line was printed: its files are there and the user is told so
    assert captured.out.count("\n") == 1 and "cat.png: class " in captured.out
    assert (out / "cat_infocamplus.png").is_file() and "second.png" in captured.err


def test_device_and_sizes_are_checked_naming_the_flag(files, tmp_path, capsys):
    out = tmp_path / "out"
    cat = str(files / "cat.png")
    if not torch.cuda.is_available():
        assert main([*_base(files, out), "--device", "cuda", cat]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--device is 'cuda' but CUDA is not available" in err
    assert main([*_base(files, out), "--device", "gpu0", cat]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device must be a torch device such as 'cpu'" in err
    for flag, value in [("--image-size", "0"), ("--region", "0"), ("--threshold", "1.5"),
                        ("--num-classes", "0"), ("--target", "-1")]:  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main([*_base(files, out), flag, value, cat])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"argument {flag}:" in err and repr(value) in err
    assert not out.exists()


def test_localize_images_checks_arguments_before_any_work(files, tmp_path):
    from infocam.experiments.localize import check_image_files, localize_images

    model = load_classifier("shufflenet_v2_x0_5", str(files / "w.pt"))
    cat = files / "cat.png"
    cases = [
        ({"image_size": 0}, ValueError, "image_size must be an integer >= 1; got 0"),
        ({"threshold": 1.0}, ValueError, r"threshold must be a real number in \[0, 1\)"),
        ({"region": 2.5}, TypeError, "region must be an integer >= 1"),
        ({"target": -1}, ValueError, "target must be an integer >= 0"),
        ({"device": "gpu0"}, ValueError, "device must be a torch device"),
    ]
    for kwargs, exc, needle in cases:
        with pytest.raises(exc, match=needle):
            localize_images([cat], model, tmp_path / "o", **kwargs)
    with pytest.raises(FileNotFoundError, match="image not found"):
        localize_images([cat, files / "missing.png"], model, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    got = localize_images(
        [cat], model, tmp_path / "o", image_size=np.int64(32), threshold=np.float32(0.2)
    )
    assert len(got) == 1 and got[0].files[0].is_file()
    assert check_image_files(str(cat)) == [cat]  # one path is a list of one


def test_check_device():
    from infocam._validation import check_device

    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu"), "--device") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device is 'meta', a device that holds no data"):
        check_device("meta", "--device")  # it allocates, but nothing can be computed on it
    for bad in ("gpu0", "cuda:-1", "cuda:x", ""):
        with pytest.raises(ValueError, match=r"--device must be a torch device such as"):
            check_device(bad, "--device")
    with pytest.raises(TypeError, match="device must be a torch device"):
        check_device(True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device is 'cuda:1' but CUDA is not available"):
            check_device("cuda:1")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(ValueError, match=f"only {n} CUDA device"):
            check_device(f"cuda:{n}")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="MPS is not available"):
            check_device("mps")
