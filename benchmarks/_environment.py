"""Versions, machine and threads: saved with every benchmark's results."""

import importlib
import os
import platform

from threadpoolctl import threadpool_info


def environment(*packages):
    """Python's version, ``packages``' versions, the CPUs and their threads.

    Parameters
    ----------
    *packages : str
        Importable names (``"numpy"``, ``"sklearn"``, ...), each reported
        under its own name. With ``"torch"`` among them, torch's intra- and
        inter-op thread counts are reported too.

    Returns
    -------
    dict
    """
    env = {"python": platform.python_version()}
    for name in packages:
        env[name] = importlib.import_module(name).__version__
    env["machine"] = platform.machine()
    env["cpu_count"] = os.cpu_count()
    if "torch" in packages:
        torch = importlib.import_module("torch")
        env["torch_threads"] = torch.get_num_threads()
        env["torch_interop_threads"] = torch.get_num_interop_threads()
    env["threadpools"] = [
        {key: pool[key] for key in ("user_api", "internal_api", "num_threads")}
        for pool in threadpool_info()
    ]
    return env
