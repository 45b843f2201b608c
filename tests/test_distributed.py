"""Grid searches over a dask cluster through joblib's dask backend.

A real ``LocalCluster`` on loopback with two worker processes (not threads):
the same search gives the same scores as in one process, and torch on a
worker runs on the worker's share of threads.
"""

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from test_contract import CASES, NAMES

from skpapers.utils._torch import use_worker_threads

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.parametrize("name", NAMES)
def test_grid_search_on_a_dask_cluster_matches_one_process(client, name):
    case = CASES[name]
    X, y = case.data()
    local = GridSearchCV(clone(case.estimator), case.grid, cv=2).fit(X, y)
    remote = GridSearchCV(clone(case.estimator), case.grid, cv=2)
    with joblib.parallel_config(backend="dask"):
        remote.fit(X, y)
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
    assert remote.best_params_ == local.best_params_


def _threads_in_a_task():
    torch.set_num_threads(2)  # changed in the worker since torch started
    use_worker_threads()
    return torch.get_num_threads()


def test_torch_on_a_worker_takes_the_workers_thread_share(client):
    # dask's nanny sets OMP_NUM_THREADS=1 on each worker process by default
    assert client.submit(_threads_in_a_task, pure=False).result() == 1
    before = torch.get_num_threads()
    use_worker_threads()  # not on a worker: left alone
    assert torch.get_num_threads() == before
