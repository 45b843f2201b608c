"""Ratings matrices for non-negative matrix factorization."""

import numpy as np
from sklearn.utils import check_random_state


def load_ratings_example():
    """Return the 3 x 3 customer-by-movie ratings matrix of the NMF seed.

    Customers 0 and 1 like movies 0 and 1; customer 2 likes movie 2. At rank 1,
    NMF gives ``W`` (normalised to sum 1) ``[0.389, 0.386, 0.225]`` and
    ``H = [11.22, 10.58, 5.41]``, with the same Frobenius error (4.501) as the
    rank-1 SVD.

    Returns
    -------
    V : ndarray of shape (3, 3)
        Ratings, customers in rows and movies in columns.

    Examples
    --------
    >>> from skpapers.datasets import load_ratings_example
    >>> load_ratings_example()
    array([[5., 4., 1.],
           [4., 5., 1.],
           [2., 1., 5.]])
    """
    return np.array([[5.0, 4.0, 1.0], [4.0, 5.0, 1.0], [2.0, 1.0, 5.0]])


def make_low_rank_ratings(
    n_users=200,
    n_items=100,
    *,
    rank=5,
    noise=0.1,
    missing_fraction=0.0,
    random_state=None,
):
    """Make a non-negative low-rank ratings matrix, optionally with gaps.

    Ratings are ``W @ H`` for random non-negative ``W`` and ``H``, rescaled to
    the range 1 to 5, plus Gaussian noise of standard deviation ``noise``
    (clipped at 0). A ``missing_fraction`` of the entries, drawn uniformly, is
    set to NaN, sparing one rating per user and per item.

    Parameters
    ----------
    n_users : int, default=200
        Rows.
    n_items : int, default=100
        Columns.
    rank : int, default=5
        Rank of the noise-free ratings.
    noise : float, default=0.1
        Standard deviation of the added noise.
    missing_fraction : float, default=0.0
        Share of entries replaced by NaN, in ``[0, 1)``.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    X : ndarray of shape (n_users, n_items)
        Ratings with NaN where missing.
    X_full : ndarray of shape (n_users, n_items)
        The same ratings with nothing missing.

    Examples
    --------
    >>> from skpapers.datasets import make_low_rank_ratings
    >>> X, X_full = make_low_rank_ratings(20, 10, missing_fraction=0.2, random_state=0)
    >>> import numpy as np
    >>> X.shape, round(float(np.isnan(X).mean()), 1)
    ((20, 10), 0.2)
    """
    if not 0 <= missing_fraction < 1:
        raise ValueError(
            f"missing_fraction must be in [0, 1), got {missing_fraction!r}."
        )
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
    return X, X_full
