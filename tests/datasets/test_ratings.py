"""load_ratings_example and make_low_rank_ratings: the NMF reproduction's data."""

import sys

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skpapers.datasets import load_ratings_example, make_low_rank_ratings

SEED_RATINGS = [[5.0, 4.0, 1.0], [4.0, 5.0, 1.0], [2.0, 1.0, 5.0]]


@pytest.fixture
def no_pandas(monkeypatch):
    """``import pandas`` fails, as where pandas is not installed."""
    monkeypatch.setitem(sys.modules, "pandas", None)


def test_the_example_is_the_seed_matrix_in_a_bunch():
    ratings = load_ratings_example()
    assert ratings.data.dtype == np.float64
    assert ratings.data.tolist() == SEED_RATINGS
    assert ratings.target is None and ratings.frame is None
    assert ratings.feature_names == ["movie_0", "movie_1", "movie_2"]
    assert "4.501" in ratings.DESCR
    V, y = load_ratings_example(return_X_y=True)
    assert V.tolist() == SEED_RATINGS and y is None
    # each call hands out its own matrix
    V[0, 0] = 0
    assert load_ratings_example().data[0, 0] == 5


def test_the_example_as_a_frame():
    pytest.importorskip("pandas")
    ratings = load_ratings_example(as_frame=True)
    assert ratings.frame is ratings.data
    assert list(ratings.frame.columns) == ratings.feature_names
    assert ratings.frame.to_numpy().tolist() == SEED_RATINGS
    X, y = load_ratings_example(as_frame=True, return_X_y=True)
    assert X.equals(ratings.frame) and y is None


def test_a_frame_without_pandas_says_so(no_pandas):
    message = "load_ratings_example with as_frame=True requires pandas"
    with pytest.raises(ImportError, match=message):
        load_ratings_example(as_frame=True)
    message = "make_low_rank_ratings with as_frame=True requires pandas"
    with pytest.raises(ImportError, match=message):
        make_low_rank_ratings(3, 2, as_frame=True)
    # arrays need no pandas
    assert load_ratings_example().data.shape == (3, 3)


def test_gaps_are_nan_where_missing_and_spare_each_row_and_column():
    X, X_full = make_low_rank_ratings(40, 30, missing_fraction=0.5, random_state=0)
    missing = np.isnan(X)
    assert missing.sum() == round(0.5 * X.size)
    assert not np.isnan(X_full).any() and (X_full >= 0).all()
    assert np.array_equal(X[~missing], X_full[~missing])
    assert (~missing).any(axis=0).all() and (~missing).any(axis=1).all()


def test_the_rank_holds_without_noise():
    _, X_full = make_low_rank_ratings(30, 20, rank=3, noise=0, random_state=0)
    # W @ H has rank 3; the shift into 1 to 5 adds a constant: rank 4
    assert np.linalg.matrix_rank(X_full) == 4
    assert np.linalg.matrix_rank(X_full - X_full[:1]) == 3
    assert X_full.min() == pytest.approx(1) and X_full.max() == pytest.approx(5)


def test_the_bunch_and_the_tuple_agree():
    X, X_full = make_low_rank_ratings(6, 4, missing_fraction=0.3, random_state=1)
    ratings = make_low_rank_ratings(
        6, 4, missing_fraction=0.3, random_state=1, return_X_y=False
    )
    assert np.array_equal(ratings.X, X, equal_nan=True)
    assert np.array_equal(ratings.X_full, X_full)
    assert ratings.feature_names == ["item_0", "item_1", "item_2", "item_3"]
    assert ratings.parameters == {
        "n_users": 6,
        "n_items": 4,
        "rank": 5,
        "noise": 0.1,
        "missing_fraction": 0.3,
        "random_state": 1,
    }
    assert "NaN" in ratings.DESCR


def test_ratings_as_frames_keep_the_gaps():
    pytest.importorskip("pandas")
    X, X_full = make_low_rank_ratings(6, 4, missing_fraction=0.3, random_state=1)
    ratings = make_low_rank_ratings(
        6, 4, missing_fraction=0.3, random_state=1, as_frame=True, return_X_y=False
    )
    assert list(ratings.X.columns) == ratings.feature_names
    assert np.array_equal(ratings.X.to_numpy(), X, equal_nan=True)
    assert np.array_equal(ratings.X_full.to_numpy(), X_full)


def test_numpy_integers_count_as_ints():
    X, _ = make_low_rank_ratings(
        np.int64(5), np.int32(4), rank=np.int64(2), random_state=0
    )
    assert np.array_equal(X, make_low_rank_ratings(5, 4, rank=2, random_state=0)[0])


def test_one_by_one():
    X, X_full = make_low_rank_ratings(1, 1, missing_fraction=0.9, random_state=0)
    # the one rating is spared, and the matrix rescaled without dividing by 0
    assert X.shape == (1, 1) and np.isfinite(X).all()
    assert np.array_equal(X, X_full)


@pytest.mark.parametrize(
    "args, params, name",
    [
        ((-1,), {}, "n_users"),
        ((10, 0), {}, "n_items"),
        ((10.0,), {}, "n_users"),
        ((), dict(rank=2.5), "rank"),
        ((), dict(noise=-0.1), "noise"),
        ((), dict(noise=np.inf), "noise"),
        ((), dict(missing_fraction=1), "missing_fraction"),
        ((), dict(missing_fraction=np.nan), "missing_fraction"),
        ((), dict(random_state="seed"), "random_state"),
        ((), dict(as_frame="yes"), "as_frame"),
    ],
)
def test_bad_parameters_are_named(args, params, name):
    with pytest.raises(
        InvalidParameterError, match=f"'{name}' parameter of make_low_rank_ratings"
    ):
        make_low_rank_ratings(*args, **params)


def test_the_example_refuses_a_bad_flag():
    with pytest.raises(
        InvalidParameterError, match="'return_X_y' parameter of load_ratings_example"
    ):
        load_ratings_example(return_X_y="yes")
