"""Finding the public estimators of skpapers."""

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

_SKIPPED = {"skpapers.utils", "skpapers.datasets", "skpapers.metrics"}


def all_estimators():
    """Return every public estimator class that skpapers defines.

    Walks the public subpackages (those whose names do not start with an
    underscore) and collects the scikit-learn estimators they export.

    Returns
    -------
    estimators : list of (name, class) tuples
        Sorted by name.

    Examples
    --------
    >>> from skpapers.utils import all_estimators
    >>> [name for name, _ in all_estimators()]
    ['BatchNormMLPClassifier', 'MaskRCNNSegmenter', 'NMF', 'RMLSequencePredictor']
    """
    import skpapers

    found = {}
    for module_info in pkgutil.iter_modules(skpapers.__path__, "skpapers."):
        name = module_info.name
        if name.rsplit(".", 1)[-1].startswith("_") or name in _SKIPPED:
            continue
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
                found[attr] = obj
    return sorted(found.items())
