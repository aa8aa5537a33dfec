"""The checks and warnings that make :class:`~deepnmf.NMF` and :class:`~deepnmf.MiniBatchNMF` drop-ins for scikit-learn's.

Messages are scikit-learn's own, word for word where its tests match them;
the errors are deepnmf's (``DataError`` / ``ParameterError``, both
``ValueError``), except a dtype mismatch of ``W``/``H``, a ``TypeError`` as
in scikit-learn.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from deepnmf._utils import as_tensor, check_positive_int, seed_from
from deepnmf.exceptions import DataError, ParameterError

#: solvers of NMF: "auto" is cd for Frobenius and mu for every other loss
SOLVERS = ("auto", "cd", "mu", "newton-cd")
#: the one loss each coordinate-descent solver handles
SOLVER_BETA = {"cd": 2.0, "newton-cd": 1.0}


def densify(X: Any) -> Any:
    """scipy sparse matrices become dense numpy arrays (deepnmf's solvers work on dense data)."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        return X.toarray()
    return X


def resolve_solver(solver: str, beta: float, beta_loss: Any, init: str | None) -> str:
    """The solver that runs (``"auto"`` resolved), after scikit-learn's checks of the pair."""
    if solver not in SOLVERS:
        raise ParameterError(f"solver must be one of {', '.join(map(repr, SOLVERS))}; got {solver!r}")
    if solver == "auto":
        solver = "cd" if beta == 2.0 else "mu"
    if solver in SOLVER_BETA and beta != SOLVER_BETA[solver]:
        raise ParameterError(f"Invalid beta_loss parameter: solver {solver!r} does not handle beta_loss = {beta_loss!r}")
    if solver == "mu" and init == "nndsvd":
        warnings.warn(
            "The multiplicative update ('mu') solver cannot update zeros present in the initialization, "
            "and so leads to poorer results when used jointly with init='nndsvd'. "
            "You may try init='nndsvda' or init='nndsvdar' instead.",
            UserWarning,
            stacklevel=3,
        )
    return solver


def check_n_components(n_components: Any, n_features: int) -> int | str:
    """``None`` -> ``n_features``; ``"auto"`` stays until W/H or the data decide; else a positive int."""
    if n_components is None:
        return n_features
    if isinstance(n_components, str) and n_components == "auto":
        return "auto"
    return check_positive_int(n_components, "n_components")


def check_zeros_for_beta(Xt: torch.Tensor, beta: float, mask: torch.Tensor | None) -> None:
    """scikit-learn refuses observed zeros for ``beta <= 0`` (the divergence is infinite there)."""
    if beta > 0:
        return
    zero = Xt == 0 if mask is None else (Xt == 0) & (mask != 0)
    if bool(zero.any()):
        raise DataError(
            "When beta_loss <= 0 and X contains zeros, the solver may diverge. "
            "Please add small values to X, or use a positive beta_loss."
        )


def check_init_array(A: Any, shape: tuple, whom: str, X: torch.Tensor) -> torch.Tensor:
    """A user's ``W`` or ``H`` as a tensor like ``X``: shape, sign and not all zeros (scikit-learn's messages)."""
    T = as_tensor(densify(A), name=whom, device=X.device)[0]
    for axis, word in ((0, "first"), (1, "second")):
        if shape[axis] != "auto" and T.shape[axis] != shape[axis]:
            raise DataError(f"Array with wrong {word} dimension passed to {whom}. Expected {shape[axis]}, "
                            f"but got {T.shape[axis]}.")
    if not bool(torch.isfinite(T).all()):
        raise DataError(f"Input contains NaN or infinity: {whom}")
    if bool((T < 0).any()):
        raise DataError(f"Negative values in data passed to {whom}")
    if not float(T.max()) > 0:
        raise DataError(f"Array passed to {whom} is full of zeros.")
    return T.clone(memory_format=torch.contiguous_format)


def dtype_of(A: Any) -> Any:
    """The dtype of an array or tensor, as numpy names it (``"float32"``...)."""
    if isinstance(A, torch.Tensor):
        return str(A.dtype).replace("torch.", "")
    return np.asarray(A).dtype.name if not hasattr(A, "dtype") else np.dtype(A.dtype).name


def check_same_dtype(X: torch.Tensor, W: Any, H: Any) -> None:
    """``TypeError`` (scikit-learn's) when a given W/H does not have X's (float) dtype."""
    x = str(X.dtype).replace("torch.", "")
    if W is not None and H is not None and (dtype_of(H) != x or dtype_of(W) != x):
        raise TypeError(f"H and W should have the same dtype as X. Got H.dtype = {dtype_of(H)} and "
                        f"W.dtype = {dtype_of(W)}.")
    if W is None and H is not None and dtype_of(H) != x:
        raise TypeError(f"H should have the same dtype as X. Got H.dtype = {dtype_of(H)}.")


def warn_unused(W: Any, H: Any, update_H: bool) -> None:
    """scikit-learn's RuntimeWarnings for initial factors that will not be used."""
    if not update_H and W is not None:
        warnings.warn("When update_H=False, the provided initial W is not used.", RuntimeWarning, stacklevel=4)
    elif update_H and (W is not None or H is not None):
        warnings.warn("When init!='custom', provided W or H are ignored. Set  init='custom' to use them as "
                      "initialization.", RuntimeWarning, stacklevel=4)


def warn_convergence(n_iter: int, max_iter: int, tol: float) -> None:
    """scikit-learn's ConvergenceWarning when the iteration budget ran out with ``tol > 0``."""
    if n_iter == max_iter and tol > 0:
        warnings.warn(f"Maximum number of iterations {max_iter} reached. Increase it to improve convergence.",
                      ConvergenceWarning, stacklevel=4)


def numpy_random_state(random_state: Any) -> np.random.RandomState:
    """A numpy RandomState for the coordinate orders (an int gives scikit-learn's own orders)."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    return np.random.RandomState(seed_from(random_state) % (2**32))
