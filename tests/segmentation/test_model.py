"""Mask R-CNN parts: the RoI operations, the mask predictor, the model."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import roi_align, roi_pool

from skpapers.datasets import make_shapes
from skpapers.metrics import mask_average_precision
from skpapers.segmentation._model import (
    MaskPredictor,
    MultiScaleRoIOp,
    SmallBackbone,
    build_maskrcnn,
    paste_masks,
    roi_warp,
)


@pytest.fixture
def features():
    torch.manual_seed(0)
    return torch.randn(2, 3, 16, 16)


@pytest.fixture
def rois():
    return torch.tensor(
        [
            [0, 3.3, 5.1, 40.7, 30.2],
            [1, 10.0, 12.0, 50.0, 60.0],
            [0, 0.0, 0.0, 63.9, 63.9],
        ]
    )


def test_each_op_on_one_level_is_torchvisions(features, rois):
    proposals = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.nonzero(rois[:, 0] == i).squeeze(1) for i in range(2)])
    shapes = [(64, 64)] * 2
    expected = {
        "align": roi_align(
            features, rois, (7, 7), 0.25, sampling_ratio=2, aligned=True
        ),
        "pool": roi_pool(features, rois, (7, 7), 0.25),
        "warp": roi_warp(features, rois, (7, 7), 0.25),
    }
    for op, want in expected.items():
        got = MultiScaleRoIOp(["0"], 7, op)({"0": features}, proposals, shapes)
        torch.testing.assert_close(got, want[order])


def test_roi_warp_quantises_the_box_then_samples_bilinearly(features):
    on_grid = torch.tensor([[0, 8.0, 4.0, 40.0, 36.0]])  # whole cells at scale 1/4
    torch.testing.assert_close(
        roi_warp(features, on_grid, (7, 7), 0.25),
        roi_align(features, on_grid, (7, 7), 0.25, sampling_ratio=2),
    )
    off_grid = torch.tensor([[0, 9.5, 5.5, 41.5, 37.5]])
    # 9.5 / 4 = 2.375 rounds to cell 2, and so on: the box on the grid above.
    torch.testing.assert_close(
        roi_warp(features, off_grid, (7, 7), 0.25),
        roi_warp(features, on_grid, (7, 7), 0.25),
    )
    assert not torch.allclose(
        roi_warp(features, off_grid, (7, 7), 0.25),
        roi_align(features, off_grid, (7, 7), 0.25, sampling_ratio=2),
    )


def test_boxes_are_pooled_from_the_level_their_size_picks():
    # Level i is constant i: the pooled value says which level a box used.
    levels = {
        str(i): torch.full((1, 1, 256 // 2**i, 256 // 2**i), float(i)) for i in range(3)
    }
    boxes = torch.tensor(
        [[0, 0, 20, 20], [0, 0, 112, 112], [0, 0, 224, 224], [0, 0, 250, 250]],
        dtype=torch.float32,
    )
    pooled = MultiScaleRoIOp(["0", "1", "2"], 2, "align")(
        levels, [boxes], [(1024, 1024)]
    )
    # sqrt(area) 20 -> k = 4 + log2(20/224) = 0.5 -> level 2 (scale 1/4 is k=2)
    assert pooled[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 2.0]


@pytest.mark.parametrize("finest_stride", [2, 4])
def test_the_small_backbone_gives_one_fpn_level_per_stride(finest_stride):
    backbone = SmallBackbone(out_channels=16, finest_stride=finest_stride)
    levels = backbone(torch.zeros(2, 3, 64, 64))
    strides = [finest_stride * 2**i for i in range(len(levels))]
    assert strides[-1] == 32
    assert list(levels) == [*backbone.featmap_names, "pool"]
    for level, stride in zip(levels.values(), strides, strict=True):
        assert level.shape == (2, 16, 64 // stride, 64 // stride)
    model = build_maskrcnn(4, backbone=backbone)
    assert model.roi_heads.mask_roi_pool.featmap_names == backbone.featmap_names
    assert model.rpn.anchor_generator.num_anchors_per_location() == [3] * len(levels)
    with pytest.raises(ValueError, match="finest_stride must be 2 or 4"):
        SmallBackbone(finest_stride=8)


def test_softmax_masks_are_a_distribution_over_classes():
    torch.manual_seed(0)
    x = torch.randn(5, 8, 14, 14)
    softmax = MaskPredictor(8, 8, 4, mask_loss="softmax", class_agnostic=False)(x)
    assert softmax.shape == (5, 4, 28, 28)
    torch.testing.assert_close(torch.sigmoid(softmax).sum(1), torch.ones(5, 28, 28))
    sigmoid = MaskPredictor(8, 8, 4, mask_loss="sigmoid", class_agnostic=False)(x)
    assert not torch.allclose(torch.sigmoid(sigmoid).sum(1), torch.ones(5, 28, 28))
    agnostic = MaskPredictor(8, 8, 4, mask_loss="sigmoid", class_agnostic=True)(x)
    assert agnostic.shape == (5, 4, 28, 28)
    assert all(torch.equal(agnostic[:, 0], agnostic[:, c]) for c in range(1, 4))


def _batch():
    from skpapers.datasets import make_shapes

    X, y = make_shapes(2, random_state=0)
    images = [torch.as_tensor(x).permute(2, 0, 1).float() / 255 for x in X]
    targets = [
        {
            "boxes": torch.as_tensor(t["boxes"]),
            "labels": torch.as_tensor(t["labels"]),
            "masks": torch.as_tensor(t["masks"], dtype=torch.uint8),
        }
        for t in y
    ]
    return images, targets


@pytest.mark.parametrize(
    "roi_op, mask_loss, class_agnostic",
    [("align", "sigmoid", False), ("pool", "softmax", True), ("warp", "sigmoid", True)],
)
def test_every_variant_trains_and_predicts(roi_op, mask_loss, class_agnostic):
    torch.manual_seed(0)
    images, targets = _batch()
    model = build_maskrcnn(
        4, roi_op=roi_op, mask_loss=mask_loss, class_agnostic=class_agnostic
    )
    losses = model.train()(images, targets)
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.roi_heads.mask_predictor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with torch.no_grad():
        (out,) = model.eval()(images[:1])
    assert out["masks"].shape[1:] == (1, 64, 64)


def test_the_mask_head_sees_the_whole_roi_through_dilation():
    torch.manual_seed(0)
    head = build_maskrcnn(4).roi_heads.mask_head
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in convs)
    # a middle cell of the 14 x 14 RoI sees its corner with dilation, not without
    x = torch.randn(1, head[0][0].in_channels, 14, 14, requires_grad=True)
    head(x)[0, :, 8, 8].sum().backward()
    assert x.grad[0, :, 0, 0].abs().sum() > 0
    undilated = build_maskrcnn(4, mask_dilation=1).roi_heads.mask_head
    y = torch.randn(1, head[0][0].in_channels, 14, 14, requires_grad=True)
    undilated(y)[0, :, 8, 8].sum().backward()
    assert y.grad[0, :, 0, 0].abs().sum() == 0


def test_unknown_roi_op_is_refused():
    with pytest.raises(ValueError, match="roi_op must be one of"):
        build_maskrcnn(4, roi_op="crop")
    with pytest.raises(ValueError, match="mask_loss must be one of"):
        MaskPredictor(8, 8, 4, mask_loss="hinge", class_agnostic=False)


def _perfect_mask_predictions(paste):
    """Ground truth through torchvision's mask targets and back, by ``paste``."""
    _, y = make_shapes(40, random_state=0)
    predictions = []
    for target in y:
        boxes = torch.from_numpy(target["boxes"])
        rois = torch.cat([torch.arange(len(boxes))[:, None].float(), boxes], 1)
        masks = torch.from_numpy(target["masks"]).float()[:, None]
        # the 28 x 28 targets torchvision's mask loss fits (project_masks_on_boxes)
        cells = roi_align(masks, rois, (28, 28), 1.0)
        pasted = paste(cells, boxes, (64, 64))[:, 0] > 0.5
        predictions.append(
            {
                "masks": pasted.numpy(),
                "labels": target["labels"],
                "scores": np.ones(len(boxes)),
            }
        )
    return y, predictions


def test_a_perfect_mask_pastes_back_onto_its_pixels():
    y, ours = _perfect_mask_predictions(paste_masks)
    _, theirs = _perfect_mask_predictions(paste_masks_in_image)
    ious = [
        (p & t).sum(axis=(1, 2)) / (p | t).sum(axis=(1, 2))
        for prediction, target in zip(ours, y, strict=True)
        for p, t in [(prediction["masks"], target["masks"])]
    ]
    assert np.concatenate(ious).mean() > 0.99
    assert mask_average_precision(y, ours) > 0.99
    # torchvision's pasting rounds the box and loses a pixel at its edges
    assert mask_average_precision(y, theirs) < 0.9


def test_pasting_keeps_nothing_outside_the_box():
    masks = torch.ones(2, 1, 28, 28)
    boxes = torch.tensor([[10.0, 20.0, 30.0, 24.0], [0.0, 0.0, 64.0, 64.0]])
    pasted = paste_masks(masks, boxes, (48, 64))[:, 0]
    assert pasted.shape == (2, 48, 64)
    expected = torch.zeros(48, 64)
    expected[20:24, 10:30] = 1
    torch.testing.assert_close(pasted[0], expected)
    assert bool((pasted[1] == 1).all())
    assert paste_masks(masks[:0], boxes[:0], (48, 64)).shape == (0, 1, 48, 64)
