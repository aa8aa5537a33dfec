"""The one model factory: ``make_estimator(name, n_components, **params)``.

Every pipeline, experiment and command builds its estimators here, so a model
name means the same class and the same defaults everywhere:

============== ========================================= ==========================
name           class                                     fixed by the name
============== ========================================= ==========================
``nmf``        :class:`deepnmf.NMF`                      -
``minibatch-nmf`` :class:`deepnmf.MiniBatchNMF`          -
``vae-nmf``    :class:`deepnmf.VAENMF`                   -
``implicit``   :class:`deepnmf.ImplicitNMF`              ``mode="grid"``
``implicit-points`` :class:`deepnmf.ImplicitNMF`         ``mode="points"``
``dnmf``       :class:`deepnmf.DiscriminativeNMF`        rank of the given dictionaries
============== ========================================= ==========================

Parameters are checked against the class's constructor before it is built:
an unknown one is a :class:`~deepnmf.exceptions.ParameterError` that names
the parameters the model takes.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from deepnmf.exceptions import ParameterError

#: model name -> (module, class name, parameters fixed by the name)
MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "nmf": ("deepnmf.models.nmf", "NMF", {}),
    "minibatch-nmf": ("deepnmf.models.minibatch", "MiniBatchNMF", {}),
    "vae-nmf": ("deepnmf.models.vae", "VAENMF", {}),
    "implicit": ("deepnmf.models.implicit", "ImplicitNMF", {"mode": "grid"}),
    "implicit-points": ("deepnmf.models.implicit", "ImplicitNMF", {"mode": "points"}),
    "dnmf": ("deepnmf.models.dnmf", "DiscriminativeNMF", {}),
}


def model_class(name: str) -> type:
    """The estimator class behind a model name (see :data:`MODELS`)."""
    if name not in MODELS:
        raise ParameterError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    module, cls_name, _ = MODELS[name]
    return getattr(importlib.import_module(module), cls_name)


def model_parameters(name: str) -> list[str]:
    """Constructor parameters a model name accepts (those fixed by the name excluded)."""
    cls = model_class(name)
    fixed = MODELS[name][2]
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "n_components", *fixed)]


def make_estimator(name: str, n_components: int | None = None, **params: Any) -> Any:
    """A fresh, unfitted estimator for a model name.

    Parameters
    ----------
    name : {"nmf", "minibatch-nmf", "vae-nmf", "implicit", "implicit-points", "dnmf"}
    n_components : int, optional
        Number of atoms. ``"dnmf"`` takes its rank from the dictionaries
        given to ``fit`` and accepts only ``None`` here.
    **params
        Constructor arguments of the class (``beta_loss``, ``max_epochs``,
        ``random_state``, ``device``...).

    Returns
    -------
    estimator : NMF, VAENMF, ImplicitNMF or DiscriminativeNMF

    Raises
    ------
    ParameterError
        Unknown model name, a parameter the model does not take, or a
        parameter the name already fixes (``mode`` for the iN-NMF names).

    Examples
    --------
    >>> from deepnmf.models import make_estimator
    >>> est = make_estimator("vae-nmf", 40, likelihood="poisson", max_epochs=100, random_state=0)
    """
    cls = model_class(name)
    fixed = MODELS[name][2]
    clash = sorted(set(params) & set(fixed))
    if clash:
        raise ParameterError(f"model {name!r} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; "
                             f"drop {', '.join(clash)} or use another model name")
    accepted = model_parameters(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ParameterError(f"model {name!r} ({cls.__name__}) takes no parameter "
                             f"{', '.join(repr(k) for k in unknown)}; it takes {', '.join(accepted)}")
    if name == "dnmf":
        if n_components is not None:
            raise ParameterError("model 'dnmf' takes its rank from the dictionaries given to fit; "
                                 "pass n_components=None")
        return cls(**params)
    if n_components is None and name not in ("nmf", "minibatch-nmf"):
        raise ParameterError(f"model {name!r} needs n_components (the number of atoms)")
    return cls(n_components, **fixed, **params)
