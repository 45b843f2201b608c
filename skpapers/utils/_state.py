"""Keeping an estimator whole when a fit fails."""

from contextlib import contextmanager


@contextmanager
def restore_on_error(estimator):
    """Put ``estimator``'s attributes back as they were if the block raises.

    A fit that fails on bad input must leave no half-fitted state: not a new
    ``n_features_in_`` beside an old ``components_``. Fits only assign
    attributes, so a shallow copy of ``vars(estimator)`` is enough.
    """
    saved = dict(vars(estimator))
    try:
        yield estimator
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise
