"""NMF at recommender scale: a synthetic ratings matrix shaped like MovieLens-20M.

Real ratings matrices are sparse and their unstored entries are unknown, not
zero. ``NMF(missing="unstored")`` fits the stored ratings only, in memory
``O(nnz + (n_users + n_items) * rank)``: a dense matrix of this shape would
need 30 GB.

The data: 138,000 users x 27,000 items and 20 million ratings of 1 to 5 (the
shape of MovieLens-20M), drawn from a rank-20 non-negative model plus noise,
with a long tail of item popularity and of user activity (as in MovieLens,
users rate about 20 items or more). 10% of the ratings are held out, keeping
only those whose user and item have a rating left for training.

Reported: time per iteration, the whole fit, the peak memory the fit adds
(``tracemalloc``, which sees numpy's arrays), and the held-out RMSE against
the item-mean baseline (each item's mean training rating) and the global mean.

Usage::

    python benchmarks/bench_nmf_ratings.py                    # full size
    python benchmarks/bench_nmf_ratings.py --scale 0.05       # 5% of the users
    python benchmarks/bench_nmf_ratings.py --max-iter 100 --alpha 0.002
"""

import argparse
import json
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp
from _environment import environment
from tabulate import tabulate

from skpapers.decomposition import NMF

N_USERS, N_ITEMS, N_RATINGS, RANK = 138_000, 27_000, 20_000_000, 20


def make_ratings(scale=1.0, rank=RANK, noise=0.5, seed=0):
    """A MovieLens-20M-shaped ratings matrix: ``(R, users, items, true)``.

    ``scale`` shrinks the users and the ratings together (items stay).
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = int(N_USERS * scale), N_ITEMS
    n_ratings = int(N_RATINGS * scale)
    # user activity: a lognormal tail above the 20 ratings everyone gives;
    # drawn a third over, since a user drawing an item twice rates it once
    wanted = int(n_ratings * 1.35)
    extra = rng.lognormal(mean=0.0, sigma=1.2, size=n_users)
    counts = 20 + np.floor(extra / extra.sum() * (wanted - 20 * n_users))
    users = np.repeat(np.arange(n_users, dtype=np.int32), counts.astype(np.int64))
    # item popularity: Zipf-like, so that a few items hold most ratings
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    items = rng.choice(n_items, size=users.size, p=popularity).astype(np.int32)
    pairs = np.unique(users.astype(np.int64) * n_items + items)  # no repeats
    if pairs.size > n_ratings:
        pairs = np.sort(rng.choice(pairs, size=n_ratings, replace=False))
    users = (pairs // n_items).astype(np.int32)
    # an item nobody rated has no factor to learn: keep the rated ones (all of
    # them at full size; a few of the rarest at small --scale)
    rated, items = np.unique(pairs % n_items, return_inverse=True)
    items, n_items = items.astype(np.int32), rated.size
    # a rank-20 non-negative taste model, mean rating about 3.5
    U = rng.gamma(2.0, 1.0, size=(n_users, rank))
    V = rng.gamma(2.0, 1.0, size=(n_items, rank))
    true = np.empty(users.size)
    for start in range(0, users.size, 1 << 20):
        part = slice(start, start + (1 << 20))
        true[part] = np.einsum("ij,ij->i", U[users[part]], V[items[part]])
    true = 1.0 + 4.0 * (true - true.min()) / (true.max() - true.min())
    true = np.clip(true * 3.5 / true.mean(), 1, 5)
    ratings = np.clip(np.rint(true + rng.normal(0, noise, size=true.size)), 1, 5)
    return users, items, ratings, (n_users, n_items)


def split(users, items, ratings, shape, test_size=0.1, seed=1):
    """Training CSR matrix and held-out ``(users, items, ratings)``."""
    rng = np.random.default_rng(seed)
    held = rng.random(users.size) < test_size
    train = ~held
    # a held-out rating whose user or item has nothing left goes back
    seen_users = np.bincount(users[train], minlength=shape[0]) > 0
    seen_items = np.bincount(items[train], minlength=shape[1]) > 0
    back = held & ~(seen_users[users] & seen_items[items])
    held &= ~back
    train = ~held
    R = sp.csr_matrix((ratings[train], (users[train], items[train])), shape=shape)
    return R, (users[held], items[held], ratings[held])


def rmse(predicted, actual):
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rank", type=int, default=RANK)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--alpha", type=float, default=0.0)
    parser.add_argument("--inner-iter", default="auto")
    parser.add_argument("--json", help="save the rows here")
    args = parser.parse_args()
    print(environment())

    start = time.perf_counter()
    users, items, ratings, shape = make_ratings(args.scale, rank=args.rank)
    R, (test_users, test_items, test_ratings) = split(users, items, ratings, shape)
    print(
        f"data: {shape[0]:,} users x {shape[1]:,} items, {R.nnz:,} training and "
        f"{test_ratings.size:,} held-out ratings, made in "
        f"{time.perf_counter() - start:.1f} s"
    )
    del users, items, ratings

    inner = args.inner_iter if args.inner_iter == "auto" else int(args.inner_iter)
    nmf = NMF(
        args.rank,
        missing="unstored",
        init="random",
        random_state=0,
        max_iter=args.max_iter,
        alpha_W=args.alpha,
        inner_iter=inner,
        verbose=1,
    )
    tracemalloc.start()
    start = time.perf_counter()
    W = nmf.fit_transform(R)
    fit_time = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    predicted = np.clip(nmf.predict_entries(W, test_users, test_items), 1, 5)
    item_sums = np.bincount(R.indices, weights=R.data, minlength=shape[1])
    item_means = item_sums / np.maximum(np.bincount(R.indices, minlength=shape[1]), 1)
    rows = [
        ["NMF(missing='unstored')", rmse(predicted, test_ratings)],
        ["item mean", rmse(item_means[test_items], test_ratings)],
        ["global mean", rmse(np.full(test_ratings.size, R.data.mean()), test_ratings)],
    ]
    print(tabulate(rows, headers=["held-out", "RMSE"], floatfmt=".4f"))
    summary = {
        "users": shape[0],
        "items": shape[1],
        "train_ratings": int(R.nnz),
        "test_ratings": int(test_ratings.size),
        "rank": args.rank,
        "iterations": int(nmf.n_iter_),
        "fit_s": fit_time,
        "s_per_iteration": fit_time / nmf.n_iter_,
        "peak_fit_GiB": peak / 2**30,
        "data_GiB": (R.data.nbytes + R.indices.nbytes + R.indptr.nbytes) / 2**30,
        "dense_GiB": shape[0] * shape[1] * 8 / 2**30,
        "rmse": dict(rows),
    }
    print(
        tabulate(
            [[k, v] for k, v in summary.items() if k != "rmse"],
            floatfmt=".3f",
            tablefmt="plain",
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), **summary}, f, indent=2)


if __name__ == "__main__":
    main()
