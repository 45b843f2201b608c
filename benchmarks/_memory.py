"""Peak memory of one call, for the benchmarks' tables.

On the CPU a call runs in a forked child process: the peak resident set of
the child (``ru_maxrss``) less its resident set when the call starts is what
the call added at its highest, counted afresh each time (in the parent, the
allocator would reuse what an earlier run freed and hide it). On a GPU it is
torch's peak of allocated memory during the call, less what was allocated
before it.
"""

import multiprocessing
import os
import resource

import torch


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(function, connection):
    before = _resident_bytes()
    try:
        function()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        connection.send(max(peak - before, 0))
    except BaseException as error:  # reported in the parent
        connection.send(error)
    finally:
        connection.close()


def peak_memory(function, device="cpu"):
    """Bytes that calling ``function()`` added at its peak, on ``device``."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        function()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(function, sender))
    process.start()
    sender.close()
    result = receiver.recv()
    process.join()
    if isinstance(result, BaseException):
        raise result
    return result


def format_bytes(n_bytes):
    """``n_bytes`` in MiB, as the tables print it."""
    return f"{n_bytes / 2**20:.1f} MiB"
