"""Errors that say which estimator raised them."""

import functools


def names_estimator(method):
    """Decorate an estimator method so that its ValueError and TypeError name
    the estimator.

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
        except (ValueError, TypeError) as error:
            name = type(self).__name__
            (message, *rest) = error.args or (None,)
            # only a plain message: other exceptions format their args themselves
            plain = not rest and isinstance(message, str) and str(error) == message
            if plain and name not in message:
                error.args = (f"{name}: {message}",)
            raise

    return wrapper
