"""Lee & Seung (2000) reproduced: ``skpapers reproduce nmf``."""

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpapers._reproduce import Claim, Result, Table, experiment
from skpapers.datasets import load_ratings_example, make_low_rank_ratings
from skpapers.decomposition import NMF
from skpapers.utils._plotting import PLOT_HINT, optional_pyplot

# Solvers compared on the digits: the paper's two rules and the steps between.
SOLVERS = {
    # the paper's plain alternation; inner_iter="auto" is the faster default
    "mu": dict(solver="mu", inner_iter=1),
    "mu, inner_iter=auto": dict(solver="mu"),
    "additive, eta=multiplicative": dict(
        solver="additive", learning_rate="multiplicative"
    ),
    "additive, eta=auto": dict(solver="additive", learning_rate="auto"),
    "additive, eta=3e-4": dict(solver="additive", learning_rate=3e-4),
    "additive, eta=1e-4": dict(solver="additive", learning_rate=1e-4),
    "additive, eta=1e-3": dict(solver="additive", learning_rate=1e-3),
}
# The Frobenius error of the seed's worked example at rank 1.
SEED_ERROR = 4.501


@experiment(
    "nmf",
    title="Non-negative matrix factorization",
    paper="Lee & Seung (2000), Algorithms for Non-negative Matrix Factorization",
    # Measured with --seed 0 on two CPU cores: quick 3.1 s, full 9.6 s.
    expected_seconds=(3, 10),
)
def run(*, quick, out_dir, random_state):
    """The seed's example, mu vs additive on digits, parts, missing values."""
    plt = optional_pyplot()
    result = Result()
    ratings_table, ratings_error = _ratings_example()
    result.tables.append(ratings_table)
    curves, models = _solver_curves(quick, random_state)
    result.tables.append(_curves_table(curves))
    result.tables.append(_completion_table(quick, random_state))
    auto, mu = curves["additive, eta=auto"][-1], curves["mu"][-1]
    result.notes += [
        "The multiplicative (mu) loss never rose, as Theorem 1 says: "
        + ("yes" if _never_rises(curves["mu"]) else "NO"),
        f"additive with eta=auto ends {100 * (1 - auto / mu):.1f}% below mu's loss "
        f"after {len(curves['mu']) - 1} iterations.",
        *_fixed_step_notes(curves),
    ]
    result.claims += _claims(curves, ratings_error)
    if plt is None:
        result.notes.append(f"Figures skipped: {PLOT_HINT}.")
        return result
    result.figures.append(_plot_curves(plt, curves, out_dir / "nmf_loss_curves.png"))
    result.figures.append(
        _plot_parts(plt, models["mu"], out_dir / "nmf_digit_parts.png")
    )
    return result


def _ratings_example():
    V = load_ratings_example().data
    nmf = NMF(n_components=1, init="nndsvd", tol=0, max_iter=500)
    with warnings.catch_warnings():  # NNDSVD leaves no zero at rank 1
        warnings.simplefilter("ignore", UserWarning)
        W = nmf.fit_transform(V).ravel()
    scale = W.sum()
    singular_values = np.linalg.svd(V, compute_uv=False)
    svd_error = float(np.sqrt(np.sum(singular_values[1:] ** 2)))
    table = Table(
        "The seed's 3 x 3 ratings matrix at rank 1",
        ["quantity", "seed", "measured"],
    )
    table.rows += [
        ["W / sum(W)", "[0.389, 0.386, 0.225]", _vector(W / scale, 3)],
        ["H * sum(W)", "[11.22, 10.58, 5.41]", _vector(nmf.components_[0] * scale, 2)],
        ["Frobenius error", f"{SEED_ERROR}", f"{nmf.reconstruction_err_:.3f}"],
        ["rank-1 SVD error", f"{SEED_ERROR} (same)", f"{svd_error:.3f}"],
    ]
    return table, nmf.reconstruction_err_


def _vector(values, digits):
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def _solver_curves(quick, random_state):
    X = load_digits().data
    max_iter = 60 if quick else 200
    curves, models = {}, {}
    for name, params in SOLVERS.items():
        nmf = NMF(16, init="nndsvda", max_iter=max_iter, tol=0, **params)
        nmf.set_params(random_state=random_state).fit(X)
        curves[name], models[name] = nmf.loss_curve_, nmf  # Frobenius: each one
    return curves, models


def _curves_table(curves):
    n = len(curves["mu"]) - 1
    checkpoints = [c for c in (10, 50, n) if c <= n]
    table = Table(
        f"Loss 1/2 |X - WH|^2 on load_digits, rank 16 (x 1e5), {n} iterations",
        ["solver", *(f"iter {c}" for c in checkpoints), "never rose"],
    )
    for name, curve in curves.items():
        table.rows.append(
            [name, *(curve[c] / 1e5 for c in checkpoints), _never_rises(curve)]
        )
    return table


def _rises(curve):
    """Iterations that raised the loss beyond rounding (or made it NaN)."""
    return int(np.sum(~(np.diff(curve) <= 1e-12 * np.abs(curve[:-1]))))


def _never_rises(curve):
    return _rises(curve) == 0


def _claims(curves, ratings_error):
    """Theorem 1, the additive rule at the multiplicative step, the worked example."""
    mu, same = curves["mu"], curves["additive, eta=multiplicative"]
    rises = _rises(mu)
    gap = float(np.max(np.abs(same - mu) / mu))
    return [
        Claim(
            "The multiplicative rules never increase the loss (Theorem 1)",
            "never increases",
            f"mu on load_digits, rank 16: rose in {rises} of {len(mu) - 1} iterations",
            holds=_never_rises(mu),
        ),
        Claim(
            "The additive rule with the step eta = H / (W^T W H) is the "
            "multiplicative rule",
            "the same update",
            f"loss curves on load_digits differ by at most {gap:.1e} (relative)",
            holds=gap <= 1e-6,
        ),
        Claim(
            "The rules reach the best rank-1 fit of the 3 x 3 ratings example "
            "(the SVD's error)",
            f"{SEED_ERROR} (the seed's worked example)",
            f"{ratings_error:.3f}",
            holds=bool(np.isclose(ratings_error, SEED_ERROR, atol=5e-4)),
        ),
    ]


def _fixed_step_notes(curves):
    """Say what each fixed step did: fixed steps carry no guarantee."""
    notes = []
    for name, curve in curves.items():
        if "=" not in name or not name.split("=")[1][0].isdigit():
            continue
        if curve[-1] > curve[0]:
            notes.append(f"{name} diverged: the loss ended at {curve[-1]:.3g}.")
        elif not _never_rises(curve):
            rises = int(np.sum(np.diff(curve) > 0))
            notes.append(f"{name} raised the loss in {rises} iteration(s).")
    return notes


def _completion_table(quick, random_state):
    table = Table(
        "Completing a ratings matrix with 20% of entries missing (RMSE on the gaps)",
        ["users x items", "rank", "NMF", "column means"],
    )
    sizes = [(300, 120)] if quick else [(300, 120), (1000, 400)]
    for n_users, n_items in sizes:
        X, X_full = make_low_rank_ratings(
            n_users, n_items, rank=5, missing_fraction=0.2, random_state=random_state
        )
        gaps = np.isnan(X)
        nmf = NMF(5, init="random", random_state=random_state, max_iter=500)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            completed = nmf.inverse_transform(nmf.fit_transform(X))
        means = np.broadcast_to(np.nanmean(X, axis=0), X.shape)
        table.rows.append(
            [
                f"{n_users} x {n_items}",
                5,
                _rmse(completed[gaps], X_full[gaps]),
                _rmse(means[gaps], X_full[gaps]),
            ]
        )
    return table


def _rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _plot_curves(plt, curves, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        ax.plot(curve, label=name, linestyle="--" if "multiplicative" in name else "-")
    ax.set_yscale("log")
    ax.set_ylim(
        top=10 * max(curve[0] for curve in curves.values() if curve[-1] < curve[0])
    )
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss 1/2 |X - WH|^2")
    ax.set_title("Multiplicative vs additive updates on load_digits (rank 16)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_parts(plt, nmf, path):
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
    for ax, component in zip(axes.ravel(), nmf.components_, strict=True):
        ax.imshow(component.reshape(8, 8), cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("The 16 parts (rows of H) NMF learns from the digits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
