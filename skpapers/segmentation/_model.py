"""Mask R-CNN parts on torchvision: the RoI operation switch, mask heads, backbones.

He, K., Gkioxari, G., Dollar, P. and Girshick, R. (2017). Mask R-CNN. ICCV.
"""

import math
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.ops import (
    FeaturePyramidNetwork,
    MultiScaleRoIAlign,
    roi_align,
    roi_pool,
)
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

ROI_OPS = ("align", "pool", "warp")
MASK_LOSSES = ("sigmoid", "softmax")


# --------------------------------------------------------------------------
# RoI operations
# --------------------------------------------------------------------------


def roi_warp(features, rois, output_size, spatial_scale):
    """RoIWarp: bilinear sampling inside boxes quantised to the feature grid.

    The box corners are rounded to whole feature cells, as RoIPool does, and
    the box is then sampled by bilinear interpolation, as RoIAlign does: the
    middle column of the paper's Table 2c.

    Parameters
    ----------
    features : Tensor[N, C, H, W]
        One feature level.
    rois : Tensor[K, 5]
        ``(batch index, x1, y1, x2, y2)`` in image coordinates.
    output_size : tuple of int
        Output height and width.
    spatial_scale : float
        Feature cells per image pixel.

    Returns
    -------
    Tensor[K, C, output_size[0], output_size[1]]
    """
    quantised = torch.cat([rois[:, :1], torch.round(rois[:, 1:] * spatial_scale)], 1)
    return roi_align(
        features, quantised, output_size, spatial_scale=1.0, sampling_ratio=2
    )


def _roi_align(features, rois, output_size, spatial_scale):
    """RoIAlign: no quantisation, bilinear samples at exact positions."""
    return roi_align(
        features, rois, output_size, spatial_scale, sampling_ratio=2, aligned=True
    )


def _roi_pool(features, rois, output_size, spatial_scale):
    """RoIPool: quantised boxes and bins, max pooled."""
    return roi_pool(features, rois, output_size, spatial_scale)


_OPS = {"align": _roi_align, "pool": _roi_pool, "warp": roi_warp}


class MultiScaleRoIOp(MultiScaleRoIAlign):
    """Features of each box from the FPN level its size picks.

    A box of width ``w`` and height ``h`` (image pixels) is taken from level
    ``k = floor(4 + log2(sqrt(w h) / 224))``, clamped to the levels given
    (Lin et al. 2017, eq. 1), by RoIAlign, RoIPool or RoIWarp. A drop-in
    for torchvision's ``MultiScaleRoIAlign``, whose type ``MaskRCNN`` asks for.

    Parameters
    ----------
    featmap_names : list of str
        Feature levels to pool from, finest first.
    output_size : int
        Side of the pooled features.
    op : {"align", "pool", "warp"}
        The RoI operation.
    """

    def __init__(self, featmap_names, output_size, op="align"):
        if op not in _OPS:
            raise ValueError(f"op must be one of {ROI_OPS}; got {op!r}.")
        super().__init__(list(featmap_names), (output_size, output_size), 2)
        self.op = op

    def forward(self, features, proposals, image_shapes):
        levels = [features[name] for name in self.featmap_names]
        rois = torch.cat(
            [
                torch.cat([torch.full_like(boxes[:, :1], i), boxes], dim=1)
                for i, boxes in enumerate(proposals)
            ]
        )
        height = max(shape[0] for shape in image_shapes)
        scales = [2.0 ** round(math.log2(level.shape[-2] / height)) for level in levels]
        k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
        areas = (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])
        k = torch.floor(4 + torch.log2(torch.sqrt(areas.clamp(min=1e-6)) / 224))
        level_of = (k.clamp(k_min, k_max) - k_min).long()
        first = levels[0]
        out = first.new_zeros((len(rois), first.shape[1], *self.output_size))
        for index, (level, scale) in enumerate(zip(levels, scales, strict=True)):
            chosen = torch.nonzero(level_of == index).squeeze(1)
            if len(chosen):
                pooled = _OPS[self.op](level, rois[chosen], self.output_size, scale)
                out[chosen] = pooled.to(out.dtype)
        return out


# --------------------------------------------------------------------------
# Mask predictor
# --------------------------------------------------------------------------


class MaskPredictor(nn.Module):
    """Mask logits per class from the mask head's features, upsampled 2x.

    ``mask_loss="sigmoid"`` is the paper's per-class binary mask: each class
    channel is an independent per-pixel sigmoid. ``"softmax"`` couples the
    classes: the pixel probabilities are a softmax over the class channels,
    and the channel of class ``c`` is returned as the logit of that softmax
    probability, ``log p_c - log(1 - p_c)``; torchvision's binary loss on the
    ground-truth class's channel is then the cross-entropy of ``p_c``, and
    its sigmoid at inference gives ``p_c``. ``class_agnostic=True`` predicts
    one mask for every class, shared by all channels.

    Shapes: ``Tensor[K, C_in, S, S]`` gives ``Tensor[K, num_classes, 2S, 2S]``.
    """

    def __init__(
        self, in_channels, dim_reduced, num_classes, *, mask_loss, class_agnostic
    ):
        super().__init__()
        if mask_loss not in MASK_LOSSES:
            raise ValueError(
                f"mask_loss must be one of {MASK_LOSSES}; got {mask_loss!r}."
            )
        self.upsample = nn.ConvTranspose2d(in_channels, dim_reduced, 2, stride=2)
        self.logits = nn.Conv2d(dim_reduced, 1 if class_agnostic else num_classes, 1)
        self.num_classes, self.mask_loss = num_classes, mask_loss
        for layer in (self.upsample, self.logits):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        logits = self.logits(torch.relu(self.upsample(x)))
        logits = logits.expand(-1, self.num_classes, -1, -1)
        if self.mask_loss == "softmax":
            log_p = torch.log_softmax(logits, dim=1).clamp(max=-1e-6)
            logits = log_p - torch.log(-torch.expm1(log_p))
        return logits


# --------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------


class SmallBackbone(nn.Module):
    """A CNN of four batch-normalised stages and an FPN, sized for the CPU.

    Strides 4, 8 and 16 feed the FPN (levels ``"0"``, ``"1"``, ``"2"``), plus
    a max-pooled ``"pool"`` level for the RPN. No pretrained weights are
    needed: the normalisation is BatchNorm, which trains from scratch (a
    FrozenBatchNorm backbone without weights would not normalise at all).

    Shapes: ``Tensor[N, 3, H, W]`` gives ``OrderedDict`` of
    ``Tensor[N, out_channels, H / s, W / s]`` for ``s`` = 4, 8, 16, 32.
    """

    def __init__(self, widths=(32, 64, 96, 128), out_channels=64):
        super().__init__()
        layers, n_in = [], 3
        for width in widths:
            layers.append(
                nn.Sequential(
                    nn.Conv2d(n_in, width, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                )
            )
            n_in = width
        self.stem, *stages = layers
        self.stages = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork(
            list(widths[1:]), out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, x):
        x = self.stem(x)
        features = OrderedDict()
        for index, stage in enumerate(self.stages):
            x = stage(x)
            features[str(index)] = x
        return self.fpn(features)


def build_maskrcnn(
    num_classes,
    *,
    backbone="small",
    roi_op="align",
    mask_loss="sigmoid",
    class_agnostic=False,
    image_size=64,
    box_batch_size_per_image=64,
    representation_size=256,
    mask_channels=64,
    score_threshold=0.05,
):
    """A torchvision ``MaskRCNN`` with the paper's axes as arguments.

    Parameters
    ----------
    num_classes : int
        Classes, background included.
    backbone : {"small"} or nn.Module
        ``"small"`` is :class:`SmallBackbone`; a module must have
        ``out_channels`` and return the levels ``"0"``-``"2"`` and ``"pool"``.
    roi_op : {"align", "pool", "warp"}
        RoI operation of the box and mask heads (the paper's Table 2c).
    mask_loss : {"sigmoid", "softmax"}
        Per-class binary masks or a softmax over classes (Table 2b).
    class_agnostic : bool
        One mask for every class (Table 2, class-agnostic row).
    image_size : int
        Side the images are resized to, smaller side and larger alike.
    box_batch_size_per_image : int
        RoIs sampled per image for the box and mask heads in training.
    representation_size : int
        Width of the box head's two fully connected layers.
    mask_channels : int
        Channels of the mask head's four convolutions.
    score_threshold : float
        Least class score a detection keeps at inference.

    Returns
    -------
    torchvision.models.detection.MaskRCNN
    """
    if roi_op not in ROI_OPS:
        raise ValueError(f"roi_op must be one of {ROI_OPS}; got {roi_op!r}.")
    if backbone == "small":
        backbone = SmallBackbone()
    channels = backbone.out_channels
    names = ["0", "1", "2"]
    smallest = max(image_size // 8, 4)
    anchors = AnchorGenerator(
        sizes=tuple((smallest * 2**i,) for i in range(4)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 4,
    )
    box_pool = MultiScaleRoIOp(names, 7, roi_op)
    mask_pool = MultiScaleRoIOp(names, 14, roi_op)
    return MaskRCNN(
        backbone,
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        box_roi_pool=box_pool,
        box_head=TwoMLPHead(channels * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
        box_batch_size_per_image=box_batch_size_per_image,
        box_score_thresh=score_threshold,
        box_detections_per_img=20,
        mask_roi_pool=mask_pool,
        mask_head=MaskRCNNHeads(channels, [mask_channels] * 4, 1),
        mask_predictor=MaskPredictor(
            mask_channels,
            mask_channels,
            num_classes,
            mask_loss=mask_loss,
            class_agnostic=class_agnostic,
        ),
    )
