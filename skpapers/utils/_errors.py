"""Errors that say which estimator raised them."""

import functools


def names_estimator(method):
    """Decorate an estimator method so that its ValueError and TypeError name
    the estimator.

    Inside a ``Pipeline`` or a grid search a bare "X holds no sequences"
    leaves the user guessing which step refused its input; the decorated
    method prefixes ``"<EstimatorName>: "`` to the message (unless it names
    the estimator already), keeping the exception's type and traceback.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (ValueError, TypeError) as error:
            name = type(self).__name__
            if name not in str(error):
                error.args = (f"{name}: {error}", *error.args[1:])
            raise

    return wrapper
