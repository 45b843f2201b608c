"""Data sets the reproductions and examples run on, all available offline."""

from skpapers.datasets._ratings import load_ratings_example, make_low_rank_ratings

__all__ = ["load_ratings_example", "make_low_rank_ratings"]
