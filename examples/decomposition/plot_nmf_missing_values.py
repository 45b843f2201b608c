"""
===================================================
Completing a ratings matrix with missing entries
===================================================

A customer-by-movie ratings matrix is mostly unknown, and *unknown* is not
*zero*. :class:`skpapers.decomposition.NMF` reads NaN as a missing entry: the
fit uses only the observed ratings (weighted multiplicative updates), and
``inverse_transform`` fills in the rest.

We hide a share of a low-rank ratings matrix and compare the error on the
hidden entries with filling each gap by its column mean.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skpapers.datasets import make_low_rank_ratings
from skpapers.decomposition import NMF

fractions = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
nmf_rmse, mean_rmse = [], []
for fraction in fractions:
    X, X_full = make_low_rank_ratings(
        300, 120, rank=5, missing_fraction=fraction, random_state=0
    )
    gaps = np.isnan(X)
    nmf = NMF(5, init="random", max_iter=1000, random_state=0)
    completed = nmf.inverse_transform(nmf.fit_transform(X))
    column_means = np.broadcast_to(np.nanmean(X, axis=0), X.shape)
    nmf_rmse.append(np.sqrt(np.mean((completed - X_full)[gaps] ** 2)))
    mean_rmse.append(np.sqrt(np.mean((column_means - X_full)[gaps] ** 2)))
    print(f"{fraction:.0%} missing: NMF {nmf_rmse[-1]:.3f}, means {mean_rmse[-1]:.3f}")

# %%
# Error on the hidden ratings
# ---------------------------
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(fractions, nmf_rmse, "o-", label="NMF, rank 5")
ax.plot(fractions, mean_rmse, "s-", label="column means")
ax.set_xlabel("share of ratings missing")
ax.set_ylabel("RMSE on the missing ratings")
ax.set_ylim(bottom=0)
ax.legend()
plt.show()
