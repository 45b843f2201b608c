"""Time RMLSequencePredictor's training and decoding against plain PyTorch.

Five parts, each printing one table, all but ``sampler`` on grapheme-to-phoneme
pairs of ``load_cmudict_g2p`` (words drawn with a fixed seed):

- ``train``: target tokens per second of ``RMLSequencePredictor.fit``
  against a minimal hand-written PyTorch loop training the same
  :class:`~skpapers.sequence.Seq2Seq`: the estimator's
  :class:`~skpapers.sequence.LengthBatchSampler` batches, tensor indexing
  per batch, ``sample_payoff_batch`` called as ``RMLNet.augment`` calls it,
  then the estimator's own ``sequence_loss`` (teacher forcing,
  ``CrossEntropyLoss`` ignoring padding) and the shared ``training_step``
  (backward, gradient norm clipped at 5, Adam step), at ``tau=0.9`` and at ``tau=0`` (no
  sampling). Both start from the same seed, see the same batches in the same
  order and draw the same samples (each epoch seeded as the estimator's net
  seeds it), so they end on the same training loss: the time between them is
  overhead. Target: the whole fit at most 1.1 times the plain loop. Each
  fit's peak memory (``_memory.peak_memory``: the peak resident set a
  fresh process adds making the fit) is reported beside its time.
- ``sampling``: the share of a training step spent in
  ``sample_payoff_batch``, per reward: the sampler alone on a run of batches
  against whole steps (sampling, teacher forcing, forward, backward, clipping,
  Adam) on the same batches. Target: well under 5%.
- ``sampler``: the payoff sampler alone against the target length ``L`` =
  10, 100, 1000, 10 000 (``--lengths``), per reward: a batch of 64 targets
  with lengths spread over ``1 .. L``, ``V = 40``, ``tau = 0.9``, in a fresh
  process each: the first call's time (which builds the tables), the median
  time of a draw after it, the tables' bytes, the process's peak RSS above
  its start, and the same for tables covering every length ``0 .. L``; next
  to the bytes the former ``(L + 1)^3`` tables kept. No data needed.
- ``beam``: sequences per second of batched beam search (``predict``, and
  ``beam_search`` on all the sequences at once) against ``beam_search`` on one
  sequence at a time, for beams of 1, 4 and 8, with a model trained for a few
  epochs; the two decodings must find the same outputs.
- ``long``: the peak memory a one-epoch fit at the defaults adds with one
  target of ``--long-target`` tokens (1000) among the words, with and
  without ``batch_by_length``. Target: under 1 GB more than without it.

Usage::

    python benchmarks/bench_rml.py             # about 4 min
    python benchmarks/bench_rml.py --quick     # about 30 s
    python benchmarks/bench_rml.py --parts sampling beam --threads 2 \
        --json rml.json
    python benchmarks/bench_rml.py --parts sampler   # about 2 min, not by default
    python benchmarks/bench_rml.py --parts long --words 2000   # about 1 min

Torch runs on ``--threads`` threads (``torch.set_num_threads``), 1 by
default. Timings depend on the machine and on what else runs on it: this
script asserts nothing about them.
"""

import argparse
import functools
import json
import multiprocessing
import resource
import time

import numpy as np
import torch
from _environment import environment
from _memory import format_bytes, peak_memory

from skpapers.datasets import load_cmudict_g2p
from skpapers.sequence import LengthBatchSampler, RMLSequencePredictor, Seq2Seq
from skpapers.sequence._batching import pair_lengths
from skpapers.sequence._modules import PAD, beam_search
from skpapers.sequence._payoff import _PayoffTables, sample_payoff_batch
from skpapers.sequence._rml import (
    _FIRST_TOKEN,
    BOS,
    EOS,
    SOURCE_END,
    UNK,
    sequence_loss,
)
from skpapers.utils._base import training_step
from skpapers.utils._torch import seeded, torch_seed

PARTS = ("train", "sampling", "beam", "sampler", "long")
DEFAULT_PARTS = ("train", "sampling", "beam")
SEED = 0
BATCH_SIZE = 64
LR = 1e-3
CLIP = 5.0  # RMLNet's GradientNormClipping
MODEL = {"embedding_dim": 64, "hidden_size": 128, "num_layers": 1, "cell": "gru"}


# -- data -----------------------------------------------------------------------


def load_pairs(n_words):
    """Training and test words with their pronunciations (lists of phonemes)."""
    data = load_cmudict_g2p(max_words=n_words, random_state=SEED)
    return data.X_train, data.y_train, data.X_test, data.y_test


def _ids(sequences):
    """Token to id, from ``_FIRST_TOKEN`` on, in order of first appearance."""
    tokens = dict.fromkeys(token for sequence in sequences for token in sequence)
    return {token: i + _FIRST_TOKEN for i, token in enumerate(tokens)}


def _pad(rows):
    """``Tensor[N, longest]`` of ids padded with ``PAD``, and ``Tensor[N]`` lengths."""
    lengths = torch.tensor([len(row) for row in rows])
    padded = torch.full((len(rows), int(lengths.max())), PAD, dtype=torch.int64)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = torch.tensor(row)
    return padded, lengths


def encode(X, y):
    """The pairs as the estimator encodes them: padded to the longest of all.

    Returns the tensors (``source`` ends with ``SOURCE_END``; ``target`` has
    no markers) and the two vocabulary sizes, padding and markers included.
    """
    source_ids, target_ids = _ids(X), _ids(y)
    source, source_lengths = _pad(
        [[source_ids[t] for t in word] + [SOURCE_END] for word in X]
    )
    target, target_lengths = _pad([[target_ids[t] for t in phones] for phones in y])
    sizes = (len(source_ids) + _FIRST_TOKEN, len(target_ids) + _FIRST_TOKEN)
    return (source, source_lengths, target, target_lengths), sizes


def target_tokens(y):
    """Target tokens a pass over ``y`` predicts: each phoneme and one EOS."""
    return sum(len(phones) + 1 for phones in y)


# -- part 1: training throughput ----------------------------------------------------


def _epoch_batches(sampler):
    """The batches a ``DataLoader`` over ``sampler`` serves in an epoch.

    The loader's iterator first draws a base seed for its workers, then the
    sampler a seed for its permutation. Drawing the same here keeps the plain
    loop's batches and payoff samples the estimator's.
    """
    torch.empty((), dtype=torch.int64).random_()  # the loader's worker seed
    return list(sampler)


class PlainStep:
    """One RML training step of a ``Seq2Seq``, written out in plain PyTorch."""

    def __init__(self, sizes, *, tau, reward):
        self.module = Seq2Seq(*sizes, **MODEL)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=LR)
        self.criterion = torch.nn.CrossEntropyLoss(ignore_index=PAD)
        self.n_target_tokens, self.tau, self.reward = sizes[1], tau, reward
        self.module.train()

    def sample(self, target, target_lengths):
        return sample_payoff_batch(
            target,
            target_lengths,
            low=_FIRST_TOKEN,
            high=self.n_target_tokens,
            tau=self.tau,
            reward=self.reward,
        )

    def __call__(self, source, source_lengths, target, target_lengths):
        if self.tau > 0:
            target, target_lengths = self.sample(target, target_lengths)
        parts = source, source_lengths, target, target_lengths
        loss = training_step(
            self.optimizer,
            lambda: sequence_loss(self.module, self.criterion, *parts)[0],
            on_gradients=self.clip,
        )
        return loss.item()

    def clip(self):
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), CLIP)


def train_plain(tensors, sizes, *, tau, epochs):
    """The plain loop; per-epoch seconds and the last epoch's mean loss."""
    n_pairs = len(tensors[0])
    sampler = LengthBatchSampler(
        pair_lengths(tensors[1], tensors[3]), batch_size=BATCH_SIZE
    )
    seed = torch_seed(SEED)
    with seeded(seed):
        step = PlainStep(sizes, tau=tau, reward="edit")
        durations = []
        for epoch in range(epochs):
            start = time.perf_counter()
            # each epoch seeded as the estimator's net seeds it: the same steps
            torch.default_generator.manual_seed(seed + epoch + 1)
            total = 0.0
            for rows in _epoch_batches(sampler):
                total += step(*(part[rows] for part in tensors)) * len(rows)
            durations.append(time.perf_counter() - start)
    return durations, total / n_pairs


def train_estimator(X, y, *, tau, epochs):
    """``RMLSequencePredictor.fit``; skorch's per-epoch seconds and loss."""
    model = RMLSequencePredictor(
        tau=tau,
        reward="edit",
        **MODEL,
        optimizer="adam",
        lr=LR,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        random_state=SEED,
    )
    model.fit(X, y)
    return list(model.history_[:, "dur"]), model.history_[-1, "train_loss"]


def time_alternating(runners, n_epochs, repeats):
    """Median wall and CPU seconds of each runner, median epoch, last results.

    The runners alternate, after one warm-up round, so that a busy moment on
    the machine slows all of them alike. The CPU seconds (of this process,
    all its threads) barely move when other processes share the cores, which
    the wall-clock seconds do.
    """
    walls = {name: [] for name in runners}
    cpus = {name: [] for name in runners}
    epochs = {name: [] for name in runners}
    results = {}
    for repeat in range(repeats + 1):
        for name, run in runners.items():
            wall, cpu = time.perf_counter(), time.process_time()
            durations, results[name] = run(epochs=n_epochs)
            if repeat:
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
                epochs[name].extend(durations)
    medians = [
        {name: float(np.median(t)) for name, t in times.items()}
        for times in (walls, cpus, epochs)
    ]
    return (*medians, results)


def train_rows(X, y, taus, epochs, repeats):
    """One row per ``tau``."""
    tensors, sizes = encode(X, y)
    n_tokens = target_tokens(y)
    rows = []
    for tau in taus:
        runners = {
            "plain": functools.partial(train_plain, tensors, sizes, tau=tau),
            "ours": functools.partial(train_estimator, X, y, tau=tau),
        }
        wall, cpu, epoch, losses = time_alternating(runners, epochs, repeats)
        memory = {
            key: peak_memory(functools.partial(run, epochs=epochs))
            for key, run in runners.items()
        }
        row = {
            "tau": tau,
            "pairs": len(X),
            "epochs": epochs,
            "batches_per_epoch": -(-len(X) // BATCH_SIZE),
            "tokens_per_epoch": n_tokens,
            **{f"{k}_tokens_per_s": epochs * n_tokens / t for k, t in wall.items()},
            "ours_epoch_tokens_per_s": n_tokens / epoch["ours"],
            "ours_over_plain": wall["ours"] / wall["plain"],
            "ours_epoch_over_plain": epoch["ours"] / epoch["plain"],
            "ours_cpu_over_plain": cpu["ours"] / cpu["plain"],
            "plain_loss": float(losses["plain"]),
            "loss_diff": abs(float(losses["ours"]) - float(losses["plain"])),
            **{f"{key}_peak_bytes": value for key, value in memory.items()},
        }
        rows.append(row)
        print(format_train_row(row), flush=True)
    return rows


TRAIN_HEADER = (
    f"{'tau':>4}{'pairs':>7}{'epochs':>7}{'batches':>8}"
    f"{'plain tok/s':>12}{'ours tok/s':>11}{'(epoch)':>9}"
    f"{'ours/plain':>11}{'(epoch)':>8}{'(cpu)':>8}{'final loss':>11}{'loss diff':>10}"
    f"{'plain MiB':>10}{'ours MiB':>9}"
)


def format_train_row(row):
    return (
        f"{row['tau']:>4g}{row['pairs']:>7}{row['epochs']:>7}"
        f"{row['batches_per_epoch']:>8}{row['plain_tokens_per_s']:>12.0f}"
        f"{row['ours_tokens_per_s']:>11.0f}{row['ours_epoch_tokens_per_s']:>9.0f}"
        f"{row['ours_over_plain']:>10.3f}x{row['ours_epoch_over_plain']:>7.3f}x"
        f"{row['ours_cpu_over_plain']:>7.3f}x"
        f"{row['plain_loss']:>11.4f}{row['loss_diff']:>10.1e}"
        f"{format_bytes(row['plain_peak_bytes']).split()[0]:>10}"
        f"{format_bytes(row['ours_peak_bytes']).split()[0]:>9}"
    )


# -- part 2: the sampler's share of a step -------------------------------------------


def sampling_rows(X, y, rewards, tau, n_batches, repeats):
    """One row per reward: sampler alone against whole steps, same batches."""
    tensors, sizes = encode(X, y)
    rows = []
    for reward in rewards:
        with seeded(torch_seed(SEED)):
            step = PlainStep(sizes, tau=tau, reward=reward)
            order = torch.randperm(len(X)).split(BATCH_SIZE)[:n_batches]
            batches = [tuple(part[rows] for part in tensors) for rows in order]
            times = {"sample": [], "step": []}
            for repeat in range(repeats + 1):
                start = time.perf_counter()
                for _, _, target, target_lengths in batches:
                    step.sample(target, target_lengths)
                sampled = time.perf_counter()
                for batch in batches:
                    step(*batch)
                stepped = time.perf_counter()
                if repeat:  # the first round warms up (and fills the table cache)
                    times["sample"].append(sampled - start)
                    times["step"].append(stepped - sampled)
        sample, whole = (float(np.median(times[key])) for key in ("sample", "step"))
        row = {
            "reward": reward,
            "tau": tau,
            "batches": len(batches),
            "batch_size": BATCH_SIZE,
            "sample_ms_per_batch": 1e3 * sample / len(batches),
            "step_ms_per_batch": 1e3 * whole / len(batches),
            "sample_share": sample / whole,
        }
        rows.append(row)
        print(format_sampling_row(row), flush=True)
    return rows


SAMPLING_HEADER = (
    f"{'reward':<9}{'tau':>4}{'batches':>8}{'batch':>6}"
    f"{'sample ms':>10}{'step ms':>9}{'share':>8}"
)


def format_sampling_row(row):
    return (
        f"{row['reward']:<9}{row['tau']:>4g}{row['batches']:>8}{row['batch_size']:>6}"
        f"{row['sample_ms_per_batch']:>10.2f}{row['step_ms_per_batch']:>9.1f}"
        f"{row['sample_share']:>8.2%}"
    )


# -- part 4: the sampler's time and memory against the target length ---------------


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sampler_child(length, reward, tau, vocab_size, repeats, threads, queue):
    """One row, in a fresh process, so that its peak RSS is its own."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(SEED)
    batch = torch.randint(3, 3 + vocab_size, (BATCH_SIZE, length), generator=generator)
    lengths = torch.linspace(1, length, BATCH_SIZE).round().long()
    kwargs = dict(tau=tau, low=3, high=3 + vocab_size, reward=reward)
    kwargs.update(generator=generator, cache={}, max_payoff_bytes=None)
    sample_payoff_batch(batch[:, :1], lengths.clamp(max=1), **kwargs)  # warm up
    start_rss = _peak_rss_mib()
    start = time.perf_counter()
    sample_payoff_batch(batch, lengths, **kwargs)
    first = time.perf_counter() - start
    draws = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample_payoff_batch(batch, lengths, **kwargs)
        draws.append(time.perf_counter() - start)
    (tables,) = kwargs["cache"].values()
    row = {
        "reward": reward,
        "L": length,
        "first_call_s": first,
        "draw_ms": 1e3 * float(np.median(draws)),
        "tables_mib": tables.nbytes / 2**20,
        "peak_rss_mib": _peak_rss_mib() - start_rss,
    }
    every = _PayoffTables(vocab_size, tau, reward, None)
    start = time.perf_counter()
    every.reserve(range(length + 1))
    row["all_lengths_s"] = time.perf_counter() - start
    row["all_lengths_mib"] = every.nbytes / 2**20
    row["all_lengths_peak_rss_mib"] = _peak_rss_mib() - start_rss
    # the former lru-cached tables: (L+1)^2 for Hamming; two of (L+1)^3 for edit
    side = length + 1
    row["former_mib"] = 8 * (side**2 if reward == "hamming" else 2 * side**3) / 2**20
    queue.put(row)


def sampler_rows(lengths, rewards, repeats, threads, tau=0.9, vocab_size=40):
    """One row per reward and length, each measured in a fresh process."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for reward in rewards:
        for length in lengths:
            queue = context.Queue()
            args = (length, reward, tau, vocab_size, repeats, threads, queue)
            child = context.Process(target=_sampler_child, args=args)
            child.start()
            row = queue.get()
            child.join()
            rows.append(row)
            print(format_sampler_row(row), flush=True)
    return rows


SAMPLER_HEADER = (
    f"{'reward':<9}{'L':>6}{'first s':>9}{'draw ms':>9}{'tables MiB':>11}"
    f"{'peak MiB':>9}{'all L s':>9}{'all MiB':>9}{'peak MiB':>9}{'former MiB':>12}"
)


def format_sampler_row(row):
    return (
        f"{row['reward']:<9}{row['L']:>6}{row['first_call_s']:>9.3f}"
        f"{row['draw_ms']:>9.2f}{row['tables_mib']:>11.2f}"
        f"{row['peak_rss_mib']:>9.0f}{row['all_lengths_s']:>9.2f}"
        f"{row['all_lengths_mib']:>9.2f}{row['all_lengths_peak_rss_mib']:>9.0f}"
        f"{row['former_mib']:>12.3g}"
    )


# -- part 3: batched beam search -------------------------------------------------------


def _source_tensors(model, words):
    """Padded ``source`` and ``source_lengths`` as the fitted model encodes them."""
    index = model.source_vocabulary_.index
    return _pad([[index.get(t, UNK) for t in word] + [SOURCE_END] for word in words])


def beam_rows(model, words, beam_sizes, repeats):
    """One row per beam size: batched decoding against one sequence at a time."""
    module = model.net_.module_.eval()
    source, source_lengths = _source_tensors(model, words)
    options = {"max_length": model.max_output_length_, "bos": BOS, "eos": EOS}
    rows = []
    for beam_size in beam_sizes:
        model.set_params(beam_size=beam_size)
        options["beam_size"] = beam_size

        def one_at_a_time():
            return [
                beam_search(
                    module,
                    source[i : i + 1, : source_lengths[i]],
                    source_lengths[i : i + 1],
                    **options,
                )[0]
                for i in range(len(words))
            ]

        runners = {
            "predict": lambda: model.predict(words),
            "batched": lambda: beam_search(module, source, source_lengths, **options),
            "single": one_at_a_time,
        }
        times = {name: [] for name in runners}
        ids = {}
        for repeat in range(repeats + 1):
            for name, run in runners.items():
                start = time.perf_counter()
                ids[name] = run()
                if repeat:
                    times[name].append(time.perf_counter() - start)
        rate = {name: len(words) / float(np.median(t)) for name, t in times.items()}
        row = {
            "beam_size": beam_size,
            "sequences": len(words),
            **{f"{name}_seq_per_s": value for name, value in rate.items()},
            "batched_over_single": rate["batched"] / rate["single"],
            "predict_over_single": rate["predict"] / rate["single"],
            "same_outputs": sum(
                a == b for a, b in zip(ids["batched"], ids["single"], strict=True)
            ),
            "mean_output_length": float(np.mean([len(r) for r in ids["batched"]])),
            "longest_output": max(len(r) for r in ids["batched"]),
        }
        rows.append(row)
        print(format_beam_row(row), flush=True)
    return rows


BEAM_HEADER = (
    f"{'beam':>5}{'seqs':>6}{'predict':>9}{'batched':>9}{'single':>8}"
    f"{'batched/single':>15}{'predict/single':>15}{'same':>9}"
    f"{'length':>7}{'longest':>8}"
)


def format_beam_row(row):
    return (
        f"{row['beam_size']:>5}{row['sequences']:>6}"
        f"{row['predict_seq_per_s']:>9.0f}{row['batched_seq_per_s']:>9.0f}"
        f"{row['single_seq_per_s']:>8.0f}"
        f"{row['batched_over_single']:>14.1f}x{row['predict_over_single']:>14.1f}x"
        f"{row['same_outputs']:>5}/{row['sequences']:<3}"
        f"{row['mean_output_length']:>7.2f}{row['longest_output']:>8}"
    )


# -- driver ---------------------------------------------------------------------------


# -- part 5: one long target's memory ---------------------------------------------


def _fit_with(X, y, long_target, by_length):
    """A one-epoch fit at the defaults (``tau=0.9``), with or without one
    more pair whose target is ``long_target`` tokens long."""
    if long_target:
        tokens = sorted({token for target in y for token in target})
        rng = np.random.default_rng(SEED)
        X = [*X, "abc"]
        y = [*y, list(rng.choice(tokens, long_target))]
    RMLSequencePredictor(
        tau=0.9, max_epochs=1, random_state=SEED, batch_by_length=by_length
    ).fit(X, y)


def long_rows(X, y, long_target):
    """Peak memory a fit adds with one long target, by ``batch_by_length``."""
    rows = []
    for by_length in (True, False):
        peaks = {
            n: peak_memory(functools.partial(_fit_with, X, y, n, by_length))
            for n in (0, long_target)
        }
        row = {
            "batch_by_length": by_length,
            "long_target": long_target,
            "without_bytes": peaks[0],
            "with_bytes": peaks[long_target],
            "extra_bytes": peaks[long_target] - peaks[0],
        }
        rows.append(row)
        print(
            f"{by_length!s:>15}{format_bytes(peaks[0]).split()[0]:>14}"
            f"{format_bytes(peaks[long_target]).split()[0]:>14}"
            f"{format_bytes(row['extra_bytes']).split()[0]:>11}",
            flush=True,
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer words, epochs and repeats"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        default=list(DEFAULT_PARTS),
        choices=PARTS,
        help="train sampling beam by default; sampler (about 2 min) and long "
        "(about 1 min) on request",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (default 1)"
    )
    parser.add_argument(
        "--words", type=int, help="CMUdict words drawn (5000; 1000 with --quick)"
    )
    parser.add_argument(
        "--epochs", type=int, help="epochs per training run (2; 1 with --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, help="timed runs per row (5; 3 with --quick)"
    )
    parser.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=[10, 100, 1000, 10_000],
        help="target lengths of the sampler part (10 100 1000 10000)",
    )
    parser.add_argument(
        "--long-target",
        type=int,
        default=1000,
        help="tokens of the long target of the long part (1000)",
    )
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args(argv)
    settings = {
        "words": args.words or (1000 if args.quick else 5000),
        "epochs": args.epochs or (1 if args.quick else 2),
        "repeats": args.repeats or (3 if args.quick else 5),
        "threads": args.threads,
        "batch_size": BATCH_SIZE,
        "model": MODEL,
        "optimizer": f"adam lr={LR}, gradient norm clipped at {CLIP}",
        "taus": [0.9, 0.0],
        "sampling_tau": 0.9,
        "sampling_batches": 10 if args.quick else 20,
        "beam_model_epochs": 3,
        "beam_sizes": [1, 4, 8],
        "beam_sequences": 64 if args.quick else 256,
    }
    repeats = settings["repeats"]

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    env = environment("numpy", "sklearn", "torch", "skorch", "skpapers")
    print(
        f"torch {env['torch']}, skorch {env['skorch']}, scikit-learn "
        f"{env['sklearn']}, numpy {env['numpy']}, skpapers {env['skpapers']}, "
        f"Python {env['python']} on {env['cpu_count']} CPUs"
    )
    print(
        f"torch.set_num_threads({args.threads}) (interop threads "
        f"{env['torch_interop_threads']}); Seq2Seq {MODEL}, batches of "
        f"{BATCH_SIZE}, {settings['optimizer']}, seed {SEED}"
    )
    rows = {}
    if "sampler" in args.parts:
        print(
            f"\nsampler: sample_payoff_batch on {BATCH_SIZE} targets of lengths "
            "spread over 1 .. L (V = 40, tau = 0.9), a fresh process per row: "
            "first call (builds the tables), median draw after it "
            f"({repeats} draws), tables' bytes, peak RSS above the process's "
            "start; then tables for every length 0 .. L ('all'); 'former': the "
            "bytes the (L+1)^3 tables kept"
        )
        print(SAMPLER_HEADER)
        rows["sampler"] = sampler_rows(
            args.lengths, ("edit", "hamming"), repeats, args.threads
        )
    if set(args.parts) - {"sampler"}:
        X, y, X_test, _ = load_pairs(settings["words"])
        print(
            f"load_cmudict_g2p(max_words={settings['words']}): {len(X)} training "
            f"pairs, {target_tokens(y)} target tokens (EOS included)"
        )
    if "train" in args.parts:
        print(
            f"\ntrain: target tokens per second (median of {repeats} runs, "
            f"{settings['epochs']} epoch(s) each: tokens / fit time; '(epoch)': "
            "the estimator's epochs alone); ours/plain = time ratio, '(cpu)' of "
            "process CPU time; target <= 1.1; MiB: peak RSS a fit adds in a fresh "
            "process"
        )
        print(TRAIN_HEADER)
        rows["train"] = train_rows(X, y, settings["taus"], settings["epochs"], repeats)
    if "sampling" in args.parts:
        print(
            f"\nsampling: sample_payoff_batch alone against whole training steps "
            f"on the same {settings['sampling_batches']} batches, ms per batch "
            f"(median of {repeats} runs); target share well under 5%"
        )
        print(SAMPLING_HEADER)
        rows["sampling"] = sampling_rows(
            X,
            y,
            ("edit", "hamming"),
            settings["sampling_tau"],
            settings["sampling_batches"],
            repeats,
        )
    if "long" in args.parts:
        print(
            f"\nlong: peak RSS a one-epoch fit adds (defaults, tau=0.9; a fresh "
            f"process each) on the {len(X)} pairs, and on them with one more "
            f"whose target has {args.long_target} tokens; MiB"
        )
        print(f"{'batch_by_length':>15}{'without':>14}{'with':>14}{'extra':>11}")
        rows["long"] = long_rows(X, y, args.long_target)
    if "beam" in args.parts:
        model = RMLSequencePredictor(
            tau=0.9,
            **MODEL,
            lr=LR,
            batch_size=BATCH_SIZE,
            max_epochs=settings["beam_model_epochs"],
            random_state=SEED,
        ).fit(X, y)
        words = X_test[: settings["beam_sequences"]]
        print(
            f"\nbeam: sequences per second decoding {len(words)} test words "
            f"(median of {repeats} runs) with a model trained "
            f"{settings['beam_model_epochs']} epochs (max_output_length "
            f"{model.max_output_length_}); 'predict' and 'batched' decode them "
            "together, 'single' one at a time; 'same': outputs batched == single"
        )
        print(BEAM_HEADER)
        rows["beam"] = beam_rows(model, words, settings["beam_sizes"], repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"environment": env, "settings": settings, "rows": rows}, f, indent=2
            )
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
