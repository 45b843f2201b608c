"""Non-negative matrix factorization (Lee & Seung 2000)."""

from skpapers.decomposition._nmf import NMF

__all__ = ["NMF"]
