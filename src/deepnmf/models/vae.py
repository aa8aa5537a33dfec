"""VAENMF: the Gamma-latent variational autoencoder with a nonnegative dictionary (Xie et al.).

Orientation: ``X`` is ``(n_samples, n_features)`` (frames x bins, time x
muscles); ``components_`` is the dictionary ``(n_components, n_features)``;
activations ``W`` are ``(n_samples, n_components)`` and ``X ~ W @ H`` with
``H = components_`` (scikit-learn's letters; the paper writes ``x ~ W z``
with the dictionary ``W``: here ``z`` is a row of ``W`` and its dictionary is ``H``).

The maths lives in :mod:`deepnmf.nn.vae` (modules, ELBO) and
:mod:`deepnmf.nn.gamma` (sampler, KL); the loop in :mod:`deepnmf.training`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from deepnmf._utils import (
    ArrayKind,
    as_tensor,
    check_choice,
    check_finite_nonnegative,
    check_nonneg_float,
    check_positive_int,
    check_model_size,
    make_generator,
    resolve_device,
)
from deepnmf.callbacks import Callback, chain, print_every
from deepnmf.divergences import likelihood_name
from deepnmf.exceptions import DataError, ModelFileError, ParameterError
from deepnmf.models._base import BaseNMF

LIKELIHOODS = ("gaussian", "poisson", "exponential")
NONNEG_MODES = ("penalty", "project", "softplus")
SAMPLERS = ("marsaglia-tsang", "implicit")
INITS = ("random", "nmf")
#: likelihood -> the NMF divergence of ``init="nmf"``
_NMF_BETA = {"gaussian": "frobenius", "poisson": "kullback-leibler", "exponential": "itakura-saito"}
POSTERIOR_STATS = ("mean", "sample", "mode")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_CHUNK = 8192  # rows per forward pass at inference


#: smallest largest-value of X that VAENMF trains on (below it, at any dtype, training gives NaN)
MIN_PEAK = 1e-18


def _epoch_line(info) -> str:
    """The ``verbose`` line of one epoch."""
    val = f" val {info.val['loss']:.4g}" if info.val else ""
    return (f"[VAENMF] epoch {info.epoch}/{info.max_epochs} loss {info.train['loss']:.4g}"
            f" (nll {info.train['nll']:.4g}, kl {info.train['kl']:.4g}){val} {info.elapsed:.1f}s")


def kl_warmup_loss(steps: int, weight: float = 1.0):
    r"""A :func:`deepnmf.training.fit_module` loss with KL annealing over ``steps`` optimiser steps.

    At training step ``t`` (counted from 0) the loss is
    ``nll + weight min(t / steps, 1) kl + penalty`` (``steps = 0``: the
    weight from the first step, a beta-VAE when ``weight != 1``); evaluation
    (the module in ``eval`` mode: validation) gets the module's own terms,
    the full negative ELBO.
    """
    done = [0]
    weight = float(weight)

    def loss_fn(module, batch: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        terms = module(batch, generator)
        if not module.training:
            return terms
        ramp = 1.0
        if done[0] < steps:
            ramp = done[0] / steps
            done[0] += 1
        if ramp * weight != 1.0:
            terms = {**terms, "loss": terms["nll"] + (ramp * weight) * terms["kl"] + terms["penalty"]}
        return terms

    return loss_fn


class VAENMF(BaseNMF):
    r"""VAE-NMF: a Gamma-latent VAE whose decoder is a nonnegative dictionary.

    Each sample ``x`` (a row of ``X``) is modelled as ``x ~ p(x | z @ H)``
    with activations ``z ~ Gamma(prior_shape, prior_rate)`` (a row of ``W``)
    and the dictionary ``H >= 0``;
    an MLP encoder gives the Gamma posterior ``q(z | x)``. Training minimises

    .. math::

        -E_q[\log p(x|z)] + KL(q(z|x) \| p(z)) + \frac{\gamma}{2}\sum \min(V, 0)^2

    with Adam on minibatches (the paper: lr 1e-3, weight decay 5e-4, batch 128,
    two hidden layers of 400 units).

    Parameters
    ----------
    n_components : int
        Number of dictionary atoms (latent dimensions).
    likelihood : {"gaussian", "poisson", "exponential"}
        ``p(x|z)``: Gaussian (squared error), Poisson-type (generalised KL),
        exponential (Itakura-Saito). The Gaussian variance and the Poisson
        dispersion are estimated during training (``dispersion_``).
    beta_loss : str or float, optional
        The same choice in :class:`deepnmf.NMF`'s vocabulary (any name
        :func:`deepnmf.divergences.beta_from_loss` knows, or beta 2, 1, 0:
        ``"frobenius"`` is Gaussian, ``"kullback-leibler"`` Poisson,
        ``"itakura-saito"`` exponential); when given it sets the likelihood
        and ``likelihood`` is ignored.
    nonneg : {"penalty", "project", "softplus"}
        How ``H >= 0`` is kept: the paper's quadratic penalty of weight
        ``gamma`` (``components_`` then clips the small negative residue),
        clamping after each step, or a softplus reparameterisation.
        Adam moves each free parameter by about ``lr`` per step. Under
        ``"penalty"`` and ``"project"`` that step is absolute, so entries far
        below a typical one (the high-frequency bins of a speech atom) jitter
        around zero and an NMF start's zeros fill in. Under ``"softplus"`` a
        small entry is about ``exp(V)`` and moves relatively, so they stay
        near zero. For enhancement neither changed the SDR (docs/vae-nmf.md).
    sampler : {"marsaglia-tsang", "implicit"}
        Reparameterised Gamma sampler, see :func:`deepnmf.nn.gamma.rsample`.
    hidden : tuple of int
        Encoder hidden layer widths.
    max_epochs : int
        Passes over the training samples (exactly this many when
        ``early_stopping=False``).
    batch_size : int
    validation_fraction : float
        Share of samples held out to monitor the loss (0 allowed).
    early_stopping : bool
        Stop after ``patience`` epochs without relative improvement ``tol`` of
        the monitored loss (validation, else training) and keep the best weights.
    lr, weight_decay : float
        Adam learning rate and L2 weight decay.
    random_state : int, generator or None
        Seeds initialisation, the split, shuffling and sampling.
    device : {"cpu", "cuda", "cuda:N", "auto"}
    verbose : int
        Print one line every ``verbose`` epochs to stderr (0: silent).
    prior_shape, prior_rate : float
        The Gamma prior on each activation (the paper: 1 and 1).
    gamma : float
        Penalty weight (``nonneg="penalty"``), on the order-one free parameters.
    patience : int
        Epochs without improvement before early stopping.
    tol : float
        Relative improvement that counts for early stopping.
    min_concentration : float
        Floor on the posterior shapes.
    init : {"random", "nmf"}
        The decoder's starting dictionary: random training samples with a
        little jitter, or the dictionary of an NMF of the same data with the
        likelihood's divergence (``nndsvda``, 200 multiplicative updates),
        each atom scaled by its mean NMF activation over the prior mean, so
        that the VAE starts from NMF's fit.
    kl_warmup : int
        Epochs over which the weight of the KL term in the training loss
        rises linearly from 0 to 1 (KL annealing; 0: the ELBO from the first
        step). Without it most atoms of a speech dictionary collapse to the
        prior (unused); see the enhancement section of ``docs/vae-nmf.md``.
        Validation and early stopping always monitor the full ELBO. Needs
        ``X`` in memory and a fresh fit (not ``resume``).
    kl_weight : float
        Weight of the KL term in the training loss once any warm-up is over
        (a beta-VAE; 1: the ELBO). Below 1 the likelihood counts more, as if
        the estimated dispersion were ``kl_weight`` times smaller: the
        training frames are fitted more closely and the posteriors move
        further from the prior. Validation and early stopping monitor the
        full ELBO whatever the weight.
    dtype : {"float32", "float64", None}
        Training precision; ``None`` follows the input.

    Attributes
    ----------
    components_ : np.ndarray [shape=(n_components, n_features)]
        The dictionary, exactly nonnegative.
    module_ : deepnmf.nn.vae.VAENMFModule
        The trained torch module (encoder ``module_.encoder``, decoder ``module_.decoder``).
    loss_curve_ : list of float
        Training loss (negative ELBO per sample plus penalty; KL-weighted during ``kl_warmup``) per epoch.
    history_ : dict of str -> list of float
        Per-epoch ``train_loss``, ``train_nll``, ``train_kl``, ``train_penalty``
        and the same with ``val_`` when validating.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
    dispersion_ : float
        Estimated dispersion (Gaussian: noise variance, also ``noise_var_``;
        Poisson: variance-to-mean ratio; exponential: 1).
    fit_seconds_ : float
    """

    _legacy_params = ("callback",)

    def __init__(
        self,
        n_components: int,
        *,
        likelihood: str = "gaussian",
        beta_loss: str | float | None = None,
        nonneg: str = "penalty",
        sampler: str = "marsaglia-tsang",
        hidden: Sequence[int] = (400, 400),
        max_epochs: int = 200,
        batch_size: int = 128,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        random_state: Any = None,
        device: str = "cpu",
        verbose: int = 0,
        prior_shape: float = 1.0,
        prior_rate: float = 1.0,
        gamma: float = 100.0,
        patience: int = 20,
        tol: float = 1e-4,
        min_concentration: float = 0.05,
        dtype: str | None = "float32",
        kl_warmup: int = 0,
        init: str = "random",
        kl_weight: float = 1.0,
    ) -> None:
        self.n_components = n_components
        self.likelihood = likelihood
        self.beta_loss = beta_loss
        self.nonneg = nonneg
        self.sampler = sampler
        self.hidden = hidden
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.lr = lr
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.prior_shape = prior_shape
        self.prior_rate = prior_rate
        self.gamma = gamma
        self.patience = patience
        self.tol = tol
        self.min_concentration = min_concentration
        self.dtype = dtype
        self.kl_warmup = kl_warmup
        self.init = init
        self.kl_weight = kl_weight

    def _nmf_start(self, T: torch.Tensor, module, gen: torch.Generator) -> torch.Tensor:
        """The decoder's start for ``init="nmf"``: NMF atoms ``(K, F)`` scaled by their mean activation / prior mean.

        Atoms NMF leaves unused keep the random start of ``module``.
        """
        from deepnmf.models.nmf import NMF

        X = T.detach().double().cpu().numpy()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device))
        nmf = NMF(int(self.n_components), beta_loss=_NMF_BETA[self.likelihood], init="nndsvda", solver="mu",
                  max_iter=200, tol=0.0, random_state=seed)
        W = nmf.fit_transform(X)  # (N, K)
        usage = W.mean(0) / (float(self.prior_shape) / float(self.prior_rate))  # (K,)
        H0 = torch.as_tensor(nmf.components_ * usage[:, None], dtype=T.dtype, device=T.device)
        dead = ~(H0.sum(1) > 0)
        if bool(dead.any()):
            H0[dead] = module.decoder.components()[dead].to(H0)
        return H0

    # ------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        self._likelihood()
        check_choice(self.nonneg, "nonneg", NONNEG_MODES)
        check_choice(self.sampler, "sampler", SAMPLERS)
        if self.dtype is not None:
            check_choice(self.dtype, "dtype", tuple(_DTYPES))
        hidden = self.hidden
        if isinstance(hidden, (int, str)) or not all(
            isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden
        ):
            raise ParameterError(f"hidden must be a sequence of positive integers, got {hidden!r}")
        for name in ("max_epochs", "batch_size", "patience"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.kl_warmup, "kl_warmup", minimum=0)
        check_choice(self.init, "init", INITS)
        for name in ("prior_shape", "prior_rate", "lr", "min_concentration", "kl_weight"):
            if check_nonneg_float(getattr(self, name), name) == 0.0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "gamma", "tol"):
            check_nonneg_float(getattr(self, name), name)
        vf = self.validation_fraction
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1:
            raise ParameterError(f"validation_fraction must be a number in [0, 1), got {vf!r}")
        if not isinstance(self.verbose, (int, np.integer)) or isinstance(self.verbose, bool) or self.verbose < 0:
            raise ParameterError(f"verbose must be an integer >= 0, got {self.verbose!r}")

    def _likelihood(self) -> str:
        """The likelihood: from ``beta_loss`` when given, else ``likelihood``."""
        if self.beta_loss is None:
            return self.likelihood
        try:
            return likelihood_name(self.beta_loss)
        except ParameterError as err:
            raise ParameterError(f"VAENMF fits beta 2, 1 or 0; beta_loss={self.beta_loss!r}: {err}") from err

    def _module_options(self) -> dict[str, Any]:
        return {
            "hidden": tuple(int(h) for h in self.hidden),
            "likelihood": self._likelihood(),
            "nonneg": self.nonneg,
            "sampler": self.sampler,
            "prior_shape": float(self.prior_shape),
            "prior_rate": float(self.prior_rate),
            "gamma": float(self.gamma),
            "min_concentration": float(self.min_concentration),
        }

    def _build(self, n_features: int, dtype: torch.dtype, generator: torch.Generator | None):
        from deepnmf.nn.vae import build_module

        return build_module(
            n_features,
            int(self.n_components),
            device=resolve_device(self.device),
            dtype=dtype,
            generator=generator,
            **self._module_options(),
        )

    # ------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None, *, callback: Callback | None = None, checkpoint_dir: Any = None,
            checkpoint_every: int = 0, resume: bool = False) -> "VAENMF":
        """Learn the encoder and the dictionary from ``X``.

        Parameters
        ----------
        X : array-like or torch.Tensor [shape=(n_samples, n_features)], or a stream
            Nonnegative, finite data; or a
            :class:`~deepnmf.datasets.streaming.StreamingFrames` (or a
            ``DataLoader`` of one) for corpora larger than memory: its first
            8192 frames initialise the model, every epoch is one pass over
            the stream, and the training loss is monitored (no validation split).
        y : ignored
        callback : callable, optional
            Called with a :class:`deepnmf.callbacks.EpochInfo` after every
            epoch (``train`` and ``val`` hold ``loss``, ``nll``, ``kl``,
            ``penalty``); returning ``True`` stops training.
        checkpoint_dir : str or Path, optional
            Folder of the training checkpoints (:mod:`deepnmf.checkpoints`).
        checkpoint_every : int
            Write a checkpoint every this many epochs (0: none).
        resume : bool
            Continue from the checkpoint in ``checkpoint_dir``; the fit ends
            where an uninterrupted one with the same seed ends (bit for bit
            on CPU). The data and parameters must be those of the
            checkpointed run (``max_epochs`` may differ).

        Returns
        -------
        self
        """
        from deepnmf.checkpoints import data_signature, make_checkpointer, run_signature
        from deepnmf.training import fit_module

        if callback is not None and not callable(callback):
            raise ParameterError("callback must be callable or None")
        from deepnmf.datasets.streaming import is_stream, stream_sample

        self._check_params()
        stream = X if is_stream(X) else None  # a stream: initialise and check on its first frames, train on all
        T, _ = self._prepare_X(X if stream is None else stream_sample(stream), reset=True,
                               dtype=_DTYPES.get(self.dtype) if self.dtype else None)
        if T.shape[0] < 2:
            raise DataError(f"X has {T.shape[0]} sample; VAENMF needs at least 2")
        if not bool((T.sum(1) > 0).any()):
            raise DataError("X is all zeros; there is nothing to factorise")
        if float(T.max()) < MIN_PEAK:  # the encoder's floors and the Gamma sampler then give NaN
            raise DataError(f"X's largest value is {float(T.max()):.3g}, too small for VAENMF (below {MIN_PEAK:g}); "
                            "rescale X, for example divide it by its maximum")
        self._check_size(*T.shape, T.element_size())
        checkpoint = make_checkpointer(checkpoint_dir, checkpoint_every, resume,
                                       run_signature(self, data_signature(T)))
        loss_fn = self._training_loss(T.shape[0], stream is not None, resume)
        gen = make_generator(self.random_state, self.device_)
        module = self._build(T.shape[1], T.dtype, gen)
        module.init_from_data(T, gen)
        if self.init == "nmf" and not resume:  # a resumed fit restores its weights from the checkpoint
            module.decoder.set_dictionary(self._nmf_start(T, module, gen))
        result = fit_module(
            module,
            T if stream is None else stream,
            generator=gen,
            loss_fn=loss_fn,
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            validation_fraction=float(self.validation_fraction),
            early_stopping=bool(self.early_stopping),
            patience=int(self.patience),
            tol=float(self.tol),
            callback=self._epoch_callback(callback),
            checkpoint=checkpoint,
        )
        self._store_fit(module, result)
        return self

    def _training_loss(self, n_samples: int, stream: bool, resume: bool):
        """The loss of :func:`deepnmf.training.fit_module`: ``None`` (the module's ELBO) or the KL-weighted one
        (warm-up and/or ``kl_weight``)."""
        weight = float(self.kl_weight)
        if not self.kl_warmup:
            return None if weight == 1.0 else kl_warmup_loss(0, weight)
        if stream or resume:
            raise ParameterError("kl_warmup needs X in memory and a fresh fit (not a stream, not resume); "
                                 "use kl_warmup=0 for streams and resumed fits")
        vf = float(self.validation_fraction)
        n_val = max(int(math.floor(vf * n_samples)), 1 if vf > 0 else 0)  # as training.split_validation
        steps_per_epoch = math.ceil((n_samples - n_val) / int(self.batch_size))
        return kl_warmup_loss(int(self.kl_warmup) * steps_per_epoch, weight)

    def _check_size(self, n: int, m: int, itemsize: int) -> None:
        """Refuse a network that would not fit in memory (an estimate), warn about a rank above ``n``."""
        k, widths = int(self.n_components), [m, *map(int, self.hidden), 2 * int(self.n_components)]
        n_params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:])) + k * m
        batch = min(int(self.batch_size), n) * (sum(widths) + 6 * k + 2 * m)
        # weights, gradients, Adam's two moments and the best weights kept by early stopping
        check_model_size("VAENMF", k, n, m, n_values=5 * n_params + batch, itemsize=itemsize, device=self.device_)

    def _epoch_callback(self, user: Callback | None) -> Callback | None:
        """The user's callback, chained after the ``verbose`` printer (every ``verbose`` epochs)."""
        if not self.verbose:
            return user
        return chain(print_every(int(self.verbose), _epoch_line), user)

    def _store_fit(self, module, result) -> None:
        self.module_ = module
        self.history_ = {k: list(v) for k, v in result.history.items()}
        self.loss_curve_ = list(self.history_.get("train_loss", []))
        self.n_iter_ = int(result.n_epochs)
        self.best_epoch_ = int(result.best_epoch)
        self.stopped_early_ = bool(result.stopped_early)
        self.fit_seconds_ = float(result.seconds)
        self.n_train_samples_ = int(result.n_train)
        self.n_val_samples_ = int(result.n_val)

    # --------------------------------------------------------------- outputs
    @property
    def components_(self) -> np.ndarray:
        """The dictionary ``(n_components, n_features)``, exactly nonnegative (numpy)."""
        if not hasattr(self, "module_"):
            from deepnmf.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} instance is not fitted yet; call fit before using it")
        return self.module_.components().cpu().numpy()

    @property
    def dispersion_(self) -> float:
        """Estimated dispersion: the Gaussian noise variance, or the Poisson variance-to-mean ratio."""
        self._check_is_fitted()
        return float(self.module_.dispersion)

    @property
    def noise_var_(self) -> float:
        """Estimated Gaussian noise variance per entry (data units squared); same as ``dispersion_``."""
        return self.dispersion_

    def posterior_params(self, X: Any) -> tuple[Any, Any]:
        """Shapes and rates of ``q(z | x)`` for every row of ``X``.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_features)]

        Returns
        -------
        concentration, rate : array [shape=(n_samples, n_components)]
            Same kind (numpy or torch) as ``X``.
        """
        T, kind = self._prepare_X(X, reset=False)
        alpha, beta = self._encode(T)
        return self._out(alpha, kind), self._out(beta, kind)

    @torch.no_grad()
    def _encode(self, T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.module_.eval()
        parts = [self.module_.encoder(T[i : i + _CHUNK]) for i in range(0, T.shape[0], _CHUNK)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def transform(self, X: Any, *, posterior: str = "mean", random_state: Any = None) -> Any:
        """Activations of ``X`` with the dictionary frozen (one encoder pass).

        Parameters
        ----------
        X : array-like or torch.Tensor [shape=(n_samples, n_features)]
        posterior : {"mean", "sample", "mode"}
            The posterior mean ``alpha / beta`` (default), one draw from
            ``q(z|x)``, or its mode ``max(alpha - 1, 0) / beta``.
        random_state : int, generator or None
            For ``posterior="sample"``.

        Returns
        -------
        W : array [shape=(n_samples, n_components)]
            Nonnegative; numpy or torch as ``X`` was.
        """
        from deepnmf.nn import gamma as gamma_dist

        check_choice(posterior, "posterior", POSTERIOR_STATS)
        T, kind = self._prepare_X(X, reset=False)
        alpha, beta = self._encode(T)
        if posterior == "mean":
            W = gamma_dist.mean(alpha, beta)
        elif posterior == "mode":
            W = gamma_dist.mode(alpha, beta)
        else:
            gen = make_generator(random_state, self.device_)
            W = gamma_dist.rsample(alpha, beta, method=self.sampler, generator=gen, validate=False)
        return self._out(W, kind)

    def fit_transform(self, X: Any, y: Any = None, *, callback: Callback | None = None, **params: Any) -> Any:
        """Fit, then return the activations of ``X`` ``(n_samples, n_components)``.

        ``callback`` goes to :meth:`fit`, the other keywords to :meth:`transform`
        (posterior mean by default).
        """
        return self.fit(X, callback=callback).transform(X, **params)

    def inverse_transform(self, X: Any) -> Any:
        """Reconstruction ``X @ components_`` of activations ``X`` (scikit-learn's argument name).

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_components)]
            Activations ``W``.

        Returns
        -------
        X_hat : array [shape=(n_samples, n_features)]
        """
        self._check_is_fitted()
        T, kind = as_tensor(X, name="X", dtype=self.dtype_, device=self.device_)
        check_finite_nonnegative(T, "X")
        if T.shape[1] != self.n_components:
            raise DataError(f"X has {T.shape[1]} columns but this VAENMF has {self.n_components} components")
        return self._out(T @ self.module_.components(), kind)

    @torch.no_grad()
    def sample(self, n_samples: int = 1, *, random_state: Any = None, return_latent: bool = False):
        """Draw new samples from the generative model: ``z ~ p(z)``, ``x = z @ H``.

        Parameters
        ----------
        n_samples : int
        random_state : int, generator or None
        return_latent : bool
            Also return the activations.

        Returns
        -------
        X : np.ndarray [shape=(n_samples, n_features)]
            Decoded means (the likelihood's mean for each draw).
        Z : np.ndarray [shape=(n_samples, n_components)]
            Only with ``return_latent=True``.
        """
        from deepnmf.nn import gamma as gamma_dist

        self._check_is_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        gen = make_generator(random_state, self.device_)
        m = self.module_
        shape = m.prior_shape.expand(n_samples, int(self.n_components))
        Z = gamma_dist.rsample(shape, m.prior_rate.expand_as(shape), method=self.sampler, generator=gen)
        X = (Z @ m.components()).cpu().numpy()
        return (X, Z.cpu().numpy()) if return_latent else X

    @torch.no_grad()
    def score_samples(self, X: Any, *, n_draws: int = 16, random_state: Any = 0) -> np.ndarray:
        """ELBO of every row of ``X`` (a lower bound on ``log p(x)``), in nats.

        For the Gaussian likelihood the expectation is exact:
        ``E_q ||x - z H||^2 = ||x - E[z] H||^2 + sum_k Var(z_k) ||H_k||^2``, so
        the score of a row does not depend on the other rows or on draws. The
        Poisson and exponential expectations are Monte Carlo averages.

        Parameters
        ----------
        X : array-like [shape=(n_samples, n_features)]
        n_draws : int
            Monte Carlo draws of ``z`` per sample (Poisson and exponential).
        random_state : int, generator or None
            For the draws.

        Returns
        -------
        elbo : np.ndarray [shape=(n_samples,)]
        """
        from deepnmf.nn import gamma as gamma_dist

        T, _ = self._prepare_X(X, reset=False)
        n_draws = check_positive_int(n_draws, "n_draws")
        m = self.module_
        alpha, beta = self._encode(T)
        if m.likelihood == "gaussian":
            nll = self._gaussian_expected_nll(T, alpha, beta)
        else:
            nll = self._monte_carlo_nll(T, alpha, beta, n_draws, make_generator(random_state, self.device_))
        kl = gamma_dist.kl(alpha, beta, m.prior_shape, m.prior_rate).sum(-1)
        return (-(nll + kl)).cpu().numpy().astype(np.float64)

    def _gaussian_expected_nll(self, T: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        m = self.module_
        H = m.decoder.weight()  # (K, F), the forward-pass dictionary
        mean, var = alpha / beta, alpha / beta.square()  # (n, K)
        sq = (T - mean @ H).square().sum(-1) + var @ H.square().sum(-1)  # (n,)
        return 0.5 * sq / m.dispersion + 0.5 * T.shape[1] * torch.log(2 * math.pi * m.dispersion)

    def _monte_carlo_nll(self, T, alpha, beta, n_draws: int, gen: torch.Generator) -> torch.Tensor:
        from deepnmf.nn import gamma as gamma_dist
        from deepnmf.nn.vae import negative_log_likelihood

        m = self.module_
        nll = torch.zeros(T.shape[0], dtype=T.dtype, device=T.device)
        for _ in range(n_draws):
            z = gamma_dist.rsample(alpha, beta, method=self.sampler, generator=gen, validate=False)
            nll += negative_log_likelihood(T, m.decoder(z), m.likelihood, m.dispersion, m.mean_floor) / n_draws
        return nll

    def score(self, X: Any, y: Any = None) -> float:
        """Mean ELBO per sample of ``X`` (higher is better)."""
        return float(np.mean(self.score_samples(X)))

    @staticmethod
    def _out(T: torch.Tensor, kind: ArrayKind) -> Any:
        if kind.kind == "numpy":
            return T.detach().cpu().numpy().astype(kind.dtype if kind.dtype in (np.float32, np.float64) else np.float64)
        return T.to(device=kind.device, dtype=kind.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    # ------------------------------------------------------------- save/load
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"module.{k}": v for k, v in self.module_.state_dict().items()}

    def _state_json(self) -> dict[str, Any]:
        state = super()._state_json()
        state.update(
            history_=self.history_,
            best_epoch_=self.best_epoch_,
            stopped_early_=self.stopped_early_,
            fit_seconds_=self.fit_seconds_,
            n_train_samples_=self.n_train_samples_,
            n_val_samples_=self.n_val_samples_,
        )
        return state

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        device = self._restore_common(state)
        try:
            self._check_params()
        except ParameterError as err:
            raise ModelFileError(f"saved parameters are invalid: {err}") from err
        module = self._build(self.n_features_in_, self.dtype_, None)
        weights = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
        try:
            module.load_state_dict(weights, strict=True)
        except RuntimeError as err:
            raise ModelFileError(f"weights do not match the saved configuration: {err}") from err
        module.to(device).eval()
        self.module_ = module
        try:
            self.history_ = {str(k): [float(x) for x in v] for k, v in state.get("history_", {}).items()}
            self.best_epoch_ = int(state.get("best_epoch_", self.n_iter_))
            self.stopped_early_ = bool(state.get("stopped_early_", False))
            self.fit_seconds_ = float(state.get("fit_seconds_", 0.0))
            self.n_train_samples_ = int(state.get("n_train_samples_", 0))
            self.n_val_samples_ = int(state.get("n_val_samples_", 0))
        except (AttributeError, TypeError, ValueError) as err:
            raise ModelFileError(f"model configuration has a bad fitted field: {err}") from err
