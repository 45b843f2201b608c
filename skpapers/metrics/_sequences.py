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


def _paired(y_true, y_pred, alternatives=False):
    if alternatives:
        y_true = [_as_sequences(r, "each item of y_true") for r in _listed(y_true)]
        empty = [i for i, references in enumerate(y_true) if not references]
        if empty:
            raise ValueError(
                f"y_true[{empty[0]}] holds no reference; with alternatives=True "
                "each item of y_true is a non-empty list of references."
            )
    else:
        y_true = _as_sequences(y_true, "y_true")
    y_pred = _as_sequences(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred hold {len(y_true)} and {len(y_pred)} sequences; "
            "they must hold the same number."
        )
    return y_true, y_pred


def _listed(y_true):
    if isinstance(y_true, str):
        raise TypeError("y_true must be a list of lists of references, not a string.")
    _check_ordered(y_true, "y_true")
    return list(y_true)


def _closest(references, prediction):
    """The edit distance to the closest reference, and that reference's length
    (the shortest of the closest)."""
    return min(
        (Levenshtein.distance(_tokens(r), _tokens(prediction)), len(r))
        for r in references
    )


def _tokens(sequence):
    """A sequence rapidfuzz compares token by token (hashables, any type)."""
    return sequence if isinstance(sequence, str) else list(sequence)


def edit_error_rate(y_true, y_pred, *, alternatives=False):
    """Total edit distance over total reference length.

    The phone, character or word error rate, by what the tokens are: the
    Levenshtein distance (insertions, deletions and substitutions, each
    costing 1) summed over the pairs, divided by the summed length of
    ``y_true``.

    Parameters
    ----------
    y_true : list of str or of token sequences
        Reference sequences; with ``alternatives``, a list of references
        per prediction.
    y_pred : list of str or of token sequences
        Predicted sequences, one per reference.
    alternatives : bool, default=False
        Each item of ``y_true`` lists every acceptable reference (a word's
        pronunciations), and each prediction is scored against the closest,
        whose length counts in the denominator: the convention of
        grapheme-to-phoneme results on CMUdict (Bisani & Ney, 2008).

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
    >>> edit_error_rate(
    ...     [["kitten", "sittin"], ["ab"]], ["sitting", "ab"], alternatives=True
    ... )  # 1 edit, 8 tokens
    0.125
    """
    y_true, y_pred = _paired(y_true, y_pred, alternatives)
    if alternatives:
        closest = [_closest(r, p) for r, p in zip(y_true, y_pred, strict=True)]
        edits, length = map(sum, zip(*closest, strict=True)) if closest else (0, 0)
        return _rate(edits, length)
    edits = sum(
        Levenshtein.distance(_tokens(t), _tokens(p))
        for t, p in zip(y_true, y_pred, strict=True)
    )
    return _rate(edits, sum(len(t) for t in y_true))


def _rate(edits, length):
    if length == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / length


def sequence_accuracy(y_true, y_pred, *, alternatives=False):
    """Share of predictions equal to their reference, token for token.

    One minus the word error rate of grapheme-to-phoneme results.

    Parameters
    ----------
    y_true : list of str or of token sequences
        Reference sequences; with ``alternatives``, a list of references
        per prediction.
    y_pred : list of str or of token sequences
        Predicted sequences, one per reference.
    alternatives : bool, default=False
        Each item of ``y_true`` lists every acceptable reference; a
        prediction equal to any of them is right.

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
    y_true, y_pred = _paired(y_true, y_pred, alternatives)
    if not y_true:
        raise ValueError("sequence_accuracy needs at least one sequence.")
    if not alternatives:
        y_true = [[t] for t in y_true]
    same = sum(
        any(list(_tokens(t)) == list(_tokens(p)) for t in references)
        for references, p in zip(y_true, y_pred, strict=True)
    )
    return same / len(y_true)
