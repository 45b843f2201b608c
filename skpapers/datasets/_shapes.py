"""Synthetic instance-segmentation images: circles, squares and triangles.

``make_shapes`` returns the instance-target form that Mask R-CNN trains on
and the COCO and metric helpers read; its checks now live in
:mod:`skpapers.utils._validation`, imported here under their old names.
"""

from numbers import Integral

import numpy as np
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from skpapers.utils._validation import (  # noqa: F401 (the old import path)
    _as_labels,
    _check_instance_targets,
    _check_masks,
    _masks_to_boxes,
)

SHAPE_NAMES = {1: "circle", 2: "square", 3: "triangle"}

# A triangle of size s has circumradius 1.5 s (inradius 0.75 s, area 2.92 s**2),
# so that its area is close to that of the circle (pi s**2) and square (4 s**2).
_TRIANGLE_CIRCUMRADIUS = 1.5
_TRIANGLE_AREA = 3 * np.sqrt(3) / 4 * _TRIANGLE_CIRCUMRADIUS**2
# A unit pixel square lies within this distance of its centre.
_HALF_PIXEL_DIAGONAL = np.sqrt(2) / 2
_BACKGROUND_MAX = 96
_SHAPE_BRIGHT_MIN = 160
_NOISE = 16
# Pixels of one chunk of (image, shape) masks; bounds the working memory.
_CHUNK_PIXELS = 2**21


def _circle(dx, dy, size, angle):
    return dx**2 + dy**2 <= size**2


def _square(dx, dy, size, angle):
    return np.maximum(np.abs(dx), np.abs(dy)) <= size


def _triangle(dx, dy, size, angle):
    # equilateral: inside when within the inradius along each edge's normal
    inradius = _TRIANGLE_CIRCUMRADIUS / 2 * size
    inside = np.ones(np.broadcast_shapes(dx.shape, dy.shape), dtype=bool)
    for turn in range(3):
        normal = angle + 2 * np.pi * turn / 3
        inside &= dx * np.cos(normal) + dy * np.sin(normal) <= inradius
    return inside


_DRAW = {1: _circle, 2: _square, 3: _triangle}
# how far each shape, by label, reaches from its centre, in units of its size
_EXTENT = np.array([np.nan, 1.0, 1.0, _TRIANGLE_CIRCUMRADIUS], dtype=np.float32)


def _draw_chunk(centres, sizes, angles, kinds, n_drawn, *, image_size, min_area):
    """Visible masks of one chunk of images, drawn bottom to top.

    Shapes are resolved from the top down: a shape keeps the pixels no kept
    shape above it covers, and is dropped (not drawn, covering nothing) when
    fewer than ``min_area`` of them remain.

    Returns
    -------
    visible : ndarray of shape (n, max_instances, image_size, image_size), bool
    kept : ndarray of shape (n, max_instances), bool
    owner : ndarray of shape (n, image_size, image_size), int
        The slot plus one of the shape each pixel shows, 0 for background.
    """
    n, max_instances = sizes.shape
    grid = np.arange(image_size, dtype=np.float32) + 0.5  # pixel centres
    centres = centres.reshape(-1, 2)
    flat_kinds = kinds.ravel()
    flat = np.zeros((n * max_instances, image_size, image_size), dtype=bool)
    for kind, draw in _DRAW.items():
        slots = np.flatnonzero(flat_kinds == kind)
        flat[slots] = draw(
            grid[None, None, :] - centres[slots, 0, None, None],
            grid[None, :, None] - centres[slots, 1, None, None],
            sizes.ravel()[slots, None, None],
            angles.ravel()[slots, None, None],
        )
    masks = flat.reshape(n, max_instances, image_size, image_size)
    active = np.arange(max_instances) < n_drawn[:, None]
    visible = np.zeros_like(masks)
    kept = np.zeros((n, max_instances), dtype=bool)
    covered = np.zeros((n, image_size, image_size), dtype=bool)
    owner = np.zeros((n, image_size, image_size), dtype=np.intp)
    for slot in reversed(range(max_instances)):
        shown = masks[:, slot] & ~covered
        kept[:, slot] = active[:, slot] & (shown.sum(axis=(1, 2)) >= min_area)
        shown &= kept[:, slot, None, None]
        covered |= shown
        owner += shown * (slot + 1)
        visible[:, slot] = shown
    return visible, kept, owner


_DESCR = """\
.. _shapes:

Synthetic shapes for instance segmentation
------------------------------------------

RGB images of overlapping circles, squares and triangles on a dark, noisy
background, each shape in a random colour with at least one bright channel.
A later shape covers the earlier ones: the masks are what is visible, and no
pixel belongs to two masks. A shape whose visible area falls below
``min_area`` pixels is dropped and not drawn, so every coloured pixel belongs
to exactly one instance, and no image is empty.

:Input: uint8 images of shape (image_size, image_size, 3)
:Target: one dict per image with ``"masks"`` (bool, (k, H, W)), ``"labels"``
    (int64, (k,): 1 circle, 2 square, 3 triangle) and ``"boxes"`` (float32,
    (k, 4), ``(x1, y1, x2, y2)`` in pixel edges, COCO's convention)
:Classes: 3; ``target_names[label]`` names a label, 0 is the background

The Mask R-CNN reproduction (He et al., 2017) runs the paper's Table 2
ablations on these images, offline on a CPU.
"""


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "image_size": [Interval(Integral, 1, None, closed="left")],
        "max_instances": [Interval(Integral, 1, None, closed="left")],
        "min_area": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_shapes(
    n_samples=100,
    *,
    image_size=64,
    max_instances=4,
    min_area=20,
    random_state=None,
    return_X_y=True,
):
    """Make images of overlapping circles, squares and triangles with masks.

    A toy instance-segmentation data set. Each image has a random dark
    background with per-pixel noise and 1 to ``max_instances`` shapes
    painted on it in order, each in a random colour with at least one
    bright channel (so that every shape stands out from the background).
    A later shape covers the earlier ones: the masks are what is visible,
    and no pixel belongs to two masks. A shape whose visible area falls
    below ``min_area`` pixels (including one fully covered) is dropped and
    not drawn at all, so every coloured pixel belongs to exactly one
    instance.

    Shape sizes ``s`` are uniform in ``[image_size / 10, image_size / 4]``:
    circles of radius ``s``, axis-aligned squares of half-side ``s``, and
    equilateral triangles of circumradius ``1.5 s`` at a random rotation.
    Every shape lies fully inside the image, and even the smallest shape
    covers ``min_area`` pixels (the lower size bound is raised when needed),
    so the topmost shape always survives: **no image is empty**.

    Parameters
    ----------
    n_samples : int, default=100
        Number of images.
    image_size : int, default=64
        Height and width of the square images. Must leave room for shapes of
        ``min_area`` pixels (at least 15 for the default ``min_area``).
    max_instances : int, default=4
        Most shapes drawn on one image; the number drawn is uniform in
        ``1..max_instances``, fewer may remain after occlusion.
    min_area : int, default=20
        Fewest visible pixels an instance keeps.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives the same images and targets.
    return_X_y : bool, default=True
        Return ``(X, y)``; ``False`` returns a :class:`~sklearn.utils.Bunch`
        with ``X``, ``y``, ``target_names`` (``target_names[label]`` names a
        label, ``"background"`` for 0), ``parameters`` (the arguments given)
        and ``DESCR``.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size, 3), uint8
        RGB images.
    y : list of dict
        One dict per image, its instances in drawing order (bottom first):

        - ``"masks"``: bool ndarray of shape ``(k, image_size, image_size)``,
          the visible pixels, pairwise disjoint;
        - ``"labels"``: int64 ndarray of shape ``(k,)``, 1 for a circle,
          2 for a square, 3 for a triangle (``SHAPE_NAMES`` maps them to
          names); 0 is left for the background;
        - ``"boxes"``: float32 ndarray of shape ``(k, 4)``, the tight box
          ``(x1, y1, x2, y2)`` of each visible mask in pixel-edge
          coordinates: ``x1`` is the first column, ``x2`` the last column
          plus one, likewise rows for ``y``, so ``x2 - x1`` is the width in
          pixels (COCO's convention).

    Examples
    --------
    >>> from skpapers.datasets import make_shapes
    >>> X, y = make_shapes(10, image_size=32, random_state=0)
    >>> X.shape, X.dtype
    ((10, 32, 32, 3), dtype('uint8'))
    >>> sorted(y[0])
    ['boxes', 'labels', 'masks']
    >>> k = len(y[0]["labels"])
    >>> y[0]["masks"].shape == (k, 32, 32)
    True
    >>> bool(y[0]["masks"].sum(axis=0).max() <= 1)  # no pixel in two masks
    True
    """
    # numpy integers and bools are ints to validate_params, not to randint
    n_samples, image_size, max_instances, min_area = (
        int(value) for value in (n_samples, image_size, max_instances, min_area)
    )
    # a whole triangle of size s covers at least 2.92 (s - 0.94)**2 pixels:
    # the triangle shrunk by half a pixel diagonal lies in its pixels' squares
    inradius_per_size = _TRIANGLE_CIRCUMRADIUS / 2
    smallest = _HALF_PIXEL_DIAGONAL / inradius_per_size + np.sqrt(
        min_area / _TRIANGLE_AREA
    )
    low, high = max(image_size / 10, smallest), image_size / 4
    if low > high:
        raise ValueError(
            f"make_shapes: image_size={image_size} is too small for "
            f"min_area={min_area}: "
            f"shapes up to image_size / 4 = {high:.3g} pixels must reach "
            f"{smallest:.3g} to be sure to cover min_area pixels; use an "
            f"image_size of at least {int(np.ceil(4 * smallest))} or a smaller "
            "min_area."
        )
    rng = check_random_state(random_state)
    shape = (n_samples, max_instances)
    n_drawn = rng.randint(1, max_instances + 1, size=n_samples)
    kinds = rng.randint(1, len(_DRAW) + 1, size=shape)
    sizes = rng.uniform(low, high, size=shape).astype(np.float32)
    angles = rng.uniform(0, 2 * np.pi, size=shape).astype(np.float32)
    extents = sizes * _EXTENT[kinds]
    centres = extents[..., None] + rng.uniform(size=(*shape, 2)).astype(np.float32) * (
        image_size - 2 * extents[..., None]
    )
    # palettes: the background, then the shapes' colours, each with one
    # bright channel
    palettes = np.empty((n_samples, max_instances + 1, 3), dtype=np.int16)
    palettes[:, 0] = rng.randint(0, _BACKGROUND_MAX + 1, size=(n_samples, 3))
    palettes[:, 1:] = rng.randint(0, 256, size=(*shape, 3))
    bright = rng.randint(3, size=shape)
    palettes[np.arange(n_samples)[:, None], np.arange(1, max_instances + 1), bright] = (
        rng.randint(_SHAPE_BRIGHT_MIN, 256, size=shape)
    )

    X = np.empty((n_samples, image_size, image_size, 3), dtype=np.uint8)
    y = []
    chunk = max(1, _CHUNK_PIXELS // (max_instances * image_size**2))
    for start in range(0, n_samples, chunk):
        part = slice(start, min(start + chunk, n_samples))
        visible, kept, owner = _draw_chunk(
            centres[part],
            sizes[part],
            angles[part],
            kinds[part],
            n_drawn[part],
            image_size=image_size,
            min_area=min_area,
        )
        images = palettes[part][np.arange(len(owner))[:, None, None], owner]
        images += rng.randint(-_NOISE, _NOISE + 1, size=images.shape, dtype=np.int16)
        X[part] = np.clip(images, 0, 255)
        for i, slots in enumerate(kept):
            masks = visible[i, slots]
            y.append(
                {
                    "masks": masks,
                    "labels": kinds[start + i, slots].astype(np.int64),
                    "boxes": _masks_to_boxes(masks),
                }
            )
    if return_X_y:
        return X, y
    return Bunch(
        X=X,
        y=y,
        target_names=np.array(["background", *SHAPE_NAMES.values()]),
        parameters={
            "n_samples": n_samples,
            "image_size": image_size,
            "max_instances": max_instances,
            "min_area": min_area,
            "random_state": random_state,
        },
        DESCR=_DESCR,
    )
