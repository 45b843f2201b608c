"""The same command gives the same numbers: seeds, threads and processes."""

import numpy as np
import pytest
import torch

from skpapers._reproduce import n_jobs, parallel_jobs, training_seed
from skpapers.utils._torch import reproducible_training


def test_training_seeds_depend_on_what_is_trained_not_on_when():
    keys = [(0, "bn", i, v) for i in range(3) for v in (None, "a", "b")]
    seeds = [training_seed(*key) for key in keys]
    # the same key gives the same seed, whatever was drawn before
    assert [training_seed(*key) for key in reversed(keys)] == seeds[::-1]
    assert len(set(seeds)) == len(keys)
    assert all(0 <= seed < 2**31 for seed in seeds)
    assert training_seed(0, "bn", 0) != training_seed(1, "bn", 0)
    assert training_seed(0, "bn", 0) != training_seed(0, "rml", 0)
    # a fixed function of its inputs, across processes and versions of numpy
    assert training_seed(0, "bn", 0) == 818356712


def test_reproducible_training_fixes_threads_and_restores_them():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert not torch.are_deterministic_algorithms_enabled()
        with pytest.raises(RuntimeError, match="inside"), reproducible_training(1):
            assert torch.get_num_threads() == 1
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.is_deterministic_algorithms_warn_only_enabled()
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(before)


def test_n_jobs_follows_the_command_and_the_work():
    with parallel_jobs(1):
        assert n_jobs(15) == 1
    with parallel_jobs(3):
        assert n_jobs(15) == 3 and n_jobs(2) == 2
    assert 1 <= n_jobs(15) == min(15, n_jobs(10**6))
    assert n_jobs(0) == 1


def test_bn_curves_are_the_same_in_one_process_and_in_two():
    from skpapers.neural_network._experiment import digits_split, figure1_curves

    data = digits_split(0)
    nets = {"without BN": (False, 0.5), "with BN": (True, 0.1)}
    seeds = [training_seed(0, "bn", i) for i in range(2)]

    def curves(jobs):
        return figure1_curves(
            data, seeds=seeds, epochs=1, every=7, nets=nets, n_jobs=jobs
        )

    # the caller's thread count does not reach the trainings
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        alone = curves(1)
    finally:
        torch.set_num_threads(before)
    spread = curves(2)
    for label in nets:
        assert len(alone[label]) == len(seeds)
        for one, other in zip(alone[label], spread[label], strict=True):
            np.testing.assert_array_equal(one.steps_, other.steps_)
            np.testing.assert_array_equal(one.accuracy_, other.accuracy_)
            np.testing.assert_array_equal(one.percentiles_, other.percentiles_)
    # the seeds differ, and so do their curves
    first, second = alone["with BN"]
    assert not np.array_equal(first.percentiles_, second.percentiles_)


def test_a_maskrcnn_training_is_the_same_in_a_worker_process():
    pytest.importorskip("pycocotools")
    from joblib import Parallel, delayed

    from skpapers.datasets import make_shapes
    from skpapers.segmentation._experiment import _score_cell

    train = make_shapes(12, image_size=48, random_state=0)
    test = make_shapes(4, image_size=48, random_state=1)
    cell = (0, training_seed(0, "maskrcnn", 0), "RoIAlign", {})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _, row, predictions, _ = _score_cell(cell, train, test, max_epochs=2)
    finally:
        torch.set_num_threads(before)
    [(_, row_apart, predictions_apart, _)] = Parallel(n_jobs=2)(
        delayed(_score_cell)(cell, train, test, max_epochs=2) for _ in range(1)
    )
    assert row == row_apart
    assert sum(len(p["scores"]) for p in predictions) > 0  # something to compare
    for one, other in zip(predictions, predictions_apart, strict=True):
        for key in ("scores", "labels", "boxes", "masks"):
            np.testing.assert_array_equal(one[key], other[key])
