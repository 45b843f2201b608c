"""Samples from the exponentiated payoff distribution of RAML.

Reward augmented maximum likelihood trains on targets ``y`` drawn from
``q(y | y*; tau) ∝ exp(r(y, y*) / tau)`` instead of the targets ``y*``, with
the reward ``r = -d`` the negative Hamming or edit distance. As in the paper,
the draw is stratified: first a distance ``e``, with probability proportional
to ``count(e) * exp(-e / tau)``, then one sequence uniformly among the
``count(e)`` at distance ``e``.

Two choices, both documented in :func:`payoff_distribution`, make this usable:

- The distance is scaled by ``1 + ln(V - 1)`` (``V`` the vocabulary size), as
  in the authors' released code. With the plain distance, ``count(e)`` grows
  like ``(V - 1)^e`` and swamps ``exp(-e / tau)``: for 39 phonemes at
  ``tau = 0.6`` the expected share of replaced tokens (Hamming) is 88%.
  Scaled, it is 1.6%, and at ``tau = 1`` it is ``1 / (1 + exp(1)) = 27%`` for
  every ``V``.
- For the edit distance, "uniformly among the sequences at distance ``e``" is
  replaced by "uniformly among the edit scripts of ``e`` edits" (defined in
  :func:`payoff_distribution`); the sample is then *at most* ``e`` edits away.

:func:`payoff_distribution` and :func:`sample_payoff` work on one target with
numpy; :func:`sample_payoff_batch` draws one sample per row of a padded torch
batch with a few vectorised ops, for the training loop.

References
----------
Norouzi, M., Bengio, S., Chen, Z., Jaitly, N., Schuster, M., Wu, Y. and
Schuurmans, D. (2016). Reward augmented maximum likelihood for neural
structured prediction. Advances in Neural Information Processing Systems 29.
"""

import collections
import math
import numbers

import numpy as np
import torch
from scipy.special import gammaln
from sklearn.utils import check_random_state

REWARDS = ("edit", "hamming")


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def _check_tau(tau):
    if (
        isinstance(tau, bool)
        or not isinstance(tau, numbers.Real)
        or math.isnan(tau)
        or tau < 0
    ):
        raise ValueError(
            f"tau must be a real number >= 0 (0 returns the target itself); got "
            f"{tau!r}."
        )
    return float(tau)


def _check_reward(reward):
    if reward not in REWARDS:
        raise ValueError(
            f"reward must be one of {', '.join(map(repr, REWARDS))}; got {reward!r}."
        )
    return reward


def _check_int(value, name, minimum, meaning=""):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"{name} must be an integer >= {minimum}{meaning}; got {value!r}."
        )
    return int(value)


def _check_vocab_size(vocab_size):
    return _check_int(
        vocab_size, "vocab_size", 2, " (a token needs another one to be replaced by)"
    )


def _check_target(target, vocab_size):
    target = np.asarray(target)
    if target.ndim != 1:
        raise ValueError(
            f"target must be a 1-D sequence of token ids; got an array of shape "
            f"{target.shape}."
        )
    if target.size == 0:
        return target.astype(np.int64)
    if not np.issubdtype(target.dtype, np.integer):
        raise ValueError(
            f"target must hold integer token ids; got dtype {target.dtype}."
        )
    if target.min() < 0 or target.max() >= vocab_size:
        raise ValueError(
            f"target holds token ids in [{target.min()}, {target.max()}]; they must "
            f"lie in [0, vocab_size) = [0, {vocab_size})."
        )
    return target.astype(np.int64)


# --------------------------------------------------------------------------
# Counting: the weights of the strata, in log space
# --------------------------------------------------------------------------


def _distance_scale(vocab_size):
    """``1 + ln(V - 1)``, the factor the distance is multiplied by."""
    return 1.0 + math.log(vocab_size - 1)


def _max_distance(length, reward):
    """``E``: the largest distance drawn, ``m`` (at least 1 for edit)."""
    return length if reward == "hamming" else max(length, 1)


def _log_comb(n, k):
    """``log C(n, k)``, broadcast, with ``-inf`` where ``k < 0`` or ``k > n``."""
    n, k = np.broadcast_arrays(np.asarray(n, float), np.asarray(k, float))
    inside = (k >= 0) & (k <= n)
    n_, k_ = np.where(inside, n, 0.0), np.where(inside, k, 0.0)
    value = gammaln(n_ + 1) - gammaln(k_ + 1) - gammaln(n_ - k_ + 1)
    return np.where(inside, value, -np.inf)


def _log_class_weights(length, vocab_size, tau, reward, deletions=None):
    """Log weights of the edit classes of a target of length ``m``.

    Returns ``(w, e)``, arrays of shape ``(E + 1, E + 1, E + 1)`` (``(1, 1,
    E + 1)`` for Hamming): ``w[n_d, n_i, n_s]`` is the log of the number of
    scripts with ``n_d`` deletions, ``n_i`` insertions and ``n_s``
    substitutions times ``exp(-e * (1 + ln(V - 1)) / tau)``, with ``e = n_d +
    n_i + n_s`` in ``e``; ``-inf`` for classes that do not exist. ``tau > 0``.
    With ``deletions`` (edit), only the slice ``n_d = deletions``, of shape
    ``(1, E + 1, E + 1)``: the callers go one slice at a time, so that the
    memory grows as ``E^2``, not ``E^3``.
    """
    m, V = length, vocab_size
    E = _max_distance(m, reward)
    if reward == "hamming":
        n_d = n_i = np.zeros((1, 1, 1), dtype=int)
        n_s = np.arange(E + 1).reshape(1, 1, -1)
    elif deletions is not None:
        n_d = np.full((1, 1, 1), deletions)
        _, n_i, n_s = np.ogrid[:1, : E + 1, : E + 1]
    else:
        n_d, n_i, n_s = np.ogrid[: E + 1, : E + 1, : E + 1]
    e = np.broadcast_to(
        n_d + n_i + n_s, np.broadcast_shapes(n_d.shape, n_i.shape, n_s.shape)
    )
    log_count = (
        _log_comb(m, n_d)
        + _log_comb(m - n_d, n_s)
        + n_s * math.log(V - 1)
        + _log_comb(m - n_d + n_i, n_i)
        + n_i * math.log(V)
    )
    log_weights = log_count - e * _distance_scale(V) / tau
    return np.where(e <= E, log_weights, -np.inf), e


def _class_weight_slices(length, vocab_size, tau, reward):
    """``(n_d, w, e)`` per slice of :func:`_log_class_weights`, ``n_d = 0 ..
    E`` for edit, the one slice ``n_d = 0`` for Hamming."""
    if reward == "hamming":
        yield 0, *_log_class_weights(length, vocab_size, tau, reward)
        return
    for n_d in range(_max_distance(length, reward) + 1):
        yield n_d, *_log_class_weights(length, vocab_size, tau, reward, n_d)


def _log_sum(log_weights):
    top = np.max(log_weights)
    if not np.isfinite(top):
        return -np.inf
    return top + math.log(np.exp(log_weights - top).sum())


def _normalized(log_weights, axis=-1):
    """Probabilities from log weights along ``axis``; all-``-inf`` rows -> 0."""
    top = np.max(log_weights, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(log_weights - top)
    total = weights.sum(axis=axis, keepdims=True)
    return weights / np.where(total > 0, total, 1.0)


def payoff_distribution(length, vocab_size, *, tau, reward="edit"):
    r"""Probability of each distance in the stratified payoff sampler.

    RAML's exponentiated payoff distribution around a target ``y*`` of length
    ``m`` over a vocabulary of ``V`` tokens, stratified by distance: the
    probability of drawing distance ``e = 0 .. E`` is

    .. math::

        p(e) = \frac{N_m(e) \exp(-e\,s / \tau)}
                    {\sum_{k=0}^{E} N_m(k) \exp(-k\,s / \tau)},
        \qquad s = 1 + \ln(V - 1),

    and the sample is then uniform among the ``N_m(e)`` candidates at
    distance ``e``. Each candidate (a sequence for Hamming, an edit script for
    edit) thus has probability proportional to ``exp(-d s / tau)``, ``d`` its
    distance: the paper's distribution at temperature ``tau / s``. The scale
    ``s`` (from the authors' released code) keeps ``tau`` meaningful for any
    vocabulary: for Hamming at ``tau = 1``, ``p(e)`` is the binomial
    ``B(m, 1 / (1 + exp(1)))`` whatever ``V``. Without it, 39 tokens at
    ``tau = 0.6`` replace 88% of the tokens on average.

    - ``reward="hamming"``: substitutions only, ``E = m``, and ``N_m(e) =
      C(m, e) (V - 1)^e`` is the exact number of sequences at Hamming
      distance ``e``.
    - ``reward="edit"``: ``N_m(e)`` counts edit scripts of ``e`` edits,
      ``E = max(m, 1)``. A script with ``n_d`` deletions, ``n_s``
      substitutions and ``n_i`` insertions (``n_d + n_s + n_i = e``,
      ``n_d + n_s <= m``) deletes ``n_d`` of the ``m`` positions, replaces
      ``n_s`` of the others each by one of the ``V - 1`` other tokens, and
      places ``n_i`` tokens (any of the ``V``) at ``n_i`` of the
      ``m - n_d + n_i`` positions of the result, so that

      .. math::

          N_m(e) = \sum_{n_d + n_s + n_i = e} C(m, n_d)\, C(m - n_d, n_s)\,
                   (V - 1)^{n_s}\, C(m - n_d + n_i, n_i)\, V^{n_i}.

      Different scripts can give the same sequence and edits can cancel (a
      deletion next to an insertion is one substitution), so a sample drawn
      at ``e`` has a Levenshtein distance *at most* ``e`` to the target; it
      is rarely less (2.6% of samples for ``m = 8``, ``V = 40``,
      ``tau = 0.9``). Edit scripts outnumber substitutions, so the same
      ``tau`` draws more edits: for ``m = 20``, ``V = 61``, the mean ``e`` is
      1.7, 4.3 and 9.1 at ``tau`` = 0.7, 0.8 and 0.9 (Hamming: 0.8, 1.9,
      3.5).

    Parameters
    ----------
    length : int
        Length ``m >= 0`` of the target.
    vocab_size : int
        Number ``V >= 2`` of tokens that may be drawn.
    tau : float
        Temperature, ``>= 0``. ``0`` puts all the mass on ``e = 0`` (maximum
        likelihood); larger values move it to larger distances.
    reward : {"edit", "hamming"}, default="edit"
        The distance whose negative is the reward.

    Returns
    -------
    ndarray of shape (E + 1,)
        ``p(0), ..., p(E)``; sums to 1.

    Raises
    ------
    ValueError
        If ``length < 0``, ``vocab_size < 2``, ``tau < 0`` or ``reward`` is
        unknown.

    See Also
    --------
    sample_payoff : Draw sequences from this distribution.
    sample_payoff_batch : The same, for a padded batch of torch tensors.

    References
    ----------
    Norouzi, M., Bengio, S., Chen, Z., Jaitly, N., Schuster, M., Wu, Y. and
    Schuurmans, D. (2016). Reward augmented maximum likelihood for neural
    structured prediction. Advances in Neural Information Processing
    Systems 29.

    Examples
    --------
    >>> import numpy as np
    >>> from skpapers.sequence._payoff import payoff_distribution
    >>> p = payoff_distribution(3, 40, tau=1.0, reward="hamming")
    >>> np.round(p, 3)  # B(3, 1 / (1 + exp(1))), any vocabulary
    array([0.391, 0.431, 0.159, 0.019])
    >>> payoff_distribution(3, 40, tau=0.0)
    array([1., 0., 0., 0.])
    """
    length = _check_int(length, "length", 0)
    vocab_size = _check_vocab_size(vocab_size)
    tau = _check_tau(tau)
    reward = _check_reward(reward)
    E = _max_distance(length, reward)
    if tau == 0:
        return np.eye(1, E + 1).ravel()
    log_p = np.full(E + 1, -np.inf)
    for _, log_weights, e in _class_weight_slices(length, vocab_size, tau, reward):
        top = log_weights.max()
        if not np.isfinite(top):
            continue
        weights = np.exp(log_weights - top).ravel()
        part = np.bincount(e.ravel(), weights=weights, minlength=E + 1)[: E + 1]
        with np.errstate(divide="ignore"):
            log_p = np.logaddexp(log_p, np.log(part) + top)
    return _normalized(log_p)


# --------------------------------------------------------------------------
# One target, numpy: the slow, obvious sampler
# --------------------------------------------------------------------------


def _apply_script(target, n_d, n_i, n_s, vocab_size, rng):
    """A uniform script with the given numbers of edits, applied to ``target``."""
    m = len(target)
    order = rng.permutation(m)
    deleted, substituted = order[:n_d], order[n_d : n_d + n_s]
    tokens = target.copy()
    # Adding 1 .. V-1 modulo V gives each of the V - 1 other tokens once.
    shift = rng.randint(1, vocab_size, n_s)
    tokens[substituted] = (tokens[substituted] + shift) % vocab_size
    kept = np.delete(tokens, deleted)
    out_length = len(kept) + n_i
    inserted = np.zeros(out_length, dtype=bool)
    inserted[rng.choice(out_length, n_i, replace=False)] = True
    sample = np.empty(out_length, dtype=np.int64)
    sample[inserted] = rng.randint(0, vocab_size, n_i)
    sample[~inserted] = kept
    return sample


def sample_payoff(
    target,
    vocab_size,
    *,
    tau,
    reward="edit",
    n_samples=1,
    random_state=None,
    return_distances=False,
):
    """Draw sequences from RAML's exponentiated payoff distribution.

    Each sample draws a distance ``e`` from :func:`payoff_distribution`, then
    applies a uniformly drawn script of ``e`` edits to ``target``: ``e``
    substitutions at ``e`` distinct positions for ``"hamming"``; for
    ``"edit"``, deletions, substitutions and insertions as counted in
    :func:`payoff_distribution`. Equivalently, each script ``S`` of at most
    ``E`` edits is used with probability proportional to
    ``exp(-|S| (1 + ln(V - 1)) / tau)``.

    For ``"hamming"`` the sample is exactly ``e`` substitutions away and has
    the target's length. For ``"edit"`` its Levenshtein distance to the target
    is at most ``e`` (edits may cancel), and its length is ``m - n_d + n_i``.

    Parameters
    ----------
    target : array-like of int, shape (m,)
        Token ids in ``[0, vocab_size)``; may be empty.
    vocab_size : int
        Number ``V >= 2`` of tokens; substitutions and insertions draw from
        ``0 .. V - 1``.
    tau : float
        Temperature, ``>= 0``; ``0`` returns copies of ``target``.
    reward : {"edit", "hamming"}, default="edit"
        The distance whose negative is the reward.
    n_samples : int, default=1
        Number of sequences to draw.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.
    return_distances : bool, default=False
        Also return the drawn distances ``e``.

    Returns
    -------
    samples : list of ndarray of int64
        ``n_samples`` 1-D arrays.
    distances : ndarray of int64, shape (n_samples,)
        The drawn ``e`` of each sample; only if ``return_distances``.

    Raises
    ------
    ValueError
        If ``target`` is not 1-D or holds ids outside ``[0, vocab_size)``,
        ``vocab_size < 2``, ``tau < 0``, ``n_samples < 1`` or ``reward`` is
        unknown.

    See Also
    --------
    payoff_distribution : The probability of each distance.
    sample_payoff_batch : The same draw for a padded batch of torch tensors.

    References
    ----------
    Norouzi, M., Bengio, S., Chen, Z., Jaitly, N., Schuster, M., Wu, Y. and
    Schuurmans, D. (2016). Reward augmented maximum likelihood for neural
    structured prediction. Advances in Neural Information Processing
    Systems 29.

    Examples
    --------
    >>> from skpapers.sequence._payoff import sample_payoff
    >>> target = [3, 1, 4, 1, 5]
    >>> samples, e = sample_payoff(
    ...     target, 10, tau=0.7, n_samples=3, random_state=0, return_distances=True
    ... )
    >>> [s.tolist() for s in samples], e.tolist()
    ([[3, 1, 4, 7, 1, 5], [3, 1, 4, 1, 4], [0, 3, 1, 4, 1, 5]], [1, 1, 1])
    >>> sample_payoff([3, 1, 4], 10, tau=0.0)[0]
    array([3, 1, 4])
    """
    vocab_size = _check_vocab_size(vocab_size)
    target = _check_target(target, vocab_size)
    tau = _check_tau(tau)
    reward = _check_reward(reward)
    n_samples = _check_int(n_samples, "n_samples", 1)
    rng = check_random_state(random_state)
    if tau == 0:
        samples = [target.copy() for _ in range(n_samples)]
        distances = np.zeros(n_samples, dtype=np.int64)
    else:
        # One deletion count's slice at a time: E^2 memory, not E^3.
        m = len(target)
        totals = [
            _log_sum(log_weights)
            for _, log_weights, _ in _class_weight_slices(m, vocab_size, tau, reward)
        ]
        chosen = rng.choice(len(totals), size=n_samples, p=_normalized(totals))
        n_d, n_i, n_s = (np.zeros(n_samples, dtype=np.int64) for _ in range(3))
        for deleted in np.unique(chosen):
            rows = np.flatnonzero(chosen == deleted)
            log_weights, _ = _log_class_weights(
                m, vocab_size, tau, reward, None if reward == "hamming" else deleted
            )
            flat = _normalized(log_weights.ravel())
            classes = rng.choice(flat.size, size=len(rows), p=flat)
            _, n_i[rows], n_s[rows] = np.unravel_index(classes, log_weights.shape)
            n_d[rows] = deleted
        samples = [
            _apply_script(target, d, i, s, vocab_size, rng)
            for d, i, s in zip(n_d, n_i, n_s, strict=True)
        ]
        distances = (n_d + n_i + n_s).astype(np.int64)
    if return_distances:
        return samples, distances
    return samples


# --------------------------------------------------------------------------
# The tables of the class draws: memory that grows slower than L^2
# --------------------------------------------------------------------------

# A table row keeps the entries within exp(-60) ~ 1e-26 of its largest: what
# it drops weighs less than 1e-21 of the row even at 10^5 entries, far below
# the 2^-53 ~ 1e-16 resolution of the uniform draw that reads it.
_LOG_EPS = -60.0
# F(k) is computed in blocks of at most this many entries per array.
_BLOCK_ENTRIES = 1 << 18
# Byte bound of the tables kept for calls that pass no cache.
_SHARED_MAX_BYTES = 1 << 26
DEFAULT_MAX_PAYOFF_BYTES = 1 << 28


def _check_max_bytes(max_bytes):
    if max_bytes is None:
        return None
    return _check_int(max_bytes, "max_payoff_bytes", 1, " or None (no limit)")


def _window(log_weights):
    """``(lo, hi)``: the first and last entries within ``exp(_LOG_EPS)`` of the
    largest."""
    top = np.max(log_weights)
    keep = np.flatnonzero(log_weights >= top + _LOG_EPS)
    return int(keep[0]), int(keep[-1])


def _log_cumulative(log_weights):
    """Log of the running sums of ``exp(log_weights)``, the last one 0."""
    cumulative = np.logaddexp.accumulate(log_weights)
    return cumulative - cumulative[-1]


class _Rows:
    """Rows of log cumulative weights, each over its own window of columns.

    Row of ``key`` covers the drawn numbers ``lo .. lo + last``. The rows are
    kept only as the layout the draws read: one table padded with ``+inf``
    (never below a threshold), each row's ``lo`` and ``last`` column, and a
    map from key to row (dense on the device).
    """

    def __init__(self):
        self.row_of = {}
        self.table = np.zeros((0, 0))
        self.lo = np.zeros(0, dtype=np.int64)
        self.last = np.zeros(0, dtype=np.int64)
        self._tensors = {}

    def __contains__(self, key):
        return key in self.row_of

    def keys(self):
        return self.row_of.keys()

    def row(self, key):
        """``(lo, cumulative)`` of the row of ``key``."""
        row = self.row_of[key]
        return int(self.lo[row]), self.table[row, : self.last[row] + 1]

    @property
    def width(self):
        return self.table.shape[1]

    def add(self, rows):
        """Append ``rows``, a dict ``key: (lo, cumulative)``, re-laying the table."""
        if not rows:
            return
        n_old, width = len(self.row_of), self.width
        new_width = max(width, *(len(c) for _, c in rows.values()))
        table = np.full((n_old + len(rows), new_width), np.inf)
        table[:n_old, :width] = self.table
        lo = np.concatenate([self.lo, np.empty(len(rows), dtype=np.int64)])
        last = np.concatenate([self.last, np.empty(len(rows), dtype=np.int64)])
        for row, (key, (first, cumulative)) in enumerate(rows.items(), start=n_old):
            table[row, : len(cumulative)] = cumulative
            lo[row], last[row] = first, len(cumulative) - 1
            self.row_of[key] = row
        self.table, self.lo, self.last = table, lo, last
        self._tensors.clear()

    @staticmethod
    def padded_bytes(n_rows, width, largest_key):
        """Bytes of the layout: the table, ``lo`` and ``last``, the dense map."""
        return 8 * (n_rows * (width + 2) + largest_key + 1)

    @property
    def nbytes(self):
        if not self.row_of:
            return 0
        return self.padded_bytes(len(self.row_of), self.width, max(self.row_of))

    def tensors(self, device):
        if device not in self._tensors:
            rowmap = np.full(max(self.row_of) + 1, -1, dtype=np.int64)
            rowmap[list(self.row_of)] = list(self.row_of.values())
            self._tensors[device] = tuple(
                torch.as_tensor(array, device=device)
                for array in (self.table, self.lo, self.last, rowmap)
            )
        return self._tensors[device]


class _PayoffTables:
    """The class draws of the batch sampler for one ``(V, tau, reward)``.

    Edit (``m >= 1``, ``k = m - n_d`` tokens left after the deletions, as
    many edits left): the class weight factors as ``C(m, n_d) x^n_d`` times
    ``a_k(n_i) b_k(n_s)`` on ``n_i + n_s <= k``, with ``x = exp(-s / tau)``,
    ``a_k(i) = C(k + i, i) (V x)^i`` and ``b_k(j) = C(k, j) ((V - 1) x)^j``.
    So ``n_d`` is drawn from row ``m`` of ``first`` (weights ``C(m, n_d) x^n_d
    F(m - n_d)``, ``F(k)`` the sum of ``a_k b_k`` over the triangle), ``n_i``
    from row ``k + 1`` of ``inserted`` (weights ``a_k(i) S_k(k - i)``, ``S_k``
    the running sums of ``b_k``), and ``n_s`` from row ``k`` of
    ``substituted`` (``b_k``), truncated at the edits left, ``k - n_i``, by
    scaling the uniform draw by ``S_k(k - n_i)``. ``m = 0`` (one edit
    allowed) draws ``n_i`` from row 0 of ``inserted``, weights ``1, V x``.
    Hamming: ``n_s`` from row ``m`` of ``first``, ``b_m`` untruncated.

    Each row is built once, when a target of its length first needs it, in
    log space, and keeps only the entries of non-negligible weight (see
    ``_LOG_EPS``): about ``sqrt(m)`` wide rather than ``m``. ``F(k)`` for
    all ``k`` up to the longest target is a vector, built in ``O(L^2)``
    time by blocks of bounded size.
    """

    def __init__(self, vocab_size, tau, reward, max_bytes):
        self.key = (vocab_size, tau, reward)
        self.reward, self.max_bytes = reward, max_bytes
        scale = _distance_scale(vocab_size) / tau
        self.log_x = -scale
        self.log_r = math.log(vocab_size - 1) - scale
        self.log_y = math.log(vocab_size) - scale
        self.first = _Rows()
        self.inserted = _Rows()
        self.substituted = _Rows()
        self.log_F = np.zeros(0)
        self._log_gamma = np.zeros(0)

    @property
    def nbytes(self):
        """Bytes the draw tables (and ``F``) hold on the CPU."""
        rows = self.first.nbytes + self.inserted.nbytes + self.substituted.nbytes
        return rows + self.log_F.nbytes + self._log_gamma.nbytes

    # -- building ---------------------------------------------------------

    def _log_comb(self, n, k):
        """``log C(n, k)`` for integer arrays with ``0 <= k <= n``."""
        g = self._log_gamma
        return g[n + 1] - g[k + 1] - g[n - k + 1]

    def _grow_log_gamma(self, n):
        """``log Gamma(j)`` for ``j = 0 .. n + 1`` at least: ``log C(n', k)``
        for ``n' <= n``."""
        if len(self._log_gamma) < n + 2:
            size = max(n + 2, 2 * len(self._log_gamma))
            self._log_gamma = gammaln(np.arange(size, dtype=float))

    def _log_b(self, k):
        """``log b_k(j)``, ``j = 0 .. k``."""
        j = np.arange(k + 1)
        return self._log_comb(k, j) + j * self.log_r

    def _grow_log_F(self, longest):
        """``log F(k)`` for ``k = 0 .. longest``, by blocks of rows."""
        done = len(self.log_F)
        if done > longest:
            return
        self._grow_log_gamma(2 * longest)
        parts = [self.log_F]
        rows = max(1, _BLOCK_ENTRIES // (longest + 1))
        for k0 in range(done, longest + 1, rows):
            k1 = min(longest + 1, k0 + rows)
            k = np.arange(k0, k1)[:, None]
            j = np.arange(k1)[None, :]
            inside = j <= k
            jj = np.where(inside, j, 0)
            # S_k(u), u = 0 .. k, then a_k(i) S_k(k - i), i = 0 .. k
            log_b = np.where(inside, self._log_comb(k, jj) + jj * self.log_r, -np.inf)
            log_s = np.logaddexp.accumulate(log_b, axis=1)
            left = np.take_along_axis(log_s, np.where(inside, k - j, 0), axis=1)
            log_w = self._log_comb(k + jj, jj) + jj * self.log_y + left
            log_w = np.where(inside, log_w, -np.inf)
            top = log_w.max(axis=1)
            parts.append(top + np.log(np.exp(log_w - top[:, None]).sum(axis=1)))
        self.log_F = np.concatenate(parts)

    def reserve(self, lengths):
        """Build the rows targets of these lengths draw from, once.

        Raises ValueError, before keeping anything, as soon as the tables
        would hold more than ``max_bytes``.
        """
        lengths = sorted({m for m in lengths if m not in self.first})
        if not lengths:
            return
        pending = _Pending(self, lengths[-1])
        kept = self.log_F, self._log_gamma
        try:
            if self.reward == "hamming":
                self._grow_log_gamma(lengths[-1])
                for m in lengths:
                    log_b = self._log_b(m)
                    pending.add("first", m, log_b, *_window(log_b))
            else:
                self._edit_rows(lengths, pending)
        except BaseException:
            self.log_F, self._log_gamma = kept
            raise
        for name, rows in pending.rows.items():
            getattr(self, name).add(rows)

    def _edit_rows(self, lengths, pending):
        self._grow_log_F(lengths[-1])
        needed_k = set()
        for m in lengths:
            n_d = np.arange(m + 1)
            log_w = self._log_comb(m, n_d) + n_d * self.log_x + self.log_F[m - n_d]
            lo, hi = _window(log_w)
            pending.add("first", m, log_w, lo, hi)
            needed_k.update(range(m - hi, m - lo + 1))
            if m == 0:  # E = 1: no token to delete or replace, one insertion
                pending.add("inserted", 0, np.array([0.0, self.log_y]), 0, 1)
        for k in sorted(k for k in needed_k if k not in self.substituted):
            self._edit_rows_after_deletions(k, pending)

    def _edit_rows_after_deletions(self, k, pending):
        """The rows of ``n_i`` and ``n_s`` once ``k`` tokens are left."""
        i = np.arange(k + 1)
        log_b = self._log_b(k)
        log_s = np.logaddexp.accumulate(log_b)
        log_w = self._log_comb(k + i, i) + i * self.log_y + log_s[k - i]
        i_lo, i_hi = _window(log_w)
        # n_s is truncated at u = k - n_i in [u_lo, u_hi]: keep the entries
        # that matter below the smallest u, up to the largest (or to where the
        # untruncated row fades, whichever comes first).
        u_lo, u_hi = k - i_hi, k - i_lo
        top_below = np.max(log_b[: u_lo + 1])
        s_lo = int(np.flatnonzero(log_b >= top_below + _LOG_EPS)[0])
        s_hi = min(u_hi, _window(log_b)[1])
        pending.add("inserted", k + 1, log_w, i_lo, i_hi)
        pending.add("substituted", k, log_b, s_lo, s_hi)

    def limit_error(self, longest):
        vocab_size, tau, reward = self.key
        return ValueError(
            f"the payoff sampler's tables for targets of up to {longest} tokens "
            f"(vocab_size={vocab_size}, tau={tau}, reward={reward!r}) need more "
            f"than max_payoff_bytes={self.max_bytes} ({self.max_bytes / 2**20:.3g} "
            "MiB); raise max_payoff_bytes (None lifts the limit), shorten the "
            "targets, or use tau=0 (no sampling)."
        )

    # -- drawing ----------------------------------------------------------

    def draw(self, lengths, generator):
        """``(n_d, n_i, n_s)``, one class per entry of ``lengths``."""
        if not len(lengths):
            return (torch.zeros_like(lengths),) * 3
        self.reserve(lengths.tolist())
        device = lengths.device
        if self.reward == "hamming":
            n_s = _draw(self.first.tensors(device), lengths, generator)
            return torch.zeros_like(n_s), torch.zeros_like(n_s), n_s
        n_d = _draw(self.first.tensors(device), lengths, generator)
        left = lengths - n_d
        key = torch.where(lengths == 0, 0, left + 1)
        n_i = _draw(self.inserted.tensors(device), key, generator)
        budget = lengths.clamp(min=1) - n_d - n_i
        n_s = _draw(self.substituted.tensors(device), left, generator, upto=budget)
        return n_d, n_i, n_s


class _Pending:
    """Rows computed for :meth:`_PayoffTables.reserve`, not yet kept, and the
    bytes the tables would hold with them (checked at each row)."""

    def __init__(self, tables, longest):
        self.tables, self.longest = tables, longest
        self.rows = {name: {} for name in ("first", "inserted", "substituted")}
        self.shape = {
            name: (len(rows.row_of), rows.width, max(rows.row_of, default=0))
            for name in self.rows
            for rows in [getattr(tables, name)]
        }

    def add(self, name, key, log_weights, lo, hi):
        """Keep ``log_weights[lo : hi + 1]`` as row ``key``, cumulated."""
        self.rows[name][key] = (lo, _log_cumulative(log_weights[lo : hi + 1]))
        n_rows, width, largest = self.shape[name]
        self.shape[name] = (n_rows + 1, max(width, hi + 1 - lo), max(largest, key))
        limit = self.tables.max_bytes
        if limit is not None and self.nbytes > limit:
            raise self.tables.limit_error(self.longest)

    @property
    def nbytes(self):
        tables = self.tables
        total = tables.log_F.nbytes + tables._log_gamma.nbytes
        for n_rows, width, largest in self.shape.values():
            if n_rows:
                total += _Rows.padded_bytes(n_rows, width, largest)
        return total


def _draw(tensors, keys, generator, upto=None):
    """One number per entry of ``keys``, by the inverse of its row's cdf.

    The row's log cumulative weights are compared with ``log(u)`` plus the
    row's total (up to ``upto``, for a truncated draw): the count of entries
    below is the draw. ``index_select`` rather than ``table[rows]``, and a
    count rather than ``torch.searchsorted``: those two wake torch's thread
    pool even for tiny tensors, and on a busy machine the wake-up costs
    milliseconds.
    """
    table, lo, last, rowmap = tensors
    rows = rowmap.index_select(0, keys)
    cumulative = table.index_select(0, rows)
    first = lo.index_select(0, rows)
    u = torch.rand(
        (len(keys), 1), dtype=table.dtype, device=table.device, generator=generator
    )
    threshold = u.log()
    if upto is not None:
        column = torch.minimum(upto - first, last.index_select(0, rows))
        threshold = threshold + cumulative.gather(1, column.clamp(min=0)[:, None])
    return first + (cumulative < threshold).sum(dim=1)


_SHARED_TABLES = collections.OrderedDict()


def _tables(cache, vocab_size, tau, reward, max_bytes):
    """The tables of ``(vocab_size, tau, reward)`` in ``cache`` (made if absent).

    ``cache=None`` uses a module-level cache, trimmed after each draw to
    ``_SHARED_MAX_BYTES`` by dropping the least recently used tables.
    """
    key = (vocab_size, tau, reward)
    store = _SHARED_TABLES if cache is None else cache
    tables = store.get(key)
    if tables is None:
        tables = store[key] = _PayoffTables(vocab_size, tau, reward, max_bytes)
    tables.max_bytes = max_bytes
    if cache is None:
        _SHARED_TABLES.move_to_end(key)
    return tables


def _trim_shared_tables():
    total = sum(tables.nbytes for tables in _SHARED_TABLES.values())
    while _SHARED_TABLES and total > _SHARED_MAX_BYTES:
        _, tables = _SHARED_TABLES.popitem(last=False)
        total -= tables.nbytes


def reserve_payoff_tables(
    cache,
    lengths,
    vocab_size,
    *,
    tau,
    reward="edit",
    max_payoff_bytes=DEFAULT_MAX_PAYOFF_BYTES,
):
    """Build, in ``cache``, the tables that targets of ``lengths`` draw from.

    Lets a caller refuse long targets before any training: raises
    ValueError if the tables would need more than ``max_payoff_bytes``.
    Nothing to do for ``tau == 0``.
    """
    tau, reward = _check_tau(tau), _check_reward(reward)
    vocab_size = _check_vocab_size(vocab_size)
    max_payoff_bytes = _check_max_bytes(max_payoff_bytes)
    if tau > 0:
        tables = _tables(cache, vocab_size, tau, reward, max_payoff_bytes)
        tables.reserve(int(m) for m in lengths)


# --------------------------------------------------------------------------
# A padded batch, torch: the fast sampler for training
# --------------------------------------------------------------------------


def _uniform_ranks(inside, generator):
    """Per row, a uniformly random order of the ``inside`` positions.

    Returns ranks ``0 .. k - 1`` for the ``k`` positions inside a row (a
    uniform permutation) and ranks ``>= k`` outside it.
    """
    keys = torch.rand(inside.shape, device=inside.device, generator=generator)
    keys = keys.masked_fill(~inside, 2.0)
    return keys.argsort(dim=1).argsort(dim=1)


def _check_batch(targets, lengths, low, high):
    if not isinstance(targets, torch.Tensor) or targets.dim() != 2:
        raise ValueError(
            "targets must be a 2-D torch tensor [batch, width] of token ids; got "
            f"{type(targets).__name__} of shape {getattr(targets, 'shape', None)}."
        )
    if targets.dtype.is_floating_point or targets.dtype.is_complex:
        raise ValueError(f"targets must hold integer ids; got dtype {targets.dtype}.")
    lengths = torch.as_tensor(lengths, device=targets.device)
    if lengths.shape != targets.shape[:1] or lengths.dtype.is_floating_point:
        raise ValueError(
            f"lengths must be an integer tensor of shape [{targets.shape[0]}], one "
            f"per row of targets; got shape {tuple(lengths.shape)}, dtype "
            f"{lengths.dtype}."
        )
    low = _check_int(low, "low", 0)
    high = _check_int(high, "high", low + 2, f" (two tokens or more from low={low})")
    targets, lengths = targets.long(), lengths.long()
    width = targets.shape[1]
    inside = torch.arange(width, device=targets.device) < lengths[:, None]
    bad_lengths = (lengths < 0) | (lengths > width)
    bad_tokens = inside & ((targets < low) | (targets >= high))
    bad = torch.stack([bad_lengths.any(), bad_tokens.any()]).tolist()
    if bad[0]:
        raise ValueError(
            f"lengths must lie in [0, {width}] (the width of targets); got values "
            f"in [{int(lengths.min())}, {int(lengths.max())}]."
        )
    if bad[1]:
        found = targets[inside]
        raise ValueError(
            f"targets hold token ids in [{int(found.min())}, {int(found.max())}] "
            f"within their lengths; they must lie in [low, high) = [{low}, {high})."
        )
    return targets, lengths, low, high, inside


def sample_payoff_batch(
    targets,
    lengths,
    *,
    tau,
    high,
    low=0,
    reward="edit",
    pad_value=0,
    generator=None,
    return_distances=False,
    cache=None,
    max_payoff_bytes=DEFAULT_MAX_PAYOFF_BYTES,
):
    """One payoff sample per row of a padded batch, with vectorised torch ops.

    The fast twin of :func:`sample_payoff`, for the training loop: each row
    ``targets[b, :lengths[b]]`` is replaced by one draw from the same
    distribution (see :func:`payoff_distribution`), with ``V = high - low``
    and new tokens drawn from ``low .. high - 1`` only, so that ids the model
    reserves (padding, begin, end) are never produced. Pass the targets
    without begin or end markers and add those after sampling.

    No Python loop runs over rows or tokens: about twenty ops on ``[B, T]``
    tensors (random keys ranked by ``argsort`` choose the edited positions, a
    stable sort and a ``cumsum`` move the tokens). The class ``(n_d, n_i,
    n_s)`` of each row is drawn one count at a time from tables built once
    per target length, kept in ``cache`` per ``(V, tau, reward)``. A table
    row keeps only the counts of non-negligible probability (within
    ``exp(-60)`` of the row's largest, far below the resolution of a float64
    draw), so that the tables for targets of every length up to ``L`` grow
    about as ``L^1.5``, not ``L^3``. Building them takes ``O(L^2)`` time,
    once. Times and bytes against ``L`` are in the benchmarks' README
    (``bench_rml.py --parts sampler``).

    Parameters
    ----------
    targets : Tensor[B, T] of int
        Token ids, padded; the ids within each row's length must lie in
        ``[low, high)``, the padding may hold anything.
    lengths : Tensor[B] of int
        Length of each row, in ``[0, T]``.
    tau : float
        Temperature, ``>= 0``; ``0`` returns ``targets`` and ``lengths``
        unchanged (as int64 copies).
    high : int
        One past the last id that may be drawn.
    low : int, default=0
        First id that may be drawn; ``high - low >= 2``.
    reward : {"edit", "hamming"}, default="edit"
        The distance whose negative is the reward.
    pad_value : int, default=0
        Written past each sample's length.
    generator : torch.Generator or None, default=None
        Source of the random draws, on the device of ``targets``; ``None``
        uses torch's global generator.
    return_distances : bool, default=False
        Also return the drawn distance ``e`` of each row.
    cache : dict or None, default=None
        Keeps the tables of the class draws between calls, keyed by ``(V,
        tau, reward)``: pass the same dict to every call of a training run
        (:class:`~skpapers.sequence.RMLSequencePredictor` keeps one in its
        fitted net, so the tables go with the model). ``None`` uses a module
        cache that keeps at most 64 MiB of tables, dropping the least
        recently used.
    max_payoff_bytes : int or None, default=268435456
        Most bytes (256 MiB) the tables of one ``(V, tau, reward)`` may hold;
        a batch whose targets would need more raises ValueError before any
        table is kept. While new rows are laid out they are held twice, so
        building may briefly take up to twice their bytes. ``None``: no
        limit.

    Returns
    -------
    samples : Tensor[B, T'] of int64
        The samples, padded with ``pad_value``; ``T' = max(T, longest
        sample)`` (Hamming samples keep their lengths, so ``T' = T``).
    sample_lengths : Tensor[B] of int64
        Length of each sample.
    distances : Tensor[B] of int64
        The drawn ``e`` of each row; only if ``return_distances``. For Hamming
        each sample is exactly ``e`` substitutions away; for edit its
        Levenshtein distance to the target is at most ``e``.

    Raises
    ------
    ValueError
        If ``targets`` is not a 2-D integer tensor, ``lengths`` does not match
        it or lies outside ``[0, T]``, a token lies outside ``[low, high)``,
        ``high - low < 2``, ``tau < 0``, ``reward`` is unknown, or the tables
        would need more than ``max_payoff_bytes``.

    See Also
    --------
    payoff_distribution : The probability of each distance.
    sample_payoff : One target at a time, with numpy.

    References
    ----------
    Norouzi, M., Bengio, S., Chen, Z., Jaitly, N., Schuster, M., Wu, Y. and
    Schuurmans, D. (2016). Reward augmented maximum likelihood for neural
    structured prediction. Advances in Neural Information Processing
    Systems 29.

    Examples
    --------
    Ids 0, 1, 2 are reserved (padding, begin, end); tokens are 3 .. 42.

    >>> import torch
    >>> from skpapers.sequence._payoff import sample_payoff_batch
    >>> targets = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    >>> lengths = torch.tensor([4, 2])
    >>> generator = torch.Generator().manual_seed(0)
    >>> samples, sample_lengths = sample_payoff_batch(
    ...     targets, lengths, tau=1.0, low=3, high=43, generator=generator
    ... )
    >>> samples.shape[0], bool((samples[samples != 0] >= 3).all())
    (2, True)
    >>> same, same_lengths = sample_payoff_batch(targets, lengths, tau=0.0, high=43)
    >>> torch.equal(same, targets) and torch.equal(same_lengths, lengths)
    True
    """
    tau = _check_tau(tau)
    reward = _check_reward(reward)
    max_payoff_bytes = _check_max_bytes(max_payoff_bytes)
    if cache is not None and not isinstance(cache, dict):
        raise ValueError(f"cache must be a dict (or None); got {type(cache).__name__}.")
    targets, lengths, low, high, inside = _check_batch(targets, lengths, low, high)
    if tau == 0:
        if return_distances:
            return targets.clone(), lengths.clone(), torch.zeros_like(lengths)
        return targets.clone(), lengths.clone()

    vocab_size = high - low
    device = targets.device
    tables = _tables(cache, vocab_size, tau, reward, max_payoff_bytes)
    try:
        n_d, n_i, n_s = tables.draw(lengths, generator)
    finally:
        if cache is None:
            _trim_shared_tables()

    # Deletions take the first n_d ranks of a random order, substitutions the
    # next n_s; adding 1 .. V-1 modulo V picks uniformly among the other tokens.
    rank = _uniform_ranks(inside, generator)
    substituted = (rank >= n_d[:, None]) & (rank < (n_d + n_s)[:, None])
    shift = torch.randint(
        1, vocab_size, targets.shape, device=device, generator=generator
    )
    tokens = torch.where(
        substituted, (targets - low + shift) % vocab_size + low, targets
    )
    if reward == "hamming":
        samples = tokens.masked_fill(~inside, pad_value)
        sample_lengths = lengths.clone()
    else:
        samples, sample_lengths = _delete_and_insert(
            tokens,
            kept=inside & (rank >= n_d[:, None]),
            n_inserted=n_i,
            low=low,
            high=high,
            pad_value=pad_value,
            generator=generator,
        )
    if return_distances:
        return samples, sample_lengths, n_d + n_i + n_s
    return samples, sample_lengths


def _delete_and_insert(tokens, *, kept, n_inserted, low, high, pad_value, generator):
    """Drop the tokens not ``kept``; insert ``n_inserted`` random ones per row.

    The inserted tokens take uniformly drawn positions of the result.
    """
    batch, width = tokens.shape
    device = tokens.device
    if width == 0:
        tokens = torch.full((batch, 1), pad_value, dtype=torch.long, device=device)
        kept = torch.zeros((batch, 1), dtype=torch.bool, device=device)
    # A stable sort on "not kept" moves the kept tokens to the front, in order.
    order = torch.sort((~kept).to(torch.uint8), dim=1, stable=True).indices
    compact = tokens.gather(1, order)
    sample_lengths = kept.sum(dim=1) + n_inserted
    out_width = max(width, int(sample_lengths.max())) if batch else width
    inside = torch.arange(out_width, device=device) < sample_lengths[:, None]
    inserted = _uniform_ranks(inside, generator) < n_inserted[:, None]
    source = (inside & ~inserted).cumsum(dim=1) - 1
    source = source.clamp(0, compact.shape[1] - 1)
    fresh = torch.randint(low, high, inside.shape, device=device, generator=generator)
    samples = torch.where(inserted, fresh, compact.gather(1, source))
    return samples.masked_fill(~inside, pad_value), sample_lengths
