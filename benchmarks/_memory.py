"""Peak memory of one call, for the benchmarks' tables.

On the CPU a thread samples the process's resident set every millisecond
while the call runs; the peak less the resident set at the start is what
the call added at its highest. (A forked child would count it afresh, but
torch's OpenMP threads do not survive a fork.) Large tensors are mapped and
unmapped directly, so what an earlier run freed is mostly returned and not
hidden by reuse; small allocations are, and the figure is a floor. On a GPU
it is torch's peak of allocated memory during the call, less what was
allocated before it.
"""

import os
import threading

import torch


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(function, device="cpu", interval=0.001):
    """Bytes that calling ``function()`` added at its peak, on ``device``."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        function()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
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
