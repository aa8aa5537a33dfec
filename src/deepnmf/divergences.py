r"""Beta-divergences between nonnegative arrays, in torch.

.. math::

    d_\beta(x \mid y) = \frac{x^\beta + (\beta - 1) y^\beta - \beta x y^{\beta - 1}}{\beta(\beta - 1)}

with the limits :math:`\beta = 1` (generalised Kullback-Leibler,
:math:`x \log(x/y) - x + y`) and :math:`\beta = 0` (Itakura-Saito,
:math:`x/y - \log(x/y) - 1`); :math:`\beta = 2` is half the squared
Frobenius distance.

Flooring, used consistently here and in :mod:`deepnmf.solvers.mu`: the model
``Y`` is floored at ``eps`` whenever ``beta < 2`` (negative powers, logs); the
data ``X`` is floored at ``eps`` only where the divergence is otherwise
infinite (``beta <= 0``); for ``beta > 0`` zeros in ``X`` are exact
(``0 log 0 = 0``).
"""
from __future__ import annotations

import torch

from deepnmf.exceptions import ParameterError

#: floor for model values (and data values when beta <= 0)
EPS = 1e-12

BETA_NAMES = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}


def beta_from_loss(beta_loss: str | float) -> float:
    """Map ``"frobenius" | "kullback-leibler" | "itakura-saito" | float`` to beta."""
    if isinstance(beta_loss, str):
        if beta_loss not in BETA_NAMES:
            raise ParameterError(
                f"beta_loss must be one of {', '.join(map(repr, BETA_NAMES))} or a real number; got {beta_loss!r}"
            )
        return BETA_NAMES[beta_loss]
    try:
        beta = float(beta_loss)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"beta_loss must be a string or a real number, got {beta_loss!r}") from err
    if beta != beta or beta in (float("inf"), float("-inf")):
        raise ParameterError(f"beta_loss must be finite, got {beta_loss!r}")
    return beta


def beta_divergence(
    X: torch.Tensor,
    Y: torch.Tensor,
    beta: str | float,
    *,
    mask: torch.Tensor | None = None,
    eps: float = EPS,
    reduction: str = "sum",
) -> torch.Tensor:
    """Beta-divergence ``d_beta(X | Y)`` summed (or averaged, or elementwise).

    Parameters
    ----------
    X : torch.Tensor [shape=(...)]
        Nonnegative data.
    Y : torch.Tensor [shape=(...)]
        Nonnegative model, same shape (broadcastable).
    beta : str or float
        0 (Itakura-Saito), 1 (generalised KL), 2 (half squared Frobenius), any real.
    mask : torch.Tensor, optional
        1 where an entry counts, 0 where it is missing (ignored).
    eps : float
        Floor (see module docstring).
    reduction : {"sum", "mean", "none"}
        ``"mean"`` averages over observed entries.

    Returns
    -------
    torch.Tensor
        Scalar (``"sum"``/``"mean"``) or elementwise divergences.
    """
    beta = beta_from_loss(beta)
    if beta == 2.0:
        d = 0.5 * (X - Y) ** 2
    elif beta == 1.0:
        Ys = Y.clamp_min(eps)
        d = torch.xlogy(X, X) - torch.xlogy(X, Ys) - X + Ys
    elif beta == 0.0:
        ratio = X.clamp_min(eps) / Y.clamp_min(eps)
        d = ratio - torch.log(ratio) - 1.0
    else:
        Ys = Y.clamp_min(eps) if beta < 2 else Y
        Xs = X.clamp_min(eps) if beta <= 0 else X
        d = (Xs**beta + (beta - 1.0) * Ys**beta - beta * Xs * Ys ** (beta - 1.0)) / (beta * (beta - 1.0))
    if mask is not None:
        d = d * mask
    if reduction == "none":
        return d
    if reduction == "sum":
        return d.sum()
    if reduction == "mean":
        count = mask.sum() if mask is not None else torch.tensor(float(d.numel()), dtype=d.dtype)
        return d.sum() / count.clamp_min(1)
    raise ParameterError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
