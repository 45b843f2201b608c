"""Input checks shared by the estimators, the metrics and COCO I/O."""

import numpy as np
import pytest

from skpapers.datasets import _shapes, to_coco
from skpapers.metrics import edit_error_rate, mask_average_precision
from skpapers.utils import _validation


def test_the_old_import_path_gives_the_same_checks():
    for name in (
        "_as_labels",
        "_check_instance_targets",
        "_check_masks",
        "_masks_to_boxes",
    ):
        assert getattr(_shapes, name) is getattr(_validation, name)


def test_instance_targets_are_checked_and_converted():
    masks = np.zeros((2, 4, 5), dtype=np.uint8)
    masks[0, 1:3, 2:4] = 1
    masks[1, 0, 0] = 1
    (checked,) = _validation._check_instance_targets(
        [{"masks": masks, "labels": ["a", ("b", 1)]}]
    )
    assert checked["masks"].dtype == bool
    assert checked["labels"].tolist() == ["a", ("b", 1)]
    np.testing.assert_array_equal(
        _validation._masks_to_boxes(checked["masks"]), [[2, 1, 4, 3], [0, 0, 1, 1]]
    )
    with pytest.raises(ValueError, match=r"y\[0\]\['labels'\] must have shape \(2,\)"):
        _validation._check_instance_targets([{"masks": masks, "labels": [1]}])


@pytest.mark.parametrize(
    "values, message",
    [
        ({"ab", "c"}, "X is a set, whose order is arbitrary"),
        (frozenset({"ab"}), "X is a frozenset, whose order is arbitrary"),
        ({"ab": "ba"}, "X is a dict, which iterates over its keys alone"),
        ({"ab": "ba"}.keys(), "X is a dict_keys, whose order is arbitrary"),
    ],
)
def test_unordered_collections_are_refused(values, message):
    with pytest.raises(TypeError, match=message):
        _validation._check_ordered(values, "X")


@pytest.mark.parametrize("values", [["ab"], ("ab",), np.array(["ab"]), "ab", []])
def test_ordered_collections_pass(values):
    _validation._check_ordered(values, "X")


def test_edit_error_rate_refuses_sets_too():
    with pytest.raises(TypeError, match="y_true is a set"):
        edit_error_rate({"ab", "c"}, ["ab", "c"])
    assert edit_error_rate(["ab", "c"], ["ab", "c"]) == 0.0


def test_references_need_a_token():
    with pytest.raises(ValueError, match="y holds only empty sequences"):
        _validation._check_reference_tokens([[], ""])
    _validation._check_reference_tokens([[], "a"])


def _one_image(labels):
    masks = np.zeros((len(labels), 8, 8), bool)
    for k in range(len(labels)):
        masks[k, k, k] = True
    return {"masks": masks, "labels": labels}


@pytest.mark.parametrize(
    "labels", [[1.0, np.nan], np.array([1.0, np.nan]), ["a", np.nan]]
)
def test_nan_labels_are_refused_by_every_reader_of_targets(labels):
    pytest.importorskip("pycocotools")
    y = [_one_image([2.0, 3.0]), _one_image(labels)]
    message = r"y\[1\]\['labels'\]\[1\] is NaN, which is not a class label"
    with pytest.raises(ValueError, match=message):
        _validation._check_instance_targets(y)
    with pytest.raises(ValueError, match=message):
        to_coco(np.zeros((2, 8, 8, 3), np.uint8), y)
    scored = [{**t, "scores": np.ones(len(t["labels"]))} for t in y]
    with pytest.raises(ValueError, match="y_true" + message[1:]):
        mask_average_precision(y, scored)


def test_classes_keep_the_labels_dtype_and_refuse_a_mix():
    checked = _validation._check_instance_targets(
        [_one_image([3, 1]), _one_image([]), _one_image([2])]
    )
    classes = _validation._check_class_labels(checked)
    assert classes.tolist() == [1, 2, 3] and classes.dtype.kind == "i"
    tuples = _validation._check_class_labels(
        _validation._check_instance_targets([_one_image([("b", 1), ("a", 2)])])
    )
    assert tuples.tolist() == [("a", 2), ("b", 1)]
    mixed = _validation._check_instance_targets([_one_image([3]), _one_image(["c"])])
    with pytest.raises(ValueError, match=r"y\[0\]\['labels'\] holds number labels"):
        _validation._check_class_labels(mixed)
    # within one image too: numpy alone would make the 3 a "3"
    (one,) = _validation._check_instance_targets([_one_image(["c", 3])])
    assert one["labels"].tolist() == ["c", 3]
    with pytest.raises(ValueError, match=r"string labels .* and y.0..'labels'. number"):
        _validation._check_class_labels([one])


@pytest.mark.parametrize("y, kind", [(None, "NoneType"), ("masks", "str"), (3, "int")])
def test_targets_that_are_no_list_are_refused(y, kind):
    with pytest.raises(TypeError, match=f"y must be a list of dicts.*; got {kind}"):
        _validation._check_instance_targets(y)


@pytest.mark.parametrize("image_size", [16, 32, 48])
def test_an_image_is_refused_exactly_when_torchvision_would_keep_no_row(image_size):
    torch = pytest.importorskip("torch")
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    transform = GeneralizedRCNNTransform(
        image_size, image_size, [0.0] * 3, [1.0] * 3
    ).eval()
    outcomes = set()
    for long in range(image_size, 8 * image_size, 5):
        for short in range(1, long // image_size + 2):
            for height, width in ((short, long), (long, short)):
                try:
                    resized, _ = transform.resize(torch.zeros(3, height, width), None)
                    kept = min(resized.shape[-2:]) >= 1
                except RuntimeError:  # torch's "output (H: 0 ...)"
                    kept = False
                outcomes.add(kept)
                image = np.zeros((height, width, 3), np.float32)
                if kept:
                    _validation._check_resizable([image], image_size)
                else:
                    with pytest.raises(ValueError, match=r"X\[0\] is .* less than one"):
                        _validation._check_resizable([image], image_size)
    assert outcomes == {True, False}
