"""Utilities shared by the skpapers estimators."""

from skpapers.utils._state import restore_on_error
from skpapers.utils.discovery import all_estimators

#: The types to trust when loading a skpapers estimator saved with
#: ``skops.io``: ``skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)``. A
#: fitted estimator holds its network as numpy arrays, so no torch or skorch
#: type is among them; parameters that are objects of the user's (a custom
#: optimizer class, skorch callbacks) add their own types.
SKOPS_TRUSTED_TYPES = [
    "skpapers.decomposition._nmf.NMF",
    "skpapers.neural_network._bn_mlp.BatchNormMLPClassifier",
    "skpapers.segmentation._maskrcnn.MaskRCNNSegmenter",
    "skpapers.sequence._rml.RMLSequencePredictor",
    "skpapers.sequence._rml.Vocabulary",
]

__all__ = ["SKOPS_TRUSTED_TYPES", "all_estimators", "restore_on_error"]
