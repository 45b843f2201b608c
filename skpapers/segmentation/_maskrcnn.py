"""MaskRCNNSegmenter: Mask R-CNN instance segmentation as an estimator."""

import inspect
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import Callback
from torch.utils.data import Dataset
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from skpapers.metrics import mask_average_precision
from skpapers.segmentation._model import MASK_LOSSES, ROI_OPS, build_maskrcnn
from skpapers.utils import restore_on_error
from skpapers.utils._base import SkorchEstimatorMixin, TrainingNetMixin
from skpapers.utils._errors import names_estimator
from skpapers.utils._persistence import (
    loadable_device,
    net_state,
    restore_net,
    rng_untouched,
)
from skpapers.utils._torch import check_optimizer, seeded, use_worker_threads
from skpapers.utils._validation import (
    _check_boxes,
    _check_boxes_frame_masks,
    _check_class_labels,
    _check_instance_targets,
    _check_resizable,
    _masks_to_boxes,
)

# Detections kept for scoring: the AP of COCO counts low-scored ones too.
_SCORING_THRESHOLD = 0.05
# Settings of the optimizers that lr=None tunes; others take their own defaults.
_OPTIMIZER_SETTINGS = {
    torch.optim.AdamW: {"lr": 0.002},
    torch.optim.SGD: {"lr": 0.04, "momentum": 0.9},
}


class MaskRCNNSegmenter(SkorchEstimatorMixin, BaseEstimator):
    """Instance segmentation by Mask R-CNN, on torchvision's detection framework.

    Faster R-CNN with a mask branch (He et al., 2017): a backbone with a
    feature pyramid, a region proposal network, and box and mask heads fed by
    an RoI operation. The paper's ablation axes are parameters, so that
    ``GridSearchCV(MaskRCNNSegmenter(), {"roi_op": ["align", "pool"]})`` is
    its Table 2c.

    Parameters
    ----------
    backbone : {"small", "resnet50_fpn"}, default="small"
        ``"small"``: a four-stage batch-normalised CNN with an FPN that trains
        on a CPU in minutes. ``"resnet50_fpn"``: torchvision's ResNet-50 FPN
        (batch norm trained, not frozen, unless ``weights`` are given).

    weights : str, path or None, default=None
        A local file holding a state dict, loaded with
        ``torch.load(weights_only=True)``: the whole model's (keys starting
        ``"backbone."``) or a ResNet-50 classifier's for the backbone.
        Nothing is downloaded.

    roi_op : {"align", "pool", "warp"}, default="align"
        RoI operation of the box and mask heads: RoIAlign (bilinear, no
        quantisation), RoIPool (quantised, max pooled) or RoIWarp (quantised
        boxes, bilinear sampling).

    mask_loss : {"sigmoid", "softmax"}, default="sigmoid"
        Per-class binary masks, or masks coupled by a softmax over classes.

    class_agnostic : bool, default=False
        One mask per box whatever its class.

    mask_dilation : int, default=2
        Dilation of the mask head's four 3 x 3 convolutions. The paper's are
        not dilated (``1``); each cell of the 14 x 14 RoI then sees 9 x 9
        cells. Dilated by 2 it sees 17 x 17, the whole RoI from its middle,
        with as many multiply-adds: on ``make_shapes`` (1000 training
        images, 12 epochs, AdamW at lr 0.001) held-out mask AP50 0.863
        against 0.849 undilated, for 6% more training time.

    augment : {"hflip", "dihedral"} or None, default=None
        Training images flipped at random: left-right half of the time
        (Detectron's standard augmentation), or by any of the eight flips and
        quarter turns of the square (for images with no up and down, such as
        aerial views, micrographs and :func:`~skpapers.datasets.make_shapes`),
        or not at all. On ``make_shapes`` (1000 training images, 12 epochs,
        AdamW at lr 0.001) the held-out mask AP50 was 0.863 without, 0.880
        with ``"hflip"`` and 0.883 with ``"dihedral"``. The default leaves
        the images as they are: whether an image may be flipped or turned
        depends on what it shows.

    image_size : int, default=64
        Side the images are resized to for the network; predictions come back
        at each image's own size.

    max_epochs : int, default=20
        Passes over the training images.

    batch_size : int, default=8
        Images per step.

    optimizer : {"adamw", "sgd", "adam"} or torch optimizer class, default="adamw"
        ``"adamw"``: AdamW (Loshchilov and Hutter, 2019). ``"sgd"``: SGD with
        momentum 0.9, the paper's. ``"adam"``, or any
        ``torch.optim.Optimizer`` subclass, with its own defaults but for
        ``lr`` and ``weight_decay``. Trained from scratch for a few minutes,
        AdamW learns the masks faster: on ``make_shapes`` (1000 images, 12
        epochs, undilated mask head) held-out mask AP50 0.849 at lr 0.001
        against SGD's 0.822 at lr 0.04.

    lr : float or None, default=None
        Learning rate, warmed up linearly over the first 50 steps and halved
        at 60% and 85% of training. ``None`` takes 0.002 for AdamW and 0.04
        for SGD, and any other optimizer's own default.

    weight_decay : float, default=1e-4
        L2 penalty of SGD, or AdamW's decoupled weight decay. AdamW scales
        its decay by the learning rate, so that 1e-4 barely decays there
        (torch's own default for AdamW is 0.01); the defaults were tuned
        with it.

    score_threshold : float, default=0.5
        Least score of a detection :meth:`predict` returns. :meth:`score`
        uses every detection above 0.05, as COCO's AP expects.

    mask_threshold : float, default=0.5
        Probability above which a pixel belongs to a predicted mask.

    callbacks : list of skorch callbacks or None, default=None
        Extra :mod:`skorch.callbacks` (or ``(name, callback)`` pairs) for
        the net that trains the model, such as
        :class:`~skorch.callbacks.Checkpoint`,
        :class:`~skorch.callbacks.LoadInitState`,
        :class:`~skorch.callbacks.EarlyStopping` (on ``"train_loss"``) or
        :class:`~skorch.callbacks.LRScheduler` (with
        ``callbacks__lr_schedule=None``, which turns the warm-up and halving
        schedule off). Each fit works on a copy.

    warm_start : bool, default=False
        A fit of a fitted segmenter trains ``max_epochs`` more epochs from
        its weights and optimizer state (its labels among the first fit's
        classes) rather than starting anew. It trains with the parameters as
        they are now, as ``partial_fit`` does: ``lr``, ``weight_decay`` and
        ``optimizer__*`` are written into the optimizer, keeping its state
        (another ``optimizer`` starts a new one over the same weights);
        ``batch_size``, ``augment``, ``callbacks``, ``verbose`` and the
        other routed parameters apply too. ``backbone``, ``weights`` (the
        start of a new model), ``roi_op``, ``mask_loss``, ``class_agnostic``,
        ``mask_dilation`` and ``image_size`` shape the network, and a change
        to them is refused with a ``ValueError``.

    device : str, default="cpu"
        Torch device.

    random_state : int, RandomState instance or None, default=None
        Seeds the weights and the order of the images; an int gives the same
        model on every fit on the CPU.

    verbose : int, default=0
        ``1`` prints a line per epoch with the loss and its terms (skorch's
        log); ``2`` adds a progress bar within each epoch.

    **kwargs : dict
        skorch's routed parameters, passed to the parts of the net:
        ``optimizer__*`` (e.g. ``optimizer__betas=(0.9, 0.99)``; they
        override the optimizer's settings above), ``iterator_train__*``
        (e.g. ``iterator_train__num_workers=2``) and
        ``callbacks__<name>__*`` (e.g.
        ``callbacks__lr_schedule__warmup=100``). They are parameters like
        the others; a name the net does not have is refused by ``fit``.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, as given in ``y``.

    model_ : torchvision.models.detection.MaskRCNN
        The fitted network.

    history_ : skorch.History
        Per epoch ``train_loss`` (the sum of the loss terms) and the mean of
        each term (``loss_classifier``, ``loss_box_reg``, ``loss_mask``,
        ``loss_objectness``, ``loss_rpn_box_reg``); per batch the same.

    n_iter_ : int
        Complete epochs trained, over all fits of a warm start.

    net_ : MaskRCNNNet
        The skorch net that trains :attr:`model_` (its ``module_``).

    References
    ----------
    He, K., Gkioxari, G., Dollar, P. and Girshick, R. (2017). Mask R-CNN.
    ICCV.
    """

    _parameter_constraints: dict = {
        **SkorchEstimatorMixin._parameter_constraints,
        "backbone": [StrOptions({"small", "resnet50_fpn"})],
        "weights": [str, Path, None],
        "roi_op": [StrOptions(set(ROI_OPS))],
        "mask_loss": [StrOptions(set(MASK_LOSSES))],
        "class_agnostic": ["boolean"],
        "mask_dilation": [Interval(Integral, 1, None, closed="left")],
        "augment": [StrOptions({"hflip", "dihedral"}), None],
        "image_size": [Interval(Integral, 16, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "score_threshold": [Interval(Real, 0, 1, closed="both")],
        "mask_threshold": [Interval(Real, 0, 1, closed="neither")],
    }
    _architecture_params = (
        "backbone",
        "weights",
        "roi_op",
        "mask_loss",
        "class_agnostic",
        "mask_dilation",
        "image_size",
    )

    def __init__(
        self,
        *,
        backbone="small",
        weights=None,
        roi_op="align",
        mask_loss="sigmoid",
        class_agnostic=False,
        mask_dilation=2,
        augment=None,
        image_size=64,
        max_epochs=20,
        batch_size=8,
        optimizer="adamw",
        lr=None,
        weight_decay=1e-4,
        score_threshold=0.5,
        mask_threshold=0.5,
        callbacks=None,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.backbone = backbone
        self.weights = weights
        self.roi_op = roi_op
        self.mask_loss = mask_loss
        self.class_agnostic = class_agnostic
        self.mask_dilation = mask_dilation
        self.augment = augment
        self.image_size = image_size
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self._set_routed_params(kwargs)

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on images ``X`` and their instances ``y``.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or (n, H, W), or list of such images
            RGB or grayscale images, uint8 or float in [0, 1]; sizes may differ,
            but no side may be more than ``image_size`` times the other (it
            would keep no pixel when resized).
        y : list of dict
            One per image: ``"masks"`` (bool ``(k, H, W)``), ``"labels"``
            (``(k,)``, any hashable class names, all of one type, no NaN) and
            optionally ``"boxes"`` (``(k, 4)``, x1 y1 x2 y2, each holding
            pixels of its mask; derived from the masks when absent). An image
            with no instance (``k = 0``) is background only.

        Returns
        -------
        self : MaskRCNNSegmenter
            The fitted segmenter.
        """
        with restore_on_error(self):
            optimizer, device, seed = self._start_fit()
            warm = self.warm_start and hasattr(self, "net_")
            if warm:
                self._check_architecture("a warm start")
            images, targets, classes = self._check_data(X, y)
            if warm:
                _check_known_classes(classes, self.classes_)
                classes = self.classes_
                net = self._continued_net(optimizer)
            else:
                net = self._new_net(classes, optimizer, device, seed)
            self._train(net, images, targets, classes, device, self.max_epochs)
            # past _fit_context and names_estimator: the caller's line
            self._warn_if_not_converged(net, stacklevel=4)
        return self

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """Train one epoch on ``X``, ``y``, starting from the current weights.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or (n, H, W), or list of such images
            Images, as in :meth:`fit`.
        y : list of dict
            Their instances, as in :meth:`fit`.
        classes : array-like or None, default=None
            Every class label there will be, on the first call (which starts
            from new random weights); ``None`` takes those of ``y``. Later
            calls train on labels among them.

        Returns
        -------
        self : MaskRCNNSegmenter
            The updated segmenter.
        """
        with restore_on_error(self):
            optimizer, device, seed = self._start_fit()
            first = not hasattr(self, "net_")
            if not first:
                self._check_architecture("partial_fit")
            images, targets, found = self._check_data(X, y)
            if first:
                known = found if classes is None else _unique_classes(classes)
            else:
                known = self.classes_
            _check_known_classes(found, known)
            if first:
                net = self._new_net(known, optimizer, device, seed)
            else:
                net = self._continued_net(optimizer)
            self._train(net, images, targets, known, device, 1)
        return self

    def _check_data(self, X, y):
        """Checked images, targets and the classes of their labels."""
        images = _check_images(X)
        _check_resizable(images, self.image_size)
        targets = _check_targets(y, images)
        classes = _check_class_labels(targets)
        if len(classes) == 0:
            raise ValueError(
                "y holds no instance at all: at least one labelled mask is "
                "needed to learn from."
            )
        return images, targets, classes

    def _new_net(self, classes, optimizer, device, seed):
        """A new net for ``classes``, its weights drawn from ``seed``."""
        architecture = self._architecture_for(len(classes))
        self._record_architecture()
        with seeded(seed, device):
            model = _build_model(**architecture)
            if self.weights is not None:
                _load_weights(model, self.weights)
        return self._build_net(model, architecture, optimizer, device, seed)

    def _continued_net(self, optimizer):
        """``net_`` given the training settings of the parameters as they are
        now, for a warm start or a later ``partial_fit``."""
        net = self.net_
        fresh = self._build_net(
            net.module_, net.architecture, optimizer, net.device, net.seed
        )
        self._update_net(net, fresh)
        return net

    def _build_net(self, model, architecture, optimizer, device, seed):
        """The skorch net training ``model``, not yet initialised."""
        optimizer, settings = _optimizer_settings(optimizer, self.lr)
        params = dict(
            criterion=torch.nn.Identity,  # the module computes its own losses
            optimizer=optimizer,
            lr=settings.pop("lr"),
            **{f"optimizer__{name}": value for name, value in settings.items()},
            optimizer__weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            iterator_train__collate_fn=_collate,
            iterator_valid__collate_fn=_collate,
            train_split=None,
            callbacks=[
                *self._user_callbacks(),
                ("lr_schedule", WarmupSchedule()),
                *self._verbosity_callbacks(),
            ],
            device=device,
            verbose=int(self.verbose > 0),
            seed=seed,
            augment=self.augment,
            architecture=architecture,
        )
        params.update(self._net_params(validation=False))  # routed ones win
        return MaskRCNNNet(model, **params)

    def _train(self, net, images, targets, classes, device, epochs):
        """Train ``net`` (initialised here if new) ``epochs`` more epochs."""
        index = {label: i + 1 for i, label in enumerate(classes.tolist())}
        data = InstanceDataset(
            [_image_tensor(image) for image in images],
            [_target_tensors(target, index) for target in targets],
        )
        with seeded(net.seed, device):
            if not net.initialized_:
                self._check_routed_params(net)
                net.initialize()
            net.fit_epochs_ = epochs
            net.partial_fit(data, None, epochs=epochs)
        self.classes_ = classes
        self._set_history(net)
        self.model_ = net.module_.eval()

    def _architecture_for(self, n_classes):
        """The arguments of :func:`_build_model` that the parameters give."""
        return {
            "backbone": self.backbone,
            "roi_op": self.roi_op,
            "mask_loss": self.mask_loss,
            "class_agnostic": self.class_agnostic,
            "mask_dilation": self.mask_dilation,
            "image_size": self.image_size,
            "n_classes": n_classes,
        }

    @names_estimator
    def predict(self, X):
        """Instances found in each image.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or (n, H, W), or list of such images
            Images, as in :meth:`fit`.

        Returns
        -------
        list of dict
            One per image: ``"masks"`` (bool ``(k, H, W)`` at the image's
            size), ``"labels"`` (from :attr:`classes_`), ``"scores"``
            (float32, descending) and ``"boxes"`` (float32 ``(k, 4)``), for
            the detections scored at least ``score_threshold``.
        """
        return self._predict(X, self.score_threshold)

    def _predict(self, X, threshold):
        use_worker_threads()
        check_is_fitted(self)
        images = _check_images(X)
        _check_resizable(images, self.model_.transform.max_size)  # as fitted
        device = next(self.model_.parameters()).device
        self.model_.eval()
        predictions = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = [
                    _image_tensor(image).to(device)
                    for image in images[start : start + self.batch_size]
                ]
                for image, output in zip(batch, self.model_(batch), strict=True):
                    keep = output["scores"] >= threshold
                    # scaled back from the network's size, float32 rounding can
                    # put an edge a hair past the image's: clip again
                    height, width = image.shape[-2:]
                    output["boxes"][:, 0::2].clamp_(0, width)
                    output["boxes"][:, 1::2].clamp_(0, height)
                    predictions.append(
                        {
                            "masks": (output["masks"][keep, 0] > self.mask_threshold)
                            .cpu()
                            .numpy(),
                            "labels": self.classes_[
                                output["labels"][keep].cpu().numpy() - 1
                            ],
                            "scores": output["scores"][keep].cpu().numpy(),
                            "boxes": output["boxes"][keep].cpu().numpy(),
                        }
                    )
        return predictions

    @names_estimator
    def score(self, X, y):
        """COCO mask AP@[.5:.95] of the predictions on ``X`` against ``y``.

        Parameters
        ----------
        X : array or list of images
            Images, as in :meth:`fit`.
        y : list of dict
            Their instances, as in :meth:`fit`.

        Returns
        -------
        float
            Mask average precision, computed with pycocotools over every
            detection scored at least 0.05.
        """
        _check_class_labels(_check_instance_targets(y))  # no NaN nor mixed types
        return mask_average_precision(y, self._predict(X, _SCORING_THRESHOLD))

    _derived_attributes = ("model_", "history_")

    def _network_arrays(self):
        return {**net_state(self.net_), "architecture": self.net_.architecture}

    def _restore_network(self, saved):
        device = str(loadable_device(self))
        architecture = saved["architecture"]
        with rng_untouched():  # the fresh weights are overwritten at once
            model = _build_model(**architecture)
        optimizer = check_optimizer(saved["optimizer_class"])
        seed = saved["params"].get("seed", 0)
        net = self._build_net(model, architecture, optimizer, device, seed)
        self._set_history(restore_net(net, saved))
        self.model_ = self.net_.module_.eval()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        tags.target_tags.one_d_labels = False
        return tags


def _build_model(
    *, backbone, roi_op, mask_loss, class_agnostic, mask_dilation, image_size, n_classes
):
    """The network for ``n_classes`` classes (background not counted)."""
    if backbone == "resnet50_fpn":
        backbone = resnet_fpn_backbone(
            backbone_name="resnet50",
            weights=None,
            norm_layer=torch.nn.BatchNorm2d,
            trainable_layers=5,
        )
    return build_maskrcnn(
        n_classes + 1,
        backbone=backbone,
        roi_op=roi_op,
        mask_loss=mask_loss,
        class_agnostic=class_agnostic,
        mask_dilation=mask_dilation,
        image_size=image_size,
        score_threshold=_SCORING_THRESHOLD,
    )


def _optimizer_settings(optimizer, lr):
    """The optimizer class ``optimizer`` names and its settings: those of
    ``_OPTIMIZER_SETTINGS`` or its own defaults, with ``lr`` unless None."""
    optimizer = check_optimizer(optimizer)
    settings = dict(_OPTIMIZER_SETTINGS.get(optimizer, {}))
    if lr is not None:
        settings["lr"] = lr
    if "lr" not in settings:
        default = inspect.signature(optimizer).parameters.get("lr")
        has_default = default is not None and default.default is not default.empty
        settings["lr"] = float(default.default) if has_default else 1e-3
    return optimizer, settings


def _make_optimizer(parameters, optimizer, lr, weight_decay):
    """The optimizer ``optimizer`` names, with the settings of ``_OPTIMIZER_SETTINGS``.

    ``lr=None`` keeps the learning rate those settings (or the optimizer's own
    defaults) give.
    """
    optimizer, settings = _optimizer_settings(optimizer, lr)
    return optimizer(parameters, weight_decay=weight_decay, **settings)


class WarmupSchedule(Callback):
    """The learning rate of each training step: ``lr`` warmed up linearly over
    the first ``warmup`` steps, then halved at 60% and 85% of the steps.

    The steps count from the net's first epoch: a fit that resumes from a
    checkpoint (its history loaded) goes on where the schedule stood, and
    the total is the steps before this fit plus this fit's. Named
    ``"lr_schedule"`` in the net; ``callbacks__lr_schedule=None`` turns it
    off (for a :class:`skorch.callbacks.LRScheduler` of one's own).
    """

    def __init__(self, warmup=50):
        self.warmup = warmup

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        done = [row.get("train_batch_count", 0) for row in net.history]
        self.step_ = int(sum(done))
        per_epoch = -(-len(X) // net.batch_size)
        self.total_ = self.step_ + per_epoch * getattr(net, "fit_epochs_", 1)

    def factor(self, step, total):
        """The share of ``lr`` at ``step`` (from 0) of ``total`` steps."""
        halvings = (step >= 0.6 * total) + (step >= 0.85 * total)
        return 0.5**halvings * min(1.0, (step + 1) / self.warmup)

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            factor = self.factor(self.step_, self.total_)
            for group in net.optimizer_.param_groups:
                group["lr"] = net.lr * factor

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.step_ += 1


class InstanceDataset(Dataset):
    """Images (``Tensor[3, H, W]``) and their targets (dicts of tensors)."""

    def __init__(self, images, targets):
        self.images, self.targets = images, targets

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.targets[i]


def _collate(pairs):
    """A batch of images of any sizes: a list of images and one of targets."""
    return [image for image, _ in pairs], [target for _, target in pairs]


class MaskRCNNNet(TrainingNetMixin, NeuralNet):
    """A skorch net training torchvision's Mask R-CNN.

    In training the module takes images and targets and returns its loss
    terms; :meth:`batch_loss` sums them (each is also recorded per batch, and
    per epoch as the mean over the images) for the shared
    :func:`~skpapers.utils._base.training_step`. Training images are flipped as
    ``augment`` says. ``architecture`` (the arguments of the network's
    builder) is kept so that a saved model is rebuilt the same.
    """

    def __init__(self, *args, seed=0, augment=None, architecture=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed, self.augment, self.architecture = seed, augment, architecture

    def batch_loss(self, batch, **fit_params):
        pairs = [
            _augmented(image, target, self.augment)
            for image, target in zip(*batch, strict=True)
        ]
        losses = self.module_(
            [image.to(self.device) for image, _ in pairs],
            [{k: v.to(self.device) for k, v in t.items()} for _, t in pairs],
        )
        for name, value in losses.items():
            self.history.record_batch(name, value.item())
        return sum(losses.values()), None

    def on_epoch_end(self, net, **kwargs):
        batches = [b for b in self.history[-1]["batches"] if "train_batch_size" in b]
        sizes = np.array([b["train_batch_size"] for b in batches], dtype=float)
        names = [k for k in batches[0] if k.startswith("loss_")] if batches else []
        for name in names:
            values = np.array([b[name] for b in batches])
            self.history.record(name, float(values @ sizes / sizes.sum()))
        super().on_epoch_end(net, **kwargs)


def _unique_classes(classes):
    """The sorted distinct labels of ``classes``."""
    return np.asarray(sorted(set(np.asarray(classes).tolist())))


def _check_known_classes(found, known):
    """Refuse labels ``found`` in ``y`` that are not among ``known``."""
    allowed = set(known.tolist())
    unknown = [label for label in found.tolist() if label not in allowed]
    if unknown:
        raise ValueError(
            f"y holds labels {unknown} that are not among the classes "
            f"{known.tolist()} of the model it trains on."
        )


def _check_images(X):
    """A list of (H, W, 3) float32 arrays in [0, 1], or a clear error."""
    if isinstance(X, np.ndarray):
        if X.ndim not in (3, 4):
            raise ValueError(
                "X must be images: an array of shape (n, height, width, 3) or "
                f"(n, height, width), or a list of images; got shape {X.shape}."
            )
        images = list(X)
    elif isinstance(X, (list, tuple)):
        images = [np.asarray(image) for image in X]
    else:
        raise TypeError(
            f"X must be an array of images or a list of images; got {type(X).__name__}."
        )
    if not images:
        raise ValueError("X holds no images: at least one is needed.")
    checked = []
    for i, image in enumerate(images):
        if image.dtype.kind not in "biuf":
            raise TypeError(
                f"X[{i}] has dtype {image.dtype}; images must be uint8 or float in "
                "[0, 1]."
            )
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"X[{i}] must have shape (height, width, 3) or (height, width); "
                f"got {image.shape}."
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"X[{i}] is empty: shape {image.shape}.")
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / 255
        elif np.issubdtype(image.dtype, np.floating):
            if not np.isfinite(image).all():
                raise ValueError(f"X[{i}] holds NaN or infinity.")
            if image.min() < 0 or image.max() > 1:
                raise ValueError(
                    f"X[{i}] is float with values in [{image.min():.3g}, "
                    f"{image.max():.3g}]; float images must lie in [0, 1] "
                    "(or pass uint8)."
                )
            image = image.astype(np.float32)
        else:
            raise TypeError(
                f"X[{i}] has dtype {image.dtype}; images must be uint8 or float in "
                "[0, 1]."
            )
        checked.append(image)
    return checked


def _check_targets(y, images):
    """Validate ``y`` against the images; add boxes where missing."""
    if not isinstance(y, (list, tuple)):
        raise TypeError(
            f"y must be a list of dicts, one per image; got {type(y).__name__}."
        )
    if len(y) != len(images):
        raise ValueError(f"X holds {len(images)} images but y {len(y)} targets.")
    targets = _check_instance_targets(y)
    for i, (target, given, image) in enumerate(zip(targets, y, images, strict=True)):
        masks = target["masks"]
        if masks.shape[1:] != image.shape[:2]:
            raise ValueError(
                f"y[{i}]['masks'] has size {masks.shape[1:]} but image X[{i}] is "
                f"{image.shape[:2]}: each mask must match its image."
            )
        empty = np.flatnonzero(~masks.any(axis=(1, 2)))
        if empty.size:
            raise ValueError(
                f"y[{i}]['masks'][{int(empty[0])}] is empty: every instance needs "
                "at least one pixel."
            )
        boxes = given.get("boxes")
        if boxes is None:
            boxes = _masks_to_boxes(masks)
        boxes = _check_boxes(boxes, len(masks), f"y[{i}]['boxes']")
        bad = np.flatnonzero(
            ~np.isfinite(boxes).all(axis=1)
            | (boxes[:, 2] <= boxes[:, 0])
            | (boxes[:, 3] <= boxes[:, 1])
        )
        if bad.size:
            raise ValueError(
                f"y[{i}]['boxes'][{int(bad[0])}] = {boxes[bad[0]].tolist()} is "
                "degenerate: boxes are x1, y1, x2, y2 with x2 > x1 and y2 > y1."
            )
        _check_boxes_frame_masks(boxes, masks, f"y[{i}]['boxes']")
        target["boxes"] = boxes
    return targets


def _augmented(image, target, augment):
    """``image`` (``Tensor[3, H, W]``) and its ``target`` flipped at random.

    ``"hflip"``: a left-right flip half of the time. ``"dihedral"``: one of the
    eight flips and quarter turns of the square, each as likely.
    """
    if augment is None:
        return image, target
    boxes, masks = target["boxes"], target["masks"]
    if augment == "dihedral" and torch.rand(()) < 0.5:  # swap rows and columns
        image, masks = image.transpose(1, 2), masks.transpose(1, 2)
        boxes = boxes[:, [1, 0, 3, 2]]
    flips = [-1] if augment == "hflip" else [-1, -2]
    for axis in flips:
        if torch.rand(()) < 0.5:
            image, masks = image.flip(axis), masks.flip(axis)
            side = image.shape[axis]
            columns = [0, 2] if axis == -1 else [1, 3]
            boxes = boxes.clone()
            boxes[:, columns] = side - boxes[:, columns[::-1]]
    return image, {**target, "boxes": boxes, "masks": masks}


def _image_tensor(image):
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _target_tensors(target, index):
    return {
        "boxes": torch.from_numpy(target["boxes"]),
        "labels": torch.tensor(
            [index[label] for label in target["labels"].tolist()], dtype=torch.int64
        ).reshape(-1),
        "masks": torch.from_numpy(target["masks"].astype(np.uint8)),
    }


def _load_weights(model, path):
    """Load a local state dict into the whole model or its ResNet body."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights={str(path)!r} is not a file.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise ValueError(f"weights={str(path)!r} does not hold a state dict.")
    if any(key.startswith("backbone.") for key in state):
        model.load_state_dict(state)
        return
    body = getattr(model.backbone, "body", None)
    if body is None:
        raise ValueError(
            "a backbone-only state dict needs backbone='resnet50_fpn'; for the "
            "small backbone give a whole model's state dict."
        )
    missing, unexpected = body.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False
    )
    if missing or unexpected:
        raise ValueError(
            f"weights={str(path)!r} does not fit the ResNet-50 backbone: "
            f"{len(missing)} missing and {len(unexpected)} unexpected keys, e.g. "
            f"{(missing or unexpected)[:3]}."
        )
