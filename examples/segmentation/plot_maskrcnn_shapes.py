"""
==============================================
Instance masks of shapes with Mask R-CNN
==============================================

:class:`skpapers.segmentation.MaskRCNNSegmenter` finds every object in an
image and paints its mask: Mask R-CNN (He et al., 2017), Faster R-CNN with a
small convolutional branch that predicts a mask inside each detected box.
The features of a box are read by an *RoI operation*; the paper's RoIAlign
reads them by bilinear interpolation at exact positions, where the older
RoIPool first rounds the box to the grid of the feature map.

We first look at what the three RoI operations read from a coarse feature
map, then train the segmenter for about 20 seconds on images of circles,
squares and triangles and draw its masks.
"""

# %%
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.ops import roi_align, roi_pool

from skpapers.datasets import SHAPE_NAMES, make_shapes
from skpapers.metrics import mask_average_precision
from skpapers.segmentation import MaskRCNNSegmenter, roi_warp

X, y = make_shapes(300, random_state=0)
X_test, y_test = make_shapes(100, random_state=1)
print(f"{len(X)} training images of {X.shape[1]} x {X.shape[2]} pixels")
print("instances in the first:", [SHAPE_NAMES[label] for label in y[0]["labels"]])

# %%
# What an RoI operation reads
# ---------------------------
# The network sees an image through feature maps four times coarser than its
# pixels. Here the feature map is simply the image averaged over 4 x 4
# blocks, and each operation reads a 14 x 14 grid inside the box of the first
# shape. RoIPool and RoIWarp round the box to whole feature cells, so their
# grid is shifted and stretched against the true box (drawn in white);
# RoIAlign's is not.
image = torch.from_numpy(X[0].astype(np.float32) / 255).permute(2, 0, 1)[None]
features = torch.nn.functional.avg_pool2d(image, 4)
box = torch.from_numpy(y[0]["boxes"][:1])
rois = torch.cat([torch.zeros(1, 1), box], 1)
operations = {
    "RoIAlign": lambda: roi_align(features, rois, 14, 0.25, 2, aligned=True),
    "RoIWarp": lambda: roi_warp(features, rois, (14, 14), 0.25),
    "RoIPool": lambda: roi_pool(features, rois, 14, 0.25),
}
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
x1, y1, x2, y2 = box[0].tolist()
axes[0].imshow(X[0])
axes[0].add_patch(
    plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white", lw=1.5)
)
axes[0].set_title("image and box")
for ax, (name, operation) in zip(axes[1:], operations.items(), strict=True):
    ax.imshow(operation()[0].permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(f"what {name} reads")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# Training
# --------
# The default network is sized for a CPU: a small batch-normalised backbone
# with a feature pyramid, and light box and mask heads. A few epochs on 300
# images take about 20 seconds; the benchmark trains it for longer on more
# images (``benchmarks/bench_maskrcnn.py``). Shapes have no up or down, so
# every flip and quarter turn of a training image is another training image.
segmenter = MaskRCNNSegmenter(max_epochs=4, augment="dihedral", random_state=0)
start = time.perf_counter()
segmenter.fit(X, y)
print(f"trained {segmenter.n_iter_} epochs in {time.perf_counter() - start:.0f} s")
losses = segmenter.history_[:, "train_loss"]  # skorch's History, sliced by key
print("loss per epoch:", [round(loss, 3) for loss in losses])

# %%
# ``score`` is COCO's mask AP over IoU thresholds 0.5 to 0.95, computed by
# pycocotools; :func:`~skpapers.metrics.mask_average_precision` also gives
# the AP at one threshold.
predictions = segmenter.set_params(score_threshold=0.05).predict(X_test)
print(f"mask AP   {segmenter.score(X_test, y_test):.3f}")
ap50 = mask_average_precision(y_test, predictions, iou_threshold=0.5)
print(f"mask AP50 {ap50:.3f}")

# %%
# Masks over the images
# ---------------------
# Detections scored at least 0.5, each mask painted in its class's colour
# (circles blue, squares red, triangles green) over the image in grey, above
# the true masks.
colours = {1: "tab:blue", 2: "tab:red", 3: "tab:green"}


def overlay_masks(image, masks, labels):
    shown = np.repeat(image.mean(axis=2, keepdims=True) / 255 * 0.4, 3, axis=2)
    for mask, label in zip(masks, labels, strict=True):
        shown[mask] = matplotlib.colors.to_rgb(colours[int(label)])
    return shown


fig, axes = plt.subplots(2, 6, figsize=(10, 3.6))
for column in range(6):
    prediction, truth = predictions[column], y_test[column]
    keep = np.flatnonzero(prediction["scores"] >= 0.5)[::-1]  # best on top
    axes[0, column].imshow(
        overlay_masks(
            X_test[column], prediction["masks"][keep], prediction["labels"][keep]
        )
    )
    axes[1, column].imshow(
        overlay_masks(X_test[column], truth["masks"], truth["labels"])
    )
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("predicted")
axes[1, 0].set_ylabel("true")
fig.tight_layout()
plt.show()
