"""Tests for skpapers.datasets.make_shapes: the targets agree with the pixels."""

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skpapers.datasets import SHAPE_NAMES, make_shapes


def _tight_box(mask):
    rows, columns = np.nonzero(mask)
    return [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(60, random_state=0)


def test_shapes_and_dtypes(shapes):
    X, y = shapes
    assert X.shape == (60, 64, 64, 3)
    assert X.dtype == np.uint8
    assert len(y) == 60
    for target in y:
        k = len(target["labels"])
        assert target["masks"].shape == (k, 64, 64)
        assert target["masks"].dtype == bool
        assert target["labels"].dtype == np.int64
        assert target["boxes"].shape == (k, 4)
        assert target["boxes"].dtype == np.float32


def test_same_seed_same_data_other_seed_other_data():
    X, y = make_shapes(20, image_size=32, random_state=3)
    X_again, y_again = make_shapes(
        20, image_size=32, random_state=np.random.RandomState(3)
    )
    assert np.array_equal(X, X_again)
    for target, again in zip(y, y_again, strict=True):
        for key in ("masks", "labels", "boxes"):
            assert np.array_equal(target[key], again[key])
    X_other, _ = make_shapes(20, image_size=32, random_state=4)
    assert not np.array_equal(X, X_other)


def test_no_pixel_belongs_to_two_masks(shapes):
    _, y = shapes
    for target in y:
        assert target["masks"].sum(axis=0).max() <= 1


def test_boxes_are_the_tight_boxes_of_their_masks(shapes):
    _, y = shapes
    for target in y:
        expected = [_tight_box(mask) for mask in target["masks"]]
        assert np.array_equal(target["boxes"], np.reshape(expected, (-1, 4)))


def test_masks_are_the_coloured_pixels(shapes):
    # shapes have a channel >= 160 - 16 of noise, the background none above
    # 96 + 16: a pixel is in a mask exactly when it looks like a shape
    X, y = shapes
    for image, target in zip(X, y, strict=True):
        assert np.array_equal(target["masks"].any(axis=0), image.max(axis=-1) >= 128)


def test_every_instance_keeps_min_area_and_no_image_is_empty(shapes):
    _, y = shapes
    for target in y:
        assert 1 <= len(target["labels"]) <= 4
        assert target["masks"].sum(axis=(1, 2)).min() >= 20


@pytest.mark.parametrize(
    "params",
    [
        dict(image_size=15),  # the smallest image for min_area=20
        dict(image_size=32, min_area=60, max_instances=6),
        dict(image_size=40, min_area=1, max_instances=8),
    ],
)
def test_min_area_and_non_empty_images_hold_at_the_limits(params):
    _, y = make_shapes(300, random_state=0, **params)
    for target in y:
        assert 1 <= len(target["labels"]) <= params.get("max_instances", 4)
        assert target["masks"].sum(axis=(1, 2)).min() >= params.get("min_area", 20)


def test_occlusion_drops_some_instances():
    _, y = make_shapes(200, image_size=32, max_instances=8, random_state=0)
    counts = np.array([len(target["labels"]) for target in y])
    # 8 shapes drawn on 1 in 8 images, yet occlusion leaves fewer on most
    assert counts.max() <= 8
    assert counts.mean() < 4.5


def test_labels_cover_all_three_classes(shapes):
    _, y = shapes
    labels = np.concatenate([target["labels"] for target in y])
    assert set(labels.tolist()) == {1, 2, 3} == set(SHAPE_NAMES)


def test_labels_match_the_geometry():
    # alone on its image a shape is whole: a square fills its box, a circle
    # pi / 4 of it, a triangle at most half
    _, y = make_shapes(150, max_instances=1, random_state=0)
    fill = {1: [], 2: [], 3: []}
    for target in y:
        (label,), (box,) = target["labels"], target["boxes"]
        area = target["masks"][0].sum()
        fill[label].append(area / ((box[2] - box[0]) * (box[3] - box[1])))
    assert np.allclose(fill[2], 1.0)
    assert min(fill[1]) > 0.65 and max(fill[1]) < 0.9
    assert max(fill[3]) < 0.6


def test_chunks_join_seamlessly():
    # 300 images of 64 x 64 pass through several chunks of the drawing
    X, y = make_shapes(300, random_state=1)
    assert X.shape[0] == len(y) == 300
    last = y[-1]
    assert np.array_equal(last["masks"].any(axis=0), X[-1].max(axis=-1) >= 128)


@pytest.mark.parametrize(
    "params, error",
    [
        (dict(n_samples=0), ValueError),
        (dict(n_samples=2.5), TypeError),
        (dict(image_size=14), ValueError),
        (dict(image_size=64, min_area=2000), ValueError),
        (dict(max_instances=0), ValueError),
        (dict(min_area=0), ValueError),
        (dict(random_state="seed"), ValueError),
        (dict(return_X_y=None), ValueError),
    ],
)
def test_bad_parameters_raise(params, error):
    with pytest.raises(error, match="make_shapes"):
        make_shapes(**params)


def test_parameters_are_named_with_what_is_allowed():
    with pytest.raises(InvalidParameterError) as error:
        make_shapes(n_samples=-1)
    assert str(error.value) == (
        "The 'n_samples' parameter of make_shapes must be an int in the range "
        "[1, inf). Got -1 instead."
    )


def test_numpy_integers_and_bools_count_as_ints():
    X, y = make_shapes(np.int64(3), image_size=np.int32(32), random_state=0)
    X_int, y_int = make_shapes(3, image_size=32, random_state=0)
    assert np.array_equal(X, X_int)
    assert [len(t["labels"]) for t in y] == [len(t["labels"]) for t in y_int]
    # as in scikit-learn, True is the int 1
    _, y_one = make_shapes(5, image_size=32, max_instances=True, random_state=0)
    assert [len(target["labels"]) for target in y_one] == [1] * 5


def test_the_bunch_holds_the_tuple_names_and_parameters():
    X, y = make_shapes(4, image_size=32, random_state=5)
    shapes = make_shapes(4, image_size=32, random_state=5, return_X_y=False)
    assert np.array_equal(shapes.X, X)
    for target, again in zip(shapes.y, y, strict=True):
        for key in ("masks", "labels", "boxes"):
            assert np.array_equal(target[key], again[key])
    names = shapes.target_names
    assert [names[label] for label in SHAPE_NAMES] == list(SHAPE_NAMES.values())
    assert names[0] == "background"
    assert shapes.parameters == {
        "n_samples": 4,
        "image_size": 32,
        "max_instances": 4,
        "min_area": 20,
        "random_state": 5,
    }
    assert "min_area" in shapes.DESCR and "triangle" in shapes.DESCR
