"""Utilities shared by the skpapers estimators."""

from skpapers.utils._state import restore_on_error
from skpapers.utils.discovery import all_estimators

__all__ = ["all_estimators", "restore_on_error"]
