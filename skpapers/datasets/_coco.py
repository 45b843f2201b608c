"""Instance targets to and from COCO's JSON format, on pycocotools."""

import contextlib
import importlib
import json
import numbers
import os
import warnings
from collections import defaultdict

import numpy as np

from skpapers.utils._validation import _check_instance_targets, _masks_to_boxes

PYCOCOTOOLS_HINT = (
    'this needs pycocotools: pip install "skpapers[data]" (or pip install pycocotools)'
)
_LABEL_FORMS = ("id", "name")


def _pycocotools(module):
    """Import ``pycocotools.<module>``, or say how to install it."""
    try:
        return importlib.import_module(f"pycocotools.{module}")
    except ImportError as error:
        raise ImportError(PYCOCOTOOLS_HINT) from error


def _encode_masks(masks):
    """COCO's compressed RLEs, counts as str (JSON-ready), of ``(k, H, W)`` masks."""
    if len(masks) == 0:
        return []
    mask_utils = _pycocotools("mask")
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0), np.uint8))
    return [{"size": rle["size"], "counts": rle["counts"].decode()} for rle in rles]


def _category_ids(labels, class_names=None):
    """Map labels to COCO category ids; return the map and the categories.

    Labels that are all integers >= 1 are their own ids; otherwise the
    labels, sorted (or in order of first appearance when they do not sort),
    get ids 1, 2, .... A category's name is ``class_names[label]``, or the
    label as a string.
    """
    labels = list(dict.fromkeys(labels))
    if class_names is not None:
        missing = [label for label in labels if label not in class_names]
        if missing:
            raise ValueError(f"class_names has no name for the label(s) {missing}.")
        labels = list(dict.fromkeys([*labels, *class_names]))
    with contextlib.suppress(TypeError):  # unorderable: order of appearance
        labels = sorted(labels)
    own_ids = all(
        isinstance(label, numbers.Integral)
        and not isinstance(label, bool)
        and label >= 1
        for label in labels
    )
    ids = {
        label: int(label) if own_ids else i for i, label in enumerate(labels, start=1)
    }
    categories = [
        {
            "id": ids[label],
            "name": str(label if class_names is None else class_names[label]),
        }
        for label in labels
    ]
    return ids, categories


def _annotations(targets, category_ids, *, scores=False):
    """COCO annotation dicts of checked instance targets, images numbered from 1."""
    annotations = []
    for image_id, target in enumerate(targets, start=1):
        masks = target["masks"]
        boxes = _masks_to_boxes(masks)
        areas = masks.sum(axis=(1, 2))
        labels = target["labels"].tolist()
        for i, rle in enumerate(_encode_masks(masks)):
            x1, y1, x2, y2 = boxes[i].tolist()
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_ids[labels[i]],
                "segmentation": rle,
                "area": int(areas[i]),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": 0,
            }
            if scores:
                annotation["score"] = float(target["scores"][i])
            annotations.append(annotation)
    return annotations


def to_coco(X, y, *, class_names=None):
    """Write images' instance masks as a COCO-format dataset dict.

    Masks become compressed RLEs (``pycocotools.mask.encode``) with their
    ``counts`` as a string, so that the dict goes through ``json.dumps``
    unchanged.

    Parameters
    ----------
    X : array-like of shape (n_samples, H, W, ...) or list of images
        The images; only their heights and widths are written.
    y : list of dict
        One dict per image with ``"masks"`` (bool ``(k, H, W)``) and
        ``"labels"`` (``(k,)``, hashables), as :func:`make_shapes` returns;
        other keys (``"boxes"``, ``"scores"``) are ignored.
    class_names : dict or None, default=None
        Category name of each label, e.g. ``SHAPE_NAMES`` for
        :func:`make_shapes`. Every label must have one; labels with a name
        but no instance still become categories. None names each category
        by its label as a string.

    Returns
    -------
    coco : dict
        With ``"info"``, ``"images"`` (ids 1 to ``n_samples`` in the order of
        ``X``, ``file_name`` ``"000001.png"`` and so on, ``height``,
        ``width``), ``"annotations"`` (ids from 1, in the order of the
        instances; ``segmentation`` an RLE, ``bbox`` the tight box of the mask
        as ``[x, y, width, height]`` in pixel edges, ``area`` the mask's pixel
        count, ``iscrowd`` 0) and ``"categories"``. Labels that are all
        integers >= 1 are their own category ids; other labels are numbered
        1, 2, ... in sorted order.

    See Also
    --------
    from_coco : The reverse.

    Examples
    --------
    >>> import json
    >>> from skpapers.datasets import SHAPE_NAMES, make_shapes, to_coco
    >>> X, y = make_shapes(3, image_size=32, random_state=0)
    >>> coco = to_coco(X, y, class_names=SHAPE_NAMES)
    >>> coco["categories"]
    [{'id': 1, 'name': 'circle'}, {'id': 2, 'name': 'square'}, {'id': 3, 'name': 'triangle'}]
    >>> len(coco["annotations"]) == sum(len(target["labels"]) for target in y)
    True
    >>> text = json.dumps(coco)
    """  # noqa: E501
    targets = _check_instance_targets(y, "y")
    if len(X) != len(targets):
        raise ValueError(
            f"X holds {len(X)} images and y {len(targets)} targets; they must "
            "hold the same number."
        )
    images = []
    for i, (image, target) in enumerate(zip(X, targets, strict=True), start=1):
        height, width = np.shape(image)[:2]
        if target["masks"].shape[1:] != (height, width):
            raise ValueError(
                f"y[{i - 1}]['masks'] are {target['masks'].shape[1:]} pixels but "
                f"X[{i - 1}] is {(height, width)}."
            )
        images.append(
            {"id": i, "file_name": f"{i:06d}.png", "height": height, "width": width}
        )
    category_ids, categories = _category_ids(
        (label for target in targets for label in target["labels"].tolist()),
        class_names,
    )
    return {
        "info": {"description": "written by skpapers.datasets.to_coco"},
        "images": images,
        "annotations": _annotations(targets, category_ids),
        "categories": categories,
    }


def _decode_segmentations(segmentations, height, width):
    """Bool masks ``(k, H, W)`` of polygon, RLE or uncompressed RLE segmentations."""
    if not segmentations:
        return np.zeros((0, height, width), dtype=bool)
    mask_utils = _pycocotools("mask")
    rles = []
    for segmentation in segmentations:
        if isinstance(segmentation, list):  # polygons, one object in parts
            # fewer than 3 points enclose nothing (and 2 would read as a box)
            parts = [part for part in segmentation if len(part) >= 6]
            rle = (
                mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
                if parts
                else _encode_masks(np.zeros((1, height, width), dtype=bool))[0]
            )
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        if list(rle["size"]) != [height, width]:
            raise ValueError(
                f"a segmentation of size {rle['size']} lies on an image of size "
                f"{[height, width]}."
            )
        rles.append(rle)
    with warnings.catch_warnings():
        # pycocotools' own use of numpy's __array__ protocol, not the caller's
        warnings.filterwarnings(
            "ignore", "__array__ implementation", category=DeprecationWarning
        )
        decoded = mask_utils.decode(rles)
    return np.ascontiguousarray(decoded.transpose(2, 0, 1), bool)


def _read_image(path):
    """An RGB uint8 image from a file, with Pillow."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "reading images needs Pillow: pip install pillow (matplotlib brings it)"
        ) from error
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def from_coco(coco, *, image_dir=None, labels="id"):
    """Read instance masks (and images) from a COCO-format dataset.

    Parameters
    ----------
    coco : dict or path-like
        A COCO dataset dict, or the path of its JSON file. Segmentations may
        be polygons (``[x1, y1, x2, y2, ...]`` in pixel-edge coordinates,
        several parts making one mask; parts of fewer than 3 points are
        skipped), compressed RLEs (``counts`` a str or bytes) or uncompressed
        RLEs (``counts`` a list).
    image_dir : path-like or None, default=None
        Folder holding the images' ``file_name``, read with Pillow (which
        matplotlib installs too). None reads no images.
    labels : {"id", "name"}, default="id"
        What the labels are: the category ids (int64) or the category names
        (an object array of str).

    Returns
    -------
    X : ndarray of shape (n_samples, H, W, 3), list of ndarray or None
        The RGB uint8 images in the order of ``coco["images"]``: one array
        when they share a size, else a list; None without ``image_dir``.
    y : list of dict
        One dict per image, in the order of ``coco["images"]``, with
        ``"masks"`` (bool ``(k, H, W)``), ``"labels"`` (``(k,)``) and
        ``"boxes"`` (float32 ``(k, 4)``, ``x1, y1, x2, y2`` with ``x2``,
        ``y2`` exclusive, the tight boxes of the decoded masks, not COCO's
        ``bbox``), its annotations in file order. Crowd annotations
        (``iscrowd`` 1) are left out.

    See Also
    --------
    to_coco : The reverse.

    Examples
    --------
    >>> import numpy as np
    >>> from skpapers.datasets import from_coco
    >>> coco = {
    ...     "images": [{"id": 7, "file_name": "a.png", "height": 4, "width": 6}],
    ...     "annotations": [
    ...         {
    ...             "id": 1,
    ...             "image_id": 7,
    ...             "category_id": 3,
    ...             "iscrowd": 0,
    ...             "segmentation": [[1, 1, 5, 1, 5, 3, 1, 3]],
    ...         },
    ...     ],
    ...     "categories": [{"id": 3, "name": "box"}],
    ... }
    >>> X, y = from_coco(coco, labels="name")
    >>> y[0]["labels"], y[0]["boxes"]
    (array(['box'], dtype=object), array([[1., 1., 5., 3.]], dtype=float32))
    >>> y[0]["masks"][0].astype(int)
    array([[0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]])
    """
    if labels not in _LABEL_FORMS:
        raise ValueError(f"labels must be one of {_LABEL_FORMS}, got {labels!r}.")
    if isinstance(coco, (str, os.PathLike)):
        with open(coco, encoding="utf-8") as file:
            coco = json.load(file)
    if not isinstance(coco, dict):
        raise TypeError(
            "coco must be a dict or the path of a JSON file, not "
            f"{type(coco).__name__}."
        )
    missing = [key for key in ("images", "annotations") if key not in coco]
    if labels == "name" and "categories" not in coco:
        missing.append("categories")
    if missing:
        raise ValueError(f"coco lacks the key(s) {missing}.")
    names = {
        category["id"]: category["name"] for category in coco.get("categories", ())
    }
    by_image = defaultdict(list)
    for annotation in coco["annotations"]:
        if not annotation.get("iscrowd", 0):
            by_image[annotation["image_id"]].append(annotation)

    y = []
    for image in coco["images"]:
        annotations = by_image[image["id"]]
        masks = _decode_segmentations(
            [annotation["segmentation"] for annotation in annotations],
            image["height"],
            image["width"],
        )
        category_ids = [annotation["category_id"] for annotation in annotations]
        if labels == "id":
            image_labels = np.array(category_ids, dtype=np.int64)
        else:
            image_labels = np.empty(len(category_ids), dtype=object)
            image_labels[:] = [names[category_id] for category_id in category_ids]
        y.append(
            {"masks": masks, "labels": image_labels, "boxes": _masks_to_boxes(masks)}
        )
    if image_dir is None:
        return None, y
    X = []
    for image in coco["images"]:
        pixels = _read_image(os.path.join(image_dir, image["file_name"]))
        if pixels.shape[:2] != (image["height"], image["width"]):
            raise ValueError(
                f"{image['file_name']} is {pixels.shape[:2]} pixels but coco says "
                f"{(image['height'], image['width'])}."
            )
        X.append(pixels)
    if len({pixels.shape for pixels in X}) == 1:
        X = np.stack(X)
    return X, y
