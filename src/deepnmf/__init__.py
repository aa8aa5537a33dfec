"""deepnmf: nonnegative dictionary learning with deep models.

Estimators follow scikit-learn: ``X`` is ``(n_samples, n_features)`` (frames x
frequency bins, time x muscles) and ``components_`` is the dictionary, shape
``(n_components, n_features)``.

Public estimators are imported lazily so that ``import deepnmf`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "NMF": "deepnmf.models.nmf",
    "non_negative_factorization": "deepnmf.models.nmf",
    "MiniBatchNMF": "deepnmf.models.minibatch",
    "VAENMF": "deepnmf.models.vae",
    "ImplicitNMF": "deepnmf.models.implicit",
    "DiscriminativeNMF": "deepnmf.models.dnmf",
    "DeepNMFError": "deepnmf.exceptions",
    "ParameterError": "deepnmf.exceptions",
    "DataError": "deepnmf.exceptions",
    "ModelFileError": "deepnmf.exceptions",
    "load_model": "deepnmf.io.model_files",
    "make_estimator": "deepnmf.models.factory",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'deepnmf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
