"""Weight loading: torchvision checkpoints, the model's own checkpoints, and every way they fail."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights

from infocam.errors import CheckpointError
from infocam.models import (
    load_weights,
    mnist_cnn,
    resnet18_gap,
    resnet50_gap,
    small_gap_cnn,
    vgg16_gap,
)


@pytest.fixture(scope="module")
def tv_resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial BN buffers, to see that they are loaded too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
    return model.state_dict()


@pytest.fixture
def tv_resnet18_file(tmp_path, tv_resnet18_state) -> Path:
    path = tmp_path / "resnet18-random.pth"
    torch.save(tv_resnet18_state, path)
    return path


def test_torchvision_resnet18_file_fills_the_trunk(tv_resnet18_file, tv_resnet18_state):
    model = resnet18_gap(7, weights=tv_resnet18_file, adl=True)
    state = model.state_dict()
    for key, value in tv_resnet18_state.items():
        if key.startswith("fc."):
            continue
        torch.testing.assert_close(state[f"features.{key}"], value, rtol=0, atol=0)
    assert state["fc.weight"].shape == (7, 512)
    # load_weights reports what stayed new: exactly the head.
    assert load_weights(
        resnet18_gap(7),
        str(tv_resnet18_file),
        torchvision=_resnet18_source(),
        head_prefixes=("fc.",),
    ) == ["fc.weight", "fc.bias"]


def _resnet18_source():
    from infocam.models.gap import _resnet_from_torchvision
    from infocam.models.weights import TorchvisionSource

    return TorchvisionSource(ResNet18_Weights, _resnet_from_torchvision)


def test_torchvision_vgg16_and_resnet50_layouts_map():
    torch.manual_seed(2)
    for tv_factory, ours_factory, probe in [
        (torchvision.models.vgg16, vgg16_gap, ("features.28.weight", "features.28.weight")),
        (torchvision.models.resnet50, resnet50_gap, ("layer4.2.conv3.weight", None)),
    ]:
        with torch.device("meta"):  # torchvision's exact key names and shapes, cheaply
            layout = tv_factory().state_dict()
        state = {k: torch.randn(v.shape) for k, v in layout.items() if v.dim() > 0}
        state |= {k: torch.tensor(0) for k, v in layout.items() if v.dim() == 0}
        model = ours_factory(3, weights=state, adl=True)
        src, dst = probe
        dst = dst or f"features.{src}"
        torch.testing.assert_close(model.state_dict()[dst], state[src], rtol=0, atol=0)


def test_own_checkpoint_round_trip_with_wrappers(tmp_path):
    torch.manual_seed(3)
    trained = small_gap_cnn(4, adl=True)
    x = torch.randn(2, 1, 32, 32)
    trained.eval()
    path = tmp_path / "ckpt.pt"
    # DDP prefix inside a training checkpoint dict.
    wrapped = {f"module.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": wrapped}, path)
    loaded = small_gap_cnn(4, weights=path).eval()  # ADL-free model, same keys
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), trained(x), rtol=0, atol=0)
    model = mnist_cnn()
    torch.save({"model": model.state_dict()}, tmp_path / "m.pth")
    torch.testing.assert_close(
        mnist_cnn(weights=str(tmp_path / "m.pth")).state_dict()["classifier.fc2.weight"],
        model.state_dict()["classifier.fc2.weight"],
    )


def test_mismatching_file_lists_missing_unexpected_and_shapes(tmp_path, tv_resnet18_state):
    state = dict(tv_resnet18_state)
    del state["layer2.0.conv1.weight"]
    state["layer9.extra"] = torch.zeros(3)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        resnet18_gap(7, weights=path)
    message = str(info.value)
    assert str(path) in message and "resnet18_gap" in message
    assert "1 missing keys: features.layer2.0.conv1.weight" in message
    assert "1 unexpected keys: features.layer9.extra" in message
    assert "features.layer1.0.conv1.weight: file (64, 64, 1, 1) vs model (64, 64, 3, 3)" in message


def test_checkpoint_of_another_architecture(tv_resnet18_file):
    with pytest.raises(CheckpointError, match=r"resnet50_gap.*shape mismatches"):
        resnet50_gap(7, weights=tv_resnet18_file)
    with pytest.raises(CheckpointError, match=r"small_gap_cnn.*missing keys"):
        small_gap_cnn(3, weights=tv_resnet18_file)


def test_own_checkpoint_with_other_num_classes_names_the_head():
    state = small_gap_cnn(4).state_dict()
    with pytest.raises(CheckpointError, match=r"fc\.weight: file \(4, 128\) vs model \(5, 128\)"):
        small_gap_cnn(5, weights=state)


def test_missing_unsafe_and_non_state_dict_files(tmp_path):
    missing = tmp_path / "nowhere" / "w.pth"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        small_gap_cnn(3, weights=missing)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": small_gap_cnn(3).state_dict(), "obj": Path("x")}, unsafe)
    with pytest.raises(CheckpointError, match="PosixPath, which could run code"):
        small_gap_cnn(3, weights=unsafe)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listing)
    with pytest.raises(CheckpointError, match="no state dict"):
        small_gap_cnn(3, weights=listing)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        small_gap_cnn(3, weights=garbage)
    with pytest.raises(TypeError, match="weights"):
        small_gap_cnn(3, weights=42)


def test_torchvision_name_offline_says_where_to_put_the_file(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as info:
        resnet18_gap(3, weights="IMAGENET1K_V1")
    assert str(target) in str(info.value) and "TORCH_HOME" in str(info.value)
    assert capfd.readouterr().err == ""  # no "Downloading: ..." line before the error


def test_torchvision_name_downloads_into_the_cache_with_hash_prefix(
    tmp_path, monkeypatch, tv_resnet18_state
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix, progress))
        torch.save(tv_resnet18_state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = resnet18_gap(3, weights="IMAGENET1K_V1")
    assert calls == [(ResNet18_Weights.IMAGENET1K_V1.url, "f37072fd", False)]
    assert (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").is_file()
    expected = tv_resnet18_state["conv1.weight"]
    torch.testing.assert_close(model.features.conv1.weight, expected, rtol=0, atol=0)


def test_torchvision_name_reads_the_cached_file(tmp_path, monkeypatch, tv_resnet18_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(tv_resnet18_state, target)
    model = resnet18_gap(3, weights="IMAGENET1K_V1")
    expected = tv_resnet18_state["conv1.weight"]
    torch.testing.assert_close(model.features.conv1.weight, expected, rtol=0, atol=0)
    for name in ("ResNet18_Weights.IMAGENET1K_V1", "DEFAULT", ResNet18_Weights.IMAGENET1K_V1):
        with torch.no_grad():
            model.features.conv1.weight.zero_()
        new = load_weights(model, name, torchvision=_resnet18_source(), head_prefixes=("fc.",))
        assert new == ["fc.weight", "fc.bias"]
        torch.testing.assert_close(model.features.conv1.weight, expected, rtol=0, atol=0)


def test_bad_torchvision_names():
    with pytest.raises(ValueError, match=r"ResNet18_Weights\.IMAGENET1K_V1"):
        resnet18_gap(3, weights="IMAGENET22K")
    with pytest.raises(ValueError, match="ResNet18_Weights"):
        resnet18_gap(3, weights="VGG16_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match="do not belong to resnet18_gap"):
        resnet18_gap(3, weights=ResNet50_Weights.IMAGENET1K_V1)
    with pytest.raises(ValueError, match="small_gap_cnn has no torchvision weights"):
        small_gap_cnn(3, weights="IMAGENET1K_V1")


def test_load_classifier_torchvision_name_uses_the_cache_quietly(tmp_path, monkeypatch, capfd):
    from infocam.models.registry import load_classifier

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1
    target = tmp_path / "hub" / "checkpoints" / Path(weights.url).name

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as info:
        load_classifier("shufflenet_v2_x0_5", "IMAGENET1K_V1")
    assert str(target) in str(info.value)
    assert capfd.readouterr().err == ""

    torch.manual_seed(0)
    state = torchvision.models.shufflenet_v2_x0_5().state_dict()
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    for name in ("IMAGENET1K_V1", "DEFAULT", "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1"):
        model = load_classifier("shufflenet_v2_x0_5", name)
        assert not model.training
        torch.testing.assert_close(model.fc.weight, state["fc.weight"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="ResNet50_Weights"):
        load_classifier("shufflenet_v2_x0_5", "ResNet50_Weights.IMAGENET1K_V1")


def test_load_classifier_our_arch_with_a_torchvision_name_says_what_to_use():
    from infocam.models.registry import load_classifier

    with pytest.raises(ValueError, match=r"resnet18_gap takes a weights file.*'resnet50'"):
        load_classifier("resnet18_gap", "IMAGENET1K_V1")
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_classifier("resnet18_gap", "nope.pt")


def test_torchvision_builders_read_the_hub_safely_only_inside_the_block(tmp_path, monkeypatch):
    from torchvision.models import WeightsEnum

    from infocam._safe_load import torchvision_hub_loads_safely

    original = WeightsEnum.get_state_dict
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    target.parent.mkdir(parents=True)
    target.write_text("not torch")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        with torchvision_hub_loads_safely():
            torchvision.models.resnet18(weights="IMAGENET1K_V1")
    assert WeightsEnum.get_state_dict is original  # restored after an error too
