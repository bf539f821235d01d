"""CAM / infoCAM / infoCAM+ maps against a float64 reference, and CAMExtractor on real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import infocam
from infocam.cam import CAMExtractor, class_activation_maps, region_filter


def _data(n=3, k=5, m=4, h=6, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, k, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(m, k, generator=g, dtype=torch.float64)
    target = torch.randint(0, m, (n,), generator=g)
    return feats, weight, target


def _reference(feats, weight, target, method, region, logits=None, padding="same"):
    """Independent float64 loop: contrast vector per sample, then a scipy box sum."""
    from scipy.signal import convolve2d

    f = feats.numpy().astype(np.float64)
    w = weight.numpy().astype(np.float64)
    m = w.shape[0]
    if logits is None:
        logits = f.mean((2, 3)) @ w.T
    out = []
    for i, y in enumerate(target.tolist()):
        if method == "cam":
            c = w[y]
        elif method == "infocam":
            c = w[y] - np.mean([w[j] for j in range(m) if j != y], axis=0)
        else:
            c = w[y] - w[int(np.argmin(np.asarray(logits)[i]))]
        cam = np.tensordot(c, f[i], axes=(0, 0))
        if region > 1:
            full = convolve2d(cam, np.ones((region, region)), mode="full")
            if padding == "same":
                lo = (region - 1) // 2  # torch 'same': the extra cell goes right/down
                hi = region - 1 - lo
                full = full[hi : hi + cam.shape[0], hi : hi + cam.shape[1]]
                del lo
            cam = full
        out.append(cam)
    return np.stack(out)


@pytest.mark.parametrize("method", ["cam", "infocam", "infocam+"])
@pytest.mark.parametrize("region", [1, 2, 3, 4, 5])
def test_maps_match_float64_reference(method, region):
    feats, weight, target = _data()
    got = class_activation_maps(feats, weight, target, method, region, region_padding="same")
    ref = _reference(feats, weight, target, method, region)
    assert got.shape == (3, 6, 7)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("region", [2, 3, 4])
def test_same_padding_equals_torch_conv_same(region):
    maps = torch.randn(2, 5, 6, dtype=torch.float64)
    kernel = torch.ones(1, 1, region, region, dtype=torch.float64)
    ref = F.conv2d(maps.unsqueeze(1), kernel, padding="same").squeeze(1)
    torch.testing.assert_close(region_filter(maps, region, "same"), ref)


@pytest.mark.parametrize("method", ["cam", "infocam", "infocam+"])
def test_full_padding_reproduces_full_convolution(method):
    feats, weight, target = _data()
    got = class_activation_maps(feats, weight, target, method, 3, region_padding="full")
    ref = _reference(feats, weight, target, method, 3, padding="full")
    assert got.shape == (3, 8, 9)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_infocam_is_cam_minus_mean_of_other_cams():
    feats, weight, target = _data(m=6)
    cams = class_activation_maps(feats, weight, "all", "cam")  # (N, M, h, w)
    info = class_activation_maps(feats, weight, target, "infocam")
    for i, y in enumerate(target.tolist()):
        others = torch.cat([cams[i, :y], cams[i, y + 1 :]])
        torch.testing.assert_close(info[i], cams[i, y] - others.mean(0))


def test_infocam_plus_uses_least_likely_class_of_given_logits():
    feats, weight, target = _data()
    logits = torch.randn(3, 4, dtype=torch.float64)
    got = class_activation_maps(feats, weight, target, "infocam+", logits=logits)
    ref = _reference(feats, weight, target, "infocam+", 1, logits=logits.numpy())
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)
    # a different argmin gives a different map: the logits are really used
    other = class_activation_maps(feats, weight, target, "infocam+", logits=-logits)
    assert not torch.allclose(got, other)


@pytest.mark.parametrize("method", ["cam", "infocam", "infocam+"])
def test_all_classes_equal_per_class_calls(method):
    feats, weight, _ = _data()
    all_maps = class_activation_maps(feats, weight, "all", method, region=3)
    assert all_maps.shape == (3, 4, 6, 7)
    for y in range(4):
        t = torch.full((3,), y)
        torch.testing.assert_close(
            all_maps[:, y], class_activation_maps(feats, weight, t, method, region=3)
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accepted_under_inference_mode(dtype):
    feats, weight, target = _data()
    with torch.inference_mode():
        got = class_activation_maps(feats.to(dtype), weight.to(dtype), target, "infocam", 2)
    assert got.dtype == torch.float32
    ref = class_activation_maps(
        feats.to(dtype).double(), weight.to(dtype).double(), target, "infocam", 2
    )
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


def test_numpy_inputs_and_no_autograd_graph():
    feats, weight, target = _data()
    feats.requires_grad_(True)
    out = class_activation_maps(feats, weight, target)
    assert not out.requires_grad
    got = class_activation_maps(feats.detach().numpy(), weight.numpy(), target.numpy())
    torch.testing.assert_close(got, out)


def test_bad_inputs_raise_clear_errors():
    feats, weight, target = _data()
    with pytest.raises(ValueError, match="features must have shape"):
        class_activation_maps(feats[0], weight, target)
    with pytest.raises(ValueError, match="K=5"):
        class_activation_maps(feats, weight[:, :3], target)
    with pytest.raises(ValueError, match=r"target must have shape \(3,\)"):
        class_activation_maps(feats, weight, target[:2])
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\]"):
        class_activation_maps(feats, weight, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="method must be one of"):
        class_activation_maps(feats, weight, target, "gradcam")
    with pytest.raises(ValueError, match="region must be an integer >= 1"):
        class_activation_maps(feats, weight, target, region=0)
    with pytest.raises(ValueError, match="region_padding"):
        class_activation_maps(feats, weight, target, region=3, region_padding="valid")
    with pytest.raises(ValueError, match="logits must have shape"):
        class_activation_maps(feats, weight, target, "infocam+", logits=torch.zeros(3, 5))
    with pytest.raises(TypeError, match="features must be a floating-point"):
        class_activation_maps(feats.long(), weight, target)
    with pytest.raises(ValueError, match="target must be class indices"):
        class_activation_maps(feats, weight, "everything")


def test_target_errors_say_what_the_target_must_match():
    feats, weight, target = _data()
    # no logits are involved: the shape is fixed by the features' N
    with pytest.raises(
        ValueError,
        match=r"target must have shape \(3,\) to match features \(N, K, h, w\) = \(3, 5, 6, 7\)",
    ):
        class_activation_maps(feats, weight, target[:2])
    for bad in (None, 2):
        with pytest.raises(TypeError, match=r"target must be class indices .* or 'all'"):
            class_activation_maps(feats, weight, bad)
    assert class_activation_maps(feats, weight, target.tolist()).shape == (3, 6, 7)


def test_non_finite_logits_for_infocam_plus_are_rejected():
    feats, weight, target = _data()
    for value in (float("nan"), float("inf")):
        logits = torch.zeros(3, 4, dtype=torch.float64)
        logits[1, 2] = value
        with pytest.raises(ValueError, match="logits must be finite"):
            class_activation_maps(feats, weight, target, "infocam+", logits=logits)


def test_region_accepts_numpy_and_tensor_integers_only():
    feats, weight, target = _data()
    expect = class_activation_maps(feats, weight, target, region=3)
    for region in (np.int64(3), torch.tensor(3)):
        torch.testing.assert_close(
            class_activation_maps(feats, weight, target, region=region), expect
        )
    for bad in (3.0, True, "3"):
        with pytest.raises(TypeError, match="region must be an integer >= 1"):
            class_activation_maps(feats, weight, target, region=bad)


# ----------------------------------------------------------------------------- extractor


class TinyGapNet(nn.Module):
    """conv -> relu -> conv -> GAP (functional) -> Linear."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 6, 3)
        )
        self.head = nn.Linear(6, num_classes)
        self.fail = False

    def forward(self, x):
        f = self.body(x)
        if self.fail:
            raise RuntimeError("boom")
        return self.head(f.mean((2, 3)))


def _vgg_gap(num_classes=5):
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
    )
    return nn.Sequential(
        features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes)
    )


def _manual_maps(feats, fc, target, method, region, logits):
    return class_activation_maps(feats, fc.weight, target, method, region, logits)


@pytest.mark.parametrize(
    ("build", "layer", "fc", "size"),
    [
        (lambda: torchvision.models.resnet18(weights=None, num_classes=7), "layer4", "fc", 64),
        (_vgg_gap, "0", "3", 16),
        (TinyGapNet, "body", "head", 10),
    ],
)
@pytest.mark.parametrize("method", ["cam", "infocam+"])
def test_extractor_finds_layers_and_matches_manual_maps(build, layer, fc, size, method):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(2, 3, size, size)
    ext = CAMExtractor(model)
    res = ext(x, method=method, region=2)
    assert (ext.feature_layer_, ext.classifier_) == (layer, fc)
    modules = dict(model.named_modules())
    with torch.no_grad():
        model.eval()
        logits = model(x)
    torch.testing.assert_close(res.logits, logits)
    torch.testing.assert_close(res.target, logits.argmax(1))
    feats = res.features
    ref = _manual_maps(feats, modules[fc], logits.argmax(1), method, 2, logits)
    torch.testing.assert_close(res.maps, ref)
    assert res.maps.shape == (2, *feats.shape[2:])


def test_extractor_explicit_target_and_all_classes():
    torch.manual_seed(0)
    model = TinyGapNet()
    ext = CAMExtractor(model, feature_layer=model.body, classifier="head")
    x = torch.randn(2, 3, 10, 10)
    one = ext(x, target=torch.tensor([2, 0]), method="infocam")
    every = ext(x, target="all", method="infocam")
    assert every.maps.shape == (2, 3, 8, 8)
    torch.testing.assert_close(every.maps[0, 2], one.maps[0])
    torch.testing.assert_close(every.maps[1, 0], one.maps[1])


def test_hooks_removed_and_mode_restored_after_exception():
    model = TinyGapNet()
    model.train()
    model.body[1].eval()  # a mixed state must come back exactly
    ext = CAMExtractor(model, feature_layer="body", classifier="head")
    model.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        ext(torch.randn(1, 3, 10, 10))
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training and model.body[0].training and not model.body[1].training


def test_hooks_removed_after_success_and_auto_detection():
    model = torchvision.models.resnet18(weights=None, num_classes=4)
    model.train()
    ext = CAMExtractor(model)
    ext(torch.randn(1, 3, 32, 32))
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training and all(m.training for m in model.modules())


def test_model_without_gap_linear_head_is_rejected_with_names():
    model = torchvision.models.vgg11(weights=None, num_classes=4)  # 3-layer MLP head
    with pytest.raises(ValueError, match=r"no GAP \+ linear head.*'avgpool'.*'classifier\.6'"):
        CAMExtractor(model)(torch.randn(1, 3, 32, 32))
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ValueError, match="no GAP"):
        CAMExtractor(flat)(torch.randn(1, 3, 8, 8))
    # ConvNeXt-like: a norm after the pooling; the (N, K, 1, 1) tensors after GAP are no map
    normed = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.GroupNorm(1, 4), nn.Flatten(),
        nn.Linear(4, 2),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"averaging feature layer '0' \(output \(4, 6, 6\)\)"):
        CAMExtractor(normed)(torch.randn(1, 3, 8, 8))
    no_linear = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        CAMExtractor(no_linear)(torch.randn(1, 3, 8, 8))
    assert all(not m._forward_hooks for m in model.modules())


def test_features_are_the_pooling_input_when_the_model_gets_the_feature_map():
    # the head alone, applied to a feature map: no module outputs a spatial map
    torch.manual_seed(0)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    head.train()
    feats = torch.randn(2, 8, 5, 4)
    ext = CAMExtractor(head)
    res = ext(feats, method="infocam", region=2)
    assert ext.feature_layer_ == "0" and ext.classifier_ == "2" and ext.features_from_input_
    assert "features_from_input=True" in repr(ext)
    assert torch.equal(res.features, feats)
    with torch.no_grad():
        logits = head.eval()(feats)
    expect = class_activation_maps(feats, head[2].weight, logits.argmax(1), "infocam", 2)
    torch.testing.assert_close(res.maps, expect)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in head.modules())
    # a module that does output a spatial map still wins
    assert CAMExtractor(nn.Sequential(nn.Identity(), *head))(feats) is not None


def test_a_pair_that_fails_the_head_check_is_not_kept():
    # global max pooling: channels fit the Linear but averaging does not give the logits
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    ext = CAMExtractor(model)
    for _ in range(2):  # the second call used to return maps for the rejected pair
        with pytest.raises(ValueError, match="does not reproduce the model's logits"):
            ext(torch.randn(1, 3, 8, 8))
    assert ext.feature_layer_ is None and ext.classifier_ is None


def test_extractor_argument_errors():
    model = TinyGapNet()
    with pytest.raises(TypeError, match="model must be"):
        CAMExtractor("resnet")
    with pytest.raises(ValueError, match="'nope' is not a submodule"):
        CAMExtractor(model, feature_layer="nope")
    with pytest.raises(TypeError, match=r"must be an nn\.Linear"):
        CAMExtractor(model, classifier="body")
    with pytest.raises(ValueError, match="images must have shape"):
        CAMExtractor(model)(torch.randn(3, 10, 10))


def test_public_names():
    for name in ("class_activation_maps", "CAMExtractor"):
        assert hasattr(infocam, name)


@pytest.mark.parametrize("region", [2, 3, 4, 6])
def test_centered_padding_is_the_mean_of_the_four_windows_and_flip_equivariant(region):
    maps = torch.randn(2, 7, 9, dtype=torch.float64)
    got = region_filter(maps, region, "centered")
    # reference: mean of the r x r window sums anchored with each of the four corner offsets
    h, w = maps.shape[-2:]
    x = maps.numpy()
    ref = np.zeros_like(x)
    offsets = [(region - 1) // 2, region // 2]  # cells up/left of the centre, either way
    for up in set(offsets):
        for left in set(offsets):
            part = np.zeros_like(x)
            for i in range(h):
                for j in range(w):
                    rows = slice(max(i - up, 0), max(min(i - up + region, h), 0))
                    cols = slice(max(j - left, 0), max(min(j - left + region, w), 0))
                    part[:, i, j] = x[:, rows, cols].sum((1, 2))
            ref += part / len(set(offsets)) ** 2
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    for dims in ((-1,), (-2,), (-2, -1)):
        flipped = region_filter(maps.flip(dims), region, "centered")
        torch.testing.assert_close(flipped, got.flip(dims))
    if region % 2:
        torch.testing.assert_close(got, region_filter(maps, region, "same"))
    else:  # the torch-"same" window is not centred: a flip moves it
        same = region_filter(maps, region, "same")
        assert not torch.allclose(region_filter(maps.flip(-1), region, "same"), same.flip(-1))


def test_centered_padding_through_class_activation_maps():
    feats, weight, target = _data()
    got = class_activation_maps(feats, weight, target, "infocam", 4, region_padding="centered")
    plain = class_activation_maps(feats, weight, target, "infocam")
    torch.testing.assert_close(got, region_filter(plain, 4, "centered"))


def test_a_zero_initialised_head_does_not_pass_the_gap_check_vacuously(tiny_vit):
    # torchvision's ViT zero-initialises heads.head: logits 0 == Linear_0(mean(conv_proj)) = 0
    vit = tiny_vit
    assert not vit.heads.head.weight.any()
    ext = CAMExtractor(vit)
    with pytest.raises(ValueError, match=r"with random weights in the classifier.*'heads\.head'"):
        ext(torch.randn(2, 3, 32, 32))
    assert ext.feature_layer_ is None and ext.classifier_ is None
    assert not vit.heads.head.weight.any()  # the probe left the model's weights alone
    assert all(not m._forward_hooks for m in vit.modules())
    # a real GAP + linear head with zero weights passes; the probe leaves the global RNG alone
    gap = _vgg_gap()
    nn.init.zeros_(gap[3].weight)
    nn.init.zeros_(gap[3].bias)
    state = torch.get_rng_state()
    ext = CAMExtractor(gap)
    ext(torch.ones(1, 3, 16, 16))
    assert (ext.feature_layer_, ext.classifier_) == ("0", "3")
    assert torch.equal(torch.get_rng_state(), state)


def test_an_empty_batch_is_refused_on_every_call():
    model = TinyGapNet()
    ext = CAMExtractor(model)
    with pytest.raises(ValueError, match=r"at least one image \(N >= 1\).*\(0, 3, 10, 10\)"):
        ext(torch.zeros(0, 3, 10, 10))
    ext(torch.randn(1, 3, 10, 10))  # layers found: still refused, not an empty result
    with pytest.raises(ValueError, match="empty batch"):
        ext(torch.zeros(0, 3, 10, 10))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_pass_the_head_check(dtype):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).to(dtype)
    ext = CAMExtractor(model)  # bfloat16 logits were refused: a float32 tolerance
    res = ext(torch.randn(2, 3, 64, 64, dtype=dtype))
    assert (ext.feature_layer_, ext.classifier_) == ("layer4", "fc") and res.maps.shape == (2, 2, 2)


class _AvgMaxPool(nn.Module):
    """timm's AdaptiveAvgMaxPool2d: 0.5 * (mean + max), functional, no parameters."""

    def forward(self, x):
        return 0.5 * (F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1))


class _MeanPool(nn.Module):
    """A hand-written global average pooling: a plain mean, so CAMs are exact."""

    def forward(self, x):
        return x.mean((2, 3), keepdim=True)


def _pooled_net(pool: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1))
    return nn.Sequential(body, pool, nn.Flatten(), nn.Linear(16, 5)).eval()


def test_a_pooled_vector_is_never_returned_as_a_one_by_one_map():
    # avg+max pooling admits no exact CAM: refused, naming the pooling layer (its 1 x 1
    # output used to be taken as the "map", which reproduces the logits trivially)
    with pytest.raises(ValueError, match=r"'1' \(_AvgMaxPool\).*avg\+max"):
        CAMExtractor(_pooled_net(_AvgMaxPool()))(torch.randn(2, 3, 16, 16))
    # a parameter-free plain mean: the map is where the pooling layer gets it, 8 x 8
    model = _pooled_net(_MeanPool())
    x = torch.randn(2, 3, 16, 16)
    ext = CAMExtractor(model)
    res = ext(x, target="all")
    assert ext.feature_layer_ == "1" and ext.features_from_input_
    assert res.maps.shape == (2, 5, 8, 8)
    torch.testing.assert_close(res.maps.mean((2, 3)) + model[3].bias, model(x))


class _TokenNet(nn.Module):
    """ResMLP's shape: a patch embedding (the only 4-D output), then token blocks with
    residual scales of 1e-4 (its initialisation), a token mean and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.blocks = nn.Sequential(*[nn.Linear(16, 16) for _ in range(3)])
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        t = self.stem(x).flatten(2).transpose(1, 2)  # (N, hw, C) tokens
        for block in self.blocks:
            t = t + 1e-4 * block(t)
        return self.head(t.mean(1))


def test_a_layer_that_almost_reproduces_the_logits_is_refused():
    # the patch embedding's mean is ~1e-4 off the logits: a map of the wrong layer
    with pytest.raises(ValueError, match=r"feature layer 'stem'.*does not reproduce"):
        CAMExtractor(_TokenNet())(torch.randn(2, 3, 16, 16))


def test_tiny_input_with_a_convolutional_one_by_one_map_is_still_a_map():
    # resnet18 at 32 px: layer4 is 1 x 1 because its convolutions made it so (not a pooling)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()
    ext = CAMExtractor(model)
    res = ext(torch.randn(2, 3, 32, 32))
    assert ext.feature_layer_ == "layer4" and res.maps.shape[-2:] == (1, 1)


# --------------------------------------------------------------------------- issue 14


def _window_sum(x, region, padding):
    """float64 loops: each cell's region sum of x (..., h, w), as the paper's R is placed."""
    h, w = x.shape[-2:]
    if padding == "full":
        out = np.zeros((*x.shape[:-2], h + region - 1, w + region - 1))
        for i in range(h + region - 1):
            for j in range(w + region - 1):
                rows = slice(max(i - region + 1, 0), min(i + 1, h))
                cols = slice(max(j - region + 1, 0), min(j + 1, w))
                out[..., i, j] = x[..., rows, cols].sum((-2, -1))
        return out
    if padding == "same":  # torch's: the extra cell of an even window goes right/down
        anchors = [(region - 1) // 2]
    else:  # "centered": the mean of the windows anchored either way
        anchors = sorted({(region - 1) // 2, region // 2})
    out = np.zeros_like(x)
    for up in anchors:
        for left in anchors:
            for i in range(h):
                for j in range(w):
                    rows = slice(max(i - up, 0), max(min(i - up + region, h), 0))
                    cols = slice(max(j - left, 0), max(min(j - left + region, w), 0))
                    out[..., i, j] += x[..., rows, cols].sum((-2, -1)) / len(anchors) ** 2
    return out


def _per_region_reference(feats, weight, target, region, padding):
    """Eq. 15 literally: per cell, y' = argmin_m of the region sum of w^m g, then the region
    sum of w^y g - w^{y'} g (float64 loops over cells and classes)."""
    f = feats.numpy().astype(np.float64)
    w = weight.numpy().astype(np.float64)
    out = []
    for i, y in enumerate(target):
        sums = np.stack([_window_sum(np.tensordot(w[m], f[i], (0, 0)), region, padding)
                         for m in range(w.shape[0])])  # fmt: skip
        least = sums.argmin(0)  # the least likely class of each region
        cell = np.zeros(sums.shape[1:])
        for a in range(cell.shape[0]):
            for b in range(cell.shape[1]):
                c = w[y] - w[least[a, b]]
                cell[a, b] = _window_sum(np.tensordot(c, f[i], (0, 0)), region, padding)[a, b]
        out.append(cell)
    return np.stack(out)


@pytest.mark.parametrize("padding", ["centered", "same", "full"])
@pytest.mark.parametrize("region", [1, 2, 3, 4])
def test_least_likely_per_region_matches_eq15_float64_loops(region, padding):
    feats, weight, target = _data(m=5)
    got = class_activation_maps(
        feats, weight, target, "infocam+", region, region_padding=padding, least_likely="region"
    )
    ref = _per_region_reference(feats, weight, target.tolist(), region, padding)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)
    # every class's map at once is the same, row by row
    every = class_activation_maps(
        feats, weight, "all", "infocam+", region, region_padding=padding, least_likely="region"
    )
    torch.testing.assert_close(every[torch.arange(3), target], got)
    # and it is not the global rule (one least likely class per image) on these features
    glob = class_activation_maps(feats, weight, target, "infocam+", region, region_padding=padding)
    assert not torch.allclose(got, glob)


def test_least_likely_global_is_the_default_and_the_logits_argmin():
    feats, weight, target = _data(m=5)
    plain = class_activation_maps(feats, weight, target, "infocam+", 3)
    glob = class_activation_maps(feats, weight, target, "infocam+", 3, least_likely="global")
    torch.testing.assert_close(plain, glob)
    # cam / infocam do not depend on it
    for method in ("cam", "infocam"):
        a = class_activation_maps(feats, weight, target, method, 3, least_likely="region")
        torch.testing.assert_close(a, class_activation_maps(feats, weight, target, method, 3))
    with pytest.raises(ValueError, match="least_likely must be one of"):
        class_activation_maps(feats, weight, target, "infocam+", least_likely="local")


def test_extractor_passes_least_likely_and_half_inputs_accumulate_in_float32():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 5),
    )  # fmt: skip
    x = torch.randn(2, 3, 8, 8)
    ext = CAMExtractor(model)
    res = ext(x, [1, 2], "infocam+", 2, least_likely="region")
    ref = class_activation_maps(res.features, model[4].weight, [1, 2], "infocam+", 2,
                                least_likely="region")  # fmt: skip
    torch.testing.assert_close(res.maps, ref)
    assert not torch.allclose(res.maps, ext(x, [1, 2], "infocam+", 2).maps)
    with pytest.raises(ValueError, match="least_likely"):
        ext(x, [1, 2], "infocam+", least_likely="pixel")
    half = class_activation_maps(res.features.half(), model[4].weight.half(), [1, 2],
                                 "infocam+", 2, least_likely="region")  # fmt: skip
    assert half.dtype == torch.float32


def test_even_regions_are_centred_by_default_everywhere():
    from infocam.cam import DEFAULT_REGION_PADDING
    from infocam.cli import build_parser
    from infocam.experiments.localize import iter_localize_images
    from infocam.experiments.wsol import reproduce_wsol
    from infocam.experiments.wsol_eval import WSOLEvalOptions

    assert DEFAULT_REGION_PADDING == "centered"
    feats, weight, target = _data()
    plain = class_activation_maps(feats, weight, target, "infocam")
    got = class_activation_maps(feats, weight, target, "infocam", 4)
    torch.testing.assert_close(got, region_filter(plain, 4, "centered"))
    assert not torch.allclose(got, region_filter(plain, 4, "same"))
    torch.testing.assert_close(region_filter(plain, 2), region_filter(plain, 2, "centered"))
    # odd windows: the two agree, so numbers at odd r did not change
    torch.testing.assert_close(region_filter(plain, 3), region_filter(plain, 3, "same"))
    # one default: every entry point refers to it
    import inspect

    for fn, name in ((CAMExtractor.__call__, "region_padding"),
                     (iter_localize_images, "region_padding"),
                     (reproduce_wsol, "region_padding")):  # fmt: skip
        assert inspect.signature(fn).parameters[name].default == DEFAULT_REGION_PADDING
    assert WSOLEvalOptions().region_padding == DEFAULT_REGION_PADDING
    parser = build_parser()
    for argv in (["localize", "x.png", "--arch", "a", "--out", "o"], ["evaluate", "run"],
                 ["reproduce", "wsol"]):  # fmt: skip
        args = parser.parse_args(argv)
        assert args.region_padding == DEFAULT_REGION_PADDING, argv
        assert args.least_likely == "global" and args.normalize == "minmax", argv
