"""The contract every skpapers estimator keeps, run over all four alike.

clone, a ``Pipeline`` step, ``GridSearchCV(n_jobs=2)``, ``joblib`` and
``skops`` round trips (and a GPU-saved model loading on the CPU), fitting
twice, ``random_state`` determinism, and bad input refused with an error that
names the estimator and the problem while a fitted model stays as it was.
"""

from dataclasses import dataclass, field

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

from skpapers import (
    NMF,
    BatchNormMLPClassifier,
    MaskRCNNSegmenter,
    RMLSequencePredictor,
)
from skpapers.datasets import make_shapes
from skpapers.utils import SKOPS_TRUSTED_TYPES, all_estimators


@dataclass
class Case:
    """How to exercise one estimator: a small instance, data, its output."""

    estimator: object
    data: callable  # () -> (X, y)
    output: callable  # (fitted, X) -> what it computes
    grid: dict  # one of the paper's axes, for the grid search
    preprocessor: object  # a transformer to put before it in a Pipeline
    bad_inputs: dict  # kind -> (X, y, what the message must say)
    trusted: list = field(default_factory=list)  # skops types of a fitted one
    # parameters that would build another model, to change after fit
    reshaping: dict = field(default_factory=dict)


def _ratings():
    return np.random.RandomState(0).rand(30, 6) * 5, None


def _tabular():
    X = np.random.RandomState(0).randn(60, 4)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _words():
    words = ["abc", "ba", "cab", "a", "bcca", "acb", "cc", "bab"] * 3
    return [w.upper() for w in words], [w[::-1] for w in words]


def _shapes():
    X, y = make_shapes(8, image_size=32, max_instances=2, random_state=0)
    names = np.array(["circle", "square", "triangle"])
    return X, [dict(target, labels=names[target["labels"] - 1]) for target in y]


def _lower(words):
    return [w.lower() for w in words]


def _unit_float(images):
    return np.asarray(images, dtype=np.float32) / 255


def _transform(fitted, X):
    return fitted.transform(X)


def _proba(fitted, X):
    return fitted.predict_proba(X)


def _predict(fitted, X):
    return fitted.predict(X)


_NAN_TABLE = np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0], [2.0, 2.0]])
_NAN_IMAGES = np.full((2, 16, 16, 3), 0.5)
_NAN_IMAGES[0, 3, 3, 0] = np.nan

CASES = {
    "NMF": Case(
        estimator=NMF(n_components=2, init="random", max_iter=50, random_state=0),
        data=_ratings,
        output=_transform,
        grid={"solver": ["mu", "additive"]},
        preprocessor=MinMaxScaler(),
        bad_inputs={
            # NaN is a missing rating to NMF (tested with it); infinity is not
            "nan": (np.array([[1.0, np.inf], [2.0, 3.0]]), None, "infinity"),
            "shape": (np.ones(4), None, "2D array"),
            "empty": (np.ones((0, 3)), None, "0 sample"),
            "type": ([["a", "b"], ["c", "d"]], None, "string"),
        },
        trusted=["skpapers.decomposition._nmf.NMF"],
        reshaping={"n_components": 3, "solver": "additive"},
    ),
    "BatchNormMLPClassifier": Case(
        estimator=BatchNormMLPClassifier(
            (8,), max_epochs=3, batch_size=16, random_state=0
        ),
        data=_tabular,
        output=_proba,
        grid={"batch_norm": [True, False]},
        preprocessor=StandardScaler(),
        bad_inputs={
            "nan": (_NAN_TABLE, [0, 1, 0, 1], "NaN"),
            "shape": (np.ones(4), [0, 1, 0, 1], "2D array"),
            "empty": (np.ones((0, 3)), [], "0 sample"),
            "type": ([["a", "b"], ["c", "d"]], [0, 1], "string"),
        },
        trusted=["skpapers.neural_network._bn_mlp.BatchNormMLPClassifier"],
        reshaping={"hidden_layer_sizes": (5, 5), "activation": "tanh"},
    ),
    "RMLSequencePredictor": Case(
        estimator=RMLSequencePredictor(
            embedding_dim=8, hidden_size=16, max_epochs=2, random_state=0
        ),
        data=_words,
        output=_predict,
        grid={"tau": [0.0, 0.5]},
        preprocessor=FunctionTransformer(_lower),
        bad_inputs={
            "nan": ([["a", np.nan], ["b"]], ["a", "b"], "NaN"),
            "shape": (np.ones((3, 2, 2)), ["a", "b", "c"], "hashable"),
            "empty": ([], [], "no sequences"),
            "type": ([1, 2], ["a", "b"], "string or a list of tokens"),
        },
        trusted=[
            "skpapers.sequence._rml.RMLSequencePredictor",
            "skpapers.sequence._rml.Vocabulary",
        ],
        reshaping={"hidden_size": 8, "cell": "lstm"},
    ),
    "MaskRCNNSegmenter": Case(
        estimator=MaskRCNNSegmenter(
            max_epochs=1,
            batch_size=4,
            image_size=32,
            score_threshold=0.0,  # after one epoch, few scores are high
            random_state=0,
        ),
        data=_shapes,
        output=_predict,
        grid={"roi_op": ["align", "pool"]},
        preprocessor=FunctionTransformer(_unit_float),
        bad_inputs={
            "nan": (_NAN_IMAGES, [{"masks": np.zeros((0, 16, 16), bool)}] * 2, "NaN"),
            "shape": (np.ones((4, 5)), [], "must be images"),
            "empty": ([], [], "no images"),
            "type": (["a", "b"], [], "dtype"),
        },
        trusted=["skpapers.segmentation._maskrcnn.MaskRCNNSegmenter"],
        reshaping={"class_agnostic": True, "image_size": 48},
    ),
}
NAMES = list(CASES)
TORCH_NAMES = [name for name in NAMES if name != "NMF"]


def assert_same_output(left, right):
    """Equal outputs: arrays, lists of sequences, or per-image dicts."""
    if isinstance(left, np.ndarray):
        np.testing.assert_array_equal(left, right)
        return
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a == b


def _fresh(name):
    return clone(CASES[name].estimator)


@pytest.fixture(scope="module", params=NAMES)
def fitted(request):
    """(name, fitted estimator, X, y, its output on X), once per estimator."""
    name = request.param
    X, y = CASES[name].data()
    estimator = _fresh(name).fit(X, y)
    return name, estimator, X, y, CASES[name].output(estimator, X)


def test_cases_cover_every_estimator():
    assert set(CASES) == {name for name, _ in all_estimators()}
    assert sorted(t for case in CASES.values() for t in case.trusted) == sorted(
        SKOPS_TRUSTED_TYPES
    )


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_unfitted_with_the_same_params(name):
    X, y = CASES[name].data()
    estimator = _fresh(name).fit(X, y)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert not [k for k in vars(copy) if k.endswith("_") and not k.startswith("_")]


def test_fitting_twice_gives_the_same_result(fitted):
    name, estimator, X, y, expected = fitted
    again = clone(estimator).fit(X, y)
    assert_same_output(CASES[name].output(again.fit(X, y), X), expected)


@pytest.mark.parametrize("name", NAMES)
def test_random_state_decides_the_result(name):
    case = CASES[name]
    X, y = case.data()
    outputs = [
        case.output(_fresh(name).set_params(random_state=seed).fit(X, y), X)
        for seed in (1, 1, 2)
    ]
    assert_same_output(outputs[0], outputs[1])
    with pytest.raises(AssertionError):
        assert_same_output(outputs[0], outputs[2])


@pytest.mark.parametrize("name", NAMES)
def test_last_step_of_a_pipeline(name):
    case = CASES[name]
    X, y = case.data()
    pipe = make_pipeline(clone(case.preprocessor), _fresh(name)).fit(X, y)
    prepared = clone(case.preprocessor).fit_transform(X)
    alone = _fresh(name).fit(prepared, y)
    output = _transform if name == "NMF" else case.output
    assert_same_output(output(pipe, X), case.output(alone, prepared))
    assert pipe.score(X, y) == pytest.approx(alone.score(prepared, y))


@pytest.mark.parametrize("name", NAMES)
def test_grid_search_in_two_processes_matches_one(name):
    case = CASES[name]
    X, y = case.data()
    searches = [
        GridSearchCV(_fresh(name), case.grid, cv=2, n_jobs=n_jobs).fit(X, y)
        for n_jobs in (1, 2)
    ]
    one, two = (s.cv_results_["mean_test_score"] for s in searches)
    assert np.isfinite(two).all()
    np.testing.assert_allclose(two, one, rtol=1e-6)
    assert searches[1].best_params_ == searches[0].best_params_


def test_joblib_round_trip(fitted, tmp_path):
    name, estimator, X, _, expected = fitted
    joblib.dump(estimator, tmp_path / "model.joblib")
    torch.manual_seed(0)
    draw = torch.rand(3)
    torch.manual_seed(0)
    loaded = joblib.load(tmp_path / "model.joblib")
    assert torch.equal(torch.rand(3), draw)  # loading draws nothing of the user's
    assert_same_output(CASES[name].output(loaded, X), expected)


def test_a_model_saved_after_set_params_loads_as_fitted(fitted, tmp_path):
    # Parameters changed since fit take effect at the next fit, not on load.
    name, estimator, X, _, expected = fitted
    changed = clone(estimator).set_params(**CASES[name].reshaping)
    changed.__dict__.update(
        {k: v for k, v in vars(estimator).items() if k not in CASES[name].reshaping}
    )
    assert_same_output(CASES[name].output(changed, X), expected)
    joblib.dump(changed, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert loaded.get_params() == changed.get_params()
    assert_same_output(CASES[name].output(loaded, X), expected)


def test_skops_round_trip_trusts_only_the_listed_types(fitted, tmp_path):
    skops_io = pytest.importorskip("skops.io")
    name, estimator, X, _, expected = fitted
    path = tmp_path / "model.skops"
    skops_io.dump(estimator, path)
    assert sorted(skops_io.get_untrusted_types(file=path)) == CASES[name].trusted
    loaded = skops_io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    assert_same_output(CASES[name].output(loaded, X), expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine with no GPU")
@pytest.mark.parametrize("persist", ["joblib", "skops"])
def test_a_model_saved_on_a_gpu_loads_on_the_cpu(fitted, tmp_path, persist):
    name, estimator, X, _, expected = fitted
    if name == "NMF":
        pytest.skip("NMF has no device")
    skops_io = pytest.importorskip("skops.io")
    # What a GPU machine saves: the state is arrays either way, the device
    # parameter says cuda.
    saved = clone(estimator)
    saved.__dict__.update(vars(estimator), device="cuda")
    path = tmp_path / "model"
    dump, load = {
        "joblib": (joblib.dump, joblib.load),
        "skops": (
            skops_io.dump,
            lambda p: skops_io.load(p, trusted=SKOPS_TRUSTED_TYPES),
        ),
    }[persist]
    dump(saved, path)
    with pytest.warns(UserWarning, match="device='cuda', which this machine lacks"):
        loaded = load(path)
    assert loaded.device == "cpu"
    assert_same_output(CASES[name].output(loaded, X), expected)


@pytest.mark.parametrize("kind", ["shape", "type"])
def test_bad_input_to_a_fitted_model_is_refused_naming_the_estimator(fitted, kind):
    name, estimator, *_ = fitted
    bad_X, _, problem = CASES[name].bad_inputs[kind]
    with pytest.raises((ValueError, TypeError)) as error:
        CASES[name].output(estimator, bad_X)
    message = str(error.value)
    assert name in message and problem in message, message


@pytest.mark.parametrize("kind", ["nan", "shape", "empty", "type"])
def test_bad_input_is_refused_naming_the_estimator(fitted, kind):
    name, estimator, X, _, expected = fitted
    bad_X, bad_y, problem = CASES[name].bad_inputs[kind]
    state = dict(vars(estimator))
    with pytest.raises((ValueError, TypeError)) as error:
        estimator.fit(bad_X, bad_y)
    message = str(error.value)
    assert name in message and problem in message, message
    assert vars(estimator).keys() == state.keys()
    assert_same_output(CASES[name].output(estimator, X), expected)
