"""Torch glue shared by the estimators: devices, seeding and threads."""

import contextlib
import os
import sys

import numpy as np
import torch
from sklearn.utils import check_random_state


def check_device(device):
    """Return ``device`` as a :class:`torch.device`, checking that it exists.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names a GPU this machine lacks.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'cpu', 'cuda', "
            "'cuda:<index>' or 'mps'."
        ) from error
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested, but torch finds no CUDA GPU on "
                "this machine; use device='cpu'."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested, but this machine has only "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} was requested, but MPS is not available on this "
            "machine; use device='cpu'."
        )
    return parsed


def torch_seed(random_state):
    """A seed for torch drawn from ``random_state`` (None, int or RandomState)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def seeded(seed, device=None):
    """Run the block with torch's random generators seeded, then restore them.

    The caller's global torch random state is left as it was, so that fitting
    an estimator does not change what the user's own torch code draws.
    """
    devices = []
    if device is not None and torch.device(device).type == "cuda":
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block on ``n_threads`` torch threads, then restore the count.

    Small recurrent and dense nets gain nothing from intra-op threads, and on a
    busy machine torch's spinning OpenMP threads make them several times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def reproducible_training(n_threads=1):
    """Run the block so that a training computes the same numbers each time.

    Torch runs on ``n_threads`` threads with its deterministic algorithms
    (``torch.use_deterministic_algorithms(True, warn_only=True)``: an
    operation that has none warns and runs as before) and without cuDNN's
    benchmark, which times kernels and keeps the fastest. Both matter on a
    CPU too: torch's kernels split their work, and so the order of their
    floating-point sums, by the number of threads, so the same seed trains
    to other weights on one thread than on two. The thread count, the
    deterministic mode and cuDNN's setting are restored afterwards.

    Parameters
    ----------
    n_threads : int, default=1
        Torch's intra-op threads inside the block. A training's numbers
        depend on it, not on how many trainings run beside it.
    """
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        with torch_threads(n_threads):
            yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]


OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def optimizer_name(optimizer):
    """The name in ``OPTIMIZERS`` of an optimizer class; any other as it is."""
    return next(
        (name for name, known in OPTIMIZERS.items() if known is optimizer), optimizer
    )


def check_optimizer(optimizer):
    """The torch optimizer class ``optimizer`` names (a key of ``OPTIMIZERS``) or is."""
    resolved = (
        OPTIMIZERS.get(optimizer, optimizer)
        if isinstance(optimizer, str)
        else optimizer
    )
    if not (isinstance(resolved, type) and issubclass(resolved, torch.optim.Optimizer)):
        names = ", ".join(repr(name) for name in OPTIMIZERS)
        raise ValueError(
            f"optimizer must be one of {names} or a torch.optim.Optimizer "
            f"subclass; got {optimizer!r}."
        )
    return resolved


def use_worker_threads():
    """On a dask worker, set torch's thread count to the worker's share.

    A dask worker runs one task per worker thread, and its nanny sets
    ``OMP_NUM_THREADS`` (1 unless configured through dask's
    ``distributed.nanny.pre-spawn-environ``) so that each task's BLAS does not
    claim every core. Torch reads the variable when it starts; this applies it
    again, so that a count changed since (by other code in the worker, or a
    ``torch.set_num_threads`` before the variable was set) does not
    oversubscribe the cores. The count is the worker process's, shared by its
    tasks, and is not restored. Outside a dask worker, or where the variable
    is not a positive count, nothing changes.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:  # not imported: not on a worker
        return
    try:
        distributed.get_worker()
    except ValueError:
        return
    try:
        threads = int(os.environ["OMP_NUM_THREADS"])
    except (KeyError, ValueError):
        return
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
