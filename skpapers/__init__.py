"""skpapers: landmark machine-learning papers as scikit-learn estimators."""

import importlib

__version__ = "0.1.0.dev0"

# Names handed out on first use (scikit-learn's lazy-loading pattern), so that
# ``import skpapers`` or an NMF user never loads torch, torchvision or skorch.
_LAZY = {
    "NMF": "skpapers.decomposition",
    "BatchNormMLPClassifier": "skpapers.neural_network",
    "MaskRCNNSegmenter": "skpapers.segmentation",
    "RMLSequencePredictor": "skpapers.sequence",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'skpapers' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
