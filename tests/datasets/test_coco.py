"""Tests for skpapers.datasets.to_coco and from_coco: round trips, formats."""

import json
import sys

import numpy as np
import pytest

from skpapers.datasets import SHAPE_NAMES, from_coco, make_shapes, to_coco

mask_utils = pytest.importorskip("pycocotools.mask")
# pycocotools' decoding warns on numpy 2, about its own code
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(12, image_size=32, random_state=0)


def _assert_same_targets(y, expected):
    assert len(y) == len(expected)
    for target, other in zip(y, expected, strict=True):
        for key in ("masks", "labels", "boxes"):
            assert target[key].dtype == other[key].dtype, key
            assert np.array_equal(target[key], other[key]), key


def _one_image(segmentations, height=5, width=6, category_id=1, **extra):
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": height, "width": width}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": category_id, "segmentation": s}
            | extra
            for i, s in enumerate(segmentations, start=1)
        ],
        "categories": [{"id": category_id, "name": "thing"}],
    }


def test_round_trip_through_json_gives_the_same_targets(shapes):
    X, y = shapes
    coco = json.loads(json.dumps(to_coco(X, y)))
    X_back, y_back = from_coco(coco)
    assert X_back is None
    _assert_same_targets(y_back, y)


def test_round_trip_by_name(shapes):
    X, y = shapes
    _, y_back = from_coco(to_coco(X, y, class_names=SHAPE_NAMES), labels="name")
    for target, back in zip(y, y_back, strict=True):
        assert back["labels"].tolist() == [
            SHAPE_NAMES[label] for label in target["labels"]
        ]


def test_annotations_follow_coco_conventions(shapes):
    X, y = shapes
    coco = to_coco(X, y)
    assert [image["id"] for image in coco["images"]] == list(range(1, 13))
    assert coco["images"][0] | {"file_name": None} == {
        "id": 1,
        "file_name": None,
        "height": 32,
        "width": 32,
    }
    assert [a["id"] for a in coco["annotations"]] == list(
        range(1, len(coco["annotations"]) + 1)
    )
    masks = np.concatenate([target["masks"] for target in y])
    boxes = np.concatenate([target["boxes"] for target in y])
    for annotation, mask, box in zip(coco["annotations"], masks, boxes, strict=True):
        segmentation = annotation["segmentation"]
        assert isinstance(segmentation["counts"], str)
        assert np.array_equal(mask_utils.decode(segmentation), mask)
        assert annotation["area"] == mask.sum() == mask_utils.area(segmentation)
        # COCO's bbox is x, y, width, height; pycocotools agrees on the edges
        assert annotation["bbox"] == [box[0], box[1], box[2] - box[0], box[3] - box[1]]
        assert np.array_equal(annotation["bbox"], mask_utils.toBbox(segmentation))
        assert annotation["iscrowd"] == 0


def test_categories_are_the_labels_or_the_named_classes(shapes):
    X, y = shapes
    only_circles = [
        {"masks": t["masks"][t["labels"] == 1], "labels": t["labels"][t["labels"] == 1]}
        for t in y
    ]
    assert to_coco(X, only_circles)["categories"] == [{"id": 1, "name": "1"}]
    assert to_coco(X, only_circles, class_names=SHAPE_NAMES)["categories"] == [
        {"id": label, "name": name} for label, name in SHAPE_NAMES.items()
    ]


def test_string_labels_get_sorted_ids_and_come_back_by_name():
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[1, 1, 1] = masks[2, 2, 2] = True
    y = [{"masks": masks, "labels": ["dog", "cat", "dog"]}]
    coco = to_coco(np.zeros((1, 4, 4, 3)), y)
    assert coco["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert [a["category_id"] for a in coco["annotations"]] == [2, 1, 2]
    _, y_back = from_coco(coco, labels="name")
    assert y_back[0]["labels"].tolist() == ["dog", "cat", "dog"]
    assert np.array_equal(y_back[0]["masks"], masks)


def test_name_labels_from_coco_go_back_to_coco(shapes):
    # from_coco's labels="name" gives object arrays; to_coco takes them
    X, y = shapes
    _, named = from_coco(to_coco(X, y, class_names=SHAPE_NAMES), labels="name")
    coco = to_coco(X, named)
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    _, again = from_coco(coco, labels="name")
    _assert_same_targets(again, named)


def test_labels_that_do_not_sort_are_numbered_in_order_of_appearance():
    masks = np.ones((2, 3, 3), dtype=bool)
    coco = to_coco([np.zeros((3, 3))], [{"masks": masks, "labels": [2, "a"]}])
    assert coco["categories"] == [{"id": 1, "name": "2"}, {"id": 2, "name": "a"}]


def test_images_without_instances():
    y = [{"masks": np.zeros((0, 4, 5), dtype=bool), "labels": []}]
    coco = to_coco([np.zeros((4, 5, 3))], y)
    assert coco["annotations"] == []
    _, (target,) = from_coco(coco)
    assert target["masks"].shape == (0, 4, 5)
    assert target["labels"].shape == (0,)
    assert target["boxes"].shape == (0, 4)
    _, (target,) = from_coco(coco | {"categories": []}, labels="name")
    assert target["labels"].shape == (0,)


def test_polygons_are_rasterised_on_pixel_edges():
    # the rectangle x in [1, 4], y in [1, 3] covers columns 1..3 and rows 1..2
    # and a second part, a triangle, joins the same instance
    rectangle = [1, 1, 4, 1, 4, 3, 1, 3]
    _, (target,) = from_coco(_one_image([[rectangle]]))
    expected = np.zeros((5, 6), dtype=bool)
    expected[1:3, 1:4] = True
    assert np.array_equal(target["masks"], expected[None])
    assert target["boxes"].tolist() == [[1, 1, 4, 3]]
    assert target["labels"].tolist() == [1]

    two_parts = [rectangle, [4, 3, 6, 3, 6, 5, 4, 5]]
    _, (target,) = from_coco(_one_image([two_parts]))
    expected[3:5, 4:6] = True
    assert np.array_equal(target["masks"], expected[None])
    assert target["boxes"].tolist() == [[1, 1, 6, 5]]


def test_degenerate_polygons_are_empty_masks():
    rectangle = [1, 1, 4, 1, 4, 3, 1, 3]
    _, (target,) = from_coco(_one_image([[], [[1, 1, 3, 3]], [rectangle, [2, 2]]]))
    assert target["masks"].sum(axis=(1, 2)).tolist() == [0, 0, 6]
    assert target["boxes"][:2].tolist() == [[0, 0, 0, 0]] * 2


def test_all_three_segmentation_forms_decode_to_the_same_mask():
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 1:4] = True
    # uncompressed RLE: run lengths down the columns, starting with zeros
    runs = [6, 2, 3, 2, 3, 2, 12]
    compressed = mask_utils.encode(np.asfortranarray(mask[..., None], np.uint8))[0]
    forms = [
        [[1, 1, 4, 1, 4, 3, 1, 3]],
        {"size": [5, 6], "counts": runs},
        compressed,  # counts as bytes
        {"size": [5, 6], "counts": compressed["counts"].decode()},
    ]
    _, (target,) = from_coco(_one_image(forms))
    assert np.array_equal(target["masks"], np.stack([mask] * 4))


def test_crowd_annotations_are_left_out():
    coco = _one_image([[[1, 1, 4, 1, 4, 3, 1, 3]]], iscrowd=1)
    _, (target,) = from_coco(coco)
    assert target["masks"].shape == (0, 5, 6)


def test_reads_a_json_file_and_the_images(shapes, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    X, y = shapes
    coco = to_coco(X, y)
    for image, entry in zip(X, coco["images"], strict=True):
        image_module.fromarray(image).save(tmp_path / entry["file_name"])
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    for where in (path, str(path)):
        X_back, y_back = from_coco(where, image_dir=tmp_path)
        assert X_back.dtype == np.uint8
        assert np.array_equal(X_back, X)
        _assert_same_targets(y_back, y)


def test_reading_images_without_pillow_says_how_to_install(
    shapes, tmp_path, monkeypatch
):
    X, y = shapes
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        from_coco(to_coco(X, y), image_dir=tmp_path)


def test_images_of_different_sizes_come_back_as_a_list(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    images = [np.full((4, 5, 3), 9, np.uint8), np.full((6, 3, 3), 200, np.uint8)]
    y = [
        {"masks": np.zeros((0, *image.shape[:2]), bool), "labels": []}
        for image in images
    ]
    coco = to_coco(images, y)
    for image, entry in zip(images, coco["images"], strict=True):
        image_module.fromarray(image).save(tmp_path / entry["file_name"])
    X_back, _ = from_coco(coco, image_dir=tmp_path)
    assert isinstance(X_back, list)
    assert all(np.array_equal(a, b) for a, b in zip(X_back, images, strict=True))


def test_an_image_of_the_wrong_size_raises(shapes, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    X, y = shapes
    coco = to_coco(X[:1], y[:1])
    image_module.fromarray(X[0, :20]).save(tmp_path / coco["images"][0]["file_name"])
    with pytest.raises(ValueError, match="pixels"):
        from_coco(coco, image_dir=tmp_path)


def test_bad_inputs_raise(shapes):
    X, y = shapes
    with pytest.raises(ValueError, match="same number"):
        to_coco(X[:3], y)
    with pytest.raises(ValueError, match="pixels"):
        to_coco(X[:, :16], y)
    with pytest.raises(ValueError, match="no name"):
        to_coco(X, y, class_names={1: "circle"})
    with pytest.raises(TypeError, match="boolean"):
        to_coco(X[:1], [{"masks": np.zeros((1, 32, 32)), "labels": [1]}])
    with pytest.raises(ValueError, match="labels"):
        to_coco(X[:1], [{"masks": np.zeros((1, 32, 32), bool), "labels": [1, 2]}])
    with pytest.raises(ValueError, match="lacks"):
        to_coco(X[:1], [{"masks": np.zeros((1, 32, 32), bool)}])
    with pytest.raises(ValueError, match="labels must be one of"):
        from_coco(to_coco(X, y), labels="names")
    with pytest.raises(ValueError, match="lacks"):
        from_coco({"images": []})
    with pytest.raises(TypeError, match="dict or the path"):
        from_coco([])
    with pytest.raises(ValueError, match="size"):
        from_coco(_one_image([{"size": [3, 3], "counts": [9]}]))


def test_without_pycocotools_the_error_says_how_to_install(shapes, monkeypatch):
    X, y = shapes
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    with pytest.raises(ImportError, match=r"skpapers\[data\]"):
        to_coco(X, y)
    with pytest.raises(ImportError, match="pip install pycocotools"):
        from_coco(_one_image([[[1, 1, 4, 1, 4, 3, 1, 3]]]))
