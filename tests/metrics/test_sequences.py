"""Error rates of sequences, with one reference or several per prediction."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skpapers.metrics import edit_error_rate, sequence_accuracy

words = st.lists(st.sampled_from("abc"), max_size=6).map("".join)


def test_each_prediction_is_scored_against_its_closest_reference():
    references = [[["R", "EH", "D"], ["R", "IY", "D"]], [["K", "AE", "T"]]]
    predicted = [["R", "IY", "D"], ["K", "AH", "T"]]
    assert edit_error_rate(references, predicted, alternatives=True) == 1 / 6
    assert sequence_accuracy(references, predicted, alternatives=True) == 0.5
    # against the first pronunciation only, the first word is wrong too
    first = [r[0] for r in references]
    assert edit_error_rate(first, predicted) == 2 / 6
    assert sequence_accuracy(first, predicted) == 0


def test_ties_count_the_shortest_of_the_closest_references():
    # "ab" is one edit from both "a" and "abc": the rate divides by 1
    assert edit_error_rate([["abc", "a"]], ["ab"], alternatives=True) == 1.0


@given(st.lists(st.tuples(words, words), min_size=1, max_size=5))
def test_a_single_reference_in_a_list_scores_as_the_reference(pairs):
    truth, predicted = [t for t, _ in pairs], [p for _, p in pairs]
    listed = [[t] for t in truth]
    assert edit_error_rate(listed, predicted, alternatives=True) == edit_error_rate(
        truth, predicted
    )
    assert sequence_accuracy(listed, predicted, alternatives=True) == sequence_accuracy(
        truth, predicted
    )


@given(st.lists(st.tuples(words, words, words), min_size=1, max_size=5))
def test_more_references_never_raise_the_word_error(triples):
    one = [[a] for a, _, _ in triples]
    two = [[a, b] for a, b, _ in triples]
    predicted = [p for _, _, p in triples]
    assert sequence_accuracy(two, predicted, alternatives=True) >= sequence_accuracy(
        one, predicted, alternatives=True
    )


def test_alternatives_need_a_reference_for_each_prediction():
    with pytest.raises(ValueError, match=r"y_true\[1\] holds no reference"):
        edit_error_rate([["ab"], []], ["ab", "c"], alternatives=True)
    with pytest.raises(TypeError, match="not a string"):
        edit_error_rate("ab", ["ab", "c"], alternatives=True)
