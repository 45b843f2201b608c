"""COCO mask average precision, on pycocotools' COCOeval."""

import io
import numbers
import warnings
from contextlib import redirect_stdout

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from skpapers.datasets._coco import _annotations, _pycocotools
from skpapers.utils._validation import _check_instance_targets

# COCO's IoU thresholds, 0.5 to 0.95 in steps of 0.05, as COCOeval makes them.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_MAX_DETECTIONS = 100


def _coco_dataset(targets, category_ids, categories, *, scores=False):
    """A pycocotools ``COCO`` object of checked instance targets."""
    coco = _pycocotools("coco").COCO()
    coco.dataset = {
        "images": [
            {
                "id": image_id,
                "height": target["masks"].shape[1],
                "width": target["masks"].shape[2],
            }
            for image_id, target in enumerate(targets, start=1)
        ],
        "annotations": _annotations(targets, category_ids, scores=scores),
        "categories": categories,
    }
    coco.createIndex()
    return coco


def _iou_index(iou_threshold):
    if iou_threshold is None:
        return slice(None)
    if isinstance(iou_threshold, numbers.Real) and not isinstance(iou_threshold, bool):
        matches = np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, iou_threshold))
        if matches.size:
            return matches[0]
    raise ValueError(
        "iou_threshold must be None (the mean over COCO's thresholds) or one of "
        f"COCO's thresholds {np.round(COCO_IOU_THRESHOLDS, 2).tolist()}; got "
        f"{iou_threshold!r}."
    )


def mask_average_precision(y_true, y_pred, *, iou_threshold=None):
    """COCO mask average precision, computed by pycocotools' ``COCOeval``.

    Runs ``COCOeval(iouType="segm")``: for each category and IoU threshold,
    the predictions (at most the 100 highest-scoring per image) are matched
    greedily, highest score first, to unmatched ground truth of their
    category with mask IoU at least the threshold; precision is interpolated
    at 101 recall points; the categories' APs are averaged. Categories with
    no ground truth are left out of the average (their predictions are not
    counted), as in COCO.

    Parameters
    ----------
    y_true : list of dict
        One dict per image with ``"masks"`` (bool ``(k, H, W)``) and
        ``"labels"`` (``(k,)``, any hashables), as :func:`make_shapes`
        returns. An image may have no instances (``k = 0``).
    y_pred : list of dict
        One dict per image, in the same order and of the same sizes, with
        ``"masks"`` (bool ``(m, H, W)``; threshold soft masks first),
        ``"labels"`` (``(m,)``) and ``"scores"`` (``(m,)``, higher is more
        confident).
    iou_threshold : float or None, default=None
        None gives AP@[.5:.95], the mean over COCO's ten IoU thresholds
        (COCO's headline AP, ``COCOeval.stats[0]``); one of those thresholds,
        0.5, 0.55, ..., 0.95, gives the AP at it (0.5 and 0.75 are COCO's
        AP50 and AP75).

    Returns
    -------
    float
        In [0, 1]; COCO's precision is ``tp / (tp + fp + 2.2e-16)``, so a
        perfect score is ``1 - 2.2e-16``. NaN, with an
        ``UndefinedMetricWarning``, when ``y_true`` has no instance at all
        (COCOeval reports -1 there). No prediction at all scores 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skpapers.metrics import mask_average_precision
    >>> masks = np.zeros((1, 8, 8), dtype=bool)
    >>> masks[0, 2:6, 2:6] = True
    >>> y_true = [{"masks": masks, "labels": ["cat"]}]
    >>> shifted = np.roll(masks, 1, axis=2)  # IoU 12 / 20 = 0.6
    >>> y_pred = [{"masks": shifted, "labels": ["cat"], "scores": [0.9]}]
    >>> round(mask_average_precision(y_true, y_pred, iou_threshold=0.5), 6)
    1.0
    >>> mask_average_precision(y_true, y_pred, iou_threshold=0.75)
    0.0
    >>> round(mask_average_precision(y_true, y_pred), 2)  # 3 of 10 thresholds
    0.3
    """
    iou_index = _iou_index(iou_threshold)
    true = _check_instance_targets(y_true, "y_true")
    pred = _check_instance_targets(y_pred, "y_pred", scores=True)
    if len(true) != len(pred):
        raise ValueError(
            f"y_true and y_pred hold {len(true)} and {len(pred)} images; they "
            "must hold the same number."
        )
    for i, (t, p) in enumerate(zip(true, pred, strict=True)):
        if t["masks"].shape[1:] != p["masks"].shape[1:]:
            raise ValueError(
                f"y_true[{i}] masks are {t['masks'].shape[1:]} pixels but "
                f"y_pred[{i}] masks are {p['masks'].shape[1:]}."
            )
    cocoeval = _pycocotools("cocoeval")
    if not any(len(t["labels"]) for t in true):
        warnings.warn(
            "mask_average_precision is undefined without ground-truth "
            "instances; returning nan.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return float("nan")

    labels = dict.fromkeys(label for t in true + pred for label in t["labels"].tolist())
    category_ids = {label: i for i, label in enumerate(labels, start=1)}
    categories = [{"id": i, "name": str(i)} for i in category_ids.values()]
    with redirect_stdout(io.StringIO()):  # pycocotools reports as it goes
        gt = _coco_dataset(true, category_ids, categories)
        dt = _coco_dataset(pred, category_ids, categories, scores=True)
        evaluation = cocoeval.COCOeval(gt, dt, iouType="segm")
        # only COCO's headline setting: all areas, 100 detections per image
        evaluation.params.areaRng = [[0, 1e10]]
        evaluation.params.areaRngLbl = ["all"]
        evaluation.params.maxDets = [_MAX_DETECTIONS]
        evaluation.evaluate()
        evaluation.accumulate()
    # precision: (iou thresholds, recall points, categories, areas, max dets)
    precision = evaluation.eval["precision"][iou_index, :, :, 0, -1]
    # -1 marks categories without ground truth
    return float(np.mean(precision[precision > -1]))
