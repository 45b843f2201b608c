"""Tests for skpapers.sequence._payoff: RAML's exponentiated payoff samplers.

The samplers are checked against a slow, obvious enumeration of every edit
script on tiny cases (V = 3, m <= 3), with chi-square tests on many samples,
and against the paper's claims (tau = 0 is the target; the scale keeps tau
meaningful across vocabularies).
"""

import collections
import gc
import math
import statistics
import time
import tracemalloc
import weakref
from collections import Counter, defaultdict
from itertools import combinations, product

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from rapidfuzz.distance import Hamming, Levenshtein
from scipy.stats import binom, chisquare

from skpapers.sequence import RMLSequencePredictor, _payoff
from skpapers.sequence._payoff import (
    _log_class_weights,
    _PayoffTables,
    payoff_distribution,
    sample_payoff,
    sample_payoff_batch,
)
from skpapers.sequence._rml import RMLNet

REWARDS = ["edit", "hamming"]
TINY_TARGETS = [(), (2,), (0, 1), (1, 1), (0, 0, 1), (2, 0, 1)]
V_TINY = 3


# --------------------------------------------------------------------------
# The slow, obvious reference: every script, one by one
# --------------------------------------------------------------------------


def _scripts(target, V, reward):
    """Yield ``(e, output)`` for every edit script on ``target``.

    A script deletes a set of positions, replaces another set each by a token
    other than its own, then puts new tokens (any of ``V``) at a set of
    positions of the result; Hamming scripts only replace. At most ``E``
    edits: ``m`` for Hamming, ``max(m, 1)`` for edit.
    """
    m = len(target)
    E = m if reward == "hamming" else max(m, 1)
    for n_d in range(E + 1 if reward == "edit" else 1):
        for deleted in combinations(range(m), n_d):
            rest = [j for j in range(m) if j not in deleted]
            for n_s in range(min(len(rest), E - n_d) + 1):
                for replaced in combinations(rest, n_s):
                    others = [[v for v in range(V) if v != target[j]] for j in replaced]
                    for new in product(*others):
                        tokens = list(target)
                        for j, v in zip(replaced, new, strict=True):
                            tokens[j] = v
                        kept = [tokens[j] for j in rest]
                        most_inserted = E - n_d - n_s if reward == "edit" else 0
                        for n_i in range(most_inserted + 1):
                            yield from _insertions(kept, n_i, V, n_d + n_s + n_i)


def _insertions(kept, n_i, V, e):
    length = len(kept) + n_i
    for slots in combinations(range(length), n_i):
        for new in product(range(V), repeat=n_i):
            fresh, old = iter(new), iter(kept)
            yield (
                e,
                tuple(next(fresh) if k in slots else next(old) for k in range(length)),
            )


def _reference(target, V, tau, reward):
    """Scripts per distance, and the probability of each output sequence.

    Every script ``S`` has probability proportional to
    ``exp(-|S| (1 + ln(V - 1)) / tau)``, the documented distribution.
    """
    scale = 1 + math.log(V - 1)
    counts, q = Counter(), defaultdict(float)
    for e, output in _scripts(target, V, reward):
        counts[e] += 1
        q[output] += math.exp(-e * scale / tau)
    total = sum(q.values())
    return counts, {y: p / total for y, p in q.items()}


def _assert_matches(observed, expected, *, min_expected=5.0, alpha=1e-3):
    """Chi-square test of ``observed`` counts against ``expected`` probabilities."""
    unexpected = set(observed) - {k for k, p in expected.items() if p > 0}
    assert not unexpected, f"drawn outside the support: {sorted(unexpected)[:5]}"
    n = sum(observed.values())
    keys = sorted(expected, key=lambda k: expected[k])
    obs, exp, pooled_obs, pooled_exp = [], [], 0, 0.0
    for key in keys:
        if n * expected[key] < min_expected:
            pooled_obs += observed.get(key, 0)
            pooled_exp += n * expected[key]
        else:
            obs.append(observed.get(key, 0))
            exp.append(n * expected[key])
    if pooled_exp > 0:
        obs.append(pooled_obs)
        exp.append(pooled_exp)
    if len(obs) < 2:
        assert obs == [n]
        return
    exp = np.array(exp) * n / np.sum(exp)
    pvalue = chisquare(obs, exp).pvalue
    assert pvalue > alpha, f"chi-square p-value {pvalue:.2e} over {len(obs)} bins"


# --------------------------------------------------------------------------
# payoff_distribution
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("target", TINY_TARGETS)
def test_distribution_counts_every_script(target, reward):
    """p(e) ∝ N_m(e) exp(-e s / tau), with N_m(e) the scripts of e edits."""
    tau = 1.3
    counts, _ = _reference(target, V_TINY, tau, reward)
    scale = 1 + math.log(V_TINY - 1)
    E = max(counts)
    weights = np.array([counts[e] * math.exp(-e * scale / tau) for e in range(E + 1)])
    p = payoff_distribution(len(target), V_TINY, tau=tau, reward=reward)
    assert_allclose(p, weights / weights.sum(), rtol=1e-12)


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_hamming_counts_are_the_sequences_at_each_distance(length):
    """For Hamming the strata are exact: C(m, e) (V - 1)^e sequences."""
    V, tau = 3, 0.9
    target = [0] * length
    found = Counter(
        Hamming.distance(target, list(y)) for y in product(range(V), repeat=length)
    )
    scripts, _ = _reference(tuple(target), V, tau, "hamming")
    assert scripts == found
    scale = 1 + math.log(V - 1)
    weights = np.array(
        [found[e] * math.exp(-e * scale / tau) for e in range(length + 1)]
    )
    assert_allclose(
        payoff_distribution(length, V, tau=tau, reward="hamming"),
        weights / weights.sum(),
    )


@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("length", [0, 1, 5, 30])
@pytest.mark.parametrize("vocab_size", [2, 40, 10_000])
@pytest.mark.parametrize("tau", [0.1, 0.9, 3.0, 100.0])
def test_distribution_is_a_distribution(reward, length, vocab_size, tau):
    p = payoff_distribution(length, vocab_size, tau=tau, reward=reward)
    E = length if reward == "hamming" else max(length, 1)
    assert p.shape == (E + 1,)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    assert p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("vocab_size", [2, 3, 39, 1000])
def test_tau_one_is_binomial_for_every_vocabulary(vocab_size):
    """The scale 1 + ln(V - 1) cancels the (V - 1)^e of the counts at tau = 1."""
    p = payoff_distribution(7, vocab_size, tau=1.0, reward="hamming")
    assert_allclose(p, binom.pmf(np.arange(8), 7, 1 / (1 + math.e)), rtol=1e-10)


def test_scale_keeps_a_phoneme_neighbourhood_small():
    """39 phonemes at tau = 0.6: 88% of tokens replaced without the scale."""
    m, V, tau = 20, 39, 0.6
    e = np.arange(m + 1)
    unscaled = binom.pmf(
        e, m, (V - 1) * math.exp(-1 / tau) / (1 + (V - 1) * math.exp(-1 / tau))
    )
    assert unscaled @ e / m == pytest.approx(0.878, abs=1e-3)
    for reward in REWARDS:
        p = payoff_distribution(m, V, tau=tau, reward=reward)
        assert p @ np.arange(len(p)) / m < 0.05


@pytest.mark.parametrize("reward", REWARDS)
def test_distance_grows_with_tau_and_vanishes_at_zero(reward):
    taus = [0.0, 0.05, 0.3, 0.6, 0.9, 1.2, 5.0]
    means = []
    for tau in taus:
        p = payoff_distribution(8, 40, tau=tau, reward=reward)
        means.append(p @ np.arange(len(p)))
    assert means[0] == 0 and means[1] < 1e-6
    assert np.all(np.diff(means[1:]) > 0)
    assert_array_equal(payoff_distribution(8, 40, tau=0.0, reward=reward)[0], 1.0)


# --------------------------------------------------------------------------
# sample_payoff: one target, numpy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("target", TINY_TARGETS)
def test_samples_follow_the_documented_distribution(target, reward):
    tau = 1.3
    _, q = _reference(target, V_TINY, tau, reward)
    samples = sample_payoff(
        target, V_TINY, tau=tau, reward=reward, n_samples=20_000, random_state=0
    )
    _assert_matches(Counter(tuple(s.tolist()) for s in samples), q)


@pytest.mark.parametrize("reward", REWARDS)
def test_samples_are_within_the_drawn_distance(reward):
    rng = np.random.RandomState(0)
    for length in [0, 1, 4, 9]:
        target = rng.randint(0, 5, length)
        samples, distances = sample_payoff(
            target,
            5,
            tau=1.0,
            reward=reward,
            n_samples=2000,
            random_state=length,
            return_distances=True,
        )
        assert all(s.dtype == np.int64 and s.ndim == 1 for s in samples)
        _assert_matches(
            Counter(distances.tolist()),
            dict(enumerate(payoff_distribution(length, 5, tau=1.0, reward=reward))),
        )
        for sample, e in zip(samples, distances, strict=True):
            assert np.all((sample >= 0) & (sample < 5))
            if reward == "hamming":
                assert len(sample) == length
                assert Hamming.distance(target, sample) == e
            else:
                assert Levenshtein.distance(target, sample) <= e
                assert abs(len(sample) - length) <= e


@pytest.mark.parametrize("reward", REWARDS)
def test_tau_zero_returns_the_target(reward):
    target = [4, 0, 2, 2]
    samples, distances = sample_payoff(
        target, 5, tau=0, reward=reward, n_samples=3, return_distances=True
    )
    for sample in samples:
        assert_array_equal(sample, target)
        assert sample.dtype == np.int64
    assert_array_equal(distances, 0)
    samples[0][0] = 1
    assert samples[1][0] == 4, "the copies must not share memory"


def test_random_state_makes_draws_repeatable():
    def draw(seed):
        return sample_payoff([1, 2, 3], 6, tau=1.0, n_samples=20, random_state=seed)

    assert all(np.array_equal(a, b) for a, b in zip(draw(3), draw(3), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(draw(3), draw(4), strict=True))


# --------------------------------------------------------------------------
# sample_payoff_batch: a padded batch, torch
# --------------------------------------------------------------------------


def _padded(targets, *, offset=0, width=None, padding=0):
    width = max(max(map(len, targets)), 1) if width is None else width
    array = torch.full((len(targets), width), padding, dtype=torch.long)
    for row, target in enumerate(targets):
        array[row, : len(target)] = torch.tensor(target, dtype=torch.long) + offset
    return array, torch.tensor([len(t) for t in targets])


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_follows_the_documented_distribution(reward):
    """All tiny targets in one batch, ids shifted past 3 reserved ids."""
    tau, low, repeat = 1.3, 3, 20_000
    rows = [t for t in TINY_TARGETS for _ in range(repeat)]
    # Padding holds junk: only the ids within each row's length are read.
    targets, lengths = _padded(rows, offset=low, width=5, padding=99)
    generator = torch.Generator().manual_seed(0)
    samples, sample_lengths = sample_payoff_batch(
        targets,
        lengths,
        tau=tau,
        low=low,
        high=low + V_TINY,
        reward=reward,
        pad_value=0,
        generator=generator,
    )
    assert samples.dtype == sample_lengths.dtype == torch.long
    assert samples.shape[1] == max(5, int(sample_lengths.max()))
    inside = torch.arange(samples.shape[1]) < sample_lengths[:, None]
    assert torch.all(samples[~inside] == 0)
    assert torch.all((samples[inside] >= low) & (samples[inside] < low + V_TINY))
    samples, sample_lengths = (samples - low).tolist(), sample_lengths.tolist()
    for k, target in enumerate(TINY_TARGETS):
        block = slice(k * repeat, (k + 1) * repeat)
        drawn = Counter(
            tuple(row[:n])
            for row, n in zip(samples[block], sample_lengths[block], strict=True)
        )
        _assert_matches(drawn, _reference(target, V_TINY, tau, reward)[1])


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_distances_follow_payoff_distribution(reward):
    """Mixed lengths 0 .. 8 in one batch, V = 40 tokens after 3 reserved ids."""
    V, low, tau, B = 40, 3, 0.9, 36_000
    generator = torch.Generator().manual_seed(1)
    lengths = torch.arange(B) % 9
    targets = torch.randint(low, low + V, (B, 8), generator=generator)
    samples, sample_lengths, distances = sample_payoff_batch(
        targets,
        lengths,
        tau=tau,
        low=low,
        high=low + V,
        reward=reward,
        generator=generator,
        return_distances=True,
    )
    for m in range(9):
        rows = lengths == m
        _assert_matches(
            Counter(distances[rows].tolist()),
            dict(enumerate(payoff_distribution(m, V, tau=tau, reward=reward))),
        )
    for b in range(0, B, 7):
        target = targets[b, : lengths[b]].tolist()
        sample = samples[b, : sample_lengths[b]].tolist()
        e = int(distances[b])
        if reward == "hamming":
            assert len(sample) == len(target)
            assert Hamming.distance(target, sample) == e
        else:
            assert Levenshtein.distance(target, sample) <= e
            assert abs(len(sample) - len(target)) <= e
    if reward == "hamming":
        assert torch.equal(sample_lengths, lengths)


def test_edit_samples_are_rarely_closer_than_drawn():
    """Cancelling edits are rare: the documented ``<= e`` is nearly ``== e``."""
    generator = torch.Generator().manual_seed(2)
    targets = torch.randint(3, 43, (4000, 8), generator=generator)
    lengths = torch.full((4000,), 8)
    samples, sample_lengths, distances = sample_payoff_batch(
        targets,
        lengths,
        tau=0.9,
        low=3,
        high=43,
        generator=generator,
        return_distances=True,
    )
    closer = sum(
        Levenshtein.distance(t.tolist(), s[:n].tolist()) < e
        for t, s, n, e in zip(targets, samples, sample_lengths, distances, strict=True)
    )
    assert closer / 4000 < 0.05


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_tau_zero_returns_the_targets_bit_for_bit(reward):
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(3, 20, (16, 7), generator=generator)
    lengths = torch.randint(0, 8, (16,), generator=generator)
    samples, sample_lengths, distances = sample_payoff_batch(
        targets,
        lengths,
        tau=0.0,
        low=3,
        high=20,
        reward=reward,
        generator=generator,
        return_distances=True,
    )
    assert torch.equal(samples, targets) and torch.equal(sample_lengths, lengths)
    assert samples.dtype == torch.long and sample_lengths.dtype == torch.long
    assert samples.data_ptr() != targets.data_ptr()
    assert torch.all(distances == 0)


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_generator_makes_draws_repeatable(reward):
    targets, lengths = _padded([[3, 4, 5, 6], [7, 8], []], offset=0)

    def draw(seed):
        generator = torch.Generator().manual_seed(seed)
        return sample_payoff_batch(
            targets.repeat(50, 1),
            lengths.repeat(50),
            tau=1.0,
            low=3,
            high=13,
            reward=reward,
            generator=generator,
        )

    state = torch.random.get_rng_state()
    first, again, other = draw(0), draw(0), draw(1)
    assert torch.equal(torch.random.get_rng_state(), state), "global RNG touched"
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][:, :4], other[0][:, :4])


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_without_generator_uses_torch_seed(reward):
    targets, lengths = _padded([[3, 4, 5, 6]] * 20)
    torch.manual_seed(5)
    first = sample_payoff_batch(
        targets, lengths, tau=1.0, low=3, high=13, reward=reward
    )
    torch.manual_seed(5)
    again = sample_payoff_batch(
        targets, lengths, tau=1.0, low=3, high=13, reward=reward
    )
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_edge_shapes(reward):
    generator = torch.Generator().manual_seed(0)
    empty_batch = torch.zeros((0, 4), dtype=torch.long)
    samples, lengths = sample_payoff_batch(
        empty_batch,
        torch.zeros(0, dtype=torch.long),
        tau=1.0,
        high=5,
        reward=reward,
        generator=generator,
    )
    assert samples.shape == (0, 4) and lengths.shape == (0,)
    # Every row empty, width 0: edit may insert one token, Hamming returns them.
    samples, lengths = sample_payoff_batch(
        torch.zeros((500, 0), dtype=torch.long),
        torch.zeros(500, dtype=torch.long),
        tau=2.0,
        low=3,
        high=8,
        reward=reward,
        generator=generator,
    )
    if reward == "hamming":
        assert samples.shape == (500, 0) and torch.all(lengths == 0)
    else:
        assert samples.shape == (500, 1) and set(lengths.tolist()) == {0, 1}
        assert torch.all((samples[lengths == 1] >= 3) & (samples[lengths == 1] < 8))
        assert torch.all(samples[lengths == 0] == 0)
    # Narrower ints are accepted and come back as int64.
    samples, lengths = sample_payoff_batch(
        torch.tensor([[3, 4]], dtype=torch.int32),
        torch.tensor([2], dtype=torch.int32),
        tau=1.0,
        low=3,
        high=5,
        reward=reward,
        generator=generator,
    )
    assert samples.dtype == lengths.dtype == torch.long


@pytest.mark.parametrize("width", [8, 30])
def test_batch_is_cheap_next_to_a_training_step(width):
    """64 targets over 40 tokens: a fraction of one GRU layer's step.

    Run with torch's default threads: an op that wakes the thread pool for a
    tiny tensor (advanced indexing, searchsorted) costs milliseconds on a
    busy machine and shows here. The sampler and the reference step
    alternate, so that a busy moment slows both alike; the benchmark
    (bench_rml.py, ``sampling``) measures the sampler at 0.3-1.7% of a whole
    step.
    """
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(3, 43, (64, width), generator=generator)
    lengths = torch.randint(width - 3, width + 1, (64,), generator=generator)
    # the default Seq2Seq's sizes: embeddings of 64, 128 hidden units
    gru = torch.nn.GRU(64, 128)
    inputs = torch.randn(width, 64, 64, generator=generator)

    def step():
        output, _ = gru(inputs)
        output.sum().backward()

    for reward in REWARDS:
        kwargs = dict(tau=0.8, low=3, high=43, reward=reward, generator=generator)
        for _ in range(5):
            sample_payoff_batch(targets, lengths, **kwargs)
            step()
        sampling, stepping = [], []
        for _ in range(30):
            start = time.perf_counter()
            sample_payoff_batch(targets, lengths, **kwargs)
            sampling.append(time.perf_counter() - start)
            start = time.perf_counter()
            step()
            stepping.append(time.perf_counter() - start)
        ratio = statistics.median(sampling) / statistics.median(stepping)
        assert ratio < 0.5, (reward, ratio)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("reward", REWARDS)
def test_batch_on_gpu_matches_the_distribution(reward):
    V, tau, B = 40, 0.9, 20_000
    generator = torch.Generator(device="cuda").manual_seed(0)
    targets = torch.randint(3, 3 + V, (B, 6), device="cuda", generator=generator)
    lengths = torch.full((B,), 6, device="cuda")
    samples, sample_lengths, distances = sample_payoff_batch(
        targets,
        lengths,
        tau=tau,
        low=3,
        high=3 + V,
        reward=reward,
        generator=generator,
        return_distances=True,
    )
    assert samples.device.type == sample_lengths.device.type == "cuda"
    _assert_matches(
        Counter(distances.tolist()),
        dict(enumerate(payoff_distribution(6, V, tau=tau, reward=reward))),
    )


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tau=-0.1), "tau must be a real number >= 0"),
        (dict(tau=float("nan")), "tau must be a real number >= 0"),
        (dict(tau="1"), "tau must be a real number >= 0"),
        (
            dict(tau=1.0, reward="levenshtein"),
            "reward must be one of 'edit', 'hamming'",
        ),
        (dict(tau=1.0, vocab_size=1), "vocab_size must be an integer >= 2"),
        (dict(tau=1.0, vocab_size=2.5), "vocab_size must be an integer >= 2"),
        (dict(tau=1.0, length=-1), "length must be an integer >= 0"),
    ],
)
def test_distribution_errors(kwargs, match):
    kwargs = {"length": 3, "vocab_size": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        payoff_distribution(**kwargs)


@pytest.mark.parametrize(
    "target, kwargs, match",
    [
        ([0, 5], {}, r"must lie in \[0, vocab_size\) = \[0, 5\)"),
        ([-1, 2], {}, r"must lie in \[0, vocab_size\)"),
        ([[0, 1]], {}, "target must be a 1-D sequence"),
        ([0.5, 1.0], {}, "target must hold integer token ids"),
        ([0, 1], dict(n_samples=0), "n_samples must be an integer >= 1"),
        ([0, 1], dict(tau=-1.0), "tau must be a real number >= 0"),
        ([0, 1], dict(reward="bleu"), "reward must be one of"),
        ([0, 1], dict(vocab_size=1), "vocab_size must be an integer >= 2"),
    ],
)
def test_sample_errors(target, kwargs, match):
    kwargs = {"vocab_size": 5, "tau": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        sample_payoff(target, **kwargs)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            dict(targets=torch.tensor([[3, 2, 4]])),
            r"must lie in \[low, high\) = \[3, 13\)",
        ),
        (dict(targets=torch.tensor([[3, 13, 4]])), r"must lie in \[low, high\)"),
        (dict(lengths=torch.tensor([4])), r"lengths must lie in \[0, 3\]"),
        (dict(lengths=torch.tensor([-1])), r"lengths must lie in \[0, 3\]"),
        (
            dict(lengths=torch.tensor([3, 3])),
            "lengths must be an integer tensor of shape",
        ),
        (dict(targets=torch.tensor([3, 4])), "targets must be a 2-D torch tensor"),
        (dict(targets=np.array([[3, 4]])), "targets must be a 2-D torch tensor"),
        (
            dict(targets=torch.tensor([[3.0, 4.0, 5.0]])),
            "targets must hold integer ids",
        ),
        (dict(high=4), r"high must be an integer >= 5 \(two tokens or more"),
        (dict(low=-1), "low must be an integer >= 0"),
        (dict(tau=-1.0), "tau must be a real number >= 0"),
        (dict(reward="edits"), "reward must be one of"),
        (dict(cache=[]), "cache must be a dict"),
        (dict(max_payoff_bytes=0), "max_payoff_bytes must be an integer >= 1"),
        (dict(max_payoff_bytes=2.5), "max_payoff_bytes must be an integer >= 1"),
    ],
)
def test_batch_errors(change, match):
    kwargs = dict(
        targets=torch.tensor([[3, 4, 5]]),
        lengths=torch.tensor([3]),
        tau=1.0,
        low=3,
        high=13,
    )
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        sample_payoff_batch(**kwargs)


def test_batch_ignores_ids_past_the_lengths():
    targets = torch.tensor([[3, 4, 0, 99], [5, -7, 2, 1]])
    samples, _ = sample_payoff_batch(
        targets, torch.tensor([2, 1]), tau=0.5, low=3, high=13
    )
    assert torch.all((samples == 0) | ((samples >= 3) & (samples < 13)))


# --------------------------------------------------------------------------
# The batch sampler's tables: exact, built once, bounded in bytes
# --------------------------------------------------------------------------


def _row_probabilities(rows, key, upto=None):
    """``{count: probability}`` of one table row, truncated at ``upto``."""
    lo, cumulative = rows.row(key)
    if upto is not None:
        cumulative = cumulative[: upto - lo + 1]
    weights = np.diff(np.exp(cumulative - cumulative[-1]), prepend=0.0)
    return {lo + j: w for j, w in enumerate(weights)}


def _table_joint(tables, m):
    """p(n_d, n_i, n_s) as the batch sampler draws it, from its table rows."""
    E = m if tables.reward == "hamming" else max(m, 1)
    joint = np.zeros((E + 1, E + 1, E + 1))
    if tables.reward == "hamming":
        for n_s, p in _row_probabilities(tables.first, m).items():
            joint[0, 0, n_s] = p
        return joint
    for n_d, p_d in _row_probabilities(tables.first, m).items():
        k = m - n_d
        for n_i, p_i in _row_probabilities(tables.inserted, k + 1 if m else 0).items():
            budget = max(m, 1) - n_d - n_i
            for n_s, p_s in _row_probabilities(tables.substituted, k, budget).items():
                joint[n_d, n_i, n_s] += p_d * p_i * p_s
    return joint


@pytest.mark.parametrize("reward", REWARDS)
@pytest.mark.parametrize("tau", [0.3, 0.9, 3.0, 100.0])
@pytest.mark.parametrize("vocab_size", [2, 40])
def test_tables_draw_every_class_with_its_exact_probability(reward, tau, vocab_size):
    """The rows, kept only where the mass is, multiply out to the whole
    (L+1)^3 array of class weights that the slow sampler draws from."""
    tables = _PayoffTables(vocab_size, tau, reward, None)
    lengths = [0, 1, 2, 7, 30]
    tables.reserve(lengths)
    for m in lengths:
        log_weights, _ = _log_class_weights(m, vocab_size, tau, reward)
        expected = np.exp(log_weights - log_weights.max())
        expected /= expected.sum()
        joint = _table_joint(tables, m)
        part = joint[tuple(slice(n) for n in expected.shape)]
        assert_allclose(part, expected, rtol=0, atol=1e-13)
        assert joint.sum() == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("reward", REWARDS)
def test_batch_follows_the_distribution_at_three_hundred_tokens(reward):
    """Long targets: drawn distances against payoff_distribution, m = 300."""
    V, low, tau, B, m = 40, 3, 0.9, 6000, 300
    generator = torch.Generator().manual_seed(3)
    targets = torch.randint(low, low + V, (B, m), generator=generator)
    lengths = torch.full((B,), m)
    samples, sample_lengths, distances = sample_payoff_batch(
        targets,
        lengths,
        tau=tau,
        low=low,
        high=low + V,
        reward=reward,
        generator=generator,
        return_distances=True,
        cache={},
    )
    _assert_matches(
        Counter(distances.tolist()),
        dict(enumerate(payoff_distribution(m, V, tau=tau, reward=reward))),
    )
    for b in range(0, B, 200):
        target = targets[b].tolist()
        sample = samples[b, : sample_lengths[b]].tolist()
        if reward == "hamming":
            assert Hamming.distance(target, sample) == distances[b]
        else:
            assert Levenshtein.distance(target, sample) <= distances[b]


@pytest.mark.parametrize("reward", REWARDS)
def test_tables_grow_slower_than_the_square_of_the_length(reward):
    """Every length up to 1000: a few MiB (the cubic tables needed 24 GB),
    and four times the length takes well under 16 times the bytes."""
    sizes = {}
    for longest in (250, 1000):
        tables = _PayoffTables(40, 0.9, reward, None)
        tracemalloc.start()
        tables.reserve(range(longest + 1))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sizes[longest] = tables.nbytes
    assert sizes[1000] < 32 * 2**20
    assert peak < 64 * 2**20, "building must stay in bounded blocks"
    assert sizes[1000] / sizes[250] < 12


@pytest.mark.parametrize("reward", REWARDS)
def test_tables_are_built_once_per_length(reward, monkeypatch):
    built = []
    add = _payoff._Pending.add
    monkeypatch.setattr(
        _payoff._Pending,
        "add",
        lambda self, name, key, *a: built.append(key) or add(self, name, key, *a),
    )
    cache = {}
    generator = torch.Generator().manual_seed(0)
    targets, lengths = _padded([[3, 4, 5, 6], [7, 8], []])
    kwargs = dict(tau=1.0, low=3, high=13, reward=reward, generator=generator)
    sample_payoff_batch(targets, lengths, cache=cache, **kwargs)
    (tables,) = cache.values()
    assert set(tables.first.keys()) == {0, 2, 4} and built
    first_rows = {m: tables.first.row(m)[1].copy() for m in (0, 2, 4)}
    built.clear()
    for _ in range(3):
        sample_payoff_batch(targets[:2], lengths[:2], cache=cache, **kwargs)
    assert built == [], "no row is built twice"
    sample_payoff_batch(targets[:, :3], torch.tensor([3, 1, 0]), cache=cache, **kwargs)
    assert 3 in built and 2 not in built and 0 not in built
    for m, row in first_rows.items():  # re-laid, not changed
        assert_array_equal(tables.first.row(m)[1], row)
    sample_payoff_batch(targets, lengths, cache=cache, **{**kwargs, "tau": 2.0})
    assert len(cache) == 2, "one set of tables per (V, tau, reward)"


def test_shared_cache_is_bounded_in_bytes(monkeypatch):
    monkeypatch.setattr(_payoff, "_SHARED_TABLES", collections.OrderedDict())
    monkeypatch.setattr(_payoff, "_SHARED_MAX_BYTES", 200_000)
    targets = torch.randint(3, 43, (8, 200), generator=torch.Generator())
    lengths = torch.arange(193, 201)
    for tau in np.linspace(0.5, 2.0, 8):
        sample_payoff_batch(targets, lengths, tau=float(tau), low=3, high=43)
        held = sum(tables.nbytes for tables in _payoff._SHARED_TABLES.values())
        assert held <= 200_000
    assert 0 < len(_payoff._SHARED_TABLES) < 8


@pytest.mark.parametrize("reward", REWARDS)
def test_tables_past_the_limit_are_refused_and_nothing_kept(reward):
    cache = {}
    targets = torch.randint(3, 43, (2, 1000), generator=torch.Generator())
    with pytest.raises(ValueError, match=r"max_payoff_bytes=20000 .*raise max_payoff"):
        sample_payoff_batch(
            targets,
            torch.tensor([1000, 999]),
            tau=0.9,
            low=3,
            high=43,
            reward=reward,
            cache=cache,
            max_payoff_bytes=20_000,
        )
    (tables,) = cache.values()
    assert not tables.first.keys() and tables.nbytes == 0


def test_estimator_trains_on_a_thousand_tokens_and_releases_its_tables():
    """One 1000-token target: the tables take a few MiB, go with the model."""
    X = ["ab", "ba", "abc", "cab"]
    rng = np.random.RandomState(0)
    y = [list(rng.choice(list("xyz"), n)) for n in (1000, 3, 5, 4)]
    model = RMLSequencePredictor(
        tau=0.9,
        max_epochs=1,
        embedding_dim=4,
        hidden_size=4,
        batch_size=4,
        random_state=0,
    ).fit(X, y)
    (tables,) = model.net_.payoff_cache_.values()
    assert set(tables.first.keys()) == {3, 4, 5, 1000}
    assert 0 < tables.nbytes < 16 * 2**20
    gone = weakref.ref(tables)
    del model, tables
    gc.collect()
    assert gone() is None, "the tables must not outlive the model"


def test_estimator_refuses_targets_past_the_limit_before_training(monkeypatch):
    X, y = ["ab", "ba"], ["xyz" * 100, "zy"]
    trained = []
    monkeypatch.setattr(RMLNet, "partial_fit", lambda *a, **k: trained.append(1))
    model = RMLSequencePredictor(tau=0.9, max_payoff_bytes=20_000, max_epochs=1)
    with pytest.raises(
        ValueError,
        match=r"RMLSequencePredictor: .*300 tokens.*max_payoff_bytes=20000",
    ):
        model.fit(X, y)
    assert not trained and not hasattr(model, "net_")


def test_a_refused_refit_leaves_the_fitted_model_as_it_was():
    X, short, long = ["ab", "ba"], ["xy", "yx"], ["xyz" * 100, "zy"]
    model = RMLSequencePredictor(tau=0.9, max_epochs=1, hidden_size=4).fit(X, short)
    net, predictions = model.net_, model.predict(X)
    model.set_params(max_payoff_bytes=20_000)
    with pytest.raises(ValueError, match="max_payoff_bytes=20000"):
        model.fit(X, long)
    assert model.net_ is net and model.predict(X) == predictions
    assert model.max_payoff_bytes == 20_000
