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
    """Labels as a 1-d array; tuples and other sequences stay whole, as objects."""
    try:
        array = np.asarray(labels)
    except ValueError:  # ragged: tuples of different lengths, or beside strings
        array = None
    if array is None or (array.ndim > 1 and not isinstance(labels, np.ndarray)):
        array = np.empty(len(labels), dtype=object)
        for i, label in enumerate(labels):
            array[i] = label
    return array


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
        ``"masks"`` as a bool ndarray, ``"labels"`` as an ndarray and, with
        ``scores=True``, ``"scores"`` as a float64 ndarray.
    """
    if isinstance(y, dict):
        raise TypeError(f"{name} must be a list of dicts, one per image, not a dict.")
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
            entry[key] = values
        checked.append(entry)
    return checked
