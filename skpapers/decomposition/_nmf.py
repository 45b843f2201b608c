"""The NMF estimator: validation, dispatch and fitted state."""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skpapers.decomposition._nmf_solvers import (
    BETA_LOSSES,
    Problem,
    Regularization,
    beta_divergence,
    beta_loss_to_float,
    fit_factors,
    initialize_factors,
)
from skpapers.utils import restore_on_error
from skpapers.utils._errors import names_estimator

# transform() solves the convex problem for W with H fixed much more tightly
# than fit's tol; fit_transform returns the same solution.
_TRANSFORM_TOL = 1e-7
_TRANSFORM_MAX_ITER = 1000
# Accelerated steps per iteration of that solve: the subproblem is one convex
# problem, and many cheap inner steps reach it sooner than many outer ones.
_TRANSFORM_N_INNER = 50


class NMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Non-negative matrix factorization by Lee & Seung's update rules.

    Finds non-negative ``W`` and ``H`` whose product approximates the
    non-negative data ``X``, by minimising a beta-divergence (Frobenius,
    generalised Kullback-Leibler or Itakura-Saito) plus optional L1/L2
    penalties::

        X ~= W @ H,   W >= 0, H >= 0

    ``H`` is kept as :attr:`components_`; :meth:`transform` returns ``W``.
    Missing entries of a dense ``X`` are given as NaN: they are left out of
    the loss, the updates and the score, and :meth:`inverse_transform` fills
    them in.

    Parameters
    ----------
    n_components : int, default=None
        Rank of the factorisation. ``None`` keeps all features.

    solver : {"mu", "additive"}, default="mu"
        ``"mu"``: the paper's multiplicative rules, e.g. for the Frobenius loss
        ``H <- H * (W^T X) / (W^T W H)``; they never increase the loss.
        ``"additive"``: the paper's additive (projected gradient) rule
        ``H <- max(0, H + eta * (W^T X - W^T W H))`` with the step chosen by
        ``learning_rate``.

    beta_loss : {"frobenius", "kullback-leibler", "itakura-saito"} or \
{2, 1, 0}, default="frobenius"
        The divergence to minimise. Itakura-Saito (0) needs ``X`` without
        zeros.

    init : {"random", "nndsvd", "nndsvda", "nndsvdar", "custom"}, default=None
        Initialisation, with scikit-learn's meanings. ``None`` is
        ``"nndsvda"`` when ``n_components <= min(n_samples, n_features)``,
        else ``"random"``. ``"custom"`` takes ``W`` and ``H`` given to
        :meth:`fit`.

    learning_rate : "auto", "multiplicative" or float, default="auto"
        Step ``eta`` of the additive solver (ignored by ``"mu"``).
        ``"multiplicative"`` is the paper's ``eta = H / (W^T W H)``, with
        which the additive rule equals the multiplicative one. A float is a
        fixed step (plain projected gradient descent: too large a step makes
        the loss rise). ``"auto"`` never increases the loss: for the Frobenius
        loss without missing entries it makes 5 accelerated projected-gradient
        steps of length ``1 / L`` per block, restarting the momentum whenever
        a step would go up; otherwise it extrapolates along the multiplicative
        step and keeps the extrapolation only where it lowers the loss.

    max_iter : int, default=200
        Most iterations; one iteration updates ``W`` and then ``H``.

    tol : float, default=1e-4
        Stop when the error fell by less than ``tol`` (relative to the error
        at initialisation) over the last 10 iterations. ``0`` runs all
        ``max_iter`` iterations.

    alpha_W : float, default=0.0
        Penalty on ``W``, scaled by ``n_features`` as in scikit-learn.

    alpha_H : float or "same", default="same"
        Penalty on ``H``, scaled by ``n_samples``; ``"same"`` uses ``alpha_W``.

    l1_ratio : float, default=0.0
        Share of L1 in the penalties (``0`` is pure L2, ``1`` pure L1).

    random_state : int, RandomState instance or None, default=None
        Seed for the ``"random"`` and ``"nndsvdar"`` initialisations and the
        randomised SVD of the NNDSVD family.

    verbose : int, default=0
        Print the loss every 10 iterations when positive.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features_in_)
        The factor ``H``.

    n_components_ : int
        Rank of the factorisation.

    reconstruction_err_ : float
        ``sqrt(2 * divergence)`` between the observed entries of ``X`` and
        ``W @ H`` for the ``W`` that :meth:`fit_transform` returns; for the
        Frobenius loss, the Frobenius norm of the residual.

    n_iter_ : int
        Number of iterations run.

    loss_curve_ : ndarray of shape (n_iter_ + 1,)
        Penalised loss after each iteration, ``loss_curve_[0]`` being the loss
        at initialisation. With ``solver="mu"``, or the additive solver with
        ``"multiplicative"`` or ``"auto"`` steps, it never increases.

    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during :meth:`fit`, when they are strings.

    See Also
    --------
    sklearn.decomposition.NMF : scikit-learn's NMF (coordinate descent and
        multiplicative solvers, no missing values).

    Notes
    -----
    One iteration updates ``W`` first, then ``H``, as scikit-learn's solver
    does, so that with the same initialisation the two ``"mu"`` solvers agree
    iterate for iterate.

    :meth:`transform` solves the convex problem for ``W`` with ``H`` fixed to a
    tight tolerance (the Frobenius loss by accelerated projected gradient, which
    reaches exact zeros; the others by multiplicative updates), and
    :meth:`fit_transform` returns the very ``W`` that :meth:`transform` gives
    for the same ``X``, so ``fit(X).transform(X)`` equals ``fit_transform(X)``.

    References
    ----------
    .. [1] Lee, D. D. and Seung, H. S. (2000). "Algorithms for Non-negative
       Matrix Factorization". Advances in Neural Information Processing
       Systems 13.

    Examples
    --------
    >>> import numpy as np
    >>> from skpapers.decomposition import NMF
    >>> from skpapers.datasets import load_ratings_example
    >>> V = load_ratings_example().data
    >>> nmf = NMF(n_components=1, init="nndsvd", tol=0, max_iter=500).fit(V)
    >>> round(nmf.reconstruction_err_, 3)
    4.501
    >>> V_missing = V.copy()
    >>> V_missing[0, 2] = np.nan
    >>> W = NMF(n_components=1, init="random", random_state=0).fit_transform(
    ...     V_missing
    ... )
    >>> W.shape
    (3, 1)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "solver": [StrOptions({"mu", "additive"})],
        "beta_loss": [StrOptions(set(BETA_LOSSES)), Options(Real, {0, 1, 2})],
        "init": [
            StrOptions({"random", "nndsvd", "nndsvda", "nndsvdar", "custom"}),
            None,
        ],
        "learning_rate": [
            StrOptions({"auto", "multiplicative"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "alpha_W": [Interval(Real, 0, None, closed="left")],
        "alpha_H": [Interval(Real, 0, None, closed="left"), StrOptions({"same"})],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        solver="mu",
        beta_loss="frobenius",
        init=None,
        learning_rate="auto",
        max_iter=200,
        tol=1e-4,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.solver = solver
        self.beta_loss = beta_loss
        self.init = init
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.random_state = random_state
        self.verbose = verbose

    @names_estimator
    def fit(self, X, y=None, W=None, H=None):
        """Learn the factorisation of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative data; NaN marks a missing entry (dense ``X`` only).

        y : None
            Ignored.

        W : array-like of shape (n_samples, n_components), default=None
            Initial ``W`` when ``init="custom"``.

        H : array-like of shape (n_components, n_features), default=None
            Initial ``H`` when ``init="custom"``.

        Returns
        -------
        self : NMF
            The fitted estimator.
        """
        self.fit_transform(X, W=W, H=H)
        return self

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None, W=None, H=None):
        """Learn the factorisation of ``X`` and return ``W``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative data; NaN marks a missing entry (dense ``X`` only).

        y : None
            Ignored.

        W : array-like of shape (n_samples, n_components), default=None
            Initial ``W`` when ``init="custom"``.

        H : array-like of shape (n_components, n_features), default=None
            Initial ``H`` when ``init="custom"``.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components_)
            The data in the space of the components.
        """
        with restore_on_error(self):
            X = self._validate_X(X, reset=True)
            problem = _problem_or_error(X, self, "fit")
            beta = self._check_beta(problem)
            W, H = self._initial_factors(X, W, H)
            regularization = self._regularization(X.shape)
            result = fit_factors(
                problem,
                W,
                H,
                beta=beta,
                regularization=regularization,
                solver=self.solver,
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                tol=self.tol,
                verbose=self.verbose,
            )
            if result.n_iter == self.max_iter and self.tol > 0:
                warnings.warn(
                    f"NMF: the maximum number of iterations ({self.max_iter}) was "
                    "reached before convergence; increase max_iter or tol.",
                    ConvergenceWarning,
                    stacklevel=2,
                )

        self.components_ = result.H
        self.n_components_ = result.H.shape[0]
        self.n_iter_ = result.n_iter
        self.loss_curve_ = result.loss_curve
        # the W that transform(X) gives, so that the two always agree
        W = self._transform(problem)
        divergence = beta_divergence(problem, W, result.H, beta)
        self.reconstruction_err_ = float(np.sqrt(2 * divergence))
        return W

    @names_estimator
    def transform(self, X):
        """Find the ``W`` that best fits ``X`` with the learned ``H``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative data; NaN marks a missing entry (dense ``X`` only).

        Returns
        -------
        W : ndarray of shape (n_samples, n_components_)
            The data in the space of the components.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        problem = _problem_or_error(X, self, "transform")
        return self._transform(problem)

    def _transform(self, problem):
        beta = self._check_beta(problem)
        H = self.components_.astype(problem.dtype, copy=False)
        mean = problem.X.sum() / problem.n_observed
        start = np.full(
            (problem.shape[0], self.n_components_),
            np.sqrt(mean / self.n_components_),
            dtype=problem.dtype,
        )
        return self._solve_W(
            problem, H, start, beta, self._regularization(problem.shape)
        )

    @names_estimator
    def inverse_transform(self, X):
        """Map ``W`` back to data space: ``W @ components_``.

        Missing entries of the data that gave ``W`` come back filled in.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_components_)
            Data in the space of the components, such as ``transform``'s output.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            The reconstruction.
        """
        check_is_fitted(self)
        X = check_array(X, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_components_:
            raise ValueError(
                f"NMF.inverse_transform: X has {X.shape[1]} columns but the model "
                f"has {self.n_components_} components."
            )
        return np.asarray(X @ self.components_.astype(X.dtype, copy=False))

    @names_estimator
    def score(self, X, y=None):
        """Negative beta-divergence per observed entry of ``X``.

        ``X`` is first transformed with the learned ``H``; higher is better,
        so :class:`~sklearn.model_selection.GridSearchCV` can rank models with
        no scorer given.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative data; NaN marks a missing entry (dense ``X`` only).

        y : None
            Ignored.

        Returns
        -------
        score : float
            ``-divergence(X, W @ H) / n_observed``.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        problem = _problem_or_error(X, self, "score")
        W = self._transform(problem)
        H = self.components_.astype(problem.dtype, copy=False)
        divergence = beta_divergence(problem, W, H, self._check_beta(problem))
        return -divergence / problem.n_observed

    # -- helpers -----------------------------------------------------------

    def _validate_X(self, X, *, reset):
        return validate_data(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
            reset=reset,
        )

    def _check_beta(self, problem):
        beta = beta_loss_to_float(self.beta_loss)
        if beta <= 0 and problem.has_observed_zero():
            raise ValueError(
                "NMF: beta_loss='itakura-saito' (0) needs X without zeros, "
                "and X has some; add a small value to X or use "
                "beta_loss='frobenius' or 'kullback-leibler'."
            )
        return beta

    def _n_components(self, n_features):
        return n_features if self.n_components is None else self.n_components

    def _initial_factors(self, X, W, H):
        n_samples, n_features = X.shape
        k = self._n_components(n_features)
        if self.init == "custom":
            if W is None or H is None:
                raise ValueError("NMF: init='custom' needs both W and H passed to fit.")
            return (
                _check_factor(W, (n_samples, k), "W", X.dtype),
                _check_factor(H, (k, n_features), "H", X.dtype),
            )
        if W is not None or H is not None:
            raise ValueError(
                f"NMF: W and H are used only with init='custom', not init="
                f"{self.init!r}; set init='custom' to start from them."
            )
        init = self.init
        if init is None:
            init = "nndsvda" if k <= min(n_samples, n_features) else "random"
        if init != "random" and k > min(n_samples, n_features):
            raise ValueError(
                f"NMF: init={init!r} needs n_components <= min(n_samples, "
                f"n_features) = {min(n_samples, n_features)}, got {k}; use "
                "init='random' or fewer components."
            )
        if not sp.issparse(X) and np.isnan(X).any():
            X = _fill_with_column_means(X)
        return initialize_factors(X, k, init, check_random_state(self.random_state))

    def _regularization(self, shape):
        n_samples, n_features = shape
        alpha_H = self.alpha_W if self.alpha_H == "same" else self.alpha_H
        return Regularization(
            l1_W=n_features * self.alpha_W * self.l1_ratio,
            l1_H=n_samples * alpha_H * self.l1_ratio,
            l2_W=n_features * self.alpha_W * (1.0 - self.l1_ratio),
            l2_H=n_samples * alpha_H * (1.0 - self.l1_ratio),
        )

    def _solve_W(self, problem, H, W, beta, regularization):
        """Solve for ``W`` with ``H`` fixed, from ``W``, to a tight tolerance.

        The subproblem is convex, so any monotone solver reaches the same
        answer; the Frobenius one with a constant Gram matrix is solved by
        accelerated projected gradient, which converges far faster than the
        multiplicative rule to the entries that should be zero.
        """
        plain_frobenius = beta == 2 and problem.mask is None
        return fit_factors(
            problem,
            W,
            H,
            beta=beta,
            regularization=regularization,
            solver="additive" if plain_frobenius else "mu",
            learning_rate="auto",
            max_iter=_TRANSFORM_MAX_ITER,
            # float32 rounding alone moves the error by about its eps
            tol=max(_TRANSFORM_TOL, 10 * np.finfo(problem.dtype).eps),
            update_H=False,
            n_inner=_TRANSFORM_N_INNER,
        ).W

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _problem_or_error(X, estimator, method):
    """Check the non-negativity and coverage of ``X``; return its ``Problem``."""
    where = f"{type(estimator).__name__}.{method}"
    if sp.issparse(X):
        if np.isnan(X.data).any():
            raise ValueError(
                f"{where}: NaN in a sparse X is not supported; pass a dense "
                "array with NaN for the missing entries."
            )
        if X.nnz and X.data.min() < 0:
            raise ValueError(
                f"Negative values in data passed to {where}: X must be non-negative."
            )
        return Problem(X)
    if np.nanmin(X, initial=np.inf) < 0:
        raise ValueError(
            f"Negative values in data passed to {where}: X must be non-negative "
            "(NaN marks a missing entry)."
        )
    observed = ~np.isnan(X)
    for axis, what in ((1, "row"), (0, "column")):
        empty = np.flatnonzero(~observed.any(axis=axis))
        if empty.size:
            raise ValueError(
                f"{where}: X has {empty.size} {what}(s) with no observed entry "
                f"(all NaN), first at index {empty[0]}; every {what} needs at "
                "least one observed value."
            )
    return Problem(X)


def _check_factor(A, shape, name, dtype):
    """A copy of a user-given initial factor, checked and in ``dtype``."""
    A = check_array(A, dtype=[np.float64, np.float32], input_name=name)
    if A.shape != shape:
        raise ValueError(
            f"NMF: the initial {name} has shape {A.shape}, expected {shape}."
        )
    if A.min() < 0:
        raise ValueError(f"NMF: the initial {name} has negative values.")
    if not A.any():
        raise ValueError(
            f"NMF: the initial {name} is all zeros; multiplicative updates "
            "cannot leave zero."
        )
    return A.astype(dtype, copy=True)


def _fill_with_column_means(X):
    """``X`` with each NaN replaced by its column's observed mean."""
    means = np.nanmean(X, axis=0)
    return np.where(np.isnan(X), means, X).astype(X.dtype, copy=False)
