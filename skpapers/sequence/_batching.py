"""Mini-batches of sequence pairs of similar length.

Padding a batch to its longest pair costs compute and memory in proportion
to that pair: one long target among short ones makes every row of its batch
as long. :class:`LengthBatchSampler` shuffles the pairs, sorts them by
length within windows of a few dozen batches, cuts each window into batches
that hold at most ``batch_size`` pairs and at most ``max_tokens`` padded
positions, and shuffles the batches.
"""

import math

import numpy as np
import torch
from torch.utils.data import Sampler

WINDOW = 50  # batches' worth of pairs sorted together


def pair_lengths(source_lengths, target_lengths):
    """Padded positions a pair takes in a batch: its longer side, the
    target counted with its end marker."""
    return np.maximum(np.asarray(source_lengths), np.asarray(target_lengths) + 1)


def default_max_tokens(lengths, batch_size):
    """``batch_size`` pairs of twice the median length: ordinary batches are
    full, and a pair far longer than the median trains in a smaller one."""
    return int(batch_size * 2 * math.ceil(np.median(lengths)))


class LengthBatchSampler(Sampler):
    """Indices of batches of pairs of similar length, in a random order.

    Each pass draws a permutation from torch's default generator (so that
    seeding torch fixes it, as it fixes a ``DataLoader``'s shuffle), sorts
    each window of ``window * batch_size`` consecutive pairs of it by length,
    and cuts the window into batches of at most ``batch_size`` pairs whose
    count times their longest length stays within ``max_tokens`` (a longer
    pair makes a batch of its own). The batches of all windows are then
    shuffled.

    Parameters
    ----------
    lengths : array-like of int
        Length of each pair, as :func:`pair_lengths` counts it.
    batch_size : int
        Most pairs per batch.
    max_tokens : int or None, default=None
        Most padded positions per batch, ``None`` for
        :func:`default_max_tokens`.
    window : int, default=50
        Batches' worth of pairs sorted together; 1 keeps the pairs of a batch
        random (only the cut by ``max_tokens`` depends on length).
    """

    def __init__(self, lengths, *, batch_size, max_tokens=None, window=WINDOW):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        if max_tokens is None:
            max_tokens = default_max_tokens(self.lengths, self.batch_size)
        self.max_tokens = int(max_tokens)
        self.window = int(window)

    def __len__(self):
        """Batches of a pass where no batch is cut short by ``max_tokens``."""
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        seed = int(torch.randint(2**31 - 1, (1,)))
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.lengths))
        span = self.window * self.batch_size
        batches = []
        for start in range(0, len(order), span):
            window = order[start : start + span]
            window = window[np.argsort(self.lengths[window], kind="stable")]
            batches += self._cut(window)
        for i in rng.permutation(len(batches)):
            yield batches[i].tolist()

    def _cut(self, window):
        """Consecutive batches of ``window`` (sorted by length) within both
        limits."""
        lengths = self.lengths[window]
        batches, start = [], 0
        while start < len(window):
            # the longest is the last: rows * lengths[stop - 1] <= max_tokens
            stop = start + 1
            limit = min(len(window), start + self.batch_size)
            while stop < limit and (stop + 1 - start) * lengths[stop] <= (
                self.max_tokens
            ):
                stop += 1
            batches.append(window[start:stop])
            start = stop
        return batches
