"""Batches of pairs of similar length."""

import numpy as np
import pytest
import torch

from skpapers.sequence import LengthBatchSampler, RMLSequencePredictor
from skpapers.sequence._batching import default_max_tokens, pair_lengths


def _passes(sampler, seed, n=1):
    torch.manual_seed(seed)
    return [list(sampler) for _ in range(n)]


@pytest.mark.parametrize("window", [1, 3, 50])
def test_every_pair_once_per_pass_within_both_limits(window):
    lengths = np.random.RandomState(0).randint(1, 30, size=1000)
    sampler = LengthBatchSampler(lengths, batch_size=32, max_tokens=400, window=window)
    (batches,) = _passes(sampler, 0)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    for batch in batches:
        assert 1 <= len(batch) <= 32
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 400


def test_batches_hold_similar_lengths_and_come_in_a_random_order():
    lengths = np.random.RandomState(0).randint(1, 30, size=3200)
    sorted_ = LengthBatchSampler(lengths, batch_size=32, max_tokens=10**6)
    random = LengthBatchSampler(lengths, batch_size=32, max_tokens=10**6, window=1)

    def padding(batches):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)

    (by_length,), (plain,) = _passes(sorted_, 0), _passes(random, 0)
    assert padding(by_length) < 0.2 * padding(plain)
    # the batches are not served shortest first
    longest = [lengths[b].max() for b in by_length]
    assert not np.all(np.diff(longest) >= 0)
    assert np.corrcoef(np.arange(len(longest)), longest)[0, 1] < 0.5


def test_torch_seed_fixes_the_batches_and_each_pass_differs():
    lengths = np.arange(500) % 17 + 1
    sampler = LengthBatchSampler(lengths, batch_size=16)
    first, again = _passes(sampler, 3, n=2), _passes(sampler, 3, n=2)
    assert first == again
    assert first[0] != first[1]
    assert _passes(sampler, 4) != first[:1]


def test_a_long_pair_trains_in_a_batch_of_its_own():
    lengths = np.r_[np.full(640, 6), 1001]
    assert default_max_tokens(lengths, 64) == 64 * 12
    (batches,) = _passes(LengthBatchSampler(lengths, batch_size=64), 0)
    assert [640] in batches
    assert sorted(map(len, batches))[1:] == [64] * 10


def test_pair_lengths_count_the_longer_side_and_the_end_marker():
    assert pair_lengths([3, 9], [5, 2]).tolist() == [6, 9]


def test_the_estimator_trains_each_step_on_one_length_bucket(monkeypatch):
    """Through skorch's loop: every pair once an epoch, similar lengths."""
    rng = np.random.RandomState(0)
    X = ["".join(rng.choice(list("abc"), n)) for n in rng.randint(1, 12, 300)]
    seen = []
    model = RMLSequencePredictor(
        tau=0, max_epochs=1, batch_size=16, hidden_size=8, random_state=0
    )
    original = type(model)._build_net

    def spying_build(self, *args, **kwargs):
        net = original(self, *args, **kwargs)
        step = net.train_step

        def recording_step(batch, **fit_params):
            seen.append(batch[0]["source_lengths"].numpy().copy())
            return step(batch, **fit_params)

        net.train_step = recording_step
        return net

    monkeypatch.setattr(type(model), "_build_net", spying_build)
    model.fit(X, X)
    assert sorted(np.concatenate(seen)) == sorted(len(x) + 1 for x in X)
    spreads = [s.max() - s.min() for s in seen]
    assert np.mean(spreads) <= 2

    seen.clear()
    model.set_params(batch_by_length=False).fit(X, X)
    assert np.mean([s.max() - s.min() for s in seen]) > 5
