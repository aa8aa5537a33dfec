r"""Discriminative NMF (Weninger, Le Roux, Hershey & Watanabe, 2014) for supervised separation.

Orientation: spectrograms are ``(n_frames, n_bins)``; dictionaries are
``(n_components, n_bins)``; activations ``(n_frames, n_components)``.

Plain supervised NMF uses one stacked dictionary ``W = [W_s; W_n]`` (speech
and noise atoms, learned separately) both to *analyse* the mixture ``X``,

.. math::

    A = \arg\min_{A \ge 0} d_\beta(X \mid A W) + \mu \|A\|_1,

and to *reconstruct* the target with the Wiener-like filter
:math:`\hat S = X \odot (A_s \tilde W_s) / (A \tilde W)` with
:math:`\tilde W = W`. Discriminative NMF keeps the analysis step and learns a
separate *reconstruction* dictionary :math:`\tilde W \ge 0` that minimises
:math:`d_\beta(S \mid \hat S)` on training mixtures whose clean target ``S`` is
known, so the atoms are tuned to what separation needs rather than to what
modelling each source alone needs. :math:`\tilde W` starts from ``W`` and is
trained by Adam with projection onto the nonnegative orthant (a choice of
this implementation; the paper derives multiplicative updates for the same
objective).
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import torch

from deepnmf._utils import as_tensor, check_nonneg_float, check_positive_int, make_generator, resolve_device
from deepnmf.divergences import beta_divergence, beta_from_loss
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.models._base import BaseNMF
from deepnmf.solvers.mu import multiplicative_updates


class DiscriminativeNMF(BaseNMF):
    """Supervised separation with a discriminatively trained reconstruction dictionary.

    Parameters
    ----------
    beta_loss : str or float
        Divergence of both the analysis and the training objective.
    sparsity : float
        L1 weight ``mu`` on the activations in the analysis step.
    n_transform_iter : int
        Multiplicative updates of the analysis step.
    max_epochs : int
        Full-batch optimisation steps on the reconstruction dictionary.
    lr : float
        Adam step size, relative to the mean magnitude of the dictionary.
    random_state, device, verbose
        As for :class:`deepnmf.NMF`.

    Attributes
    ----------
    components_ : np.ndarray [shape=(n_components, n_bins)]
        Analysis dictionary ``[W_s; W_n]`` (fixed).
    reconstruction_components_ : np.ndarray [shape=(n_components, n_bins)]
        Learned reconstruction dictionary.
    n_target_components_ : int
        Number of target (speech) atoms; the first rows of both dictionaries.
    loss_curve_ : list of float
        Mean training divergence ``d(S | S_hat)`` per element, before training and after each epoch.
    """

    def __init__(
        self,
        *,
        beta_loss: str | float = "kullback-leibler",
        sparsity: float = 0.0,
        n_transform_iter: int = 100,
        max_epochs: int = 200,
        lr: float = 1e-2,
        random_state: Any = None,
        device: str = "cpu",
        verbose: int = 0,
    ) -> None:
        self.beta_loss = beta_loss
        self.sparsity = sparsity
        self.n_transform_iter = n_transform_iter
        self.max_epochs = max_epochs
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        beta_from_loss(self.beta_loss)
        check_nonneg_float(self.sparsity, "sparsity")
        check_positive_int(self.n_transform_iter, "n_transform_iter")
        check_positive_int(self.max_epochs, "max_epochs", minimum=0)
        if check_nonneg_float(self.lr, "lr") == 0:
            raise ParameterError("lr must be > 0")

    def _dictionaries(self, target_components: Any, other_components: Any, Xt: torch.Tensor) -> torch.Tensor:
        parts = []
        for name, D in (("target_components", target_components), ("other_components", other_components)):
            Dt = as_tensor(D, name=name, dtype=Xt.dtype, device=Xt.device)[0]
            if Dt.shape[1] != Xt.shape[1]:
                raise DataError(f"{name} has {Dt.shape[1]} bins but the spectrograms have {Xt.shape[1]}")
            if bool((Dt < 0).any()) or not bool(torch.isfinite(Dt).all()):
                raise DataError(f"{name} must be finite and nonnegative")
            parts.append(Dt / Dt.sum(1, keepdim=True).clamp_min(1e-12))  # atoms normalised to unit L1
        self.n_target_components_ = parts[0].shape[0]
        return torch.cat(parts, 0)

    def _analyse(self, Xt: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Activations ``(n_frames, n_components)`` of ``Xt`` against the frozen analysis dictionary."""
        A0 = torch.full((Xt.shape[0], W.shape[0]), float(Xt.mean()) / W.shape[0] + 1e-12, dtype=Xt.dtype, device=Xt.device)
        res = multiplicative_updates(
            Xt, A0, W.clone(), beta=beta_from_loss(self.beta_loss), max_iter=self.n_transform_iter, tol=0,
            l1_reg_W=self.sparsity, update_H=False,
        )
        return res.W

    def _wiener(self, Xt: torch.Tensor, A: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.n_target_components_
        target = A[:, :k] @ R[:k]
        other = A[:, k:] @ R[k:]
        gain = target / (target + other).clamp_min(1e-12)
        return Xt * gain, Xt * (1 - gain)

    def fit(
        self,
        X: Any,
        S: Any,
        *,
        target_components: Any,
        other_components: Any,
        callback: Callable[[int, float], Any] | None = None,
    ) -> "DiscriminativeNMF":
        """Learn the reconstruction dictionary from training mixtures and their clean targets.

        Parameters
        ----------
        X : array [shape=(n_frames, n_bins)]
            Mixture magnitude spectrogram(s), frames stacked.
        S : array [shape=(n_frames, n_bins)]
            Clean target magnitudes of the same frames.
        target_components : array [shape=(k_target, n_bins)]
            Dictionary of the target source (e.g. ``NMF.components_`` fitted on clean speech).
        other_components : array [shape=(k_other, n_bins)]
            Dictionary of the interference (e.g. noise).
        callback : callable, optional
            ``callback(epoch, loss)`` after each epoch.
        """
        self._check_params()
        Xt, kind = self._prepare_X(X, reset=True)
        St = as_tensor(S, name="S", dtype=Xt.dtype, device=Xt.device)[0]
        if St.shape != Xt.shape:
            raise DataError(f"S has shape {tuple(St.shape)} but X has shape {tuple(Xt.shape)}")
        if bool((St < 0).any()) or not bool(torch.isfinite(St).all()):
            raise DataError("S must be finite and nonnegative")
        make_generator(self.random_state, Xt.device)  # validates random_state; training is deterministic
        W = self._dictionaries(target_components, other_components, Xt)
        A = self._analyse(Xt, W)
        beta = beta_from_loss(self.beta_loss)
        R = W.clone().requires_grad_(True)
        opt = torch.optim.Adam([R], lr=self.lr * float(W.mean()))
        scale = 1.0 / Xt.numel()

        def loss_fn() -> torch.Tensor:
            return beta_divergence(St, self._wiener(Xt, A, R)[0], beta) * scale

        with torch.no_grad():
            losses = [float(loss_fn())]
        for epoch in range(1, self.max_epochs + 1):
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            opt.step()
            with torch.no_grad():
                R.clamp_(min=0)
                losses.append(float(loss_fn()))
            if self.verbose and epoch % 10 == 0:
                print(f"[DNMF] epoch {epoch:4d}  d(S|S_hat) {losses[-1]:.6g}", file=sys.stderr)
            if callback is not None and callback(epoch, losses[-1]) is True:
                break
        self._W, self._R = W, R.detach()
        self._input_kind = kind
        self.components_ = W.cpu().numpy()
        self.reconstruction_components_ = self._R.cpu().numpy()
        self.loss_curve_ = losses
        self.n_iter_ = len(losses) - 1
        return self

    def transform(self, X: Any) -> Any:
        """Activations of ``X`` against the analysis dictionary, ``(n_frames, n_components)``."""
        Xt, kind = self._prepare_X(X, reset=False)
        return self._output(self._analyse(Xt, self._W.to(Xt)), kind)

    def separate(self, X: Any) -> tuple[Any, Any]:
        """Estimated target and interference magnitudes of mixture ``X``.

        Returns
        -------
        S_hat, N_hat : array [shape=(n_frames, n_bins)]
            ``S_hat + N_hat = X``.
        """
        Xt, kind = self._prepare_X(X, reset=False)
        A = self._analyse(Xt, self._W.to(Xt))
        S_hat, N_hat = self._wiener(Xt, A, self._R.to(Xt))
        return self._output(S_hat, kind), self._output(N_hat, kind)

    def fit_transform(self, X: Any, y: Any = None, **params: Any) -> Any:
        """Fit (``y`` is the clean target ``S``), then return the activations of ``X``."""
        return self.fit(X, y, **params).transform(X)

    def inverse_transform(self, A: Any) -> Any:
        """Model spectrogram ``A @ components_`` of activations ``A``."""
        self._check_is_fitted()
        At, kind = as_tensor(A, name="A", dtype=self.dtype_, device=self._W.device)
        return self._output(At @ self._W, kind)

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {"analysis": self._W, "reconstruction": self._R}

    def _state_json(self) -> dict[str, Any]:
        state = super()._state_json()
        state["n_target_components_"] = int(self.n_target_components_)
        return state

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        device = resolve_device(self.device)
        self._restore_common(state)
        self._W = tensors["analysis"].to(device=device, dtype=self.dtype_)
        self._R = tensors["reconstruction"].to(device=device, dtype=self.dtype_)
        if self._W.shape != self._R.shape or self._W.shape[1] != self.n_features_in_:
            raise DataError("saved analysis and reconstruction dictionaries do not match")
        self.n_target_components_ = int(state["n_target_components_"])
        self.components_ = self._W.cpu().numpy()
        self.reconstruction_components_ = self._R.cpu().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.target_tags.required = True
        return tags

