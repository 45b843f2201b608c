"""MaskRCNNSegmenter: steps, predictions, contracts (convergence: benchmarks)."""

import copy
import io

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skpapers.datasets import SHAPE_NAMES, make_shapes
from skpapers.datasets._shapes import _masks_to_boxes
from skpapers.segmentation import MaskRCNNSegmenter
from skpapers.segmentation._maskrcnn import (
    _OPTIMIZER_SETTINGS,
    _augmented,
    _build_model,
    _load_weights,
    _make_optimizer,
    _target_tensors,
)

pytest.importorskip("pycocotools")

FAST = dict(max_epochs=1, batch_size=3, image_size=48, random_state=0)


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(6, image_size=48, random_state=0)


@pytest.fixture(scope="module")
def fitted(shapes):
    X, y = shapes
    return MaskRCNNSegmenter(**FAST, score_threshold=0.0).fit(X, y)


def _same(a, b):
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        for key in left:
            np.testing.assert_array_equal(left[key], right[key])


def test_fit_records_the_losses_and_predict_returns_instances(fitted, shapes):
    X, _ = shapes
    assert fitted.n_iter_ == len(fitted.history_) == 1
    assert set(fitted.history_[0]) >= {"train_loss", "loss_mask", "loss_classifier"}
    assert np.isfinite(fitted.history_[0]["train_loss"])
    terms = [k for k in fitted.history_[0] if k.startswith("loss_")]
    assert fitted.history_[0]["train_loss"] == pytest.approx(
        sum(fitted.history_[0][k] for k in terms), rel=1e-5
    )
    assert list(fitted.classes_) == [1, 2, 3]
    predictions = fitted.predict(X[:2])
    assert len(predictions) == 2
    for p in predictions:
        k = len(p["scores"])
        assert p["masks"].shape == (k, 48, 48) and p["masks"].dtype == bool
        assert p["boxes"].shape == (k, 4)
        assert set(p["labels"].tolist()) <= {1, 2, 3}
        assert np.all(np.diff(p["scores"]) <= 0)


def test_a_lone_detection_keeps_its_array_shapes(fitted, shapes):
    X, _ = shapes
    (everything,) = fitted.predict(X[:1])
    assert len(everything["scores"]) > 1
    lone = copy.deepcopy(fitted).set_params(score_threshold=everything["scores"][0])
    (prediction,) = lone.predict(X[:1])
    assert prediction["labels"].shape == prediction["scores"].shape == (1,)
    assert prediction["masks"].shape == (1, 48, 48)
    assert prediction["boxes"].shape == (1, 4)


def test_class_names_images_of_other_sizes_grayscale_and_float(shapes):
    X, y = shapes
    named = [{**t, "labels": [SHAPE_NAMES[label] for label in t["labels"]]} for t in y]
    images = [X[0], X[1].mean(axis=2).astype(np.uint8), X[2] / 255.0]
    small, small_y = make_shapes(1, image_size=32, random_state=1)
    images.append(small[0])
    targets = [
        *named[:3],
        {**small_y[0], "labels": ["circle"] * len(small_y[0]["labels"])},
    ]
    model = MaskRCNNSegmenter(**FAST, score_threshold=0.0).fit(images, targets)
    assert list(model.classes_) == ["circle", "square", "triangle"]
    predictions = model.predict(images)
    assert [p["masks"].shape[1:] for p in predictions] == [(48, 48)] * 3 + [(32, 32)]
    assert all(set(p["labels"].tolist()) <= set(model.classes_) for p in predictions)


def test_an_image_with_no_instance_is_background(shapes):
    X, y = shapes
    empty = {"masks": np.zeros((0, 48, 48), bool), "labels": np.zeros(0, int)}
    model = MaskRCNNSegmenter(**FAST).fit(np.concatenate([X, X[:1] * 0]), [*y, empty])
    assert np.isfinite(model.history_[0]["train_loss"])


def test_random_state_makes_fits_identical(shapes, fitted):
    X, y = shapes
    again = MaskRCNNSegmenter(**FAST, score_threshold=0.0).fit(X, y)
    assert again.history_[:, "train_loss"] == fitted.history_[:, "train_loss"]
    _same(again.predict(X), fitted.predict(X))


def test_joblib_round_trip_and_score(fitted, shapes, tmp_path):
    X, y = shapes
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    _same(loaded.predict(X), fitted.predict(X))
    assert 0.0 <= loaded.score(X, y) == fitted.score(X, y) <= 1.0


def test_pipeline_and_grid_search_over_the_roi_op(shapes):
    X, y = shapes
    to_float = FunctionTransformer(lambda images: images / 255.0)
    pipe = make_pipeline(to_float, MaskRCNNSegmenter(**FAST)).fit(X, y)
    assert len(pipe.predict(X[:1])) == 1
    search = GridSearchCV(
        MaskRCNNSegmenter(**FAST), {"roi_op": ["align", "pool"]}, cv=2
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("augment", ["hflip", "dihedral"])
def test_augmented_images_masks_and_boxes_move_together(shapes, augment):
    X, y = shapes
    image = torch.from_numpy(np.ascontiguousarray(X[0].transpose(2, 0, 1)[:, :, 5:]))
    masks = y[0]["masks"][:, :, 5:]  # not square: rows and columns differ
    target = _target_tensors(
        {"boxes": _masks_to_boxes(masks), "labels": y[0]["labels"], "masks": masks},
        {label: label for label in range(1, 4)},
    )
    seen = set()
    torch.manual_seed(0)
    for _ in range(64):
        new_image, new = _augmented(image, target, augment)
        # each mask still covers the same pixel values as before, moved
        for old_mask, mask in zip(target["masks"], new["masks"], strict=True):
            before = image[:, old_mask.bool()].sort(dim=1).values
            assert torch.equal(new_image[:, mask.bool()].sort(dim=1).values, before)
        np.testing.assert_array_equal(
            new["boxes"].numpy(), _masks_to_boxes(new["masks"].bool().numpy())
        )
        np.testing.assert_array_equal(new["labels"], target["labels"])
        seen.add(new_image.numpy().tobytes())
    assert len(seen) == {"hflip": 2, "dihedral": 8}[augment]
    assert _augmented(image, target, None) == (image, target)


def test_fit_trains_on_augmented_images(shapes, fitted):
    X, y = shapes
    flipped = MaskRCNNSegmenter(**FAST, augment="dihedral").fit(X, y)
    losses = flipped.history_[:, "train_loss"]
    assert np.isfinite(losses).all()
    assert losses != fitted.history_[:, "train_loss"]


def test_the_optimizer_and_its_default_learning_rate():
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    adamw = _make_optimizer(parameters, "adamw", None, 1e-4)
    sgd = _make_optimizer(parameters, "sgd", None, 1e-4)
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["lr"] == 0.002
    assert type(sgd) is torch.optim.SGD and sgd.defaults["lr"] == 0.04
    assert sgd.defaults["momentum"] == 0.9
    assert adamw.defaults["weight_decay"] == sgd.defaults["weight_decay"] == 1e-4
    assert _make_optimizer(parameters, "sgd", 0.5, 0.0).defaults["lr"] == 0.5
    # others keep their own defaults
    rmsprop = _make_optimizer(parameters, torch.optim.RMSprop, None, 0.0)
    assert type(rmsprop) is torch.optim.RMSprop
    assert rmsprop.defaults["lr"] == torch.optim.RMSprop(parameters).defaults["lr"]
    assert _make_optimizer(parameters, "adam", 0.3, 0.0).defaults["lr"] == 0.3


def test_fit_trains_with_the_optimizer_asked_for(shapes, fitted):
    X, y = shapes
    sgd = MaskRCNNSegmenter(**FAST, optimizer="sgd").fit(X, y)
    assert np.isfinite(sgd.history_[0]["train_loss"])
    losses = fitted.history_[:, "train_loss"]
    assert sgd.history_[:, "train_loss"] != losses
    adam = MaskRCNNSegmenter(**FAST, optimizer=torch.optim.Adam).fit(X, y)
    others = (sgd.history_[:, "train_loss"], losses)
    assert adam.history_[:, "train_loss"] not in others
    for bad in ("adagrad", len):
        with pytest.raises(ValueError, match="optimizer"):
            MaskRCNNSegmenter(**FAST, optimizer=bad).fit(X, y)


def test_a_diverging_fit_names_the_learning_rate_it_used(shapes, monkeypatch):
    X, y = shapes
    segmenter = MaskRCNNSegmenter(**{**FAST, "max_epochs": 3}, lr=1e6)
    with pytest.raises(FloatingPointError, match=r"\(lr=1e\+06\)"):
        segmenter.fit(X, y)
    assert not hasattr(segmenter, "model_")
    # lr=None names the rate it resolved to, not None
    monkeypatch.setitem(_OPTIMIZER_SETTINGS, torch.optim.AdamW, {"lr": 1e7})
    with pytest.raises(FloatingPointError, match=r"\(lr=1e\+07\)"):
        MaskRCNNSegmenter(**{**FAST, "max_epochs": 3}).fit(X, y)


def _dilations(segmenter):
    head = segmenter.model_.roi_heads.mask_head
    return {m.dilation for m in head.modules() if isinstance(m, torch.nn.Conv2d)}


def test_mask_dilation_reaches_the_mask_head_and_survives_a_reload(
    shapes, fitted, tmp_path
):
    X, y = shapes
    paper = MaskRCNNSegmenter(**FAST, score_threshold=0.0, mask_dilation=1).fit(X, y)
    assert _dilations(fitted) == {(2, 2)} and _dilations(paper) == {(1, 1)}
    assert paper.history_[:, "train_loss"] != fitted.history_[:, "train_loss"]
    # the dilation changes no weight's shape: only the saved architecture can
    # rebuild the head as fitted
    expected = paper.predict(X)
    paper.set_params(mask_dilation=2)
    joblib.dump(paper, tmp_path / "paper.joblib")
    loaded = joblib.load(tmp_path / "paper.joblib")
    assert _dilations(loaded) == {(1, 1)}
    _same(loaded.predict(X), expected)
    with pytest.raises(ValueError, match="mask_dilation"):
        MaskRCNNSegmenter(**FAST, mask_dilation=0).fit(X, y)


def test_weights_load_from_a_local_state_dict(fitted, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(fitted.model_.state_dict(), path)
    model = _build_model(**fitted.net_.architecture)
    _load_weights(model, path)
    for mine, theirs in zip(
        model.state_dict().values(), fitted.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, theirs)
    with pytest.raises(ValueError, match="is not a file"):
        _load_weights(model, tmp_path / "missing.pt")
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "resnet.pt")
    with pytest.raises(ValueError, match="needs backbone='resnet50_fpn'"):
        _load_weights(model, tmp_path / "resnet.pt")


def _with(y, i, **changes):
    return [({**t, **changes} if j == i else t) for j, t in enumerate(y)]


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("no images", ValueError, "X holds no images"),
        ("empty image", ValueError, r"X\[0\] is empty"),
        ("nan", ValueError, "NaN or infinity"),
        ("float out of range", ValueError, "must lie in"),
        ("mask size", ValueError, "each mask must match its image"),
        ("empty mask", ValueError, "every instance needs"),
        ("degenerate box", ValueError, "is degenerate"),
        ("fewer targets", ValueError, "6 images but y 5 targets"),
        ("no instance at all", ValueError, "holds no instance at all"),
        ("a dict", TypeError, "must be a list of dicts"),
        ("thin image", ValueError, r"X\[0\] is 8 x 400 pixels: .* 0.96 pixels"),
        ("mixed label types", ValueError, "y mixes label types: y.0..'labels'. "),
        ("nan label", ValueError, r"y\[1\]\['labels'\]\[0\] is NaN"),
        ("box outside", ValueError, "lies wholly outside its 48 x 48 image"),
        ("box beside its mask", ValueError, "holds none of the pixels of its mask"),
        (
            "boxes of 3 numbers",
            ValueError,
            r"y\[0\]\['boxes'\] must have shape \(\d+, 4\)",
        ),
        ("boxes of words", TypeError, r"y\[0\]\['boxes'\] must be numbers"),
    ],
)
def test_bad_input_is_refused_and_the_old_model_kept(
    fitted, shapes, case, error, message
):
    X, y = shapes
    X_bad, y_bad = X, y
    if case == "no images":
        X_bad, y_bad = X[:0], []
    elif case == "empty image":
        X_bad, y_bad = [np.zeros((0, 5, 3), np.uint8)], [y[0]]
    elif case == "nan":
        X_bad = X / 255.0
        X_bad[0, 0, 0, 0] = np.nan
    elif case == "float out of range":
        X_bad = X * 1.0
    elif case == "mask size":
        y_bad = _with(y, 1, masks=y[1]["masks"][:, :40])
    elif case == "empty mask":
        y_bad = _with(y, 2, masks=np.zeros_like(y[2]["masks"]))
    elif case == "degenerate box":
        boxes = y[0]["boxes"].copy()
        boxes[0, 2] = boxes[0, 0]
        y_bad = _with(y, 0, boxes=boxes)
    elif case == "fewer targets":
        y_bad = y[:5]
    elif case == "no instance at all":
        none = {"masks": np.zeros((0, 48, 48), bool), "labels": []}
        y_bad = [none] * len(X)
    elif case == "a dict":
        y_bad = y[0]
    elif case == "thin image":
        X_bad, y_bad = [np.zeros((8, 400, 3), np.uint8)], [y[0]]
    elif case == "mixed label types":
        y_bad = _with(y, 2, labels=[SHAPE_NAMES[label] for label in y[2]["labels"]])
    elif case == "nan label":
        y_bad = _with(y, 1, labels=np.r_[np.nan, y[1]["labels"][1:]])
    elif case == "box outside":
        boxes = y[3]["boxes"].copy()
        boxes[-1] = [50, 10, 60, 20]
        y_bad = _with(y, 3, boxes=boxes)
    elif case == "boxes of 3 numbers":
        y_bad = _with(y, 0, boxes=y[0]["boxes"][:, :3])
    elif case == "boxes of words":
        y_bad = _with(y, 0, boxes=[["x1", "y1", "x2", "y2"]] * len(y[0]["labels"]))
    elif case == "box beside its mask":
        rows, columns = np.nonzero(~y[0]["masks"][0])
        boxes = y[0]["boxes"].copy()
        boxes[0] = [columns[0], rows[0], columns[0] + 1, rows[0] + 1]
        y_bad = _with(y, 0, boxes=boxes)
    model = joblib.load(_dumped(fitted))
    state = dict(vars(model))
    before = model.predict(X[:1])
    with pytest.raises(error, match=message) as raised:
        model.fit(X_bad, y_bad)
    assert str(raised.value).startswith("MaskRCNNSegmenter: ")
    assert vars(model).keys() == state.keys()
    assert all(vars(model)[key] is value for key, value in state.items())
    _same(model.predict(X[:1]), before)


@pytest.mark.parametrize(
    "labels, message",
    [
        ([np.nan], r"y\[0\]\['labels'\]\[0\] is NaN"),
        (["circle"], "y mixes label types"),
    ],
)
def test_score_refuses_nan_and_mixed_labels(fitted, shapes, labels, message):
    X, y = shapes
    first = {**y[0], "masks": y[0]["masks"][:1], "labels": labels}
    first.pop("boxes")
    model = joblib.load(_dumped(fitted))
    state = dict(vars(model))
    with pytest.raises(ValueError, match=message) as raised:
        model.score(X[:2], [first, y[1]])
    assert str(raised.value).startswith("MaskRCNNSegmenter: ")
    assert all(vars(model)[key] is value for key, value in state.items())


def test_callbacks_skorch_cannot_use_are_refused_before_training(fitted, shapes):
    X, y = shapes
    model = joblib.load(_dumped(fitted)).set_params(callbacks=[object()])
    state = dict(vars(model))
    with pytest.raises(TypeError, match=r"callbacks\[0\] is <object .* not a skorch"):
        model.fit(X, y)
    assert all(vars(model)[key] is value for key, value in state.items())


def test_a_thin_image_to_predict_is_refused_and_one_at_the_limit_segmented(
    fitted, shapes
):
    X, _ = shapes
    model = joblib.load(_dumped(fitted))
    state = dict(vars(model))
    with pytest.raises(ValueError, match=r"X\[1\] is 1 x 49 pixels") as raised:
        model.predict([X[0], np.zeros((1, 49, 3), np.uint8)])
    assert str(raised.value).startswith("MaskRCNNSegmenter: ")
    assert "image_size of at least 49" in str(raised.value)
    assert all(vars(model)[key] is value for key, value in state.items())
    # at 1 x 48 (image_size=48) the network still sees one row
    (thin,) = model.predict([np.full((1, 48, 3), 200, np.uint8)])
    assert thin["masks"].shape[1:] == (1, 48)
    assert thin["boxes"].shape == (len(thin["scores"]), 4)


def test_a_thin_image_at_the_limit_trains(shapes):
    X, y = shapes
    thin = np.zeros((2, 96, 3), np.uint8)  # 2 x 96: one row at image_size=48
    thin[:, 10:30] = 255
    masks = np.zeros((1, 2, 96), bool)
    masks[0, :, 10:30] = True
    model = MaskRCNNSegmenter(**FAST).fit(
        [*X[:2], thin], [*y[:2], {"masks": masks, "labels": [1]}]
    )
    assert np.isfinite(model.history_[0]["train_loss"])
    assert model.predict([thin])[0]["masks"].shape[1:] == (2, 96)


def test_an_image_with_no_labels_keeps_int_classes_int(shapes):
    X, y = shapes
    empty = {"masks": np.zeros((0, 48, 48), bool), "labels": []}  # float to numpy
    model = MaskRCNNSegmenter(**FAST, score_threshold=0.0).fit(X[:3], [empty, *y[1:3]])
    assert model.classes_.dtype == np.int64
    labels = np.concatenate([p["labels"] for p in model.predict(X[:3])])
    assert labels.size and labels.dtype == np.int64


def _dumped(model):
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(shapes):
    X, y = shapes
    with pytest.raises(ValueError, match="finds no CUDA GPU"):
        MaskRCNNSegmenter(**FAST, device="cuda").fit(X, y)
