"""Saving the torch estimators as plain arrays, so that any machine loads them.

A fitted torch estimator pickles its network as numpy arrays (the module's
and the optimizer's state dicts and the training history), not as torch
objects. Then a model trained on a GPU loads on a CPU-only machine, pickle
needs no torch unpickler, and ``skops.io`` can load it trusting only the
estimator's own class: no torch or skorch type, whose loading would run
arbitrary code, is in the file. On load the estimator rebuilds its network
from its parameters and puts the arrays back.
"""

import warnings

import numpy as np
import torch
from skorch.history import History

from skpapers.utils._torch import check_device, optimizer_name


def to_numpy(value):
    """``value`` with every tensor in it (through dicts, lists and tuples) as a
    numpy array on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_numpy(item) for item in value)
    return value


def to_torch(value, device="cpu"):
    """The inverse of :func:`to_numpy`: every numpy array a tensor on ``device``."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value)).to(device)
    if isinstance(value, dict):
        return {key: to_torch(item, device) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_torch(item, device) for item in value)
    return value


def loadable_device(estimator):
    """The device to rebuild ``estimator``'s network on when it is loaded.

    Its ``device`` if this machine has it; otherwise the CPU, with a warning
    and ``device`` set to ``"cpu"`` (as skorch does), so that a model saved on
    a GPU machine predicts on a CPU-only one.
    """
    try:
        return check_device(estimator.device)
    except ValueError:
        warnings.warn(
            f"{type(estimator).__name__} was saved with device="
            f"{estimator.device!r}, which this machine lacks; it is loaded on the "
            "CPU and its device parameter set to 'cpu'.",
            UserWarning,
            stacklevel=4,  # past the load hooks: the caller of pickle.loads
        )
        estimator.device = "cpu"
        return torch.device("cpu")


def rng_untouched():
    """A block whose draws from torch's CPU generator are undone after it.

    Loading builds a network, whose random initial weights are overwritten
    at once: the caller's random stream must not move. Only the CPU's state
    is forked, as networks are built there: forking a GPU's would start CUDA.
    """
    return torch.random.fork_rng(devices=[])


def _plain(value):
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, bool | int | float | str | np.generic)


def net_state(net):
    """A skorch net's learned state as numpy arrays and plain Python values.

    Its plain parameters (``module__hidden_size``, ``lr``...) are kept as
    fitted, so that the net is rebuilt as it was even if the estimator's
    parameters were changed since; ``device`` is left to the loading machine,
    and ``callbacks`` (and ``callbacks__*``) to the estimator that rebuilds
    the net.
    """
    params = {
        name: value
        for name, value in net.get_params(deep=False).items()
        if name != "device" and not name.startswith("callbacks") and _plain(value)
    }
    return {
        "params": params,
        "optimizer_class": optimizer_name(net.optimizer),
        "module": to_numpy(net.module_.state_dict()),
        "optimizer": to_numpy(net.optimizer_.state_dict()),
        "history": [dict(row) for row in net.history],
    }


def restore_net(net, state):
    """Give ``net`` (a new skorch net, built with the optimizer class that
    ``state["optimizer_class"]`` names) the plain parameters and learned state
    in ``state`` (from :func:`net_state`), initialising it; return it."""
    net.set_params(**state["params"])
    with rng_untouched():  # the fresh weights are overwritten at once
        net.initialize()
    net.module_.load_state_dict(to_torch(state["module"], net.device))
    net.optimizer_.load_state_dict(to_torch(state["optimizer"], net.device))
    net.history_ = History(state["history"])
    return net


class ArraysOnSave:
    """Mixin: pickle a fitted torch estimator's network as numpy arrays.

    The class names the attribute holding the network (``_network_attribute``)
    and the attributes derived from it that are rebuilt on load
    (``_derived_attributes``), and defines ``_network_arrays()`` (the network's
    state as arrays and plain values) and ``_restore_network(saved)``.
    """

    _network_attribute = "net_"
    _derived_attributes = ()

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object's is __dict__ itself
        if self._network_attribute in state:
            state[self._network_attribute] = self._network_arrays()
            for name in self._derived_attributes:
                state.pop(name, None)
        return state

    def __setstate__(self, state):
        saved = state.pop(self._network_attribute, None)
        super().__setstate__(state)
        if saved is not None:
            self._restore_network(saved)
