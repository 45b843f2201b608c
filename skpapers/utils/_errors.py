"""Errors that say which estimator raised them."""

import functools
import sys
from pathlib import Path

import sklearn

# Frames in these folders are the library's own: a warning points past them.
_INTERNAL = (str(Path(__file__).parents[1]), str(Path(sklearn.__file__).parent))


def names_estimator(method):
    """Decorate an estimator method so that its ValueError, TypeError and
    FloatingPointError (a fit that diverged) name the estimator.

    Inside a ``Pipeline`` or a grid search a bare "X holds no sequences"
    leaves the user guessing which step refused its input; the decorated
    method prefixes ``"<EstimatorName>: "`` to the message (unless it names
    the estimator already), keeping the exception's type and traceback. An
    exception that is more than one message is passed on as it is.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (ValueError, TypeError, FloatingPointError) as error:
            name = type(self).__name__
            (message, *rest) = error.args or (None,)
            # only a plain message: other exceptions format their args themselves
            plain = not rest and isinstance(message, str) and str(error) == message
            if plain and name not in message:
                error.args = (f"{name}: {message}",)
            raise

    return wrapper


def external_stacklevel():
    """The ``stacklevel`` that makes ``warnings.warn`` point at the user's line.

    Counts the frames from the function that calls this one out to the first
    frame outside skpapers and scikit-learn (decorators and ``fit`` calling
    ``fit_transform`` included), as Python 3.12's ``skip_file_prefixes`` does.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level
