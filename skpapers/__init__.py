"""skpapers: landmark machine-learning papers as scikit-learn estimators."""

__version__ = "0.1.0.dev0"

from skpapers.decomposition import NMF
from skpapers.neural_network import BatchNormMLPClassifier
from skpapers.segmentation import MaskRCNNSegmenter
from skpapers.sequence import RMLSequencePredictor

__all__ = [
    "NMF",
    "BatchNormMLPClassifier",
    "MaskRCNNSegmenter",
    "RMLSequencePredictor",
    "__version__",
]
