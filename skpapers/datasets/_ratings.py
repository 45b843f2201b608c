"""Ratings matrices for non-negative matrix factorization."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from skpapers.datasets._base import _as_frame

_RATINGS_EXAMPLE_DESCR = """\
.. _ratings_example:

The NMF seed's ratings example
------------------------------

A 3 x 3 customer-by-movie matrix of ratings from 1 to 5: customers 0 and 1
like movies 0 and 1, customer 2 likes movie 2::

    [[5, 4, 1],
     [4, 5, 1],
     [2, 1, 5]]

:Number of samples (customers): 3
:Number of features (movies): 3
:Missing values: none
:Target: none (NMF is unsupervised)

At rank 1, the multiplicative updates of Lee and Seung (2000) give ``W``
(normalised to sum 1) ``[0.389, 0.386, 0.225]`` and
``H = [11.22, 10.58, 5.41]``, with the same Frobenius error (4.501) as the
rank-1 SVD.
"""

_LOW_RANK_RATINGS_DESCR = """\
.. _low_rank_ratings:

Synthetic low-rank ratings
--------------------------

Ratings are ``W @ H`` for random non-negative ``W`` (``n_users`` x
``rank``) and ``H`` (``rank`` x ``n_items``), both Gamma(1) distributed,
rescaled to the range 1 to 5, plus Gaussian noise of standard deviation
``noise``, clipped at 0. A ``missing_fraction`` of the entries, drawn
uniformly, is NaN in ``X`` ("unknown", not zero), sparing one rating per
user and per item; ``X_full`` holds every rating. ``parameters`` records the
arguments the matrix was made with.
"""


@validate_params(
    {"return_X_y": ["boolean"], "as_frame": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def load_ratings_example(*, return_X_y=False, as_frame=False):
    """Load the 3 x 3 customer-by-movie ratings matrix of the NMF seed.

    Customers 0 and 1 like movies 0 and 1; customer 2 likes movie 2. At rank 1,
    NMF gives ``W`` (normalised to sum 1) ``[0.389, 0.386, 0.225]`` and
    ``H = [11.22, 10.58, 5.41]``, with the same Frobenius error (4.501) as the
    rank-1 SVD.

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, None)`` instead of a Bunch: the ratings have
        no target, and ``None`` is what ``fit(X, y=None)`` takes.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame with a column per movie (this
        needs pandas).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : {ndarray, DataFrame} of shape (3, 3)
            Ratings, customers in rows and movies in columns, float64.
        target : None
            There is no target.
        feature_names : list of str
            The movies: ``["movie_0", "movie_1", "movie_2"]``.
        frame : DataFrame of shape (3, 3) or None
            ``data`` as a DataFrame when ``as_frame=True``, else None.
        DESCR : str
            The description of the data set.

    (data, None) : tuple if ``return_X_y`` is True
        The ratings, and no target.

    Raises
    ------
    ImportError
        If ``as_frame=True`` and pandas is missing.

    Examples
    --------
    >>> from skpapers.datasets import load_ratings_example
    >>> ratings = load_ratings_example()
    >>> ratings.data
    array([[5., 4., 1.],
           [4., 5., 1.],
           [2., 1., 5.]])
    >>> ratings.feature_names
    ['movie_0', 'movie_1', 'movie_2']
    >>> V, _ = load_ratings_example(return_X_y=True)
    >>> V.shape
    (3, 3)
    """
    data = np.array([[5.0, 4.0, 1.0], [4.0, 5.0, 1.0], [2.0, 1.0, 5.0]])
    feature_names = [f"movie_{j}" for j in range(data.shape[1])]
    frame = None
    if as_frame:
        frame = data = _as_frame("load_ratings_example", data, feature_names)
    if return_X_y:
        return data, None
    return Bunch(
        data=data,
        target=None,
        feature_names=feature_names,
        frame=frame,
        DESCR=_RATINGS_EXAMPLE_DESCR,
    )


@validate_params(
    {
        "n_users": [Interval(Integral, 1, None, closed="left")],
        "n_items": [Interval(Integral, 1, None, closed="left")],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "missing_fraction": [Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
        "return_X_y": ["boolean"],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_low_rank_ratings(
    n_users=200,
    n_items=100,
    *,
    rank=5,
    noise=0.1,
    missing_fraction=0.0,
    random_state=None,
    return_X_y=True,
    as_frame=False,
):
    """Make a non-negative low-rank ratings matrix, optionally with gaps.

    Ratings are ``W @ H`` for random non-negative ``W`` and ``H``, rescaled to
    the range 1 to 5, plus Gaussian noise of standard deviation ``noise``
    (clipped at 0). A ``missing_fraction`` of the entries, drawn uniformly, is
    set to NaN, sparing one rating per user and per item.

    Parameters
    ----------
    n_users : int, default=200
        Rows, at least 1.
    n_items : int, default=100
        Columns, at least 1.
    rank : int, default=5
        Rank of ``W @ H``, at least 1; the shift into 1 to 5 adds a
        constant, so the noise-free ratings have rank ``rank + 1`` at most.
    noise : float, default=0.1
        Standard deviation of the added noise, finite and at least 0.
    missing_fraction : float, default=0.0
        Share of entries replaced by NaN, in ``[0, 1)``.
    random_state : int, RandomState instance or None, default=None
        Seed.
    return_X_y : bool, default=True
        If True, return the tuple ``(X, X_full)``; if False, a Bunch (as
        scikit-learn's generators do since version 1.7).
    as_frame : bool, default=False
        If True, ``X`` and ``X_full`` are pandas DataFrames with a column per
        item (this needs pandas).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch` if ``return_X_y`` is False
        Dictionary-like object, with the following attributes.

        X : {ndarray, DataFrame} of shape (n_users, n_items)
            Ratings with NaN where missing.
        X_full : {ndarray, DataFrame} of shape (n_users, n_items)
            The same ratings with nothing missing.
        feature_names : list of str
            The items: ``"item_0"``, ``"item_1"``, ...
        parameters : dict
            The arguments the ratings were made with.
        DESCR : str
            The description of the generator.

    (X, X_full) : tuple if ``return_X_y`` is True
        The ratings with and without the gaps.

    Raises
    ------
    ImportError
        If ``as_frame=True`` and pandas is missing.

    Examples
    --------
    >>> from skpapers.datasets import make_low_rank_ratings
    >>> X, X_full = make_low_rank_ratings(20, 10, missing_fraction=0.2, random_state=0)
    >>> import numpy as np
    >>> X.shape, round(float(np.isnan(X).mean()), 1)
    ((20, 10), 0.2)
    >>> ratings = make_low_rank_ratings(20, 10, random_state=0, return_X_y=False)
    >>> ratings.feature_names[:2], ratings.parameters["rank"]
    (['item_0', 'item_1'], 5)
    """
    parameters = {
        "n_users": n_users,
        "n_items": n_items,
        "rank": rank,
        "noise": noise,
        "missing_fraction": missing_fraction,
        "random_state": random_state,
    }
    # numpy integers and bools pass the checks; numpy's sizes want plain ints
    n_users, n_items, rank = int(n_users), int(n_items), int(rank)
    rng = check_random_state(random_state)
    clean = rng.gamma(1.0, size=(n_users, rank)) @ rng.gamma(1.0, size=(rank, n_items))
    low, high = clean.min(), clean.max()
    clean = 1 + 4 * (clean - low) / max(high - low, np.finfo(float).eps)
    X_full = np.maximum(clean + noise * rng.standard_normal(clean.shape), 0)
    X = X_full.copy()
    # one rating per row and per column is kept; the gaps come from the rest
    kept = np.zeros(X.shape, dtype=bool)
    kept[np.arange(n_users), rng.randint(n_items, size=n_users)] = True
    kept[rng.randint(n_users, size=n_items), np.arange(n_items)] = True
    candidates = np.flatnonzero(~kept)
    n_missing = min(round(missing_fraction * X.size), candidates.size)
    X.flat[rng.choice(candidates, size=n_missing, replace=False)] = np.nan
    feature_names = [f"item_{j}" for j in range(n_items)]
    if as_frame:
        X = _as_frame("make_low_rank_ratings", X, feature_names)
        X_full = _as_frame("make_low_rank_ratings", X_full, feature_names)
    if return_X_y:
        return X, X_full
    return Bunch(
        X=X,
        X_full=X_full,
        feature_names=feature_names,
        parameters=parameters,
        DESCR=_LOW_RANK_RATINGS_DESCR,
    )
