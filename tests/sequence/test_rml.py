"""Tests for RMLSequencePredictor: RML's claims, decoding, contracts."""

import io
import pickle
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skpapers.metrics import edit_error_rate
from skpapers.sequence import RMLSequencePredictor
from skpapers.sequence._modules import Seq2Seq, beam_search
from skpapers.sequence._rml import BOS, EOS, RMLNet, Vocabulary, _teacher_forcing
from skpapers.utils import SKOPS_TRUSTED_TYPES

SMALL = dict(embedding_dim=16, hidden_size=32, batch_size=32, random_state=0)


def _words(n=120, seed=0):
    rng = np.random.RandomState(seed)
    return ["".join(rng.choice(list("abcd"), rng.randint(1, 5))) for _ in range(n)]


@pytest.fixture(scope="module")
def reversal():
    X = _words()
    return X, [word[::-1] for word in X]


@pytest.fixture(scope="module")
def fitted(reversal):
    X, y = reversal
    return RMLSequencePredictor(**SMALL, tau=0.5, max_epochs=40, lr=1e-2).fit(X, y)


def test_learns_to_reverse_words(fitted, reversal):
    X, y = reversal
    assert fitted.score(X, y) > 0.9
    assert fitted.predict(["abcd", "dcb"]) == ["dcba", "bcd"]


def test_tau_zero_is_maximum_likelihood_bit_for_bit(reversal, monkeypatch):
    X, y = reversal
    rml = RMLSequencePredictor(**SMALL, tau=0.0, max_epochs=3).fit(X, y)
    # The same fit with the augmentation step removed altogether.
    monkeypatch.setattr(RMLNet, "augment", lambda self, *parts: parts)
    ml = RMLSequencePredictor(**SMALL, tau=0.0, max_epochs=3).fit(X, y)
    assert rml.history_[:, "train_loss"] == ml.history_[:, "train_loss"]
    for a, b in zip(
        rml.net_.module_.parameters(), ml.net_.module_.parameters(), strict=True
    ):
        assert torch.equal(a, b)


def test_positive_tau_trains_on_other_targets(reversal, monkeypatch):
    X, y = reversal
    seen = []
    augment = RMLNet.augment

    def recording(self, *parts):
        out = augment(self, *parts)
        seen.append((parts[2], parts[3], out[2], out[3]))
        return out

    monkeypatch.setattr(RMLNet, "augment", recording)
    RMLSequencePredictor(**SMALL, tau=1.0, n_samples=2, max_epochs=1).fit(X, y)
    changed = total = 0
    for target, lengths, sampled, sampled_lengths in seen:
        assert len(sampled) == 2 * len(target)  # n_samples rows per target
        for row in range(len(sampled)):
            original = target[row // 2, : lengths[row // 2]].tolist()
            new = sampled[row, : sampled_lengths[row]].tolist()
            changed += original != new
            total += 1
    assert 0.2 < changed / total < 1.0


def test_token_lists_come_back_as_token_lists():
    X = [["k", "ae", "t"], ["d", "ao", "g"], ["k", "ae", "b"]] * 20
    y = [[3, 1], [4, 1], [3, 2]] * 20
    model = RMLSequencePredictor(**SMALL, tau=0.0, max_epochs=40, lr=1e-2).fit(X, y)
    assert model.predict([["d", "ao", "g"]]) == [[4, 1]]
    assert model.score(X, y) == 1.0


def test_unseen_tokens_and_empty_sequences(reversal):
    X, y = reversal
    model = RMLSequencePredictor(**SMALL, max_epochs=2).fit([*X, ""], [*y, ""])
    predictions = model.predict(["xyz", "", "ab"])
    assert len(predictions) == 3 and all(isinstance(p, str) for p in predictions)
    assert model.predict([]) == []


def test_batched_beam_search_matches_one_by_one_and_beats_greedy(fitted, reversal):
    X, _ = reversal
    module = fitted.net_.module_.eval()
    sources = [
        [*fitted.source_vocabulary_.encode(word, unknown=1), 2] for word in X[:12]
    ]

    def decode(rows, beam_size):
        width = max(len(s) for s in rows)
        source = torch.tensor([s + [0] * (width - len(s)) for s in rows])
        lengths = torch.tensor([len(s) for s in rows])
        return beam_search(
            module,
            source,
            lengths,
            beam_size=beam_size,
            max_length=10,
            bos=BOS,
            eos=EOS,
        )

    for beam_size in (1, 3):
        batched = decode(sources, beam_size)
        assert batched == [decode([s], beam_size)[0] for s in sources]
    greedy, beam = decode(sources, 1), decode(sources, 4)
    for source, g, b in zip(sources, greedy, beam, strict=True):
        assert _log_prob(module, source, b) >= _log_prob(module, source, g) - 1e-5


def _log_prob(module, source, target):
    target_t = torch.tensor([target])
    decoder_input, gold = _teacher_forcing(target_t, torch.tensor([len(target)]))
    with torch.no_grad():
        logits = module(
            torch.tensor([source]), torch.tensor([len(source)]), decoder_input
        )
    log_probs = torch.log_softmax(logits, -1)[0]
    return float(log_probs[torch.arange(len(target) + 1), gold[0]].sum())


def test_greedy_decoding_follows_the_most_probable_token(fitted):
    module = fitted.net_.module_.eval()
    source = [*fitted.source_vocabulary_.encode("abc", unknown=1), 2]
    (decoded,) = beam_search(
        module,
        torch.tensor([source]),
        torch.tensor([len(source)]),
        beam_size=1,
        max_length=10,
        bos=BOS,
        eos=EOS,
    )
    prefix = [BOS]
    with torch.no_grad():
        for _ in range(10):
            logits = module(
                torch.tensor([source]),
                torch.tensor([len(source)]),
                torch.tensor([prefix]),
            )
            logits[0, -1, [0, BOS]] = float("-inf")
            token = int(logits[0, -1].argmax())
            if token == EOS:
                break
            prefix.append(token)
    assert decoded == prefix[1:]


def test_random_state_makes_fits_identical_and_leaves_torch_alone(reversal):
    X, y = reversal
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    first = RMLSequencePredictor(**SMALL, max_epochs=2).fit(X, y)
    assert torch.equal(torch.rand(2), expected)
    second = RMLSequencePredictor(**SMALL, max_epochs=2).fit(X, y)
    assert first.history_[:, "train_loss"] == second.history_[:, "train_loss"]
    assert first.predict(X) == second.predict(X)


def test_joblib_round_trip(fitted, reversal, tmp_path):
    X, _ = reversal
    joblib.dump(fitted, tmp_path / "model.joblib")
    assert joblib.load(tmp_path / "model.joblib").predict(X) == fitted.predict(X)


def test_grid_search_over_tau_needs_no_scorer(reversal):
    X, y = reversal
    search = GridSearchCV(
        RMLSequencePredictor(**SMALL, max_epochs=2), {"tau": [0.0, 0.8]}, cv=2
    ).fit(X, y)
    assert set(search.cv_results_["param_tau"]) == {0.0, 0.8}
    assert np.all(search.cv_results_["mean_test_score"] <= 1.0)


def test_last_step_of_a_pipeline(reversal):
    X, y = reversal
    lower = FunctionTransformer(lambda words: [w.lower() for w in words])
    pipe = make_pipeline(lower, RMLSequencePredictor(**SMALL, max_epochs=2))
    pipe.fit([w.upper() for w in X], y)
    assert len(pipe.predict(["ABC"])) == 1


def test_early_stopping_records_the_validation_error(reversal):
    X, y = reversal
    model = RMLSequencePredictor(
        **SMALL,
        tau=0.5,
        max_epochs=60,
        lr=1e-2,
        early_stopping=True,
        n_iter_no_change=5,
    ).fit(X, y)
    errors = model.history_[:, "valid_error"]
    assert len(errors) == model.n_iter_ < 60
    assert min(errors) < 0.5
    assert model.n_iter_ == int(np.argmin(errors)) + 1 + 5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("saver", ["joblib", "skops"])
def test_a_loaded_model_warm_starts_on_its_validation_pairs(reversal, saver, reloaded):
    """A warm start after loading validates and stops as the fitted model did."""
    X, y = reversal
    params = dict(**SMALL, tau=0.5, lr=1e-2, early_stopping=True)
    model = RMLSequencePredictor(**params, max_epochs=3).fit(X, y)
    loaded = reloaded(model, saver)
    for estimator in (model, loaded):
        estimator.set_params(warm_start=True, max_epochs=2).fit(X, y)
        assert estimator.n_iter_ == 5
        assert len(estimator.history_[:, "valid_error"]) == 5
        assert {"valid_error", "stopping"} <= dict(estimator.net_.callbacks_).keys()
    # the same pairs held out, the same steps: the same errors
    assert loaded.history_[:, "valid_error"] == model.history_[:, "valid_error"]


def test_a_warm_start_takes_the_new_payoff_settings(reversal):
    X, y = reversal
    model = RMLSequencePredictor(**SMALL, tau=0.0, max_epochs=1).fit(X, y)
    model.set_params(warm_start=True, tau=0.5, reward="hamming", n_samples=2)
    model.fit(X, y)
    net = model.net_
    assert (net.tau, net.reward, net.n_samples) == (0.5, "hamming", 2)
    assert (4, 0.5, "hamming") in net.payoff_cache_  # its tables, for 4 letters
    # what the first fit held out cannot change
    model.set_params(early_stopping=True)
    with pytest.raises(ValueError, match=r"early_stopping \(fitted with False"):
        model.fit(X, y)
    # tau > 0 still needs two output tokens
    one = RMLSequencePredictor(**SMALL, tau=0.0, max_epochs=1).fit(["ab"], ["x"])
    with pytest.raises(ValueError, match="at least 2 distinct output tokens"):
        one.set_params(tau=0.5).partial_fit(["ab"], ["x"])
    assert one.net_.tau == 0.0


def test_verbose_prints_the_epochs(reversal):
    X, y = reversal
    out = io.StringIO()
    with redirect_stdout(out):
        RMLSequencePredictor(**SMALL, max_epochs=2, verbose=1).fit(X, y)
    assert "train_loss" in out.getvalue()


@pytest.mark.parametrize(
    "X, y, error, message",
    [
        ("abc", ["a"], TypeError, "must be a list of sequences"),
        (["ab", "c"], ["a"], ValueError, "hold 2 and 1 sequences"),
        ([], [], ValueError, "holds no sequences"),
        ([1.5, 2.5], ["a", "b"], TypeError, "must be a string or a list of tokens"),
        ([["a", np.nan]], ["a"], ValueError, "holds NaN"),
        (["ab", "c"], ["x", "xx"], ValueError, "at least 2 distinct output tokens"),
        ({"ab", "c"}, ["ba", "c"], TypeError, "X is a set, whose order is arbitrary"),
        (["ab", "c"], frozenset({"ba", "c"}), TypeError, "y is a frozenset, whose"),
        ({"ab": "ba", "c": "c"}, ["ba", "c"], TypeError, "X is a dict, which iter"),
    ],
)
def test_bad_input_is_refused_and_the_old_model_kept(fitted, X, y, error, message):
    model = pickle.loads(pickle.dumps(fitted))
    state = dict(vars(model))
    before = model.predict(["abc"])
    with pytest.raises(error, match=message) as raised:
        model.fit(X, y)
    assert str(raised.value).startswith("RMLSequencePredictor: ")
    assert vars(model).keys() == state.keys()
    assert all(vars(model)[key] is value for key, value in state.items())
    assert model.predict(["abc"]) == before


def test_callbacks_skorch_cannot_use_are_refused_before_training(fitted, reversal):
    X, y = reversal
    model = pickle.loads(pickle.dumps(fitted)).set_params(callbacks=[("clip2", 3)])
    state = dict(vars(model))
    with pytest.raises(TypeError, match=r"callbacks\[0\] is 3, of type int, not a"):
        model.fit(X, y)
    assert all(vars(model)[key] is value for key, value in state.items())


def test_unordered_inputs_to_predict_and_score_are_refused(fitted):
    with pytest.raises(TypeError, match="RMLSequencePredictor: X is a set"):
        fitted.predict({"abc", "ab"})
    with pytest.raises(TypeError, match="RMLSequencePredictor: y is a set"):
        fitted.score(["abc", "ab"], {"cba", "ba"})


def test_a_score_against_only_empty_references_is_refused(fitted):
    assert fitted.predict(["AB"]) != [""]  # edit_error_rate would be inf
    for references in ([[]], ["", ""]):
        X = ["AB"] * len(references)
        with pytest.raises(ValueError, match="y holds only empty sequences") as error:
            fitted.score(X, references)
        assert str(error.value).startswith("RMLSequencePredictor: ")
    # one non-empty reference is enough
    assert np.isfinite(fitted.score(["AB", "ab"], ["", "ba"]))


@pytest.mark.parametrize(
    "tokens",
    [
        [("AH", 0), ("B", 1), ("K", 2)],  # tuples, documented as tokens
        [None, "B", "K"],
        [1, 2.5, "K"],
    ],
)
def test_skops_saves_and_loads_any_documented_tokens_trusting_only_ours(
    tokens, tmp_path
):
    skops_io = pytest.importorskip("skops.io")
    a, b, c = tokens
    X = [[a, b], [b, c], [c, a], [a, a]] * 5
    y = [[c, b], [a, c], [b, a], [c]] * 5
    model = RMLSequencePredictor(**SMALL, tau=0.5, max_epochs=2).fit(X, y)
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    assert sorted(skops_io.get_untrusted_types(file=path)) == [
        "skpapers.sequence._rml.RMLSequencePredictor",
        "skpapers.sequence._rml.Vocabulary",
    ]
    loaded = skops_io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    assert loaded.target_vocabulary_.tokens == model.target_vocabulary_.tokens
    assert loaded.target_vocabulary_.index == model.target_vocabulary_.index
    assert loaded.predict(X[:4]) == model.predict(X[:4])


def test_a_vocabulary_pickled_with_its_index_still_loads():
    vocabulary = Vocabulary([["a", ("b", 1)]])
    old = Vocabulary.__new__(Vocabulary)
    old.__setstate__({"tokens": vocabulary.tokens, "index": vocabulary.index})
    assert old.index == vocabulary.index
    assert pickle.loads(pickle.dumps(vocabulary)).index == vocabulary.index


def test_edit_error_rate_on_tokens():
    assert edit_error_rate([["AH", "B"], ["K"]], [["AH"], ["K", "S"]]) == 2 / 3
    assert edit_error_rate(["abc"], ["abc"]) == 0.0
    with pytest.raises(ValueError, match="same number"):
        edit_error_rate(["a"], [])


def test_modules_shapes():
    module = Seq2Seq(7, 9, embedding_dim=4, hidden_size=5, num_layers=2, cell="lstm")
    source = torch.tensor([[3, 4, 2], [5, 2, 0]])
    logits = module(source, torch.tensor([3, 2]), torch.tensor([[1, 3], [1, 0]]))
    assert logits.shape == (2, 2, 9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(reversal):
    X, y = reversal
    with pytest.raises(ValueError, match="finds no CUDA GPU"):
        RMLSequencePredictor(**SMALL, device="cuda").fit(X, y)


def test_beam_search_of_an_untrained_model_stops_at_the_length_cap():
    torch.manual_seed(0)
    module = Seq2Seq(6, 7, embedding_dim=4, hidden_size=5).eval()
    source = torch.tensor([[3, 4, 2], [5, 2, 0]])
    for beam_size in (1, 3):
        decoded = beam_search(
            module, source, torch.tensor([3, 2]), beam_size=beam_size,
            max_length=4, bos=BOS, eos=EOS,
        )  # fmt: skip
        assert len(decoded) == 2
        assert all(len(row) <= 4 and EOS not in row and 0 not in row for row in decoded)
