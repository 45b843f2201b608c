"""Torch modules of the batch-normalised MLP, and batch-norm folding.

Ioffe, S. and Szegedy, C. (2015). Batch normalization: accelerating deep
network training by reducing internal covariate shift. ICML.
"""

import copy
import itertools
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class BatchNorm(nn.BatchNorm1d):
    """Batch normalization that never normalises a batch of one sample.

    A single sample has no batch variance. In training mode such a batch is
    normalised with the running statistics, as at inference, and does not
    update them; ``gamma``, ``beta`` and the layers around it still learn
    from it. Every other batch is normalised by its own statistics (the
    paper's Algorithm 1).
    """

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=False,
                eps=self.eps,
            )
        return super().forward(x)


class HiddenLayer(nn.Sequential):
    """``linear -> [batch norm] -> nonlinearity -> [dropout]``.

    Batch norm sits between the linear map and the nonlinearity, as in the
    paper; the linear map before it has no bias, which ``beta`` replaces.
    """

    def __init__(self, n_in, n_out, *, activation, batch_norm, dropout):
        layers = OrderedDict(linear=nn.Linear(n_in, n_out, bias=not batch_norm))
        if batch_norm:
            layers["batch_norm"] = BatchNorm(n_out)
        layers["activation"] = ACTIVATIONS[activation]()
        if dropout:
            layers["dropout"] = nn.Dropout(dropout)
        super().__init__(layers)


class BatchNormMLP(nn.Module):
    """A multi-layer perceptron whose hidden layers may be batch-normalised.

    Parameters
    ----------
    n_features : int
        Inputs.
    n_classes : int
        Outputs: one logit per class.
    hidden_layer_sizes : tuple of int
        Units of each hidden layer.
    activation : {"relu", "sigmoid", "tanh"}
        Nonlinearity of the hidden layers.
    batch_norm : bool
        Normalise each hidden layer's input to its nonlinearity.
    dropout : float
        Probability of dropping a hidden unit in training.

    Shapes: ``X (Tensor[N, n_features])`` gives ``logits (Tensor[N, n_classes])``.
    """

    def __init__(
        self,
        n_features,
        n_classes,
        hidden_layer_sizes=(100, 100, 100),
        activation="relu",
        batch_norm=True,
        dropout=0.0,
    ):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes]
        self.hidden = nn.Sequential(
            *(
                HiddenLayer(
                    n_in,
                    n_out,
                    activation=activation,
                    batch_norm=batch_norm,
                    dropout=dropout,
                )
                for n_in, n_out in itertools.pairwise(sizes)
            )
        )
        self.output = nn.Linear(sizes[-1], n_classes)

    def forward(self, X):
        return self.output(self.hidden(X))


@torch.no_grad()
def fold_batchnorm(module):
    """Return a copy of ``module`` in which every batch norm is folded away.

    At inference a batch-norm layer is the affine map
    ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with the running
    ``mean`` and ``var``. After a linear layer ``x = W u + b`` the two are one
    linear layer, ``W' = s W`` and ``b' = s (b - mean) + beta`` with
    ``s = gamma / sqrt(var + eps)`` row by row. The copy is in eval mode,
    predicts what ``module.eval()`` predicts, and skips the normalisation.

    Parameters
    ----------
    module : torch.nn.Module
        A module whose batch norms each directly follow a ``nn.Linear`` in an
        ``nn.Sequential``, as in :class:`BatchNormMLP`; ``module`` itself is
        left unchanged.

    Returns
    -------
    torch.nn.Module
        The folded copy, in eval mode.

    Raises
    ------
    ValueError
        If a batch norm does not follow a linear layer.

    Examples
    --------
    >>> import torch
    >>> from skpapers.neural_network import fold_batchnorm
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    >>> _ = net(torch.randn(8, 3))  # one step of running statistics
    >>> folded = fold_batchnorm(net)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(folded(x), net.eval()(x), atol=1e-6)
    True
    """
    folded = copy.deepcopy(module).eval()
    for parent in folded.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        # each module after the one before it; an empty Sequential has none
        for before, name in itertools.pairwise([None, *names]):
            norm = parent._modules[name]
            if not isinstance(norm, nn.BatchNorm1d):
                continue
            linear = None if before is None else parent._modules[before]
            if not isinstance(linear, nn.Linear):
                raise ValueError(
                    f"cannot fold batch norm {name!r}: it must directly follow an "
                    f"nn.Linear in its nn.Sequential, not {type(linear).__name__}."
                )
            if norm.running_mean is None:
                raise ValueError(
                    f"cannot fold batch norm {name!r}: it keeps no running "
                    "statistics (track_running_stats=False)."
                )
            _fold_into(linear, norm)
            parent._modules[name] = nn.Identity()
    return folded


def _fold_into(linear, norm):
    """Make ``linear`` (of the copy) equal ``norm(linear(x))`` with running
    statistics, giving it a bias if it has none; nothing is drawn."""
    weight = linear.weight.double()
    bias = (
        linear.bias.double()
        if linear.bias is not None
        else torch.zeros(linear.out_features, dtype=torch.float64, device=weight.device)
    )
    mean, var = norm.running_mean.double(), norm.running_var.double()
    scale = torch.rsqrt(var + norm.eps)
    shift = -mean * scale
    if norm.affine:
        scale, shift = scale * norm.weight.double(), shift * norm.weight.double()
        shift = shift + norm.bias.double()
    linear.weight.copy_(scale[:, None] * weight)
    if linear.bias is None:
        linear.bias = nn.Parameter(linear.weight.new_empty(linear.out_features))
    linear.bias.copy_(scale * bias + shift)
