"""`infocam localize` end to end: a tiny random-weight model file and a generated image."""

from __future__ import annotations

from pathlib import Path

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
    before = single.read_bytes()
    # a second run into the same --out refuses, before any work, and keeps the first's files
    assert main(["localize", *argv, "--region-padding", "centered"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cat_infocamplus.png exists already and 1 more" in err
    assert "overwrite replaces them" in err and single.read_bytes() == before
    assert main(["localize", *argv, "--region-padding", "centered", "--overwrite"]) == 0
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
    from infocam.experiments.localize import localize_images
    from infocam.experiments.localize_inputs import check_image_files

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


# ------------------------------------------------------------------ bit depth of the input


def _fed_pixels(path, size):
    """The image ``localize_images`` feeds the model, mean/std normalisation undone."""
    from torch import nn

    from infocam._imagenet import IMAGENET_MEAN, IMAGENET_STD
    from infocam.experiments.localize import localize_images

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    fed = []
    model.register_forward_pre_hook(lambda mod, inp: fed.append(inp[0].clone()))
    localize_images([path], model, path.parent / f"out_{path.stem}", image_size=size)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (fed[-1][0] * std + mean).permute(1, 2, 0).numpy()


def test_16_bit_png_is_fed_as_its_value_over_65535(tmp_path):
    a = (np.arange(40 * 50).reshape(40, 50) * 32).astype(np.uint16)  # 0 .. 63968
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"  # a real 16-bit PNG
    # same size in both directions is no resize: the exact rescale reaches the model
    sq = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(sq).save(tmp_path / "sq16.png")
    got = _fed_pixels(tmp_path / "sq16.png", 32)
    expect = np.repeat((sq.astype(np.float32) / 65535)[..., None], 3, axis=-1)
    np.testing.assert_allclose(got, expect, atol=2e-6)  # was all 1.0 (PIL clips to 255)
    # resized: still the real range (a ramp from 0 to 0.98, not a white image)
    got = _fed_pixels(tmp_path / "g16.png", 32)
    assert got.min() < 0.05 and 0.4 < got.mean() < 0.6 and got.max() < 0.98


def test_float_tiff_is_fed_as_is_in_0_1_else_min_max_with_a_warning(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    unit = rng.random((32, 32), dtype=np.float32)
    Image.fromarray(unit).save(tmp_path / "unit.tif")  # PIL: mode F
    got = _fed_pixels(tmp_path / "unit.tif", 32)
    np.testing.assert_allclose(got, np.repeat(unit[..., None], 3, -1), atol=2e-6)  # was black
    wide = unit * 8 - 3
    cv2.imwrite(str(tmp_path / "wide.tif"), wide)  # written by OpenCV this time
    with pytest.warns(UserWarning, match=r"wide\.tif: float image with values in \[-2\.99"):
        got = _fed_pixels(tmp_path / "wide.tif", 32)
    expect = (wide - wide.min()) / (wide.max() - wide.min())
    np.testing.assert_allclose(got, np.repeat(expect[..., None], 3, -1), atol=2e-6)
    wide[3, 4] = np.inf
    cv2.imwrite(str(tmp_path / "inf.tif"), wide)
    with pytest.raises(ValueError, match=r"inf\.tif: the float image holds NaN or infinite"):
        _fed_pixels(tmp_path / "inf.tif", 32)


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "L", "1", "RGBA"])
def test_8_bit_modes_are_fed_as_their_rgb_over_255(tmp_path, mode):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    img = rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    with Image.open(path) as im:
        assert im.mode == mode
        expect = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(_fed_pixels(path, 32), expect, atol=2e-6)


def test_dataset_images_read_16_bit_by_their_real_range(tmp_path):
    from infocam.data._images import load_rgb

    a = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    got = np.asarray(load_rgb(tmp_path / "g16.png", "test"))
    expect = np.round(a / 65535 * 255).astype(np.uint8)
    assert got.shape == (20, 30, 3)
    np.testing.assert_array_equal(got[..., 0], expect)  # was 255 wherever a > 255


# ------------------------------------------------------------------ output names and memory


def test_colliding_stems_get_distinct_names_and_one_run_overwrites_nothing(files, tmp_path):
    from infocam.experiments.localize_inputs import _output_stems, check_localize_inputs

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "cat.png").write_bytes((files / "cat.png").read_bytes())
    Image.open(files / "cat.png").convert("RGB").save(tmp_path / "a" / "cat.jpg")
    paths = [tmp_path / "a" / "cat.png", tmp_path / "b" / "cat.png", tmp_path / "a" / "cat.jpg"]
    assert _output_stems(paths) == ["a_cat_png", "b_cat_png", "cat_jpg"]
    assert _output_stems([tmp_path / "x" / "Cat.png", tmp_path / "cat.png"]) == [
        "x_Cat_png",
        f"{tmp_path.name}_cat_png",  # equal but for case: distinct on a case-blind disk too
    ]
    assert _output_stems([tmp_path / "dog.png", tmp_path / "cat.png"]) == ["dog", "cat"]
    planned = check_localize_inputs(paths, tmp_path / "out", method="cam")
    files_written = [f.name for _, pair in planned for f in pair]
    assert files_written[:2] == ["a_cat_png_cam.png", "a_cat_png_grid.png"]
    assert len(set(files_written)) == 6
    # cat.png + cat.jpg become cat_png, cat_jpg: the stem of cat_png.gif; refused, not replaced
    with pytest.raises(ValueError, match=r"cat\.png and .*cat_png\.gif would both write cat_png_"):
        _output_stems([tmp_path / "cat.png", tmp_path / "cat.jpg", tmp_path / "cat_png.gif"])


def test_summary_keeps_only_thumbnails_of_its_first_rows(files, tmp_path, capsys, monkeypatch):
    import infocam.experiments.localize as localize
    from infocam.experiments.localize import LocalizedImage, summary_figure, thumbnails

    r = LocalizedImage(files / "cat.png", 0, 0.5, {}, None)
    r.panels = {
        "image": np.zeros((500, 500, 3), np.uint8),
        "cam": np.zeros((500, 500, 3), np.uint8),
    }
    small = thumbnails(r)
    assert small.panels["image"].shape == (192, 192, 3) and r.panels["cam"].shape[0] == 500
    with pytest.raises(ValueError, match="at most 100 images"):
        summary_figure([small] * 101, tmp_path / "s.png", methods=("cam",))
    monkeypatch.setattr(localize, "SUMMARY_MAX_ROWS", 2)
    names = []
    for i in range(3):
        names.append(str(tmp_path / f"im{i}.png"))
        Image.open(files / "cat.png").save(names[-1])
    summary = tmp_path / "summary.png"
    assert main([*_base(files, tmp_path / "out"), "--summary", str(summary), *names]) == 0
    assert f"summary -> {summary} (the first 2 of 3 images)" in capsys.readouterr().out
    with Image.open(summary) as im:
        assert im.size[1] < 2.6 * 2.4 * 80  # two rows of 2.4 in at 80 dpi, not three


_MEMORY_SCRIPT = r"""
import gc, resource, sys
gc.disable()  # cyclic garbage (a matplotlib figure per image) stays: measured, not left to luck
from pathlib import Path
import numpy as np, torch
from PIL import Image
from torch import nn
import infocam.models.registry
from infocam.cli import main

d = Path(sys.argv[1])
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(8, 3))
infocam.models.registry.load_classifier_with_input = lambda *a, **k: (net.eval(), None)  # tiny
rng = np.random.default_rng(0)
for i in range(18):
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(d / f"im{i}.png")

def run(n, out):
    argv = ["localize", *(str(d / f"im{i}.png") for i in range(n)), "--arch", "x",
            "--weights", "w", "--image-size", "384", "--out", str(d / out)]
    assert main(argv) == 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: kiB)

# Peak RSS only grows (no garbage collection): each run adds what it leaves behind, the same
# per run (parser, model hooks, its last figure) plus what each image leaves.
a, b, c = run(3, "a"), run(3, "b"), run(18, "c")
print(f"{(b - a):.1f} {(c - b):.1f}")
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="ru_maxrss: POSIX only")
def test_memory_is_flat_in_the_number_of_images(tmp_path):
    import os
    import subprocess
    import sys

    import infocam

    src = str(Path(infocam.__file__).parents[1])  # this checkout's infocam, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=True, env=env,
    )  # fmt: skip
    three, eighteen = map(float, out.stdout.split()[-2:])
    # Each result kept its image and 3 panels (1.7 MiB at 384 px) and a new grid figure per
    # image stayed until a cyclic garbage collection: 15 more images left ~75 MiB more (now ~0).
    assert eighteen - three < 25, (three, eighteen)


def test_least_likely_and_normalize_reach_the_maps_and_boxes(files, tmp_path, capsys, monkeypatch):
    import infocam.experiments.localize as localize

    seen = {"least_likely": set(), "normalize": set(), "padding": set()}
    cams, boxes = localize.class_activation_maps, localize.boxes_from_maps

    def cam_spy(*args, **kwargs):
        seen["least_likely"].add(kwargs.get("least_likely"))
        seen["padding"].add(kwargs.get("region_padding"))
        return cams(*args, **kwargs)

    def box_spy(maps, threshold, **kwargs):
        seen["normalize"].add(kwargs.get("normalize"))
        return boxes(maps, threshold, **kwargs)

    monkeypatch.setattr(localize, "class_activation_maps", cam_spy)
    monkeypatch.setattr(localize, "boxes_from_maps", box_spy)
    argv = [*_base(files, tmp_path / "a"), str(files / "cat.png")]
    assert main([*argv, "--least-likely", "region", "--normalize", "max"]) == 0
    assert seen == {"least_likely": {"region"}, "normalize": {"max"}, "padding": {"centered"}}
    capsys.readouterr()
