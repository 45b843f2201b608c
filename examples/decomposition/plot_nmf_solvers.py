"""
=================================================
Multiplicative and additive updates for NMF
=================================================

Lee & Seung (2000) give two ways to fit a non-negative factorisation
``X ~= W H``: *multiplicative* rules, whose loss provably never increases, and
the *additive* (gradient descent) rule ``H <- H + eta (W^T X - W^T W H)``.
With the step ``eta = H / (W^T W H)`` the additive rule becomes the
multiplicative one; a fixed step carries no such guarantee.

This example fits scikit-learn's digits with each, draws the loss after every
iteration, and shows the parts that NMF learns.
"""

# %%
# Fit the digits with each solver
# -------------------------------
# ``loss_curve_`` holds the loss after each iteration; index 0 is the loss at
# the initialisation.
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from skpapers.decomposition import NMF

X = load_digits().data
settings = {
    "mu": dict(solver="mu", inner_iter=1),  # the paper's plain alternation
    "mu, inner_iter=auto": dict(solver="mu"),  # the default: repeated cheap steps
    "additive, eta=multiplicative": dict(
        solver="additive", learning_rate="multiplicative"
    ),
    "additive, eta=auto": dict(solver="additive", learning_rate="auto"),
    "additive, eta=3e-4": dict(solver="additive", learning_rate=3e-4),
    "additive, eta=1e-4": dict(solver="additive", learning_rate=1e-4),
}
models = {}
for name, params in settings.items():
    nmf = NMF(16, init="nndsvda", max_iter=100, tol=0, random_state=0, **params)
    models[name] = nmf.fit(X)
    print(f"{name:30s} final loss {nmf.loss_curve_[-1]:.4g}")

# %%
# The loss after every iteration
# ------------------------------
# The multiplicative curve and the additive one with the paper's step lie on
# top of each other. ``inner_iter="auto"`` repeats the cheap multiplicative
# step of each factor while the products with X stay fixed, and the
# additive ``"auto"`` takes accelerated projected-gradient steps: both never
# raise the loss and end lowest. The fixed steps are slower, and one that is
# too large makes the loss rise.
fig, ax = plt.subplots(figsize=(7, 4.5))
for name, nmf in models.items():
    style = "--" if "multiplicative" in name else "-"
    ax.plot(nmf.loss_curve_, style, label=name)
ax.set_yscale("log")
ax.set_ylim(1e5, 2e9)
ax.set_xlabel("iteration")
ax.set_ylabel("loss 1/2 |X - WH|^2")
ax.legend()
plt.show()

# %%
# The parts
# ---------
# Each row of ``H`` (``components_``) is an 8 x 8 image: strokes from which
# the digits are added up, never subtracted.
fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
for ax, part in zip(axes.ravel(), models["mu"].components_, strict=True):
    ax.imshow(part.reshape(8, 8), cmap="gray_r")
    ax.set_axis_off()
plt.show()
