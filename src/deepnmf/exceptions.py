"""Exceptions raised by deepnmf.

Every error the package raises on purpose derives from :class:`DeepNMFError`.
Bad arguments and bad data are also :class:`ValueError` so that code written
for scikit-learn keeps catching them.
"""
from __future__ import annotations


class DeepNMFError(Exception):
    """Base class of every error raised on purpose by deepnmf."""


class ParameterError(DeepNMFError, ValueError):
    """An argument has an invalid value or type (unknown option, bad rank...)."""


class DataError(DeepNMFError, ValueError):
    """Input data cannot be used: negative, NaN/inf, empty, wrong shape, silent audio..."""


class ModelFileError(DeepNMFError, ValueError):
    """A saved model folder is missing, incomplete, altered or of another model type."""


class NotFittedError(DeepNMFError, AttributeError):
    """The estimator must be fitted before this call."""
