"""Neural networks: the batch-normalised MLP of Ioffe & Szegedy (2015)."""

from skpapers.neural_network._bn_mlp import BatchNormMLPClassifier
from skpapers.neural_network._modules import BatchNormMLP, fold_batchnorm

__all__ = ["BatchNormMLP", "BatchNormMLPClassifier", "fold_batchnorm"]
