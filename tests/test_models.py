"""Model architectures: map sizes, CAM structure, ADL placement, MNIST CNN, Inception, registry."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.inception import InceptionOutputs

from infocam.models import (
    ADL,
    GAPClassifier,
    get_model,
    inception_logits,
    inception_loss,
    inception_v3,
    list_models,
    mnist_cnn,
    resnet18_gap,
    resnet50_gap,
    small_gap_cnn,
    vgg16_gap,
)


def _check_gap_structure(model: GAPClassifier, x: torch.Tensor, channels: int, side: int):
    """One forward: feature map size, and logits = fc(spatial mean of features) (CAM's premise)."""
    model.eval()
    with torch.no_grad():
        maps = model.features(x)
        logits = model(x)
    assert maps.shape == (x.shape[0], channels, side, side)
    assert isinstance(model.fc, nn.Linear) and model.fc.in_features == channels
    cam_logits = torch.einsum("mk,nkhw->nm", model.fc.weight, maps) / side**2 + model.fc.bias
    torch.testing.assert_close(logits, cam_logits, rtol=1e-4, atol=1e-4)


# Built once per module: constructing and running the 224-px backbones is the slow part.
@pytest.fixture(scope="module")
def vgg_adl() -> GAPClassifier:
    torch.manual_seed(0)
    return vgg16_gap(5, adl=True)


@pytest.fixture(scope="module")
def resnet50_adl() -> GAPClassifier:
    torch.manual_seed(0)
    return resnet50_gap(5, adl=True)


def test_vgg16_gap_maps_are_14x14_at_224(vgg_adl):
    _check_gap_structure(vgg_adl, torch.randn(1, 3, 224, 224), 1024, 14)


def test_resnet50_gap_maps_are_14x14_at_224(resnet50_adl):
    _check_gap_structure(resnet50_adl, torch.randn(1, 3, 224, 224), 2048, 14)
    first = resnet50_adl.features.layer4[0]
    assert first.conv2.stride == (1, 1) and first.downsample[0].stride == (1, 1)


@pytest.fixture(scope="module")
def resnet18_adl() -> GAPClassifier:
    torch.manual_seed(0)
    return resnet18_gap(4, adl=True)


def test_resnet18_and_small_cnn_shapes(resnet18_adl):
    torch.manual_seed(0)
    _check_gap_structure(resnet18_adl, torch.randn(1, 3, 112, 112), 512, 7)  # stride 16
    _check_gap_structure(small_gap_cnn(10), torch.randn(2, 1, 96, 96), 128, 12)
    _check_gap_structure(
        small_gap_cnn(3, in_channels=3, widths=(8, 16, 32), downsample=1),
        torch.randn(2, 3, 40, 40),
        32,
        20,
    )


def test_vgg16_gap_is_torchvision_vgg16_without_pool5_plus_conv6(vgg_adl):
    with torch.device("meta"):
        tv = torchvision.models.vgg16()
    ours = vgg_adl
    tv_features = {k: v.shape for k, v in tv.state_dict().items() if k.startswith("features.")}
    ours_state = {k: v.shape for k, v in ours.state_dict().items()}
    assert {k: ours_state[k] for k in tv_features} == tv_features
    assert set(ours_state) - set(tv_features) == {
        "features.conv6.weight",
        "features.conv6.bias",
        "fc.weight",
        "fc.bias",
    }
    # Same layers in the same order up to conv5_3's ReLU; pool5 is gone.
    plain = [type(m) for n, m in ours.features.named_children() if not n.startswith("adl")]
    assert plain[:30] == [type(m) for m in tv.features[:30]]
    assert plain[30:] == [nn.Conv2d, nn.ReLU]


def test_adl_positions_follow_choe_and_shim(vgg_adl, resnet50_adl):
    vgg = vgg_adl.features
    names = [n for n, _ in vgg.named_children()]
    before = {names[names.index(a) - 1]: a for a in names if a.startswith("adl")}
    assert before == {"16": "adl_pool3", "22": "adl_conv4_3", "29": "adl_conv5_3"}
    assert isinstance(vgg[names.index("16")], nn.MaxPool2d)  # pool3
    conv4_3, conv5_3 = vgg[names.index("21")], vgg[names.index("28")]
    assert isinstance(conv4_3, nn.Conv2d) and isinstance(conv5_3, nn.Conv2d)
    assert isinstance(vgg[names.index("22")], nn.ReLU) and isinstance(
        vgg[names.index("29")], nn.ReLU
    )

    res = resnet50_adl.features
    assert [n for n, _ in res.layer3.named_children()][:3] == ["0", "adl0", "1"]
    assert [n for n, _ in res.layer4.named_children()] == ["0", "adl0", "1", "2", "adl2"]
    assert sum(isinstance(m, ADL) for m in res.modules()) == 3
    with torch.device("meta"):
        res18 = resnet18_gap(3, adl=True).features
    assert [n for n, _ in res18.layer4.named_children()] == ["0", "adl0", "1", "adl1"]
    small = small_gap_cnn(3, adl=True).features
    assert [n for n, _ in small.named_children() if n.startswith("adl")] == [
        "adl_pool2",
        "adl_relu3",
        "adl_relu5",
    ]


@pytest.mark.parametrize("factory", [vgg16_gap, resnet50_gap, resnet18_gap, small_gap_cnn])
def test_adl_adds_no_parameters_so_checkpoints_are_interchangeable(factory):
    with torch.device("meta"):  # names and shapes only: no need for real weights
        with_adl, without = factory(3, adl=True), factory(3, adl=False)
    assert any(isinstance(m, ADL) for m in with_adl.modules())
    assert not any(isinstance(m, ADL) for m in without.modules())
    without.load_state_dict(with_adl.state_dict(), assign=True)  # strict: same keys and shapes


def test_adl_is_active_in_train_mode_only_and_trains():
    torch.manual_seed(0)
    model = small_gap_cnn(4, adl=True, adl_drop_rate=1.0)
    x = torch.randn(4, 1, 48, 48)
    model.eval()
    with torch.no_grad():
        eval_maps = model.features(x)
    plain = small_gap_cnn(4, adl=False)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.eval().features(x), eval_maps)
    model.train()
    plain.train()
    maps = model.features(x)
    with torch.no_grad():
        plain_maps = plain.features(x)
    assert not torch.allclose(maps, plain_maps)
    loss = nn.functional.cross_entropy(model.fc(maps.mean((2, 3))), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_resnet18_gap_with_adl_backward(resnet18_adl):
    torch.manual_seed(0)
    model = resnet18_adl.train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert torch.isfinite(model.features.conv1.weight.grad).all()
    model.zero_grad()
    model.eval()


def test_small_gap_cnn_arguments():
    with pytest.raises(ValueError, match="downsample"):
        small_gap_cnn(3, widths=(8, 16), downsample=2)
    with pytest.raises(ValueError, match="widths"):
        small_gap_cnn(3, widths=())
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        small_gap_cnn(3, widths=(8, 0))
    with pytest.raises(ValueError, match="drop_rate"):
        small_gap_cnn(3, adl=True, adl_drop_rate=2.0)


@pytest.mark.parametrize(
    ("bad", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_num_classes_is_checked(bad, error):
    with pytest.raises(error, match="num_classes"):
        small_gap_cnn(bad)
    with pytest.raises(error, match="num_classes"):
        mnist_cnn(bad)


def test_mnist_cnn_is_the_papers_net():
    model = mnist_cnn()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert len(convs) == 2 and len(linears) == 2
    kinds = [type(m) for m in model.features]
    assert kinds == [nn.Conv2d, nn.MaxPool2d, nn.ReLU] * 2  # conv -> max-pool -> ReLU, twice
    assert sum(p.numel() for p in model.parameters()) == 21840
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert mnist_cnn(5, in_channels=3, image_size=32)(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="image_size"):
        mnist_cnn(image_size=12)


def test_mnist_cnn_dropout_only_in_training():
    torch.manual_seed(0)
    model = mnist_cnn(dropout=0.5)
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


@pytest.fixture(scope="module")
def tv_inception_state() -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's Inception-V3 layout (1000 classes, aux head)."""
    with torch.device("meta"):
        layout = torchvision.models.inception_v3(weights=None, init_weights=False).state_dict()
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, value in layout.items():
        if not value.is_floating_point():
            state[key] = torch.zeros((), dtype=value.dtype)
        elif key.endswith("running_var"):
            state[key] = torch.ones(value.shape)
        else:
            state[key] = torch.randn(value.shape, generator=g) * 0.05
    return state


def test_inception_torchvision_layout_drops_both_heads(tv_inception_state):
    state = tv_inception_state
    model = inception_v3(5, weights=state)
    assert model.transform_input is True  # as torchvision sets it for pretrained weights
    torch.testing.assert_close(
        model.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"]
    )
    assert model.fc.weight.shape == (5, 2048) and model.AuxLogits.fc.weight.shape == (5, 768)
    assert inception_v3(5, weights=state, aux_logits=False).AuxLogits is None


def test_inception_v3_train_outputs_and_loss(tv_inception_state):
    torch.manual_seed(0)
    model = inception_v3(7, weights=tv_inception_state).train()
    assert model.fc.out_features == 7 and model.AuxLogits.fc.out_features == 7
    target = torch.tensor([1, 6])
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 299, 299))
    assert isinstance(outputs, InceptionOutputs)
    ce = nn.CrossEntropyLoss()
    loss = inception_loss(outputs, target, ce)
    expected = ce(outputs.logits, target) + 0.4 * ce(outputs.aux_logits, target)
    torch.testing.assert_close(loss, expected)
    assert inception_logits(outputs) is outputs.logits


def test_inception_loss_with_plain_tensors_and_no_aux():
    ce = nn.CrossEntropyLoss()
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(inception_loss(logits, target, ce), ce(logits, target))
    no_aux = InceptionOutputs(logits, None)
    torch.testing.assert_close(
        inception_loss(no_aux, target, ce, aux_weight=1.0), ce(logits, target)
    )
    with pytest.raises(ValueError, match="aux_weight"):
        inception_loss(logits, target, ce, aux_weight=-1.0)
    with pytest.raises(TypeError, match="outputs"):
        inception_logits([logits])


def test_registry():
    assert list_models() == [
        "inception_v3",
        "mnist_cnn",
        "resnet18_gap",
        "resnet50_gap",
        "small_gap_cnn",
        "vgg16_gap",
    ]
    model = get_model("Small-GAP-CNN", 6, adl=True, widths=(4, 8), downsample=1)
    assert isinstance(model, GAPClassifier) and model.fc.out_features == 6
    assert any(isinstance(m, ADL) for m in model.modules())
    with pytest.raises(ValueError, match=r"unknown model name 'vgg19'.*mnist_cnn.*vgg16_gap"):
        get_model("vgg19", 3)
    with pytest.raises(TypeError, match=r"'mnist_cnn'.*adl"):
        get_model("mnist_cnn", 10, adl=True)
    with pytest.raises(TypeError, match="name"):
        get_model(None, 3)
