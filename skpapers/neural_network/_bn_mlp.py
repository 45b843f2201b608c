"""BatchNormMLPClassifier: a batch-normalised MLP as a scikit-learn classifier."""

import itertools
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping
from skorch.dataset import Dataset, ValidSplit
from skorch.utils import to_tensor
from torch.utils.data import DataLoader, Sampler, Subset

from skpapers.neural_network._modules import ACTIVATIONS, BatchNormMLP, fold_batchnorm
from skpapers.utils import restore_on_error
from skpapers.utils._base import SkorchEstimatorMixin, TrainingNetMixin
from skpapers.utils._errors import names_estimator
from skpapers.utils._persistence import (
    loadable_device,
    net_state,
    restore_net,
    to_numpy,
    to_torch,
)
from skpapers.utils._torch import check_optimizer, seeded, use_worker_threads

# Rows per forward pass at inference: bounds memory, not results.
_PREDICT_CHUNK = 8192


class BatchNormMLPClassifier(SkorchEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with batch normalization.

    Each hidden layer is ``linear -> batch norm -> nonlinearity`` (Ioffe &
    Szegedy, 2015): the input of every nonlinearity is normalised over the
    mini-batch and then scaled and shifted by a learned ``gamma`` and
    ``beta``. Trained by a :class:`skorch.NeuralNetClassifier` on the
    cross-entropy loss; predictions use the running statistics, folded into
    the linear layers (see :func:`fold_batchnorm`).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100, 100, 100)
        Units of each hidden layer. ``()`` has none: a linear model
        (multinomial logistic regression), as in scikit-learn's
        ``MLPClassifier``.

    activation : {"relu", "sigmoid", "tanh"}, default="relu"
        Nonlinearity of the hidden layers.

    batch_norm : bool, default=True
        Batch-normalise the input of each nonlinearity. With ``False`` this
        is a plain MLP, the paper's baseline; its linear layers then have a
        bias.

    dropout : float, default=0.0
        Probability of dropping each hidden unit during training. Part of the
        network as built (without dropout it has no dropout layer), so a warm
        start cannot change it.

    optimizer : {"sgd", "adam", "adamw"} or torch optimizer class, default="sgd"
        ``"sgd"`` is :class:`torch.optim.SGD` with ``momentum``, the paper's
        optimiser; ``"adam"`` is :class:`torch.optim.Adam`. A class is called
        with the parameters, ``lr`` and ``weight_decay``. Adam rescales
        every gradient, so a ``class_weight`` near zero still trains once
        the other classes are fit; SGD keeps the weights' proportions.

    lr : float, default=0.01
        Learning rate.

    momentum : float, default=0.9
        Momentum of ``optimizer="sgd"``; other optimisers ignore it.

    weight_decay : float, default=0.0
        L2 penalty, applied by the optimiser.

    batch_size : int, default=200
        Samples per mini-batch; at most the number of training samples.

    max_epochs : int, default=200
        Most passes over the training data.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified)
        and stop when its accuracy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, keeping the best epoch's weights.
        Without it, training stops when the training loss has not fallen by
        ``tol`` for ``n_iter_no_change`` epochs.

    validation_fraction : float, default=0.1
        Share of the training data held out by ``early_stopping``.

    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.

    tol : float, default=1e-4
        Least improvement that counts. ``0`` trains all ``max_epochs``
        unless the loss stops falling altogether.

    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, keyed by class label;
        ``"balanced"`` weighs them inversely to their frequency.

    callbacks : list of skorch callbacks or None, default=None
        Extra :mod:`skorch.callbacks` (or ``(name, callback)`` pairs) for
        the underlying net, such as :class:`skorch.callbacks.LRScheduler`,
        :class:`~skorch.callbacks.Checkpoint` or
        :class:`~skorch.callbacks.LoadInitState`. Each fit works on a copy,
        so the objects given stay as they are.

    warm_start : bool, default=False
        A fit of a fitted classifier trains ``max_epochs`` more epochs from
        its weights and optimizer state (on the classes of the first fit)
        rather than starting anew. It trains with the parameters as they are
        now, as ``partial_fit`` does: ``lr``, ``momentum``, ``weight_decay``
        and ``optimizer__*`` are written into the optimizer, keeping its
        state (another ``optimizer`` starts a new one over the same
        weights); ``batch_size``, ``class_weight``, the stopping rule,
        ``callbacks``, ``verbose`` and the other routed parameters apply
        too. ``hidden_layer_sizes``, ``activation``, ``batch_norm`` and
        ``dropout`` shape the network, and a change to them is refused with
        a ``ValueError``.

    device : str, default="cpu"
        Torch device to train and predict on: ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``... A fitted model loads on a machine without that
        device, onto the CPU.

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, dropout and the validation split.
        An int gives the same model on every fit; torch's own global random
        state is left as it was.

    verbose : int, default=0
        ``1`` prints a line per epoch (skorch's log); ``2`` adds a progress
        bar within each epoch.

    **kwargs : dict
        skorch's routed parameters, passed to the parts of the net:
        ``optimizer__*`` (e.g. ``optimizer__nesterov=True``; they override
        ``momentum`` and ``weight_decay``), ``criterion__*`` (e.g.
        ``criterion__label_smoothing=0.1``), ``iterator_train__*``,
        ``iterator_valid__*`` and ``callbacks__<name>__*``. They are
        parameters like the others (``set_params``, ``GridSearchCV``); a
        name the net does not have is refused by ``fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the caller's type.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, if ``X`` had string column names.

    n_iter_ : int
        Complete epochs trained, over all fits of a warm start.

    history_ : skorch.History
        Per epoch: ``train_loss``, and with ``early_stopping``
        ``valid_loss`` and ``valid_acc``; per batch the losses and sizes.

    net_ : skorch.NeuralNetClassifier
        The fitted net, whose ``module_`` is the unfolded
        :class:`~skpapers.neural_network.BatchNormMLP`.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The same network without batch
        normalization.
    fold_batchnorm : Fold the batch norms of a trained module away.

    Notes
    -----
    **Batches of one sample.** A single sample has no batch variance, so it
    never reaches a batch norm in training mode. Where the last mini-batch of
    an epoch would hold one sample, that sample joins the batch before it
    (121 samples at ``batch_size=60`` train as batches of 60 and 61);
    ``batch_size`` larger than the data gives one batch of all of it. Only
    data of a single sample (a ``partial_fit`` on one row) make a batch of
    one: each batch norm then normalises it with its running statistics, as
    at inference, and leaves them unchanged, while the step still trains
    every weight, ``gamma`` and ``beta`` included.

    References
    ----------
    Ioffe, S. and Szegedy, C. (2015). Batch normalization: accelerating deep
    network training by reducing internal covariate shift. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skpapers.neural_network import BatchNormMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     BatchNormMLPClassifier(
    ...         (32,), lr=0.1, batch_size=30, max_epochs=20, random_state=0
    ...     ),
    ... )
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **SkorchEstimatorMixin._parameter_constraints,
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "batch_norm": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }
    _architecture_params = ("hidden_layer_sizes", "activation", "batch_norm", "dropout")
    _module_settings = {f"module__{name}": name for name in _architecture_params} | {
        "module__n_features": "X",
        "module__n_classes": "y",
    }

    def __init__(
        self,
        hidden_layer_sizes=(100, 100, 100),
        *,
        activation="relu",
        batch_norm=True,
        dropout=0.0,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=0.0,
        batch_size=200,
        max_epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        class_weight=None,
        callbacks=None,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self._set_routed_params(kwargs)

    # -- fitting --------------------------------------------------------------

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X``, ``y``.

        From new random weights, or with ``warm_start`` from the fitted ones
        for ``max_epochs`` more epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; cast to float32.
        y : array-like of shape (n_samples,)
            Class labels of any hashable type.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample. An integer weight repeats its row: a row
            of weight 2 trains exactly as the row given twice (in the batch
            statistics too), and weight 0 as the row left out; other weights
            scale each row's term of the loss.

        Returns
        -------
        self : BatchNormMLPClassifier
            The fitted classifier.
        """
        with restore_on_error(self):
            optimizer, device, seed = self._start_fit()
            warm = self.warm_start and hasattr(self, "net_")
            if warm:
                self._check_architecture("a warm start")
            hidden = self._check_hidden()
            X, y = self._validate_Xy(X, y, reset=not warm)
            if warm:
                classes, y_index = self.classes_, _label_index(y, self.classes_)
            else:
                classes, y_index = np.unique(y, return_inverse=True)
            _check_two_classes(classes)
            X, y_index, weight = _weighted_rows(X, y_index, sample_weight)
            X, y_index, weight = canonical_order(X, y_index, weight)
            # a net partial_fit built has no validation split (see _net_settings)
            if self.early_stopping and not (
                warm and self._net_built_with["incremental"]
            ):
                _check_validation_split(y_index, len(classes), self.validation_fraction)
            if warm:
                net = self._continued_net(optimizer, classes, y, incremental=False)
            else:
                net = self._new_net(
                    hidden, optimizer, device, seed, classes, y, incremental=False
                )
            self._train(net, X, y_index, weight, device=device, epochs=self.max_epochs)
            self._set_fitted(net, classes)
            # past _fit_context and names_estimator: the caller's line
            self._warn_if_not_converged(net, stacklevel=4)
        return self

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on ``X``, ``y``, starting from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; cast to float32.
        y : array-like of shape (n_samples,)
            Class labels, each one of ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class label there will be. Required on the first call,
            which starts from new random weights; later calls may repeat it.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample, as in :meth:`fit`.

        Returns
        -------
        self : BatchNormMLPClassifier
            The updated classifier.
        """
        with restore_on_error(self):
            optimizer, device, seed = self._start_fit()
            first = not hasattr(self, "net_")
            if not first:
                self._check_architecture("partial_fit")
            hidden = self._check_hidden()
            if first and classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: "
                    "every label there will be, e.g. classes=np.unique(y_all)."
                )
            X, y = self._validate_Xy(X, y, reset=first)
            known = unique_labels(classes) if classes is not None else self.classes_
            if not first and not np.array_equal(known, self.classes_):
                raise ValueError(
                    f"classes={known.tolist()} differs from the classes of the "
                    f"first partial_fit call, {self.classes_.tolist()}."
                )
            _check_two_classes(known)
            y_index = _label_index(y, known)
            X, y_index, weight = _weighted_rows(X, y_index, sample_weight)
            if first:
                net = self._new_net(
                    hidden, optimizer, device, seed, known, y, incremental=True
                )
            else:
                net = self._continued_net(optimizer, known, y, incremental=True)
            self._train(net, X, y_index, weight, device=device, epochs=1)
            self._set_fitted(net, known)
        return self

    def _new_net(self, hidden, optimizer, device, seed, classes, y, *, incremental):
        """A new net for ``classes``, recording the settings it was built with
        (to rebuild ``net_`` the same on load)."""
        settings = self._net_settings(incremental=incremental)
        self._net_built_with = settings
        self._record_architecture()
        return self._build_net(
            hidden=hidden,
            optimizer=optimizer,
            device=device,
            n_classes=len(classes),
            weights=self._class_weights(classes, y, incremental=incremental),
            seed=seed,
            settings=settings,
        )

    def _continued_net(self, optimizer, classes, y, *, incremental):
        """``net_`` given the training settings of the parameters as they are
        now (by ``fit`` with ``incremental=False``, or ``partial_fit``).

        The net keeps what it was built for: a net ``partial_fit`` built has
        no stopping rule nor validation split, and one ``fit`` built keeps
        them in ``partial_fit``. ``class_weight="balanced"`` weighs the
        classes of a warm ``fit``'s ``y``; ``partial_fit`` keeps the weights
        the net has, as one batch cannot weigh the classes.
        """
        net = self.net_
        settings = self._net_settings(incremental=self._net_built_with["incremental"])
        if incremental and self.class_weight == "balanced":
            weights = net.criterion__weight
        else:
            weights = self._class_weights(classes, y, incremental=incremental)
        fresh = self._build_net(
            hidden=net.module__hidden_layer_sizes,
            optimizer=optimizer,
            device=net.device,
            n_classes=len(classes),
            weights=weights,
            seed=net.seed,
            settings=settings,
        )
        self._update_net(net, fresh)
        self._net_built_with = settings
        return net

    def _train(self, net, X, y_index, weight, *, device, epochs=None):
        """Train ``net`` (initialised here if new) ``epochs`` more epochs."""
        with seeded(net.seed, device):
            if not net.initialized_:
                self._check_routed_params(net)
                net.initialize()
            net.sample_weight_ = weight
            try:
                net.partial_fit(X, y_index, epochs=epochs)
            finally:
                del net.sample_weight_

    def _check_hidden(self):
        """``hidden_layer_sizes`` as a tuple of ints, or a clear error."""
        sizes = np.asarray(self.hidden_layer_sizes)
        if sizes.ndim != 1 or not all(
            isinstance(size, Integral) and not isinstance(size, bool) and size > 0
            for size in sizes.tolist()
        ):
            raise ValueError(
                "hidden_layer_sizes must be a sequence of positive ints, e.g. "
                f"(100, 100); got {self.hidden_layer_sizes!r}."
            )
        return tuple(int(size) for size in sizes.tolist())

    def _validate_Xy(self, X, y, *, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc", "coo"],
            dtype=[np.float32, np.float64],
            reset=reset,
        )
        check_classification_targets(y)
        return _as_float32(X), y

    def _class_weights(self, classes, y, *, incremental):
        """Loss weights of the classes, in the order of ``classes``, or None."""
        if self.class_weight is None:
            return None
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' needs all of y at once and is not "
                "available with partial_fit; pass a dict, e.g. from "
                "sklearn.utils.class_weight.compute_class_weight('balanced', ...)."
            )
        unknown = (
            set(self.class_weight) - set(classes.tolist())
            if isinstance(self.class_weight, dict)
            else set()
        )
        if unknown:
            raise ValueError(
                f"class_weight has labels {sorted(map(str, unknown))} that are not "
                f"classes of y, {classes.tolist()}."
            )
        weights = compute_class_weight(self.class_weight, classes=classes, y=y)
        return torch.as_tensor(weights, dtype=torch.float32)

    def _net_settings(self, *, incremental):
        """What shapes the skorch net's training besides its plain parameters:
        kept with the fitted net, so that a loaded one is rebuilt the same."""
        return {
            "incremental": incremental,
            "early_stopping": self.early_stopping,
            "validation_fraction": self.validation_fraction,
            "n_iter_no_change": self.n_iter_no_change,
            "tol": self.tol,
            "verbose": self.verbose,
        }

    def _build_net(
        self, *, hidden, optimizer, device, n_classes, weights, seed, settings
    ):
        """The skorch net, not yet initialised, as ``settings`` shape it."""
        callbacks = self._user_callbacks()
        if settings["verbose"] > 1:
            callbacks += self._verbosity_callbacks()
        train_split = None
        if not settings["incremental"]:
            if settings["early_stopping"]:
                train_split = ValidSplit(
                    settings["validation_fraction"], stratified=True, random_state=seed
                )
            callbacks.append(("stopping", _stopping_callback(settings)))
        optimizer_params = {}
        if self.weight_decay:
            optimizer_params["optimizer__weight_decay"] = self.weight_decay
        if optimizer is torch.optim.SGD:
            optimizer_params["optimizer__momentum"] = self.momentum
        params = dict(
            module__n_features=self.n_features_in_,
            module__n_classes=n_classes,
            module__hidden_layer_sizes=hidden,
            module__activation=self.activation,
            module__batch_norm=self.batch_norm,
            module__dropout=self.dropout,
            criterion=torch.nn.CrossEntropyLoss,
            criterion__weight=weights,
            optimizer=optimizer,
            lr=self.lr,
            **optimizer_params,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            dataset=ArrayDataset,
            iterator_train=BatchLoader,
            iterator_train__shuffle=True,
            iterator_valid=BatchLoader,
            train_split=train_split,
            callbacks=callbacks,
            classes=np.arange(n_classes),
            device=device,
            verbose=int(settings["verbose"] > 0),
            seed=seed,
        )
        # routed parameters override the estimator's: optimizer__momentum wins
        params.update(self._net_params(validation=train_split is not None))
        return BatchNormNet(BatchNormMLP, **params)

    def _set_fitted(self, net, classes):
        net.module_.eval()  # as predictions use it: running statistics
        self._set_history(net)
        self.classes_ = classes
        self._inference_module = _inference_module(net.module_)

    # -- prediction -----------------------------------------------------------

    @names_estimator
    def predict_proba(self, X):
        """Probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of :attr:`classes_`.
        """
        return np.exp(self.predict_log_proba(X))

    @names_estimator
    def predict_log_proba(self, X):
        """Logarithm of the probability of each class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of :attr:`classes_`.
        """
        logits = self._logits(X).astype(np.float64)
        return logits - _logsumexp(logits)

    @names_estimator
    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from :attr:`classes_`.
        """
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def _logits(self, X):
        use_worker_threads()
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc", "coo"],
            dtype=[np.float32, np.float64],
            reset=False,
        )
        X = _as_float32(X)
        module = self._inference_module
        device = next(module.parameters()).device
        with torch.inference_mode():
            parts = [
                module(torch.from_numpy(X[start : start + _PREDICT_CHUNK]).to(device))
                for start in range(0, len(X), _PREDICT_CHUNK)
            ]
        logits = torch.cat(parts).cpu().numpy()
        if not np.isfinite(logits).all():
            bad = int((~np.isfinite(logits).all(axis=1)).sum())
            raise ValueError(
                f"the network's outputs are not finite for {bad} sample(s): "
                f"features as large as {float(np.nanmax(np.abs(X))):.3g} overflow "
                "its layers in float32; scale them first (for instance with "
                "sklearn.preprocessing.StandardScaler in a Pipeline)."
            )
        return logits

    @names_estimator
    def score(self, X, y, sample_weight=None):
        """Mean accuracy on ``X`` and ``y``, as scikit-learn's classifiers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples.

        Returns
        -------
        score : float
            Accuracy of ``predict(X)`` against ``y``.
        """
        return super().score(X, y, sample_weight=sample_weight)

    # -- persistence and tags -------------------------------------------------

    _derived_attributes = ("history_", "_inference_module")

    def _network_arrays(self):
        net = self.net_
        return {
            **net_state(net),
            "class_weights": to_numpy(net.criterion_.weight),
        }

    def _restore_network(self, saved):
        net = self._build_net(
            hidden=saved["params"]["module__hidden_layer_sizes"],
            optimizer=check_optimizer(saved["optimizer_class"]),
            device=str(loadable_device(self)),
            n_classes=len(self.classes_),
            weights=to_torch(saved["class_weights"]),
            seed=saved["params"].get("seed", 0),
            settings=self._net_built_with,
        )
        self._set_fitted(restore_net(net, saved), self.classes_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class BatchLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` of whole mini-batches.

    Batches of an :class:`ArrayDataset` (or of a ``Subset`` of one, as
    skorch's validation split makes), with no loader setting besides
    ``batch_size`` and ``shuffle``, are sliced from tensors sharing the
    arrays' memory: no per-batch fetch, conversion or collate, which on
    batches of 60 rows cost as much as a tenth of a small network's step.
    With other settings (``iterator_train__num_workers=2``, a
    ``collate_fn``...) torch's loader fetches each batch by one fancy index
    of the arrays (see :class:`ArrayDataset`), in the same order. A lone
    sample left over at the end joins the batch before it (see
    :class:`MiniBatches`).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, **kwargs):
        batches = MiniBatches(len(dataset), batch_size, shuffle)
        super().__init__(dataset, batch_size=None, sampler=batches, **kwargs)
        self._tensors = None if kwargs else _batch_tensors(dataset)

    def __iter__(self):
        if self._tensors is None:
            return super().__iter__()
        return self._sliced(*self._tensors)

    def _sliced(self, rows, X, y, weight):
        for index in self.sampler.indices():
            if rows is not None:
                index = rows[index]
            yield X[index], (y[index] if weight is None else (y[index], weight[index]))


def _batch_tensors(dataset):
    """What :class:`BatchLoader` slices batches from: the rows a ``Subset``
    keeps (or None), ``X``, ``y`` and the sample weights (or None) of an
    :class:`ArrayDataset` of arrays; None for any other dataset."""
    rows = None
    if isinstance(dataset, Subset):
        rows = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.int64)
        dataset = dataset.dataset
    if not isinstance(dataset, ArrayDataset):
        return None
    arrays = dataset.X, dataset.y, dataset.sample_weight
    if not all(isinstance(a, np.ndarray) for a in arrays[:2]):
        return None
    return rows, *(None if a is None else _shared_tensor(a) for a in arrays)


def _shared_tensor(array):
    """``array`` as a tensor sharing its memory (a copy if it is read-only,
    such as joblib's memory maps, which torch will not share)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class MiniBatches(Sampler):
    """Consecutive batches of ``batch_size`` of ``n_samples`` rows.

    In order, or with ``shuffle`` of one permutation drawn from torch's
    global generator each epoch (which the net seeds). Where the last batch
    would hold a single sample, that sample joins the batch before it: 121
    samples at ``batch_size=60`` are batches of 60 and 61. A batch of one
    arises only from data of one sample.
    """

    def __init__(self, n_samples, batch_size, shuffle=False):
        self.n_samples, self.batch_size, self.shuffle = n_samples, batch_size, shuffle

    def _bounds(self):
        bounds = list(range(0, self.n_samples, self.batch_size))
        if len(bounds) > 1 and self.n_samples - bounds[-1] == 1:
            bounds.pop()
        return [*bounds, self.n_samples]

    def indices(self):
        """Each batch's rows: a slice, or with ``shuffle`` an int64 tensor."""
        bounds = self._bounds()
        if not self.shuffle:
            return [slice(*pair) for pair in itertools.pairwise(bounds)]
        sizes = [stop - start for start, stop in itertools.pairwise(bounds)]
        return torch.randperm(self.n_samples).split(sizes)

    def __iter__(self):
        # for torch's loader: each batch's rows as an array, the permutation
        # drawn at once (before the loader draws its seed), as the slices'
        every = np.arange(self.n_samples)
        return iter(
            [
                every[index] if isinstance(index, slice) else index.numpy()
                for index in self.indices()
            ]
        )

    def __len__(self):
        return len(self._bounds()) - 1


class ArrayDataset(Dataset):
    """skorch's dataset, indexing arrays ``X`` and ``y`` directly by index arrays.

    skorch's own indexing goes through checks made for every container type
    and costs about 20 times the fancy index itself on a batch of 60. With
    ``sample_weight`` (an array, set after construction) a batch's target is
    the pair ``(y, sample_weight)``.
    """

    sample_weight = None

    def __getitem__(self, i):
        if isinstance(i, np.ndarray) and self.y is not None:
            if self.sample_weight is not None:
                return self.X[i], (self.y[i], self.sample_weight[i])
            return self.X[i], self.y[i]
        return super().__getitem__(i.tolist() if isinstance(i, np.ndarray) else i)


class BatchNormNet(TrainingNetMixin, NeuralNetClassifier):
    """skorch's classifier with sample weights, seeded epochs, a short way
    from a batch of tensors to its loss, not walking the modules to set a
    mode they have.

    skorch calls ``train()`` or ``eval()`` on every module before each
    batch; on a small MLP that walk is 8% of the training time. A batch of
    tensors goes to the module and the criterion directly, without skorch's
    conversions for other kinds of data. Where ``sample_weight_`` is set (an
    array, during a weighted fit), each batch's loss is the weighted mean of
    its samples' losses.
    """

    def __init__(self, *args, seed=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def get_dataset(self, X, y=None):
        dataset = super().get_dataset(X, y)
        dataset.sample_weight = getattr(self, "sample_weight_", None)
        return dataset

    def batch_loss(self, batch, **fit_params):
        X, y = batch
        if not isinstance(X, torch.Tensor) or fit_params:  # a collate_fn's own
            return super().batch_loss(batch, **fit_params)
        y_pred = self.module_(self._on_device(X))
        return self.get_loss(y_pred, y), y_pred

    def _on_device(self, tensor):
        # the batches are on the CPU: .to("cpu") would parse the name each time
        return tensor if self.device == "cpu" else tensor.to(self.device)

    def get_loss(self, y_pred, y_true, *args, **kwargs):
        if isinstance(y_true, torch.Tensor):  # skorch's, for CrossEntropyLoss
            return self.criterion_(y_pred, self._on_device(y_true))
        if not isinstance(y_true, tuple | list):
            return super().get_loss(y_pred, y_true, *args, **kwargs)
        target, weight = (to_tensor(part, device=self.device) for part in y_true)
        criterion = self.criterion_
        losses = torch.nn.functional.cross_entropy(
            y_pred,
            target,
            weight=criterion.weight,
            reduction="none",
            label_smoothing=criterion.label_smoothing,
        )
        # as the criterion's mean: over the weights of the samples' classes
        if criterion.weight is not None:
            weight = weight * criterion.weight[target]
        return (losses * weight).sum() / weight.sum().clamp_min(1e-12)

    def _set_training(self, training=True):
        if self.module_.training == training == self.criterion_.training:
            return
        super()._set_training(training)


def _stopping_callback(settings):
    """Early stopping on the validation accuracy, or on the training loss."""
    sink = print if settings["verbose"] else _silent
    if settings["early_stopping"]:
        return EarlyStopping(
            monitor="valid_acc",
            lower_is_better=False,
            patience=settings["n_iter_no_change"],
            threshold=settings["tol"],
            threshold_mode="abs",
            load_best=True,
            sink=sink,
        )
    return EarlyStopping(
        monitor="train_loss",
        patience=settings["n_iter_no_change"],
        threshold=settings["tol"],
        threshold_mode="abs",
        sink=sink,
    )


def _inference_module(module):
    """A frozen eval-mode copy of ``module`` with its batch norms folded."""
    folded = fold_batchnorm(module)
    folded.requires_grad_(False)
    return folded


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_float32(X):
    """``X`` as a dense float32 array; values beyond float32's range refused."""
    values = X.data if sp.issparse(X) else X
    if values.size and np.abs(values).max() > _FLOAT32_MAX:
        raise ValueError(
            f"X holds values up to {np.abs(values).max():.3g} in magnitude, beyond "
            f"float32's range ({_FLOAT32_MAX:.3g}) in which the network computes; "
            "scale the features first, e.g. with StandardScaler."
        )
    if sp.issparse(X):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=np.float32)


def _label_index(y, classes):
    """The index in ``classes`` of each label of ``y``, or a clear error."""
    unknown = np.setdiff1d(unique_labels(y), classes)
    if unknown.size:
        raise ValueError(
            f"y contains labels {unknown.tolist()} that are not in "
            f"classes={classes.tolist()}."
        )
    return np.searchsorted(classes, y)


def _weighted_rows(X, y_index, sample_weight):
    """``X``, ``y_index`` and the weights the loss takes (None: all equal).

    Integer weights repeat their rows (0 leaves a row out), so that a weight
    counts as that many copies in the batch statistics too; other weights
    are returned for the loss.
    """
    if sample_weight is None:
        return X, y_index, None
    weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    if np.array_equal(weight, np.round(weight)):
        rows = np.repeat(np.arange(len(weight)), weight.astype(np.int64))
        return X[rows], y_index[rows], None
    kept = weight > 0
    X, y_index, weight = X[kept], y_index[kept], weight[kept]
    if np.all(weight == weight[0]):
        return X, y_index, None
    return X, y_index, weight.astype(np.float32)


def canonical_order(X, y_index, weight):
    """The rows sorted by a fixed random projection of each row.

    Training shuffles the rows anyway; sorting them first makes the fit a
    function of the set of rows, not of their order (one matrix-vector
    product and a sort), so that rows given in another order, or weights
    given as repeated rows, train the same model. A loop that takes the
    rows in this order makes the fit's steps (``benchmarks/bench_bn.py``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The rows.
    y_index : ndarray of shape (n_samples,)
        Their class indices.
    weight : ndarray of shape (n_samples,) or None
        Their weights in the loss.

    Returns
    -------
    X, y_index, weight
        The same, sorted; ``X`` a C-contiguous copy.
    """
    keys = X @ np.random.RandomState(0).standard_normal(X.shape[1]).astype(X.dtype)
    order = np.lexsort((y_index, keys))  # by the projection, then the label
    return (
        np.ascontiguousarray(X[order]),
        y_index[order],
        None if weight is None else weight[order],
    )


def _logsumexp(logits):
    top = logits.max(axis=1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


def _check_two_classes(classes):
    if len(classes) < 2:
        raise ValueError(
            "BatchNormMLPClassifier needs samples of at least 2 classes, but the "
            f"data contain only one class: {classes.tolist()}."
        )


def _check_validation_split(y_index, n_classes, fraction):
    n_samples = len(y_index)
    n_valid = int(np.ceil(fraction * n_samples))
    if n_valid < n_classes or n_samples - n_valid < n_classes:
        raise ValueError(
            f"early_stopping holds out validation_fraction={fraction} of "
            f"{n_samples} samples, which cannot hold each of the {n_classes} "
            "classes in both parts; use more data or early_stopping=False."
        )


def _silent(*args, **kwargs):
    """A sink that prints nothing."""
