"""Error rates of predicted sequences, on rapidfuzz's edit distance."""

import numpy as np
from rapidfuzz.distance import Levenshtein

from skpapers.utils._validation import _check_ordered


def _as_sequences(y, name):
    if isinstance(y, str):
        raise TypeError(
            f"{name} must be a list of sequences (strings or token lists), not one "
            "string."
        )
    _check_ordered(y, name)
    sequences = list(y)
    for sequence in sequences:
        if isinstance(sequence, (str, list, tuple, np.ndarray)):
            continue
        raise TypeError(
            f"{name} must hold strings or sequences of tokens; got "
            f"{type(sequence).__name__}."
        )
    return sequences


def _paired(y_true, y_pred):
    y_true = _as_sequences(y_true, "y_true")
    y_pred = _as_sequences(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred hold {len(y_true)} and {len(y_pred)} sequences; "
            "they must hold the same number."
        )
    return y_true, y_pred


def _tokens(sequence):
    """A sequence rapidfuzz compares token by token (hashables, any type)."""
    return sequence if isinstance(sequence, str) else list(sequence)


def edit_error_rate(y_true, y_pred):
    """Total edit distance over total reference length.

    The phone, character or word error rate, by what the tokens are: the
    Levenshtein distance (insertions, deletions and substitutions, each
    costing 1) summed over the pairs, divided by the summed length of
    ``y_true``.

    Parameters
    ----------
    y_true : list of str or of token sequences
        Reference sequences.
    y_pred : list of str or of token sequences
        Predicted sequences, one per reference.

    Returns
    -------
    float
        0 for a perfect prediction; may exceed 1. If every reference is
        empty, 0 when every prediction is empty too and ``inf`` otherwise.

    Examples
    --------
    >>> from skpapers.metrics import edit_error_rate
    >>> edit_error_rate(["kitten", "ab"], ["sitting", "ab"])  # 3 edits, 8 tokens
    0.375
    """
    y_true, y_pred = _paired(y_true, y_pred)
    edits = sum(
        Levenshtein.distance(_tokens(t), _tokens(p))
        for t, p in zip(y_true, y_pred, strict=True)
    )
    length = sum(len(t) for t in y_true)
    if length == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / length


def sequence_accuracy(y_true, y_pred):
    """Share of predictions equal to their reference, token for token.

    Parameters
    ----------
    y_true : list of str or of token sequences
        Reference sequences.
    y_pred : list of str or of token sequences
        Predicted sequences, one per reference.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> from skpapers.metrics import sequence_accuracy
    >>> sequence_accuracy([["AH", "B"], ["K"]], [["AH", "B"], ["G"]])
    0.5
    """
    y_true, y_pred = _paired(y_true, y_pred)
    if not y_true:
        raise ValueError("sequence_accuracy needs at least one sequence.")
    same = sum(
        list(_tokens(t)) == list(_tokens(p))
        for t, p in zip(y_true, y_pred, strict=True)
    )
    return same / len(y_true)
