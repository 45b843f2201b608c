"""Metrics of the papers' tasks."""

from skpapers.metrics._masks import mask_average_precision
from skpapers.metrics._sequences import edit_error_rate, sequence_accuracy

__all__ = ["edit_error_rate", "mask_average_precision", "sequence_accuracy"]
