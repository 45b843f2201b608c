"""Tests for skpapers.decomposition.NMF: the paper's claims, peers, contracts."""

import io
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import xlogy
from sklearn.decomposition import NMF as SklearnNMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils import check_random_state

from skpapers.datasets import load_ratings_example, make_low_rank_ratings
from skpapers.decomposition import NMF, _nmf, _nmf_solvers
from skpapers.decomposition._nmf_solvers import (
    Problem,
    Regularization,
    fit_factors,
    initialize_factors,
)

BETAS = ["frobenius", "kullback-leibler", "itakura-saito"]


@pytest.fixture
def X():
    rng = np.random.RandomState(0)
    return np.abs(rng.randn(30, 12)) + 0.05


def _custom_init(X, k, seed=0):
    rng = np.random.RandomState(seed)
    W = np.abs(rng.randn(X.shape[0], k)).astype(X.dtype)
    H = np.abs(rng.randn(k, X.shape[1])).astype(X.dtype)
    return W, H


def _low_rank(n=200, m=90, k=8, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, k) @ rng.rand(k, m) + 0.01 * rng.rand(n, m)


# -- the seed's worked example ----------------------------------------------


def test_ratings_example_reproduces_the_seed():
    V = load_ratings_example().data
    nmf = NMF(n_components=1, init="nndsvd", tol=0, max_iter=500).fit(V)
    W = nmf.transform(V).ravel()
    scale = W.sum()
    assert_allclose(W / scale, [0.389, 0.386, 0.225], atol=6e-4)
    assert_allclose(nmf.components_.ravel() * scale, [11.22, 10.58, 5.41], atol=6e-3)
    assert_allclose(
        W[:, None] * nmf.components_,
        [[4.36, 4.11, 2.10], [4.34, 4.09, 2.09], [2.52, 2.38, 1.22]],
        atol=6e-3,
    )
    singular_values = np.linalg.svd(V, compute_uv=False)
    svd_error = np.sqrt(np.sum(singular_values[1:] ** 2))
    assert nmf.reconstruction_err_ == pytest.approx(4.501, abs=5e-4)
    assert nmf.reconstruction_err_ == pytest.approx(svd_error, rel=1e-9)


# -- agreement with scikit-learn's multiplicative solver --------------------


@pytest.mark.parametrize("beta_loss", BETAS)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_iter", [1, 30])
def test_mu_agrees_with_scikit_learn_iterate_for_iterate(
    X, beta_loss, sparse, dtype, max_iter
):
    if sparse and beta_loss == "itakura-saito":
        pytest.skip("Itakura-Saito needs X without zeros")
    data = X.astype(dtype)
    if sparse:
        data[data < 0.5] = 0
        data = sp.csr_matrix(data)
    W0, H0 = _custom_init(X.astype(dtype), 4)
    ours = NMF(
        4, init="custom", beta_loss=beta_loss, max_iter=max_iter, tol=0, inner_iter=1
    )
    ours.fit(data, W=W0, H=H0)
    theirs = SklearnNMF(
        4, init="custom", solver="mu", beta_loss=beta_loss, max_iter=max_iter, tol=0
    )
    theirs.fit(data, W=W0.copy(), H=H0.copy())
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert ours.components_.dtype == dtype
    assert_allclose(ours.components_, theirs.components_, rtol=rtol, atol=rtol)
    assert ours.n_iter_ == theirs.n_iter_ == max_iter


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threaded_sparse_products_agree_with_scikit_learn(monkeypatch, dtype):
    # Blocks of a few entries force the threaded products that only large
    # matrices use otherwise; the fit must not change.
    monkeypatch.setattr(_nmf_solvers, "_MIN_BLOCK_NNZ", 40)
    monkeypatch.setattr(_nmf_solvers, "_max_threads", lambda: 3)
    rng = np.random.RandomState(0)
    X = sp.random(120, 50, density=0.1, random_state=rng, dtype=dtype, format="csr")
    assert Problem(X).threaded and Problem(X).T.threaded
    W0, H0 = _custom_init(X.toarray(), 5)
    ours = NMF(5, init="custom", max_iter=40, tol=0, inner_iter=1)
    ours.fit(X, W=W0, H=H0)
    theirs = SklearnNMF(5, init="custom", solver="mu", max_iter=40, tol=0)
    theirs.fit(X, W=W0.copy(), H=H0.copy())
    rtol = 1e-11 if dtype == np.float64 else 1e-4
    assert_allclose(ours.components_, theirs.components_, rtol=rtol, atol=rtol)
    assert ours.reconstruction_err_ == pytest.approx(
        np.linalg.norm(X.toarray() - ours.transform(X) @ ours.components_), rel=rtol
    )


def test_the_callers_sparse_matrix_is_left_as_given():
    # Unsorted indices with a duplicate entry: the fit sums it on a copy.
    X = sp.csr_matrix(
        (np.array([1.0, 2.0, 3.0, 0.5]), np.array([2, 0, 1, 1]), np.array([0, 2, 4])),
        shape=(2, 3),
    )
    data, indices = X.data.copy(), X.indices.copy()
    dense = X.toarray()
    nmf = NMF(1, init="nndsvda", max_iter=50).fit(X)
    assert_allclose(X.data, data)
    assert_allclose(X.indices, indices)
    assert not X.has_sorted_indices
    expected = NMF(1, init="nndsvda", max_iter=50).fit(dense)
    assert_allclose(nmf.components_, expected.components_, rtol=1e-10)


def test_mu_stops_where_scikit_learn_stops(X):
    W0, H0 = _custom_init(X, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = NMF(3, init="custom", tol=1e-3, max_iter=500, inner_iter=1)
        ours.fit(X, W=W0, H=H0)
        theirs = SklearnNMF(3, init="custom", solver="mu", tol=1e-3, max_iter=500)
        theirs.fit(X, W=W0.copy(), H=H0.copy())
    assert 10 <= ours.n_iter_ < 500
    assert ours.n_iter_ == theirs.n_iter_


@pytest.mark.parametrize("tol", [1e-3, 1e-4])
def test_accelerated_schedule_stops_once_the_recent_fall_is_small(tol):
    # The default schedule checks tol after every iteration, on the fall of
    # the error over the last few iterations scaled to 10; scikit-learn's
    # 10-iteration window would still hold the large falls before them.
    rng = np.random.default_rng(0)
    X = rng.random((200, 6)) @ rng.random((6, 80)) + 0.05 * rng.random((200, 80))
    nmf = NMF(6, tol=tol, max_iter=500, random_state=0).fit(X)
    assert_allclose(nmf.loss_iterations_, np.arange(nmf.n_iter_ + 1))
    error = np.sqrt(2 * nmf.loss_curve_)
    w = _nmf._RATE_WINDOW
    rate = (error[:-w] - error[w:]) * 10 / w  # rate[n - w]: at iteration n
    small = np.flatnonzero(rate[10 - w :] < tol * error[0]) + 10
    assert nmf.n_iter_ == small[0] < 500
    # the same iterates further on: where scikit-learn's window would stop
    longer = NMF(6, tol=0, max_iter=nmf.n_iter_ + 40, random_state=0).fit(X)
    assert_allclose(longer.loss_curve_[: nmf.n_iter_ + 1], nmf.loss_curve_)
    error = np.sqrt(2 * longer.loss_curve_)
    window = np.flatnonzero(error[:-10] - error[10:] < tol * error[0]) + 10
    assert window[0] > nmf.n_iter_


def test_penalties_agree_with_scikit_learn(X):
    W0, H0 = _custom_init(X, 4)
    params = dict(alpha_W=0.01, alpha_H=0.02, l1_ratio=0.3, max_iter=40, tol=0)
    ours = NMF(4, init="custom", inner_iter=1, **params).fit(X, W=W0, H=H0)
    theirs = SklearnNMF(4, init="custom", solver="mu", **params)
    theirs.fit(X, W=W0.copy(), H=H0.copy())
    assert_allclose(ours.components_, theirs.components_, rtol=1e-12)


@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar"])
def test_initialisation_follows_scikit_learns_rules(X, init, monkeypatch):
    # The NNDSVD rules are scikit-learn's; only the randomised SVD under them
    # is cheaper. Given the same singular triplets, the starts are equal.
    from sklearn.decomposition import _nmf as sklearn_nmf

    svds = []
    range_svd = _nmf_solvers._range_svd

    def recorded(*args, **kwargs):
        svds.append(range_svd(*args, **kwargs))
        return svds[-1]

    def same_svd(X, k, random_state):  # draws what ours drew: nndsvdar's later
        size = min(k + 10, *X.shape)
        check_random_state(random_state).standard_normal((X.shape[1], size))
        return svds[-1]

    monkeypatch.setattr(_nmf_solvers, "_range_svd", recorded)
    name = "_randomized_svd" if hasattr(sklearn_nmf, "_randomized_svd") else None
    monkeypatch.setattr(sklearn_nmf, name or "randomized_svd", same_svd)
    W, H = initialize_factors(X, 5, init, np.random.RandomState(3))
    random_state = np.random.RandomState(3)  # draws agree
    W_sk, H_sk = sklearn_nmf._initialize_nmf(X, 5, init=init, random_state=random_state)
    assert len(svds) == (init != "random")
    assert_allclose(W, W_sk, rtol=1e-10, atol=1e-12)
    assert_allclose(H, H_sk, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_the_starts_randomised_svd_finds_the_leading_singular_triplets(dtype, sparse):
    rng = np.random.default_rng(0)
    # rank 8 with most entries zero, and a little noise on the others
    W = rng.random((300, 8)) * (rng.random((300, 8)) < 0.3)
    H = rng.random((8, 200)) * (rng.random((8, 200)) < 0.3)
    X = sp.csr_matrix(W @ H)
    X.data *= 1 + 1e-3 * rng.random(X.nnz)
    X = (X if sparse else X.toarray()).astype(dtype)
    U, S, Vt = _nmf_solvers._range_svd(Problem(X), 8, 2, np.random.RandomState(0))
    exact = np.linalg.svd(X.toarray() if sparse else X, compute_uv=False)[:8]
    assert U.dtype == Vt.dtype == dtype
    tolerance = 1e-4 if dtype == np.float32 else 1e-9
    assert_allclose(S, exact, rtol=tolerance)
    assert_allclose(U.T @ U, np.eye(8), atol=10 * tolerance)
    assert_allclose(Vt @ Vt.T, np.eye(8), atol=10 * tolerance)
    dense = X.toarray() if sparse else X
    projected = U.T @ dense @ Vt.T
    assert_allclose(projected, np.diag(S), rtol=tolerance, atol=tolerance * S[0])


# -- the paper's theorems: the loss never increases -------------------------


def _assert_never_increases(curve):
    curve = np.asarray(curve)
    rises = np.diff(curve) / np.maximum(np.abs(curve[:-1]), 1e-300)
    assert rises.max() <= 1e-12, f"loss rose by a relative {rises.max():.3g}"


@pytest.mark.parametrize("beta_loss", BETAS)
@pytest.mark.parametrize(
    "solver, learning_rate",
    [("mu", "auto"), ("additive", "multiplicative"), ("additive", "auto")],
)
@pytest.mark.parametrize("missing", [False, True])
def test_loss_never_increases(
    X, beta_loss, solver, learning_rate, missing, monkeypatch
):
    # the estimator evaluates the costly losses every 10 iterations; here, all
    monkeypatch.setattr(_nmf, "_loss_every", lambda problem, beta: 1)
    data = X.copy()
    if missing:
        data[np.random.RandomState(1).rand(*X.shape) < 0.2] = np.nan
    nmf = NMF(
        5,
        solver=solver,
        beta_loss=beta_loss,
        learning_rate=learning_rate,
        init="random",
        random_state=0,
        max_iter=60,
        tol=0,
    ).fit(data)
    # every iteration, but those of the Frobenius start that the default
    # schedule makes on complete dense data for the other losses
    iterations = nmf.loss_iterations_
    start = iterations[1] - 1
    assert_array_equal(iterations, [0, *range(start + 1, nmf.n_iter_ + 1)])
    started = solver == "mu" and not missing and beta_loss != "frobenius"
    assert (start > 0) == started
    assert nmf.loss_curve_.shape == iterations.shape
    _assert_never_increases(nmf.loss_curve_)
    assert nmf.loss_curve_[-1] < nmf.loss_curve_[0]


@pytest.mark.parametrize("beta_loss", BETAS)
@pytest.mark.parametrize("inner_iter", [1, "auto", 4])
def test_loss_is_recorded_where_evaluated(X, beta_loss, inner_iter):
    nmf = NMF(5, beta_loss=beta_loss, inner_iter=inner_iter, init="random")
    nmf.set_params(random_state=0, max_iter=45, tol=0).fit(X)
    if beta_loss == "frobenius":  # free with the products: every iteration
        assert_allclose(nmf.loss_iterations_, np.arange(46))
    elif inner_iter == "auto":
        # a Frobenius start (at most half of max_iter, its loss not this
        # one), then every 10 of the fit's own iterations and the last
        start = nmf.loss_iterations_[1]
        assert 0 < start <= 45 // 2
        expected = [0, start, *range(start + 10, 45, 10), 45]
        assert_allclose(nmf.loss_iterations_, expected)
    else:
        assert_allclose(nmf.loss_iterations_, [0, 10, 20, 30, 40, 45])
    assert nmf.loss_curve_.shape == nmf.loss_iterations_.shape
    _assert_never_increases(nmf.loss_curve_)


def _low_rank_plus_noise(shape=(300, 120), rank=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((shape[0], rank)) @ rng.random((rank, shape[1]))
    return X + 0.1 * rng.random(shape)


def _kl(X, W, H):
    WH = W @ H
    return float(np.sum(X * np.log(X / WH) - X + WH))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1])
def test_frobenius_start_ends_below_scikit_learn_in_fewer_iterations(dtype, seed):
    # The default fits Kullback-Leibler to dense data from a Frobenius fit:
    # at scikit-learn's defaults and stopping rule, a lower loss than its
    # multiplicative solver's, in fewer iterations of the costly rule.
    X = _low_rank_plus_noise(seed=seed).astype(dtype)
    ours = NMF(6, beta_loss="kullback-leibler", random_state=0)
    W = ours.fit_transform(X)
    theirs = SklearnNMF(6, solver="mu", beta_loss="kullback-leibler", random_state=0)
    W_theirs = theirs.fit_transform(X)
    start = ours.loss_iterations_[1]
    assert 0 < start < ours.n_iter_
    assert ours.n_iter_ - start < theirs.n_iter_ / 2
    X64 = X.astype(np.float64)
    assert _kl(X64, W, ours.components_) < _kl(X64, W_theirs, theirs.components_)
    _assert_never_increases(ours.loss_curve_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_frobenius_start_is_dropped_where_it_would_raise_the_loss(X, monkeypatch):
    # Raising every entry to a million times its factor's mean makes the
    # start far worse than the initialisation: the initial factors come back,
    # and the fit is the one without a start.
    def fit(floor, frobenius_start=True):
        monkeypatch.setattr(_nmf, "_START_FLOOR", floor)
        if not frobenius_start:
            monkeypatch.setattr(
                NMF, "_frobenius_start", lambda *args: _nmf._FrobeniusStart(0, None)
            )
        nmf = NMF(4, beta_loss="kullback-leibler", random_state=0, max_iter=40)
        return nmf, nmf.fit_transform(X)

    started, _ = fit(1e-3)
    assert started.loss_iterations_[1] not in (0, 10)
    refused, W_refused = fit(1e6)
    plain, W_plain = fit(1e-3, frobenius_start=False)
    assert_array_equal(refused.loss_iterations_, plain.loss_iterations_)
    assert_array_equal(refused.components_, plain.components_)
    assert_array_equal(W_refused, W_plain)


def test_frobenius_start_counts_in_max_iter(X):
    with pytest.warns(ConvergenceWarning, match="maximum number of iterations"):
        nmf = NMF(4, beta_loss="itakura-saito", max_iter=12, random_state=0).fit(X)
    assert nmf.n_iter_ == 12
    assert 0 < nmf.loss_iterations_[1] <= 6
    assert nmf.loss_iterations_[-1] == 12


@pytest.mark.parametrize("sparse", [False, True])
def test_loss_never_increases_with_penalties(X, sparse):
    data = sp.csr_matrix(np.where(X < 0.4, 0, X)) if sparse else X
    for solver in ("mu", "additive"):
        nmf = NMF(4, solver=solver, alpha_W=0.02, l1_ratio=0.5, max_iter=50, tol=0).fit(
            data
        )
        _assert_never_increases(nmf.loss_curve_)


def test_loss_curve_is_the_penalised_loss(X):
    nmf = NMF(3, alpha_W=0.05, l1_ratio=0.2, init="random", random_state=0)
    nmf.set_params(max_iter=7, tol=0).fit(X)
    W0, H0 = initialize_factors(X, 3, "random", np.random.RandomState(0))
    l1_W, l2_W = 12 * 0.05 * 0.2, 12 * 0.05 * 0.8
    l1_H, l2_H = 30 * 0.05 * 0.2, 30 * 0.05 * 0.8
    expected = (
        0.5 * np.sum((X - W0 @ H0) ** 2)
        + l1_W * W0.sum()
        + 0.5 * l2_W * np.sum(W0**2)
        + l1_H * H0.sum()
        + 0.5 * l2_H * np.sum(H0**2)
    )
    assert nmf.loss_curve_[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
def test_the_starts_svd_of_a_nearly_low_rank_matrix(sparse):
    # Rank 3, plus noise of 1e-6, with 5 components asked: the 15 random
    # directions are nearly dependent (one Cholesky orthonormalisation of
    # them is off by 5e-3); the basis must still come out orthonormal, and
    # the start finite.
    rng = np.random.default_rng(1)
    X = np.repeat(rng.random((3, 40)), 20, axis=0)  # 60 rows, 3 distinct
    X += 1e-6 * rng.random(X.shape)
    X = sp.csr_matrix(X) if sparse else X
    U, S, Vt = _nmf_solvers._range_svd(Problem(X), 5, 7, np.random.RandomState(0))
    exact = np.linalg.svd(X.toarray() if sparse else X, compute_uv=False)[:5]
    assert_allclose(S, exact, atol=1e-6 * exact[0])
    assert_allclose(U.T @ U, np.eye(5), atol=1e-9)
    assert_allclose(Vt @ Vt.T, np.eye(5), atol=1e-9)
    W, H = initialize_factors(X, 5, "nndsvda", np.random.RandomState(0))
    assert np.isfinite(W).all() and np.isfinite(H).all()


@pytest.mark.parametrize("noise", [1e-6, 1e-9, 1e-12, 0.0])
def test_orthonormal_basis_of_nearly_dependent_columns(noise, monkeypatch):
    # Rank 5 in 40 columns, plus noise: the Gram matrix's Cholesky factor
    # spans more than 1e6, and the shifted Cholesky QR takes over (no QR);
    # the basis is orthonormal to rounding and spans the columns. Exactly
    # dependent columns (no noise) may fall back to QR.
    if noise:

        def no_qr(*args, **kwargs):
            raise AssertionError("QR used")

        monkeypatch.setattr(np.linalg, "qr", no_qr)
    rng = np.random.default_rng(0)
    A = rng.random((2000, 5)) @ rng.random((5, 40)) + noise * rng.random((2000, 40))
    Q = _nmf_solvers._orthonormal(A)
    assert_allclose(Q.T @ Q, np.eye(40), atol=1e-12)
    assert np.linalg.norm(A - Q @ (Q.T @ A)) <= 1e-12 * np.linalg.norm(A)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [1, 0])
def test_divergences_match_their_entrywise_definitions(dtype, beta):
    # The dense Kullback-Leibler divergence is summed in an expanded form;
    # it must equal sum(x log(x / wh) - x + wh), with 0 log 0 = 0, at the
    # precision of the data, far beyond which a fall in the loss is noise.
    rng = np.random.default_rng(0)
    X = rng.random((600, 300)) @ rng.random((300, 40)) @ rng.random((40, 500))
    if beta == 1:
        X[rng.random(X.shape) < 0.3] = 0
    W, H = rng.random((600, 5)) + 0.1, rng.random((5, 500)) + 0.1
    WH = W @ H
    if beta == 1:
        expected = np.sum(xlogy(X, X / WH) - X + WH)
    else:
        expected = np.sum(X / WH - np.log(X / WH) - 1)
    args = (Problem(X.astype(dtype)), W.astype(dtype), H.astype(dtype), beta)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert _nmf_solvers.beta_divergence(*args) == pytest.approx(expected, rel=rtol)


@pytest.mark.parametrize("block_entries", [None, 8000])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("beta", [1, 0])
def test_dense_update_terms_on_row_blocks_equal_the_whole_products(
    beta, order, block_entries, monkeypatch
):
    # X large enough for several row blocks, run on threads: each block's
    # share of the numerator and denominator must add up to the formulas,
    # whichever memory order X comes in (the blocks follow it), and when the
    # blocks come in several groups, summed as they come (75 blocks of 20).
    if block_entries:
        monkeypatch.setattr(_nmf_solvers, "_BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(0)
    X = np.asarray(rng.random((1500, 400)) + 0.1, order=order)
    W, H = rng.random((1500, 4)) + 0.1, rng.random((4, 400)) + 0.1
    problem = Problem(X)
    WH = W @ H
    for A, B, block_problem, ratio_power in [
        (W, H, problem, lambda M: M),
        (H.T, W.T, problem.T, lambda M: M.T),
    ]:
        terms = _nmf_solvers._gradient_terms(block_problem, A, B, beta, 0.0, 0.0)
        other = B.T
        scaled, power = ratio_power(X * WH ** (beta - 2)), ratio_power(WH ** (beta - 1))
        assert_allclose(terms.num, scaled @ other, rtol=1e-12)
        assert_allclose(terms.den, power @ other, rtol=1e-12)


# -- the additive solver -----------------------------------------------------


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
@pytest.mark.parametrize("missing", [False, True])
def test_additive_with_multiplicative_step_is_mu(X, beta_loss, missing):
    data = X.copy()
    if missing:
        data[::4, ::3] = np.nan
    W0, H0 = _custom_init(X, 4)
    params = dict(init="custom", beta_loss=beta_loss, max_iter=40, tol=0)
    mu = NMF(4, solver="mu", inner_iter=1, **params).fit(data, W=W0, H=H0)
    additive = NMF(4, solver="additive", learning_rate="multiplicative", **params)
    additive.fit(data, W=W0, H=H0)
    assert_allclose(additive.components_, mu.components_, rtol=1e-9)
    assert_allclose(additive.loss_curve_, mu.loss_curve_, rtol=1e-11)


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_additive_auto_matches_or_beats_mu(beta_loss):
    X = _low_rank()
    params = dict(init="random", random_state=0, beta_loss=beta_loss, tol=0)
    mu = NMF(8, solver="mu", inner_iter=1, max_iter=150, **params).fit(X)
    auto = NMF(8, solver="additive", max_iter=150, **params).fit(X)
    checkpoints = np.isin(mu.loss_iterations_, [10, 50, 100, 150])
    assert checkpoints.sum() == 4
    assert_allclose(auto.loss_iterations_, mu.loss_iterations_)
    assert np.all(auto.loss_curve_[checkpoints] <= mu.loss_curve_[checkpoints])


def test_fixed_step_is_plain_projected_gradient(X):
    W0, H0 = _custom_init(X, 3)
    step = 1e-3
    nmf = NMF(3, solver="additive", learning_rate=step, init="custom", max_iter=1)
    nmf.set_params(tol=0).fit(X, W=W0, H=H0)
    W1 = np.maximum(W0 + step * (X @ H0.T - W0 @ H0 @ H0.T), 0)
    H1 = np.maximum(H0 + step * (W1.T @ X - W1.T @ W1 @ H0), 0)
    assert_allclose(nmf.components_, H1, rtol=1e-12)


def test_too_large_fixed_step_raises_the_loss(X):
    nmf = NMF(3, solver="additive", learning_rate=1.0, init="random", random_state=0)
    nmf.set_params(max_iter=5, tol=0).fit(X)
    assert nmf.loss_curve_[-1] > nmf.loss_curve_[0]


# -- transform ---------------------------------------------------------------


@pytest.mark.parametrize("solver", ["mu", "additive"])
@pytest.mark.parametrize("beta_loss", BETAS)
def test_transform_agrees_with_fit_transform(X, solver, beta_loss):
    nmf = NMF(4, solver=solver, beta_loss=beta_loss, init="random", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W_fit = nmf.fit_transform(X)
    assert_allclose(nmf.transform(X), W_fit, rtol=0)


@pytest.mark.parametrize("beta_loss, beta", [("frobenius", 2), ("kullback-leibler", 1)])
def test_transform_finds_the_W_the_fit_converged_to(X, beta_loss, beta):
    W0, H0 = initialize_factors(X, 3, "random", np.random.RandomState(0))
    fitted = fit_factors(
        Problem(X),
        W0,
        H0,
        beta=beta,
        regularization=Regularization(),
        max_iter=3000,
        tol=1e-9,
        # the estimator's rule: for the Frobenius loss, the accelerated
        # schedule's, checked each iteration on the fall of the last few
        check_every=1 if beta == 2 else 10,
        window=_nmf._RATE_WINDOW if beta == 2 else 10,
    )
    # the Kullback-Leibler fit without the Frobenius start of the default
    inner_iter = "auto" if beta == 2 else 1
    nmf = NMF(3, beta_loss=beta_loss, init="random", inner_iter=inner_iter)
    W = nmf.set_params(max_iter=3000, tol=1e-9, random_state=0).fit_transform(X)
    assert_allclose(nmf.components_, fitted.H, rtol=1e-12)
    assert_allclose(W, fitted.W, rtol=2e-2, atol=2e-3)
    assert nmf.reconstruction_err_ <= np.sqrt(2 * fitted.loss_curve[-1]) * (1 + 1e-6)


def test_reconstruction_error_is_for_the_returned_W(X):
    nmf = NMF(4, init="random", random_state=0, max_iter=20, tol=0)
    W = nmf.fit_transform(X)
    final = 0.5 * np.sum((X - W @ nmf.components_) ** 2)
    assert final <= nmf.loss_curve_[-1] * (1 + 1e-12)
    assert nmf.reconstruction_err_ == pytest.approx(np.sqrt(2 * final))


def test_inverse_transform_reconstructs():
    rng = np.random.RandomState(0)
    X = rng.rand(30, 3) @ rng.rand(3, 12)
    nmf = NMF(3, init="random", random_state=0, max_iter=3000, tol=1e-10).fit(X)
    assert_allclose(nmf.inverse_transform(nmf.transform(X)), X, atol=2e-2)
    with pytest.raises(ValueError, match="2 columns but the model has 3"):
        nmf.inverse_transform(np.ones((3, 2)))


# -- dtypes and sparse input ------------------------------------------------


@pytest.mark.parametrize("solver", ["mu", "additive"])
def test_float32_is_kept(X, solver):
    X32 = X.astype(np.float32)
    nmf = NMF(3, solver=solver, random_state=0)
    W = nmf.fit_transform(X32)
    assert W.dtype == nmf.components_.dtype == np.float32
    assert nmf.transform(X32).dtype == np.float32
    assert nmf.inverse_transform(W).dtype == np.float32


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
@pytest.mark.parametrize("solver", ["mu", "additive"])
def test_sparse_and_dense_agree(X, beta_loss, solver):
    dense = np.where(X < 0.5, 0, X)
    # inner_iter="auto" weighs the cost of products with X: nnz for sparse X
    params = dict(solver=solver, beta_loss=beta_loss, init="random", random_state=0)
    params["inner_iter"] = 1
    a = NMF(3, max_iter=30, tol=0, **params).fit(dense)
    b = NMF(3, max_iter=30, tol=0, **params).fit(sp.csr_matrix(dense))
    c = NMF(3, max_iter=30, tol=0, **params).fit(sp.csc_matrix(dense))
    assert_allclose(b.components_, a.components_, rtol=1e-8, atol=1e-12)
    assert_allclose(c.components_, a.components_, rtol=1e-8, atol=1e-12)
    assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-7)


# -- missing values ----------------------------------------------------------


def _weighted_mu_reference(X, W, H, beta, n_iter):
    """Weighted multiplicative updates, written out on full matrices."""
    M = (~np.isnan(X)).astype(float)
    V = np.nan_to_num(X)
    for _ in range(n_iter):
        WH = np.maximum(W @ H, np.finfo(np.float32).eps)
        if beta == 2:
            W = W * ((M * V) @ H.T) / ((M * WH) @ H.T)
        else:
            W = W * ((M * V / WH) @ H.T) / (M @ H.T)
        WH = np.maximum(W @ H, np.finfo(np.float32).eps)
        if beta == 2:
            H = H * (W.T @ (M * V)) / (W.T @ (M * WH))
        else:
            H = H * (W.T @ (M * V / WH)) / (W.T @ M)
    return W, H


@pytest.mark.parametrize("beta_loss, beta", [("frobenius", 2), ("kullback-leibler", 1)])
def test_missing_values_follow_the_weighted_updates(X, beta_loss, beta):
    data = X.copy()
    data[np.random.RandomState(2).rand(*X.shape) < 0.3] = np.nan
    W0, H0 = _custom_init(X, 4)
    nmf = NMF(4, init="custom", beta_loss=beta_loss, max_iter=25, tol=0)
    nmf.fit(data, W=W0, H=H0)
    _, H = _weighted_mu_reference(data, W0, H0, beta, 25)
    assert_allclose(nmf.components_, H, rtol=1e-9)


def test_values_behind_nan_do_not_matter(X):
    gaps = np.random.RandomState(3).rand(*X.shape) < 0.25
    a, b = X.copy(), X.copy() * 7
    a[gaps] = b[gaps] = np.nan
    b[~gaps] = X[~gaps]
    nmf_a = NMF(3, random_state=0).fit(a)
    nmf_b = NMF(3, random_state=0).fit(b)
    assert_allclose(nmf_a.components_, nmf_b.components_)


def test_missing_values_are_completed_better_than_column_means():
    X, X_full = make_low_rank_ratings(
        150, 60, rank=4, missing_fraction=0.2, noise=0.05, random_state=0
    )
    gaps = np.isnan(X)
    nmf = NMF(4, init="random", random_state=0, max_iter=1000, tol=1e-6)
    completed = nmf.inverse_transform(nmf.fit_transform(X))
    assert not np.isnan(completed).any()
    nmf_rmse = np.sqrt(np.mean((completed[gaps] - X_full[gaps]) ** 2))
    means = np.broadcast_to(np.nanmean(X, axis=0), X.shape)
    mean_rmse = np.sqrt(np.mean((means[gaps] - X_full[gaps]) ** 2))
    assert nmf_rmse < 0.5 * mean_rmse


def test_score_uses_only_observed_entries(X):
    nmf = NMF(3, random_state=0).fit(X)
    data = X.copy()
    data[0, 0] = np.nan
    W = nmf.transform(data)
    residual = (data - W @ nmf.components_)[~np.isnan(data)]
    expected = -0.5 * np.sum(residual**2) / residual.size
    assert nmf.score(data) == pytest.approx(expected, rel=1e-9)


def test_kl_and_is_scores_are_per_observed_entry(X):
    for beta_loss in ("kullback-leibler", "itakura-saito"):
        nmf = NMF(3, beta_loss=beta_loss, random_state=0).fit(X)
        WH = nmf.transform(X) @ nmf.components_
        if beta_loss == "kullback-leibler":
            divergence = np.sum(X * np.log(X / WH) - X + WH)
        else:
            divergence = np.sum(X / WH - np.log(X / WH) - 1)
        assert nmf.score(X) == pytest.approx(-divergence / X.size, rel=1e-9)


# -- bad input and no half-fitted state -------------------------------------


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda X: -X, "Negative values in data passed to NMF.fit"),
        (lambda X: np.where(np.isnan(X), X, -X), "Negative values"),
        (lambda X: np.where(X > 1, np.inf, X), "infinity"),
        (lambda X: np.vstack([np.full(X.shape[1], np.nan), X]), "1 row.* no observed"),
        (
            lambda X: np.column_stack([X, np.full(X.shape[0], np.nan)]),
            "1 column.* no observed",
        ),
        (lambda X: sp.csr_matrix(np.where(X > 1, np.nan, X)), "NaN in a sparse X"),
        (lambda X: X[:0], "0 sample"),
    ],
)
def test_bad_input_gets_a_clear_error(X, make_bad, message):
    data = X.copy()
    data[0, 1] = np.nan
    with pytest.raises(ValueError, match=message):
        NMF(2).fit(make_bad(data))


def test_itakura_saito_refuses_zeros(X):
    X = X.copy()
    X[0, 0] = 0
    with pytest.raises(ValueError, match="without zeros"):
        NMF(2, beta_loss="itakura-saito").fit(X)
    NMF(2, beta_loss="kullback-leibler").fit(X)


def test_custom_initialisation_is_checked(X):
    W0, H0 = _custom_init(X, 3)
    with pytest.raises(ValueError, match="needs both W and H"):
        NMF(3, init="custom").fit(X, W=W0)
    with pytest.warns(RuntimeWarning, match="only with init='custom'"):
        ignored = NMF(3, random_state=0).fit(X, W=W0, H=H0)  # as scikit-learn
    assert_allclose(ignored.components_, NMF(3, random_state=0).fit(X).components_)
    with pytest.raises(ValueError, match=r"initial H has shape \(3, 11\)"):
        NMF(3, init="custom").fit(X, W=W0, H=H0[:, 1:])
    # the same kinds of error as scikit-learn's for the same misuse
    for W, H, error in [
        (W0, H0[:, 1:], ValueError),
        (W0[1:], H0, ValueError),
        (W0.astype(np.float32), H0, TypeError),
        (W0, H0.astype(np.float32), TypeError),
    ]:
        with pytest.raises(error, match="NMF"):
            NMF(3, init="custom").fit(X, W=W, H=H)
        with pytest.raises(error):
            SklearnNMF(3, init="custom", solver="mu").fit(X, W=W, H=H)
    with pytest.raises(ValueError, match="initial W has negative"):
        NMF(3, init="custom").fit(X, W=-W0, H=H0)
    W_before = W0.copy()
    NMF(3, init="custom").fit(X, W=W0, H=H0)
    assert_allclose(W0, W_before, rtol=0)  # the caller's arrays are not touched


def test_nndsvd_needs_few_enough_components(X):
    with pytest.raises(ValueError, match="n_components <= min"):
        NMF(40, init="nndsvd").fit(X)
    assert NMF(40, max_iter=5, tol=0).fit(X).components_.shape == (40, 12)


@pytest.mark.parametrize(
    "params", [{"solver": "cd"}, {"beta_loss": 1.5}, {"learning_rate": -1.0}]
)
def test_bad_parameters_are_refused(X, params):
    with pytest.raises(ValueError, match="parameter of NMF must be"):
        NMF(2, **params).fit(X)


def test_a_failed_fit_leaves_the_fitted_model_alone(X):
    nmf = NMF(2, random_state=0).fit(X)
    before = {k: v for k, v in vars(nmf).items() if k.endswith("_")}
    with pytest.raises(ValueError):
        nmf.fit(-np.ones((5, 4)))
    after = {k: v for k, v in vars(nmf).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    assert after["n_features_in_"] == 12
    assert after["components_"] is before["components_"]


def test_convergence_warning_when_max_iter_runs_out(X):
    with pytest.warns(ConvergenceWarning, match="maximum number of iterations"):
        NMF(3, max_iter=3, random_state=0).fit(X)


def test_verbose_prints_progress(X):
    out = io.StringIO()
    with redirect_stdout(out):
        NMF(3, max_iter=20, tol=1e-12, verbose=1, random_state=0).fit(X)
    assert "iteration   10: loss" in out.getvalue()


# -- scikit-learn contracts --------------------------------------------------


def test_grid_search_ranks_by_score_without_a_scorer():
    X = _low_rank(80, 30, 5)
    search = GridSearchCV(NMF(max_iter=300, random_state=0), {"n_components": [1, 5]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X)
    assert search.best_params_ == {"n_components": 5}


def test_pipeline_and_feature_names(X):
    y = (X[:, 0] > X[:, 0].mean()).astype(int)
    pipe = make_pipeline(NMF(3, random_state=0), LogisticRegression()).fit(X, y)
    assert pipe.score(X, y) > 0.5
    names = pipe[0].get_feature_names_out()
    assert list(names) == ["nmf0", "nmf1", "nmf2"]


def test_joblib_round_trip(X, tmp_path):
    nmf = NMF(3, random_state=0).fit(X)
    joblib.dump(nmf, tmp_path / "nmf.joblib")
    loaded = joblib.load(tmp_path / "nmf.joblib")
    assert_allclose(loaded.transform(X), nmf.transform(X), rtol=0)
    assert loaded.get_params() == nmf.get_params()


def test_random_state_makes_fits_repeatable(X):
    a = NMF(3, init="random", random_state=5).fit(X)
    b = NMF(3, init="random", random_state=5).fit(X)
    c = NMF(3, init="random", random_state=6).fit(X)
    assert_allclose(a.components_, b.components_, rtol=0)
    assert not np.allclose(a.components_, c.components_)


# -- the fast path: exact W solves and accelerated updates --------------------


@pytest.mark.parametrize("scale", [1.0, 1e-60, 1e60])
def test_nnls_rows_is_exact(scale):
    from scipy.optimize import nnls

    rng = np.random.RandomState(0)
    H = rng.rand(6, 40) ** 4
    H[2] = 0  # a component no feature uses
    X = (rng.rand(25, 40) < 0.3) * rng.rand(25, 40)
    W = _nmf_solvers.solve_frobenius_W(Problem(X * scale), H)
    expected = np.array([nnls(H.T, row * scale)[0] for row in X])
    assert_allclose(W, expected, rtol=1e-9, atol=1e-12 * scale)
    assert (W == 0).any() and (W > 0).any()
    assert not W[:, 2].any()


@pytest.mark.parametrize("kind", ["near", "positive", "far"])
def test_nnls_rows_answer_does_not_depend_on_the_guess(kind):
    from scipy.optimize import nnls

    rng = np.random.RandomState(1)
    H = rng.rand(8, 60) ** 3
    X = (rng.rand(200, 60) < 0.2) * rng.rand(200, 60)
    expected = np.array([nnls(H.T, row)[0] for row in X])
    assert (expected == 0).mean() > 0.2  # many zeros for the guess to miss
    guesses = {
        "near": expected + 1e-3,  # a multiplicative iterate: no exact zeros
        "positive": np.full_like(expected, expected.mean()),
        "far": rng.rand(*expected.shape) * 100,
    }
    W = _nmf_solvers.solve_frobenius_W(Problem(X), H, guess=guesses[kind])
    assert_allclose(W, expected, rtol=1e-9, atol=1e-12)


def test_kullback_leibler_default_keeps_W_out_of_the_subnormal_range():
    # The plain rule drives entries of W into subnormal numbers, whose
    # arithmetic is many times slower; the default lifts them to 16 tiny/eps
    # (about 1e-21 in float32), and keeps exact zeros.
    tiny = np.finfo(np.float32).tiny
    X = sp.random(300, 120, density=0.05, random_state=0, dtype=np.float32)
    params = dict(beta_loss="kullback-leibler", max_iter=400, tol=0, random_state=0)
    plain = NMF(6, inner_iter=1, **params).fit_transform(X.tocsr())
    assert (plain[plain > 0] < tiny).any()
    W = NMF(6, **params).fit_transform(X.tocsr())
    floor = 16 * tiny / np.finfo(np.float64).eps
    assert W[W > 0].min() >= np.float32(floor)
    W0, H0 = _custom_init(X.toarray(), 6)
    W0[::3, 0] = 0  # zeros the rules cannot move, and the lift leaves
    result = fit_factors(
        Problem(X.tocsr()),
        W0,
        H0,
        beta=1,
        regularization=Regularization(),
        max_iter=400,
        tol=0,
        lift_subnormal=True,
    )
    assert not result.W[::3, 0].any()
    assert result.W[result.W > 0].min() >= np.float32(floor)


def test_accelerated_mu_beats_the_plain_rule_at_equal_iterations():
    X = _low_rank(n=150, m=120, k=6)
    params = dict(init="random", random_state=0, max_iter=30, tol=0)
    plain = NMF(6, inner_iter=1, **params).fit(X)
    auto = NMF(6, **params).fit(X)
    assert auto.loss_curve_[-1] < 0.9 * plain.loss_curve_[-1]
    _assert_never_increases(auto.loss_curve_)


def test_fit_transform_returns_the_exact_frobenius_W(X):
    nmf = NMF(4, init="random", random_state=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W = nmf.fit_transform(X)
    H = nmf.components_
    gradient = (W @ H - X) @ H.T
    # the optimality conditions: W >= 0, gradient >= 0, W * gradient = 0
    assert W.min() >= 0
    assert gradient.min() >= -1e-10
    assert np.abs(W * gradient).max() <= 1e-10


# -- a drop-in for scikit-learn's NMF(solver="mu") ---------------------------


def test_n_components_auto_as_scikit_learn(X):
    assert NMF().n_components == "auto"
    assert NMF(max_iter=5, tol=0).fit(X).n_components_ == X.shape[1]
    W0, H0 = _custom_init(X, 3)
    ours = NMF(init="custom", max_iter=5, tol=0).fit(X, W=W0, H=H0)
    theirs = SklearnNMF(init="custom", solver="mu", max_iter=5, tol=0)
    theirs.fit(X, W=W0.copy(), H=H0.copy())
    assert ours.n_components_ == theirs.n_components_ == 3


def test_warnings_as_scikit_learn(X):
    for estimator in (NMF(3, init="nndsvd"), SklearnNMF(3, solver="mu", init="nndsvd")):
        with pytest.warns(UserWarning, match="nndsvda"):
            estimator.fit(X)
    W0, H0 = _custom_init(X, 3)
    for estimator in (NMF(3), SklearnNMF(3, solver="mu")):
        with pytest.warns(RuntimeWarning, match="init='custom'"):
            estimator.fit(X, W=W0, H=H0)


def test_convergence_warning_points_at_the_callers_line(X):
    with pytest.warns(ConvergenceWarning) as record:
        NMF(3, max_iter=3, random_state=0).fit(X)
    assert record[0].filename == __file__
    with pytest.warns(ConvergenceWarning) as record:
        NMF(3, max_iter=3, random_state=0).fit_transform(X)
    assert record[0].filename == __file__


@pytest.mark.parametrize("name", ["n_components_", "components_", "n_iter_"])
def test_the_same_attributes_as_scikit_learn(X, name):
    ours = NMF(3, random_state=0, max_iter=400).fit(X)
    theirs = SklearnNMF(3, solver="mu", random_state=0, max_iter=400).fit(X)
    assert type(getattr(ours, name)) is type(getattr(theirs, name))
    assert np.shape(getattr(ours, name)) == np.shape(getattr(theirs, name))


def test_import_loads_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, skpapers, skpapers.decomposition; "
        "skpapers.decomposition.NMF; skpapers.NMF; "
        "print(sorted(m for m in ('torch', 'torchvision', 'skorch') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# -- data up to the dtype's largest values ----------------------------------


@pytest.mark.parametrize("beta_loss", BETAS)
@pytest.mark.parametrize(
    "dtype, top",
    [
        (np.float64, 1e150),
        (np.float64, 1e300),
        (np.float64, 1.79e308),
        (np.float32, 1e19),
        (np.float32, 3.4e38),
    ],
)
def test_huge_values_give_finite_factors(X, beta_loss, dtype, top):
    data = (X / X.max() * top).astype(dtype)
    nmf = NMF(3, beta_loss=beta_loss, random_state=0, max_iter=50, tol=0)
    W = nmf.fit_transform(data)
    assert W.dtype == nmf.components_.dtype == dtype
    assert np.isfinite(W).all() and np.isfinite(nmf.components_).all()
    assert np.isfinite(nmf.transform(data)).all()
    # as good a fit as of X itself (NNDSVD's absolute threshold of 1e-6 makes
    # the two starts differ a little)
    small = NMF(3, beta_loss=beta_loss, random_state=0, max_iter=50, tol=0)
    small.fit((X / X.max()).astype(dtype))
    power = {"frobenius": 1, "kullback-leibler": 0.5, "itakura-saito": 0}[beta_loss]
    error = nmf.reconstruction_err_ / np.float64(top) ** power
    if np.isfinite(nmf.reconstruction_err_):  # else beyond the dtype's range
        assert error == pytest.approx(small.reconstruction_err_, rel=0.05)


# Not Itakura-Saito: its updates zero entries of W below an absolute 2.2e-16,
# as scikit-learn's do, which no rescaling can carry over.
@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_scaling_is_exact_for_powers_of_two(X, beta_loss, monkeypatch):
    # Fitting X / 2**40 with the penalties rescaled must give the fit of X:
    # forced here on data large enough to show it and small enough that no
    # product overflows either way.
    X = X * 2.0**40
    W0, H0 = _custom_init(X, 3)
    W0, H0 = W0 * 2.0**20, H0 * 2.0**20
    params = dict(init="custom", beta_loss=beta_loss, max_iter=20, tol=0)
    params.update(alpha_W=0.01, alpha_H=0.03, l1_ratio=0.5)
    plain = NMF(3, **params).fit(X, W=W0, H=H0)
    W = plain.transform(X)
    monkeypatch.setattr(_nmf, "_scale_of", lambda A: 2.0**40 if A is X else 1.0)
    scaled = NMF(3, **params).fit(X, W=W0, H=H0)
    assert_allclose(scaled.components_, plain.components_, rtol=1e-9)
    assert_allclose(scaled.loss_curve_, plain.loss_curve_, rtol=1e-9)
    assert_allclose(scaled.transform(X), W, rtol=1e-7, atol=1e-12)
    assert scaled.score(X) == pytest.approx(plain.score(X), rel=1e-9)


# -- missing="unstored": sparse ratings -------------------------------------


def _ratings(seed=0, shape=(40, 25), density=0.3):
    rng = np.random.RandomState(seed)
    R = sp.random(*shape, density=density, random_state=rng, format="csr")
    R.data = rng.randint(1, 6, size=R.nnz).astype(float)
    dense = R.toarray()
    dense[dense == 0] = np.nan  # what "unstored" means, as a dense array
    return R, dense


@pytest.mark.parametrize("beta_loss", BETAS)
def test_unstored_entries_are_missing_values(beta_loss):
    R, dense = _ratings()
    W0, H0 = _custom_init(np.ones(R.shape), 4)
    params = dict(init="custom", beta_loss=beta_loss, max_iter=30, tol=0)
    ours = NMF(4, missing="unstored", **params).fit(R, W=W0, H=H0)
    nan = NMF(4, **params).fit(dense, W=W0, H=H0)
    assert_allclose(ours.components_, nan.components_, rtol=1e-9)
    assert_allclose(ours.loss_curve_, nan.loss_curve_, rtol=1e-9)
    assert ours.score(R) == pytest.approx(nan.score(dense), rel=1e-6)
    W = ours.transform(R)
    rows, columns = np.nonzero(np.isnan(dense))
    assert_allclose(
        ours.predict_entries(W, rows, columns),
        ours.inverse_transform(W)[rows, columns],
        rtol=1e-12,
    )


def test_unstored_needs_every_row_observed():
    R, _ = _ratings()
    R = sp.vstack([R, sp.csr_matrix((1, R.shape[1]))]).tocsr()
    with pytest.raises(ValueError, match=r"row.*no observed entry"):
        NMF(3, missing="unstored").fit(R)
    NMF(3, max_iter=5).fit(R)  # where unstored entries are zeros, it is fine


def test_unstored_keeps_memory_to_the_stored_entries():
    import tracemalloc

    rng = np.random.RandomState(0)
    n_rows, n_cols, nnz = 200_000, 100_000, 50_000  # dense: 160 GB
    # every row and column rated at least once, and some more ratings
    rows = np.r_[np.arange(n_rows), rng.randint(0, n_rows, nnz)]
    cols = np.r_[np.arange(n_rows) % n_cols, rng.randint(0, n_cols, nnz)]
    R = sp.csr_matrix(
        (rng.randint(1, 6, len(rows)).astype(float), (rows, cols)),
        shape=(n_rows, n_cols),
    )
    tracemalloc.start()
    nmf = NMF(5, missing="unstored", random_state=0, max_iter=3, tol=0)
    W = nmf.fit_transform(R)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert W.shape == (n_rows, 5) and np.isfinite(W).all()
    # W, H and a few arrays the size of the stored entries: far below a GB
    assert peak < 200 * 2**20
    values = nmf.predict_entries(W, [0, n_rows - 1], [n_cols - 1, 0])
    assert values.shape == (2,) and np.isfinite(values).all()


def test_predict_entries_checks_its_indices(X):
    nmf = NMF(3, random_state=0, max_iter=20, tol=0).fit(X)
    W = nmf.transform(X)
    with pytest.raises(ValueError, match=r"NMF\.predict_entries: rows"):
        nmf.predict_entries(W, [0, 30], [0, 1])
    with pytest.raises(TypeError, match="integer"):
        nmf.predict_entries(W, [0.5], [0])
    with pytest.raises(ValueError, match="as long"):
        nmf.predict_entries(W, [0, 1], [0])


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_with_missing_values_fit_transform_is_transform_to_tolerance(X, beta_loss):
    data = X.copy()
    data[np.random.RandomState(3).rand(*X.shape) < 0.2] = np.nan
    nmf = NMF(3, beta_loss=beta_loss, init="random", random_state=0)
    nmf.set_params(max_iter=2000, tol=1e-8)
    W = nmf.fit_transform(data)
    # from the fit's last W there, from a flat start here: the same optimum
    assert_allclose(nmf.transform(data), W, rtol=0, atol=2e-3 * W.max())
