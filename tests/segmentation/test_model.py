"""Mask R-CNN parts: the RoI operations, the mask predictor, the model."""

import pytest
import torch
from torchvision.ops import roi_align, roi_pool

from skpapers.segmentation._model import (
    MaskPredictor,
    MultiScaleRoIOp,
    build_maskrcnn,
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


def test_unknown_roi_op_is_refused():
    with pytest.raises(ValueError, match="roi_op must be one of"):
        build_maskrcnn(4, roi_op="crop")
    with pytest.raises(ValueError, match="mask_loss must be one of"):
        MaskPredictor(8, 8, 4, mask_loss="hinge", class_agnostic=False)
