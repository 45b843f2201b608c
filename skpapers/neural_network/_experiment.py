"""Ioffe & Szegedy (2015) reproduced: ``skpapers reproduce bn``.

The paper's MNIST experiment (Section 4.1, Figure 1) on scikit-learn's 8 x 8
digits: three hidden layers of 100 sigmoid units, mini-batches of 60, plain
SGD, with and without batch normalization; the test accuracy and the input of
one sigmoid are followed over the training steps.
"""

import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback

from skpapers._reproduce import Claim, Result, Table, experiment
from skpapers.neural_network._bn_mlp import BatchNormMLPClassifier
from skpapers.utils._plotting import PLOT_HINT, optional_pyplot, save_figure
from skpapers.utils._torch import torch_threads

BATCH_SIZE = 60
BASE_LR = 0.1
LEVELS = (0.90, 0.95)
PERCENTILES = (15, 50, 85)
# label: (batch_norm, lr). The paper's "BN-x5" is the BN net at 5x the rate;
# the plain net at 5x and 30x asks whether a larger rate alone would do.
NETS = {
    "without BN": (False, BASE_LR),
    "with BN": (True, BASE_LR),
    "BN-x5": (True, 5 * BASE_LR),
    "without BN, x5": (False, 5 * BASE_LR),
    "without BN, x30": (False, 30 * BASE_LR),
}


class HeldOutCurves(Callback):
    """Score a net on held-out data every few training steps.

    Before the first step and after every ``every``-th optimiser step (and
    the last one) the module is put in eval mode, run on ``X`` and put back
    in the mode it was in. Records the accuracy and the percentiles of the
    input of the nonlinearity of ``unit`` in the last hidden layer: the batch
    norm's output with batch norm, the linear map's output without.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Held-out samples, float32.
    y : ndarray of shape (n_samples,)
        Their class indices (positions in ``classes_``).
    every : int
        Training steps between two evaluations.
    unit : int, default=0
        The unit of the last hidden layer whose input is followed.

    Attributes
    ----------
    steps_ : list of int
        Training steps taken at each evaluation, from 0.
    accuracy_ : list of float
        Accuracy on ``X`` at each evaluation.
    percentiles_ : list of ndarray of shape (3,)
        The 15th, 50th and 85th percentiles of the unit's input over ``X``.
    """

    def __init__(self, X, y, *, every, unit=0):
        self.X = X
        self.y = y
        self.every = every
        self.unit = unit

    def initialize(self):
        self.steps_, self.accuracy_, self.percentiles_ = [], [], []
        self._n_steps = 0
        return self

    def on_train_begin(self, net, **kwargs):
        self._record(net.module_)

    def on_batch_end(self, net, training=None, **kwargs):
        if training:
            self._n_steps += 1
            if self._n_steps % self.every == 0:
                self._record(net.module_)

    def on_train_end(self, net, **kwargs):
        if self.steps_[-1] != self._n_steps:
            self._record(net.module_)

    def _record(self, module):
        inputs = []
        nonlinearity = module.hidden[-1].activation
        hook = nonlinearity.register_forward_pre_hook(
            lambda layer, args: inputs.append(args[0][:, self.unit])
        )
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                logits = module(torch.from_numpy(self.X))
        finally:
            module.train(was_training)
            hook.remove()
        self.steps_.append(self._n_steps)
        self.accuracy_.append(float(np.mean(logits.argmax(1).numpy() == self.y)))
        self.percentiles_.append(np.percentile(inputs[0].numpy(), PERCENTILES))


@experiment(
    "bn",
    title="Batch normalization",
    paper=(
        "Ioffe & Szegedy (2015), Batch Normalization: Accelerating Deep Network "
        "Training by Reducing Internal Covariate Shift"
    ),
    # Measured with --seed 0 on two CPU cores: quick 1.9 s, full 6.2 s.
    expected_seconds=(2, 6),
)
def run(*, quick, out_dir, random_state):
    """Figure 1 on the digits: test accuracy and a sigmoid's input over steps."""
    plt = optional_pyplot()
    data = digits_split(random_state)
    epochs, every = (10, 10) if quick else (60, 5)
    # Nets this small run fastest on one thread, above all on a busy machine.
    with torch_threads(1):
        curves = {
            label: held_out_curves(
                data,
                batch_norm=batch_norm,
                lr=lr,
                epochs=epochs,
                every=every,
                random_state=random_state,
            )
            for label, (batch_norm, lr) in NETS.items()
        }
    result = Result()
    result.tables.append(_steps_table(curves, data, epochs=epochs, every=every))
    result.notes += _notes(curves, data)
    result.claims += _claims(curves)
    if plt is None:
        result.notes.append(f"Figures skipped: {PLOT_HINT}.")
        return result
    result.figures.append(_plot_accuracy(plt, curves, out_dir / "bn_test_accuracy.png"))
    result.figures.append(
        _plot_sigmoid_inputs(plt, curves, out_dir / "bn_sigmoid_input.png")
    )
    return result


def digits_split(random_state):
    """The digits, pixels scaled to [0, 1], split 70/30 with stratification.

    Returns ``X_train, X_test, y_train, y_test``; ``X`` in float32.
    """
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=random_state)


def held_out_curves(data, *, batch_norm, lr, epochs, every, random_state):
    """Train the paper's sigmoid net for ``epochs``; return its curves.

    ``data`` is ``X_train, X_test, y_train, y_test``; the result is the fitted
    :class:`HeldOutCurves` on the test part.
    """
    X_train, X_test, y_train, y_test = data
    clf = BatchNormMLPClassifier(
        (100, 100, 100),
        activation="sigmoid",
        batch_norm=batch_norm,
        optimizer="sgd",
        lr=lr,
        momentum=0.0,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        tol=0.0,
        # Patience as long as training: every net takes the same steps.
        n_iter_no_change=epochs,
        # The digits' labels 0..9 are their own class indices.
        callbacks=[("held_out", HeldOutCurves(X_test, y_test, every=every))],
        random_state=random_state,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    return dict(clf.net_.callbacks_)["held_out"]


def steps_to(curves, level):
    """The first evaluated step with accuracy >= ``level``, or None."""
    reached = np.flatnonzero(np.asarray(curves.accuracy_) >= level)
    return curves.steps_[reached[0]] if reached.size else None


def _steps_table(curves, data, *, epochs, every):
    n_train, n_test = len(data[0]), len(data[1])
    n_steps = curves["with BN"].steps_[-1]
    table = Table(
        f"Steps to a test accuracy on load_digits ({n_train} train, {n_test} test; "
        f"{epochs} epochs = {n_steps} steps of {BATCH_SIZE}, evaluated every {every})",
        ["net", "lr", *(f"steps to {level:.0%}" for level in LEVELS), "final"],
    )
    for label, (_, lr) in NETS.items():
        reached = [steps_to(curves[label], level) for level in LEVELS]
        table.rows.append(
            [
                label,
                lr,
                *("not reached" if step is None else step for step in reached),
                f"{curves[label].accuracy_[-1]:.1%}",
            ]
        )
    return table


def _notes(curves, data):
    plain, normed = curves["without BN"], curves["with BN"]
    chance = np.bincount(data[3]).max() / len(data[3])
    notes = [
        f"At lr={BASE_LR} the final test accuracy is {normed.accuracy_[-1]:.1%} "
        f"with BN and {plain.accuracy_[-1]:.1%} without; always answering the "
        f"most frequent class scores {chance:.1%}. Each net trained "
        f"{normed.steps_[-1]} steps; the paper trained 50,000 on MNIST.",
        _fastest_plain_note(curves, LEVELS[0]),
    ]
    epoch = -(-len(data[0]) // BATCH_SIZE)
    for label in ("without BN", "with BN"):
        steps = np.asarray(curves[label].steps_)
        low, median, high = np.asarray(curves[label].percentiles_).T
        start = np.flatnonzero(steps >= epoch)[0]
        notes.append(
            f"Input of a last-layer sigmoid {label}, from step {steps[start]} (the "
            f"first evaluation after an epoch) to the end: median "
            f"{median[start]:+.2f} to {median[-1]:+.2f}, "
            f"15th-85th percentile spread {high[start] - low[start]:.2f} to "
            f"{high[-1] - low[-1]:.2f}."
        )
    return notes


def _claims(curves):
    """Fewer steps to 90% with BN, and fewer still at 5x the rate.

    The paper's numbers are the steps to Inception's 72.2% on ImageNet
    (Figure 3 of the paper).
    """
    level = LEVELS[0]
    normed = steps_to(curves["with BN"], level)
    faster = steps_to(curves["BN-x5"], level)
    plain = [
        steps_to(curves[label], level)
        for label, (batch_norm, _) in NETS.items()
        if not batch_norm
    ]
    quickest = min((step for step in plain if step is not None), default=None)
    n_steps = curves["with BN"].steps_[-1]

    def when(step):
        return f"not reached in {n_steps} steps" if step is None else f"step {step}"

    return [
        Claim(
            "Batch normalization reaches an accuracy in fewer training steps",
            "72.2%: 13.3M steps with BN, 31.0M without (ImageNet)",
            f"{level:.0%} on the digits: {when(normed)} with BN, {when(quickest)} "
            f"without (the quickest of {len(plain)} rates)",
            holds=_fewer_steps(normed, quickest),
        ),
        Claim(
            "Batch normalization allows a higher rate, which trains faster",
            "72.2%: 2.1M steps at 5x the rate, 13.3M at 1x",
            f"{level:.0%}: {when(faster)} at lr {NETS['BN-x5'][1]:g}, "
            f"{when(normed)} at lr {BASE_LR:g}",
            holds=_fewer_steps(faster, normed),
        ),
    ]


def _fewer_steps(first, second):
    """Whether ``first`` took fewer steps; None if neither arrived or a tie."""
    if first is None or second is None:
        return None if first is second else first is not None
    return None if first == second else bool(first < second)


def _fastest_plain_note(curves, level):
    """Compare the BN net with the quickest net without BN to reach ``level``."""
    plain = [label for label, (batch_norm, _) in NETS.items() if not batch_norm]
    steps = {label: steps_to(curves[label], level) for label in plain}
    reached = {label: step for label, step in steps.items() if step is not None}
    if not reached:
        return f"No net without BN reached {level:.0%} test accuracy."
    label = min(reached, key=reached.get)
    normed = steps_to(curves["with BN"], level)
    if normed is None:
        return f"{label} reached {level:.0%} at step {reached[label]}; with BN did not."
    return (
        f"The quickest net without BN to reach {level:.0%}, {label} "
        f"(lr={NETS[label][1]:g}), took {reached[label]} steps: "
        f"{reached[label] / normed:.1f}x as many as with BN at lr={BASE_LR}."
    )


def _plot_accuracy(plt, curves, path):
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for label, (batch_norm, _) in NETS.items():
        style = "-" if batch_norm else "--"
        ax.plot(curves[label].steps_, curves[label].accuracy_, style, label=label)
    for level in LEVELS:
        ax.axhline(level, color="grey", linewidth=0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"training steps (mini-batches of {BATCH_SIZE})")
    ax.set_ylabel("test accuracy")
    ax.set_title("Sigmoid MLP on load_digits, with and without batch norm")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure(fig, path)


def _plot_sigmoid_inputs(plt, curves, path):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, label in zip(axes, ("without BN", "with BN"), strict=True):
        percentiles = np.asarray(curves[label].percentiles_).T
        for percentile, values in zip(PERCENTILES, percentiles, strict=True):
            ax.plot(curves[label].steps_, values, label=f"{percentile}th percentile")
        ax.set_title(f"{label} (lr={BASE_LR})")
        ax.set_xlabel("training steps")
    axes[0].set_ylabel("input of a last-layer sigmoid")
    axes[1].legend()
    fig.suptitle("One sigmoid's input over the test set during training")
    return save_figure(fig, path)
