"""Instance segmentation: Mask R-CNN (He et al. 2017) on torchvision."""

from skpapers.segmentation._maskrcnn import MaskRCNNSegmenter
from skpapers.segmentation._model import (
    MaskPredictor,
    MultiScaleRoIOp,
    SmallBackbone,
    build_maskrcnn,
    paste_masks,
    roi_warp,
)

__all__ = [
    "MaskPredictor",
    "MaskRCNNSegmenter",
    "MultiScaleRoIOp",
    "SmallBackbone",
    "build_maskrcnn",
    "paste_masks",
    "roi_warp",
]
