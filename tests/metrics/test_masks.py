"""Tests for skpapers.metrics.mask_average_precision: hand-computed APs, COCOeval."""

import copy
import io
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning

from skpapers.datasets import SHAPE_NAMES, make_shapes, to_coco
from skpapers.metrics import mask_average_precision

pytest.importorskip("pycocotools")

PERFECT = 1 - 2.3e-16  # COCO's precision is tp / (tp + fp + eps)


def _rectangle(top, left, height, width, size=(16, 32)):
    mask = np.zeros(size, dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def _perfect(y):
    return [
        {
            "masks": t["masks"],
            "labels": t["labels"],
            "scores": np.ones(len(t["labels"])),
        }
        for t in y
    ]


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(15, image_size=32, random_state=0)[1]


@pytest.mark.parametrize("iou_threshold", [None, 0.5, 0.75, 0.95])
def test_perfect_predictions_score_one(shapes, iou_threshold):
    score = mask_average_precision(
        shapes, _perfect(shapes), iou_threshold=iou_threshold
    )
    assert score == pytest.approx(1, abs=1e-12)
    assert score >= PERFECT


def test_swapped_labels_score_zero(shapes):
    swapped = _perfect(shapes)
    for target in swapped:
        target["labels"] = target["labels"] % 3 + 1  # 1 -> 2 -> 3 -> 1
    assert mask_average_precision(shapes, swapped) == 0


def test_labels_may_be_any_hashables(shapes):
    named = [
        t | {"labels": [SHAPE_NAMES[label] for label in t["labels"]]} for t in shapes
    ]
    assert mask_average_precision(named, _perfect(named)) >= PERFECT
    tupled = [t | {"labels": [(label, "x") for label in t["labels"]]} for t in shapes]
    assert mask_average_precision(tupled, _perfect(tupled)) >= PERFECT


@pytest.mark.parametrize(
    "shift, iou, expected",
    [
        # a 16 x 20 rectangle moved right by 5: IoU 15 / 25
        (5, 0.6, {0.5: 1, 0.55: 1, 0.75: 0, 0.95: 0}),
        # moved by 4: IoU 16 / 24, above 0.5, 0.55, 0.6 and 0.65 of the ten
        (4, 2 / 3, {0.5: 1, 0.65: 1, 0.7: 0, None: 0.4}),
    ],
)
def test_a_shifted_mask_matches_below_its_iou(shift, iou, expected):
    truth = _rectangle(0, 2, 16, 20)
    moved = _rectangle(0, 2 + shift, 16, 20)
    assert (truth & moved).sum() / (truth | moved).sum() == pytest.approx(iou)
    y_true = [{"masks": truth[None], "labels": [1]}]
    y_pred = [{"masks": moved[None], "labels": [1], "scores": [0.7]}]
    for threshold, ap in expected.items():
        score = mask_average_precision(y_true, y_pred, iou_threshold=threshold)
        assert score == pytest.approx(ap, abs=1e-12), threshold


def test_a_higher_scored_false_positive_halves_ap():
    # ranked: false positive, true positive. Precision 0 then 1/2 at recall
    # 0 then 1; interpolated (the best precision at any higher recall) it is
    # 1/2 at all 101 recall points
    truth = _rectangle(2, 2, 6, 6)
    elsewhere = _rectangle(8, 20, 6, 6)
    y_true = [{"masks": truth[None], "labels": [1]}]
    masks = np.stack([elsewhere, truth])
    y_pred = [{"masks": masks, "labels": [1, 1], "scores": [0.9, 0.8]}]
    assert mask_average_precision(y_true, y_pred) == pytest.approx(0.5)
    y_pred[0]["scores"] = [0.8, 0.9]
    assert mask_average_precision(y_true, y_pred) >= PERFECT


def test_ap_interpolates_at_101_recall_points():
    # two objects; ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2,
    # 1/2, 1. Interpolated: 1 at the 51 recall points 0 to 0.5, 2/3 at the
    # 50 points above
    first, second = _rectangle(0, 0, 6, 6), _rectangle(8, 8, 6, 6)
    y_true = [
        {"masks": first[None], "labels": ["a"]},
        {"masks": second[None], "labels": ["a"]},
    ]
    y_pred = [
        {
            "masks": np.stack([first, second]),
            "labels": ["a", "a"],
            "scores": [0.9, 0.8],
        },
        {"masks": second[None], "labels": ["a"], "scores": [0.7]},
    ]
    expected = (51 * 1 + 50 * 2 / 3) / 101
    assert mask_average_precision(y_true, y_pred) == pytest.approx(expected)


def test_false_positives_on_images_without_ground_truth_count():
    truth = _rectangle(2, 2, 6, 6)
    y_true = [
        {"masks": truth[None], "labels": [1]},
        {"masks": np.zeros((0, 16, 32), dtype=bool), "labels": []},
    ]
    y_pred = [
        {"masks": truth[None], "labels": [1], "scores": [0.8]},
        {"masks": truth[None], "labels": [1], "scores": [0.9]},
    ]
    assert mask_average_precision(y_true, y_pred) == pytest.approx(0.5)


def test_categories_without_ground_truth_are_left_out():
    truth = _rectangle(2, 2, 6, 6)
    y_true = [{"masks": truth[None], "labels": ["cat"]}]
    masks = np.stack([truth, _rectangle(8, 20, 6, 6)])
    y_pred = [{"masks": masks, "labels": ["cat", "dog"], "scores": [0.5, 0.9]}]
    assert mask_average_precision(y_true, y_pred) >= PERFECT


def test_no_predictions_score_zero(shapes):
    empty = [
        {"masks": t["masks"][:0], "labels": t["labels"][:0], "scores": []}
        for t in shapes
    ]
    assert mask_average_precision(shapes, empty) == 0
    assert mask_average_precision(shapes, empty, iou_threshold=0.5) == 0


def test_empty_float_masks_are_no_predictions(shapes):
    empty = [
        {"masks": np.zeros((0, 32, 32)), "labels": [], "scores": []} for _ in shapes
    ]
    assert mask_average_precision(shapes, empty) == 0


def test_no_ground_truth_is_undefined():
    y_true = [{"masks": np.zeros((0, 8, 8), dtype=bool), "labels": []}]
    y_pred = [{"masks": np.ones((1, 8, 8), dtype=bool), "labels": [1], "scores": [1]}]
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(mask_average_precision(y_true, y_pred))


def _noisy_predictions(y, seed=0):
    """Shifted, relabelled, dropped and invented masks with random scores."""
    rng = np.random.RandomState(seed)
    y_pred = []
    for target in y:
        masks, labels = [], []
        for mask, label in zip(target["masks"], target["labels"], strict=True):
            if rng.rand() < 0.15:
                continue
            masks.append(np.roll(mask, rng.randint(-1, 2, size=2), axis=(0, 1)))
            labels.append(rng.randint(1, 4) if rng.rand() < 0.1 else label)
        for _ in range(rng.randint(3)):
            masks.append(rng.rand(*mask.shape) < 0.05)
            labels.append(rng.randint(1, 4))
        masks = np.array(masks, dtype=bool).reshape(-1, *mask.shape)
        y_pred.append(
            {"masks": masks, "labels": labels, "scores": rng.rand(len(labels))}
        )
    return y_pred


def test_agrees_with_cocoeval_run_directly():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from pycocotools.mask import encode

    X, y = make_shapes(25, image_size=32, max_instances=6, random_state=1)
    y_pred = _noisy_predictions(y)
    results = [
        {
            "image_id": image_id,
            "category_id": int(label),
            "segmentation": encode(np.asfortranarray(mask[..., None], np.uint8))[0],
            "score": float(score),
        }
        for image_id, p in enumerate(y_pred, start=1)
        for mask, label, score in zip(p["masks"], p["labels"], p["scores"], strict=True)
    ]
    with redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = to_coco(X, y)
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50, ap75 = evaluation.stats[:3]
    assert 0.1 < ap75 < ap < ap50 < 0.9  # a telling case, neither 0 nor 1
    # the labels as names: the result must not depend on the category ids
    named = [t | {"labels": [SHAPE_NAMES[label] for label in t["labels"]]} for t in y]
    named_pred = [
        p | {"labels": [SHAPE_NAMES[label] for label in p["labels"]]} for p in y_pred
    ]
    assert mask_average_precision(named, named_pred) == pytest.approx(ap, abs=1e-12)
    for threshold, expected in ((0.5, ap50), (0.75, ap75)):
        score = mask_average_precision(y, y_pred, iou_threshold=threshold)
        assert score == pytest.approx(expected, abs=1e-12)


def test_says_nothing_on_stdout(shapes, capsys):
    mask_average_precision(shapes, _perfect(shapes))
    assert capsys.readouterr().out == ""


def test_accepts_integer_masks_and_lists(shapes):
    as_lists = [
        {
            "masks": t["masks"].astype(np.uint8),
            "labels": t["labels"].tolist(),
            "scores": [1.0] * len(t["labels"]),
        }
        for t in shapes
    ]
    assert mask_average_precision(shapes, as_lists) >= PERFECT


@pytest.mark.parametrize("iou_threshold", [0.52, 1.0, 0.45, "0.5", True])
def test_iou_threshold_must_be_cocos(shapes, iou_threshold):
    with pytest.raises(ValueError, match="iou_threshold"):
        mask_average_precision(shapes, _perfect(shapes), iou_threshold=iou_threshold)


def test_bad_inputs_raise(shapes):
    with pytest.raises(ValueError, match="same number"):
        mask_average_precision(shapes, _perfect(shapes)[1:])
    no_scores = [{"masks": t["masks"], "labels": t["labels"]} for t in shapes]
    with pytest.raises(ValueError, match="scores"):
        mask_average_precision(shapes, no_scores)
    cropped = [p | {"masks": p["masks"][:, :16]} for p in _perfect(shapes)]
    with pytest.raises(ValueError, match="pixels"):
        mask_average_precision(shapes, cropped)
    soft = [p | {"masks": p["masks"] * 0.9} for p in _perfect(shapes)]
    with pytest.raises(TypeError, match="threshold"):
        mask_average_precision(shapes, soft)
    with pytest.raises(TypeError, match="list of dicts"):
        mask_average_precision(shapes[0], _perfect(shapes)[0])


def test_without_pycocotools_the_error_says_how_to_install(shapes, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools.cocoeval", None)
    with pytest.raises(ImportError, match=r"skpapers\[data\]"):
        mask_average_precision(shapes, _perfect(shapes))
