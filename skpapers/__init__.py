"""skpapers: landmark machine-learning papers as scikit-learn estimators."""

__version__ = "0.1.0.dev0"

from skpapers.decomposition import NMF

__all__ = ["NMF", "__version__"]
