"""Pure array functions behind :class:`skpapers.decomposition.NMF`.

Nothing here knows about scikit-learn estimators. ``X`` is a dense array, with
missing entries set to 0 and described by ``mask``, or a CSR matrix with no
missing entries. Every update works on the factor ``A`` of ``X ~= A @ B``; the
``H`` update is the ``W`` update of the transposed problem ``X.T ~= H.T @ W.T``,
so one function serves both blocks.

References
----------
Lee, D. D. and Seung, H. S. (2000). Algorithms for non-negative matrix
factorization. Advances in Neural Information Processing Systems 13.
Fevotte, C. and Idier, J. (2011). Algorithms for nonnegative matrix
factorization with the beta-divergence. Neural Computation 23(9).
"""

import functools
import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import joblib
import numpy as np
import scipy.sparse as sp
from scipy.special import xlogy
from threadpoolctl import ThreadpoolController, threadpool_limits

# Floor for denominators and for W @ H before a division or a negative power;
# scikit-learn uses the same value, which keeps the two "mu" solvers in step.
EPSILON = np.finfo(np.float32).eps
_TINY = np.finfo(np.float64).eps

BETA_LOSSES = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}

# Fewest stored entries per thread in a sparse product: below this, handing a
# block to a thread costs more than it saves.
_MIN_BLOCK_NNZ = 50_000
# Entries of a block of rows of a dense X in the blocked updates and losses:
# the block's W @ H stays in a core's cache between its passes.
_BLOCK_ENTRIES = 2**18


def beta_loss_to_float(beta_loss):
    """Return the beta of a beta-divergence given by name or number."""
    return float(BETA_LOSSES.get(beta_loss, beta_loss))


@dataclass(frozen=True)
class Regularization:
    """Scaled penalties ``l1 * sum(A) + l2 / 2 * |A|^2`` on ``W`` and ``H``."""

    l1_W: float = 0.0
    l1_H: float = 0.0
    l2_W: float = 0.0
    l2_H: float = 0.0


def penalty(A, l1, l2):
    """Value of ``l1 * sum(A) + l2 / 2 * |A|^2``."""
    value = 0.0
    if l1:
        value += l1 * float(A.sum(dtype=np.float64))
    if l2:
        value += 0.5 * l2 * float(np.vdot(A, A))
    return value


class Problem:
    """The matrix to factorise, in the forms the updates need.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Non-negative data. In a dense ``X``, NaN marks a missing entry.
    unstored_missing : bool, default=False
        For a sparse ``X``: its unstored entries are missing (unknown), not
        zero, and only the stored ones enter the loss and the updates.

    Attributes
    ----------
    complete : bool
        Whether every entry is observed: the Frobenius loss then has products
        with ``X`` that stay fixed while one factor is updated.
    """

    def __init__(self, X, unstored_missing=False):
        self.row_blocks = self.column_blocks = None
        self.unstored = bool(unstored_missing and sp.issparse(X))
        self._rows = self._own_blocks = None
        if sp.issparse(X):
            self.X = sp.csr_matrix(X)
            if not self.X.has_canonical_format:  # on a copy: X stays as given
                self.X = self.X.copy()
                self.X.sum_duplicates()
            self.mask = None
            self.n_observed = self.X.nnz if self.unstored else X.shape[0] * X.shape[1]
            # Not np.dot: BLAS would leave threads spinning on the cores that
            # the threaded sparse products are about to need.
            data = self.X.data
            self.sum_sq = float(np.einsum("i,i->", data, data, dtype=np.float64))
            self.row_blocks = _row_blocks(self.X)
        else:
            missing = np.isnan(X)
            if missing.any():
                self.mask = (~missing).astype(X.dtype)
                self.X = np.where(missing, 0, X).astype(X.dtype, copy=False)
            else:
                self.mask = None
                self.X = X
            self.n_observed = int(X.size - missing.sum())
            self.sum_sq = float(np.vdot(self.X, self.X))
        self.shape = X.shape
        self.dtype = X.dtype
        self._T = self._kl_constant = None
        # threads for the blocked products: BLAS's count now, before the
        # solvers limit BLAS to one thread around their own threads
        self.n_threads = _max_threads()

    @property
    def complete(self):
        return self.mask is None and not self.unstored

    @property
    def rows(self):
        """The row of each stored entry of a sparse ``X``, made once."""
        if self._rows is None:
            index = np.int32 if self.shape[0] < 2**31 else np.int64
            counts = np.diff(self.X.indptr)
            self._rows = np.repeat(np.arange(self.shape[0], dtype=index), counts)
        return self._rows

    def stored_dot(self, values, B):
        """``S @ B`` for the sparse ``S`` with ``X``'s stored entries set to
        ``values`` (in ``X.data``'s order), on threads by row blocks."""
        X = self.X
        if self._own_blocks is None:  # a transposed problem has X.T's blocks
            self._own_blocks = self.row_blocks or _row_blocks(X)
        B = np.ascontiguousarray(B)
        out = np.empty((self.shape[0], B.shape[1]), np.result_type(values, B))

        def product(block):
            rows, X_rows = block
            first = X.indptr[rows.start]
            S = sp.csr_matrix(
                (values[first : first + X_rows.nnz], X_rows.indices, X_rows.indptr),
                shape=X_rows.shape,
                copy=False,
            )
            out[rows] = S @ B

        _map(product, self._own_blocks)
        return out

    def has_observed_zero(self):
        """Whether some observed entry of ``X`` is zero."""
        if sp.issparse(self.X):
            if self.unstored:
                return not self.X.data.all()
            return self.X.nnz < np.prod(self.shape) or not self.X.data.all()
        zero = self.X == 0
        if self.mask is not None:
            zero &= self.mask.astype(bool)
        return bool(zero.any())

    @property
    def T(self):
        """The transposed problem (for the ``H`` block), computed once."""
        if self._T is None:
            T = Problem.__new__(Problem)
            T.X = self.X.T.tocsr() if sp.issparse(self.X) else self.X.T
            T.mask = None if self.mask is None else self.mask.T
            T.unstored, T._rows, T._own_blocks = self.unstored, None, None
            T.n_observed, T.sum_sq = self.n_observed, self.sum_sq
            T.shape, T.dtype, T._T = self.shape[::-1], self.dtype, self
            T.row_blocks = T.column_blocks = T._kl_constant = None
            T.n_threads = self.n_threads
            if self.row_blocks is not None:  # X's row blocks, as CSC, are X.T's
                T.column_blocks = [(rows, block.T) for rows, block in self.row_blocks]
            self._T = T
        return self._T

    @property
    def threaded(self):
        """Whether :meth:`dot` runs on several threads."""
        return len(self.row_blocks or self.column_blocks or ()) > 1

    def dot(self, B):
        """``X @ B`` as a dense array.

        A sparse ``X`` is multiplied in blocks on threads (scipy frees the
        GIL): by rows, or, for a transposed problem, by columns summing the
        partial products, as scattering CSC columns beats gathering CSR rows.
        """
        if self.column_blocks:
            B = np.ascontiguousarray(B)
            parts = _map(lambda block: block[1] @ B[block[0]], self.column_blocks)
            return functools.reduce(np.add, parts)
        if not self.threaded:
            return self.X @ B
        B = np.ascontiguousarray(B)  # else scipy copies it once per block
        out = np.empty((self.shape[0], B.shape[1]), np.result_type(self.dtype, B))

        def product(block):
            rows, X_rows = block
            out[rows] = X_rows @ B

        _map(product, self.row_blocks)
        return out


def _row_blocks(X):
    """``(rows, X[rows])`` for row ranges of a CSR ``X`` holding equal ``nnz``.

    One block per thread that BLAS may use, so that limits put on BLAS (by
    joblib's workers or threadpoolctl) hold here too; but at least
    ``_MIN_BLOCK_NNZ`` entries a block. The blocks share ``X``'s arrays.
    """
    n_blocks = X.nnz // _MIN_BLOCK_NNZ
    if n_blocks > 1:
        n_blocks = min(n_blocks, _max_threads())
    targets = np.linspace(0, X.nnz, max(n_blocks, 1) + 1)[1:-1]
    bounds = np.unique(np.r_[0, np.searchsorted(X.indptr, targets), X.shape[0]])
    blocks = []
    for start, stop in itertools.pairwise(bounds):
        first, last = X.indptr[start], X.indptr[stop]
        block = sp.csr_matrix(
            (
                X.data[first:last],
                X.indices[first:last],
                X.indptr[start : stop + 1] - first,
            ),
            shape=(stop - start, X.shape[1]),
        )
        blocks.append((slice(start, stop), block))
    return blocks


def _max_threads():
    """Threads BLAS may use now: the most a sparse product may use.

    Asked of the BLAS libraries through one controller, made once: a fresh
    ``threadpool_info()`` scans every loaded library, 3 ms a call."""
    controllers = _blas().lib_controllers
    blas = [c.num_threads for c in controllers if c.user_api == "blas"]
    return min(blas) if blas else joblib.cpu_count()


def _map(function, blocks):
    """``[function(block) for block in blocks]``, on threads if more than one."""
    if len(blocks) == 1:
        return [function(blocks[0])]
    return list(_thread_pool().map(function, blocks))


@functools.cache
def _thread_pool():
    """Threads for the blocks of sparse products, made on first use."""
    return ThreadPoolExecutor(max_workers=joblib.cpu_count())


# A forked child has none of its parent's threads: it makes its own pool.
os.register_at_fork(after_in_child=_thread_pool.cache_clear)


# --------------------------------------------------------------------------
# Products and divergences
# --------------------------------------------------------------------------


def _product_at_nonzeros(A, B, X, chunk=32768, rows=None):
    """``(A @ B)`` at the stored entries of the CSR matrix ``X``, in its order.

    Chunks of entries on threads, large enough that the per-chunk overhead
    is small (on a 20000 x 5000 matrix with 500,000 entries, 32768 entries a
    chunk took 0.7 of the time of 8192, about the time of 65536); the rows
    are gathered by ``np.take``, twice as fast as fancy indexing."""
    if rows is None:
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    out = np.empty(X.nnz, dtype=np.result_type(A, B))
    # gathering rows of strided views (H.T for the transposed problem) is slow
    A, Bt = np.ascontiguousarray(A), np.ascontiguousarray(B.T)

    def product(start):  # numpy lets go of the GIL: chunks run on threads
        part = slice(start, start + chunk)
        A_part = np.take(A, rows[part], axis=0)
        B_part = np.take(Bt, X.indices[part], axis=0)
        np.einsum("ij,ij->i", A_part, B_part, out=out[part])

    starts = range(0, X.nnz, chunk)
    if len(starts) > 1 and _max_threads() > 1:
        _map(product, list(starts))
    else:
        for start in starts:
            product(start)
    return out


def _lift_subnormal(factor):
    """Raise the factor's positive entries to at least ``16 * tiny / eps``, in
    place, where ``tiny`` is the dtype's smallest normal number and ``eps``
    float64's (the least positive entry of ``H`` the Kullback-Leibler rule
    keeps); zeros stay zero.

    Multiplicative updates drive entries towards zero geometrically, and
    their products with the other factor's into subnormal numbers, on which
    the processor's arithmetic is many times slower. The lifted entries
    (1e-21 in float32, 1e-291 in float64) are still far below any that
    matter, and can still grow back.
    """
    floor = 16 * np.finfo(factor.dtype).tiny / _TINY
    factor[(factor < floor) & (factor > 0)] = floor
    return factor


def _floor(A, value=EPSILON):
    """``A`` with its entries below ``value`` raised to it, in place. A
    masked assignment: numpy's ``maximum`` is three times slower on float32."""
    A[np.less(A, value)] = value
    return A


def beta_divergence(problem, W, H, beta):
    """Beta-divergence between ``X`` and ``W @ H`` over the observed entries.

    ``beta = 2`` is half the squared Frobenius norm, ``1`` the generalised
    Kullback-Leibler divergence and ``0`` the Itakura-Saito divergence.
    """
    X, mask = problem.X, problem.mask
    if problem.unstored:
        return _stored_divergence(problem, W, H, beta)
    if sp.issparse(X):
        if beta == 2:
            cross = np.vdot(W, problem.dot(H.T))
            gram = np.vdot(W.T @ W, H @ H.T)
            return max(0.5 * (problem.sum_sq - 2 * cross + gram), 0.0)
        x = X.data
        wh = _floor(_product_at_nonzeros(W, H, X, rows=problem.rows))
        if beta == 1:
            total_wh = float(W.sum(axis=0) @ H.sum(axis=1))
            return float(np.dot(x, np.log(x / wh)) - x.sum() + total_wh)
        ratio = x / wh  # Itakura-Saito, where X has no zeros (checked upstream)
        return float(np.sum(ratio - np.log(ratio)) - ratio.size)

    if beta == 1 and mask is None and X.flags.c_contiguous:
        return _dense_kl(problem, W, H)
    # Row blocks of a few megabytes: temporaries as large as X cost more in
    # page faults than in arithmetic.
    n_rows = max(1, 2**22 // max(X.shape[1] * X.itemsize, 1))
    return sum(
        _dense_divergence(
            X[start : start + n_rows],
            W[start : start + n_rows] @ H,
            None if mask is None else mask[start : start + n_rows],
            beta,
        )
        for start in range(0, X.shape[0], n_rows)
    )


def _dense_kl(problem, W, H):
    """Kullback-Leibler divergence of a complete dense ``X``, expanded as
    ``sum x log x - sum x log wh - sum x + sum wh``.

    The first and third sums are fixed and the last is ``O((n + m) k)``:
    per entry, one logarithm, of ``wh``, against a division, a logarithm and
    a product for the entrywise form; a third of the time. Every sum is in
    float64, and ``log(wh)`` is as exact as ``log(x / wh)``, so nothing is
    lost to the expansion.
    """
    X = problem.X
    if problem._kl_constant is None:
        x = X.ravel()
        problem._kl_constant = float(
            np.sum(xlogy(x, x), dtype=np.float64) - np.sum(x, dtype=np.float64)
        )
    n_rows = max(1, _BLOCK_ENTRIES // max(X.shape[1], 1))

    def cross(start):  # sum x log wh over a block of rows, on a thread
        logs = _floor(W[start : start + n_rows] @ H)
        np.log(logs, out=logs)
        x = X[start : start + n_rows].ravel().astype(np.float64, copy=False)
        return float(np.dot(x, logs.ravel().astype(np.float64, copy=False)))

    starts = list(range(0, X.shape[0], n_rows))
    with _blas().limit(limits=1, user_api="blas"):
        parts = _map(cross, starts) if problem.n_threads > 1 else map(cross, starts)
        total = float(W.sum(axis=0, dtype=np.float64) @ H.sum(axis=1, dtype=np.float64))
        total -= sum(parts)
    return max(problem._kl_constant + total, 0.0)


def _stored_divergence(problem, W, H, beta):
    """:func:`beta_divergence` over the stored entries of a sparse ``X`` only."""
    x = problem.X.data
    wh = _product_at_nonzeros(W, H, problem.X, rows=problem.rows)
    if beta == 2:
        residual = np.subtract(x, wh, out=wh)
        return 0.5 * float(np.dot(residual, residual))
    _floor(wh)
    ratio = x / wh
    if beta == 1:
        terms = xlogy(x, ratio, out=ratio)
        terms -= x
        terms += wh
    else:
        terms = np.log(ratio, out=wh)
        np.subtract(ratio, terms, out=terms)
        terms -= 1
    return float(np.sum(terms, dtype=np.float64))


def _dense_divergence(X, WH, mask, beta):
    """:func:`beta_divergence` of dense rows ``X``, given ``W @ H`` there.

    Summed entry by entry in the non-negative form of each divergence, in
    float64, so that a good fit loses nothing to cancellation; ``WH`` is
    overwritten.
    """
    if beta == 2:
        residual = np.subtract(X, WH, out=WH)
        if mask is not None:
            residual *= mask
        return 0.5 * float(np.vdot(residual, residual))
    WH = _floor(WH)
    ratio = np.divide(X, WH)
    if beta == 1:  # x log(x / wh) - x + wh; 0 log 0 = 0
        terms = xlogy(X, ratio, out=ratio)
        terms -= X
        terms += WH
    else:  # x / wh - log(x / wh) - 1
        if mask is not None:
            ratio[mask == 0] = 1  # a missing entry: no divergence
        terms = np.log(ratio, out=WH)
        np.subtract(ratio, terms, out=terms)
        terms -= 1
    if mask is not None:
        terms *= mask
    return float(np.sum(terms, dtype=np.float64))


# --------------------------------------------------------------------------
# One block: the gradient split into its positive and negative parts
# --------------------------------------------------------------------------


@dataclass
class _Terms:
    """Parts of the gradient of the loss in ``A``: ``grad = den - num``.

    Lee & Seung's multiplicative rule is ``A <- A * num / den``. ``XBt`` and
    ``BBt`` are kept for the plain Frobenius loss, where they make the loss and
    further gradient steps cost only ``O(n k^2)``; its multiplicative steps
    make their own ``den`` (None here).
    """

    num: np.ndarray
    den: np.ndarray | None
    XBt: np.ndarray | None = None
    BBt: np.ndarray | None = None


def _gradient_terms(problem, A, B, beta, l1, l2, *, XBt=None, BBt=None):
    """Numerator and denominator of the multiplicative update of ``A``."""
    X, mask = problem.X, problem.mask
    if problem.unstored:  # only the stored entries: (X - AB) there, times B^T
        AB = _product_at_nonzeros(A, B, X, rows=problem.rows)
        Bt = np.ascontiguousarray(B.T)
        if beta == 2:
            num, den = problem.dot(Bt), problem.stored_dot(AB, Bt)
        else:
            _floor(AB)
            num = problem.stored_dot(X.data * AB ** (beta - 2), Bt)
            den = problem.stored_dot(AB ** (beta - 1), Bt)
    elif beta == 2 and mask is None:
        XBt, BBt = _frobenius_products(problem, B, XBt, BBt)
        num, den = XBt, A @ BBt  # no step writes to num
    else:
        if sp.issparse(X):
            AB = _floor(_product_at_nonzeros(A, B, X, rows=problem.rows))
            if beta == 1:
                scaled = np.divide(X.data, AB, out=AB)
            else:
                scaled = X.data * AB ** (beta - 2)
            num = problem.stored_dot(scaled, B.T)  # on threads by row blocks
            if beta == 1:
                den = np.broadcast_to(B.sum(axis=1), A.shape).copy()
            else:
                den = _sparse_power_product(A, B, beta - 1)
        elif mask is None and beta < 2:
            num, den = _dense_terms(X, A, B, beta, problem.n_threads)
        else:  # missing entries (or beta > 2)
            # A @ B in X's memory order (the H block's X is X.T, a Fortran
            # view): elementwise passes over mixed orders are twice as slow
            if X.flags.f_contiguous and not X.flags.c_contiguous:
                AB = (B.T @ A.T).T
            else:
                AB = A @ B
            _floor(AB)
            if beta == 1:  # here mask is given: complete data took _dense_terms
                den = mask @ B.T
                scaled = np.divide(X, AB, out=AB)
            else:
                if beta == 2:
                    power = AB.copy()
                elif beta == 0:
                    power = np.reciprocal(AB)
                else:
                    power = AB ** (beta - 1)
                if mask is not None:
                    power *= mask
                den = power @ B.T
                if beta == 0:  # X / AB^2
                    scaled = np.multiply(X, power, out=AB)
                    scaled *= power
                else:
                    scaled = np.multiply(X, AB ** (beta - 2), out=AB)
            num = scaled @ B.T
    if l1:
        den += l1
    if l2:
        den += l2 * A
    return _Terms(num=num, den=den, XBt=XBt, BBt=BBt)


def _dense_terms(X, A, B, beta, n_threads):
    """Numerator and denominator of the multiplicative update of ``A`` for a
    complete dense ``X`` and ``beta < 2``, on threads by blocks of rows.

    Each block makes its rows of ``W @ H``, the powers of them the update
    needs, and their products with the other factor while they are in
    cache; each thread runs BLAS on one thread, as the elementwise passes
    would otherwise run on one core beside BLAS threads spinning on the
    other. For the ``H`` block (``X`` is a view of ``X.T``), the rows are
    ``X``'s own, and the blocks' products are summed.
    """
    transposed = X.flags.f_contiguous and not X.flags.c_contiguous
    X, W, H = (X.T, B.T, A.T) if transposed else (X, A, B)
    n_rows, n_cols = X.shape
    Ht = np.ascontiguousarray(H.T)
    # the W block writes its rows; the H block sums the blocks' shares
    num = np.zeros(A.shape, X.dtype)
    if beta == 1:  # the denominator is a column sum of the other factor
        sums = W.sum(axis=0) if transposed else H.sum(axis=1)
        den = np.broadcast_to(sums, A.shape).copy()
    else:
        den = np.zeros(A.shape, X.dtype)

    def block(start):
        rows = slice(start, start + block_rows)
        WH = _floor(W[rows] @ H)
        if beta == 1:
            power, scaled = None, np.divide(X[rows], WH, out=WH)
        elif beta == 0:
            power = np.reciprocal(WH)
            scaled = np.multiply(X[rows], power, out=WH)
            scaled *= power
        else:
            power = WH ** (beta - 1)
            scaled = np.multiply(X[rows], WH ** (beta - 2), out=WH)
        if transposed:
            W_rows = W[rows]
            return scaled.T @ W_rows, None if power is None else power.T @ W_rows
        num[rows] = scaled @ Ht
        if power is not None:
            den[rows] = power @ Ht
        return None

    block_rows = max(1, _BLOCK_ENTRIES // max(n_cols, 1))
    starts = list(range(0, n_rows, block_rows))
    threaded = len(starts) > 1 and n_threads > 1
    step = 4 * max(n_threads, 1)
    with _blas().limit(limits=1, user_api="blas"):
        # a few blocks per thread at a time, their shares summed as they
        # come: a tall X does not hold one share per block
        for first in range(0, len(starts), step):
            group = starts[first : first + step]
            parts = _map(block, group) if threaded else list(map(block, group))
            for num_share, den_share in parts if transposed else ():
                num += num_share
                if den_share is not None:
                    den += den_share
    return num, den


def _frobenius_products(problem, B, XBt=None, BBt=None):
    """``X B^T`` and ``B B^T``, unless given (made by the other block)."""
    return (
        problem.dot(B.T) if XBt is None else XBt,
        B @ B.T if BBt is None else BBt,
    )


def _sparse_power_product(A, B, power, chunk=256):
    """``(A @ B) ** power @ B.T`` without holding ``A @ B`` whole."""
    out = np.empty_like(A)
    for start in range(0, A.shape[0], chunk):
        AB = _floor(A[start : start + chunk] @ B)
        out[start : start + chunk] = AB**power @ B.T
    return out


def _mm_exponent(beta):
    """Exponent that makes the multiplicative rule a majorise-minimise step."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def multiplicative_step(terms, A, beta):
    """Lee & Seung's multiplicative update, in place; ``terms.den`` is spent."""
    den = terms.den
    den[den == 0] = EPSILON
    ratio = np.divide(terms.num, den, out=den)
    gamma = _mm_exponent(beta)
    if gamma != 1:
        ratio **= gamma
    A *= ratio
    return A


# Gillis & Glineur (2012): while one factor is updated, the products with X
# stay fixed, so further multiplicative steps of it cost only O(n k^2). At
# most 1 + _INNER_RATIO * (cost of the products / cost of a step) of them,
# stopping once a step moves the factor less than _INNER_DELTA times the first.
_INNER_RATIO = 0.5
_INNER_DELTA = 0.1
_INNER_CHECK = 4
# Inner accelerated projected-gradient steps of the additive solver.
_ADDITIVE_N_INNER = 5


def _resolve_inner(n_inner, problem, k, beta, solver):
    """Inner steps per block for ``n_inner="auto"``; an int is kept."""
    if n_inner != "auto":
        return int(n_inner)
    if solver != "mu":
        return _ADDITIVE_N_INNER
    if beta != 2 or not problem.complete:
        return 1  # every step needs a new product with X: nothing to save
    n_rows, n_cols = problem.shape
    nnz = problem.X.nnz if sp.issparse(problem.X) else n_rows * n_cols
    # the products cost nnz k (X B^T) + n_cols k^2 (B B^T); a step n_rows k^2
    ratio = nnz / (n_rows * k) + n_cols / n_rows
    return 1 + int(_INNER_RATIO * ratio)


def frobenius_mu_steps(A, XBt, BBt, l1, l2, n_steps, delta=_INNER_DELTA):
    """Up to ``n_steps`` Frobenius multiplicative updates of ``A``, in place.

    ``X B^T`` and ``B B^T`` are fixed while ``B`` is: each step costs
    ``O(n k^2)``. Every ``_INNER_CHECK`` steps, stop if that step changed
    ``A`` by less than ``delta`` times the first step did. ``n_steps=1`` is
    the paper's rule.
    """
    if n_steps == 1:
        return _frobenius_mu_step(A, XBt, BBt, l1, l2)
    first_change = None
    # products of n x k by k x k: BLAS's threads cost more than they save
    with _blas().limit(limits=1, user_api="blas"):
        for step in range(n_steps):
            if step % _INNER_CHECK:
                _frobenius_mu_step(A, XBt, BBt, l1, l2, floor_zeros_only=False)
                continue
            previous = A.copy()
            _frobenius_mu_step(A, XBt, BBt, l1, l2, floor_zeros_only=not step)
            previous -= A
            change = float(np.vdot(previous, previous))
            if first_change is None:
                first_change = change
            elif change <= delta**2 * first_change:
                break
    return A


def _frobenius_mu_step(A, XBt, BBt, l1, l2, floor_zeros_only=True):
    """One Frobenius multiplicative update of ``A``, in place.

    The denominator's zeros become ``EPSILON``, as in scikit-learn's rule (the
    first step of a block); later inner steps floor the whole denominator
    there instead, in one pass.
    """
    den = A @ BBt
    if l1:
        den += l1
    if l2:
        den += l2 * A
    if floor_zeros_only:
        den[den == 0] = EPSILON
    else:
        _floor(den)
    A *= np.divide(XBt, den, out=den)
    return A


@functools.cache
def _blas():
    """A controller of the BLAS thread pools, made once: cheap limits."""
    return ThreadpoolController()


def additive_step(terms, A, learning_rate):
    """The paper's additive update ``A <- max(0, A + eta * (num - den))``.

    ``learning_rate="multiplicative"`` takes the paper's ``eta = A / den``, with
    which this *is* the multiplicative update.
    """
    den = terms.den
    if isinstance(learning_rate, str):  # "multiplicative"
        den[den == 0] = EPSILON
        eta = A / den
    else:
        eta = learning_rate
    A += eta * (terms.num - den)
    np.maximum(A, 0, out=A)
    return A


def _lipschitz(BBt, l2):
    """Largest eigenvalue of the Hessian ``BBt + l2 I`` of the Frobenius block."""
    return float(np.linalg.eigvalsh(BBt.astype(np.float64))[-1]) + l2


def accelerated_frobenius_step(terms, A, l1, l2, n_inner):
    """Accelerated projected gradient on the Frobenius block, in place.

    Minimises ``q(A) = 1/2 tr(A G A^T) - tr(A^T T)`` over ``A >= 0``, where
    ``G = BBt + l2 I`` and ``T = XBt - l1``, with ``n_inner`` Nesterov steps of
    length ``1/L``. A step that would raise ``q`` restarts the momentum from
    the last point with a plain projected-gradient step, which never raises
    ``q`` (descent lemma): so the loss never increases.

    ``q`` and its gradient are linear in ``A @ G``, and the extrapolated
    point's product is the same combination of the products of the two points
    it comes from: one ``n x k x k`` product per step.
    """
    gram = terms.BBt + l2 * np.eye(len(terms.BBt), dtype=terms.BBt.dtype)
    step = 1.0 / max(_lipschitz(gram, 0.0), _TINY)
    target = terms.XBt - l1 if l1 else terms.XBt

    def objective(M, MG):
        return 0.5 * np.vdot(MG, M) - np.vdot(M, target)

    def projected_step(M, MG, out, out_G):
        """Write the projected gradient step from ``M`` and its product to
        ``out`` and ``out_G``; return ``q`` there."""
        np.subtract(MG, target, out=out)
        out *= -step
        out += M
        np.maximum(out, 0, out=out)
        np.matmul(out, gram, out=out_G)
        return objective(out, out_G)

    # Preallocated: arrays of this size are fresh pages from the system each
    # time, and the page faults would cost more than the arithmetic.
    current, current_G = A.copy(), A @ gram
    value = objective(current, current_G)
    Y, Y_G = current.copy(), current_G.copy()
    candidate, candidate_G = np.empty_like(current), np.empty_like(current_G)
    t = 1.0
    for _ in range(n_inner):
        candidate_value = projected_step(Y, Y_G, candidate, candidate_G)
        if candidate_value > value:  # restart: a plain step cannot go up
            candidate_value = projected_step(current, current_G, candidate, candidate_G)
            t = 1.0
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        momentum = (t - 1) / t_next
        for point, previous, extrapolated in (
            (candidate, current, Y),
            (candidate_G, current_G, Y_G),
        ):  # extrapolated = point + momentum * (point - previous)
            np.subtract(point, previous, out=extrapolated)
            extrapolated *= momentum
            extrapolated += point
        current, candidate = candidate, current
        current_G, candidate_G = candidate_G, current_G
        value, t = candidate_value, t_next
    A[...] = current
    return A


# Coordinate sweeps from a guess before the pivoting: one finds most zeros
# (on a 20000 x 20 sparse problem: 2 pivoting rounds after it, 5 without).
_GUESS_SWEEPS = 1


def nnls_rows(gram, targets, max_iter=None, guess=None, n_threads=1):
    """Solve ``min 1/2 x^T G x - t^T x`` over ``x >= 0`` for each row ``t``.

    Every row of ``targets`` is one non-negative least-squares problem sharing
    the Gram matrix ``G``: the Frobenius subproblem for ``W`` with ``H`` fixed
    (``G = H H^T``, ``t = X H^T``). Solved exactly by block principal pivoting
    (Kim & Park 2011): guess which variables are zero, solve the others'
    linear system, swap every variable whose value or gradient has the wrong
    sign, all rows at once; a row that stops improving falls back to swapping
    one variable at a time, which terminates.

    Parameters
    ----------
    gram : ndarray of shape (k, k)
        Symmetric positive definite ``G``.
    targets : ndarray of shape (n, k)
        One ``t`` per row.
    max_iter : int, default=None
        Most pivoting rounds; ``None`` is ``10 k + 50``.
    guess : ndarray of shape (n, k), default=None
        A nearby iterate, if known: the pivoting starts on the variables that
        a coordinate sweep from it leaves positive, and ends in a round or
        two. The solutions do not depend on it.
    n_threads : int, default=1
        Threads for the batched solves.

    Returns
    -------
    x : ndarray of shape (n, k), float64
        The solutions.
    """
    G = np.asarray(gram, dtype=np.float64)
    T = np.asarray(targets, dtype=np.float64)
    n, k = T.shape
    # In units where G has a unit diagonal and t is at most about 1, one
    # tolerance fits both the values and the gradients: x = z * unit / d.
    d = np.sqrt(np.maximum(np.diag(G), _TINY))
    unit = float(np.abs(T).max(initial=0.0)) / d.min()
    unit = unit if unit > 0 else 1.0
    G = G / np.outer(d, d)
    T = T / (d * unit)
    max_iter = 10 * k + 50 if max_iter is None else max_iter
    if guess is None:
        passive = np.zeros((n, k), dtype=bool)
        x, gradient = np.zeros((n, k)), -T
    else:
        # Exact coordinate sweeps from the guess find most of the zeros
        # (an iterate of the multiplicative rules has none, only small
        # values): the pivoting starts on the variables they leave positive.
        z = np.asarray(guess, dtype=np.float64) * (d / unit)
        gradient = z @ G - T
        for _ in range(_GUESS_SWEEPS):
            for j in range(k):
                step = np.maximum(z[:, j] - gradient[:, j], 0.0) - z[:, j]
                z[:, j] += step
                gradient += np.outer(step, G[j])
        passive = z > 0
        x, gradient = _solve_passive(G, T, passive, n_threads=n_threads)
    slack = 1e-12  # rounding leaves values of about eps: not a wrong sign
    fewest = np.full(n, k + 1)  # fewest wrong signs seen, per row
    chances = np.full(n, 3)  # full swaps left before the one-by-one rule
    todo = np.arange(n)
    for _ in range(max_iter):
        P = passive[todo]
        wrong = (P & (x[todo] < -slack)) | (~P & (gradient[todo] < -slack))
        counts = wrong.sum(axis=1)
        busy = counts > 0
        if not busy.any():
            break
        todo, P, wrong, counts = todo[busy], P[busy], wrong[busy], counts[busy]
        better = counts < fewest[todo]
        fewest[todo[better]] = counts[better]
        chances[todo[better]] = 3
        chances[todo[~better]] -= 1
        one_by_one = ~better & (chances[todo] < 0)
        if one_by_one.any():  # swap only the last wrong variable
            last = k - 1 - np.argmax(wrong[one_by_one][:, ::-1], axis=1)
            wrong[one_by_one] = False
            wrong[np.flatnonzero(one_by_one), last] = True
            chances[todo[one_by_one]] = 0
        P ^= wrong
        passive[todo] = P
        x[todo], gradient[todo] = _solve_passive(G, T[todo], P, n_threads=n_threads)
    x *= unit / d
    return np.maximum(x, 0, out=x)


def _solve_passive(G, T, passive, chunk=1024, n_threads=1):
    """Each row's solution on its passive variables (0 elsewhere), and the
    gradient on the others (0 on the passive ones); rows a chunk at a time,
    so that the stacked ``k x k`` systems stay in cache, on ``n_threads``
    threads (numpy's batched solve lets go of the GIL)."""
    n, k = T.shape
    x, gradient = np.empty((n, k)), np.empty((n, k))
    diagonal = np.eye(k, dtype=bool)

    def solve(start):
        part = slice(start, start + chunk)
        P, t = passive[part], T[part]
        # the system on the passive variables, the identity elsewhere
        M = np.where(P[:, :, None] & P[:, None, :], G, 0.0)
        M[:, diagonal] = np.where(P, M[:, diagonal], 1.0)
        solution = np.linalg.solve(M, np.where(P, t, 0.0)[:, :, None])[..., 0]
        x[part] = solution
        gradient[part] = np.where(P, 0.0, solution @ G - t)

    starts = list(range(0, n, chunk))
    if n_threads > 1 and len(starts) > 1:
        with _blas().limit(limits=1, user_api="blas"):
            _map(solve, starts)
    else:
        for start in starts:
            solve(start)
    return x, gradient


def solve_frobenius_W(problem, H, l1=0.0, l2=0.0, guess=None):
    """The exact ``W >= 0`` minimising the penalised Frobenius loss, ``H`` fixed.

    The problem must have no missing entries. ``H H^T`` gets a ridge of a few
    ``eps`` of its trace so that a zero row of ``H`` (a component that no
    feature uses) leaves the system solvable; its ``W`` column is then 0.
    """
    H64 = H.astype(np.float64, copy=False)
    gram = H64 @ H64.T
    k = len(gram)
    ridge = l2 + 10 * k * _TINY * max(float(np.trace(gram)), _TINY)
    gram[np.diag_indices(k)] += ridge
    targets = problem.dot(H.T).astype(np.float64, copy=False)
    if l1:
        targets = targets - l1
    W = nnls_rows(gram, targets, guess=guess, n_threads=problem.n_threads)
    return W.astype(problem.dtype, copy=False)


# --------------------------------------------------------------------------
# The alternating driver
# --------------------------------------------------------------------------


@dataclass
class FitResult:
    """What a solver returns: factors, iterations and the loss after each."""

    W: np.ndarray
    H: np.ndarray
    n_iter: int
    loss_curve: np.ndarray
    loss_iterations: np.ndarray


class _Block:
    """Updates one factor of ``X ~= A @ B`` by the chosen rule."""

    def __init__(self, problem, k, beta, l1, l2, solver, learning_rate, n_inner):
        self.problem, self.beta, self.l1, self.l2 = problem, beta, l1, l2
        self.solver, self.learning_rate = solver, learning_rate
        self.n_inner = _resolve_inner(n_inner, problem, k, beta, solver)
        self.extrapolation = 2.0
        self.terms = None

    def update(self, A, B, *, XBt=None, BBt=None):
        """Update ``A`` in place; ``self.terms`` keeps the gradient parts."""
        beta, l1, l2 = self.beta, self.l1, self.l2
        if self.solver == "mu" and beta == 2 and self.problem.complete:
            # the steps make their own denominators: only the products here
            XBt, BBt = _frobenius_products(self.problem, B, XBt, BBt)
            self.terms = _Terms(num=XBt, den=None, XBt=XBt, BBt=BBt)
            return frobenius_mu_steps(A, XBt, BBt, l1, l2, self.n_inner)
        terms = _gradient_terms(self.problem, A, B, beta, l1, l2, XBt=XBt, BBt=BBt)
        self.terms = terms
        if self.solver == "mu":
            A = multiplicative_step(terms, A, beta)
            for _ in range(1, self.n_inner):  # B is fixed: the same rule again
                terms = _gradient_terms(self.problem, A, B, beta, l1, l2)
                A = multiplicative_step(terms, A, beta)
            return A
        if self.learning_rate != "auto":
            return additive_step(terms, A, self.learning_rate)
        if terms.XBt is not None:
            return accelerated_frobenius_step(terms, A, l1, l2, self.n_inner)
        return self._extrapolated_step(terms, A, B)

    def _extrapolated_step(self, terms, A, B):
        """Line search along the multiplicative direction (``"auto"``, general).

        The multiplicative point ``A_mu`` never raises the loss; the step goes
        ``alpha`` times as far along ``A_mu - A`` (projected onto ``A >= 0``)
        only where that is lower still, so the loss never increases and each
        block does at least as well as the multiplicative rule.
        """
        mu_point = multiplicative_step(terms, A.copy(), self.beta)
        candidate = np.maximum(A + self.extrapolation * (mu_point - A), 0)
        if self._block_loss(candidate, B) < self._block_loss(mu_point, B):
            A[...] = candidate
            self.extrapolation = min(2 * self.extrapolation, 64.0)
        else:
            A[...] = mu_point
            self.extrapolation = max(self.extrapolation / 2, 1.25)
        return A

    def _block_loss(self, A, B):
        divergence = beta_divergence(self.problem, A, B, self.beta)
        return divergence + penalty(A, self.l1, self.l2)


def fit_factors(
    problem,
    W,
    H,
    *,
    beta,
    regularization,
    solver="mu",
    learning_rate="auto",
    max_iter=200,
    tol=1e-4,
    update_H=True,
    n_inner="auto",
    loss_every=1,
    check_every=10,
    window=10,
    error_reference=None,
    initial_divergence=None,
    lift_subnormal=False,
    verbose=0,
):
    """Alternately update ``W`` then ``H`` to minimise the penalised divergence.

    Parameters
    ----------
    problem : Problem
        The data.
    W : ndarray of shape (n_samples, n_components)
        Initial ``W``, updated in place.
    H : ndarray of shape (n_components, n_features)
        Initial ``H``, updated in place unless ``update_H=False``.
    beta : float
        Beta of the beta-divergence (2, 1 or 0).
    regularization : Regularization
        Scaled L1 and L2 penalties.
    solver : {"mu", "additive"}
        Multiplicative or additive (projected gradient) updates.
    learning_rate : "auto", "multiplicative" or float
        Step of the additive solver.
    max_iter : int
        Most iterations (one ``W`` and one ``H`` update each).
    tol : float
        Stop when the relative fall of the error ``sqrt(2 * divergence)`` over
        the last 10 iterations is below ``tol``, checked every 10 iterations
        as scikit-learn does. ``0`` runs all ``max_iter`` iterations.
    update_H : bool
        ``False`` solves for ``W`` only.
    n_inner : int or "auto"
        Updates of one factor per block, with the other fixed. For ``"mu"``,
        ``1`` is the paper's plain alternation and ``"auto"`` makes more of the
        cheap Frobenius steps while they still move the factor (Gillis &
        Glineur 2012); for the additive solver with ``learning_rate="auto"``,
        the accelerated projected-gradient steps (``"auto"``: 5).
    loss_every : int
        Evaluate the loss after every ``loss_every``-th iteration (and when
        checking ``tol``, every 10, and after the last). Outside the
        Frobenius loss of complete data, where it comes free with the
        products, an evaluation costs about as much as an iteration.
    check_every : int
        Check ``tol`` after every ``check_every``-th iteration (scikit-learn:
        10), over the last ``window`` iterations. Fewer iterations between
        checks stop sooner after the rule holds; the loss must then be
        evaluated at least as often (``loss_every``).
    window : int
        The fall is measured over the last ``window`` iterations and scaled
        to 10 (scikit-learn: 10). A shorter window judges the fall at the
        current rate, and stops soon after it is slow, where the 10-iteration
        window still holds the large falls of a few iterations before; the
        loss must then be evaluated every iteration (``loss_every=1``).
    error_reference : float, default=None
        The error that ``tol`` is relative to; ``None``: the error at the
        start. A solve that continues another passes that one's.
    initial_divergence : float, default=None
        The divergence at ``W``, ``H`` as given, where the caller has it.
    lift_subnormal : bool, default=False
        For the Kullback-Leibler loss, raise the tiny positive entries of
        ``W`` after each update so that no product of the factors is
        subnormal (:func:`_lift_subnormal`); ``False`` keeps the paper's
        rule, as scikit-learn's.
    verbose : int
        Print the loss every 10 iterations when positive.

    Returns
    -------
    FitResult
        ``loss_curve[j]`` is the penalised loss after ``loss_iterations[j]``
        iterations, the first at 0.
    """
    reg = regularization
    k = W.shape[1]
    w_block = _Block(
        problem, k, beta, reg.l1_W, reg.l2_W, solver, learning_rate, n_inner
    )
    h_block = _Block(
        problem.T, k, beta, reg.l1_H, reg.l2_H, solver, learning_rate, n_inner
    )
    plain_frobenius = beta == 2 and problem.complete
    fixed = {}
    if not update_H and plain_frobenius:  # H is constant: so are X H^T and H H^T
        fixed = {"XBt": problem.dot(H.T)}

    def loss():
        """Divergence and penalised objective at the current ``W``, ``H``."""
        if not plain_frobenius:
            divergence = beta_divergence(problem, W, H, beta)
        elif update_H:  # X^T W and W^T W come from the H update just made
            terms = h_block.terms
            divergence = _frobenius_from_products(
                problem, H.T, terms.XBt, terms.BBt, HHt
            )
        else:
            divergence = _frobenius_from_products(
                problem, W, fixed["XBt"], HHt, W.T @ W
            )
        H_penalty = penalty(H, reg.l1_H, reg.l2_H) if update_H else 0.0
        return divergence, divergence + penalty(W, reg.l1_W, reg.l2_W) + H_penalty

    # The Frobenius "mu" steps on a sparse X run on threads, with BLAS kept to
    # one thread: OpenBLAS's idle threads spin, and would take their cores.
    threaded_mu = solver == "mu" and plain_frobenius and update_H and problem.threaded
    # So do the dense updates of the other losses, block by block: BLAS's
    # threads, woken between them, would spin on the cores they need.
    dense_blocks = beta < 2 and problem.mask is None and not sp.issparse(problem.X)
    one_blas_thread = (
        threadpool_limits(limits=1, user_api="blas")
        if threaded_mu or (dense_blocks and problem.n_threads > 1)
        else nullcontext()
    )
    with one_blas_thread:
        HHt = H @ H.T if plain_frobenius else None
        initial = initial_divergence
        if initial is None:
            initial = beta_divergence(problem, W, H, beta)
        losses = [initial + penalty(W, reg.l1_W, reg.l2_W)]
        if update_H:
            losses[0] += penalty(H, reg.l1_H, reg.l2_H)
        evaluated = [0]
        errors = {0: np.sqrt(2 * initial)}  # by iteration, where evaluated
        error_at_init = errors[0] if error_reference is None else error_reference
        start = time.perf_counter()
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            products = {}
            if threaded_mu:
                products = _threaded_frobenius_mu_step(
                    problem, W, H, HHt, reg, w_block.n_inner
                )
            else:
                w_block.update(W, H, BBt=HHt, XBt=fixed.get("XBt"))
            if beta < 1:  # as scikit-learn: keeps the Itakura-Saito updates stable
                W[W < _TINY] = 0.0
            elif lift_subnormal and beta != 2:
                _lift_subnormal(W)
            if update_H:
                h_block.update(H.T, W.T, **products)
                if beta <= 1:
                    H[H < _TINY] = 0.0
                HHt = H @ H.T if plain_frobenius else None
            checking = tol > 0 and n_iter >= 10 and n_iter % check_every == 0
            printing = verbose and n_iter % 10 == 0
            if checking or printing or n_iter % loss_every == 0 or n_iter == max_iter:
                divergence, objective = loss()
                losses.append(objective)
                evaluated.append(n_iter)
                errors[n_iter] = np.sqrt(2 * divergence)
            if printing:
                elapsed = time.perf_counter() - start
                print(f"iteration {n_iter:4d}: loss {objective:.6g} ({elapsed:.2f} s)")
            if checking:  # the fall of the error per 10 iterations, lately
                fall = (errors[n_iter - window] - errors[n_iter]) * 10 / window
                if error_at_init == 0 or fall / error_at_init < tol:
                    break
    return FitResult(
        W=W,
        H=H,
        n_iter=n_iter,
        loss_curve=np.asarray(losses),
        loss_iterations=np.asarray(evaluated),
    )


def _threaded_frobenius_mu_step(problem, W, H, HHt, regularization, n_steps):
    """Lee & Seung's Frobenius update of ``W``, in place, on row blocks.

    A row of ``W`` needs only its row of ``X H^T``: each thread updates a
    block of rows and, while the block is in cache, adds its share of the
    ``X^T W`` and ``W^T W`` that the ``H`` update needs, which it returns.
    """
    Ht = np.ascontiguousarray(H.T)  # else scipy copies it once per block
    l1, l2 = regularization.l1_W, regularization.l2_W

    def update(block):
        rows, X_rows = block
        W_rows = W[rows]  # rows of W are independent given H: so are the steps
        frobenius_mu_steps(W_rows, X_rows @ Ht, HHt, l1, l2, n_steps)
        return X_rows.T @ W_rows, W_rows.T @ W_rows

    parts = _map(update, problem.row_blocks)
    XtW, WtW = (functools.reduce(np.add, part) for part in zip(*parts, strict=True))
    return {"XBt": XtW, "BBt": WtW}


def _frobenius_from_products(problem, A, XBt, BBt, AtA):
    """``1/2 |X - A B|^2 = 1/2 (|X|^2 - 2 <A, X B^T> + <A^T A, B B^T>)``.

    Costs ``O(k^2 n)`` given the products, which the updates already made;
    summed in float64 so that float32 data lose nothing to cancellation.
    """
    A, XBt, BBt, AtA = (M.astype(np.float64, copy=False) for M in (A, XBt, BBt, AtA))
    cross, gram = np.vdot(A, XBt), np.vdot(BBt, AtA)
    return max(0.5 * (problem.sum_sq - 2 * cross + gram), 0.0)


# --------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------


# Oversampling of the randomised SVD behind the NNDSVD starts, and its power
# iterations: scikit-learn's numbers. With fewer (2 were tried), the start on
# noisy data is poorer, and so is where the fit ends.
_INIT_OVERSAMPLES = 10


def _power_iterations(k, shape):
    return 7 if k < 0.1 * min(shape) else 4


def _range_svd(problem, k, n_iter, random_state, n_oversamples=_INIT_OVERSAMPLES):
    """The top ``k`` singular triplets of ``problem.X``, randomised (Halko,
    Martinsson & Tropp 2011): ``n_iter`` power iterations on ``k +
    n_oversamples`` random directions.

    The products go through ``problem`` (sparse ones on threads). All the
    linear algebra is numpy's: scipy ships its own OpenBLAS, whose threads
    and numpy's would spin against each other on the same cores.
    """
    n_samples, n_features = problem.shape
    size = min(k + n_oversamples, n_samples, n_features)
    omega = random_state.standard_normal((n_features, size)).astype(problem.dtype)
    # Orthonormalising the shorter side alone between products keeps the
    # directions apart (at most one product's growth in between); the tall
    # side costs more.
    tall = n_samples >= n_features
    Q = problem.dot(omega)
    for _ in range(n_iter):
        Z = problem.T.dot(Q if tall else _orthonormal(Q))
        Q = problem.dot(_orthonormal(Z) if tall else Z)
    Q = _orthonormal(_orthonormal(Q))  # twice: orthonormal to rounding
    B = problem.T.dot(Q).T  # Q^T X
    U_small, S, Vt = np.linalg.svd(B.astype(np.float64), full_matrices=False)
    U = Q @ U_small.astype(problem.dtype)
    dtype = problem.dtype
    return U[:, :k], S[:k].astype(dtype), Vt[:k].astype(dtype, copy=False)


def _orthonormal(A):
    """An orthonormal basis of the columns of a tall ``A``, by the Cholesky
    factor of its Gram matrix in float64 (a tenth of a QR's time).

    Where the columns are too close to dependent for that (the factor's
    diagonal spans more than 1e6: the Gram matrix would lose the small
    directions to rounding), by shifted Cholesky QR (Fukaya et al. 2020): the
    Gram matrix plus a shift of the order of rounding, whose factor gives a
    basis orthonormal to about the square root of eps, made orthonormal to
    rounding by two plain Cholesky passes. Three passes cost a fifth of a QR.
    """
    A64 = A.astype(np.float64)
    gram = A64.T @ A64
    try:
        lower = np.linalg.cholesky(gram)
        diagonal = np.diag(lower)
        if diagonal.min() > 1e-6 * diagonal.max():
            return (A64 @ np.linalg.inv(lower).T).astype(A.dtype)
    except np.linalg.LinAlgError:  # not positive definite in floating point
        pass
    n_rows, n_cols = A64.shape
    shift = 11 * (n_rows * n_cols + n_cols * (n_cols + 1)) * _TINY
    gram[np.diag_indices(n_cols)] += shift * np.trace(gram)
    try:
        Q = A64 @ np.linalg.inv(np.linalg.cholesky(gram)).T
        for _ in range(2):
            Q = Q @ np.linalg.inv(np.linalg.cholesky(Q.T @ Q)).T
        return Q.astype(A.dtype)
    except np.linalg.LinAlgError:  # dependent columns (or not finite)
        return np.linalg.qr(A64)[0].astype(A.dtype)


def initialize_factors(
    X, n_components, init, random_state, eps=1e-6, mean=None, problem=None
):
    """Initial ``W`` and ``H`` by scikit-learn's rules for the same ``init``.

    ``"random"`` draws ``|N(0, 1)| * sqrt(mean(X) / k)``, ``H`` first. The
    NNDSVD family (Boutsidis & Gallopoulos 2008) keeps the larger of the
    positive and negative parts of each singular pair; ``"nndsvda"`` fills its
    zeros with ``mean(X)`` and ``"nndsvdar"`` with small random values. The
    singular pairs come from scikit-learn's randomised SVD (the same
    oversampling and power iterations) made with cheaper linear algebra
    (:func:`_range_svd`): a third to a seventh of its time.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Non-negative data with no missing entries.
    n_components : int
        Rank of the factorisation.
    init : {"random", "nndsvd", "nndsvda", "nndsvdar"}
        The method.
    random_state : RandomState
        Source of randomness.
    eps : float, default=1e-6
        NNDSVD values below this are set to zero.
    mean : float, default=None
        The mean entry, when it is not ``X.mean()`` (the unstored entries of a
        sparse ``X`` being unknown).
    problem : Problem, default=None
        ``X`` as a :class:`Problem`, if already made: its threaded products.

    Returns
    -------
    W : ndarray of shape (n_samples, n_components)
    H : ndarray of shape (n_components, n_features)
    """
    n_samples, n_features = X.shape
    mean = X.mean() if mean is None else mean
    if init == "random":
        scale = np.sqrt(mean / n_components)
        H = scale * random_state.standard_normal((n_components, n_features))
        W = scale * random_state.standard_normal((n_samples, n_components))
        return np.abs(W).astype(X.dtype), np.abs(H).astype(X.dtype)

    if problem is None:
        problem = Problem(X)
    # the sparse products run on threads: OpenBLAS's spinning ones would slow them
    blas = threadpool_limits(limits=1, user_api="blas") if problem.threaded else None
    with blas or nullcontext():
        n_iter = _power_iterations(n_components, X.shape)
        U, S, Vt = _range_svd(problem, n_components, n_iter, random_state)
    return _nndsvd(U, S, Vt, init, mean, eps, random_state, X.dtype)


def _nndsvd(U, S, Vt, init, mean, eps, random_state, dtype):
    """The NNDSVD start from the singular triplets ``U, S, Vt``."""
    n_components = len(S)
    W, H = np.zeros_like(U), np.zeros_like(Vt)
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
    for j in range(1, n_components):
        u, v = U[:, j], Vt[j]
        u_pos, v_pos = np.maximum(u, 0), np.maximum(v, 0)
        u_neg, v_neg = np.maximum(-u, 0), np.maximum(-v, 0)
        norms_pos = np.linalg.norm(u_pos) * np.linalg.norm(v_pos)
        norms_neg = np.linalg.norm(u_neg) * np.linalg.norm(v_neg)
        if norms_pos > norms_neg:
            u, v, sigma = u_pos, v_pos, norms_pos
        else:
            u, v, sigma = u_neg, v_neg, norms_neg
        lbd = np.sqrt(S[j] * sigma)
        W[:, j] = lbd * u / max(np.linalg.norm(u), _TINY)
        H[j] = lbd * v / max(np.linalg.norm(v), _TINY)
    W[eps > W] = 0
    H[eps > H] = 0
    if init == "nndsvda":
        W[W == 0] = mean
        H[H == 0] = mean
    elif init == "nndsvdar":
        W[W == 0] = np.abs(mean * random_state.standard_normal(np.sum(W == 0)) / 100)
        H[H == 0] = np.abs(mean * random_state.standard_normal(np.sum(H == 0)) / 100)
    return W.astype(dtype, copy=False), H.astype(dtype, copy=False)
