"""Instance segmentation: Mask R-CNN (He et al. 2017) on torchvision."""

from skpapers.segmentation._maskrcnn import MaskRCNNSegmenter
from skpapers.segmentation._model import (
    MaskPredictor,
    MultiScaleRoIOp,
    build_maskrcnn,
    roi_warp,
)

__all__ = [
    "MaskPredictor",
    "MaskRCNNSegmenter",
    "MultiScaleRoIOp",
    "build_maskrcnn",
    "roi_warp",
]
