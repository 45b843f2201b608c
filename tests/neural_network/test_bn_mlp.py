"""Tests for BatchNormMLPClassifier: the paper's claims, contracts, persistence."""

import io
import os
import pickle
import subprocess
import sys
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from skorch.callbacks import Callback
from torch import nn

from skpapers.neural_network import (
    BatchNormMLP,
    BatchNormMLPClassifier,
    fold_batchnorm,
)
from skpapers.neural_network._modules import BatchNorm

FAST = dict(hidden_layer_sizes=(16, 16), max_epochs=15, lr=0.1, random_state=0)


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=150,
        n_features=6,
        n_informative=4,
        n_classes=3,
        class_sep=2.0,
        random_state=0,
    )
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return BatchNormMLPClassifier(**FAST).fit(X, y)


# -- the network ------------------------------------------------------------


def test_batch_norm_sits_between_a_biasless_linear_and_the_nonlinearity():
    module = BatchNormMLP(5, 3, hidden_layer_sizes=(8, 4), activation="tanh")
    for layer in module.hidden:
        assert list(layer._modules) == ["linear", "batch_norm", "activation"]
        assert layer.linear.bias is None
        assert isinstance(layer.activation, nn.Tanh)
    assert module.output.bias is not None
    plain = BatchNormMLP(5, 3, hidden_layer_sizes=(8,), batch_norm=False, dropout=0.5)
    assert list(plain.hidden[0]._modules) == ["linear", "activation", "dropout"]
    assert plain.hidden[0].linear.bias is not None


def test_a_batch_of_one_sample_is_normalised_by_the_running_statistics():
    torch.manual_seed(0)
    norm = BatchNorm(4)
    norm(torch.randn(32, 4) * 3 + 1)  # running statistics away from 0 and 1
    mean, var = norm.running_mean.clone(), norm.running_var.clone()
    x = torch.randn(1, 4, requires_grad=True)
    out = norm.train()(x)
    assert_allclose(out.detach(), norm.eval()(x).detach(), rtol=1e-6)
    assert torch.equal(norm.running_mean, mean)
    assert torch.equal(norm.running_var, var)
    out.sum().backward()  # gamma, beta and the input still learn
    assert norm.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="Expected more than 1 value"):
        nn.BatchNorm1d(4).train()(x)  # what torch's own layer does


def test_fold_batchnorm_changes_no_prediction(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST).fit(X, y)
    module = clf.net_.module_
    assert not module.training  # left as predictions use it
    X32 = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        unfolded = torch.softmax(module(X32), dim=1).numpy()
    assert_allclose(clf.predict_proba(X), unfolded, atol=1e-6)
    folded = fold_batchnorm(module)
    with torch.no_grad():
        assert_allclose(folded(X32), module(X32), atol=1e-5)
    # The folded copy does strictly less: the same linear layers, no norms.
    kinds = [type(m) for m in folded.modules()]
    assert BatchNorm not in kinds and nn.BatchNorm1d not in kinds
    assert kinds.count(nn.Linear) == len(FAST["hidden_layer_sizes"]) + 1
    assert any(isinstance(m, BatchNorm) for m in module.modules())  # untouched


def test_fold_batchnorm_needs_a_linear_layer_before_each_norm():
    net = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match=r"must directly follow an nn\.Linear"):
        fold_batchnorm(net)
    untracked = nn.Sequential(
        nn.Linear(2, 3), nn.BatchNorm1d(3, track_running_stats=False)
    )
    with pytest.raises(ValueError, match="keeps no running statistics"):
        fold_batchnorm(untracked)


def test_fold_batchnorm_of_a_network_without_batch_norm_is_a_copy(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST, batch_norm=False).fit(X, y)
    X32 = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(fold_batchnorm(clf.net_.module_)(X32), clf.net_.module_(X32))


# -- the paper's claim ------------------------------------------------------


def test_batch_norm_trains_a_sigmoid_network_that_fails_without_it():
    # The paper's MNIST set-up on the digits: 3 x 100 sigmoid, batch 60, SGD.
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16, y, test_size=0.3, stratify=y, random_state=0
    )
    params = dict(
        activation="sigmoid", optimizer="sgd", momentum=0.0, lr=0.1,
        batch_size=60, max_epochs=4, tol=0, random_state=0,
    )  # fmt: skip
    with_bn = BatchNormMLPClassifier(**params).fit(X_train, y_train)
    without = BatchNormMLPClassifier(**params, batch_norm=False).fit(X_train, y_train)
    assert with_bn.score(X_test, y_test) > 0.9
    assert without.score(X_test, y_test) < 0.3  # still near chance (0.1)


# -- batches of one sample --------------------------------------------------


def _batch_sizes(clf):
    return [batch["train_batch_size"] for batch in clf.history_[-1, "batches"]]


def test_a_last_batch_of_one_sample_trains(data):
    X, y = data
    X, y = np.vstack([X[:120], X[:1]]), np.r_[y[:120], y[:1]]  # 121 samples
    clf = BatchNormMLPClassifier(**FAST, batch_size=60).fit(X, y)
    assert _batch_sizes(clf) == [60, 61]  # the lone last sample joins the batch
    assert np.isfinite(clf.history_[:, "train_loss"]).all()
    assert clf.score(X, y) > 0.8


def test_partial_fit_on_one_row_trains_without_touching_running_statistics(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST).partial_fit(X, y, classes=np.unique(y))
    norm = clf.net_.module_.hidden[0].batch_norm
    mean, var = norm.running_mean.clone(), norm.running_var.clone()
    weights = clf.net_.module_.hidden[0].linear.weight.detach().clone()
    clf.partial_fit(X[:1], y[:1])
    assert _batch_sizes(clf) == [1]
    assert not torch.equal(clf.net_.module_.hidden[0].linear.weight, weights)
    assert torch.equal(norm.running_mean, mean) and torch.equal(norm.running_var, var)
    assert clf.n_iter_ == 2


def test_batch_size_larger_than_the_data_is_one_batch(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST, batch_size=1000).fit(X, y)
    assert _batch_sizes(clf) == [len(X)]
    single = BatchNormMLPClassifier(**FAST).fit(X[:2], [0, 1])
    assert _batch_sizes(single) == [2]


@pytest.mark.parametrize("weighted", [False, True])
def test_torchs_loader_trains_as_the_sliced_batches(data, weighted):
    """A loader setting beyond shuffle and batch_size hands the batches to
    torch's DataLoader: the same batches, so the same model (no dropout)."""
    X, y = data
    weight = np.linspace(0.5, 2.0, len(y)) if weighted else None
    fits = [
        BatchNormMLPClassifier(**FAST, batch_size=32, **routed).fit(
            X, y, sample_weight=weight
        )
        for routed in ({}, {"iterator_train__pin_memory": False})
    ]
    dataset = fits[0].net_.get_dataset(X.astype(np.float32), y)
    sliced, loaded = (fit.net_.get_iterator(dataset, training=True) for fit in fits)
    assert sliced._tensors is not None and loaded._tensors is None
    for name, value in fits[0].net_.module_.state_dict().items():
        assert torch.equal(value, fits[1].net_.module_.state_dict()[name]), name
    assert fits[0].history_[:, "train_loss"] == fits[1].history_[:, "train_loss"]


# -- labels and input types -------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [np.array(["cat", "dog", "emu"]), np.array([-3, 7, 11], dtype=np.int32), None],
)
def test_predictions_come_back_in_the_callers_labels(data, labels):
    X, y = data
    if labels is None:  # booleans: two classes
        labels, y = np.array([False, True]), y % 2
    y_labels = labels[y]
    clf = BatchNormMLPClassifier(**FAST).fit(X, y_labels)
    assert_array_equal(clf.classes_, labels)
    assert clf.classes_.dtype == labels.dtype
    predictions = clf.predict(X)
    assert predictions.dtype == labels.dtype
    assert np.mean(predictions == y_labels) > 0.8


def test_lists_float64_and_float32_give_the_same_model(data):
    X, y = data
    reference = BatchNormMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    from_lists = BatchNormMLPClassifier(**FAST).fit(X.tolist(), y.tolist())
    from_float32 = BatchNormMLPClassifier(**FAST).fit(X.astype(np.float32), y)
    assert_allclose(from_lists.predict_proba(X.tolist()), reference)
    assert_allclose(from_float32.predict_proba(X), reference, atol=1e-6)


def test_pandas_input_keeps_feature_names(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = BatchNormMLPClassifier(**FAST).fit(frame, pd.Series(y).astype("category"))
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.score(frame, y) > 0.8


def test_probabilities_are_normalised_and_match_the_log(fitted, data):
    X, _ = data
    proba = fitted.predict_proba(X)
    assert proba.dtype == np.float64
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(np.log(proba), fitted.predict_log_proba(X), atol=1e-12)
    assert_array_equal(fitted.predict(X), fitted.classes_[proba.argmax(axis=1)])


# -- training ---------------------------------------------------------------


def test_random_state_makes_fits_identical_and_leaves_torch_alone(data):
    X, y = data
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first = BatchNormMLPClassifier(**FAST, dropout=0.2).fit(X, y).predict_proba(X)
    assert torch.equal(torch.rand(3), expected_draw)
    second = BatchNormMLPClassifier(**FAST, dropout=0.2).fit(X, y).predict_proba(X)
    assert_array_equal(first, second)
    other = BatchNormMLPClassifier(**{**FAST, "random_state": 1}).fit(X, y)
    assert not np.allclose(other.predict_proba(X), first)


def test_partial_fit_continues_from_the_current_weights(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST)
    losses = []
    for _ in range(8):
        clf.partial_fit(X, y, classes=np.unique(y))
        losses.append(clf.history_[-1, "train_loss"])
    assert clf.n_iter_ == len(clf.history_) == 8
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize(
    "params, first, later",
    [
        ({"optimizer": "sgd"}, "partial_fit", {}),
        ({"optimizer": "adam"}, "partial_fit", {"optimizer": "sgd"}),
        (
            {"early_stopping": True, "class_weight": "balanced"},
            "fit",
            {"early_stopping": False, "validation_fraction": 0.3},
        ),
        ({}, "fit", {"early_stopping": True, "n_iter_no_change": 1}),
    ],
)
def test_a_saved_model_carries_on_training_as_if_never_saved(
    data, params, first, later
):
    # The file holds the optimizer's state (momentum, Adam's moments), the
    # class weights, the validation split and how the net was built, as
    # fitted: parameters set later take effect at the next training of
    # either alike.
    X, y = data
    clf = BatchNormMLPClassifier(**{**FAST, "max_epochs": 3}, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if first == "fit":
            clf.fit(X, y)
        else:
            for _ in range(3):
                clf.partial_fit(X, y, classes=np.unique(y))
    clf.set_params(**later)
    loaded = pickle.loads(pickle.dumps(clf))
    for model in (clf, loaded):
        model.partial_fit(X, y)
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert [row["train_loss"] for row in loaded.history_] == [
        row["train_loss"] for row in clf.history_
    ]


def test_training_stops_when_the_loss_settles(data):
    X, y = data
    clf = BatchNormMLPClassifier(**{**FAST, "max_epochs": 500}, n_iter_no_change=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert 3 < clf.n_iter_ < 500
    with pytest.warns(ConvergenceWarning, match="max_epochs=2 reached") as record:
        BatchNormMLPClassifier(**{**FAST, "max_epochs": 2}).fit(X, y)
    assert record[0].filename == __file__  # the warning points at the call


def test_a_warm_start_takes_the_new_class_weights_and_stopping_rule(data):
    X, y = data
    clf = BatchNormMLPClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    assert clf.net_.criterion_.weight is None
    clf.set_params(warm_start=True, class_weight={0: 1.0, 1: 2.0, 2: 3.0})
    clf.set_params(n_iter_no_change=1, tol=10.0, max_epochs=20).fit(X, y)
    assert clf.net_.criterion_.weight.tolist() == [1.0, 2.0, 3.0]
    assert clf.n_iter_ == 3  # the first epoch, and one more without a gain of 10
    # "balanced" weighs a warm fit's classes; partial_fit keeps the weights
    clf.set_params(class_weight="balanced").fit(X[10:], y[10:])
    weights = clf.net_.criterion_.weight
    expected = compute_class_weight("balanced", classes=np.unique(y), y=y[10:])
    assert_allclose(weights.numpy(), expected, rtol=1e-6)
    clf.partial_fit(X[:10], y[:10])
    assert clf.net_.criterion_.weight is weights
    # a routed criterion setting builds the criterion anew, the optimizer kept
    optimizer = clf.net_.optimizer_
    clf.set_params(criterion__label_smoothing=0.1).partial_fit(X, y)
    assert clf.net_.criterion_.label_smoothing == 0.1
    assert clf.net_.criterion_.weight is weights
    assert clf.net_.optimizer_ is optimizer


def test_a_warm_start_refuses_another_dropout(data):
    X, y = data
    clf = BatchNormMLPClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf.set_params(warm_start=True, dropout=0.5, activation="tanh")
    with pytest.raises(ValueError, match=r"activation .*, dropout \(fitted with 0.0"):
        clf.fit(X, y)


def test_early_stopping_keeps_a_validation_history(data):
    X, y = data
    clf = BatchNormMLPClassifier(
        **{**FAST, "max_epochs": 300}, early_stopping=True, n_iter_no_change=3
    ).fit(X, y)
    assert clf.n_iter_ < 300
    history = clf.history_
    assert {"train_loss", "valid_loss", "valid_acc"} <= set(history[-1])
    scores = history[:, "valid_acc"]
    assert max(scores) >= 0.7  # 15 held-out samples of 3 classes: chance is 1/3
    # Stopped n_iter_no_change epochs after the first best validation score.
    assert clf.n_iter_ == int(np.argmax(scores)) + 1 + 3


def test_class_weight_shifts_predictions_to_the_heavy_class(data):
    X, y = data
    plain = BatchNormMLPClassifier(**FAST).fit(X, y)
    heavy = BatchNormMLPClassifier(**FAST, class_weight={0: 50.0, 1: 1.0, 2: 1.0})
    heavy.fit(X, y)
    assert np.mean(heavy.predict(X) == 0) > np.mean(plain.predict(X) == 0) + 0.1
    balanced = BatchNormMLPClassifier(**FAST, class_weight="balanced").fit(X, y)
    weights = balanced.net_.criterion_.weight
    assert_allclose(weights, len(y) / (3 * np.bincount(y)), rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", torch.optim.RMSprop])
def test_other_optimizers(data, optimizer):
    X, y = data
    clf = BatchNormMLPClassifier(**{**FAST, "lr": 0.01}, optimizer=optimizer)
    clf.fit(X, y)
    expected = torch.optim.Adam if optimizer == "adam" else optimizer
    assert type(clf.net_.optimizer_) is expected
    assert clf.score(X, y) > 0.8


def test_callbacks_are_called_and_left_as_given(data):
    X, y = data

    class CountEpochs(Callback):
        def initialize(self):
            self.epochs = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    callback = CountEpochs()
    clf = BatchNormMLPClassifier(**FAST, callbacks=[("count", callback)]).fit(X, y)
    assert dict(clf.net_.callbacks_)["count"].epochs == clf.n_iter_
    assert not hasattr(callback, "epochs")


@pytest.mark.parametrize(
    "callbacks, message",
    [
        ([object()], r"callbacks\[0\] is <object object .*, of type object, not a"),
        ([("count", Callback()), len], r"callbacks\[1\] is <built-in function len>"),
        (["print_log"], r"callbacks\[0\] is 'print_log', of type str"),
        (
            [(3, Callback())],
            r"callbacks\[0\] = \(3, .* is not a \(name, callback\) pair",
        ),
        ([("a", Callback(), 1)], "is not a \\(name, callback\\) pair with a str name"),
        ([("a", object())], r"callbacks\[0\] is <object object"),
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_callbacks_skorch_cannot_use_are_refused_and_the_old_model_kept(
    fitted, data, callbacks, message, method
):
    X, y = data
    clf = pickle.loads(pickle.dumps(fitted)).set_params(callbacks=callbacks)
    before = clf.predict_proba(X)
    state = dict(vars(clf))
    with pytest.raises(TypeError, match=message) as error:
        getattr(clf, method)(X, y)
    assert str(error.value).startswith("BatchNormMLPClassifier: ")
    assert "a skorch callback (an instance or subclass of" in str(error.value)
    assert vars(clf).keys() == state.keys()
    assert all(vars(clf)[key] is value for key, value in state.items())
    assert_array_equal(clf.predict_proba(X), before)


def test_callback_classes_and_named_nothing_are_accepted_as_skorch_does(data):
    X, y = data

    class Quiet(Callback):
        pass

    clf = BatchNormMLPClassifier(
        **{**FAST, "max_epochs": 2}, callbacks=[Quiet, ("nothing", None)]
    ).fit(X, y)
    names = dict(clf.net_.callbacks_)
    assert isinstance(names["Quiet"], Quiet) and "nothing" not in names


def test_no_hidden_layer_is_a_linear_model_as_in_mlpclassifier(data):
    X, y = data
    peer = MLPClassifier(hidden_layer_sizes=(), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        peer.fit(X, y)
    assert [w.shape for w in peer.coefs_] == [(6, 3)]  # scikit-learn's own
    clf = BatchNormMLPClassifier(**{**FAST, "hidden_layer_sizes": ()}).fit(X, y)
    module = clf.net_.module_
    assert len(module.hidden) == 0 and module.output.weight.shape == (3, 6)
    assert clf.score(X, y) > 0.8
    # the folded copy (nothing to fold) predicts what the module does
    logits = module(torch.as_tensor(X, dtype=torch.float32)).detach().numpy()
    assert_allclose(
        clf.predict_log_proba(X),
        torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy(),
        atol=1e-5,
    )


def test_verbose_prints_one_line_per_epoch(data):
    X, y = data
    out = io.StringIO()
    with redirect_stdout(out):
        BatchNormMLPClassifier(**{**FAST, "max_epochs": 3}, verbose=1).fit(X, y)
    lines = [line for line in out.getvalue().splitlines() if "train_loss" in line]
    assert lines and out.getvalue().count("\n") >= 3 + 2
    quiet = io.StringIO()
    with redirect_stdout(quiet):
        BatchNormMLPClassifier(**{**FAST, "max_epochs": 3}).fit(X, y)
    assert quiet.getvalue() == ""


# -- bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden_layer_sizes": (10, 0)}, "sequence of positive ints"),
        ({"hidden_layer_sizes": [[3]]}, "sequence of positive ints"),
        ({"optimizer": len}, "torch.optim.Optimizer subclass"),
        ({"device": "gpu7"}, "is not a torch device"),
        ({"activation": "gelu"}, "'activation' parameter"),
        ({"class_weight": {0: 1.0, "z": 2.0}}, r"class_weight has labels \['z'\]"),
    ],
)
def test_bad_parameters_are_refused_clearly(data, params, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        BatchNormMLPClassifier(**{**FAST, **params}).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="finds no CUDA GPU"):
        BatchNormMLPClassifier(**FAST, device="cuda").fit(X, y)


@pytest.mark.parametrize(
    "X_bad, y_bad, message",
    [
        (np.full((4, 2), np.nan), [0, 1, 0, 1], "NaN"),
        (np.full((4, 2), np.inf), [0, 1, 0, 1], "infinity"),
        (np.ones((4, 2)), [1, 1, 1, 1], "only one class"),
        (np.ones((4, 2)), [0.5, 1.5, 2.5, 0.1], "Unknown label type"),
        (np.ones((0, 2)), [], "0 sample"),
    ],
)
def test_bad_data_is_refused_and_the_old_model_kept(
    fitted, data, X_bad, y_bad, message
):
    X, _ = data
    clf = pickle.loads(pickle.dumps(fitted))
    before = clf.predict_proba(X)
    state = set(vars(clf))
    with pytest.raises(ValueError, match=message):
        clf.fit(X_bad, y_bad)
    assert set(vars(clf)) == state
    assert_array_equal(clf.predict_proba(X), before)


def test_partial_fit_refuses_what_it_cannot_use(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "net_")
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"labels \[5\] that are not in classes"):
        clf.partial_fit(X[:2], [0, 5])
    with pytest.raises(ValueError, match="differs from the classes of the first"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="expecting 6 features"):
        clf.partial_fit(X[:, :3], y)
    balanced = BatchNormMLPClassifier(**FAST, class_weight="balanced")
    with pytest.raises(ValueError, match="not available with partial_fit"):
        balanced.partial_fit(X, y, classes=[0, 1, 2])


def test_early_stopping_on_too_little_data_is_refused(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST, early_stopping=True, validation_fraction=0.01)
    with pytest.raises(ValueError, match="cannot hold each of the 3 classes"):
        clf.fit(X, y)


# -- scikit-learn's tools ---------------------------------------------------


def test_pipeline_and_joblib_round_trip(data, tmp_path):
    X, y = data
    pipe = make_pipeline(StandardScaler(), BatchNormMLPClassifier(**FAST)).fit(X, y)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    loaded = joblib.load(tmp_path / "pipe.joblib")
    assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    assert_array_equal(loaded.predict(X), pipe.predict(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_trained_on_a_gpu_predicts_where_there_is_none(data, tmp_path):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST, device="cuda").fit(X, y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", clf.predict_proba(X))
    joblib.dump(clf, tmp_path / "model.joblib")
    script = (
        "import joblib, numpy as np, torch; assert not torch.cuda.is_available();"
        f"m = joblib.load({str(tmp_path / 'model.joblib')!r});"
        f"p = m.predict_proba(np.load({str(tmp_path / 'X.npy')!r}));"
        f"np.testing.assert_allclose(p, np.load({str(tmp_path / 'expected.npy')!r}),"
        " atol=1e-5)"
    )
    # the same environment (packages found through PYTHONPATH too), no GPU
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)


def _torch_threads(estimator, X, y):
    return torch.get_num_threads()


def test_grid_search_in_two_processes_shares_the_cores_between_them(data):
    # joblib gives each of n_jobs worker processes cpu_count // n_jobs threads
    # (OMP_NUM_THREADS, which torch reads): 1 each on two cores, 8 on 16
    X, y = data
    search = GridSearchCV(
        BatchNormMLPClassifier(**{**FAST, "max_epochs": 3}),
        {"batch_norm": [True, False]},
        scoring={"threads": _torch_threads, "accuracy": "accuracy"},
        refit="accuracy",
        cv=2,
        n_jobs=2,
    ).fit(X, y)
    share = max(joblib.cpu_count() // 2, 1)
    assert set(search.cv_results_["mean_test_threads"]) == {float(share)}
    assert search.best_estimator_.n_iter_ == 3


# -- sample weights and the float32 range -------------------------------------


def _state(clf):
    return {k: v.clone() for k, v in clf.net_.module_.state_dict().items()}


@pytest.mark.parametrize("batch_norm", [True, False])
def test_a_weight_of_two_equals_a_duplicated_row(data, batch_norm):
    X, y = data
    weight = np.ones(len(y), dtype=int)
    weight[[3, 10, 20]] = 2
    weight[[5, 7]] = 0
    params = {**FAST, "batch_norm": batch_norm, "batch_size": 32}
    weighted = BatchNormMLPClassifier(**params).fit(X, y, sample_weight=weight)
    # the same rows, repeated and dropped, in another order
    rows = np.random.RandomState(1).permutation(np.repeat(np.arange(len(y)), weight))
    repeated = BatchNormMLPClassifier(**params).fit(X[rows], y[rows])
    for key, value in _state(weighted).items():
        assert torch.equal(value, _state(repeated)[key]), key
    unweighted = BatchNormMLPClassifier(**params).fit(X, y)
    assert not np.array_equal(unweighted.predict_proba(X), weighted.predict_proba(X))


def test_fractional_weights_scale_the_loss(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST)
    half = clf.fit(X, y, sample_weight=np.full(len(y), 0.5)).predict_proba(X)
    assert_array_equal(half, clf.fit(X, y).predict_proba(X))  # all equal: no change
    weight = np.where(y == 0, 0.1, 1.0)
    low = clf.fit(X, y, sample_weight=weight).predict_proba(X)[:, 0]
    assert low.mean() < half[:, 0].mean()  # class 0 counts less
    with pytest.raises(ValueError, match=r"BatchNormMLPClassifier: .*non-zero"):
        clf.fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="Negative"):
        clf.fit(X, y, sample_weight=-np.ones(len(y)))


def test_partial_fit_takes_sample_weight(data):
    X, y = data
    clf = BatchNormMLPClassifier(**FAST)
    clf.partial_fit(X, y, classes=[0, 1, 2], sample_weight=np.arange(len(y)) % 3)
    assert clf.n_iter_ == 1


def test_sample_weight_is_routed_through_pipeline_and_grid_search(data):
    import sklearn

    X, y = data
    weight = np.where(y == 0, 3, 1)
    expected = BatchNormMLPClassifier(**FAST).fit(X, y, sample_weight=weight)
    with sklearn.config_context(enable_metadata_routing=True):
        step = BatchNormMLPClassifier(**FAST).set_fit_request(sample_weight=True)
        pipe = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=False), step
        )
        pipe.fit(X, y, sample_weight=weight)
        search = GridSearchCV(
            BatchNormMLPClassifier(**FAST)
            .set_fit_request(sample_weight=True)
            .set_score_request(sample_weight=False),
            {"lr": [0.1]},
            cv=2,
        ).fit(X, y, sample_weight=weight)
    scaled = StandardScaler().fit_transform(X)
    alone = BatchNormMLPClassifier(**FAST).fit(scaled, y, sample_weight=weight)
    assert_array_equal(pipe.predict_proba(X), alone.predict_proba(scaled))
    assert_array_equal(
        search.best_estimator_.predict_proba(X), expected.predict_proba(X)
    )


def test_input_beyond_float32_is_refused(data):
    X, y = data
    big = X.copy()
    big[0, 0] = 1e39
    with pytest.raises(ValueError, match=r"BatchNormMLPClassifier: .*float32's range"):
        BatchNormMLPClassifier(**FAST).fit(big, y)
    fitted = BatchNormMLPClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="float32's range"):
        fitted.predict(big)
