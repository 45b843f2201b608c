"""Peak memory of one call, for the benchmarks' tables.

On the CPU a thread samples the resident set every millisecond while the
call runs, and the figure is its peak above the resident set at the start.
A picklable call runs in a fresh (spawned) process, so that nothing an
earlier run freed is reused and hidden (and torch's OpenMP threads do not
survive a fork); the figure then includes torch's first-use set-up of its
kernels, about 165 MiB with torch 2.14 on the CPU, which every runner of a
table pays alike: differences between the runners of a row are their
differences. A call that cannot be pickled runs in this process: a floor. On
a GPU it is torch's peak of allocated memory during the call, less what was
allocated before it.
"""

import multiprocessing
import os
import pickle
import threading

import torch


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(function, threads, connection):
    torch.set_num_threads(threads)
    connection.send(_sampled(function))
    connection.close()


def _in_child(function):
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    args = (function, torch.get_num_threads(), sender)
    process = context.Process(target=_child, args=args)
    process.start()
    sender.close()
    try:
        return receiver.recv()
    except EOFError:
        raise RuntimeError("the memory measurement's process failed") from None
    finally:
        process.join()


def peak_memory(function, device="cpu", interval=0.001):
    """Peak bytes of calling ``function()`` on ``device`` (see the module)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        function()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    try:
        pickle.dumps(function)
    except (pickle.PicklingError, AttributeError, TypeError):
        pass
    else:
        return _in_child(function)
    return _sampled(function, interval)


def _sampled(function, interval=0.001):
    """Run ``function()`` while a thread samples the resident set; the peak
    less the resident set at the start."""
    before = _resident_bytes()
    peak = [before]
    done = threading.Event()

    def watch():
        while not done.wait(interval):
            peak[0] = max(peak[0], _resident_bytes())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        function()
    finally:
        done.set()
        watcher.join()
    return max(peak[0], _resident_bytes()) - before


def format_bytes(n_bytes):
    """``n_bytes`` in MiB, as the tables print it."""
    return f"{n_bytes / 2**20:.1f} MiB"
