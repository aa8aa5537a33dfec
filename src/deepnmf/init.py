"""Initialisation of NMF factors: random, nndsvd, nndsvda, nndsvdar, custom.

Orientation: ``X`` (n_samples, n_features) ~ ``W`` (n_samples, k) @ ``H`` (k, n_features).
NNDSVD follows Boutsidis & Gallopoulos (2008); the ``a`` variant fills zeros
with the mean of ``X`` (better for multiplicative updates, where zeros never
move), ``ar`` with small random values.
"""
from __future__ import annotations

import math

import torch

from deepnmf._utils import check_finite_nonnegative
from deepnmf.exceptions import DataError, ParameterError

INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")


def default_init(n_components: int, n_samples: int, n_features: int) -> str:
    """scikit-learn's rule: ``nndsvda`` when the rank allows an SVD, else ``random``."""
    return "nndsvda" if n_components <= min(n_samples, n_features) else "random"


def randomized_svd(
    X: torch.Tensor, rank: int, *, generator: torch.Generator, n_oversamples: int = 10, n_iter: int = 7
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Truncated SVD by randomised range finding (Halko et al. 2011) with power iterations.

    Returns ``U (n, rank)``, ``S (rank,)``, ``Vh (rank, m)``. Uses only ``generator``.
    """
    n, m = X.shape
    size = min(rank + n_oversamples, n, m)
    omega = torch.randn(m, size, generator=generator, device=X.device, dtype=X.dtype)
    Q = torch.linalg.qr(X @ omega).Q  # (n, size)
    for _ in range(n_iter):
        Q = torch.linalg.qr(X.T @ Q).Q  # (m, size)
        Q = torch.linalg.qr(X @ Q).Q  # (n, size)
    U_small, S, Vh = torch.linalg.svd(Q.T @ X, full_matrices=False)
    return (Q @ U_small)[:, :rank], S[:rank], Vh[:rank]


def _svd(X: torch.Tensor, rank: int, generator: torch.Generator):
    if min(X.shape) <= 1000 or rank > min(X.shape) // 4:
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        return U[:, :rank], S[:rank], Vh[:rank]
    return randomized_svd(X, rank, generator=generator)


def nndsvd(X: torch.Tensor, rank: int, *, generator: torch.Generator, eps: float = 1e-6):
    """Plain NNDSVD factors (with exact zeros); see :func:`initialize` for the variants."""
    U, S, Vh = _svd(X, rank, generator)
    W = torch.zeros(X.shape[0], rank, dtype=X.dtype, device=X.device)
    H = torch.zeros(rank, X.shape[1], dtype=X.dtype, device=X.device)
    W[:, 0] = S[0].sqrt() * U[:, 0].abs()
    H[0] = S[0].sqrt() * Vh[0].abs()
    for j in range(1, rank):
        x, y = U[:, j], Vh[j]
        xp, yp, xn, yn = x.clamp_min(0), y.clamp_min(0), (-x).clamp_min(0), (-y).clamp_min(0)
        xpn, ypn, xnn, ynn = xp.norm(), yp.norm(), xn.norm(), yn.norm()
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / xpn, yp / ypn, mp
        else:
            u, v, sigma = xn / xnn, yn / ynn, mn
        lam = (S[j] * sigma).sqrt()
        W[:, j] = lam * u
        H[j] = lam * v
    W[W < eps] = 0
    H[H < eps] = 0
    return W, H


def initialize(
    X: torch.Tensor,
    n_components: int,
    *,
    init: str = "nndsvda",
    generator: torch.Generator,
    W: torch.Tensor | None = None,
    H: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial ``W`` (n_samples, k) and ``H`` (k, n_features) for NMF of ``X``.

    Parameters
    ----------
    X : torch.Tensor [shape=(n_samples, n_features)]
    n_components : int
    init : {"random", "nndsvd", "nndsvda", "nndsvdar", "custom"}
        ``"random"`` scales half-normal draws by ``sqrt(mean(X) / k)``;
        ``"custom"`` takes ``W`` and ``H`` as given (copied).
    generator : torch.Generator
    W, H : torch.Tensor, optional
        Required for ``"custom"``.
    """
    n, m = X.shape
    if init not in INITS:
        raise ParameterError(f"init must be one of {', '.join(map(repr, INITS))} or None; got {init!r}")
    if init == "custom":
        return _custom(X, n_components, W, H)
    if init == "random":
        scale = math.sqrt(float(X.mean()) / n_components)
        H0 = scale * torch.randn(n_components, m, generator=generator, dtype=X.dtype, device=X.device).abs_()
        W0 = scale * torch.randn(n, n_components, generator=generator, dtype=X.dtype, device=X.device).abs_()
        return W0, H0
    if n_components > min(n, m):
        raise ParameterError(
            f"init={init!r} needs n_components <= min(n_samples, n_features) = {min(n, m)}; "
            f"got n_components={n_components}. Use init='random' or a smaller rank"
        )
    W0, H0 = nndsvd(X, n_components, generator=generator)
    avg = X.mean()
    if init == "nndsvda":
        W0[W0 == 0] = avg
        H0[H0 == 0] = avg
    elif init == "nndsvdar":
        for F in (W0, H0):
            zeros = F == 0
            noise = torch.randn(int(zeros.sum()), generator=generator, dtype=X.dtype, device=X.device)
            F[zeros] = (avg * noise / 100).abs()
    return W0, H0


def _custom(X, n_components, W, H):
    if W is None or H is None:
        raise ParameterError("init='custom' needs both W and H")
    n, m = X.shape
    for name, F, shape in (("W", W, (n, n_components)), ("H", H, (n_components, m))):
        if tuple(F.shape) != shape:
            raise DataError(f"custom {name} has shape {tuple(F.shape)}, expected {shape}")
        check_finite_nonnegative(F, f"custom {name}")
        if not float(F.max()) > 0:
            raise DataError(f"custom {name} is all zeros; multiplicative updates cannot move from zero")
    # contiguous copies: a Fortran-ordered H (as scikit-learn's initialisers return) slows every update
    return W.to(X).clone(memory_format=torch.contiguous_format), H.to(X).clone(memory_format=torch.contiguous_format)
