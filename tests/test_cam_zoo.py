"""A named subset of the torchvision zoo through CAMExtractor: every head kind, exact or refused.

Random weights, BatchNorm statistics from random images, the classifier re-drawn from
normal(0, 0.05) (``benchmarks/cam_zoo.py`` does the same over the whole zoo): each supported
model's maps average, plus the head's bias terms, to its logits within 1e-5 of the largest
logit; each refused one says why in one line naming the layer that breaks affinity. Kept
small for ``make test``: the whole zoo is ``benchmarks/cam_zoo.py``; channels-last features
(Swin) are checked in miniature in ``test_cam_heads.py``. The
formerly wrong cases of issue 19 (timm's avg+max pooling, ResMLP's patch embedding) are
reproduced in miniature in ``test_cam.py``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
import torchvision

_REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cam_zoo", _REPO / "benchmarks" / "cam_zoo.py")
cam_zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cam_zoo)

SUPPORTED = {
    "resnet18": "gap+linear",
    "shufflenet_v2_x0_5": "gap+linear",  # a functional mean, no pooling module
    "convnext_tiny": "layernorm+linear",  # LayerNorm2d after the pooling: refused before
    "squeezenet1_1": "identity (classifier before the pooling)",  # refused before
    "googlenet": "gap+linear",  # auxiliary heads (not run in eval mode)
}
REFUSED = {
    "mobilenet_v3_small": r"^'classifier\.1' \(Hardswish\) .*is not affine in the pooled vector$",
    "vgg11": r"^'classifier\.0' \(Linear\) reads neither the features \(512, 7, 7\) nor",
}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_supported_models_reproduce_their_logits(name):
    row = cam_zoo.run_model(cam_zoo.torchvision_build, name)
    assert row["status"] == "supported", row
    assert row["head"] == SUPPORTED[name]
    assert row["rel_error"] <= 1e-5 and row["size"] <= 128


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_models_name_the_layer_in_one_line(name):
    row = cam_zoo.run_model(cam_zoo.torchvision_build, name)
    assert row["status"] == "refused", row
    assert "\n" not in row["message"]
    assert row["message"].startswith("no GAP + linear head found: averaging feature layer ")
    assert re.search(REFUSED[name], row["reason"]), row["reason"]


def test_class_token_vit_is_refused_and_a_zero_head_never_passes(tiny_vit):
    # torchvision's ViT (small): a class-token read-out, with its zero head re-drawn
    vit = tiny_vit
    cam_zoo.prepare(vit, 32)
    row = cam_zoo.check(vit, torch.randn(2, 3, 32, 32))
    assert row["status"] == "refused"
    assert "reads neither the features (16, 4, 4) nor their spatial mean" in row["reason"]


def test_the_random_head_is_not_zero_and_batchnorm_statistics_are_set():
    model = cam_zoo.prepare(torchvision.models.resnet18(num_classes=10), 64)
    assert model.fc.weight.std() > 0.04 and not model.training
    assert model.bn1.running_var.ne(1).any() and model.bn1.running_mean.ne(0).any()


TIMM_SUPPORTED = {
    "convnext_atto": "layernorm+linear",  # NormMlpClassifierHead without its MLP
    "edgenext_xx_small": "layernorm+linear",
    "dla46_c": "conv",  # a 1 x 1 convolution classifier of the pooled map
    "repvit_m1": "averaged(batchnorm+linear)",  # distillation head: BatchNorm1d + Linear, twice
}
TIMM_REFUSED = {  # the first three were silently wrong maps (issue 19)
    "resnet18:avgmax": r"^'global_pool\.pool' \(AdaptiveAvgMaxPool2d\) does not output the "
    "features' spatial mean$",
    "resnet18:catavgmax": r"^'global_pool\.pool' \(AdaptiveCatAvgMaxPool2d\) does not output",
    "resmlp_12_224": r"reads neither the features \(384, 14, 14\) nor their spatial mean$",
    "mobilenetv3_small_050": r"^'act2' \(Hardswish\) \(in place, after 'conv_head'\) is not affine",
}


@pytest.mark.parametrize("name", sorted(TIMM_SUPPORTED))
def test_timm_supported_models_reproduce_their_logits(name):
    pytest.importorskip("timm")
    row = cam_zoo.run_model(cam_zoo.timm_build, name)
    assert row["status"] == "supported", row
    assert row["head"] == TIMM_SUPPORTED[name] and row["rel_error"] <= 1e-5


@pytest.mark.parametrize("name", sorted(TIMM_REFUSED))
def test_timm_refused_models_name_the_layer(name):
    pytest.importorskip("timm")
    row = cam_zoo.run_model(cam_zoo.timm_build, name)
    assert row["status"] == "refused", row
    assert re.search(TIMM_REFUSED[name], row["reason"]), row["reason"]
