"""Errors that name the estimator raising them."""

import numpy as np
import pytest

from skpapers.utils._errors import names_estimator


class Refuser:
    def __init__(self, error):
        self.error = error

    @names_estimator
    def fit(self):
        raise self.error


def test_a_message_gets_the_estimator_name_once():
    with pytest.raises(ValueError, match=r"^Refuser: X holds no rows\.$"):
        Refuser(ValueError("X holds no rows.")).fit()
    with pytest.raises(TypeError, match=r"^Refuser must be fitted first$"):
        Refuser(TypeError("Refuser must be fitted first")).fit()


def test_other_exceptions_pass_unchanged():
    error = ValueError("bad", 3)
    with pytest.raises(ValueError) as raised:
        Refuser(error).fit()
    assert raised.value.args == ("bad", 3)
    axis = np.exceptions.AxisError(2, 1)  # formats its message from its args
    args, message = axis.args, str(axis)
    with pytest.raises(np.exceptions.AxisError) as raised:
        Refuser(axis).fit()
    assert raised.value.args == args and str(raised.value) == message
