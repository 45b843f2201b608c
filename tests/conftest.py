"""Settings for the whole test suite."""

import torch

# The suite's networks are small: a second torch thread saves nothing, and
# OpenMP threads spin while they wait, so on a busy machine (xdist's workers
# side by side, or another job) they run many times slower.
torch.set_num_threads(1)
