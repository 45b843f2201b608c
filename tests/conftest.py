"""Settings for the whole test suite."""

import os

import torch

if "PYTEST_XDIST_WORKER" in os.environ:
    # xdist's workers run side by side, and torch's OpenMP threads spin while
    # they wait: two workers of two threads each on two cores run 25x slower.
    torch.set_num_threads(1)
