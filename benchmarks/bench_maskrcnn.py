"""Time MaskRCNNSegmenter against torchvision's MaskRCNN, and the RoI operations.

Five parts, each printing one table, on images of ``make_shapes``:

- ``train``: training images per second of ``MaskRCNNSegmenter.fit`` (the
  default small backbone and sizes) against a plain PyTorch loop training
  torchvision's ``MaskRCNN`` with the same backbone and sizes but
  torchvision's own parts where ours differ (``MultiScaleRoIAlign``,
  ``MaskRCNNPredictor``, ``GeneralizedRCNNTransform``), with the same
  optimizer, warm-up and step schedule on batches of the same size, through
  the estimator's own training step
  (:func:`skpapers.utils._base.training_step`). A third row is
  torchvision's stock head sizes
  (1024-wide box head, 256-channel mask head, 512 RoIs per image, 2000
  proposals): the sizes the estimator's defaults were cut down from. Each
  run's peak memory (``_memory.peak_memory``) is reported beside its speed.
- ``predict``: inference images per second of ``predict`` (masks pasted and
  thresholded, arrays returned) against the peer network's forward pass in
  evaluation mode.
- ``roi``: forward plus backward time of RoIAlign, RoIWarp and RoIPool, for
  512 RoIs of 14 x 14 on 256 channels (the mask head at torchvision's sizes)
  and for the estimator's box head (7 x 7 on its channels).
- ``converge``: the quality target: the default estimator with
  ``augment="dihedral"`` (shapes have no up or down) trained on 1000 images,
  mask AP and AP50 on 200 held-out images, with the training time, once per
  ``--seeds``. Target: AP50 >= 0.9 and AP >= 0.6 in at most 10 minutes on
  two cores. Also the AP50 of each class, and how many instances are found
  by how many pieces occlusion cut them into.
- ``ladder`` (only when named): the same measurement for each step from the
  paper's training (SGD, undilated mask head, 12 epochs) to the defaults,
  one change a step, the left-right flip in place of the step that turns and
  flips, and the defaults without augmentation.

Usage::

    python benchmarks/bench_maskrcnn.py            # about 10 min
    python benchmarks/bench_maskrcnn.py --quick    # about 1 min, no converge
    python benchmarks/bench_maskrcnn.py --parts converge --seeds 0 1 2
    python benchmarks/bench_maskrcnn.py --parts ladder      # about 24 min
    python benchmarks/bench_maskrcnn.py --parts roi --threads 2 --json m.json

Torch runs on ``--threads`` threads (``torch.set_num_threads``), 2 by
default. Timings depend on the machine and on what else runs on it: this
script asserts nothing about them.
"""

import argparse
import functools
import json
import time

import numpy as np
import torch
from _environment import environment
from _memory import format_bytes, peak_memory
from scipy import ndimage
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from skpapers.datasets import SHAPE_NAMES, make_shapes
from skpapers.metrics import mask_average_precision
from skpapers.segmentation import MaskRCNNSegmenter, build_maskrcnn
from skpapers.segmentation._maskrcnn import WarmupSchedule
from skpapers.segmentation._model import ROI_FUNCTIONS
from skpapers.utils._base import training_step
from skpapers.utils._torch import reproducible_training

PARTS = ("train", "predict", "roi", "converge", "ladder")
SEED = 0
N_CLASSES = 4  # background and three shapes
# make_shapes has no up or down: its images may be turned and flipped
CONVERGE_AUGMENT = "dihedral"
# The way from the paper's training to the defaults, one change a step, with
# the left-right flip beside the step that turns and flips; then the
# defaults themselves, without augmentation. The defaults with
# CONVERGE_AUGMENT are the converge part.
_PAPER = dict(optimizer="sgd", lr=0.04, mask_dilation=1, max_epochs=12)
_ADAMW = {**_PAPER, "optimizer": "adamw", "lr": 0.001}
_DILATED = {**_ADAMW, "mask_dilation": 2}
LADDER = (
    ("SGD, lr 0.04, undilated, 12 epochs", _PAPER),
    ("AdamW, lr 0.001", _ADAMW),
    ("mask head dilated by 2", _DILATED),
    ("augment='hflip'", {**_DILATED, "augment": "hflip"}),
    (f"augment={CONVERGE_AUGMENT!r}", {**_DILATED, "augment": CONVERGE_AUGMENT}),
    ("the defaults (20 epochs, lr 0.002), no augmentation", {}),
)


# -- networks ---------------------------------------------------------------------


def estimator(**params):
    return MaskRCNNSegmenter(random_state=SEED, **params)


def our_network(segmenter):
    """The network ``segmenter`` trains (small backbone), untrained."""
    torch.manual_seed(SEED)
    return build_maskrcnn(
        N_CLASSES,
        roi_op=segmenter.roi_op,
        mask_loss=segmenter.mask_loss,
        class_agnostic=segmenter.class_agnostic,
        mask_dilation=segmenter.mask_dilation,
        image_size=segmenter.image_size,
        score_threshold=0.05,  # the estimator's, for COCO's AP
    )


def torchvision_network(segmenter, *, stock=False):
    """torchvision's own parts in place of ours, same backbone and sizes.

    With ``stock=True`` also torchvision's default head widths, RoI counts
    and proposal counts.
    """
    model = our_network(segmenter)
    heads = model.roi_heads
    names, ratio = heads.box_roi_pool.featmap_names, heads.box_roi_pool.sampling_ratio
    heads.box_roi_pool = MultiScaleRoIAlign(names, 7, ratio)
    heads.mask_roi_pool = MultiScaleRoIAlign(names, 14, ratio)
    channels = model.backbone.out_channels
    mask_channels = heads.mask_head[-1][0].out_channels
    heads.mask_predictor = MaskRCNNPredictor(mask_channels, mask_channels, N_CLASSES)
    old = model.transform
    model.transform = GeneralizedRCNNTransform(
        old.min_size, old.max_size, old.image_mean, old.image_std
    )
    if stock:
        heads.box_head = TwoMLPHead(channels * 7 * 7, 1024)
        heads.box_predictor = type(heads.box_predictor)(1024, N_CLASSES)
        heads.mask_head = MaskRCNNHeads(channels, [256] * 4, 1)
        heads.mask_predictor = MaskRCNNPredictor(256, 256, N_CLASSES)
        heads.fg_bg_sampler.batch_size_per_image = 512
        model.rpn._pre_nms_top_n = dict(training=2000, testing=1000)
        model.rpn._post_nms_top_n = dict(training=2000, testing=1000)
    return model


def encode(X, y):
    """Images as ``Tensor[3, H, W]`` in [0, 1] and targets as dicts of tensors."""
    images = [
        torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)) / 255).float()
        for image in X
    ]
    targets = [
        {
            "boxes": torch.as_tensor(target["boxes"], dtype=torch.float32),
            "labels": torch.as_tensor(target["labels"], dtype=torch.int64),
            "masks": torch.as_tensor(target["masks"], dtype=torch.uint8),
        }
        for target in y
    ]
    return images, targets


def train_plain(model, images, targets, segmenter):
    """One epoch of the estimator's steps on a bare network.

    The estimator's optimizer and warm-up (its ``WarmupSchedule``), batches
    of its size in a random order, and its training step
    (:func:`skpapers.utils._base.training_step` on the sum of the loss
    terms); none of skorch's data loading, callbacks or history.
    """
    # the estimator's defaults: AdamW at 0.002 (lr=None), weight decay 1e-4
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=0.002, weight_decay=segmenter.weight_decay
    )
    total = -(-len(images) // segmenter.batch_size) * segmenter.max_epochs
    warmup = WarmupSchedule()
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup.factor(step, total)
    )
    model.train()
    torch.manual_seed(SEED)
    order = torch.randperm(len(images)).tolist()
    for start in range(0, len(order), segmenter.batch_size):
        batch = order[start : start + segmenter.batch_size]

        def batch_loss(batch=batch):
            losses = model([images[i] for i in batch], [targets[i] for i in batch])
            return sum(losses.values())

        training_step(optimizer, batch_loss)
        schedule.step()
    return model


# -- timing -----------------------------------------------------------------------


def time_alternating(runners, repeats):
    """Median wall and CPU seconds of each runner, alternated after a warm-up."""
    walls = {name: [] for name in runners}
    cpus = {name: [] for name in runners}
    for repeat in range(repeats + 1):
        for name, run in runners.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            if repeat:
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
    return (
        {name: float(np.median(t)) for name, t in walls.items()},
        {name: float(np.median(t)) for name, t in cpus.items()},
    )


def speed_rows(runners, n_images, repeats):
    walls, cpus = time_alternating(runners, repeats)
    first = next(iter(runners))
    rows = []
    for name in runners:
        rows.append(
            {
                "network": name,
                "images_per_s": n_images / walls[name],
                "wall_s": walls[name],
                "cpu_s": cpus[name],
                "ratio": walls[name] / walls[first],
                "ratio_cpu": cpus[name] / cpus[first],
                "peak_bytes": peak_memory(runners[name]),
            }
        )
        print(format_speed_row(rows[-1]), flush=True)
    return rows


SPEED_HEADER = (
    f"{'network':<34} {'images/s':>9} {'wall s':>8} {'time / ours':>21} {'peak MiB':>9}"
)


def format_speed_row(row):
    return (
        f"{row['network']:<34} {row['images_per_s']:>9.1f} {row['wall_s']:>8.2f} "
        f"{row['ratio']:>6.2f}x ({row['ratio_cpu']:.2f}x cpu)"
        f" {format_bytes(row['peak_bytes']).split()[0]:>9}"
    )


def train_rows(n_images, repeats):
    X, y = make_shapes(n_images, random_state=SEED)
    segmenter = estimator(max_epochs=1)
    images, targets = encode(X, y)
    same = torchvision_network(segmenter)
    stock = torchvision_network(segmenter, stock=True)
    runners = {  # picklable, so that peak_memory runs each in a fresh process
        "MaskRCNNSegmenter.fit": functools.partial(fit_estimator, X, y),
        "torchvision MaskRCNN, same sizes": functools.partial(
            train_plain, same, images, targets, segmenter
        ),
        "torchvision MaskRCNN, stock heads": functools.partial(
            train_plain, stock, images, targets, segmenter
        ),
    }
    return speed_rows(runners, n_images, repeats)


def fit_estimator(X, y):
    return estimator(max_epochs=1).fit(X, y)


def predict_rows(n_images, repeats):
    X, y = make_shapes(n_images, random_state=SEED)
    fitted = estimator(max_epochs=1).fit(X, y)
    same = torchvision_network(fitted)
    same.load_state_dict(fitted.model_.state_dict(), strict=False)
    same.eval()
    images, _ = encode(X, y)

    def forward():
        with torch.inference_mode():
            for start in range(0, len(images), fitted.batch_size):
                same(images[start : start + fitted.batch_size])

    runners = {"MaskRCNNSegmenter.predict": lambda: fitted.predict(X)}
    runners["torchvision MaskRCNN, same sizes"] = forward
    return speed_rows(runners, n_images, repeats)


def roi_rows(repeats):
    rows = []
    segmenter = estimator()
    network = our_network(segmenter)
    rois_per_batch = (
        segmenter.batch_size * network.roi_heads.fg_bg_sampler.batch_size_per_image
    )
    settings = [
        ("torchvision's mask head", 512, 256, 14),
        ("our box head", rois_per_batch, network.backbone.out_channels, 7),
    ]
    generator = torch.Generator().manual_seed(SEED)
    for label, n_rois, channels, size in settings:
        features = torch.randn(8, channels, 16, 16, generator=generator)
        corners = torch.rand(n_rois, 2, generator=generator) * 40
        sides = 8 + torch.rand(n_rois, 2, generator=generator) * 24
        rois = torch.cat(
            [
                torch.randint(0, 8, (n_rois, 1), generator=generator).float(),
                corners,
                corners + sides,
            ],
            1,
        )
        for op in ("align", "warp", "pool"):
            for ratio in (2, 1) if op != "pool" else (0,):
                times = []
                for repeat in range(repeats + 1):
                    leaf = features.clone().requires_grad_()
                    start = time.perf_counter()
                    out = ROI_FUNCTIONS[op](leaf, rois, (size, size), 0.25, ratio)
                    forward = time.perf_counter() - start
                    out.sum().backward()
                    total = time.perf_counter() - start
                    if repeat:
                        times.append((forward, total - forward))
                forward, backward = np.median(times, axis=0)
                rows.append(
                    {
                        "setting": f"{label}: {n_rois} x {channels} x {size}^2",
                        "op": op,
                        "sampling_ratio": ratio,
                        "forward_ms": 1000 * forward,
                        "backward_ms": 1000 * backward,
                    }
                )
                print(format_roi_row(rows[-1]), flush=True)
    return rows


ROI_HEADER = (
    f"{'setting':<44} {'op':<6} {'ratio':>5} {'forward ms':>11} {'backward ms':>12}"
)


def format_roi_row(row):
    return (
        f"{row['setting']:<44} {row['op']:<6} {row['sampling_ratio'] or '-':>5} "
        f"{row['forward_ms']:>11.1f} {row['backward_ms']:>12.1f}"
    )


def converge_rows(n_train, n_test, runs, *, threads):
    """Train on ``n_train`` images and score on ``n_test`` held-out ones.

    ``runs`` holds ``(label, params)`` pairs of the estimator's parameters.
    Each fit runs on ``threads`` torch threads with torch's deterministic
    algorithms: a seed repeats its numbers at the same thread count and code,
    not across them (torch splits its sums by the thread count).
    """
    X, y = make_shapes(n_train, random_state=SEED)
    X_test, y_test = make_shapes(n_test, random_state=SEED + 1)
    rows = []
    for label, params in runs:
        segmenter = MaskRCNNSegmenter(score_threshold=0.05, **params)
        with reproducible_training(threads):
            wall, cpu = time.perf_counter(), time.process_time()
            segmenter.fit(X, y)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            predictions = segmenter.predict(X_test)
        row = {
            "run": label,
            "params": params,
            "train_images": n_train,
            "epochs": segmenter.n_iter_,
            "fit_wall_s": wall,
            "fit_cpu_s": cpu,
            "mask_ap": mask_average_precision(y_test, predictions),
            "mask_ap50": mask_average_precision(y_test, predictions, iou_threshold=0.5),
            "mask_ap75": mask_average_precision(
                y_test, predictions, iou_threshold=0.75
            ),
            "ap50_per_class": class_ap50(y_test, predictions),
            "recall50_by_pieces": recall_by_pieces(y_test, predictions),
        }
        row["target_met"] = bool(
            row["mask_ap50"] >= 0.9 and row["mask_ap"] >= 0.6 and wall <= 600
        )
        print(
            f"{label}, {n_train} images x {row['epochs']} epochs: fit "
            f"{wall:.0f} s ({cpu:.0f} s cpu); mask AP {row['mask_ap']:.3f}, AP50 "
            f"{row['mask_ap50']:.3f}, AP75 {row['mask_ap75']:.3f} on {n_test} "
            f"held-out images; target met: {row['target_met']}",
            flush=True,
        )
        print(
            "  AP50 by class: "
            + ", ".join(f"{k} {v:.3f}" for k, v in row["ap50_per_class"].items())
        )
        print(
            "  found at mask IoU 0.5, by pieces the instance is cut into: "
            + ", ".join(
                f"{k}: {v['found']}/{v['instances']}"
                for k, v in row["recall50_by_pieces"].items()
            ),
            flush=True,
        )
        rows.append(row)
    return rows


def class_ap50(y_true, y_pred):
    """AP50 of each make_shapes class alone."""

    def only(targets, label):
        return [
            {key: value[t["labels"] == label] for key, value in t.items()}
            for t in targets
        ]

    return {
        name: mask_average_precision(
            only(y_true, label), only(y_pred, label), iou_threshold=0.5
        )
        for label, name in SHAPE_NAMES.items()
    }


def recall_by_pieces(y_true, y_pred):
    """How many true instances some detection of their class covers at IoU 0.5.

    Counted apart by the pieces occlusion cut the visible mask into (1, 2, 3
    or more; pixels touching only at a corner are apart), every detection
    scored at least 0.05 eligible.
    """
    counts = {key: {"instances": 0, "found": 0} for key in ("1", "2", "3+")}
    for truth, prediction in zip(y_true, y_pred, strict=True):
        for mask, label in zip(truth["masks"], truth["labels"], strict=True):
            pieces = ndimage.label(mask)[1]
            same = prediction["masks"][prediction["labels"] == label]
            inter = (same & mask).sum(axis=(1, 2))
            union = (same | mask).sum(axis=(1, 2))
            key = str(pieces) if pieces < 3 else "3+"
            counts[key]["instances"] += 1
            counts[key]["found"] += int(np.any(inter >= 0.5 * union))
    return counts


# -- driver -----------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer images, no converge part"
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch.set_num_threads (default 2)"
    )
    parser.add_argument("--repeats", type=int, help="timed runs per row (3; 2 quick)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[SEED],
        help="random_state of each converge training (default 0; the ladder's is 0)",
    )
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args(argv)
    # the ladder is asked for by name: it takes about 24 minutes
    parts = args.parts or [
        p for p in PARTS if p != "ladder" and not (args.quick and p == "converge")
    ]
    repeats = args.repeats or (2 if args.quick else 3)
    n_images = 32 if args.quick else 96
    torch.set_num_threads(args.threads)
    env = environment("numpy", "sklearn", "torch", "torchvision", "skpapers")
    print(
        f"torch {env['torch']}, torchvision {env['torchvision']}, skpapers "
        f"{env['skpapers']}, Python {env['python']} on {env['cpu_count']} CPUs, "
        f"torch.set_num_threads({args.threads})"
    )
    rows = {}
    if "train" in parts:
        print(
            f"\ntrain: images per second over one epoch of {n_images} images "
            f"(median of {repeats} runs, alternated); time / ours: wall (cpu)"
        )
        print(SPEED_HEADER)
        rows["train"] = train_rows(n_images, repeats)
    if "predict" in parts:
        print(f"\npredict: images per second on {n_images} images")
        print(SPEED_HEADER)
        rows["predict"] = predict_rows(n_images, repeats)
    if "roi" in parts:
        print(f"\nroi: one call on 8 feature maps of 16 x 16 (median of {repeats})")
        print(ROI_HEADER)
        rows["roi"] = roi_rows(repeats)
    if "converge" in parts:
        print(
            f"\nconverge: the default estimator, augment={CONVERGE_AUGMENT!r}; "
            "target AP50 >= 0.9, AP >= 0.6"
        )
        runs = [
            (f"seed {seed}", dict(augment=CONVERGE_AUGMENT, random_state=seed))
            for seed in args.seeds
        ]
        rows["converge"] = converge_rows(1000, 200, runs, threads=args.threads)
    if "ladder" in parts:
        print("\nladder: from the paper's training to the defaults, one change a step")
        runs = [(label, {**params, "random_state": SEED}) for label, params in LADDER]
        rows["ladder"] = converge_rows(1000, 200, runs, threads=args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=2)
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
