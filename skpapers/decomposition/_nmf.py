"""The NMF estimator: validation, dispatch and fitted state."""

import os
import warnings
from dataclasses import dataclass, field
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
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from skpapers.decomposition._nmf_solvers import (
    BETA_LOSSES,
    Problem,
    Regularization,
    beta_divergence,
    beta_loss_to_float,
    fit_factors,
    initialize_factors,
    penalty,
    solve_frobenius_W,
)
from skpapers.utils import restore_on_error
from skpapers.utils._errors import external_stacklevel, names_estimator


class NMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Non-negative matrix factorization by Lee & Seung's update rules.

    Finds non-negative ``W`` and ``H`` whose product approximates the
    non-negative data ``X``, by minimising a beta-divergence (Frobenius,
    generalised Kullback-Leibler or Itakura-Saito) plus optional L1/L2
    penalties::

        X ~= W @ H,   W >= 0, H >= 0

    ``H`` is kept as :attr:`components_`; :meth:`transform` returns ``W``.
    Missing entries of a dense ``X`` are given as NaN; in a sparse ``X`` with
    ``missing="unstored"``, the entries it does not store. They are left out
    of the loss, the updates and the score, and :meth:`inverse_transform` and
    :meth:`predict_entries` fill them in.

    Parameters
    ----------
    n_components : int, "auto" or None, default="auto"
        Rank of the factorisation. ``None`` keeps all features; ``"auto"``
        takes it from ``W`` and ``H`` with ``init="custom"``, else keeps all
        features (scikit-learn's meanings).

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

    inner_iter : int or "auto", default="auto"
        Updates of one factor, the other fixed, before the other's turn. ``1``
        is the paper's plain alternation, with which ``solver="mu"`` agrees
        with scikit-learn's iterate for iterate. With ``"auto"``, the
        Frobenius multiplicative updates repeat a factor's update while it
        still moves and costs little next to the products with ``X`` (Gillis
        & Glineur's accelerated rule; the loss still never rises); the
        other losses make one, and on complete dense data start from a
        Frobenius fit (its iterations count in ``max_iter``, at most half of
        it, and in ``n_iter_``; it is kept only where it lowers the loss); the
        additive solver's ``"auto"`` steps make 5.

    missing : {"nan", "unstored"}, default="nan"
        What a missing entry is. ``"nan"``: NaN in a dense ``X``; every entry
        of a sparse ``X`` is observed, unstored ones being zero.
        ``"unstored"``: in a sparse ``X``, the unstored entries are unknown
        (ratings nobody gave), so only the stored ones are fitted, in memory
        ``O(nnz + (n_samples + n_features) * n_components)``; a dense ``X``
        still marks them with NaN.

    max_iter : int, default=200
        Most iterations; one iteration updates ``W`` and then ``H``.

    tol : float, default=1e-4
        Stop when the error fell by less than ``tol`` (relative to the error
        at initialisation) over the last 10 iterations, checked every 10 as
        scikit-learn does. The accelerated Frobenius schedule
        (``inner_iter="auto"`` on complete data), whose loss comes free with
        its products, checks after every iteration the fall over the last 5,
        times 2: the fall at the current rate, where 10 iterations would
        still count the large falls of the first few; so does a Frobenius
        start, by its own loss (with ``tol=1e-4`` where ``tol`` is 0). ``0``
        runs all ``max_iter`` iterations.

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
        Number of iterations run, those of a Frobenius start included.

    loss_curve_ : ndarray of shape (n_evaluations,)
        Penalised loss after the iterations in :attr:`loss_iterations_`,
        ``loss_curve_[0]`` being the loss at initialisation. With
        ``solver="mu"``, or the additive solver with ``"multiplicative"`` or
        ``"auto"`` steps, it never increases.

    loss_iterations_ : ndarray of shape (n_evaluations,)
        The iteration of each entry of :attr:`loss_curve_`: every one for the
        Frobenius loss of complete data, where the loss comes free; else every
        10th and the last, an evaluation costing about an iteration. After a
        Frobenius start (``inner_iter="auto"``, other losses, complete dense
        data), the second entry is its last iteration, and the count of 10
        goes on from there.

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

    :meth:`transform` solves for ``W`` with ``H`` fixed: exactly for the
    Frobenius loss of complete data (a batch of non-negative least-squares
    problems, by block principal pivoting), else by multiplicative updates
    from that solution, with the fit's ``tol`` and ``max_iter``.
    :meth:`fit_transform` returns the very ``W`` that :meth:`transform` gives
    for the same complete ``X``; with missing entries the two agree to the
    solver's tolerance.

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
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            None,
            StrOptions({"auto"}),
        ],
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
        "inner_iter": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "missing": [StrOptions({"nan", "unstored"})],
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
        n_components="auto",
        *,
        solver="mu",
        beta_loss="frobenius",
        init=None,
        learning_rate="auto",
        inner_iter="auto",
        missing="nan",
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
        self.inner_iter = inner_iter
        self.missing = missing
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
            problem = self._problem(X, "fit")
            beta = self._check_beta(problem)
            # On huge data, the fit runs on X / scale, W / scale_W and
            # H / scale_H (powers of two, scale = scale_W * scale_H): the same
            # fit, exactly, with every product in range.
            scale = problem.scale
            scale_W = float(np.ldexp(1.0, int(np.frexp(scale)[1] - 1) // 2))
            scale_H = scale / scale_W
            W, H = self._initial_factors(X, W, H, problem, scale_W, scale_H)
            regularization = _scaled(
                self._regularization(X.shape), scale, scale_W, scale_H, beta
            )
            loss_every = _loss_every(problem, beta)
            plain = self.inner_iter == 1 or loss_every != 1
            start = self._frobenius_start(problem, W, H, beta, regularization)
            result = fit_factors(
                problem,
                W,
                H,
                beta=beta,
                regularization=regularization,
                solver=self.solver,
                learning_rate=self.learning_rate,
                n_inner=self.inner_iter,
                max_iter=self.max_iter - start.n_iter,
                tol=self.tol,
                error_reference=start.reference,
                initial_divergence=start.divergence,
                lift_subnormal=self.inner_iter == "auto",
                loss_every=loss_every,
                # where the loss comes free, the accelerated schedule checks
                # the rule after each iteration, on the fall of the last 5
                # (per 10); the plain rule keeps scikit-learn's 10 every 10
                check_every=10 if plain else 1,
                window=10 if plain else _RATE_WINDOW,
                verbose=self.verbose,
            )
            with np.errstate(over="ignore"):  # a loss beyond the range is inf
                components = result.H * scale_H
            # the W that transform(X) gives, so that the two agree exactly
            W, H, scale_W = self._transform(
                problem, components, beta, guess=result.W * scale_W
            )
            divergence = beta_divergence(problem, W, H, beta)
            W = _times(W, scale_W)
            n_iter = start.n_iter + result.n_iter
            if n_iter == self.max_iter and self.tol > 0:
                warnings.warn(
                    f"NMF: the maximum number of iterations ({self.max_iter}) was "
                    "reached before convergence; increase max_iter or tol.",
                    ConvergenceWarning,
                    stacklevel=external_stacklevel(),
                )

        self.components_ = components
        with np.errstate(over="ignore"):
            curve = np.concatenate([start.loss_curve, result.loss_curve])
            self.loss_curve_ = curve * np.power(scale, beta)
            error = np.power(scale, beta / 2) * np.sqrt(2 * divergence)
        self.loss_iterations_ = np.concatenate(
            [start.loss_iterations, result.loss_iterations + start.n_iter]
        )
        self.n_components_ = result.H.shape[0]
        self.n_iter_ = n_iter
        self.reconstruction_err_ = float(error)
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
        problem = self._problem(X, "transform")
        W, _, scale_W = self._transform(
            problem, self.components_, self._check_beta(problem)
        )
        return _times(W, scale_W)

    def _transform(self, problem, components, beta, guess=None):
        """``W`` and ``H = components`` in the problem's scale, and the power
        of two that takes that ``W`` back to ``X``'s.

        ``guess``, a nearby ``W`` (the fit's last), speeds up the exact
        Frobenius solve without changing its answer; with missing entries,
        where no exact solve exists, it is where the solve starts, so that
        ``fit_transform`` agrees with ``transform`` to the solver's tolerance
        rather than exactly."""
        scale, scale_H = problem.scale, _scale_of(components)
        if scale != 1 or scale_H != 1:  # W / scale_W of the size of X / scale
            top = float(components.max(initial=0.0))
            scale_H = _power_of_two_below(top) if top > 0 else 1.0
        scale_W = scale / scale_H
        H = (components / scale_H).astype(problem.dtype, copy=False)
        regularization = _scaled(
            self._regularization(problem.shape), scale, scale_W, scale_H, beta
        )
        if beta == 2 and problem.complete:  # exact: no start, no tol
            W = self._solve_W(problem, H, None, beta, regularization, guess)
            return W, H, scale_W
        mean = problem.X.sum() / problem.n_observed
        start = np.full(
            (problem.shape[0], len(components)),
            np.sqrt(mean / len(components)),
            dtype=problem.dtype,
        )
        # tol is relative to the error of this flat W, as the fit's is to the
        # error at its start: the same for fit_transform and transform
        reference = np.sqrt(2 * beta_divergence(problem, start, H, beta))
        if problem.complete and beta != 2:  # the Frobenius solution: far closer
            exact = solve_frobenius_W(problem, H, guess=guess)
            # multiplicative updates cannot leave zero: keep a little of start
            start = np.maximum(exact, 0.01 * start, out=exact)
        elif not problem.complete and guess is not None:
            start = (guess / scale_W).astype(problem.dtype)
        W = self._solve_W(problem, H, start, beta, regularization, guess, reference)
        return W, H, scale_W

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
        X = self._check_W(X, "inverse_transform")
        shape = (X.shape[0], self.components_.shape[1])
        needed = np.prod(shape, dtype=np.float64) * X.dtype.itemsize
        available = _available_memory()
        if available is not None and needed > available:
            raise ValueError(
                f"NMF.inverse_transform: the dense reconstruction of shape {shape} "
                f"needs {needed / 2**30:.1f} GiB and {available / 2**30:.1f} GiB "
                "are free; ask for the entries you need with predict_entries."
            )
        return np.asarray(X @ self.components_.astype(X.dtype, copy=False))

    @names_estimator
    def predict_entries(self, W, rows, columns):
        """Predict the entries ``(rows[i], columns[i])`` of ``W @ components_``.

        Fills in any entries, missing ones included, without the dense
        reconstruction that :meth:`inverse_transform` makes: for a ratings
        matrix, the ratings of the (user, item) pairs asked for.

        Parameters
        ----------
        W : array-like of shape (n_samples, n_components_)
            Rows in the space of the components, such as ``transform``'s
            output.

        rows : array-like of int, shape (n_entries,)
            Row of each entry, an index into ``W``.

        columns : array-like of int, shape (n_entries,)
            Column of each entry, an index into the features.

        Returns
        -------
        values : ndarray of shape (n_entries,)
            ``(W @ components_)[rows, columns]``, in ``W``'s dtype.
        """
        W = self._check_W(W, "predict_entries")
        if sp.issparse(W):
            W = W.toarray()
        rows, columns = (
            column_or_1d(check_array(a, ensure_2d=False, dtype=None), warn=False)
            for a in (rows, columns)
        )
        for name, index, size in (
            ("rows", rows, W.shape[0]),
            ("columns", columns, self.components_.shape[1]),
        ):
            if index.size and not np.issubdtype(index.dtype, np.integer):
                raise TypeError(
                    f"NMF.predict_entries: {name} must hold integer indices, got "
                    f"dtype {index.dtype}."
                )
            if index.size and (index.min() < -size or index.max() >= size):
                raise ValueError(
                    f"NMF.predict_entries: {name} holds indices outside "
                    f"[{-size}, {size}); there are {size} of them."
                )
        if rows.shape != columns.shape:
            raise ValueError(
                f"NMF.predict_entries: rows and columns must be as long, got "
                f"{rows.size} and {columns.size}."
            )
        H = self.components_.astype(W.dtype, copy=False)
        return _product_at_pairs(W, H, rows, columns)

    def _check_W(self, W, method):
        check_is_fitted(self)
        W = check_array(W, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32])
        if W.shape[1] != self.n_components_:
            raise ValueError(
                f"NMF.{method}: X has {W.shape[1]} columns but the model "
                f"has {self.n_components_} components."
            )
        return W

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
        problem = self._problem(X, "score")
        beta = self._check_beta(problem)
        W, H, _ = self._transform(problem, self.components_, beta)
        divergence = beta_divergence(problem, W, H, beta)
        with np.errstate(over="ignore"):
            return -np.power(problem.scale, beta) * divergence / problem.n_observed

    # -- helpers -----------------------------------------------------------

    def _problem(self, X, method):
        """The checked ``Problem`` of ``X``, scaled into a safe range."""
        _check_missing(X, self, method)
        scale = _scale_of(X)
        if scale != 1:
            X = X / scale  # a copy: the caller's X stays as given
        problem = Problem(X, unstored_missing=self.missing == "unstored")
        problem.scale = scale
        return problem

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

    def _n_components(self, n_features, H=None):
        if self.n_components is None:
            return n_features
        if self.n_components == "auto":
            return n_features if H is None else np.shape(H)[0]
        return self.n_components

    def _initial_factors(self, X, W, H, problem, scale_W, scale_H):
        """Initial ``W / scale_W`` and ``H / scale_H`` for ``X / problem.scale``."""
        n_samples, n_features = X.shape
        if self.init == "custom":
            if W is None or H is None:
                raise ValueError("NMF: init='custom' needs both W and H passed to fit.")
            k = self._n_components(n_features, H)
            W = _check_factor(W, (n_samples, k), "W", X.dtype)
            H = _check_factor(H, (k, n_features), "H", X.dtype)
            W /= scale_W
            H /= scale_H
            return W, H
        if W is not None or H is not None:  # as scikit-learn does
            warnings.warn(
                f"NMF: W and H are used only with init='custom', not init="
                f"{self.init!r}; they are ignored. Set init='custom' to start "
                "from them.",
                RuntimeWarning,
                stacklevel=external_stacklevel(),
            )
        k = self._n_components(n_features)
        init = self.init
        if init is None:
            small = k <= min(n_samples, n_features)
            init = "nndsvda" if small and not problem.unstored else "random"
        if init == "nndsvd" and self.solver == "mu":  # as scikit-learn warns
            warnings.warn(
                "NMF: the multiplicative rules cannot move the zeros that "
                "init='nndsvd' leaves, which makes for a poorer fit; try "
                "init='nndsvda' or 'nndsvdar'.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )
        if init != "random" and k > min(n_samples, n_features):
            raise ValueError(
                f"NMF: init={init!r} needs n_components <= min(n_samples, "
                f"n_features) = {min(n_samples, n_features)}, got {k}; use "
                "init='random' or fewer components."
            )
        given = problem if problem.scale == 1 and problem.mask is None else None
        if problem.scale != 1:
            X = X / problem.scale
        mean = None
        if problem.unstored:  # the unstored entries are unknown, not zeros
            mean = float(X.data.mean()) if X.nnz else 0.0
        elif not sp.issparse(X) and np.isnan(X).any():
            X = _fill_with_column_means(X)
        random_state = check_random_state(self.random_state)
        return initialize_factors(X, k, init, random_state, mean=mean, problem=given)

    def _frobenius_start(self, problem, W, H, beta, regularization):
        """Fit ``W`` and ``H`` in place for the Frobenius loss first, where the
        accelerated schedule fits another loss to complete dense data.

        The Frobenius fit is cheap (its loss comes free, its inner steps cost
        ``O(n k^2)``) and lands far closer to the Kullback-Leibler or
        Itakura-Saito fit of dense data than the NNDSVD start does, as
        :meth:`transform` starts from the Frobenius solution. Its iterations
        count in ``max_iter`` (at most half of it) and ``n_iter_``; ``tol``
        stays relative to the error at the initialisation. Its small entries
        are raised to a thousandth of the factor's mean, which multiplicative
        updates could not leave. Where the fitted loss is no lower there than
        at the initialisation, the initial factors are put back: the loss
        never rises.
        """
        plain = _FrobeniusStart(n_iter=0, reference=None)
        if (
            beta == 2
            or self.solver != "mu"
            or self.inner_iter != "auto"
            or not problem.complete
            or sp.issparse(problem.X)
            or self.max_iter < 2
        ):
            return plain

        def objective(divergence):
            return (
                divergence
                + penalty(W, regularization.l1_W, regularization.l2_W)
                + penalty(H, regularization.l1_H, regularization.l2_H)
            )

        initial = beta_divergence(problem, W, H, beta)
        initial_objective = objective(initial)
        W0, H0 = W.copy(), H.copy()
        result = fit_factors(
            problem,
            W,
            H,
            beta=2,
            regularization=Regularization(),
            max_iter=self.max_iter // 2,
            tol=self.tol or _START_TOL,
            check_every=1,
            window=_RATE_WINDOW,
        )
        for A in (W, H):
            np.maximum(A, _START_FLOOR * A.mean(), out=A)
        divergence = beta_divergence(problem, W, H, beta)
        if not objective(divergence) <= initial_objective:  # NaN too
            W[...], H[...] = W0, H0
            return plain
        return _FrobeniusStart(
            n_iter=result.n_iter,
            reference=np.sqrt(2 * initial),
            divergence=divergence,
            loss_curve=np.array([initial_objective]),
            loss_iterations=np.array([0]),
        )

    def _regularization(self, shape):
        n_samples, n_features = shape
        alpha_H = self.alpha_W if self.alpha_H == "same" else self.alpha_H
        return Regularization(
            l1_W=n_features * self.alpha_W * self.l1_ratio,
            l1_H=n_samples * alpha_H * self.l1_ratio,
            l2_W=n_features * self.alpha_W * (1.0 - self.l1_ratio),
            l2_H=n_samples * alpha_H * (1.0 - self.l1_ratio),
        )

    def _solve_W(self, problem, H, W, beta, regularization, guess=None, reference=None):
        """Solve for ``W`` with ``H`` fixed, from ``W``.

        The Frobenius subproblem of complete data is a batch of small
        non-negative least-squares problems, solved exactly (so the start does
        not matter); the others by multiplicative updates from ``W``, with
        the fit's ``tol`` and ``max_iter``, as scikit-learn's ``transform``.
        """
        if beta == 2 and problem.complete:
            return solve_frobenius_W(
                problem, H, regularization.l1_W, regularization.l2_W, guess
            )
        return fit_factors(
            problem,
            W,
            H,
            beta=beta,
            regularization=regularization,
            solver="mu",
            max_iter=self.max_iter,
            # float32 rounding alone moves the error by about its eps
            tol=max(self.tol, 10 * np.finfo(problem.dtype).eps) if self.tol else 0,
            update_H=False,
            loss_every=_loss_every(problem, beta),
            error_reference=reference,
            lift_subnormal=self.inner_iter == "auto",
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


def _check_missing(X, estimator, method):
    """Check the non-negativity and coverage of ``X``."""
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
        if estimator.missing == "unstored":
            X = X.tocsr()  # counted on CSR: no second copy of a large X
            per_column = np.bincount(X.indices, minlength=X.shape[1])
            _check_coverage(np.diff(X.indptr), per_column, where)
        return
    if np.nanmin(X, initial=np.inf) < 0:
        raise ValueError(
            f"Negative values in data passed to {where}: X must be non-negative "
            "(NaN marks a missing entry)."
        )
    observed = ~np.isnan(X)
    _check_coverage(observed.sum(axis=1), observed.sum(axis=0), where)


# Iterations over which the accelerated schedule measures the fall of the
# error for ``tol`` (scaled to 10 iterations).
_RATE_WINDOW = 5
# tol of the Frobenius start where the fit's own is 0 (run every iteration).
_START_TOL = 1e-4
# Entries below this share of their factor's mean after the Frobenius start
# are raised to it: multiplicative updates cannot move a zero.
_START_FLOOR = 1e-3


@dataclass
class _FrobeniusStart:
    """What the Frobenius start did: its iterations, the error ``tol`` is
    relative to (``None``: the fit's own start), the divergence it ended at
    and the loss at the initialisation, where one was made."""

    n_iter: int
    reference: float | None
    divergence: float | None = None
    loss_curve: np.ndarray = field(default_factory=lambda: np.empty(0))
    loss_iterations: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))


def _loss_every(problem, beta):
    """How often the solvers evaluate the loss: every iteration where it is
    free (the Frobenius loss of complete data), else every 10, as the stopping
    rule needs."""
    return 1 if beta == 2 and problem.complete else 10


def _check_coverage(per_row, per_column, where):
    """Refuse a row or column with no observed entry: it has no fit."""
    for counts, what in ((per_row, "row"), (per_column, "column")):
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            raise ValueError(
                f"{where}: X has {empty.size} {what}(s) with no observed entry "
                f"(all missing), first at index {empty[0]}; every {what} needs "
                "at least one observed value."
            )


def _scale_of(X):
    """A power of two to divide ``X`` by, so that its products stay finite.

    1 for data of moderate size, so that the iterates stay exactly those of
    the unscaled rules; else about ``max(X)``. Dividing by a power of two is
    exact, and each loss and penalty scales by a known power of it.
    """
    values = X.data if sp.issparse(X) else X
    top = float(np.nanmax(values, initial=0.0)) if values.size else 0.0
    if top <= 2.0 ** (np.finfo(X.dtype).maxexp // 4):
        return 1.0
    return _power_of_two_below(top)


def _times(W, scale_W):
    """``W * scale_W``, in place; beyond the dtype's range is inf."""
    if scale_W != 1:
        with np.errstate(over="ignore"):
            W *= scale_W
    return W


def _power_of_two_below(value):
    """The largest power of two at most ``value > 0``, exactly."""
    return float(np.ldexp(1.0, int(np.frexp(value)[1]) - 1))


def _scaled(regularization, scale, scale_W, scale_H, beta):
    """The penalties that make the same minimisers on ``X / scale`` with
    ``W / scale_W`` and ``H / scale_H``, where the objective is the original
    one over ``scale**beta``."""
    if scale == scale_W == scale_H == 1:
        return regularization

    def times(value, power):  # scale_**power / scale**beta, in log2: no overflow
        if not value:
            return 0.0
        exponent = power - beta * np.log2(scale)
        with np.errstate(over="ignore"):
            return float(min(value * np.exp2(exponent), np.finfo(np.float64).max))

    log_W, log_H = np.log2(scale_W), np.log2(scale_H)
    return Regularization(
        l1_W=times(regularization.l1_W, log_W),
        l1_H=times(regularization.l1_H, log_H),
        l2_W=times(regularization.l2_W, 2 * log_W),
        l2_H=times(regularization.l2_H, 2 * log_H),
    )


def _check_factor(A, shape, name, dtype):
    """A copy of a user-given initial factor, checked; of ``X``'s dtype."""
    A = check_array(A, dtype=None, input_name=name)
    if A.shape != shape:
        raise ValueError(
            f"NMF: the initial {name} has shape {A.shape}, expected {shape}."
        )
    if A.dtype != dtype:  # scikit-learn's error for the same misuse
        raise TypeError(
            f"NMF: the initial {name} has dtype {A.dtype}, but X has {dtype}; "
            f"pass {name} of the same dtype as X."
        )
    if A.min() < 0:
        raise ValueError(f"NMF: the initial {name} has negative values.")
    if not A.any():
        raise ValueError(
            f"NMF: the initial {name} is all zeros; multiplicative updates "
            "cannot leave zero."
        )
    return A.copy()


def _product_at_pairs(W, H, rows, columns, chunk=65536):
    """``(W @ H)[rows, columns]``, a chunk of entries at a time."""
    out = np.empty(rows.shape, dtype=W.dtype)
    for start in range(0, rows.size, chunk):
        part = slice(start, start + chunk)
        np.einsum("ij,ji->i", W[rows[part]], H[:, columns[part]], out=out[part])
    return out


def _available_memory():
    """Bytes of free memory, where the system says (Linux); else None."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _fill_with_column_means(X):
    """``X`` with each NaN replaced by its column's observed mean."""
    means = np.nanmean(X, axis=0)
    return np.where(np.isnan(X), means, X).astype(X.dtype, copy=False)
