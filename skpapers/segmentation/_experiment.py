"""He et al. (2017) reproduced: ``skpapers reproduce maskrcnn``.

The paper's Table 2 ablations (b: sigmoid against softmax masks; c: RoIAlign
against RoIPool and RoIWarp; and class-agnostic masks) on a task that trains
offline on a CPU: circles, squares and triangles of ``make_shapes`` (the
full run leaves out class-agnostic masks, on which no claim rests). Every
variant gets the same images, network, epochs and seeds; only the axis it
ablates differs. Mask AP is COCO's, computed by pycocotools on held-out
images.
"""

import time
import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.utils import check_random_state

from skpapers._reproduce import (
    Claim,
    Result,
    Table,
    experiment,
    mean_std,
    n_jobs,
    ranked_beyond_spread,
    training_setup,
)
from skpapers.datasets import SHAPE_NAMES, make_shapes
from skpapers.metrics import mask_average_precision
from skpapers.segmentation._maskrcnn import MaskRCNNSegmenter
from skpapers.utils._plotting import PLOT_HINT, optional_pyplot, save_figure
from skpapers.utils._torch import reproducible_training

# (the paper's table, the variant, its parameters, COCO mask AP in the paper)
VARIANTS = (
    ("2b, 2c", "RoIAlign, sigmoid, class-specific", {}, 30.3),
    ("2b", "softmax masks", {"mask_loss": "softmax"}, 24.8),
    ("2c", "RoIPool", {"roi_op": "pool"}, 26.9),
    ("2c", "RoIWarp", {"roi_op": "warp"}, 27.2),
    ("2", "class-agnostic masks", {"class_agnostic": True}, 29.7),
)
SIZES = {
    # quick: about a minute on two CPU cores, far from converged, every
    # variant; full: each cell a shorter training than the estimator's default
    # (20 epochs), the variants of the claims (at 6 epochs, RoIWarp and
    # RoIPool tie within the spread: 40.3 +- 2.3 and 40.4 +- 0.9).
    True: dict(n_train=200, n_test=50, max_epochs=3, n_seeds=1, n_variants=5),
    False: dict(n_train=500, n_test=200, max_epochs=8, n_seeds=3, n_variants=4),
}
# Scored detections: COCO's AP counts every detection down to a low score.
_SCORE_THRESHOLD = 0.05
# Detections drawn in the figure.
_DRAW_THRESHOLD = 0.5


@experiment(
    "maskrcnn",
    title="Mask R-CNN",
    paper="He et al. (2017), Mask R-CNN",
    # Measured with --seed 0 on two quiet CPU cores (2026-12-03, a training per
    # process on one thread each): quick 70.1 s, full 1144 s (four variants).
    expected_seconds=(70, 1144),
)
def run(*, quick, out_dir, random_state):
    """Mask AP of the paper's Table 2 variants on make_shapes, over seeds."""
    plt = optional_pyplot()
    size = SIZES[quick]
    rng = check_random_state(random_state)
    X_train, y_train = make_shapes(size["n_train"], random_state=rng)
    X_test, y_test = make_shapes(size["n_test"], random_state=rng)
    seeds = rng.randint(np.iinfo(np.int32).max, size=size["n_seeds"])
    epochs = size["max_epochs"]
    variants = VARIANTS[: size["n_variants"]]
    if not quick:
        print(
            f"maskrcnn: {len(variants) * len(seeds)} trainings of {size['n_train']} "
            f"images x {epochs} epochs",
            flush=True,
        )
    jobs = n_jobs(len(variants) * len(seeds))
    start = time.perf_counter()
    scores, example = table2_scores(
        (X_train, y_train),
        (X_test, y_test),
        seeds=seeds,
        max_epochs=epochs,
        variants=variants,
        progress=not quick,
        n_jobs=jobs,
    )
    seconds = time.perf_counter() - start
    result = Result(setup=training_setup(seeds, jobs))
    result.tables.append(_ap_table(scores, size, epochs))
    result.notes += _notes(scores, size, epochs, seconds, quick)
    result.claims += _claims(scores)
    if plt is None:
        result.notes.append(f"Figures skipped: {PLOT_HINT}.")
        return result
    result.figures.append(_plot_ablation(plt, scores, out_dir / "maskrcnn_table2.png"))
    result.figures.append(
        _plot_predictions(
            plt, X_test[:8], y_test[:8], example[:8], out_dir / "maskrcnn_masks.png"
        )
    )
    return result


def table2_scores(
    train, test, *, seeds, max_epochs, variants=VARIANTS, progress=False, n_jobs=1
):
    """Mask AP, AP50 and AP75 of each of ``variants``, per seed.

    The trainings run in ``n_jobs`` processes, on one torch thread each and
    with torch's deterministic algorithms: these small networks gain little
    from a second thread, and a training's numbers depend on its thread
    count (not on ``n_jobs``, nor on the order the trainings run in).

    Returns a dict from the variant's name to an array of shape
    ``(len(seeds), 3)`` of percentages, and the first seed's predictions of
    the first variant on the test images.
    """
    cells = [
        (i, seed, name, params)
        for i, seed in enumerate(seeds)
        for _, name, params, _ in variants
    ]
    jobs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_score_cell)(cell, train, test, max_epochs=max_epochs) for cell in cells
    )
    scores = {name: [None] * len(seeds) for _, name, _, _ in variants}
    example = None
    with warnings.catch_warnings():
        # loky replaces a worker whose memory grew over a training: no harm
        warnings.filterwarnings("ignore", "A worker stopped", UserWarning)
        for (i, _, name, _), row, predictions, seconds in jobs:
            scores[name][i] = row
            if i == 0 and name == VARIANTS[0][1]:
                example = predictions
            if progress:
                print(
                    f"  seed {i + 1}/{len(seeds)}, {name}: mask AP {row[0]:.3f}, "
                    f"AP50 {row[1]:.3f} ({seconds:.0f} s)",
                    flush=True,
                )
    return {name: 100 * np.array(rows) for name, rows in scores.items()}, example


def _score_cell(cell, train, test, *, max_epochs):
    """Train one variant with one seed; its AP, AP50, AP75 and predictions."""
    _, seed, _, params = cell
    start = time.perf_counter()
    with reproducible_training(1):
        model = MaskRCNNSegmenter(
            max_epochs=max_epochs,
            score_threshold=_SCORE_THRESHOLD,
            random_state=seed,
            **params,
        ).fit(*train)
        predictions = model.predict(test[0])
    row = [
        mask_average_precision(test[1], predictions, iou_threshold=threshold)
        for threshold in (None, 0.5, 0.75)
    ]
    return cell, row, predictions, time.perf_counter() - start


def _ap_table(scores, size, epochs):
    n_seeds = size["n_seeds"]
    spread = " ± std" if n_seeds > 1 else ""
    table = Table(
        f"Mask AP (%) on {size['n_test']} held-out make_shapes images "
        f"({size['n_train']} training images, {epochs} epochs each; "
        f"{n_seeds} seed{'s' * (n_seeds > 1)})",
        [
            "table",
            "variant",
            f"AP (mean{spread})",
            "AP50",
            "AP75",
            "vs RoIAlign",
            "paper: COCO AP",
            "paper: vs RoIAlign",
        ],
    )
    baseline_name, baseline_paper = VARIANTS[0][1], VARIANTS[0][3]
    baseline = scores[baseline_name][:, 0].mean()
    for where, name, _, paper in VARIANTS:
        if name not in scores:
            continue
        values = scores[name]
        first = name == baseline_name
        table.rows.append(
            [
                where,
                name,
                mean_std(values[:, 0], digits=1),
                f"{values[:, 1].mean():.1f}",
                f"{values[:, 2].mean():.1f}",
                "" if first else f"{values[:, 0].mean() - baseline:+.1f}",
                f"{paper:.1f}",
                "" if first else f"{paper - baseline_paper:+.1f}",
            ]
        )
    return table


def _notes(scores, size, epochs, seconds, quick):
    baseline_name = VARIANTS[0][1]
    baseline = scores[baseline_name][:, 0]
    notes = []
    ranked = sorted(scores, key=lambda name: -scores[name][:, 0].mean())
    notes.append(
        "Ranking by mask AP: "
        + " > ".join(f"{name} ({scores[name][:, 0].mean():.1f})" for name in ranked)
        + ". The paper's, on COCO: RoIAlign sigmoid (30.3) > class-agnostic "
        "(29.7) > RoIWarp (27.2) > RoIPool (26.9) > softmax (24.8)."
    )
    if len(baseline) > 1:
        spread = max(values[:, 0].std(ddof=1) for values in scores.values())
        notes.append(
            f"Seed-to-seed spread: the largest standard deviation is {spread:.1f} "
            "AP points; differences smaller than that are not measured here."
        )
    else:
        notes.append(
            "One seed and a small budget (--quick): the models are far from "
            "converged and the differences are noise; the full run trains "
            "{n_seeds} seeds of every variant on {n_train} images.".format(
                **SIZES[False]
            )
        )
    notes.append(
        f"Budget: each of the {len(scores) * len(baseline)} trainings ran "
        f"{epochs} epochs over the same {size['n_train']} images with the "
        f"default small backbone; training and scoring took {seconds:.0f} s in "
        "all."
    )
    notes.append(
        "The paper's numbers are COCO test-dev with a ResNet-101 FPN: compare "
        "the direction and size of each change against RoIAlign, not the "
        "levels. Quantisation costs most where a feature cell is large against "
        "the object: here objects span 3 to 12 cells of the finest level."
    )
    if len(scores) < len(VARIANTS):
        left_out = ", ".join(name for _, name, _, _ in VARIANTS if name not in scores)
        notes.append(
            f"Left out of the full run to keep it under 30 minutes: {left_out} "
            "(no claim rests on it); --quick trains it."
        )
    if quick:
        notes.append(
            "Quick mode trains each model for seconds: expect a low AP (the "
            "full run's RoIAlign models score about 60)."
        )
    return notes


def _claims(scores):
    """RoIAlign > RoIWarp > RoIPool, and sigmoid > softmax masks, in mask AP.

    A claim holds where each step of its ranking is larger than the
    seed-to-seed spread; with one seed, or within the spread, it is left open.
    """
    paper = {name: ap for _, name, _, ap in VARIANTS}
    align, softmax, pool, warp = VARIANTS[0][1], "softmax masks", "RoIPool", "RoIWarp"
    n_seeds = len(scores[align])

    def compare(names, labels):
        ours = ", ".join(
            f"{label} {mean_std(scores[name][:, 0], digits=1)}"
            for name, label in zip(names, labels, strict=True)
        )
        return Claim(
            " > ".join(labels) + " in mask AP",
            " > ".join(f"{paper[name]:.1f}" for name in names) + " (COCO)",
            f"{ours} (make_shapes, {n_seeds} seed{'s' * (n_seeds > 1)})",
            holds=ranked_beyond_spread([scores[name][:, 0] for name in names]),
        )

    return [
        compare((align, warp, pool), ("RoIAlign", "RoIWarp", "RoIPool")),
        compare((align, softmax), ("sigmoid masks", "softmax masks")),
    ]


def _plot_ablation(plt, scores, path):
    names = [name for _, name, _, _ in VARIANTS if name in scores]
    baseline = scores[names[0]][:, 0].mean()
    ours = [scores[name][:, 0].mean() - baseline for name in names[1:]]
    errors = [
        scores[name][:, 0].std(ddof=1) if len(scores[name]) > 1 else 0.0
        for name in names[1:]
    ]
    paper = [p - VARIANTS[0][3] for _, name, _, p in VARIANTS[1:] if name in scores]
    x = np.arange(len(names) - 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        x - 0.2, ours, 0.4, yerr=errors, capsize=4, label="make_shapes (ours, ± std)"
    )
    ax.bar(x + 0.2, paper, 0.4, label="COCO (paper)")
    for i, name in enumerate(names[1:]):
        values = scores[name][:, 0] - baseline
        ax.plot(np.full(len(values), i - 0.2), values, ".", color="black", ms=4)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(x, names[1:])
    ax.set_ylabel("mask AP change against RoIAlign (points)")
    ax.set_title("Mask R-CNN, Table 2: each ablation against the full model")
    ax.legend()
    return save_figure(fig, path)


def _plot_predictions(plt, images, truths, predictions, path):
    """Images with their predicted masks (top) and true masks (bottom)."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.8), squeeze=False)
    for column, (image, truth, prediction) in enumerate(
        zip(images, truths, predictions, strict=True)
    ):
        # the most confident detection painted last, on top
        keep = np.flatnonzero(prediction["scores"] >= _DRAW_THRESHOLD)[::-1]
        for row, (masks, labels) in enumerate(
            [
                (prediction["masks"][keep], prediction["labels"][keep]),
                (truth["masks"], truth["labels"]),
            ]
        ):
            ax = axes[row, column]
            ax.imshow(overlay_masks(image, masks, labels))
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel("predicted" if row == 0 else "true")
    key = ", ".join(
        f"{name} {_COLOUR_NAMES[label]}" for label, name in SHAPE_NAMES.items()
    )
    fig.suptitle(
        f"Masks scored at least {_DRAW_THRESHOLD} by the RoIAlign model ({key})"
    )
    return save_figure(fig, path)


# one colour per make_shapes class, painted over the image in grey
_COLOURS = {1: (0.1, 0.45, 1.0), 2: (1.0, 0.25, 0.1), 3: (0.15, 0.85, 0.15)}
_COLOUR_NAMES = {1: "blue", 2: "red", 3: "green"}


def overlay_masks(image, masks, labels):
    """The image in dim grey, each mask painted in its class's colour.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
    masks : ndarray of shape (k, H, W), bool
    labels : ndarray of shape (k,)
        make_shapes classes (1, 2, 3); others are painted white.

    Returns
    -------
    ndarray of shape (H, W, 3), float in [0, 1]
    """
    grey = image.astype(float).mean(axis=2, keepdims=True) / 255
    shown = np.repeat(0.15 + 0.35 * grey, 3, axis=2)
    for mask, label in zip(masks, labels, strict=True):
        colour = np.array(_COLOURS.get(int(label), (1.0, 1.0, 1.0)))
        shown[mask] = 0.3 * shown[mask] + 0.7 * colour
    return shown
