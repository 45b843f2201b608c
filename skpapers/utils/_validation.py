"""Input checks shared by the estimators, the metrics and COCO I/O.

Each check raises a ``ValueError`` or ``TypeError`` that says what was wrong
and what is allowed; the estimators' :func:`~skpapers.utils._errors.names_estimator`
adds their name. Also home of the instance-target form that
:func:`~skpapers.datasets.make_shapes` returns, Mask R-CNN trains on and the
COCO and metric helpers read: one dict per image with ``"masks"`` (bool
``(k, H, W)``), ``"labels"`` (``(k,)``) and ``"boxes"`` (float32 ``(k, 4)``).

Only numpy is imported at module level, so that the light parts of skpapers
(NMF, the data sets) load no torch through it.
"""

import contextlib
import math
import numbers
from collections.abc import Mapping, Set

import numpy as np

# -- instance targets ---------------------------------------------------------


def _masks_to_boxes(masks):
    """Tight boxes ``(x1, y1, x2, y2)`` of masks, with ``x2``, ``y2`` exclusive.

    Parameters
    ----------
    masks : ndarray of shape (k, H, W), bool

    Returns
    -------
    boxes : ndarray of shape (k, 4), float32
        ``x1`` is the first column of the mask and ``x2`` its last column
        plus one (likewise rows for ``y``), so that ``x2 - x1`` is the width
        in pixels: the pixel edges, COCO's convention. An empty mask gets
        ``(0, 0, 0, 0)``.
    """
    k, height, width = masks.shape
    rows = masks.any(axis=2)
    columns = masks.any(axis=1)
    boxes = np.stack(
        [
            columns.argmax(axis=1),
            rows.argmax(axis=1),
            width - columns[:, ::-1].argmax(axis=1),
            height - rows[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    ).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0
    return boxes.reshape(k, 4)


def _check_masks(masks, name):
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n_instances, height, width); got shape "
            f"{masks.shape}."
        )
    if masks.dtype == bool or masks.size == 0:  # np.zeros((0, H, W)) is float
        return masks.astype(bool, copy=False)
    if not np.issubdtype(masks.dtype, np.integer):
        raise TypeError(
            f"{name} must be boolean (or 0/1 integers), not {masks.dtype}; "
            "threshold probability masks first, e.g. masks > 0.5."
        )
    if masks.size and (masks.min() < 0 or masks.max() > 1):
        raise ValueError(f"{name} must hold only 0 and 1.")
    return masks.astype(bool)


def _as_labels(labels):
    """Labels as a 1-d array; tuples and other sequences stay whole, as objects,
    and numbers among strings stay numbers (numpy would make 3 the string "3")."""
    try:
        array = np.asarray(labels)
    except ValueError:  # ragged: tuples of different lengths, or beside strings
        array = None
    given = not isinstance(labels, np.ndarray)
    if array is not None and given and array.dtype.kind in "US":
        strings = (str, bytes, np.str_, np.bytes_)
        if not all(isinstance(label, strings) for label in labels):
            array = None
    if array is None or (array.ndim > 1 and given):
        array = np.empty(len(labels), dtype=object)
        for i, label in enumerate(labels):
            array[i] = label
    return array


def _check_no_nan_label(labels, name):
    """Refuse a NaN label: it equals no label, itself included, so that it
    can be neither a class nor matched to one."""
    if labels.dtype.kind == "f":
        nan = np.flatnonzero(np.isnan(labels))
    elif labels.dtype == object:
        nan = [
            j
            for j, label in enumerate(labels.tolist())
            if isinstance(label, numbers.Real) and label != label
        ]
    else:
        return
    if len(nan):
        raise ValueError(
            f"{name}[{int(nan[0])}] is NaN, which is not a class label: give each "
            "instance a label, or drop the instance."
        )


def _check_instance_targets(y, name="y", *, scores=False):
    """Validate per-image instance dicts; return them as arrays.

    Parameters
    ----------
    y : list of dict
        One dict per image with ``"masks"`` (``(k, H, W)``, bool or 0/1) and
        ``"labels"`` (``(k,)``, hashables); with ``scores=True`` also
        ``"scores"`` (``(k,)``, floats). Other keys are ignored.
    name : str
        What ``y`` is called in error messages.
    scores : bool
        Whether ``"scores"`` are required.

    Returns
    -------
    list of dict
        ``"masks"`` as a bool ndarray, ``"labels"`` as an ndarray (no NaN)
        and, with ``scores=True``, ``"scores"`` as a float64 ndarray.
    """
    if isinstance(y, dict):
        raise TypeError(f"{name} must be a list of dicts, one per image, not a dict.")
    if isinstance(y, str) or not hasattr(y, "__iter__"):
        raise TypeError(
            f"{name} must be a list of dicts, one per image; got {type(y).__name__}."
        )
    checked = []
    needed = ("masks", "labels", "scores") if scores else ("masks", "labels")
    for i, target in enumerate(y):
        where = f"{name}[{i}]"
        if not hasattr(target, "keys"):
            raise TypeError(
                f"{where} must be a dict with keys {needed}; got "
                f"{type(target).__name__}."
            )
        missing = [key for key in needed if key not in target]
        if missing:
            raise ValueError(f"{where} lacks the key(s) {missing}.")
        masks = _check_masks(target["masks"], f"{where}['masks']")
        entry = {"masks": masks}
        for key in needed[1:]:
            values = (
                np.asarray(target[key], dtype=float)
                if key == "scores"
                else _as_labels(target[key])
            )
            if values.shape != masks.shape[:1]:
                raise ValueError(
                    f"{where}['{key}'] must have shape ({masks.shape[0]},), one "
                    f"per mask; got shape {values.shape}."
                )
            if key == "labels":
                _check_no_nan_label(values, f"{where}['labels']")
            entry[key] = values
        checked.append(entry)
    return checked


def _label_kind(label):
    """What kind of class label ``label`` is, for refusing a mix of kinds."""
    if isinstance(label, str | bytes | np.str_ | np.bytes_):
        return "string"
    if isinstance(label, numbers.Number):  # bools and numpy numbers too
        return "number"
    return type(label).__name__


def _check_class_labels(targets, name="y"):
    """The classes of checked instance targets, sorted, in the labels' dtype.

    Parameters
    ----------
    targets : list of dict
        From :func:`_check_instance_targets`.
    name : str
        What the targets are called in error messages.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        The distinct labels, sorted where they sort, with the dtype of the
        images' label arrays (an empty ``labels: []`` is float to numpy and
        is left out, so that int labels stay int).

    Raises
    ------
    ValueError
        If a label is NaN (it equals no label, itself included), or if the
        labels mix kinds, such as strings in one image and ints in another
        (numpy would turn the ints into strings, which no longer match).
    """
    arrays, first = [], None
    for i, target in enumerate(targets):
        labels = target["labels"]
        if not labels.size:
            continue
        _check_no_nan_label(labels, f"{name}[{i}]['labels']")
        for label in labels.tolist():
            kind = _label_kind(label)
            if first is None:
                first = (kind, i, label)
            elif kind != first[0]:
                raise ValueError(
                    f"{name} mixes label types: {name}[{first[1]}]['labels'] holds "
                    f"{first[0]} labels (e.g. {first[2]!r}) and {name}[{i}]['labels'] "
                    f"{kind} labels (e.g. {label!r}); all labels must be of one "
                    "type, e.g. all strings or all ints."
                )
        arrays.append(labels)
    if not arrays:
        return np.empty(0, dtype=object)
    labels = np.concatenate(arrays)
    unique = list(dict.fromkeys(labels.tolist()))
    with contextlib.suppress(TypeError):  # unorderable labels keep their order
        unique = sorted(unique)
    classes = np.empty(len(unique), dtype=labels.dtype)
    for k, label in enumerate(unique):  # one by one: a tuple label stays whole
        classes[k] = label
    return classes


def _check_boxes(boxes, n_masks, name):
    """Boxes as a float32 ``(n_masks, 4)`` array, or a clear error.

    Parameters
    ----------
    boxes : array-like of shape (n_masks, 4)
        ``x1, y1, x2, y2`` per mask; ``[]`` for no mask and a flat 4 for one
        are taken too.
    n_masks : int
        The masks they belong to.
    name : str
        What the boxes are called in error messages.

    Returns
    -------
    ndarray of shape (n_masks, 4), float32
    """
    try:
        array = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be numbers, an array of shape ({n_masks}, 4): one x1, "
            "y1, x2, y2 box per mask."
        ) from None
    if array.shape in {(0,), (4,)} and array.size == 4 * n_masks:
        array = array.reshape(n_masks, 4)
    if array.shape != (n_masks, 4):
        raise ValueError(
            f"{name} must have shape ({n_masks}, 4), one x1, y1, x2, y2 box per "
            f"mask; got shape {array.shape}."
        )
    return array


def _check_boxes_frame_masks(boxes, masks, name):
    """Refuse a box that holds none of its mask's pixels.

    Such a box is a mistake of coordinates (COCO's ``x, y, width, height``
    given as ``x1, y1, x2, y2``, boxes of another image size), not an
    instance: torchvision cuts the mask's training target out of the mask by
    the proposals that match the box, so that it would learn an empty mask,
    without a word. torchvision itself refuses degenerate boxes with a
    ``ValueError``; this is refused the same way.

    Parameters
    ----------
    boxes : ndarray of shape (k, 4)
        ``x1, y1, x2, y2`` in pixel edges, each non-degenerate.
    masks : ndarray of shape (k, H, W), bool
        Each mask non-empty.
    name : str
        What the boxes are called in error messages, e.g. ``"y[3]['boxes']"``.
    """
    height, width = masks.shape[1:]
    for j, (box, mask) in enumerate(zip(boxes, masks, strict=True)):
        x1, y1, x2, y2 = box.tolist()
        # pixel (r, c) covers [c, c + 1) x [r, r + 1)
        c1, r1 = max(math.floor(x1), 0), max(math.floor(y1), 0)
        c2, r2 = min(math.ceil(x2), width), min(math.ceil(y2), height)
        if c1 < c2 and r1 < r2 and mask[r1:r2, c1:c2].any():
            continue
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            problem = f"lies wholly outside its {height} x {width} image"
        else:
            problem = "holds none of the pixels of its mask"
        raise ValueError(
            f"{name}[{j}] = {[x1, y1, x2, y2]} {problem}: each box is x1, y1, x2, "
            "y2 in pixels of its image and must frame its mask (COCO's x, y, "
            "width, height must be converted; leave 'boxes' out to take the "
            "masks' own boxes)."
        )


# -- images -------------------------------------------------------------------


def _check_resizable(images, image_size, name="X"):
    """Refuse an image too thin to keep a row (or column) when resized.

    The network resizes each image so that its longer side is ``image_size``
    (torchvision's ``min_size = max_size``); the shorter side then becomes
    ``floor(short * image_size / long)`` pixels, and at 0 torch fails deep in
    the resize ("output (H: 0 ...)").

    Parameters
    ----------
    images : list of ndarray of shape (H, W, 3)
    image_size : int
        The side the network resizes the images to.
    name : str
        What the images are called in error messages.
    """
    for i, image in enumerate(images):
        short, long = sorted(image.shape[:2])
        if short * image_size < long:
            height, width = image.shape[:2]
            raise ValueError(
                f"{name}[{i}] is {height} x {width} pixels: resized for the network "
                f"to image_size={image_size} on its longer side, its shorter side "
                f"would be {short * image_size / long:.2g} pixels, less than one. "
                f"An image's longer side may be at most {image_size} times its "
                "shorter: pad or split this one, or use an image_size of at "
                f"least {-(-long // short)}."
            )


# -- sequences ----------------------------------------------------------------


def _check_ordered(values, name):
    """Refuse a set or a mapping where an ordered collection is needed.

    A set's order is arbitrary (it differs between processes for strings), so
    that which input would pair with which target would be too; a dict
    iterates over its keys alone.

    Parameters
    ----------
    values : object
        What was given.
    name : str
        What it is called in error messages.
    """
    if isinstance(values, Mapping):
        raise TypeError(
            f"{name} is a {type(values).__name__}, which iterates over its keys "
            f"alone; {name} must be an ordered collection (a list, tuple, array or "
            "pandas Series). For a dict of pairs, pass list(d) and list(d.values())."
        )
    if isinstance(values, Set):
        raise TypeError(
            f"{name} is a {type(values).__name__}, whose order is arbitrary (it "
            "differs between processes), so that the order of the results and "
            f"the pairing with the other argument would be too; {name} must be an "
            "ordered collection (a list, tuple, array or pandas Series), e.g. "
            "sorted(...)."
        )


def _check_reference_tokens(sequences, name="y"):
    """Refuse references with no token at all, where a score divides by their
    total length.

    Parameters
    ----------
    sequences : list of sequences
    name : str
        What they are called in error messages.
    """
    if not any(len(sequence) for sequence in sequences):
        raise ValueError(
            f"{name} holds only empty sequences: the edit error rate divides by "
            "the references' total length, here 0, so no score is defined. At "
            f"least one sequence of {name} must hold a token."
        )


# -- skorch -------------------------------------------------------------------


def _check_callbacks(callbacks, name="callbacks"):
    """Refuse what skorch cannot use as a callback, before any work.

    skorch takes, in its ``callbacks`` list, callback instances, callback
    classes (which it instantiates) and ``(name, callback)`` pairs, where a
    ``None`` callback switches off the default callback of that name. Anything
    else fails inside skorch with an ``AttributeError`` that names no
    parameter.

    Parameters
    ----------
    callbacks : list or None
        The estimator's ``callbacks`` parameter.
    name : str
        What it is called in error messages.
    """
    if callbacks is None:
        return
    from skorch.callbacks import Callback  # here: only torch estimators need it

    allowed = (
        f"each element of {name} must be a skorch callback (an instance or "
        "subclass of skorch.callbacks.Callback) or a (name, callback) pair, "
        "e.g. ('lr', LRScheduler(...))"
    )
    for i, item in enumerate(callbacks):
        callback = item
        if isinstance(item, tuple | list):
            if len(item) != 2 or not isinstance(item[0], str):
                raise TypeError(
                    f"{name}[{i}] = {item!r} is not a (name, callback) pair with a "
                    f"str name; {allowed}."
                )
            callback = item[1]
            if callback is None:  # skorch: the default callback of that name off
                continue
        is_class = isinstance(callback, type) and issubclass(callback, Callback)
        if not (is_class or isinstance(callback, Callback)):
            raise TypeError(
                f"{name}[{i}] is {callback!r}, of type {type(callback).__name__}, "
                f"not a skorch callback; {allowed}."
            )
