"""VAE-NMF as torch modules: Gamma encoder, nonnegative decoder, and the ELBO.

Orientation: a batch ``x`` is ``(batch, n_features)``; latent activations
``z`` are ``(batch, n_components)`` (rows of the activations ``W``); the
dictionary ``H`` is ``(n_components, n_features)`` and the decoder computes
``x_hat = z @ H`` (scikit-learn's letters, ``X ~ W @ H``; the paper writes
``W z`` with the dictionary ``W`` and samples as columns).

The loss of one sample is the negative ELBO, plus the paper's penalty on
negative dictionary entries when ``nonneg="penalty"``:

.. math::

    \\mathcal{L}(x) = -E_{q(z|x)}[\\log p(x|z)] + KL(q(z|x) \\| p(z))
                    + \\frac{\\gamma}{2} \\sum_{kf} \\min(V_{kf}, 0)^2

with ``q(z|x) = prod_k Gamma(z_k; alpha_k(x), beta_k(x))`` and a Gamma prior.

Scale handling (not in the paper, needed for real data): Adam's steps are
absolute in parameter units, so the free parameters are kept at a known size
whatever the data's units. The encoder sees ``x / mean(X)``. The decoder
stores ``V = H / scale`` with ``scale = DECODER_UNIT * mean(X) / (K E[z])``:
a typical dictionary entry is then ``V ~ 1 / DECODER_UNIT = 0.1``, so one
Adam step of ``lr = 1e-3`` moves it by about 1% (at ``V ~ 1`` the planted
benchmark needs about three times as many epochs). The penalty measures
``H`` in units of ``mean(X) / (K E[z])``, so ``gamma`` is unit-free too.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from deepnmf.divergences import EPS, RELATIVE_EPS, beta_divergence, model_part
from deepnmf.exceptions import ParameterError
from deepnmf.nn import gamma as gamma_dist
from deepnmf.nn import global_batch

LIKELIHOODS = ("gaussian", "poisson", "exponential")
NONNEG_MODES = ("penalty", "project", "softplus")
ENCODER_INPUTS = ("both", "linear", "log")
#: initial posterior shape (bias of the encoder's log-shape output)
INIT_SHAPE = 1.0
#: the decoder's free parameters are ``V = H / (DECODER_UNIT * mean(X) / (K E[z]))``
DECODER_UNIT = 10.0


class GammaEncoder(nn.Module):
    """MLP mapping a sample to the shape and rate of a Gamma posterior per latent dimension.

    The head outputs a log-mean ``m`` and a log-shape ``s`` per dimension:
    ``concentration = min_concentration + exp(s)`` and
    ``rate = concentration / exp(m)``, so the posterior mean is ``exp(m)``.
    Working in log space lets the encoder reach the very concentrated
    posteriors (shapes of 1e3 and more) of low-noise data in a few hundred
    Adam steps; a softplus output would need millions of steps of size ``lr``
    to grow that large. Both logs are clamped to +-``max_log`` to stay finite.

    Parameters
    ----------
    n_features, n_components : int
    hidden : sequence of int
        Hidden layer widths (ReLU activations); the paper uses ``(400, 400)``.
    min_concentration : float
        Floor on the posterior shapes.
    max_log : float
        Clamp of the log-mean and log-shape outputs.
    encoder_input : {"both", "linear", "log"}
        What the MLP sees of ``u = x / mean(X)``: ``u``, ``log1p(u)`` or both
        concatenated (default). The log view tames the dynamic range of
        spectra (on 20 s of TIMIT speech it cuts the training reconstruction
        error after 60 epochs from 0.50 to 0.37), the linear view keeps the
        near-linear posterior of low-noise data easy to learn.
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden: Sequence[int] = (400, 400),
        *,
        min_concentration: float = 0.05,
        max_log: float = 15.0,
        encoder_input: str = "both",
    ) -> None:
        super().__init__()
        if encoder_input not in ENCODER_INPUTS:
            raise ParameterError(f"encoder_input must be one of {ENCODER_INPUTS}, got {encoder_input!r}")
        self.encoder_input = encoder_input
        layers: list[nn.Module] = []
        width = n_features * (2 if encoder_input == "both" else 1)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * n_components)
        self.n_components = n_components
        self.min_concentration = float(min_concentration)
        self.max_log = float(max_log)
        self.register_buffer("input_scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, n_features)]

        Returns
        -------
        concentration, rate : torch.Tensor [shape=(batch, n_components)]
        """
        u = x / self.input_scale  # (B, F)
        if self.encoder_input == "log":
            u = torch.log1p(u)
        elif self.encoder_input == "both":
            u = torch.cat([u, torch.log1p(u)], dim=-1)  # (B, 2F)
        out = self.head(self.body(u))  # (B, 2K)
        log_mean, log_shape = out.clamp(-self.max_log, self.max_log).split(self.n_components, dim=-1)
        concentration = self.min_concentration + torch.exp(log_shape)
        return concentration, concentration * torch.exp(-log_mean)


class NonnegativeDecoder(nn.Module):
    """Linear decoder ``x_hat = z @ H`` with a nonnegative dictionary ``H``.

    Parameters
    ----------
    n_components, n_features : int
    nonneg : {"penalty", "project", "softplus"}
        ``"penalty"``: ``H = scale * V`` and the loss gets ``gamma/2 sum min(V, 0)^2``
        (the paper); ``"project"``: ``V`` is clamped at zero after every step;
        ``"softplus"``: ``H = scale * softplus(V)``.
    gamma : float
        Penalty weight (``"penalty"`` mode only).
    """

    def __init__(self, n_components: int, n_features: int, *, nonneg: str = "penalty", gamma: float = 100.0) -> None:
        super().__init__()
        self.nonneg = nonneg
        self.gamma = float(gamma)
        self.raw = nn.Parameter(torch.rand(n_components, n_features))  # V, (K, F)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("natural_scale", torch.ones(()))

    def set_dictionary(self, H: torch.Tensor) -> None:
        """Set the free parameters so that :meth:`weight` equals ``H`` (shape ``(K, F)``, >= 0)."""
        V = H / self.scale
        if self.nonneg == "softplus":
            V = V.clamp_min(1e-6)
            V = V + torch.log(-torch.expm1(-V))  # inverse softplus
        with torch.no_grad():
            self.raw.copy_(V)

    def weight(self) -> torch.Tensor:
        """The dictionary used in the forward pass, ``(n_components, n_features)``."""
        if self.nonneg == "softplus":
            return self.scale * F.softplus(self.raw)
        return self.scale * self.raw

    def components(self) -> torch.Tensor:
        """The dictionary as exposed to users: exactly nonnegative, ``(n_components, n_features)``."""
        return self.weight().detach().clamp_min(0.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(batch, n_components)`` -> ``x_hat`` ``(batch, n_features)``."""
        return z @ self.weight()

    def penalty(self) -> torch.Tensor:
        """``gamma/2 * sum(min(H / natural_scale, 0)^2)`` in penalty mode, else zero.

        ``natural_scale`` is ``mean(X) / (K E[z])``, the size of a typical
        dictionary entry, so ``gamma`` does not depend on the data's units.
        """
        if self.nonneg != "penalty":
            return self.raw.new_zeros(())
        unit = self.scale / self.natural_scale
        return 0.5 * self.gamma * torch.clamp(unit * self.raw, max=0.0).square().sum()

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp ``V`` at zero (``"project"`` mode; no-op otherwise)."""
        if self.nonneg == "project":
            self.raw.clamp_(min=0.0)


def negative_log_likelihood(
    x: torch.Tensor, x_hat: torch.Tensor, likelihood: str, dispersion: torch.Tensor, floor: torch.Tensor
) -> torch.Tensor:
    """``-log p(x | z)`` per sample, summed over features.

    Parameters
    ----------
    x, x_hat : torch.Tensor [shape=(batch, n_features)]
    likelihood : {"gaussian", "poisson", "exponential"}
        ``"gaussian"``: normal with mean ``x_hat`` and variance ``dispersion``
        (squared error, beta = 2).
        ``"poisson"``: Poisson-type with mean ``x_hat`` and variance
        ``dispersion * x_hat`` (generalised KL, beta = 1), in saddlepoint form
        ``d_KL(x | x_hat) / dispersion + 0.5 log(2 pi dispersion x)`` (the
        exact ``-log P(x=0) = x_hat / dispersion`` at zeros). With
        ``dispersion = 1`` and counts this is Poisson up to Stirling's
        approximation of ``log x!``; the estimated dispersion makes the fit
        independent of the data's units.
        ``"exponential"``: exponential with mean ``x_hat`` (Itakura-Saito, beta = 0);
        it is scale-free and ignores ``dispersion``.
    dispersion : torch.Tensor [shape=()]
    floor : torch.Tensor [shape=()]
        Means below this are clamped (Poisson and exponential need ``x_hat > 0``).

    Returns
    -------
    nll : torch.Tensor [shape=(batch,)]
    """
    if likelihood == "gaussian":  # d_2 = (x - x_hat)^2 / 2 per entry
        n_features = x.shape[-1]
        half_sq = beta_divergence(x, x_hat, 2.0, reduction="none").sum(-1)
        return half_sq / dispersion + 0.5 * n_features * torch.log(2 * math.pi * dispersion)
    if likelihood == "poisson":  # d_KL(x | max(x_hat, floor))
        positive = x > 0
        normaliser = torch.where(positive, 0.5 * torch.log(2 * math.pi * dispersion * x.clamp_min(floor)), 0.0)
        return (generalised_kl(x, x_hat, floor) / dispersion + normaliser).sum(-1)
    # exponential: log mu + x / mu, the Itakura-Saito divergence's model part (x is not floored)
    return model_part(x, x_hat.clamp_min(floor), 0.0, eps=0.0).sum(-1)


def generalised_kl(x: torch.Tensor, mu: torch.Tensor, floor: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Elementwise ``x log(x / mu) - x + mu`` with ``mu`` floored at ``floor`` (0 log 0 = 0); shapes broadcast.

    :func:`deepnmf.divergences.beta_divergence` with beta 1, elementwise.
    """
    return beta_divergence(x, mu, 1.0, eps=floor, reduction="none")


def _uniform_(t: torch.Tensor, low: float, high: float, generator: torch.Generator | None) -> None:
    """Fill ``t`` in place with U(low, high) draws from ``generator`` (drawn in float64, then cast)."""
    dev = generator.device if generator is not None else t.device
    t.copy_(torch.empty(t.shape, dtype=torch.float64, device=dev).uniform_(low, high, generator=generator))


def build_module(
    n_features: int,
    n_components: int,
    *,
    device: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None = None,
    **options,
) -> "VAENMFModule":
    """Construct a :class:`VAENMFModule` on ``device`` / ``dtype`` initialised from ``generator``.

    The module is built on the meta device first, so torch's global random
    generator is neither used nor advanced.
    """
    with torch.device("meta"):
        module = VAENMFModule(n_features, n_components, **options)
    module = module.to_empty(device=device).to(dtype)
    module.reset_(generator)
    return module


class VAENMFModule(nn.Module):
    """The whole VAE-NMF: encoder, Gamma prior, nonnegative decoder, likelihood.

    Parameters
    ----------
    n_features, n_components : int
    hidden : sequence of int
    likelihood : {"gaussian", "poisson", "exponential"}
    nonneg : {"penalty", "project", "softplus"}
    sampler : {"marsaglia-tsang", "implicit"}
    prior_shape, prior_rate : float
        The Gamma prior on every activation (the paper: shape 1, rate 1).
    gamma : float
        Weight of the penalty on negative dictionary entries.
    min_concentration : float
        Floor on the posterior shapes.
    noise_momentum : float
        Weight of each minibatch in the running dispersion estimate.
    encoder_input : {"both", "linear", "log"}
        See :class:`GammaEncoder`.

    Notes
    -----
    The dispersion of the Gaussian (its variance) and of the Poisson-type
    likelihood is estimated by maximum likelihood as training goes: a running
    mean, over minibatches, of the squared residual per entry (Gaussian) or
    of twice the generalised KL per entry (Poisson), kept in the buffer
    ``dispersion`` and floored at 1e-6 of the data's mean square (Gaussian)
    or mean (Poisson).
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        *,
        hidden: Sequence[int] = (400, 400),
        likelihood: str = "gaussian",
        nonneg: str = "penalty",
        sampler: str = "marsaglia-tsang",
        prior_shape: float = 1.0,
        prior_rate: float = 1.0,
        gamma: float = 100.0,
        min_concentration: float = 0.05,
        noise_momentum: float = 0.05,
        encoder_input: str = "both",
    ) -> None:
        super().__init__()
        self._prior = (float(prior_shape), float(prior_rate))
        self.encoder = GammaEncoder(
            n_features, n_components, hidden, min_concentration=min_concentration, encoder_input=encoder_input
        )
        self.decoder = NonnegativeDecoder(n_components, n_features, nonneg=nonneg, gamma=gamma)
        self.likelihood = likelihood
        self.sampler = sampler
        self.noise_momentum = float(noise_momentum)
        self.register_buffer("prior_shape", torch.tensor(float(prior_shape)))
        self.register_buffer("prior_rate", torch.tensor(float(prior_rate)))
        self.register_buffer("dispersion", torch.ones(()))
        self.register_buffer("noise_floor", torch.zeros(()))
        self.register_buffer("mean_floor", torch.full((), EPS))

    @torch.no_grad()
    def reset_(self, generator: torch.Generator | None = None) -> None:
        """(Re)initialise every parameter and buffer from ``generator`` (never torch's global one).

        Linear layers get torch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in));
        the dictionary gets uniform(0, 1) until :meth:`init_from_data` sets it.
        """
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                _uniform_(layer.weight, -bound, bound, generator)
                _uniform_(layer.bias, -bound, bound, generator)
        _uniform_(self.decoder.raw, 0.0, 1.0, generator)
        k = self.encoder.n_components
        self.encoder.head.bias[k:].fill_(math.log(INIT_SHAPE))  # start with low-variance posteriors
        self.encoder.input_scale.fill_(1.0)
        self.decoder.scale.fill_(1.0)
        self.decoder.natural_scale.fill_(1.0)
        self.prior_shape.fill_(self._prior[0])
        self.prior_rate.fill_(self._prior[1])
        self.dispersion.fill_(1.0)
        self.noise_floor.fill_(0.0)
        self.mean_floor.fill_(EPS)

    @torch.no_grad()
    def init_from_data(self, X: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Set the scales from the data and start ``H`` at scaled random training samples.

        Parameters
        ----------
        X : torch.Tensor [shape=(n_samples, n_features)]
            Training data (nonnegative).
        generator : torch.Generator, optional
        """
        n_components = self.decoder.raw.shape[0]
        x_mean = X.mean().clamp_min(torch.finfo(X.dtype).tiny)
        prior_mean = self.prior_shape / self.prior_rate
        self.encoder.input_scale.fill_(float(x_mean))
        natural = x_mean / (n_components * prior_mean)  # H's order of magnitude
        self.decoder.natural_scale.fill_(float(natural))
        self.decoder.scale.fill_(float(DECODER_UNIT * natural))
        self.mean_floor.fill_(float(x_mean) * RELATIVE_EPS)
        ms = X.square().mean()
        var = X.var() if X.numel() > 1 else ms
        if self.likelihood == "poisson":  # variance = dispersion * mean
            self.dispersion.fill_(float(var / x_mean))
            self.noise_floor.fill_(float(x_mean) * 1e-6)
        else:
            self.dispersion.fill_(float(var))
            self.noise_floor.fill_(float(ms) * 1e-6)
        self.dispersion.clamp_(min=float(self.noise_floor))
        H0 = self._initial_dictionary(X, n_components, generator)
        self.decoder.set_dictionary(H0)

    def _initial_dictionary(self, X: torch.Tensor, n_components: int, generator: torch.Generator | None) -> torch.Tensor:
        """Random training samples (with a little uniform jitter), scaled to the prior, ``(K, F)``."""
        dev = generator.device if generator is not None else X.device
        idx = torch.randint(0, X.shape[0], (n_components,), generator=generator, device=dev).to(X.device)
        jitter = torch.rand(n_components, X.shape[1], generator=generator, device=dev, dtype=torch.float64)
        jitter = jitter.to(X.device, X.dtype)
        prior_mean = self.prior_shape / self.prior_rate
        H0 = X[idx] + X.mean(0, keepdim=True) * jitter  # (K, F)
        return H0 / (n_components * prior_mean)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z|x)`` parameters, each ``(batch, n_components)``."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss terms of a batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, n_features)]
        generator : torch.Generator, optional

        Returns
        -------
        terms : dict of str -> torch.Tensor [shape=()]
            ``loss`` (what is minimised: batch mean of ``nll + kl`` plus the
            penalty), ``nll``, ``kl`` (batch means, nats per sample), ``penalty``.
        """
        alpha, beta = self.encoder(x)  # (B, K) each
        z = gamma_dist.rsample(alpha, beta, method=self.sampler, generator=generator, validate=False)
        x_hat = self.decoder(z)  # (B, F)
        if self.likelihood != "exponential" and self.training:
            self._update_dispersion(x, x_hat)
        nll = negative_log_likelihood(x, x_hat, self.likelihood, self.dispersion, self.mean_floor).mean()
        kl = gamma_dist.kl(alpha, beta, self.prior_shape, self.prior_rate).sum(-1).mean()
        penalty = self.decoder.penalty()
        return {"loss": nll + kl + penalty, "nll": nll, "kl": kl, "penalty": penalty}

    @torch.no_grad()
    def _update_dispersion(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        if self.likelihood == "gaussian":  # global_batch.mean: over every rank's rows in data-parallel training
            estimate = global_batch.mean((x - x_hat).square())
        else:
            estimate = 2.0 * global_batch.mean(generalised_kl(x, x_hat, self.mean_floor))
        new = torch.lerp(self.dispersion, estimate, self.noise_momentum)
        self.dispersion.copy_(torch.maximum(new, self.noise_floor))

    def after_step(self) -> None:
        """Called after every optimiser step (projection mode clamps ``H``)."""
        self.decoder.project_()

    def components(self) -> torch.Tensor:
        """Exactly nonnegative dictionary, ``(n_components, n_features)``."""
        return self.decoder.components()
