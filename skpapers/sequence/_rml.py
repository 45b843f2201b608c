"""RMLSequencePredictor: sequence-to-sequence learning by reward-augmented ML."""

from collections.abc import Hashable
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, GradientNormClipping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from skorch.utils import to_tensor

from skpapers.metrics import edit_error_rate
from skpapers.sequence._batching import LengthBatchSampler, pair_lengths
from skpapers.sequence._modules import PAD, Seq2Seq, beam_search
from skpapers.sequence._payoff import (
    DEFAULT_MAX_PAYOFF_BYTES,
    reserve_payoff_tables,
    sample_payoff_batch,
)
from skpapers.utils import restore_on_error
from skpapers.utils._base import SkorchEstimatorMixin, TrainingNetMixin
from skpapers.utils._errors import names_estimator
from skpapers.utils._persistence import (
    loadable_device,
    net_state,
    restore_net,
)
from skpapers.utils._torch import check_optimizer, seeded, use_worker_threads
from skpapers.utils._validation import _check_ordered, _check_reference_tokens

# Ids of the vocabularies: 0 pads both; the source has an unknown token and
# an end marker (so that no source is empty); the target has begin and end.
UNK, SOURCE_END = 1, 2
BOS, EOS = 1, 2
_FIRST_TOKEN = 3
_PREDICT_BATCH = 256


class Vocabulary:
    """Tokens to ids from ``_FIRST_TOKEN`` on, in order of first appearance."""

    def __init__(self, sequences):
        self.tokens = list(dict.fromkeys(token for s in sequences for token in s))
        self.index = {token: i + _FIRST_TOKEN for i, token in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens) + _FIRST_TOKEN

    def encode(self, sequence, *, unknown=None):
        return [self.index.get(token, unknown) for token in sequence]

    def decode(self, ids):
        return [self.tokens[i - _FIRST_TOKEN] for i in ids]

    def __getstate__(self):
        # the tokens alone: skops keeps a dict's keys only if they are str, and
        # tuple tokens are allowed; the index is rebuilt from them on load
        return {"tokens": self.tokens}

    def __setstate__(self, state):
        self.__init__([state["tokens"]])


def _padded(sequences):
    """Pad lists of ids with ``PAD`` into an int64 array; return it and lengths."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    array = np.full((len(sequences), max(lengths.max(initial=0), 1)), PAD, np.int64)
    for row, sequence in enumerate(sequences):
        array[row, : len(sequence)] = sequence
    return array, lengths


class RMLNet(TrainingNetMixin, NeuralNet):
    """A skorch net whose training step sees payoff samples, not the targets.

    ``X`` is a dict of ``source``, ``source_lengths``, ``target`` and
    ``target_lengths`` arrays. Each training step replaces every target by
    ``n_samples`` draws from the exponentiated payoff distribution around it
    (:func:`~skpapers.sequence.sample_payoff_batch`); with ``tau=0`` the
    draws are the targets and the step is plain maximum likelihood.
    Validation scores the targets themselves. Each epoch is seeded by
    ``seed`` and its index (see :class:`~skpapers.utils._base.TrainingNetMixin`).
    The sampler's tables live in ``payoff_cache_``, so that they go with the
    net, and may hold at most ``max_payoff_bytes``. With ``batch_by_length``
    the training batches come from a
    :class:`~skpapers.sequence.LengthBatchSampler`.
    """

    def __init__(
        self,
        *args,
        tau=0.0,
        reward="edit",
        n_samples=1,
        n_target_tokens=None,
        seed=0,
        max_payoff_bytes=DEFAULT_MAX_PAYOFF_BYTES,
        batch_by_length=True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.batch_by_length = batch_by_length
        self.tau, self.reward, self.n_samples = tau, reward, n_samples
        self.n_target_tokens = n_target_tokens
        self.seed = seed
        self.max_payoff_bytes = max_payoff_bytes

    @property
    def payoff_cache_(self):
        """The payoff sampler's tables, built as target lengths need them."""
        return self.__dict__.setdefault("_payoff_cache", {})

    def reserve_payoff_tables(self, target_lengths):
        """Build the sampler's tables for these target lengths before training,
        so that targets too long for ``max_payoff_bytes`` are refused at once."""
        if self.tau > 0:
            reserve_payoff_tables(
                self.payoff_cache_,
                np.unique(target_lengths).tolist(),
                self.n_target_tokens - _FIRST_TOKEN,
                tau=self.tau,
                reward=self.reward,
                max_payoff_bytes=self.max_payoff_bytes,
            )

    def get_iterator(self, dataset, training=False):
        """skorch's iterator, but training batches by length with
        ``batch_by_length`` (the other ``iterator_train__*`` settings kept)."""
        X = getattr(dataset, "X", None)
        if not (training and self.batch_by_length and isinstance(X, dict)):
            return super().get_iterator(dataset, training=training)
        kwargs = self.get_params_for("iterator_train")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        kwargs.pop("shuffle", None)
        lengths = pair_lengths(X["source_lengths"], X["target_lengths"])
        sampler = LengthBatchSampler(
            lengths, batch_size=len(lengths) if batch_size == -1 else batch_size
        )
        return self.iterator_train(
            _PairBatches(X), batch_sampler=sampler, collate_fn=_as_tensors, **kwargs
        )

    def augment(self, source, source_lengths, target, target_lengths):
        """The batch with each target replaced by its payoff samples."""
        if self.n_samples > 1:
            rows = torch.arange(len(target), device=target.device)
            rows = rows.repeat_interleave(self.n_samples)
            source, source_lengths = source[rows], source_lengths[rows]
            target, target_lengths = target[rows], target_lengths[rows]
        if self.tau > 0:
            target, target_lengths = sample_payoff_batch(
                target,
                target_lengths,
                low=_FIRST_TOKEN,
                high=self.n_target_tokens,
                tau=self.tau,
                reward=self.reward,
                cache=self.payoff_cache_,
                max_payoff_bytes=self.max_payoff_bytes,
            )
        return source, source_lengths, target, target_lengths

    def _parts(self, batch):
        X = to_tensor(batch[0], device=self.device)
        return X["source"], X["source_lengths"], X["target"], X["target_lengths"]

    def batch_loss(self, batch, **fit_params):
        """The loss of a batch whose targets are replaced by payoff samples."""
        parts = self.augment(*self._parts(batch))
        return sequence_loss(self.module_, self.criterion_, *parts)

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        with torch.no_grad():
            loss, logits = sequence_loss(
                self.module_, self.criterion_, *self._parts(batch)
            )
        return {"loss": loss, "y_pred": logits}


def sequence_loss(module, criterion, source, source_lengths, target, target_lengths):
    """The teacher-forced loss of a batch of pairs, and its logits.

    The decoder reads ``[BOS] + y`` and is scored on ``y + [EOS]``; the
    source is cut to the batch's longest. The loss every training and
    validation step of :class:`RMLNet` computes, and the benchmark's plain
    loop too.

    Parameters
    ----------
    module : Seq2Seq
        The model.
    criterion : callable
        ``criterion(logits[N, V], gold[N])``, padding ignored.
    source, source_lengths, target, target_lengths : Tensor
        The encoded batch: ``source`` ends in its end marker, ``target`` has
        no markers; both padded with ``PAD``.

    Returns
    -------
    loss : Tensor
        Scalar.
    logits : Tensor[B, T, V]
        The decoder's output at each position.
    """
    source = source[:, : max(int(source_lengths.max()), 1)]  # the batch's own
    decoder_input, gold = _teacher_forcing(target, target_lengths)
    logits = module(source, source_lengths, decoder_input)
    return criterion(logits.flatten(0, 1), gold.flatten()), logits


class _PairBatches(torch.utils.data.Dataset):
    """The encoded pairs, fetched a whole batch at a time by indexing."""

    def __init__(self, arrays):
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays["source"])

    def __getitems__(self, rows):
        return {key: value[rows] for key, value in self.arrays.items()}


def _as_tensors(arrays):
    """A batch as skorch's ``(X, y)``: ``X`` a dict of tensors, no ``y``."""
    return {key: torch.from_numpy(value) for key, value in arrays.items()}, None


def _teacher_forcing(target, lengths):
    """``[BOS] + y`` as the decoder's input and ``y + [EOS]`` as its gold."""
    batch = target.shape[0]
    width = int(lengths.max()) + 1 if batch else 1
    positions = torch.arange(width, device=target.device)
    inside = positions[None, :] < lengths[:, None]
    body = torch.full((batch, width), PAD, dtype=target.dtype, device=target.device)
    body[:, : min(width, target.shape[1])] = target[:, :width]
    body = body.masked_fill(~inside, PAD)
    gold = body.clone()
    gold[torch.arange(batch, device=target.device), lengths] = EOS
    bos = torch.full((batch, 1), BOS, dtype=target.dtype, device=target.device)
    decoder_input = torch.cat([bos, body[:, :-1]], dim=1)
    return decoder_input, gold


class ValidationError(Callback):
    """Adds ``valid_error``, the edit error rate of greedy decoding, per epoch."""

    def __init__(self, source, source_lengths, references, max_length):
        self.source, self.source_lengths = source, source_lengths
        self.references, self.max_length = references, max_length

    def on_epoch_end(self, net, **kwargs):
        predicted = _decode(
            net.module_,
            self.source,
            self.source_lengths,
            device=net.device,
            beam_size=1,
            max_length=self.max_length,
        )
        net.history.record("valid_error", edit_error_rate(self.references, predicted))


def _decode(module, source, source_lengths, *, device, beam_size, max_length):
    """Decoded id lists for padded ``source``, in batches, in eval mode."""
    was_training = module.training
    module.eval()
    results = []
    try:
        for start in range(0, len(source), _PREDICT_BATCH):
            stop = start + _PREDICT_BATCH
            lengths = source_lengths[start:stop]
            chunk = source[start:stop, : max(int(lengths.max()), 1)]
            results += beam_search(
                module,
                torch.as_tensor(chunk, device=device),
                torch.as_tensor(lengths, device=device),
                beam_size=beam_size,
                max_length=max_length,
                bos=BOS,
                eos=EOS,
            )
    finally:
        module.train(was_training)
    return results


class RMLSequencePredictor(SkorchEstimatorMixin, BaseEstimator):
    """Sequence-to-sequence predictor trained by reward-augmented ML.

    An attention encoder-decoder (:class:`~skpapers.sequence.Seq2Seq`)
    mapping input sequences to output sequences, trained as Norouzi et al.
    (2016) propose: at every step each target ``y*`` is replaced by a sample
    from the exponentiated payoff distribution
    ``q(y | y*; tau) ∝ exp(-d(y, y*) / tau)`` around it, with ``d`` the edit
    or Hamming distance (see :func:`~skpapers.sequence.payoff_distribution`
    for its exact form). ``tau=0`` is maximum likelihood. Predictions are
    decoded by batched beam search.

    Parameters
    ----------
    tau : float, default=0.7
        Temperature of the payoff distribution; 0 trains on the targets
        themselves (maximum likelihood). With the edit reward, 0.7 edits
        about a tenth of a short target's tokens, and did best on CMUdict
        grapheme-to-phoneme (``skpapers reproduce rml``); at the paper's
        TIMIT optimum of 0.9 about half are edited.

    reward : {"edit", "hamming"}, default="edit"
        Distance the payoff is the negative of: Levenshtein (insertions,
        deletions and substitutions) or Hamming (substitutions only).

    n_samples : int, default=1
        Payoff samples per target and step.

    embedding_dim : int, default=64
        Size of the token embeddings.

    hidden_size : int, default=128
        Units of each recurrent layer.

    num_layers : int, default=1
        Recurrent layers of the encoder and of the decoder.

    cell : {"gru", "lstm"}, default="gru"
        Recurrent cell.

    dropout : float, default=0.0
        Dropout on embeddings, between layers and before the output layer.

    beam_size : int, default=1
        Hypotheses kept in decoding; 1 is greedy.

    max_output_length : int or None, default=None
        Most tokens predicted per sequence. ``None``: twice the longest
        training output plus 5.

    max_payoff_bytes : int or None, default=268435456
        Most bytes (256 MiB) the payoff sampler's tables may hold; they are
        built before training, and ``fit`` refuses targets that would need
        more with a ValueError. They grow about as ``L^1.5`` for outputs of
        every length up to ``L`` (see
        :func:`~skpapers.sequence.sample_payoff_batch`; measured sizes are in
        the benchmarks' README). ``None``: no limit.

    optimizer : {"sgd", "adam", "adamw"} or torch optimizer class, default="adam"
        Optimiser; a class is called with the parameters, ``lr`` and
        ``weight_decay``.

    lr : float, default=1e-3
        Learning rate.

    weight_decay : float, default=0.0
        L2 penalty (AdamW's decoupled decay), applied by the optimiser.

    batch_size : int, default=64
        Sequence pairs per mini-batch (at most, with ``batch_by_length``).

    batch_by_length : bool, default=True
        Make each training batch of pairs of similar length: the pairs are
        shuffled, sorted by length within windows of 50 batches, cut into
        batches and the batches shuffled
        (:class:`~skpapers.sequence.LengthBatchSampler`). Less padding to
        compute, and a pair much longer than the median trains in a smaller
        batch: a batch holds at most ``batch_size`` pairs of twice the median
        length's padded positions, so one long pair cannot make its whole
        batch as long. ``False``: batches of ``batch_size`` pairs in a plain
        random order.

    max_epochs : int, default=20
        Passes over the training data.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the pairs, record their greedy
        edit error rate each epoch as ``valid_error``, stop when it has not
        improved for ``n_iter_no_change`` epochs and keep the best epoch's
        weights.

    validation_fraction : float, default=0.1
        Share of the pairs held out by ``early_stopping``.

    n_iter_no_change : int, default=5
        Epochs without improvement before stopping.

    callbacks : list of skorch callbacks or None, default=None
        Extra :mod:`skorch.callbacks` (or ``(name, callback)`` pairs) for
        the net, such as :class:`~skorch.callbacks.Checkpoint`,
        :class:`~skorch.callbacks.LoadInitState` or
        :class:`~skorch.callbacks.LRScheduler`. Each fit works on a copy.

    warm_start : bool, default=False
        A fit of a fitted predictor trains ``max_epochs`` more epochs from
        its weights and optimizer state, with the vocabularies (and any
        validation pairs) of the first fit, rather than starting anew. It
        trains with the parameters as they are now, as ``partial_fit`` does:
        ``lr``, ``weight_decay`` and ``optimizer__*`` are written into the
        optimizer, keeping its state (another ``optimizer`` starts a new one
        over the same weights); ``tau``, ``reward``, ``n_samples``,
        ``batch_size``, ``batch_by_length``, ``n_iter_no_change``,
        ``callbacks``, ``verbose`` and the other routed parameters apply
        too. ``embedding_dim``, ``hidden_size``, ``num_layers``, ``cell`` and
        ``dropout`` shape the network, and ``early_stopping`` and
        ``validation_fraction`` the validation pairs the first fit held out:
        a change to them is refused with a ``ValueError``.

    device : str, default="cpu"
        Torch device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, the payoff samples and the
        validation split; torch's global random state is left as it was.

    verbose : int, default=0
        ``1`` prints the losses (and ``valid_error``) per epoch; ``2`` adds a
        progress bar within each epoch.

    **kwargs : dict
        skorch's routed parameters, passed to the parts of the net:
        ``optimizer__*`` (e.g. ``optimizer__betas=(0.9, 0.98)``),
        ``criterion__*`` (e.g. ``criterion__label_smoothing=0.1``),
        ``iterator_train__*``, ``iterator_valid__*`` and
        ``callbacks__<name>__*`` (e.g. ``callbacks__clip__gradient_clip_value``).
        They are parameters like the others; a name the net does not have is
        refused by ``fit``.

    Attributes
    ----------
    net_ : RMLNet
        The fitted skorch net; ``net_.module_`` is the model.

    history_ : skorch.History
        Per epoch ``train_loss`` and, with ``early_stopping``,
        ``valid_loss`` and ``valid_error``.

    n_iter_ : int
        Complete epochs trained, over all fits of a warm start.

    max_output_length_ : int
        The output length bound used by :meth:`predict`.

    References
    ----------
    Norouzi, M., Bengio, S., Chen, Z., Jaitly, N., Schuster, M., Wu, Y. and
    Schuurmans, D. (2016). Reward augmented maximum likelihood for neural
    structured prediction. NIPS.

    Examples
    --------
    >>> from skpapers.sequence import RMLSequencePredictor
    >>> words = ["abc", "bca", "cab", "aab", "bba", "ccb"] * 20
    >>> model = RMLSequencePredictor(tau=0.5, max_epochs=30, random_state=0)
    >>> model.fit(words, [w[::-1] for w in words]).predict(["abc", "cab"])
    ['cba', 'bac']
    """

    _parameter_constraints: dict = {
        **SkorchEstimatorMixin._parameter_constraints,
        "tau": [Interval(Real, 0, None, closed="left")],
        "reward": [StrOptions({"edit", "hamming"})],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "cell": [StrOptions({"gru", "lstm"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "beam_size": [Interval(Integral, 1, None, closed="left")],
        "max_output_length": [Interval(Integral, 1, None, closed="left"), None],
        "max_payoff_bytes": [Interval(Integral, 1, None, closed="left"), None],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_by_length": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    }
    _module_settings = {
        "module__n_source_tokens": "X",
        "module__n_target_tokens": "y",
        **{
            f"module__{name}": name
            for name in ("embedding_dim", "hidden_size", "num_layers", "cell")
        },
        "module__dropout": "dropout",
    }
    # the network's shape, and the validation pairs the first fit holds out
    _architecture_params = (
        "embedding_dim",
        "hidden_size",
        "num_layers",
        "cell",
        "dropout",
        "early_stopping",
        "validation_fraction",
    )

    def __init__(
        self,
        *,
        tau=0.7,
        reward="edit",
        n_samples=1,
        embedding_dim=64,
        hidden_size=128,
        num_layers=1,
        cell="gru",
        dropout=0.0,
        beam_size=1,
        max_output_length=None,
        max_payoff_bytes=DEFAULT_MAX_PAYOFF_BYTES,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        batch_size=64,
        batch_by_length=True,
        max_epochs=20,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        callbacks=None,
        warm_start=False,
        device="cpu",
        random_state=None,
        verbose=0,
        **kwargs,
    ):
        self.tau = tau
        self.reward = reward
        self.n_samples = n_samples
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.dropout = dropout
        self.beam_size = beam_size
        self.max_output_length = max_output_length
        self.max_payoff_bytes = max_payoff_bytes
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.batch_by_length = batch_by_length
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self._set_routed_params(kwargs)

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn to map each sequence of ``X`` to its sequence in ``y``.

        Parameters
        ----------
        X : list of str or of token sequences
            Input sequences; a string is a sequence of characters.
        y : list of str or of token sequences
            Output sequences, one per input; :meth:`predict` returns the
            same kind (strings if every ``y`` is a string).

        Returns
        -------
        self : RMLSequencePredictor
            The fitted predictor.
        """
        with restore_on_error(self):
            optimizer, device, seed = self._start_fit()
            warm = self.warm_start and hasattr(self, "net_")
            if warm:
                self._check_architecture("a warm start")
            X, y = _check_pairs(X, y)
            if warm:
                train = Dataset(_arrays(self._encode(X, y)), None)
                net = self._continued_net(optimizer)
            else:
                self._learn_vocabularies(X, y)
                data = self._encode(X, y)
                train, valid = _split(
                    data, self.early_stopping, self.validation_fraction, seed
                )
                self._record_architecture()
                net = self._build_net(optimizer, device, valid, seed)
            self._train(net, train, device, self.max_epochs)
            self._set_history(net)
            # past _fit_context and names_estimator: the caller's line
            self._warn_if_not_converged(net, stacklevel=4)
        return self

    @names_estimator
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """Train one epoch on ``X``, ``y``, starting from the current weights.

        The first call learns the vocabularies (and the output length bound)
        from its data and starts from new random weights; later calls train
        on pairs whose outputs use only tokens seen in it.

        Parameters
        ----------
        X : list of str or of token sequences
            Input sequences.
        y : list of str or of token sequences
            Output sequences, one per input.

        Returns
        -------
        self : RMLSequencePredictor
            The updated predictor.
        """
        with restore_on_error(self):
            optimizer, device, seed = self._start_fit()
            first = not hasattr(self, "net_")
            if not first:
                self._check_architecture("partial_fit")
            X, y = _check_pairs(X, y)
            if first:
                self._learn_vocabularies(X, y)
                self._record_architecture()
            train = Dataset(_arrays(self._encode(X, y)), None)
            net = (
                self._build_net(optimizer, device, None, seed)
                if first
                else self._continued_net(optimizer)
            )
            self._train(net, train, device, 1)
            self._set_history(net)
        return self

    def _learn_vocabularies(self, X, y):
        """The vocabularies, output type and length bound of a first fit."""
        self.source_vocabulary_ = Vocabulary(X)
        self.target_vocabulary_ = Vocabulary(y)
        self._check_output_tokens()
        self.output_type_ = str if all(isinstance(s, str) for s in y) else list
        longest = max(len(s) for s in y)
        self.max_output_length_ = self.max_output_length or 2 * longest + 5

    def _check_output_tokens(self):
        """Refuse ``tau > 0`` where the outputs have fewer than 2 tokens."""
        if self.tau > 0 and len(self.target_vocabulary_.tokens) < 2:
            raise ValueError(
                f"tau={self.tau} samples other output sequences, which needs at "
                "least 2 distinct output tokens; y has "
                f"{len(self.target_vocabulary_.tokens)}. Use tau=0 for such data."
            )

    def _continued_net(self, optimizer):
        """``net_`` given the training settings of the parameters as they are
        now, for a warm start or a later ``partial_fit``."""
        self._check_output_tokens()  # tau may have changed
        net = self.net_
        valid = getattr(net, "validation_pairs_", None)
        self._update_net(net, self._build_net(optimizer, net.device, valid, net.seed))
        return net

    def _train(self, net, train, device, epochs=None):
        """Train ``net`` (initialised here if new) ``epochs`` more epochs."""
        net.reserve_payoff_tables(train.X["target_lengths"])
        with seeded(net.seed, device):
            if not net.initialized_:
                self._check_routed_params(net)
                net.initialize()
            net.partial_fit(train, None, epochs=epochs)

    def _encode_sources(self, X):
        """Padded source ids, each source ending in its end marker."""
        return _padded(
            [[*self.source_vocabulary_.encode(s, unknown=UNK), SOURCE_END] for s in X]
        )

    def _encode(self, X, y):
        source, source_lengths = self._encode_sources(X)
        target, target_lengths = _padded(
            [self.target_vocabulary_.encode(s, unknown=PAD) for s in y]
        )
        if (target[np.arange(target.shape[1]) < target_lengths[:, None]] == PAD).any():
            raise ValueError(
                "y holds output tokens the first fit did not see; a warm start "
                "or partial_fit can only learn outputs over the tokens "
                f"{self.target_vocabulary_.tokens}."
            )
        references = [list(s) for s in y]
        return {
            "source": source,
            "source_lengths": source_lengths,
            "target": target,
            "target_lengths": target_lengths,
            "references": references,
        }

    def _build_net(self, optimizer, device, valid, seed):
        callbacks = [
            *self._user_callbacks(),
            ("clip", GradientNormClipping(5.0)),
            *self._verbosity_callbacks(),
        ]
        train_split = None
        if valid is not None:
            train_split = predefined_split(Dataset(_arrays(valid), None))
            max_length = self.max_output_length_
            references = [
                self.target_vocabulary_.encode(s) for s in valid["references"]
            ]
            callbacks += [
                (
                    "valid_error",
                    ValidationError(
                        valid["source"], valid["source_lengths"], references, max_length
                    ),
                ),
                (
                    "stopping",
                    EarlyStopping(
                        monitor="valid_error",
                        patience=self.n_iter_no_change,
                        threshold=0.0,
                        threshold_mode="abs",
                        load_best=True,
                        sink=print if self.verbose else _silent,
                    ),
                ),
            ]
        params = dict(
            module__n_source_tokens=len(self.source_vocabulary_),
            module__n_target_tokens=len(self.target_vocabulary_),
            module__embedding_dim=self.embedding_dim,
            module__hidden_size=self.hidden_size,
            module__num_layers=self.num_layers,
            module__cell=self.cell,
            module__dropout=self.dropout,
            criterion=torch.nn.CrossEntropyLoss,
            criterion__ignore_index=PAD,
            optimizer=optimizer,
            lr=self.lr,
            optimizer__weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=int(self.verbose > 0),
            tau=self.tau,
            reward=self.reward,
            n_samples=self.n_samples,
            n_target_tokens=len(self.target_vocabulary_),
            seed=seed,
            max_payoff_bytes=self.max_payoff_bytes,
            batch_by_length=self.batch_by_length,
        )
        params.update(self._net_params(validation=valid is not None))
        net = RMLNet(Seq2Seq, **params)
        # kept with the net, and saved with it, so that a warm start of a
        # loaded model validates on the same pairs
        net.validation_pairs_ = valid
        return net

    @names_estimator
    def predict(self, X):
        """Most probable output sequence of each input, by beam search.

        Parameters
        ----------
        X : list of str or of token sequences
            Input sequences; tokens not seen in fit are unknown tokens.

        Returns
        -------
        list of str or of lists
            One output per input, of the kind ``y`` was in fit.
        """
        use_worker_threads()
        check_is_fitted(self)
        X = _check_sequences(X, "X", allow_empty_list=True)
        if not X:
            return []
        source, source_lengths = self._encode_sources(X)
        ids = _decode(
            self.net_.module_,
            source,
            source_lengths,
            device=self.net_.device,
            beam_size=self.beam_size,
            max_length=self.max_output_length_,
        )
        outputs = [self.target_vocabulary_.decode(row) for row in ids]
        if self.output_type_ is str:
            return ["".join(map(str, tokens)) for tokens in outputs]
        return outputs

    @names_estimator
    def score(self, X, y):
        """``1 - edit_error_rate(y, predict(X))``: higher is better.

        Parameters
        ----------
        X : list of str or of token sequences
            Input sequences.
        y : list of str or of token sequences
            Their reference outputs; at least one must hold a token, as the
            error rate divides by their total length.

        Returns
        -------
        float
            1 for perfect predictions; may fall below 0.

        Raises
        ------
        ValueError
            If every sequence of ``y`` is empty: the error rate is then
            undefined (:func:`~skpapers.metrics.edit_error_rate` gives 0 or
            ``inf``, which would make the score 1 or ``-inf``).
        """
        y = _check_sequences(y, "y")
        _check_reference_tokens(y)
        return 1.0 - edit_error_rate([list(s) for s in y], self.predict(X))

    _derived_attributes = ("history_",)

    def _network_arrays(self):
        state = net_state(self.net_)
        state["validation"] = getattr(self.net_, "validation_pairs_", None)
        return state

    def _restore_network(self, saved):
        device = str(loadable_device(self))
        optimizer = check_optimizer(saved["optimizer_class"])
        seed = saved["params"].get("seed", 0)
        valid = saved.get("validation")
        net = self._build_net(optimizer, device, valid, seed)
        self._set_history(restore_net(net, saved))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = True
        tags.target_tags.one_d_labels = False
        return tags


def _check_pairs(X, y):
    """``X`` and ``y`` as lists of as many sequences, or a clear error."""
    X, y = _check_sequences(X, "X"), _check_sequences(y, "y")
    if len(X) != len(y):
        raise ValueError(
            f"X and y hold {len(X)} and {len(y)} sequences; they must "
            "hold the same number."
        )
    return X, y


def _arrays(data):
    return {key: value for key, value in data.items() if key != "references"}


def _split(data, early_stopping, fraction, seed):
    """Training data and, with ``early_stopping``, held-out validation data."""
    n_pairs = len(data["source"])
    if not early_stopping:
        return Dataset(_arrays(data), None), None
    n_valid = int(np.ceil(fraction * n_pairs))
    if n_valid >= n_pairs:
        raise ValueError(
            f"early_stopping holds out validation_fraction={fraction} of {n_pairs} "
            "pairs, which leaves none to train on; use more data or "
            "early_stopping=False."
        )
    order = check_random_state(seed).permutation(n_pairs)
    parts = []
    for rows in (order[n_valid:], order[:n_valid]):
        part = {key: value[rows] for key, value in _arrays(data).items()}
        part["references"] = [data["references"][i] for i in rows]
        parts.append(part)
    return Dataset(_arrays(parts[0]), None), parts[1]


def _check_sequences(sequences, name, *, allow_empty_list=False):
    """A list of sequences (strings or token lists), or a clear error."""
    _check_ordered(sequences, name)
    if isinstance(sequences, str) or not hasattr(sequences, "__len__"):
        raise TypeError(
            f"{name} must be a list of sequences (strings or lists of tokens); "
            f"got {type(sequences).__name__}."
        )
    sequences = list(sequences)
    if not sequences and not allow_empty_list:
        raise ValueError(f"{name} holds no sequences: at least one is needed.")
    for i, sequence in enumerate(sequences):
        if isinstance(sequence, str):
            continue
        if not isinstance(sequence, (list, tuple, np.ndarray)):
            raise TypeError(
                f"{name}[{i}] is of type {type(sequence).__name__}; each element of "
                f"{name} must be a string or a list of tokens."
            )
        for token in sequence:
            if isinstance(token, float | np.floating) and np.isnan(token):
                raise ValueError(f"{name}[{i}] holds NaN, which is not a token.")
            if not isinstance(token, Hashable):
                raise TypeError(
                    f"{name}[{i}] holds a token of type {type(token).__name__}; "
                    "tokens must be hashable (strings, numbers, tuples)."
                )
    return sequences


def _silent(*args, **kwargs):
    """A sink that prints nothing."""
