r"""Class activation maps: CAM, infoCAM and infoCAM+ for any CNN with a GAP + affine head.

For features ``g`` of shape (K, h, w) and head weights ``W`` (M, K), the map of class ``y`` is

.. math:: M_y(a, b) = \sum_k c_k \, g_k(a, b)

with the contrast vector ``c``:

* ``"cam"``      (Zhou et al. 2016): ``c = W_y``;
* ``"infocam"``  (the paper, Eq. 14): ``c = W_y - mean_{j != y} W_j``, the PMI of ``y`` minus the
  average PMI of the other classes, decomposed point-wise;
* ``"infocam+"`` (the paper, Eq. 15): ``c = W_y - W_z`` with ``z = argmin logits`` the least
  likely class (``least_likely="global"``, the default); ``least_likely="region"`` takes Eq. 15
  as written, the least likely class of each region: ``R(CAM_y) - min_m R(CAM_m)``.

The paper's region ``R`` sums the map over an ``r x r`` window around each cell (zero outside
the map, same output size). ``region_padding="centered"`` (the default,
``DEFAULT_REGION_PADDING``) centres even windows: the (r + 1)-tap kernel
``[1/2, 1, ..., 1, 1/2]`` in each direction, the mean of the four r x r windows around the cell
(the same sum r^2 of weights; for odd ``r`` the plain centred window).
``region_padding="same"`` equals ``conv2d(map, ones(r, r), padding="same")``: for even ``r``
the window reaches one more cell right/down, so an even region's map sits half a cell up-left
of the features (issue 14 reports it about 20 points lower in GT-known Loc).
``region_padding="full"`` gives the original code's full convolution (output ``h + r - 1`` by
``w + r - 1``) for anyone comparing with it. ``r = 1`` is no filter.

Everything is one ``einsum`` with no backward pass, runs under ``torch.inference_mode()`` on the
features' device; float16/bfloat16 inputs are accumulated and returned in float32.

A head that is affine in the pooled vector (a LayerNorm, BatchNorm1d, 1 x 1 convolution or
averaged heads between the pooling and the logits) is written as ``logits = s_n W p_n + b_n``
(:class:`~infocam.cam.head.AffineHead`); its maps use the effective ``W`` and are scaled by
the per-sample ``s_n``.

Modules: :mod:`~infocam.cam.maps` (contrast weights, region filter, the maps),
:mod:`~infocam.cam.head` (the head after the pooling as an affine map) and
:mod:`~infocam.cam.extractor` (``CAMExtractor``: the maps of a model, from images).
"""

from infocam.cam.extractor import CAMExtractor, CAMResult
from infocam.cam.head import AffineHead
from infocam.cam.maps import (
    DEFAULT_REGION_PADDING,
    LEAST_LIKELY,
    METHODS,
    REGION_PADDINGS,
    Method,
    RegionPadding,
    class_activation_maps,
    contrast_weights,
    region_filter,
)

__all__ = [
    "DEFAULT_REGION_PADDING",
    "LEAST_LIKELY",
    "METHODS",
    "REGION_PADDINGS",
    "AffineHead",
    "CAMExtractor",
    "CAMResult",
    "Method",
    "RegionPadding",
    "class_activation_maps",
    "contrast_weights",
    "region_filter",
]
