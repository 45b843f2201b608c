"""Data sets the reproductions and examples run on, all available offline."""

from skpapers.datasets._cmudict import load_cmudict_g2p
from skpapers.datasets._coco import from_coco, to_coco
from skpapers.datasets._ratings import load_ratings_example, make_low_rank_ratings
from skpapers.datasets._shapes import SHAPE_NAMES, make_shapes

__all__ = [
    "SHAPE_NAMES",
    "from_coco",
    "load_cmudict_g2p",
    "load_ratings_example",
    "make_low_rank_ratings",
    "make_shapes",
    "to_coco",
]
