"""Time skpapers' NMF against scikit-learn's, multiplicative updates both.

Both run on the same data from the same initialisation (``init="custom"``,
identical copies of ``W0`` and ``H0``), with ``tol=0`` and the same
``max_iter`` so that they make the same iterations, and no penalty. Cases:

- ``dense``: a 2000 x 1000 low-rank product plus noise, rank 30;
- ``sparse``: a 20000 x 5000 CSR matrix at 0.5% density, rank 20;

each in float32 and float64, which both libraries keep.

Each case is timed at two levels, one row each:

- ``fit``: the estimators' ``fit_transform``, all that a user waits for
  (skpapers' also solves for the ``W`` it returns, the one ``transform``
  gives, so its loss is lower than scikit-learn's);
- ``solver``: the update loops alone, scikit-learn's public
  ``non_negative_factorization`` against skpapers' ``fit_factors``, which
  make the same iterations.

Columns: milliseconds per iteration (the median over the repeats of the run's
time divided by ``max_iter``, after one warm-up run of each), the speed-up
``sklearn / skpapers`` (above 1: skpapers is faster), the final loss of each
(the divergence between ``X`` and the returned ``W @ H``, both computed by one
float64 function here), the relative difference of the two losses and the
largest difference of the two ``H`` relative to its largest entry. The target,
for the ``solver`` rows: a loss difference below ``1e-6`` and a speed-up of at
least 2. Runs start ``--pause`` seconds apart (0.2 by default), so that the
BLAS threads one leaves spinning do not slow the next.

Usage::

    python benchmarks/bench_nmf.py            # 200 iterations, 5 repeats
    python benchmarks/bench_nmf.py --quick    # 50 iterations, 3 repeats
    python benchmarks/bench_nmf.py --losses frobenius kullback-leibler \
        --json nmf.json

Timings depend on the machine and on what else runs on it: this script
asserts nothing about them.
"""

import argparse
import json
import time
import warnings

import numpy as np
import scipy.sparse as sp
from _environment import environment
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.decomposition import non_negative_factorization
from sklearn.exceptions import ConvergenceWarning

from skpapers.decomposition import NMF
from skpapers.decomposition._nmf_solvers import (
    Problem,
    Regularization,
    beta_loss_to_float,
    fit_factors,
)

CASES = {
    "dense": {"shape": (2000, 1000), "rank": 30, "density": None},
    "sparse": {"shape": (20000, 5000), "rank": 20, "density": 0.005},
}
DTYPES = (np.float32, np.float64)
LEVELS = ("fit", "solver")


def make_data(case, dtype, seed=0):
    """Non-negative ``X`` and an initial ``W0``, ``H0`` for one case.

    ``W0`` and ``H0`` follow scikit-learn's ``init="random"`` scale,
    ``|N(0, 1)| * sqrt(mean(X) / rank)``.
    """
    spec = CASES[case]
    (n_samples, n_features), rank = spec["shape"], spec["rank"]
    rng = np.random.default_rng(seed)
    if spec["density"] is None:
        X = rng.random((n_samples, rank)) @ rng.random((rank, n_features))
        X += 0.1 * rng.random((n_samples, n_features))
    else:
        X = sp.random_array(
            (n_samples, n_features), density=spec["density"], rng=rng
        ).tocsr()
    X = X.astype(dtype)
    scale = np.sqrt(X.mean() / rank)
    W0 = (scale * np.abs(rng.standard_normal((n_samples, rank)))).astype(dtype)
    H0 = (scale * np.abs(rng.standard_normal((rank, n_features)))).astype(dtype)
    return X, W0, H0


def divergence(X, W, H, beta):
    """Frobenius (``beta=2``) or KL (``beta=1``) divergence, in float64."""
    W, H = W.astype(np.float64), H.astype(np.float64)
    if sp.issparse(X):
        X = X.astype(np.float64).tocsr()
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        wh = np.einsum("ij,ji->i", W[rows], H[:, X.indices])
        if beta == 2:
            gram = np.vdot(W.T @ W, H @ H.T)  # |W H|^2
            return 0.5 * float(np.sum((X.data - wh) ** 2) - np.sum(wh**2) + gram)
        x, positive = X.data, X.data > 0
        total = float(W.sum(axis=0) @ H.sum(axis=1))
        kl = np.sum(x[positive] * np.log(x[positive] / wh[positive]))
        return float(kl - x.sum() + total)
    X = X.astype(np.float64)
    WH = W @ H
    if beta == 2:
        return 0.5 * float(np.sum((X - WH) ** 2))
    positive = X > 0
    x = X[positive]
    return float(np.sum(x * np.log(x / WH[positive])) - X.sum() + WH.sum())


def _runners(level, X, k, beta_loss, max_iter):
    """Two functions ``(W0, H0) -> (W, H)``: scikit-learn's, then ours."""
    options = {"init": "custom", "solver": "mu", "beta_loss": beta_loss}
    options.update(max_iter=max_iter, tol=0)
    if level == "fit":

        def sklearn_run(W0, H0):
            model = SklearnNMF(k, alpha_W=0.0, alpha_H=0.0, **options)
            return model.fit_transform(X, W=W0, H=H0), model.components_

        def skpapers_run(W0, H0):
            model = NMF(k, alpha_W=0.0, alpha_H=0.0, **options)
            return model.fit_transform(X, W=W0, H=H0), model.components_

        return sklearn_run, skpapers_run

    def sklearn_run(W0, H0):
        W, H, _ = non_negative_factorization(X, W=W0, H=H0, n_components=k, **options)
        return W, H

    def skpapers_run(W0, H0):
        result = fit_factors(
            Problem(X),
            W0,
            H0,
            beta=beta_loss_to_float(beta_loss),
            regularization=Regularization(),
            solver="mu",
            max_iter=max_iter,
            tol=0,
        )
        return result.W, result.H

    return sklearn_run, skpapers_run


def time_pair(runners, W0, H0, repeats, pause):
    """Median seconds of each runner and its last ``(W, H)``.

    Each gets fresh copies of ``W0``, ``H0`` (scikit-learn updates them in
    place) and one warm-up run; the two alternate so that a busy moment on
    the machine slows both alike. Each run starts ``pause`` seconds after the
    last, by when OpenBLAS's idle threads have stopped spinning (after about
    0.1 s) and so cannot slow the threads of the next run.
    """
    times = [[] for _ in runners]
    outputs = [None for _ in runners]
    for repeat in range(repeats + 1):
        for i, run in enumerate(runners):
            W, H = W0.copy(), H0.copy()
            time.sleep(pause)
            start = time.perf_counter()
            outputs[i] = run(W, H)
            if repeat:  # the first round warms up
                times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times], outputs


def benchmark(max_iter, repeats, losses, cases=tuple(CASES), levels=LEVELS, pause=0.2):
    """One row (a dict) per case, dtype, loss and level."""
    rows = []
    for case in cases:
        for dtype in DTYPES:
            X, W0, H0 = make_data(case, dtype)
            for beta_loss in losses:
                beta = beta_loss_to_float(beta_loss)
                for level in levels:
                    runners = _runners(level, X, W0.shape[1], beta_loss, max_iter)
                    (t_sk, t_ours), outputs = time_pair(runners, W0, H0, repeats, pause)
                    (W_sk, H_sk), (W_ours, H_ours) = outputs
                    if W_ours.dtype != dtype or W_sk.dtype != dtype:
                        raise TypeError("a solver did not keep the dtype")
                    loss_sk = divergence(X, W_sk, H_sk, beta)
                    loss_ours = divergence(X, W_ours, H_ours, beta)
                    H_sk64 = H_sk.astype(np.float64)
                    rows.append(
                        {
                            "case": case,
                            "dtype": np.dtype(dtype).name,
                            "loss": beta_loss,
                            "level": level,
                            "max_iter": max_iter,
                            "sklearn_ms_per_iter": 1e3 * t_sk / max_iter,
                            "skpapers_ms_per_iter": 1e3 * t_ours / max_iter,
                            "speedup": t_sk / t_ours,
                            "sklearn_loss": loss_sk,
                            "skpapers_loss": loss_ours,
                            "loss_rel_diff": abs(loss_ours - loss_sk) / abs(loss_sk),
                            "H_rel_diff": float(
                                np.max(np.abs(H_ours - H_sk64)) / np.max(np.abs(H_sk64))
                            ),
                        }
                    )
                    print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'case':<7}{'dtype':<8}{'loss':<6}{'level':<7}"
    f"{'sklearn':>10}{'skpapers':>10}{'speed-up':>9}"
    f"{'sklearn loss':>15}{'skpapers loss':>15}{'loss diff':>11}{'H diff':>10}"
)


def format_row(row):
    """One line of the table."""
    return (
        f"{row['case']:<7}{row['dtype']:<8}{row['loss'][:4]:<6}{row['level']:<7}"
        f"{row['sklearn_ms_per_iter']:>10.3f}{row['skpapers_ms_per_iter']:>10.3f}"
        f"{row['speedup']:>8.2f}x"
        f"{row['sklearn_loss']:>15.8g}{row['skpapers_loss']:>15.8g}"
        f"{row['loss_rel_diff']:>11.1e}{row['H_rel_diff']:>10.1e}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="50 iterations and 3 repeats"
    )
    parser.add_argument(
        "--iterations", type=int, help="iterations per fit (200; 50 with --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, help="timed runs per row (5; 3 with --quick)"
    )
    parser.add_argument(
        "--losses",
        nargs="+",
        default=["frobenius"],
        choices=["frobenius", "kullback-leibler"],
        help="beta losses to run (default: frobenius)",
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.2,
        help="seconds of rest before each timed run (default 0.2; 0 lets each "
        "run start while the last one's BLAS threads still spin)",
    )
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args(argv)
    max_iter = args.iterations or (50 if args.quick else 200)
    repeats = args.repeats or (3 if args.quick else 5)

    print(
        f"NMF solver='mu', {max_iter} iterations, median of {repeats} runs "
        f"({args.pause:g} s apart); ms per iteration; speed-up = sklearn / skpapers"
    )
    print(HEADER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows = benchmark(
            max_iter, repeats, args.losses, args.cases, args.levels, args.pause
        )
    if args.json:
        settings = {"max_iter": max_iter, "repeats": repeats, "pause": args.pause}
        with open(args.json, "w") as f:
            json.dump(
                {
                    "environment": environment("numpy", "scipy", "sklearn", "skpapers"),
                    "settings": settings,
                    "rows": rows,
                },
                f,
                indent=2,
            )
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
