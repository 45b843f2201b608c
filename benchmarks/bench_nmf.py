"""Time skpapers' NMF against scikit-learn's, the whole fit first.

Headline (``--parts whole``): what a user waits for. Each estimator's
``fit_transform`` at its default settings (``init=None``, so NNDSVDA for
both; ``max_iter=200``; default ``tol``), scikit-learn's ``solver="mu"`` and,
for the Frobenius loss, its default ``solver="cd"``, against skpapers'
``NMF()``. Columns: the median wall time over the repeats (the runs
alternate), the ratio ``skpapers / scikit-learn`` (below 1: skpapers is
faster; the target is at most 0.5 against ``mu``), the final loss of each
(the divergence between ``X`` and the returned ``W @ H``, computed in float64
by one function for both) and the peak memory of the call (``tracemalloc``,
which sees numpy's arrays, in a separate untimed run with ``random_state=0``
for every estimator: the same seed for every start, where the timed runs'
starts are random). Then the time of
``import skpapers.decomposition`` against ``import sklearn.decomposition``,
each in a fresh interpreter.

Detail (``--parts solver``): the update loops alone. Both start from the same
``W0``, ``H0`` (``init="custom"``), run the same number of iterations
(``tol=0``) with no penalty, with the paper's plain alternation
(``inner_iter=1``) so that they make the same iterations: scikit-learn's
``non_negative_factorization`` against skpapers' ``fit_factors``. Columns:
milliseconds per iteration, the speed-up ``sklearn / skpapers``, both losses,
their relative difference and the largest difference of the two ``H``
relative to its largest entry.

Cases:

- ``dense``: a 2000 x 1000 low-rank product plus noise, rank 30;
- ``sparse``: a 20000 x 5000 CSR matrix at 0.5% density, rank 20;

each in float32 and float64, which both libraries keep; Itakura-Saito on
dense data only (it needs ``X`` without zeros: ``X + 0.1``). For the
Frobenius loss, ``to cd`` is the time of skpapers' fit with the fewest
iterations (``tol=0``, from a ladder) whose loss is at most the one
``solver="cd"`` ends at, and ``/cd`` its ratio to ``cd``'s time.

Usage::

    python benchmarks/bench_nmf.py                 # the whole fit, all losses
    python benchmarks/bench_nmf.py --quick         # Frobenius, 2 repeats
    python benchmarks/bench_nmf.py --parts solver --iterations 200
    python benchmarks/bench_nmf.py --json nmf.json

Timings depend on the machine and on what else runs on it: this script
asserts nothing about them.
"""

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp
from _environment import environment
from sklearn.base import clone
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
LOSSES = ("frobenius", "kullback-leibler", "itakura-saito")


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
    """Frobenius (2), KL (1) or Itakura-Saito (0, dense) divergence, in float64."""
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
    if beta == 0:
        ratio = X / np.maximum(WH, np.finfo(np.float64).tiny)
        return float(np.sum(ratio - np.log(ratio) - 1))
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
            model = NMF(k, alpha_W=0.0, alpha_H=0.0, inner_iter=1, **options)
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
            n_inner=1,
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


def whole_fit(cases, losses, repeats, pause):
    """The headline rows: each estimator's fit_transform at its defaults."""
    rows = []
    for case in cases:
        for dtype in DTYPES:
            X, W0, _ = make_data(case, dtype)
            k = W0.shape[1]
            for beta_loss in losses:
                if beta_loss == "itakura-saito" and sp.issparse(X):
                    continue
                data = X + dtype(0.1) if beta_loss == "itakura-saito" else X
                makers = {
                    "skpapers": NMF(k, beta_loss=beta_loss),
                    "sklearn mu": SklearnNMF(k, solver="mu", beta_loss=beta_loss),
                }
                if beta_loss == "frobenius":
                    makers["sklearn cd"] = SklearnNMF(k, solver="cd")
                times = {name: [] for name in makers}
                for _ in range(repeats):  # alternate: a busy moment slows all
                    for name, make in makers.items():
                        time.sleep(pause)
                        model = clone(make)
                        start = time.perf_counter()
                        model.fit_transform(data)
                        times[name].append(time.perf_counter() - start)
                beta = beta_loss_to_float(beta_loss)
                row = {"case": case, "dtype": np.dtype(dtype).name, "loss": beta_loss}
                for name, make in makers.items():
                    # the same seed for every estimator's start (random
                    # otherwise), so that the losses compare alike
                    model = clone(make).set_params(random_state=0)
                    tracemalloc.start()
                    W = model.fit_transform(data)
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                    if W.dtype != dtype:
                        raise TypeError(f"{name} did not keep the dtype")
                    row[f"{name} s"] = float(np.median(times[name]))
                    row[f"{name} loss"] = divergence(data, W, model.components_, beta)
                    row[f"{name} MiB"] = peak / 2**20
                    row[f"{name} n_iter"] = int(model.n_iter_)
                for peer in ("sklearn mu", "sklearn cd"):
                    if f"{peer} s" in row:
                        row[f"time / {peer}"] = row["skpapers s"] / row[f"{peer} s"]
                if "sklearn cd loss" in row:
                    seconds, n_iter = time_to_reach(
                        data, k, row["sklearn cd loss"], repeats, pause
                    )
                    row["skpapers to cd loss s"] = seconds
                    row["skpapers to cd loss n_iter"] = n_iter
                    row["to cd loss / sklearn cd"] = seconds / row["sklearn cd s"]
                rows.append(row)
                print(format_whole(row), flush=True)
    return rows


LADDER = (1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200, 300, 500, 1000)


def time_to_reach(X, k, target, repeats, pause):
    """Seconds (median) of skpapers' fewest-iteration fit (``tol=0``) whose
    final Frobenius loss is at most ``target``, and those iterations."""
    for max_iter in LADDER:
        model = NMF(k, max_iter=max_iter, tol=0)
        W = model.fit_transform(X)
        if divergence(X, W, model.components_, 2) <= target:
            break
    times = []
    for _ in range(repeats):
        time.sleep(pause)
        start = time.perf_counter()
        NMF(k, max_iter=max_iter, tol=0).fit_transform(X)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), max_iter


WHOLE_HEADER = (
    f"{'case':<7}{'dtype':<8}{'loss':<6}"
    f"{'skpapers':>10}{'mu':>9}{'cd':>9}{'/mu':>7}{'/cd':>7}"
    f"{'loss ours':>12}{'loss mu':>12}{'loss cd':>12}"
    f"{'MiB ours':>9}{'mu':>7}{'cd':>7}{'to cd':>9}{'/cd':>6}"
)


def format_whole(row):
    """One line of the headline table: seconds, ratios, losses, peak MiB."""

    def get(key, fmt):
        return format(row[key], fmt) if key in row else "-"

    return (
        f"{row['case']:<7}{row['dtype']:<8}{row['loss'][:4]:<6}"
        f"{get('skpapers s', '.3f'):>10}{get('sklearn mu s', '.3f'):>9}"
        f"{get('sklearn cd s', '.3f'):>9}"
        f"{get('time / sklearn mu', '.2f'):>7}{get('time / sklearn cd', '.2f'):>7}"
        f"{get('skpapers loss', '.5g'):>12}{get('sklearn mu loss', '.5g'):>12}"
        f"{get('sklearn cd loss', '.5g'):>12}"
        f"{get('skpapers MiB', '.0f'):>9}{get('sklearn mu MiB', '.0f'):>7}"
        f"{get('sklearn cd MiB', '.0f'):>7}"
        f"{get('skpapers to cd loss s', '.3f'):>9}"
        f"{get('to cd loss / sklearn cd', '.2f'):>6}"
    )


def import_times(repeats=3):
    """Median seconds of each import in a fresh interpreter, alternating."""
    modules = ("skpapers.decomposition", "sklearn.decomposition")
    times = {module: [] for module in modules}
    for _ in range(repeats):
        for module in modules:
            code = (
                "import time; start = time.perf_counter(); "
                f"import {module}; print(time.perf_counter() - start)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            times[module].append(float(out.stdout))
    return {module: float(np.median(t)) for module, t in times.items()}


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
        "--parts",
        nargs="+",
        default=["whole"],
        choices=["whole", "solver"],
        help="the whole fit at defaults (the headline) and/or the loops alone",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Frobenius only, 2 repeats"
    )
    parser.add_argument(
        "--iterations", type=int, help="loop iterations for --parts solver (200)"
    )
    parser.add_argument("--repeats", type=int, help="timed runs per row (3)")
    parser.add_argument(
        "--losses", nargs="+", choices=LOSSES, help="beta losses (default: all)"
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.2,
        help="seconds of rest before each timed run (default 0.2; 0 lets each "
        "run start while the last one's BLAS threads still spin)",
    )
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args(argv)
    losses = args.losses or (["frobenius"] if args.quick else list(LOSSES))
    repeats = args.repeats or (2 if args.quick else 3)
    max_iter = args.iterations or 200
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if "whole" in args.parts:
            print(
                f"fit_transform at default settings, median of {repeats} runs; "
                "seconds, skpapers / scikit-learn, final loss, peak MiB"
            )
            print(WHOLE_HEADER)
            results["whole"] = whole_fit(args.cases, losses, repeats, args.pause)
            imports = import_times()
            results["import"] = imports
            for module, seconds in imports.items():
                print(f"import {module}: {seconds:.2f} s")
        if "solver" in args.parts:
            print(
                f"\nthe loops alone, solver='mu', {max_iter} iterations, median of "
                f"{repeats} runs; ms per iteration; speed-up = sklearn / skpapers"
            )
            print(HEADER)
            results["solver"] = benchmark(
                max_iter, repeats, losses, args.cases, ("solver",), args.pause
            )
    if args.json:
        settings = {"max_iter": max_iter, "repeats": repeats, "pause": args.pause}
        with open(args.json, "w") as f:
            json.dump(
                {
                    "environment": environment("numpy", "scipy", "sklearn", "skpapers"),
                    "settings": settings,
                    **results,
                },
                f,
                indent=2,
            )
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
