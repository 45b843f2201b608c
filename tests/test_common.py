"""scikit-learn's own estimator checks over every public skpapers estimator.

Estimators of tabular data run all of ``parametrize_with_checks``. Those
whose input is not a 2-D array (sequences, images) declare it in their tags
(``input_tags.two_d_array = False``), and scikit-learn then runs none of its
checks on them; here they run the checks that need no data, and the
contracts of the data checks on data of their own kind. The rest are listed
with the reason.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

from skpapers.utils import all_estimators

# Small, fast settings per estimator; the defaults are used where none given.
FAST_PARAMS = {
    "RMLSequencePredictor": dict(
        embedding_dim=8, hidden_size=16, max_epochs=2, random_state=0
    ),
    "MaskRCNNSegmenter": dict(
        max_epochs=1, batch_size=4, image_size=32, score_threshold=0.0, random_state=0
    ),
}

# Checks an estimator is known to fail, with the reason. The goal is empty.
EXPECTED_FAILED_CHECKS = {
    "NMF": {},
    "BatchNormMLPClassifier": {},
}


def _sequence_data():
    words = ["abc", "ba", "cab", "a", "bcca", "acb", "cc", "bab"] * 3
    return words, [word[::-1] for word in words]


def _image_data():
    from skpapers.datasets import make_shapes

    return make_shapes(8, image_size=32, max_instances=2, random_state=0)


# Data of each non-tabular estimator's own kind: (X, y).
SAMPLE_DATA = {
    "RMLSequencePredictor": _sequence_data,
    "MaskRCNNSegmenter": _image_data,
}

_NEEDS_TABLE = "needs a numeric 2-D X: this estimator takes {kind}"
# scikit-learn's data checks that cannot apply to a non-tabular estimator.
_TABULAR_DATA_CHECKS = [
    "check_array_api_input",
    "check_complex_data",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_nan_inf",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
]
# scikit-learn's data checks that cannot apply to a non-tabular estimator;
# their contracts that do apply (NaN, empty data) are in each one's tests.
NOT_APPLICABLE = {
    "RMLSequencePredictor": dict.fromkeys(
        _TABULAR_DATA_CHECKS, _NEEDS_TABLE.format(kind="lists of sequences")
    ),
    "MaskRCNNSegmenter": dict.fromkeys(
        _TABULAR_DATA_CHECKS, _NEEDS_TABLE.format(kind="images")
    ),
}

DATA_FREE_CHECKS = [
    check_estimator_cloneable,
    check_estimator_tags_renamed,
    check_valid_tag_types,
    check_estimator_repr,
    check_no_attributes_set_in_init,
    check_get_params_invariance,
    check_set_params,
    check_parameters_default_constructible,
    check_do_not_raise_errors_in_init_or_set_params,
    check_mixin_order,
]


def _instance(name, Estimator):
    return Estimator(**FAST_PARAMS.get(name, {}))


def _tabular():
    for name, Estimator in all_estimators():
        estimator = _instance(name, Estimator)
        if get_tags(estimator).input_tags.two_d_array:
            yield estimator


def _non_tabular():
    return [
        _instance(name, Estimator)
        for name, Estimator in all_estimators()
        if not get_tags(Estimator()).input_tags.two_d_array
    ]


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


def test_every_estimator_is_checked():
    names = {name for name, _ in all_estimators()}
    assert {
        "NMF",
        "BatchNormMLPClassifier",
        "RMLSequencePredictor",
        "MaskRCNNSegmenter",
    } <= names
    assert set(EXPECTED_FAILED_CHECKS) <= names
    non_tabular = {type(e).__name__ for e in _non_tabular()}
    assert non_tabular == set(SAMPLE_DATA) == set(NOT_APPLICABLE)


@parametrize_with_checks(
    list(_tabular()), expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# -- estimators of sequences and images ---------------------------------------


def _ids(estimator):
    return type(estimator).__name__


@pytest.mark.parametrize("estimator", _non_tabular(), ids=_ids)
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda check: check.__name__)
def test_data_free_checks(estimator, check):
    check(type(estimator).__name__, estimator)


def _assert_same(left, right):
    """Predictions equal: sequences, or per-image dicts of arrays."""
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                if np.issubdtype(np.asarray(a[key]).dtype, np.floating):
                    # batches of other sizes round differently, as in sklearn's checks
                    np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5)
                else:
                    np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a == b


def _subset(X, rows):
    return X[rows] if isinstance(X, np.ndarray) else [X[i] for i in rows]


def _fit(estimator):
    X, y = SAMPLE_DATA[type(estimator).__name__]()
    return clone(estimator).fit(X, y), X, y


@pytest.mark.parametrize("estimator", _non_tabular(), ids=_ids)
def test_unfitted_estimator_refuses_to_predict(estimator):
    X, _ = SAMPLE_DATA[type(estimator).__name__]()
    with pytest.raises(NotFittedError):
        clone(estimator).predict(X)


@pytest.mark.parametrize("estimator", _non_tabular(), ids=_ids)
def test_fit_returns_self_and_keeps_params(estimator):
    X, y = SAMPLE_DATA[type(estimator).__name__]()
    fresh = clone(estimator)
    params = pickle.dumps(fresh.get_params())
    public = {k for k in vars(fresh) if not k.startswith("_")}
    assert fresh.fit(X, y) is fresh
    assert pickle.dumps(fresh.get_params()) == params
    added = {k for k in vars(fresh) if not k.startswith("_")} - public
    assert added and all(k.endswith("_") for k in added)


@pytest.mark.parametrize("estimator", _non_tabular(), ids=_ids)
def test_predict_changes_nothing_and_ignores_order_and_subsets(estimator):
    fitted, X, y = _fit(estimator)
    state = dict(vars(fitted))
    full = fitted.predict(X)
    assert vars(fitted) == state
    order = np.random.RandomState(0).permutation(len(X))
    _assert_same(fitted.predict(_subset(X, order)), [full[i] for i in order])
    _assert_same([fitted.predict(_subset(X, [i]))[0] for i in range(5)], full[:5])
    assert isinstance(fitted.score(X, y), float)


@pytest.mark.parametrize("estimator", _non_tabular(), ids=_ids)
def test_fit_twice_pickle_and_pipeline_give_the_same_predictions(estimator):
    fitted, X, y = _fit(estimator)
    expected = fitted.predict(X)
    _assert_same(fitted.fit(X, y).predict(X), expected)
    _assert_same(pickle.loads(pickle.dumps(fitted)).predict(X), expected)
    pipe = make_pipeline(FunctionTransformer(), clone(estimator)).fit(X, y)
    _assert_same(pipe.predict(X), expected)


@pytest.mark.parametrize("estimator", _non_tabular(), ids=_ids)
def test_empty_data_is_refused(estimator):
    with pytest.raises(ValueError, match="no "):
        clone(estimator).fit([], [])
