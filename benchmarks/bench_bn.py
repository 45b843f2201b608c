"""Time BatchNormMLPClassifier against plain PyTorch, skorch and scikit-learn.

Three parts, each printing one table:

- ``epoch``: the whole ``BatchNormMLPClassifier.fit`` call (validation,
  skorch's set-up, the epochs, batch-norm folding) against a minimal
  hand-written PyTorch loop training the same
  :class:`~skpapers.neural_network.BatchNormMLP` (a permutation each epoch,
  tensor indexing per batch, and the estimator's own step,
  :func:`skpapers.utils._base.training_step`: forward,
  ``CrossEntropyLoss``, backward, SGD step), and against skorch's own
  ``NeuralNetClassifier`` with its default ``DataLoader`` (one
  ``__getitem__`` per sample, then a collate). All three start from the
  same seed, see the same batches in the same order and make the same SGD
  steps, so they end on the same training loss: the time between them is
  overhead. The plain loop takes the rows in the estimator's order
  (:func:`~skpapers.neural_network._bn_mlp.canonical_order`) and seeds
  each epoch as the estimator's net does (``seed + epoch``), which is what
  makes the steps the same. Each run is timed on the wall clock and in CPU
  time at once; the runners alternate. Target: the whole fit at most 1.1
  times the plain loop. The epochs alone (timed by a callback, without the
  fit's set-up and folding) are a detail column. Each run's peak memory
  (``_memory.peak_memory``: the peak resident set a fresh process adds
  making the run) is reported beside its time.
- ``accuracy``: seconds and epochs of training until the test accuracy on
  ``load_digits`` first reaches 95%, against scikit-learn's
  ``MLPClassifier`` with the same hidden layers, each trained epoch by epoch
  with ``partial_fit`` (only the ``partial_fit`` calls are timed).
- ``inference``: samples per second of ``predict_proba``, which runs the
  batch-norm-folded copy of the module, of that folded module alone, and of
  the unfolded ``clf.net_.module_`` in eval mode, on the same rows; the
  probabilities of the folded and unfolded modules must agree.

Usage::

    python benchmarks/bench_bn.py              # about 1.5 min
    python benchmarks/bench_bn.py --quick      # about 20 s
    python benchmarks/bench_bn.py --clock cpu  # CPU time per epoch (detail)
    python benchmarks/bench_bn.py --parts epoch --threads 2 --json bn.json

Torch (and BLAS, for scikit-learn) run on ``--threads`` threads, 1 by
default. Timings depend on the machine and on what else runs on it: this
script asserts nothing about them.
"""

import argparse
import functools
import gc
import json
import time
import warnings

import numpy as np
import skorch
import torch
from _environment import environment
from _memory import format_bytes, peak_memory
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from skpapers.neural_network import (
    BatchNormMLP,
    BatchNormMLPClassifier,
    fold_batchnorm,
)
from skpapers.neural_network._bn_mlp import canonical_order
from skpapers.utils._base import training_step
from skpapers.utils._torch import seeded, torch_seed

PARTS = ("epoch", "accuracy", "inference")
# process_time counts the CPU time of all the process's threads: it equals
# wall time on one thread on a quiet machine, and ignores the time another
# process holds the core.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
SEED = 0
HIDDEN = (100, 100, 100)
TARGET_ACCURACY = 0.95


# -- data -----------------------------------------------------------------------


def make_dataset(name):
    """``X`` (float32) and ``y`` (int64 labels 0..k-1) of one dataset.

    ``digits``: scikit-learn's 1797 8x8 digits, pixels scaled to [0, 1];
    ``synthetic``: 20000 x 100 from ``make_classification``, 10 classes.
    """
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    else:
        X, y = make_classification(
            n_samples=20000,
            n_features=100,
            n_informative=50,
            n_redundant=10,
            n_classes=10,
            random_state=SEED,
        )
    return X.astype(np.float32), y.astype(np.int64)


# -- part 1: time per epoch -------------------------------------------------------


def _module_params(X, y, activation):
    return {
        "n_features": X.shape[1],
        "n_classes": int(y.max()) + 1,
        "hidden_layer_sizes": HIDDEN,
        "activation": activation,
        "batch_norm": True,
    }


class EpochOrder(torch.utils.data.Sampler, skorch.callbacks.Callback):
    """The estimator's order of the rows, for skorch's ``DataLoader``.

    As a callback it seeds each epoch as the estimator's net does and draws
    the epoch's permutation of the rows at once (before the loader draws its
    own seed); as the loader's sampler it yields that permutation.
    """

    def __init__(self, seed, n_samples):
        self.seed, self.n_samples = seed, n_samples

    def on_epoch_begin(self, net, **kwargs):
        torch.default_generator.manual_seed(self.seed + len(net.history))
        self.order_ = torch.randperm(self.n_samples).tolist()

    def __iter__(self):
        return iter(self.order_)

    def __len__(self):
        return self.n_samples


class EpochClock(skorch.callbacks.Callback):
    """Record each epoch's seconds on ``clock`` in the history, as ``clock_dur``.

    skorch's own ``dur`` is wall time; this one reads the benchmark's clock.
    """

    def __init__(self, clock):
        self.clock = clock

    def on_epoch_begin(self, net, **kwargs):
        self.start_ = self.clock()

    def on_epoch_end(self, net, **kwargs):
        net.history.record("clock_dur", self.clock() - self.start_)


def train_plain(X, y, *, activation, batch_size, epochs, lr, momentum, clock):
    """A minimal PyTorch loop; per-epoch seconds and the last epoch's loss."""
    seed = torch_seed(SEED)
    with seeded(seed):
        module = BatchNormMLP(**_module_params(X, y, activation))
        criterion = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum)
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
        module.train()
        durations = []
        for epoch in range(epochs):
            start = clock()
            torch.default_generator.manual_seed(seed + epoch + 1)  # as our net's
            batches = list(torch.randperm(len(X_t)).split(batch_size))
            if len(batches) > 1 and len(batches[-1]) == 1:
                # the estimator's rule: a lone last sample joins the batch before
                batches[-2:] = [torch.cat(batches[-2:])]
            total = 0.0
            for batch in batches:
                loss = training_step(
                    optimizer,
                    lambda batch=batch: criterion(module(X_t[batch]), y_t[batch]),
                )
                total += loss.item() * len(batch)
            durations.append(clock() - start)
    return durations, total / len(X_t)


def train_estimator(X, y, *, activation, batch_size, epochs, lr, momentum, clock):
    """``BatchNormMLPClassifier.fit``; skorch's per-epoch seconds and loss."""
    clf = BatchNormMLPClassifier(
        HIDDEN,
        activation=activation,
        optimizer="sgd",
        lr=lr,
        momentum=momentum,
        batch_size=batch_size,
        max_epochs=epochs,
        tol=0,
        n_iter_no_change=epochs,  # never stop early: every run makes all epochs
        callbacks=[("epoch_clock", EpochClock(clock))],
        random_state=SEED,
    )
    with warnings.catch_warnings():  # also in peak_memory's fresh process
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return clf.history_[:, "clock_dur"], clf.history_[-1, "train_loss"]


def train_skorch(X, y, *, activation, batch_size, epochs, lr, momentum, clock):
    """skorch's ``NeuralNetClassifier`` with its default ``DataLoader``."""
    order = EpochOrder(torch_seed(SEED), len(X))
    net = skorch.NeuralNetClassifier(
        BatchNormMLP,
        **{
            f"module__{key}": value
            for key, value in _module_params(X, y, activation).items()
        },
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.SGD,
        lr=lr,
        optimizer__momentum=momentum,
        batch_size=batch_size,
        max_epochs=epochs,
        iterator_train__sampler=order,
        train_split=None,
        callbacks=[("epoch_order", order), ("epoch_clock", EpochClock(clock))],
        verbose=0,
    )
    with seeded(torch_seed(SEED)):
        net.fit(X, y)
    return net.history[:, "clock_dur"], net.history[-1, "train_loss"]


EPOCH_RUNNERS = {"plain": train_plain, "ours": train_estimator, "skorch": train_skorch}


def time_runners(runners, repeats):
    """Each runner's wall and CPU seconds per run, its epochs' seconds, and
    its last results.

    The runners alternate, after one warm-up round, so that a busy moment on
    the machine slows all of them alike; both clocks are read around each
    run. Each run starts after a garbage collection, so that none pays for
    collecting what the one before it left.
    """
    walls = {name: [] for name in runners}
    cpus = {name: [] for name in runners}
    epochs = {name: [] for name in runners}
    results = {}
    for repeat in range(repeats + 1):
        for name, run in runners.items():
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            durations, results[name] = run()
            if repeat:
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
                epochs[name].extend(durations)
    return walls, cpus, epochs, results


def _ratio(times, name):
    """Median over the rounds of ``name``'s time over the plain loop's in
    the same round."""
    return float(np.median(np.divide(times[name], times["plain"])))


def epoch_rows(datasets, batch_sizes, epochs, repeats, activation, lr, momentum, clock):
    """One row per dataset and batch size."""
    rows = []
    for name in datasets:
        X, y, _ = canonical_order(*make_dataset(name), None)  # as the fit sorts
        n_epochs = epochs[name]
        for batch_size in batch_sizes:
            settings = {
                "activation": activation,
                "batch_size": batch_size,
                "epochs": n_epochs,
                "lr": lr,
                "momentum": momentum,
            }
            runners = {
                key: functools.partial(run, X, y, clock=clock, **settings)
                for key, run in EPOCH_RUNNERS.items()
            }
            walls, cpus, epoch, losses = time_runners(runners, repeats)
            memory = {key: peak_memory(run) for key, run in runners.items()}
            row = {
                "data": name,
                "shape": f"{X.shape[0]}x{X.shape[1]}",
                **settings,
                **{
                    f"{key}_ms_per_epoch": 1e3 * float(np.median(t)) / n_epochs
                    for key, t in walls.items()
                },
                **{
                    f"{key}_cpu_ms_per_epoch": 1e3 * float(np.median(t)) / n_epochs
                    for key, t in cpus.items()
                },
                **{
                    f"{key}_epoch_ms": 1e3 * float(np.median(t))
                    for key, t in epoch.items()
                },
                "ours_over_plain": _ratio(walls, "ours"),
                "ours_over_plain_cpu": _ratio(cpus, "ours"),
                "ours_epoch_over_plain": float(
                    np.median(epoch["ours"]) / np.median(epoch["plain"])
                ),
                "skorch_over_plain": _ratio(walls, "skorch"),
                "skorch_over_plain_cpu": _ratio(cpus, "skorch"),
                **{f"{key}_peak_bytes": value for key, value in memory.items()},
                **{f"{key}_loss": float(value) for key, value in losses.items()},
                "loss_diff": max(
                    abs(losses[key] - losses["plain"]) for key in ("ours", "skorch")
                ),
            }
            rows.append(row)
            print(format_epoch_row(row), flush=True)
    return rows


EPOCH_HEADER = (
    f"{'data':<10}{'n x d':>11}{'batch':>6}{'epochs':>7}"
    f"{'plain':>8}{'ours':>8}{'ours/plain':>11}{'(cpu)':>7}"
    f"{'(epochs)':>9}{'skorch/plain':>13}{'(cpu)':>7}"
    f"{'final loss':>11}{'loss diff':>10}"
    f"{'plain MiB':>10}{'ours MiB':>9}{'skorch MiB':>11}"
)


def format_epoch_row(row):
    return (
        f"{row['data']:<10}{row['shape']:>11}{row['batch_size']:>6}"
        f"{row['epochs']:>7}{row['plain_ms_per_epoch']:>8.1f}"
        f"{row['ours_ms_per_epoch']:>8.1f}"
        f"{row['ours_over_plain']:>10.2f}x{row['ours_over_plain_cpu']:>6.2f}x"
        f"{row['ours_epoch_over_plain']:>8.2f}x"
        f"{row['skorch_over_plain']:>12.2f}x{row['skorch_over_plain_cpu']:>6.2f}x"
        f"{row['plain_loss']:>11.4f}{row['loss_diff']:>10.1e}"
        + "".join(
            f"{format_bytes(row[f'{key}_peak_bytes']).split()[0]:>{width}}"
            for key, width in (("plain", 10), ("ours", 9), ("skorch", 11))
        )
    )


# -- part 2: time to 95% test accuracy ---------------------------------------------

ACCURACY_MODELS = {
    # scikit-learn's defaults: Adam, lr=1e-3, batches of 200, relu, alpha=1e-4.
    "sklearn MLP (adam 1e-3, batch 200)": lambda seed: MLPClassifier(
        HIDDEN, random_state=seed
    ),
    # skpapers' defaults: SGD, lr=0.01, momentum 0.9, batches of 200, relu.
    "ours BN (sgd 0.01, batch 200)": lambda seed: BatchNormMLPClassifier(
        HIDDEN, random_state=seed
    ),
    # The paper's regime: batch norm allows a higher learning rate.
    "ours BN (sgd 0.1, batch 60)": lambda seed: BatchNormMLPClassifier(
        HIDDEN, lr=0.1, batch_size=60, random_state=seed
    ),
}


def epochs_to_accuracy(model, split, max_epochs, clock):
    """Train epoch by epoch; seconds and epochs to reach the target, or None."""
    X_train, X_test, y_train, y_test = split
    classes = np.unique(y_train)
    elapsed = 0.0
    for epoch in range(1, max_epochs + 1):
        start = clock()
        model.partial_fit(X_train, y_train, classes=classes)
        elapsed += clock() - start
        accuracy = model.score(X_test, y_test)
        if accuracy >= TARGET_ACCURACY:
            return elapsed, epoch, accuracy
    return None, None, accuracy


def accuracy_rows(repeats, max_epochs, clock):
    """One row per model: medians over ``repeats`` seeds."""
    X, y = make_dataset("digits")
    split = train_test_split(X, y, test_size=0.25, stratify=y, random_state=SEED)
    rows = []
    for name, make_model in ACCURACY_MODELS.items():
        runs = [
            epochs_to_accuracy(make_model(seed), split, max_epochs, clock)
            for seed in range(repeats + 1)
        ][1:]  # the first warms up
        reached = [run for run in runs if run[0] is not None]
        seconds = float(np.median([r[0] for r in reached])) if reached else np.nan
        epochs = float(np.median([r[1] for r in reached])) if reached else np.nan
        rows.append(
            {
                "model": name,
                "seconds": seconds,
                "epochs": epochs,
                "ms_per_epoch": 1e3 * seconds / epochs,
                "reached": len(reached),
                "runs": len(runs),
            }
        )
    baseline = rows[0]["seconds"]
    for row in rows:
        row["time_over_sklearn"] = row["seconds"] / baseline
        print(format_accuracy_row(row), flush=True)
    return rows


ACCURACY_HEADER = (
    f"{'model':<36}{'seconds':>9}{'epochs':>8}{'ms/epoch':>10}"
    f"{'reached':>9}{'time/sklearn':>14}"
)


def format_accuracy_row(row):
    return (
        f"{row['model']:<36}{row['seconds']:>9.3f}{row['epochs']:>8.1f}"
        f"{row['ms_per_epoch']:>10.1f}{row['reached']:>6}/{row['runs']:<2}"
        f"{row['time_over_sklearn']:>13.2f}x"
    )


# -- part 3: folded against unfolded inference ---------------------------------------


def rows_per_second(predict, n_rows, min_seconds, clock):
    """Rows per second of ``predict`` on ``n_rows``, called for ``min_seconds``."""
    calls, start = 0, clock()
    while (elapsed := clock() - start) < min_seconds or not calls:
        predict()
        calls += 1
    return calls * n_rows / elapsed


def inference_rows(batch_sizes, repeats, min_seconds, activation, clock):
    """One row per batch size, from a classifier trained on the synthetic data."""
    X, y = make_dataset("synthetic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BatchNormMLPClassifier(
            HIDDEN, activation=activation, max_epochs=3, random_state=SEED
        ).fit(X, y)
    unfolded = clf.net_.module_.eval()
    folded = fold_batchnorm(unfolded)
    rows = []
    for batch_size in batch_sizes:
        X_batch = X[np.arange(batch_size) % len(X)]
        X_t = torch.from_numpy(X_batch)

        def forward(module, X_t=X_t):
            with torch.inference_mode():
                return module(X_t)

        predictors = {
            "predict_proba": lambda X_batch=X_batch: clf.predict_proba(X_batch),
            "folded": lambda: forward(folded),
            "unfolded": lambda: forward(unfolded),
        }
        rates = {name: [] for name in predictors}
        for _ in range(repeats):  # alternate, a rate of each per round
            for name, predict in predictors.items():
                rates[name].append(
                    rows_per_second(predict, batch_size, min_seconds, clock)
                )
        rate = {name: float(np.median(values)) for name, values in rates.items()}
        unfolded_proba = torch.softmax(forward(unfolded).double(), dim=1).numpy()
        folded_proba = torch.softmax(forward(folded).double(), dim=1).numpy()
        row = {
            "batch_size": batch_size,
            **{f"{name}_rows_per_s": value for name, value in rate.items()},
            "folded_over_unfolded": rate["folded"] / rate["unfolded"],
            "proba_over_unfolded": rate["predict_proba"] / rate["unfolded"],
            "proba_max_abs_diff": float(
                np.max(np.abs(clf.predict_proba(X_batch) - unfolded_proba))
            ),
            "folded_max_abs_diff": float(np.max(np.abs(folded_proba - unfolded_proba))),
        }
        rows.append(row)
        print(format_inference_row(row), flush=True)
    return rows


INFERENCE_HEADER = (
    f"{'batch':>6}{'predict_proba':>14}{'folded':>11}{'unfolded':>11}"
    f"{'folded/unfolded':>16}{'proba/unfolded':>15}{'proba diff':>11}"
)


def format_inference_row(row):
    return (
        f"{row['batch_size']:>6}{row['predict_proba_rows_per_s']:>14.3g}"
        f"{row['folded_rows_per_s']:>11.3g}{row['unfolded_rows_per_s']:>11.3g}"
        f"{row['folded_over_unfolded']:>15.2f}x{row['proba_over_unfolded']:>14.2f}x"
        f"{row['proba_max_abs_diff']:>11.1e}"
    )


# -- driver ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer epochs, repeats and seeds"
    )
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads and the BLAS limit (default 1)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="timed runs per row, seeds for accuracy (7; 3 with --quick)",
    )
    parser.add_argument(
        "--activation",
        default="sigmoid",
        choices=["relu", "sigmoid", "tanh"],
        help="hidden nonlinearity for the epoch and inference parts "
        "(default sigmoid, the paper's MNIST network)",
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=CLOCKS,
        help="'wall' (default) or 'cpu': the process's CPU time, steadier on a "
        "shared machine; with --threads above 1 it sums the threads",
    )
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    repeats = args.repeats or (3 if args.quick else 7)
    epochs = (
        {"digits": 10, "synthetic": 2} if args.quick else {"digits": 30, "synthetic": 6}
    )
    settings = {
        "repeats": repeats,
        "threads": args.threads,
        "clock": args.clock,
        "activation": args.activation,
        "hidden_layer_sizes": HIDDEN,
        "epochs": epochs,
        "batch_sizes": [60, 256],
        "lr": 0.1,
        "momentum": 0.9,
        "accuracy_max_epochs": 100,
        "inference_batch_sizes": [1, 64, 1024, 8192],
        "inference_seconds": 0.1 if args.quick else 0.2,
    }

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rows = {}
    with (
        threadpool_limits(limits=args.threads),
        warnings.catch_warnings(),
    ):
        # inside the limits, which it reports
        env = environment("numpy", "sklearn", "torch", "skorch", "skpapers")
        print(
            f"torch {env['torch']}, skorch {env['skorch']}, scikit-learn "
            f"{env['sklearn']}, numpy {env['numpy']}, skpapers {env['skpapers']}, "
            f"Python {env['python']} on {env['cpu_count']} CPUs"
        )
        print(
            f"torch.set_num_threads({args.threads}); BLAS limited to {args.threads} "
            f"thread(s); {args.clock} clock; hidden layers {HIDDEN}, seed {SEED}"
        )
        warnings.simplefilter("ignore", ConvergenceWarning)
        if "epoch" in args.parts:
            print(
                f"\nepoch: {args.activation} BN-MLP, SGD lr={settings['lr']} "
                f"momentum={settings['momentum']}; plain, ours: wall ms per epoch "
                f"of the whole run (median of {repeats}, alternated); ours/plain: "
                "the whole fit over the plain loop, median of the rounds' ratios, "
                f"wall (cpu); '(epochs)': the epochs alone ({args.clock} clock); "
                "target ours/plain <= 1.1; MiB: peak RSS a fit adds in a fresh "
                "process"
            )
            print(EPOCH_HEADER)
            rows["epoch"] = epoch_rows(
                ("digits", "synthetic"),
                settings["batch_sizes"],
                epochs,
                repeats,
                args.activation,
                settings["lr"],
                settings["momentum"],
                clock,
            )
        if "accuracy" in args.parts:
            print(
                f"\naccuracy: relu 3x100 on load_digits in [0, 1], 75/25 stratified "
                f"split; time and epochs to {TARGET_ACCURACY:.0%} test accuracy, "
                f"median of {repeats} seeds (partial_fit only; at most "
                f"{settings['accuracy_max_epochs']} epochs)"
            )
            print(ACCURACY_HEADER)
            rows["accuracy"] = accuracy_rows(
                repeats, settings["accuracy_max_epochs"], clock
            )
        if "inference" in args.parts:
            print(
                f"\ninference: rows per second on the synthetic data (median of "
                f"{repeats} x {settings['inference_seconds']:g} s); 'proba diff': "
                "largest |predict_proba - softmax(unfolded logits)|"
            )
            print(INFERENCE_HEADER)
            rows["inference"] = inference_rows(
                settings["inference_batch_sizes"],
                repeats,
                settings["inference_seconds"],
                args.activation,
                clock,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"environment": env, "settings": settings, "rows": rows}, f, indent=2
            )
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
