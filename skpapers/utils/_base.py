"""The base of the torch estimators, and the skorch net behaviour they share.

:class:`SkorchEstimatorMixin` holds what the three torch estimators have in
common: the parameters they share (declared once, merged by each estimator
into its own ``_parameter_constraints``), skorch's routed parameters
(``optimizer__momentum=0.5``...) in the constructor, ``get_params`` and
``set_params``, the start of ``fit`` (worker threads, device and optimizer
checks, the seed) and its end (the convergence warning), and persistence as
arrays, and what a warm start carries over: the training settings of the
parameters as they are now (:meth:`SkorchEstimatorMixin._update_net`), the
architecture the first fit built refused if changed
(:meth:`SkorchEstimatorMixin._check_architecture`). :class:`TrainingNetMixin`
is the part every skorch net of theirs
shares: the training step (:func:`training_step`, which the benchmarks' plain
loops take too), an epoch loop that calls only the callbacks that act on each
batch, each epoch seeded by its index (so that a resumed fit draws what an
uninterrupted one would), a loss that is not finite stops training naming
the rate, and Ctrl-C stops after the running step and keeps the last
complete epoch.
"""

import contextlib
import copy
import functools
import inspect
import math
import os
import signal
import threading
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from skorch.dataset import get_len, unpack_data
from skorch.utils import TeeGenerator, to_device

from skpapers.utils._persistence import ArraysOnSave
from skpapers.utils._torch import (
    OPTIMIZERS,
    check_device,
    check_optimizer,
    torch_seed,
    use_worker_threads,
)
from skpapers.utils._validation import _check_callbacks

#: The prefixes by which parameters reach the parts of the skorch net, as in
#: skorch: ``optimizer__momentum=0.5`` is the optimizer's ``momentum``.
ROUTED_PREFIXES = (
    "module",
    "criterion",
    "optimizer",
    "iterator_train",
    "iterator_valid",
    "callbacks",
)


def is_routed(name):
    """Whether ``name`` is a routed parameter, such as ``optimizer__momentum``."""
    prefix, dunder, rest = name.partition("__")
    return bool(dunder) and bool(rest) and prefix in ROUTED_PREFIXES


def _init_parameters(target):
    """The keyword parameters ``target`` (a class or function) accepts, following
    ``**kwargs`` up its base classes; None if it accepts any."""
    names = set()
    classes = target.__mro__ if isinstance(target, type) else (target,)
    for cls in classes:
        function = cls.__init__ if isinstance(target, type) else cls
        if function is object.__init__:
            return names
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # a builtin with no signature
            return None
        names |= {
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


class SkorchEstimatorMixin(ArraysOnSave):
    """Mixin of the torch estimators: shared parameters, routing and fit's ends.

    A subclass merges :attr:`_parameter_constraints` into its own, takes
    ``**kwargs`` in its constructor and passes them to
    :meth:`_set_routed_params`, names in :attr:`_module_settings` the
    ``module__*`` settings it sets itself, and passes
    :meth:`_routed_params` to the skorch net it builds. It names in
    :attr:`_architecture_params` the parameters that a warm start cannot
    change, records them with :meth:`_record_architecture` when it builds a
    new net, and on a warm start (or a later ``partial_fit``) calls
    :meth:`_check_architecture`, builds a net from its parameters as they
    are now and hands it to :meth:`_update_net`.
    """

    _parameter_constraints: dict = {
        "optimizer": [StrOptions(set(OPTIMIZERS)), callable],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: ``module__*`` settings the estimator sets from its own parameters:
    #: routed name -> the estimator's parameter.
    _module_settings: dict = {}

    #: Parameters that shape the model a first fit builds (or that fix what
    #: it learns from): a warm start keeps that model, so refuses a change.
    #: ``module__*`` routed parameters count too.
    _architecture_params: tuple = ()

    # -- routed parameters ----------------------------------------------------

    def _set_routed_params(self, routed):
        """Store the constructor's ``**kwargs``, routed parameters.

        As scikit-learn asks, nothing is checked here: a name that is not
        routed, or that the net lacks, is refused by ``fit``.
        """
        for name, value in routed.items():
            setattr(self, name, value)
        self._extra_params = tuple(name for name in routed if not is_routed(name))

    def _routed_params(self):
        """The routed parameters set on this estimator, by name."""
        extra = getattr(self, "_extra_params", ())
        return {
            name: value
            for name, value in vars(self).items()
            if is_routed(name) or name in extra
        }

    def _net_params(self, *, validation=True):
        """What the estimator adds to the parameters of the net it builds: the
        routed parameters; at ``verbose=0`` no ``print_log`` callback (skorch's
        would format a table each epoch only to drop it), and without
        ``validation`` data none of skorch's validation scores (each is
        called at every step and epoch for nothing)."""
        routed = self._routed_params()
        idle = ["print_log"] if not self.verbose else []
        if not validation:
            idle += ["valid_loss", "valid_acc"]
        dropped = {
            f"callbacks__{name}": None
            for name in idle
            if not any(key.startswith(f"callbacks__{name}") for key in routed)
        }
        return {**dropped, **routed}

    def get_params(self, deep=True):
        """Parameters of this estimator, routed ones (``optimizer__*``...) included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of contained estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return {**super().get_params(deep=deep), **self._routed_params()}

    def set_params(self, **params):
        """Set parameters, routed ones (``optimizer__momentum=0.5``...) included.

        Parameters
        ----------
        **params : dict
            The estimator's parameters, and parameters routed to the skorch
            net's parts by the prefixes ``module__``, ``criterion__``,
            ``optimizer__``, ``iterator_train__``, ``iterator_valid__`` and
            ``callbacks__``. A name the net lacks is refused by ``fit``.

        Returns
        -------
        self : estimator instance
            The estimator.
        """
        extra = getattr(self, "_extra_params", ())
        routed = {
            name: value
            for name, value in params.items()
            if is_routed(name) or name in extra
        }
        for name, value in routed.items():
            setattr(self, name, value)
        return super().set_params(
            **{name: value for name, value in params.items() if name not in routed}
        )

    def _check_routed_params(self, net):
        """Refuse a routed parameter that no part of ``net`` (built, not
        initialised) has, or that the estimator sets itself."""
        callbacks = None
        for name in sorted(self._routed_params()):
            if not is_routed(name):
                raise ValueError(
                    f"{name} is not a parameter; besides its own parameters "
                    f"{type(self).__name__} takes skorch's routed ones, named "
                    f"{_prefixes_text()}."
                )
            prefix, _, rest = name.partition("__")
            own = self._module_settings.get(name) or (
                "lr" if name == "optimizer__lr" else None
            )
            if own is not None:
                raise ValueError(
                    f"{name} is set by the parameter {own}; set {own} instead."
                )
            key = rest.split("__", 1)[0]
            if prefix == "callbacks":
                if callbacks is None:
                    callbacks = dict(net._uniquely_named_callbacks())
                _check_callback_param(name, key, rest, callbacks)
                continue
            target = getattr(net, prefix)
            if not (isinstance(target, type) or inspect.isfunction(target)):
                raise ValueError(
                    f"{name} cannot be routed: the net's {prefix} is built by "
                    f"{type(self).__name__} itself; set its parameters instead."
                )
            allowed = _init_parameters(target)
            if prefix == "optimizer":
                allowed = None if allowed is None else allowed | {"param_groups"}
            if allowed is not None and key not in allowed - {"self", "params"}:
                owner = getattr(target, "__name__", type(target).__name__)
                choices = ", ".join(sorted(allowed - {"self", "params", "dataset"}))
                raise ValueError(
                    f"{name} is not a parameter of the net's {prefix} ({owner}), "
                    f"which takes {choices}."
                )

    # -- warm starts ----------------------------------------------------------

    def _architecture(self):
        """The architecture parameters and ``module__*`` routed ones, as
        plain values (a path as a string, any sequence as a tuple)."""
        names = {name: getattr(self, name) for name in self._architecture_params}
        routed = self._routed_params()
        names |= {name: routed[name] for name in routed if name.startswith("module__")}
        return {name: _plain_setting(value) for name, value in names.items()}

    def _record_architecture(self):
        """Keep the architecture a new net is built with (saved with the model)."""
        self._architecture_built = self._architecture()

    def _check_architecture(self, action):
        """Refuse to continue the fitted model (``action``: "a warm start",
        "partial_fit") where an architecture parameter has changed since."""
        built = getattr(self, "_architecture_built", None)
        if built is None:  # saved by a version that kept no record
            return
        now = self._architecture()
        changed = sorted(
            name
            for name in built.keys() | now.keys()
            if not _same(built.get(name, _ABSENT), now.get(name, _ABSENT))
        )
        if changed:
            listed = ", ".join(
                f"{name} (fitted with {built.get(name)!r}, now {now.get(name)!r})"
                for name in changed
            )
            raise ValueError(
                f"{type(self).__name__}: {action} continues the fitted model, "
                f"and what it was built with cannot change: {listed}. Set "
                f"{'it' if len(changed) == 1 else 'them'} back, or set "
                "warm_start=False and call fit to train a new model."
            )

    def _update_net(self, net, fresh):
        """Give the fitted ``net`` the training settings of ``fresh``, a net
        built (not initialised) from the parameters as they are now, keeping
        its weights; see :func:`update_training_settings`."""
        self._check_routed_params(fresh)
        update_training_settings(net, fresh)

    # -- the start and end of fit -------------------------------------------

    def _start_fit(self):
        """Checks and draws every fit starts with: the worker's threads, the
        optimizer class, the device and a torch seed from ``random_state``."""
        use_worker_threads()
        _check_callbacks(self.callbacks)
        optimizer = check_optimizer(self.optimizer)
        device = str(check_device(self.device))
        return optimizer, device, torch_seed(self.random_state)

    def _verbosity_callbacks(self):
        """A progress bar within each epoch at ``verbose=2``."""
        if self.verbose > 1:
            return [("progress_bar", ProgressBar())]
        return []

    def _user_callbacks(self):
        """Copies of the ``callbacks`` given, so that a fit leaves them as they are."""
        return copy.deepcopy(list(self.callbacks or []))

    def _set_history(self, net):
        self.net_ = net
        self.history_ = net.history
        self.n_iter_ = len(net.history)

    def _warn_if_not_converged(self, net, *, stacklevel):
        """A ``ConvergenceWarning`` where training ran to ``max_epochs``
        although an early-stopping rule was set and was not met."""
        if getattr(net, "interrupted_", False):
            return
        rules = [cb for _, cb in net.callbacks_ if isinstance(cb, EarlyStopping)]
        if rules and not any(rule.misses_ >= rule.patience for rule in rules):
            warnings.warn(
                f"{type(self).__name__}: max_epochs={self.max_epochs} reached "
                "before the stopping rule was met; raise max_epochs"
                f"{' (or tol)' if 'tol' in self.get_params(deep=False) else ''}.",
                ConvergenceWarning,
                stacklevel=stacklevel + 1,
            )


def _prefixes_text():
    return ", ".join(f"{prefix}__*" for prefix in ROUTED_PREFIXES)


def _check_callback_param(name, key, rest, callbacks):
    if key not in callbacks:
        raise ValueError(
            f"{name} names the callback {key!r}, which the net does not have; "
            f"its callbacks are {', '.join(sorted(callbacks))}."
        )
    param = rest.partition("__")[2].split("__", 1)[0]
    callback = callbacks[key]
    if param and hasattr(callback, "get_params"):
        allowed = callback.get_params(deep=False)
        if param not in allowed:
            raise ValueError(
                f"{name} is not a parameter of the callback {key!r} "
                f"({type(callback).__name__}), which takes "
                f"{', '.join(sorted(allowed))}."
            )


_ABSENT = object()


def _plain_setting(value):
    """``value`` as a plain value to record and compare: a path as a string,
    an array or sequence as a tuple, a numpy scalar as a Python one."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_plain_setting(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same(left, right):
    """Whether two settings are the same: tensors and arrays by value,
    containers item by item, objects with ``get_params`` (callbacks) by
    their class and parameters, anything else by ``==``."""
    if left is right:
        return True
    if type(left) is not type(right):
        return False
    if isinstance(left, torch.Tensor):
        return (
            left.shape == right.shape
            and left.dtype == right.dtype
            and left.device == right.device
            and torch.equal(left, right)
        )
    if isinstance(left, np.ndarray):
        return left.shape == right.shape and np.array_equal(left, right)
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(
            _same(left[key], right[key]) for key in left
        )
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, functools.partial):
        return _same(
            (left.func, left.args, left.keywords),
            (right.func, right.args, right.keywords),
        )
    try:
        if hasattr(left, "get_params") and not isinstance(left, type):
            return _same(left.get_params(deep=False), right.get_params(deep=False))
        return bool(left == right)
    except Exception:  # a parameter it does not keep, an ambiguous ==: changed
        return False


def _settings_of(net):
    """A skorch net's settings: its parameters, routed ones included, as the
    attributes skorch keeps them in (learned state ends in ``_``)."""
    return {
        name: value
        for name, value in vars(net).items()
        if not name.startswith("_") and not name.endswith("_")
    }


def update_training_settings(net, fresh):
    """Give the initialised skorch ``net`` the training settings of ``fresh``.

    ``fresh`` is a net of the same kind, built but not initialised, from the
    estimator's parameters as they are now, over the same module. What
    differs is applied as skorch's ``set_params`` applies it to a fitted
    net, keeping the weights and the history:

    - the optimizer's settings (``lr``, ``optimizer__*``) are written into
      its parameter groups, keeping its state (Adam's moments, SGD's
      momentum); an optimizer of another class, or other parameter groups,
      gives a new optimizer over the same weights;
    - a criterion with other settings (``criterion__*``) is built anew;
    - other callbacks (``callbacks``, ``callbacks__*``, and those the
      verbosity adds) are initialised anew; the same ones are kept as they
      are, their state with them;
    - anything else (``batch_size``, ``iterator_train__*``, ``verbose``,
      the net's own settings) is set, and takes effect from the next epoch.

    Everything that can fail is built before ``net`` is changed, so that an
    error leaves it as it was. A change to the module (``module``,
    ``module__*``) is refused: the estimator checks its architecture first.
    """
    old, new = _settings_of(net), _settings_of(fresh)
    changed = {
        name
        for name in old.keys() | new.keys()
        if not _same(old.get(name, _ABSENT), new.get(name, _ABSENT))
    }
    module = sorted(n for n in changed if n == "module" or n.startswith("module__"))
    if module:
        raise ValueError(
            f"the fitted module stays as it was built, so {', '.join(module)} "
            "cannot change; set warm_start=False and call fit to train a new model."
        )
    optimizer = criterion = None
    if any(_is_optimizer_setting(name) for name in changed):
        optimizer = _new_optimizer_settings(net, fresh)
    if any(n == "criterion" or n.startswith("criterion__") for n in changed):
        criterion = fresh.initialized_instance(
            fresh.criterion, fresh.get_params_for("criterion")
        )
        criterion = net.torch_compile(to_device(criterion, net.device), "criterion")
    callbacks = any(n == "callbacks" or n.startswith("callbacks__") for n in changed)
    if callbacks:
        fresh._initialize_callbacks()
    for name in changed:
        if name in new:
            setattr(net, name, new[name])
        else:
            delattr(net, name)
    if optimizer is not None:
        _set_optimizer(net, *optimizer)
    if criterion is not None:
        net.criterion_ = criterion
    if callbacks:
        net.callbacks_ = fresh.callbacks_


def _is_optimizer_setting(name):
    return name in ("optimizer", "lr") or name.startswith("optimizer__")


def _new_optimizer_settings(net, fresh):
    """An optimizer over ``net``'s weights with the settings of ``fresh``,
    and the settings that differ from ``net``'s: None where the optimizer's
    class or parameter groups differ, and it must replace ``net``'s."""
    named = list(net.get_all_learnable_params())
    old_groups, old = net.get_params_for_optimizer("optimizer", named)
    groups, settings = fresh.get_params_for_optimizer("optimizer", named)
    changed = {
        key
        for key in old.keys() | settings.keys()
        if not _same(old.get(key, _ABSENT), settings.get(key, _ABSENT))
    }
    if fresh.optimizer is not net.optimizer or not _same(old_groups, groups):
        changed = None
    # built before any change, so that a setting the optimizer refuses fails
    # first (and after the comparison: torch fills the groups' dicts in)
    return fresh.optimizer(*groups, **settings), changed


def _set_optimizer(net, rebuilt, changed):
    """Write the ``changed`` settings of ``rebuilt``'s parameter groups into
    ``net``'s optimizer, its state kept; with ``changed=None`` replace it."""
    if changed is None:
        net.optimizer_ = rebuilt
        return
    for group, new in zip(
        net.optimizer_.param_groups, rebuilt.param_groups, strict=True
    ):
        for key in changed & new.keys():
            group[key] = new[key]
        if "lr" in changed and "initial_lr" in group:  # a torch scheduler's base
            group["initial_lr"] = new["lr"]


def _cloned(state):
    """A copy of an optimizer's state dict: its tensors cloned, its
    containers new.

    ``copy.deepcopy`` does the same at several times the cost, which on a
    small network is a noticeable share of an epoch.
    """
    if isinstance(state, torch.Tensor):
        return state.clone()  # an optimizer's state has no gradient
    if isinstance(state, dict):
        return type(state)((key, _cloned(value)) for key, value in state.items())
    if isinstance(state, list | tuple):
        if not any(isinstance(value, _CONTAINERS) for value in state):
            return type(state)(state)  # such as the parameters' indices
        return type(state)(_cloned(value) for value in state)
    return state


_CONTAINERS = (torch.Tensor, dict, list, tuple)


def training_step(optimizer, batch_loss, *, on_gradients=None):
    """One step of ``optimizer``: a batch's loss, its gradients, the update.

    The step every torch estimator's net takes, and the one the benchmarks'
    plain PyTorch loops take, so that what they time besides it is the
    estimator's own.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer to step; its gradients are zeroed first.
    batch_loss : callable
        ``batch_loss()`` runs the forward pass and returns the batch's loss,
        a scalar tensor. An optimizer that evaluates the loss more than once
        a step (such as :class:`torch.optim.LBFGS`) calls it again.
    on_gradients : callable or None, default=None
        Called with no argument once the gradients are computed, before the
        update (skorch's ``on_grad_computed``: to clip or log them).

    Returns
    -------
    loss : Tensor
        The loss of the step's first evaluation, before the update.

    Examples
    --------
    >>> import torch
    >>> from skpapers.utils._base import training_step
    >>> model = torch.nn.Linear(3, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> X, y = torch.ones(4, 3), torch.zeros(4, 1)
    >>> loss = training_step(
    ...     optimizer, lambda: torch.nn.functional.mse_loss(model(X), y)
    ... )
    >>> loss.shape
    torch.Size([])
    """
    first = None

    def closure():
        nonlocal first
        optimizer.zero_grad()
        loss = batch_loss()
        loss.backward()
        if on_gradients is not None:
            on_gradients()
        if first is None:
            first = loss
        return loss

    optimizer.step(closure)
    return first


def _acts_on(obj, name, base):
    """Whether ``obj``'s method ``name`` is its own, not ``base``'s no-op."""
    return getattr(type(obj), name) is not getattr(base, name) or name in vars(obj)


def _batch_length(batch):
    """Samples in a batch, as skorch counts them: those of its ``X``."""
    X = batch[0] if isinstance(batch, tuple | list) else batch
    return len(X) if isinstance(X, torch.Tensor | list) else get_len(X)


@contextlib.contextmanager
def _ctrl_c_after_step(net):
    """Ctrl-C during the block asks ``net`` to stop after its running step.

    ``net.stop_requested_`` becomes True, which the epoch loop reads after
    each step; a second Ctrl-C raises ``KeyboardInterrupt`` at once, with
    ``net.aborted_`` True. Only on the main thread and where Ctrl-C raises
    ``KeyboardInterrupt`` (Python's own handler); elsewhere, and after the
    block, the handler is left as it was.
    """
    net.stop_requested_ = net.aborted_ = False
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def request_stop(signum, frame):
        if net.stop_requested_:
            net.aborted_ = True
            signal.default_int_handler(signum, frame)
        net.stop_requested_ = True

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class TrainingNetMixin:
    """Mixin of the skorch nets of the torch estimators.

    - Each step is :func:`training_step` on the loss :meth:`batch_loss`
      gives (a net that overrides skorch's ``train_step_single`` instead
      keeps skorch's step).
    - The epoch loop is skorch's, but calls only the callbacks that act on
      each batch (skorch's :class:`~skorch.callbacks.Callback` methods do
      nothing), and records the batch's loss and size in its history row
      directly.
    - Each epoch starts by seeding torch with ``seed`` plus its index, so that
      epoch ``k`` draws the same shuffle, dropout and samples whether the fit
      ran through or was resumed from a checkpoint after ``k - 1`` epochs.
    - A training loss that is not finite raises ``FloatingPointError``
      naming ``lr``.
    - Ctrl-C (on the main thread) stops training once the running step is
      done, and a ``KeyboardInterrupt`` from a callback stops it at once;
      either puts the weights, the optimizer and the history back to the
      last complete epoch (``interrupted_`` is then True). A second Ctrl-C
      aborts: ``KeyboardInterrupt`` is raised, as any other error, with the
      weights, the optimizer and the history put back as they were before
      training.

    The subclass takes ``seed`` as a constructor argument.
    """

    interrupted_ = False
    stop_requested_ = False
    aborted_ = False

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        # torch.manual_seed would also queue seeds for every lazy accelerator
        # module, formatting a stack trace for each: a millisecond an epoch
        seed = self.seed + len(self.history)
        torch.default_generator.manual_seed(seed)
        if torch.device(self.device).type == "cuda":
            torch.cuda.manual_seed(seed)

    def batch_loss(self, batch, **fit_params):
        """The loss of a training batch and the prediction it came from.

        skorch's ``infer`` and ``get_loss``; a net whose module computes its
        own loss overrides this.

        Returns
        -------
        loss : Tensor
            Scalar, to be minimised.
        y_pred : Tensor or None
            What ``on_batch_end`` callbacks get as ``y_pred``.
        """
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        return self.get_loss(y_pred, yi, X=Xi, training=True), y_pred

    def train_step(self, batch, **fit_params):
        if _acts_on(self, "train_step_single", NeuralNet):
            return super().train_step(batch, **fit_params)
        y_pred = None

        def batch_loss():
            nonlocal y_pred
            self._set_training(True)
            loss, prediction = self.batch_loss(batch, **fit_params)
            if y_pred is None:  # the first evaluation's, as skorch's step
                y_pred = prediction
            return loss

        def on_gradients():
            self.notify(
                "on_grad_computed",
                named_parameters=TeeGenerator(self.get_all_learnable_params()),
                batch=batch,
                training=True,
            )

        listened = vars(self).get("_gradients_listened")  # set by the epoch
        if listened is None:
            listened = bool(self._listeners("on_grad_computed"))
        loss = training_step(
            self.optimizer_, batch_loss, on_gradients=on_gradients if listened else None
        )
        return {"loss": loss, "y_pred": y_pred}

    def _listeners(self, name):
        """The bound ``name`` methods of the net and its callbacks, in skorch's
        order, leaving out skorch's no-ops."""
        own = [getattr(self, name)] if _acts_on(self, name, NeuralNet) else []
        return own + [
            getattr(cb, name)
            for _, cb in self.callbacks_
            if not isinstance(cb, Callback) or _acts_on(cb, name, Callback)
        ]

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        # skorch's own on_batch_begin adds the batch's row to the history
        new_row = not _acts_on(self, "on_batch_begin", NeuralNet)
        begin = self._listeners("on_batch_begin")
        end = self._listeners("on_batch_end")
        rows = list.__getitem__(self.history, -1)["batches"]
        batch_count = 0
        # in the instance's dict: skorch's __setattr__ is slow
        vars(self)["_gradients_listened"] = bool(self._listeners("on_grad_computed"))
        try:
            for batch in iterator:
                if new_row:
                    rows.append({})
                for call in begin:
                    call(self, batch=batch, training=training)
                row = rows[-1]
                step = step_fn(batch, **fit_params)
                loss = step["loss"].item()
                if training and not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} in epoch "
                        f"{len(self.history)}; lower the learning rate "
                        f"(lr={self._rate():g})."
                    )
                row[prefix + "_loss"] = loss
                row[prefix + "_batch_size"] = _batch_length(batch)
                for call in end:
                    call(self, batch=batch, training=training, **step)
                batch_count += 1
                if self.stop_requested_:
                    raise KeyboardInterrupt
        finally:
            vars(self).pop("_gradients_listened")
        self.history.record(prefix + "_batch_count", batch_count)

    def _rate(self):
        return self.lr  # as set: a schedule's current rate is a share of it

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        super().partial_fit(X, y, classes, **fit_params)
        if self.aborted_:  # skorch's partial_fit swallows it
            raise KeyboardInterrupt
        return self

    def notify(self, method_name, **cb_kwargs):
        loop = vars(self).get("_loop")
        if method_name != "on_epoch_end" or loop is None:
            return super().notify(method_name, **cb_kwargs)
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt:
            # skorch's EarlyStopping stops so, once the epoch is complete
            loop["last_complete"] = self._snapshot()
            loop["stopped_by_callback"] = not self.stop_requested_
            raise
        loop["last_complete"] = self._snapshot()
        if self.stop_requested_:  # Ctrl-C while the epoch ended
            raise KeyboardInterrupt
        return None

    def _snapshot(self):
        """Copies of the weights and the optimizer's state, and the epochs."""
        loop = vars(self).get("_loop", {})
        # the state dict's tensors are the module's own, while it is the same
        module, weights = loop.get("weights", (None, None))
        if module is not self.module_:
            weights = self.module_.state_dict()
            loop["weights"] = self.module_, weights
        optimizer = self.optimizer_.state_dict()
        return {
            "module": {key: value.clone() for key, value in weights.items()},
            "optimizer": {
                "state": _cloned(optimizer["state"]),
                "param_groups": _cloned(optimizer["param_groups"]),
            },
            "epochs": len(self.history),
        }

    def _roll_back(self, snapshot):
        self.module_.load_state_dict(snapshot["module"])
        self.optimizer_.load_state_dict(snapshot["optimizer"])
        del self.history[snapshot["epochs"] :]

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        self.interrupted_ = False
        # in the instance's dict: skorch's __setattr__ is slow
        loop = vars(self)["_loop"] = {"stopped_by_callback": False}
        before = loop["last_complete"] = self._snapshot()
        try:
            with _ctrl_c_after_step(self):
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            if self.aborted_:
                self._roll_back(before)
                raise
            self._roll_back(loop["last_complete"])
            self.interrupted_ = not loop["stopped_by_callback"]
            return self
        except BaseException:
            self._roll_back(before)
            raise
        finally:
            del vars(self)["_loop"]
