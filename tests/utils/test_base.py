"""The behaviour the torch estimators share through skpapers.utils._base.

Each test runs on every torch estimator that trains through skorch: skorch's
routed parameters, callbacks, warm starts and resuming from a checkpoint,
Ctrl-C, a diverging loss, and the verbosity levels.
"""

import re
import signal
import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    LoadInitState,
    LRScheduler,
)

from skpapers import BatchNormMLPClassifier, MaskRCNNSegmenter, RMLSequencePredictor
from skpapers.datasets import make_shapes
from skpapers.segmentation._maskrcnn import WarmupSchedule
from skpapers.utils._base import is_routed


def _table():
    X = np.random.RandomState(0).randn(60, 4)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _words():
    words = ["abc", "ba", "cab", "a", "bcca", "acb", "cc", "bab"] * 3
    return words, [w[::-1] for w in words]


def _images():
    return make_shapes(6, image_size=32, max_instances=2, random_state=0)


# A small instance of each (without a stopping rule, so that every epoch
# runs), and its data.
CASES = {
    "BatchNormMLPClassifier": (
        BatchNormMLPClassifier,
        dict(
            hidden_layer_sizes=(8,),
            batch_size=16,
            max_epochs=4,
            tol=0,
            n_iter_no_change=50,
        ),
        _table,
    ),
    "RMLSequencePredictor": (
        RMLSequencePredictor,
        dict(embedding_dim=8, hidden_size=16, batch_size=8, max_epochs=4),
        _words,
    ),
    # with a constant rate: the warm-up and halving schedule spans each fit
    # (see the checkpoint test for a schedule resumed)
    "MaskRCNNSegmenter": (
        MaskRCNNSegmenter,
        dict(image_size=32, batch_size=3, max_epochs=4, callbacks__lr_schedule=None),
        _images,
    ),
}
# what resuming keeps besides the weights: Mask R-CNN's schedule
RESUMED = {
    "MaskRCNNSegmenter": lambda: {"callbacks__lr_schedule": WarmupSchedule(warmup=3)}
}
NAMES = list(CASES)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _make(name, **params):
    Estimator, small, _ = CASES[name]
    return Estimator(**{**small, "random_state": 0, **params})


def _data(name):
    return CASES[name][2]()


def _rate(estimator):
    return estimator.net_.lr


def _weights(estimator):
    return {k: v.clone() for k, v in estimator.net_.module_.state_dict().items()}


def _assert_same_weights(left, right):
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


def _assert_other_weights(left, right):
    assert any(not torch.equal(left[key], right[key]) for key in left)


# -- routed parameters --------------------------------------------------------


def test_routed_names():
    assert is_routed("optimizer__momentum")
    assert is_routed("callbacks__print_log__sink")
    assert not is_routed("optimizer")
    assert not is_routed("optimizer__")
    assert not is_routed("solver__tol")


@pytest.mark.parametrize("name", NAMES)
def test_routed_parameters_are_parameters(name):
    estimator = _make(name, optimizer__weight_decay=0.1)
    assert estimator.get_params()["optimizer__weight_decay"] == 0.1
    estimator.set_params(optimizer__weight_decay=0.2, iterator_train__shuffle=False)
    copy = clone(estimator)
    assert copy.get_params()["optimizer__weight_decay"] == 0.2
    assert copy.get_params()["iterator_train__shuffle"] is False
    assert "optimizer__weight_decay=0.2" in repr(copy)
    X, y = _data(name)
    copy.fit(X, y)
    assert copy.net_.optimizer_.param_groups[0]["weight_decay"] == 0.2


def test_the_issues_own_example_sets_sgds_momentum():
    X, y = _data("BatchNormMLPClassifier")
    clf = _make("BatchNormMLPClassifier").set_params(optimizer__momentum=0.5)
    assert clf.fit(X, y).net_.optimizer_.param_groups[0]["momentum"] == 0.5
    # and a routed setting reaches the criterion
    clf = _make("BatchNormMLPClassifier", criterion__label_smoothing=0.2).fit(X, y)
    assert clf.net_.criterion_.label_smoothing == 0.2


@pytest.mark.parametrize("name", NAMES)
def test_a_grid_search_over_a_routed_parameter(name):
    X, y = _data(name)
    step = _make(name, max_epochs=2)
    pipe = make_pipeline(FunctionTransformer(), step)
    grid = {f"{pipe.steps[-1][0]}__optimizer__weight_decay": [0.0, 0.5]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    best = search.best_params_[next(iter(grid))]
    optimizer = search.best_estimator_[-1].net_.optimizer_
    assert optimizer.param_groups[0]["weight_decay"] == best


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("optimizer__nonsense", "not a parameter of the net's optimizer"),
        ("criterion__nonsense", "not a parameter of the net's criterion"),
        ("iterator_train__nonsense", "not a parameter of the net's iterator_train"),
        ("callbacks__nonsense__patience", "names the callback 'nonsense'"),
        ("callbacks__print_log__nonsense", "not a parameter of the callback"),
        ("module__nonsense", "module"),
        ("optimizer__lr", "set lr instead"),
        ("nonsense", "nonsense is not a parameter"),
    ],
)
def test_a_name_the_net_lacks_is_refused_by_fit(name, param, message):
    estimator = _make(name, **{param: 1})  # scikit-learn's rule: init checks nothing
    X, y = _data(name)
    with pytest.raises(ValueError, match=message) as error:
        estimator.fit(X, y)
    assert name in str(error.value)
    assert not hasattr(estimator, "net_")


def test_set_params_refuses_an_unknown_plain_name():
    with pytest.raises(ValueError, match="Invalid parameter"):
        _make("BatchNormMLPClassifier").set_params(nonsense=1)


# -- callbacks ----------------------------------------------------------------


class _Count(Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1
        net.history.record("counted", self.epochs)


class _StopAt(Callback):
    """Raise KeyboardInterrupt (a Ctrl-C) in the second batch of an epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, net, training=False, **kwargs):
        epoch = len(net.history)
        if training and epoch == self.epoch and len(net.history[-1]["batches"]) == 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", NAMES)
def test_users_callbacks_and_skorchs_own_run(name):
    X, y = _data(name)
    given = _Count()
    estimator = _make(
        name,
        callbacks=[
            given,
            EpochScoring(lambda net, X, y: 1.0, name="one", on_train=True),
            LRScheduler(policy="StepLR", step_size=1, gamma=0.5),
        ],
    ).fit(X, y)
    assert given.epochs == 0  # a fit works on a copy
    history = estimator.history_
    assert history[:, "counted"] == [1, 2, 3, 4]
    assert history[:, "one"] == [1.0] * 4
    assert history[:, "event_lr"] == [0.5**k * _rate(estimator) for k in range(4)]
    # skorch's History: sliced by key
    assert len(history[:, "train_loss"]) == estimator.n_iter_ == 4


@pytest.mark.parametrize("name", NAMES)
def test_early_stopping_callback_stops_and_says_nothing(name):
    X, y = _data(name)
    stop = EarlyStopping(monitor="train_loss", patience=1, threshold=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        estimator = _make(name, callbacks=[stop], max_epochs=10).fit(X, y)
    assert estimator.n_iter_ == 2


@pytest.mark.parametrize("name", NAMES)
def test_a_stopping_rule_not_met_warns(name):
    X, y = _data(name)
    stop = EarlyStopping(monitor="train_loss", patience=50)
    with pytest.warns(ConvergenceWarning, match="max_epochs=4 reached"):
        _make(name, callbacks=[stop]).fit(X, y)


# -- warm starts, partial_fit and resuming -----------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_warm_start_continues_as_one_fit(name):
    X, y = _data(name)
    whole = _make(name, max_epochs=5).fit(X, y)
    warm = _make(name, max_epochs=2, warm_start=True).fit(X, y)
    first = _weights(warm)
    warm.set_params(max_epochs=3).fit(X, y)
    assert warm.n_iter_ == 5 and len(warm.history_) == 5
    _assert_other_weights(first, _weights(warm))
    _assert_same_weights(_weights(whole), _weights(warm))
    # without warm_start, a second fit starts anew
    cold = clone(warm).set_params(warm_start=False, max_epochs=3).fit(X, y)
    assert cold.n_iter_ == 3


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("persist", ["joblib", "skops"])
def test_a_loaded_model_trains_on(name, persist, reloaded):
    X, y = _data(name)
    whole = _make(name, max_epochs=5).fit(X, y)
    part = _make(name, max_epochs=2).fit(X, y)
    loaded = reloaded(part, persist)
    loaded.set_params(warm_start=True, max_epochs=3).fit(X, y)
    assert loaded.n_iter_ == 5
    _assert_same_weights(_weights(whole), _weights(loaded))
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 6


@pytest.mark.parametrize("name", NAMES)
def test_partial_fit_trains_one_epoch_at_a_time(name):
    X, y = _data(name)
    estimator = _make(name)
    extra = {"classes": np.unique(y)} if name.startswith("BatchNorm") else {}
    estimator.partial_fit(X, y, **extra)
    first = _weights(estimator)
    estimator.partial_fit(X, y)
    assert estimator.n_iter_ == 2
    _assert_other_weights(first, _weights(estimator))


# a change of each estimator's architecture, which a warm start refuses
ARCHITECTURE = {
    "BatchNormMLPClassifier": ("hidden_layer_sizes", (9,)),
    "RMLSequencePredictor": ("hidden_size", 17),
    "MaskRCNNSegmenter": ("roi_op", "pool"),
}


def _last_step(estimator):
    """The steps Adam has taken: its state's step count."""
    return max(int(state["step"]) for state in estimator.net_.optimizer_.state.values())


def _batches(estimator):
    return estimator.history_[-1, "train_batch_count"]


class _Mark(Callback):
    def on_epoch_end(self, net, **kwargs):
        net.history.record("mark", True)


@pytest.mark.parametrize("name", NAMES)
def test_a_warm_start_takes_the_new_rate_and_keeps_the_optimizer_state(name):
    X, y = _data(name)
    warm = _make(name, optimizer="adam", lr=0.01, max_epochs=2).fit(X, y)
    reference = clone(warm).fit(X, y)
    optimizer, steps = warm.net_.optimizer_, _last_step(warm)
    new = dict(lr=0.002, optimizer__weight_decay=0.05)
    warm.set_params(warm_start=True, max_epochs=1, **new).fit(X, y)
    assert warm.net_.optimizer_ is optimizer
    assert {(g["lr"], g["weight_decay"]) for g in optimizer.param_groups} == {
        (0.002, 0.05)
    }
    assert _last_step(warm) == steps + _batches(warm)
    # the same as skorch's own route: its set_params on the fitted net, which
    # writes into the optimizer, and one more epoch
    reference.net_.set_params(**new)
    reference.set_params(warm_start=True, max_epochs=1, **new).fit(X, y)
    _assert_same_weights(_weights(reference), _weights(warm))
    # partial_fit too
    warm.set_params(lr=0.001).partial_fit(X, y)
    assert {g["lr"] for g in optimizer.param_groups} == {0.001}
    assert warm.net_.optimizer_ is optimizer


@pytest.mark.parametrize("name", NAMES)
def test_another_optimizer_starts_anew_over_the_same_weights(name):
    X, y = _data(name)
    estimator = _make(name, optimizer="adam", max_epochs=1).fit(X, y)
    before = _weights(estimator)
    estimator.set_params(warm_start=True, optimizer="sgd", lr=0.001).fit(X, y)
    assert type(estimator.net_.optimizer_) is torch.optim.SGD
    assert estimator.net_.optimizer is torch.optim.SGD and estimator.n_iter_ == 2
    assert {g["lr"] for g in estimator.net_.optimizer_.param_groups} == {0.001}
    _assert_other_weights(before, _weights(estimator))


@pytest.mark.parametrize("name", NAMES)
def test_a_warm_start_takes_the_new_batch_size(name):
    X, y = _data(name)
    estimator = _make(name, max_epochs=1).fit(X, y)
    small = _batches(estimator)
    estimator.set_params(warm_start=True, batch_size=len(X)).fit(X, y)
    assert _batches(estimator) < small
    estimator.set_params(batch_size=CASES[name][1]["batch_size"]).partial_fit(X, y)
    assert _batches(estimator) == small


@pytest.mark.parametrize("name", NAMES)
def test_a_warm_start_takes_the_new_callbacks_and_verbosity(name, capsys):
    X, y = _data(name)
    estimator = _make(name, max_epochs=1).fit(X, y)
    estimator.set_params(warm_start=True, callbacks=[_Mark()], verbose=1).fit(X, y)
    assert "mark" not in estimator.history_[0] and estimator.history_[-1, "mark"]
    assert "train_loss" in capsys.readouterr().out
    estimator.set_params(callbacks=None, verbose=0).partial_fit(X, y)
    assert "mark" not in estimator.history_[-1]
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("name", NAMES)
def test_a_warm_start_refuses_another_architecture(name):
    X, y = _data(name)
    estimator = _make(name, max_epochs=1).fit(X, y)
    net, before, rate = estimator.net_, _weights(estimator), estimator.net_.lr
    param, value = ARCHITECTURE[name]
    fitted = getattr(estimator, param)
    estimator.set_params(warm_start=True, lr=0.0005, **{param: value})
    change = re.escape(f"{param} (fitted with {fitted!r}, now {value!r})")
    for method, action in [("fit", "a warm start"), ("partial_fit", "partial_fit")]:
        with pytest.raises(ValueError, match=rf"^{name}: {action} .*{change}.*"):
            getattr(estimator, method)(X, y)
    # the fitted model as it was, its settings too
    assert estimator.net_ is net and estimator.n_iter_ == 1 and net.lr == rate
    _assert_same_weights(before, _weights(estimator))
    estimator.set_params(**{param: fitted}).fit(X, y)
    assert estimator.n_iter_ == 2 and net.lr == 0.0005
    estimator.set_params(warm_start=False, **{param: value}).fit(X, y)
    assert estimator.n_iter_ == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("persist", ["joblib", "skops"])
def test_a_loaded_model_takes_new_settings_and_keeps_its_architecture(
    name, persist, reloaded
):
    X, y = _data(name)
    fitted = _make(name, optimizer="adam", max_epochs=1).fit(X, y)
    loaded = reloaded(fitted, persist)
    param, value = ARCHITECTURE[name]
    with pytest.raises(ValueError, match=re.escape(f"{param} (fitted with")):
        loaded.set_params(warm_start=True, **{param: value}).fit(X, y)
    steps = _last_step(loaded)
    loaded.set_params(**{param: getattr(fitted, param)}, lr=0.002).fit(X, y)
    assert {g["lr"] for g in loaded.net_.optimizer_.param_groups} == {0.002}
    assert _last_step(loaded) == steps + _batches(loaded)


@pytest.mark.parametrize("name", NAMES)
def test_resuming_from_a_checkpoint_equals_an_uninterrupted_fit(name, tmp_path):
    X, y = _data(name)
    resumed_too = RESUMED.get(name, dict)
    whole = _make(name, max_epochs=5, **resumed_too()).fit(X, y)
    checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))
    stopped = _make(
        name, max_epochs=5, callbacks=[checkpoint, _StopAt(3)], **resumed_too()
    ).fit(X, y)
    assert stopped.n_iter_ == 2  # Ctrl-C in epoch 3 keeps epochs 1 and 2
    resumed = _make(
        name, max_epochs=3, callbacks=[LoadInitState(checkpoint)], **resumed_too()
    )
    resumed.fit(X, y)
    assert resumed.n_iter_ == 5
    _assert_same_weights(_weights(whole), _weights(resumed))


# -- Ctrl-C, divergence, verbosity -------------------------------------------


class _CtrlC(Callback):
    """Press Ctrl-C (send SIGINT to the process) ``times`` times in epoch
    ``epoch``: amid the second batch's step (its gradients computed, the
    update not yet made) or, with ``at_epoch_end``, as the epoch ends. Logs
    the training steps begun and ended."""

    def __init__(self, epoch, times=1, at_epoch_end=False):
        self.epoch, self.times, self.at_epoch_end = epoch, times, at_epoch_end

    def on_train_begin(self, net, **kwargs):
        self.steps_ = []

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.steps_.append(("begin", *self._batch(net)))

    def on_grad_computed(self, net, **kwargs):
        if not self.at_epoch_end and self._batch(net) == (self.epoch, 2):
            self._press()

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.steps_.append(("end", *self._batch(net)))

    def on_epoch_end(self, net, **kwargs):
        if self.at_epoch_end and len(net.history) == self.epoch:
            self._press()

    def _batch(self, net):
        return len(net.history), len(net.history[-1]["batches"])

    def _press(self):
        for _ in range(self.times):
            signal.raise_signal(signal.SIGINT)


@pytest.fixture
def _ctrl_c_raises():
    """Python's own Ctrl-C handler (a test runner may have its own)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("_ctrl_c_raises")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stopper", [_CtrlC, _StopAt], ids=["ctrl_c", "callback"])
def test_a_stop_keeps_the_last_complete_epoch_without_a_warning(name, stopper):
    X, y = _data(name)
    two = _make(name, max_epochs=2).fit(X, y)
    stop = EarlyStopping(monitor="train_loss", patience=50)  # a rule, not met
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        stopped = _make(name, callbacks=[("stopper", stopper(3)), stop]).fit(X, y)
    if stopper is _CtrlC:
        # the step pressed in ended (skorch's KeyboardInterrupt would have cut
        # it short); no step began after it
        steps = dict(stopped.net_.callbacks_)["stopper"].steps_
        assert steps[-2:] == [("begin", 3, 2), ("end", 3, 2)]
    # the epoch cut short is undone, and nothing warns
    assert stopped.n_iter_ == len(stopped.history_) == 2
    assert stopped.net_.interrupted_
    _assert_same_weights(_weights(two), _weights(stopped))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("_ctrl_c_raises")
@pytest.mark.parametrize("name", NAMES)
def test_ctrl_c_as_an_epoch_ends_keeps_that_epoch(name):
    X, y = _data(name)
    two = _make(name, max_epochs=2).fit(X, y)
    stopped = _make(name, callbacks=[_CtrlC(2, at_epoch_end=True)]).fit(X, y)
    assert stopped.n_iter_ == 2 and stopped.net_.interrupted_
    _assert_same_weights(_weights(two), _weights(stopped))


@pytest.mark.usefixtures("_ctrl_c_raises")
@pytest.mark.parametrize("name", NAMES)
def test_a_second_ctrl_c_aborts_the_fit(name):
    X, y = _data(name)
    estimator = _make(name, callbacks=[_CtrlC(2, times=2)])
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X, y)
    assert not hasattr(estimator, "net_")  # as before the fit
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # a warm start aborted keeps the model it started from
    fitted = _make(name, max_epochs=1, callbacks=[_CtrlC(2, times=2)]).fit(X, y)
    before = _weights(fitted)
    fitted.set_params(warm_start=True)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(X, y)
    assert fitted.n_iter_ == 1
    _assert_same_weights(before, _weights(fitted))


def test_a_fit_off_the_main_thread_leaves_ctrl_c_alone():
    X, y = _data("BatchNormMLPClassifier")
    handler = signal.getsignal(signal.SIGINT)
    fitted = []
    thread = threading.Thread(
        target=lambda: fitted.append(_make("BatchNormMLPClassifier").fit(X, y))
    )
    thread.start()
    thread.join()
    assert fitted[0].n_iter_ == 4
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.parametrize("name", NAMES)
def test_a_diverging_loss_names_the_rate_and_leaves_no_model(name):
    X, y = _data(name)
    estimator = _make(name, optimizer="sgd", lr=3e38, max_epochs=20)
    if name.startswith("RML"):
        estimator.set_params(callbacks__clip=None)  # clipping would tame it
    with pytest.raises(FloatingPointError, match=r"lr=3e\+38"):
        estimator.fit(X, y)
    assert not hasattr(estimator, "net_")


@pytest.mark.parametrize("name", NAMES)
def test_a_diverging_warm_start_keeps_the_fitted_model(name):
    X, y = _data(name)
    estimator = _make(name, optimizer="sgd", lr=0.01, max_epochs=1).fit(X, y)
    before = _weights(estimator)
    estimator.set_params(warm_start=True, lr=3e38, max_epochs=20)
    if name.startswith("RML"):
        estimator.set_params(callbacks__clip=None)  # clipping would tame it
    with pytest.raises(FloatingPointError):
        estimator.fit(X, y)
    assert estimator.n_iter_ == 1
    _assert_same_weights(before, _weights(estimator))


@pytest.mark.parametrize("name", NAMES)
def test_verbosity(name, capsys):
    X, y = _data(name)
    _make(name, max_epochs=2, verbose=0).fit(X, y)
    assert capsys.readouterr() == ("", "")
    _make(name, max_epochs=2, verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert out.count("train_loss") == 1 and len(out.strip().splitlines()) == 4
    assert "it/s" not in err
    _make(name, max_epochs=2, verbose=2).fit(X, y)
    out, err = capsys.readouterr()
    assert "train_loss" in out and "it/s" in err
