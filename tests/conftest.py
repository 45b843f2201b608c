"""Settings for the whole test suite."""

import joblib
import pytest
import torch

# The suite's networks are small: a second torch thread saves nothing, and
# OpenMP threads spin while they wait, so on a busy machine (xdist's workers
# side by side, or another job) they run many times slower.
torch.set_num_threads(1)


@pytest.fixture
def reloaded(tmp_path):
    """``reloaded(estimator, persist)``: the estimator saved to a file with
    ``persist`` ("joblib" or "skops", trusting only skpapers' listed types)
    and loaded back."""

    def reload(estimator, persist):
        path = tmp_path / f"model.{persist}"
        if persist == "joblib":
            joblib.dump(estimator, path)
            return joblib.load(path)
        skops_io = pytest.importorskip("skops.io")
        from skpapers.utils import SKOPS_TRUSTED_TYPES

        skops_io.dump(estimator, path)
        return skops_io.load(path, trusted=SKOPS_TRUSTED_TYPES)

    return reload
