r"""Beta-divergences between nonnegative arrays, in torch: the one home of every loss in deepnmf.

.. math::

    d_\beta(x \mid y) = \frac{x^\beta + (\beta - 1) y^\beta - \beta x y^{\beta - 1}}{\beta(\beta - 1)}

with the limits :math:`\beta = 1` (generalised Kullback-Leibler,
:math:`x \log(x/y) - x + y`) and :math:`\beta = 0` (Itakura-Saito,
:math:`x/y - \log(x/y) - 1`); :math:`\beta = 2` is half the squared
Frobenius distance.

Vocabulary. :func:`beta_from_loss` is the one name resolver: the canonical
names ``"frobenius"``, ``"kullback-leibler"``, ``"itakura-saito"``, their
aliases ``"euclidean"``, ``"kl"``, ``"is"``, the likelihood names whose
negative log-likelihood is that divergence up to terms of the data alone
(``"gaussian"``, ``"poisson"``, ``"exponential"``), or any real beta.
:func:`loss_name`, :func:`short_loss_name` and :func:`likelihood_name` map
back to each estimator's own vocabulary.

What lives here: the full divergence (:func:`beta_divergence`: elementwise,
summed or averaged, masked), the part that depends on the model
(:func:`model_part`), the part that depends on the data alone
(:func:`data_term`), and the model part summed together with its gradient
(:func:`divergence_terms`, branch-free so that :func:`torch.compile`
traces it; iN-NMF's training loops use it). The multiplicative-update
solver computes the same divergence fused with its updates, in place
(:mod:`deepnmf.solvers._kernels`; tested against :func:`beta_divergence`).

Floors. The model ``Y`` is floored at ``eps`` whenever ``beta < 2``
(negative powers, logs); the data ``X`` is floored at ``eps`` only where the
divergence is otherwise infinite (``beta <= 0``); for ``beta > 0`` zeros in
``X`` are exact (``0 log 0 = 0``). :func:`beta_divergence` floors the model
everywhere it appears (as the solver, which floors ``W @ H`` in place;
``floor_linear=False`` gives the other convention);
:func:`model_part` and :func:`divergence_terms` floor it only inside logs
and ratios, so the gradient of the linear KL term stays 1 and the gradient
is zero exactly where the floor is active (as with ``clamp_min``). Where
the two conventions differ (``Y < eps``) the values differ by less than
``eps`` per entry.

The numbers of the floors are named below; they differ per use because
changing them changes results (see each constant).
"""
from __future__ import annotations

import torch

from deepnmf.exceptions import ParameterError

#: The floor: of model values (and data values when beta <= 0) in the MU solver, the
#: discriminative NMF objective and every divergence computed here by default.
EPS = 1e-12
#: iN-NMF's floor of its model inside logs and ratios, and of the data for Itakura-Saito
#: (ImplicitNMF.eps, float32 training). Kept apart from EPS because it changes results: on
#: 10 s of TIMIT speech (|STFT 512|^0.5, 200 frames, rank 10, 200 epochs) the two floors gave
#: the same models, but with 30% of the entries set to exact zeros Itakura-Saito ended at a
#: mean divergence of 2.36 with 1e-8 and 3.91 with 1e-12 (atoms 53% apart), and the KL
#: curve's recorded values changed in their last digits (another arithmetic path).
IMPLICIT_EPS = 1e-8
#: VAE-NMF floors the likelihood's mean at this fraction of the data's mean (the floor then
#: scales with the data's units, so a dictionary learned on rescaled data is the rescaled one).
RELATIVE_EPS = 1e-8

#: canonical names -> beta
BETA_NAMES = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}
#: other names -> canonical name
ALIASES = {"euclidean": "frobenius", "kl": "kullback-leibler", "is": "itakura-saito"}
#: likelihood -> the divergence its negative log-likelihood is (up to terms of the data alone)
LIKELIHOODS = {"gaussian": "frobenius", "poisson": "kullback-leibler", "exponential": "itakura-saito"}
#: canonical name -> short name (iN-NMF's ``loss`` vocabulary)
SHORT_NAMES = {"frobenius": "frobenius", "kullback-leibler": "kl", "itakura-saito": "is"}


def _known_names() -> str:
    return ", ".join(repr(n) for n in (*BETA_NAMES, *ALIASES, *LIKELIHOODS))


def beta_from_loss(beta_loss: str | float) -> float:
    """The beta of a divergence name, alias, likelihood name or real number.

    Parameters
    ----------
    beta_loss : str or float
        ``"frobenius"`` / ``"euclidean"`` / ``"gaussian"`` (2),
        ``"kullback-leibler"`` / ``"kl"`` / ``"poisson"`` (1),
        ``"itakura-saito"`` / ``"is"`` / ``"exponential"`` (0), or any finite real.

    Returns
    -------
    beta : float

    Raises
    ------
    ParameterError
        Unknown name, or a value that is not a finite real.
    """
    if isinstance(beta_loss, str):
        name = LIKELIHOODS.get(beta_loss, ALIASES.get(beta_loss, beta_loss))
        if name not in BETA_NAMES:
            raise ParameterError(f"beta_loss must be one of {_known_names()} or a real number; got {beta_loss!r}")
        return BETA_NAMES[name]
    if isinstance(beta_loss, bool):
        raise ParameterError(f"beta_loss must be a string or a real number, got {beta_loss!r}")
    try:
        beta = float(beta_loss)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"beta_loss must be a string or a real number, got {beta_loss!r}") from err
    if beta != beta or beta in (float("inf"), float("-inf")):
        raise ParameterError(f"beta_loss must be finite, got {beta_loss!r}")
    return beta


def loss_name(beta_loss: str | float) -> str:
    """Canonical name (``"frobenius"``, ``"kullback-leibler"``, ``"itakura-saito"``) of beta 2, 1 or 0.

    Raises
    ------
    ParameterError
        For any other beta (it has no name).
    """
    beta = beta_from_loss(beta_loss)
    for name, value in BETA_NAMES.items():
        if beta == value:
            return name
    raise ParameterError(f"beta = {beta:g} has no name; only beta 2, 1 and 0 (frobenius, kullback-leibler, "
                         "itakura-saito) do")


def short_loss_name(beta_loss: str | float) -> str:
    """iN-NMF's name of beta 2, 1 or 0: ``"frobenius"``, ``"kl"``, ``"is"``."""
    return SHORT_NAMES[loss_name(beta_loss)]


def likelihood_name(beta_loss: str | float) -> str:
    """VAE-NMF's likelihood of beta 2, 1 or 0: ``"gaussian"``, ``"poisson"``, ``"exponential"``."""
    canonical = loss_name(beta_loss)
    return next(lik for lik, name in LIKELIHOODS.items() if name == canonical)


def beta_divergence(
    X: torch.Tensor,
    Y: torch.Tensor,
    beta: str | float,
    *,
    mask: torch.Tensor | None = None,
    eps: float | torch.Tensor = EPS,
    reduction: str = "sum",
    floor_linear: bool = True,
) -> torch.Tensor:
    """Beta-divergence ``d_beta(X | Y)`` summed (or averaged, or elementwise).

    Parameters
    ----------
    X : torch.Tensor [shape=(...)]
        Nonnegative data.
    Y : torch.Tensor [shape=(...)]
        Nonnegative model, same shape (broadcastable).
    beta : str or float
        Any name :func:`beta_from_loss` knows, or a real beta.
    mask : torch.Tensor, optional
        1 where an entry counts, 0 where it is missing (ignored).
    eps : float or torch.Tensor [shape=()]
        Floor (see the module docstring).
    reduction : {"sum", "mean", "none"}
        ``"mean"`` averages over observed entries.
    floor_linear : bool
        KL only: the floored model also in the linear term ``+ Y`` (the MU
        solver's convention, default); ``False`` floors it only inside the
        log, so the gradient matches :func:`divergence_terms` (iN-NMF's
        convention).

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
        d = torch.xlogy(X, X) - torch.xlogy(X, Ys) - X + (Ys if floor_linear else Y)
    elif beta == 0.0:
        ratio = X.clamp_min(eps) / Y.clamp_min(eps)
        d = ratio - torch.log(ratio) - 1.0
    else:
        Ys = Y.clamp_min(eps) if beta < 2 else Y
        Xs = X.clamp_min(eps) if beta <= 0 else X
        d = (Xs**beta + (beta - 1.0) * Ys**beta - beta * Xs * Ys ** (beta - 1.0)) / (beta * (beta - 1.0))
    if mask is not None:
        d = d * mask
    return _reduce(d, mask, reduction)


def _reduce(d: torch.Tensor, mask: torch.Tensor | None, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return d
    if reduction == "sum":
        return d.sum()
    if reduction == "mean":
        count = mask.sum() if mask is not None else torch.tensor(float(d.numel()), dtype=d.dtype)
        return d.sum() / count.clamp_min(1)
    raise ParameterError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


def _named_beta(loss: str | float) -> float:
    """Beta 2, 1 or 0 of ``loss`` (the betas the model-part formulas cover)."""
    beta = beta_from_loss(loss)
    if beta not in (0.0, 1.0, 2.0):
        raise ParameterError(f"only beta 2, 1 and 0 (frobenius, kl, is) are supported here, got {loss!r}")
    return beta


def model_part(X: torch.Tensor, Y: torch.Tensor, loss: str | float, *, eps: float | torch.Tensor = EPS) -> torch.Tensor:
    r"""Elementwise ``d_beta(X | Y)`` minus its terms of ``X`` alone (:func:`data_term`), for beta 2, 1, 0.

    .. math::

        \mathrm{frobenius}: \tfrac12 (X - Y)^2, \quad
        \mathrm{kl}: Y - X \log \lfloor Y \rfloor, \quad
        \mathrm{is}: \lfloor X \rfloor / \lfloor Y \rfloor + \log \lfloor Y \rfloor

    with :math:`\lfloor\cdot\rfloor` the floor ``eps`` (inside logs and
    ratios only). Frobenius keeps its data term (it has no log to split).
    VAE-NMF's exponential likelihood is the ``"is"`` part (with its own floor).

    Parameters
    ----------
    X, Y : torch.Tensor [shape=(...)]
        Data and model (broadcastable).
    loss : str or float
        A name of beta 2, 1 or 0, or the number.
    eps : float or torch.Tensor [shape=()]

    Returns
    -------
    torch.Tensor [shape=(...)]
    """
    beta = _named_beta(loss)
    if beta == 2.0:
        return 0.5 * (X - Y).square()
    Yc = Y.clamp_min(eps)
    if beta == 1.0:
        return Y - X * torch.log(Yc)
    return X.clamp_min(eps) / Yc + torch.log(Yc)


def data_term(X: torch.Tensor, loss: str | float, eps: float = EPS) -> float:
    """Mean over the entries of the part of the divergence that depends only on the data (beta 2, 1, 0).

    ``beta_divergence(X, Y, loss, reduction="mean")`` equals
    ``model_part(X, Y, loss).mean() + data_term(X, loss)`` up to the floor
    conventions (module docstring).
    """
    beta = _named_beta(loss)
    if beta == 1.0:
        return float((torch.xlogy(X, X) - X).mean())
    if beta == 0.0:
        return float((-torch.log(X.clamp_min(eps)) - 1).mean())
    return 0.0


def divergence_terms(X: torch.Tensor, Y: torch.Tensor, loss: str | float, eps: float, *,
                     gradient: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sum of :func:`model_part` and its gradient with respect to ``Y``, in one pass.

    The floor ``eps`` of ``Y`` inside logs and ratios stops the gradient where
    it is active (as ``clamp_min`` does). No branch depends on the values,
    so :func:`torch.compile` traces one graph (``loss`` is a constant). The
    Itakura-Saito value shares the reciprocal with the gradient
    (``X * (1 / Y)`` rather than :func:`model_part`'s ``X / Y``; equal up to
    rounding). Shared by iN-NMF's grid objective, its points loops and their
    compiled forms.

    Parameters
    ----------
    X, Y : torch.Tensor [shape=(...)]
        Data and model, same shape.
    loss : str or float
        A name of beta 2, 1 or 0 (``"kl"``, ``"frobenius"``, ``"is"``...).
    eps : float
    gradient : bool
        Also return ``dY``. Without it only the value is formed; it is
        differentiable by autograd with the same gradient.

    Returns
    -------
    value : torch.Tensor [shape=()]
    dY : torch.Tensor [shape=(...)] or None
    """
    beta = _named_beta(loss)
    if beta == 2.0:
        return model_part(X, Y, beta).sum(), (Y - X if gradient else None)
    if beta == 1.0:
        value = model_part(X, Y, beta, eps=eps).sum()
        return value, (torch.where(Y >= eps, 1.0 - X / Y.clamp_min(eps), 1.0) if gradient else None)
    Yc = Y.clamp_min(eps)
    inv = 1.0 / Yc
    Xc = X.clamp_min(eps)
    value = (Xc * inv + torch.log(Yc)).sum()
    return value, ((inv - Xc * inv.square()) * (Y >= eps) if gradient else None)
