"""Reparameterised Gamma sampling and the Gamma-Gamma KL divergence (shape-rate form).

A Gamma variable here has a ``concentration`` (shape, alpha > 0) and a ``rate``
(beta > 0): density ``beta^alpha z^(alpha-1) exp(-beta z) / Gamma(alpha)``,
mean ``alpha / beta``, variance ``alpha / beta^2``.

Two samplers, both driven by an explicit ``torch.Generator`` and both giving
gradients with respect to the concentration and the rate:

``"marsaglia-tsang"``
    The rejection-sampler reparameterisation of Naesseth et al. (2017), the
    one the VAE-NMF paper uses. Marsaglia and Tsang's proposal
    ``h(eps, a) = (a - 1/3) (1 + eps / sqrt(9 a - 3))^3`` with ``eps ~ N(0, 1)``
    is accepted or rejected exactly (the accepted draw is an exact Gamma(a, 1)
    sample), then recomputed with gradients through ``a`` while ``eps`` is held
    fixed. Proposals need ``a >= 1``: every shape is boosted by
    ``B`` (:data:`MT_BOOST`; shape augmentation), the sample for ``a + B`` is
    drawn and multiplied by ``prod_{i=1..B} u_i^(1 / (a + i - 1))`` with
    ``u_i ~ U(0, 1)``. Augmentation makes the draw valid for ``a < 1`` and
    makes the rejection-correction term of the gradient negligible, so the
    gradient of the mean is within Monte Carlo error of ``1 / rate``. Work
    is done in log space so tiny shapes do not underflow.

``"implicit"``
    Implicit reparameterisation (Figurnov et al. 2018), the gradient that
    ``torch.distributions.Gamma.rsample`` uses: an exact draw ``z`` (torch's
    Gamma kernel, driven by the ``generator``) and
    ``dz/da = -(dF(z; a)/da) / f(z; a)``, computed by torch's
    ``_standard_gamma_grad``.

With both methods, draws below the dtype's smallest normal number are clamped
to it (with zero gradient), as torch does: keep shapes above about 0.05 in
float32, where ``u^(1/alpha)`` can underflow.
"""
from __future__ import annotations

import math

import torch

from deepnmf.exceptions import ParameterError
from deepnmf.nn import global_batch

#: shape augmentation used by the Marsaglia-Tsang sampler (a -> a + MT_BOOST)
MT_BOOST = 1
METHODS = ("marsaglia-tsang", "implicit")


def _uniform(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0, 1] draws (never exactly 0, so their log is finite).

    Draws are made in float64 and cast, so a generator gives the same stream
    (up to rounding) whatever the working precision.
    """
    dev = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, dtype=torch.float64, device=dev)
    return (1.0 - u).to(like.device, like.dtype)


def _standard_gamma(alpha: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Exact ``Gamma(alpha, 1)`` draws from ``generator`` (float64 on its device, cast back).

    torch's kernel is itself a Marsaglia-Tsang rejection sampler (boosted for
    shapes below 1); drawing in float64 keeps a generator's stream the same
    whatever the working precision.
    """
    dev = generator.device if generator is not None else alpha.device
    z = torch._standard_gamma(alpha.detach().to(dev, torch.float64), generator=generator)
    return z.to(alpha.device)


def marsaglia_tsang_eps(shape: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Accepted ``eps`` of Marsaglia and Tsang's rejection sampler.

    The accepted ``eps`` is the unique value with ``h(eps, a) = z`` for an
    exact draw ``z ~ Gamma(a, 1)`` (``h`` is increasing), so it is obtained
    by inverting ``h`` at an exact draw: the same distribution as running the
    rejection loop, in one vectorised kernel.

    Parameters
    ----------
    shape : torch.Tensor [shape=(...)]
        Gamma shapes, all ``>= 1`` (no gradient is taken here).
    generator : torch.Generator, optional

    Returns
    -------
    eps : torch.Tensor [shape=(...)]
        Draws such that ``h(eps, shape)`` is an exact ``Gamma(shape, 1)`` sample.
    """
    a = shape.detach().double()
    z = _standard_gamma(a, generator)
    d = a - 1.0 / 3.0
    eps = (torch.pow(z / d, 1.0 / 3.0) - 1.0) * torch.sqrt(9.0 * d)
    return eps.to(shape.dtype)


def _mt_log_h(eps: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """``log h(eps, a) = log(a - 1/3) + 3 log(1 + eps / sqrt(9a - 3))`` (differentiable in ``a``)."""
    return torch.log(shape - 1.0 / 3.0) + 3.0 * torch.log1p(eps * torch.rsqrt(9.0 * shape - 3.0))


def _mt_noise(boosted: torch.Tensor, generator: torch.Generator | None, boost: int) -> tuple[torch.Tensor, ...]:
    """The random numbers of one boosted Marsaglia-Tsang draw per entry of ``boosted`` (detached):
    the accepted ``eps``, then ``boost`` tensors of uniforms, each shaped like ``boosted``."""
    eps = marsaglia_tsang_eps(boosted, generator)
    return (eps, *(_uniform(boosted.shape, boosted, generator) for _ in range(boost)))


def _log_standard_gamma(alpha: torch.Tensor, generator: torch.Generator | None, boost: int,
                        rows_dim: int = 0) -> torch.Tensor:
    """Log of a ``Gamma(alpha, 1)`` draw, differentiable in ``alpha`` (Naesseth et al.).

    ``alpha + boost`` must be ``>= 1``. The noise is drawn through
    :func:`deepnmf.nn.global_batch.draw` (rows along ``rows_dim``).
    """
    boosted = alpha + boost
    eps, *uniforms = global_batch.draw(lambda a: _mt_noise(a, generator, boost), boosted.detach(), rows_dim)
    log_z = _mt_log_h(eps, boosted)
    for i, u in enumerate(uniforms):
        log_z = log_z + torch.log(u) / (alpha + i)
    return log_z


class _ImplicitGamma(torch.autograd.Function):
    """Standard Gamma draw with the implicit-reparameterisation gradient."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(alpha, z)
        return z

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        alpha, z = ctx.saved_tensors
        return grad * torch._standard_gamma_grad(alpha, z), None


def _check_params(concentration: torch.Tensor, rate: torch.Tensor) -> None:
    for name, t in (("concentration", concentration), ("rate", rate)):
        if not t.is_floating_point():
            raise ParameterError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise ParameterError(f"{name} must be finite and > 0 everywhere")


def rsample(
    concentration: torch.Tensor,
    rate: torch.Tensor,
    *,
    method: str = "marsaglia-tsang",
    generator: torch.Generator | None = None,
    sample_shape: tuple[int, ...] = (),
    validate: bool = True,
) -> torch.Tensor:
    """Reparameterised ``Gamma(concentration, rate)`` draws.

    Parameters
    ----------
    concentration : torch.Tensor [shape=(...)]
        Shapes alpha > 0; broadcast against ``rate``.
    rate : torch.Tensor [shape=(...)]
        Rates beta > 0.
    method : {"marsaglia-tsang", "implicit"}
        Gradient estimator, see the module docstring.
    generator : torch.Generator, optional
        Source of randomness (torch's global generator when ``None``).
        Inside :func:`deepnmf.nn.global_batch.sharded` (data-parallel
        training) the first dimension after ``sample_shape`` is this rank's
        rows of a global batch: the draws are those one process makes for the
        whole batch, this rank's rows kept.
    sample_shape : tuple of int
        Extra leading dimensions of independent draws.
    validate : bool
        Check that both parameters are finite and positive.

    Returns
    -------
    z : torch.Tensor [shape=(*sample_shape, *broadcast shape)]
        Positive draws; gradients flow to ``concentration`` and ``rate``.
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    concentration = torch.as_tensor(concentration)
    rate = torch.as_tensor(rate, dtype=concentration.dtype, device=concentration.device)
    if validate:
        _check_params(concentration, rate)
    shape = torch.Size(sample_shape) + torch.broadcast_shapes(concentration.shape, rate.shape)
    alpha, beta = concentration.expand(shape), rate.expand(shape)
    rows_dim = len(sample_shape)  # inside global_batch.sharded: the batch's rows (this rank's share)
    if method == "marsaglia-tsang":
        log_z = _log_standard_gamma(alpha, generator, MT_BOOST, rows_dim) - torch.log(beta)
        # like torch, keep draws at or above the smallest normal number of the dtype
        return torch.exp(log_z.clamp_min(math.log(torch.finfo(log_z.dtype).tiny)))
    with torch.no_grad():
        z = global_batch.draw(lambda a: _standard_gamma(a, generator), alpha.detach(), rows_dim).to(alpha.dtype)
        z = z.clamp_min(torch.finfo(z.dtype).tiny)
    return _ImplicitGamma.apply(alpha, z) / beta


def kl(
    concentration_q: torch.Tensor,
    rate_q: torch.Tensor,
    concentration_p: torch.Tensor,
    rate_p: torch.Tensor,
) -> torch.Tensor:
    r"""Closed-form ``KL(Gamma(a_q, b_q) || Gamma(a_p, b_p))``, elementwise, shape-rate form.

    .. math::

        KL = (a_q - a_p)\psi(a_q) - \ln\Gamma(a_q) + \ln\Gamma(a_p)
             + a_p(\ln b_q - \ln b_p) + a_q \frac{b_p - b_q}{b_q}

    (the paper's Eq. 8 mixes the rate and scale forms; this is the correct one.)

    Parameters
    ----------
    concentration_q, rate_q : torch.Tensor [shape=(...)]
        Parameters of the first distribution (the posterior ``q``).
    concentration_p, rate_p : torch.Tensor or float [shape=(...)]
        Parameters of the second (the prior ``p``); all four broadcast.

    Returns
    -------
    kl : torch.Tensor [shape=(broadcast shape)]
        Nonnegative divergences, in nats.
    """
    a_q, b_q = torch.as_tensor(concentration_q), torch.as_tensor(rate_q)
    a_p = torch.as_tensor(concentration_p, dtype=a_q.dtype, device=a_q.device)
    b_p = torch.as_tensor(rate_p, dtype=a_q.dtype, device=a_q.device)
    return (
        (a_q - a_p) * torch.digamma(a_q)
        - torch.lgamma(a_q)
        + torch.lgamma(a_p)
        + a_p * (torch.log(b_q) - torch.log(b_p))
        + a_q * (b_p - b_q) / b_q
    )


def mean(concentration: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Posterior mean ``concentration / rate`` (shape ``(...)``)."""
    return concentration / rate


def mode(concentration: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Mode ``max(concentration - 1, 0) / rate`` (shape ``(...)``)."""
    return torch.clamp(concentration - 1.0, min=0.0) / rate


__all__ = ["rsample", "kl", "mean", "mode", "marsaglia_tsang_eps", "METHODS", "MT_BOOST"]
