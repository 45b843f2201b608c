"""Instance segmentation: Mask R-CNN (He et al. 2017) on torchvision.

The model's parts are here; the ``MaskRCNNSegmenter`` estimator is being
built on them.
"""

__all__ = []
