"""CAMExtractor through heads affine in the pooled vector: LayerNorm, BatchNorm1d, a 1 x 1
convolution classifier, averaged heads, SqueezeNet's identity head; the rest refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.convnext import LayerNorm2d

from infocam.cam import CAMExtractor, class_activation_maps
from infocam.cam.head import AffineHead


def _body(k: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, k, 3, 2, 1))


def _randomise(model: nn.Module) -> nn.Module:
    """Non-trivial norm parameters and statistics (a fresh LayerNorm is gamma 1, beta 0)."""
    gen = torch.Generator().manual_seed(1)
    for mod in model.modules():
        if isinstance(mod, nn.LayerNorm | nn.BatchNorm1d | nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen))
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=gen))
            mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=gen) + 0.5)
    return model.eval()


class _Averaged(nn.Module):
    """LeViT's distillation head: two BatchNorm1d + Linear heads, outputs averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _body()
        self.head = nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 5))
        self.head_dist = nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 5))

    def forward(self, x):
        p = self.body(x).mean((2, 3))
        return (self.head(p) + self.head_dist(p)) / 2


def _convnext_head():
    classifier = nn.Sequential(LayerNorm2d(8), nn.Flatten(), nn.Linear(8, 5))
    return nn.Sequential(_body(), nn.AdaptiveAvgPool2d(1), classifier)


def _squeezenet_like():
    return nn.Sequential(
        _body(), nn.Dropout(), nn.Conv2d(8, 5, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )  # fmt: skip


HEADS = {
    "layernorm2d": _convnext_head,
    "layernorm": lambda: nn.Sequential(
        _body(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 5)
    ),
    "batchnorm1d": lambda: nn.Sequential(
        _body(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(8), nn.Linear(8, 5)
    ),
    "conv1x1": lambda: nn.Sequential(
        _body(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 5, 1), nn.Flatten()
    ),
    "averaged": _Averaged,
    "squeezenet": _squeezenet_like,
    "linear_linear": lambda: nn.Sequential(
        _body(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 7), nn.Dropout(),
        nn.Linear(7, 5),
    ),
}  # fmt: skip


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return _randomise(HEADS[kind]())


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_map_mean_plus_bias_is_the_logit(kind):
    model = _model(kind)
    x = torch.randn(3, 3, 12, 12)
    ext = CAMExtractor(model)
    res = ext(x, target="all")
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(res.logits, logits)
    assert res.maps.shape == (3, 5, 6, 6) and ext.head_steps_ is not None
    got = res.maps.double().mean((2, 3)) + res.head.bias
    torch.testing.assert_close(got, logits.double(), rtol=1e-5, atol=1e-5 * logits.abs().max())
    torch.testing.assert_close(res.head.logits(res.features), logits.double(), rtol=1e-5, atol=1e-5)
    # one class per sample: the rows of the all-classes maps
    one = ext(x, target=torch.tensor([0, 4, 2]))
    torch.testing.assert_close(one.maps, res.maps[torch.arange(3), torch.tensor([0, 4, 2])])


def test_layernorm_head_follows_the_formula():
    # logit_y = mean_ij[W_y diag(gamma) f_ij] / sigma + W_y (beta - gamma mu / sigma) + b_y
    model = _model("layernorm2d")
    x = torch.randn(2, 3, 12, 12)
    res = CAMExtractor(model)(x, target="all")
    ln, fc = model[2][0], model[2][2]
    f = res.features.double()
    p = f.mean((2, 3))
    mu, sigma = p.mean(1), (p.var(1, unbiased=False) + ln.eps).sqrt()
    w = fc.weight.double() * ln.weight.double()
    maps = torch.einsum("mk,nkhw->nmhw", w, f) / sigma[:, None, None, None]
    torch.testing.assert_close(res.maps.double(), maps, rtol=1e-5, atol=1e-6)
    shift = ln.weight.double() * (-mu[:, None]) / sigma[:, None] + ln.bias.double()
    torch.testing.assert_close(res.head.bias, shift @ fc.weight.double().T + fc.bias.double())
    torch.testing.assert_close(res.head.scale, 1 / sigma)


@pytest.mark.parametrize("method", ["infocam", "infocam+"])
@pytest.mark.parametrize("kind", ["layernorm2d", "batchnorm1d", "averaged", "squeezenet"])
def test_infocam_uses_the_effective_weights(kind, method):
    model = _model(kind)
    x = torch.randn(2, 3, 12, 12)
    res = CAMExtractor(model)(x, target="all", method=method, region=3)
    head = res.head
    expect = class_activation_maps(res.features, head.weight, "all", method, 3, res.logits)
    if head.scale is not None:
        expect = expect * head.scale.float()[:, None, None, None]
    torch.testing.assert_close(res.maps, expect)
    # infoCAM+ = CAM_y - CAM_z of the least likely class z, CAMs in the head's scale
    if method == "infocam+":
        cams = CAMExtractor(model)(x, target="all").maps
        z = res.logits.argmin(1)
        ref = cams - cams[torch.arange(2), z][:, None]
        torch.testing.assert_close(res.maps, region_same(ref, 3), rtol=1e-5, atol=1e-5)


def region_same(maps: torch.Tensor, r: int) -> torch.Tensor:
    n, m, h, w = maps.shape
    k = torch.ones(1, 1, r, r)
    return F.conv2d(maps.reshape(n * m, 1, h, w), k, padding="same").reshape(n, m, h, w)


def test_plain_gap_linear_head_is_the_classifier_itself():
    torch.manual_seed(0)
    model = nn.Sequential(_body(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    res = CAMExtractor(model)(torch.randn(2, 3, 12, 12))
    assert isinstance(res.head, AffineHead) and res.head.scale is None
    assert res.head.weight is model[3].weight
    assert torch.equal(res.head.bias, model[3].bias.double().expand(2, 5))


def test_squeezenet_map_is_the_last_activation_channel():
    model = _model("squeezenet")
    x = torch.randn(2, 3, 12, 12)
    ext = CAMExtractor(model)
    res = ext(x, target=torch.tensor([1, 3]))
    assert (ext.feature_layer_, ext.classifier_) == ("3", "2")
    assert [s.kind for s in ext.head_steps_] == ["noop"]  # the Flatten
    torch.testing.assert_close(res.maps, res.features[torch.arange(2), torch.tensor([1, 3])])
    assert torch.equal(res.head.weight, torch.eye(5))


def test_given_convolutional_classifier_is_walked():
    model = _model("conv1x1")
    ext = CAMExtractor(model, feature_layer="0", classifier="2")
    res = ext(torch.randn(2, 3, 12, 12), target="all")
    assert [s.kind for s in ext.head_steps_] == ["conv", "noop"]
    torch.testing.assert_close(res.maps.mean((2, 3)) + res.head.bias.float(), res.logits)


class _InplaceAct(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = _body()
        self.fc1 = nn.Linear(8, 8)
        self.act = nn.Hardswish(inplace=True)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.body(x).mean((2, 3)))))


class _FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = _body()
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(self.body(x).mean((2, 3)))))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (  # MobileNetV3's head: Linear + Hardswish + Linear
            lambda: nn.Sequential(
                _body(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8), nn.Hardswish(),
                nn.Linear(8, 5),
            ),
            r"'4' \(Hardswish\) is not affine in the pooled vector",
        ),
        (_InplaceAct, r"'act' \(Hardswish\) \(in place, after 'fc1'\) is not affine"),
        (_FunctionalRelu, r"the input of 'fc2' \(Linear\) is not the output of 'fc1'"),
        (
            lambda: nn.Sequential(
                _body(), nn.AdaptiveAvgPool2d(1), nn.GroupNorm(2, 8), nn.Flatten(), nn.Linear(8, 5)
            ),
            r"'2' \(GroupNorm\) is not affine in the pooled vector",
        ),
        (
            lambda: nn.Sequential(_body(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 5)),
            r"'1' \(AdaptiveMaxPool2d\) does not output the features' spatial mean",
        ),
    ],
)  # fmt: skip
def test_heads_that_are_not_affine_are_refused_naming_the_layer(build, match):
    torch.manual_seed(0)
    model = _randomise(build())
    ext = CAMExtractor(model)
    with pytest.raises(ValueError, match=r"no GAP \+ linear head found: .*" + match):
        ext(torch.randn(2, 3, 12, 12))
    assert ext.head_steps_ is None and ext.feature_layer_ is None
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_changed_model_is_noticed_on_a_later_call():
    model = _model("layernorm2d")
    ext = CAMExtractor(model)
    ext(torch.randn(2, 3, 12, 12))
    model[2].insert(2, nn.ReLU())  # now no longer affine: the same steps miss the ReLU
    with pytest.raises(ValueError, match="no longer reproduces the model's logits"):
        ext(torch.randn(2, 3, 12, 12))


def test_half_precision_walked_head_follows_the_recorded_rounding():
    model = _model("layernorm2d").to(torch.bfloat16)
    res = CAMExtractor(model)(torch.randn(2, 3, 12, 12, dtype=torch.bfloat16), target="all")
    assert res.maps.dtype == torch.float32 and res.head.scale is not None
    got = res.maps.double().mean((2, 3)) + res.head.bias
    torch.testing.assert_close(got, res.logits.double(), rtol=0.05, atol=0.05)


def test_a_given_feature_layer_that_never_runs_is_named():
    model = _model("averaged")
    model.unused = nn.Conv2d(8, 8, 1)  # a submodule its forward never calls
    with pytest.raises(ValueError, match="feature_layer 'unused' is not run"):
        CAMExtractor(model, feature_layer="unused")(torch.randn(1, 3, 12, 12))


class _ChannelsLast(nn.Module):
    """Swin's shape: stages in (N, h, w, C), a per-location LayerNorm, a mean over (h, w)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _body()
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        f = self.norm(self.body(x).permute(0, 2, 3, 1))  # (N, h, w, C)
        return self.fc(f.mean((1, 2)))


def test_channels_last_features_are_permuted_to_a_map():
    model = _randomise(_ChannelsLast())
    x = torch.randn(2, 3, 12, 12)
    ext = CAMExtractor(model)
    res = ext(x, target="all")
    assert ext.feature_layer_ == "norm" and ext.channels_last_ and "channels_last=True" in repr(ext)
    with torch.no_grad():
        f = model.norm(model.body(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        logits = model(x)
    torch.testing.assert_close(res.features, f)
    assert res.maps.shape == (2, 5, 6, 6)
    torch.testing.assert_close(res.maps, torch.einsum("mk,nkhw->nmhw", model.fc.weight, f))
    torch.testing.assert_close(res.maps.mean((2, 3)) + model.fc.bias, logits)
