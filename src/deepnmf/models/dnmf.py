r"""Discriminative NMF (Weninger, Le Roux, Hershey & Watanabe, 2014) for supervised separation.

Orientation (scikit-learn's letters): spectrograms ``X`` are
``(n_frames, n_bins)``; dictionaries ``H`` are ``(n_components, n_bins)``;
activations ``W`` are ``(n_frames, n_components)``, so ``X ~ W @ H``.

Plain supervised NMF uses one stacked dictionary ``H = [H_s; H_n]`` (target
and interference atoms, learned separately) both to *analyse* the mixture ``X``,

.. math::

    W = \arg\min_{W \ge 0} d_\beta(X \mid W H) + \mu \|W\|_1,

and to *reconstruct* the target with the Wiener-like filter
:math:`\hat S = X \odot (W_s \tilde H_s) / (W \tilde H)` with
:math:`\tilde H = H`. Discriminative NMF keeps the analysis step and learns a
separate *reconstruction* dictionary :math:`\tilde H \ge 0` that minimises
:math:`d_\beta(S \mid \hat S)` on training mixtures whose clean target ``S`` is
known, so the atoms are tuned to what separation needs rather than to what
modelling each source alone needs. :math:`\tilde H` starts from ``H`` and is
trained full-batch by Adam with projection onto the nonnegative orthant
(through :func:`deepnmf.training.fit_module`; a choice of this
implementation, the paper derives multiplicative updates for the same
objective).
"""
from __future__ import annotations

from typing import Any

import torch

from deepnmf._utils import as_tensor, check_nonneg_float, check_positive_int, make_generator, resolve_device
from deepnmf.callbacks import Callback, chain, print_every
from deepnmf.divergences import EPS, beta_divergence, beta_from_loss, data_term, model_part
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.models._base import BaseNMF
from deepnmf.solvers.mu import multiplicative_updates


def wiener_split(X: torch.Tensor, W: torch.Tensor, R: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Target and interference estimates ``X * gain`` and ``X * (1 - gain)``.

    Parameters
    ----------
    X : torch.Tensor [shape=(n_frames, n_bins)]
    W : torch.Tensor [shape=(n_frames, n_components)]
        Activations.
    R : torch.Tensor [shape=(n_components, n_bins)]
        Reconstruction dictionary; its first ``k`` atoms are the target's.
    k : int
    """
    target = W[:, :k] @ R[:k]
    other = W[:, k:] @ R[k:]
    gain = target / (target + other).clamp_min(EPS)
    return X * gain, X * (1 - gain)


class _ReconstructionModule(torch.nn.Module):
    """The trainable reconstruction dictionary and the training objective, for :func:`~deepnmf.training.fit_module`.

    ``forward(rows)`` is the mean divergence ``d(S | S_hat)`` per element over
    the given frames (indices into the training frames, taken in sorted
    order); ``after_step`` projects the dictionary onto ``R >= 0``. In
    training mode every loss is also kept in ``trace`` as computed (the
    loop's history is a batch-weighted mean, which rounds float32 values
    differently).
    """

    def __init__(self, H: torch.Tensor, X: torch.Tensor, W: torch.Tensor, S: torch.Tensor, beta: float, k: int):
        super().__init__()
        self.R = torch.nn.Parameter(H.clone())  # (n_components, n_bins), starts at the analysis dictionary
        self.X, self.W, self.S, self.beta, self.k = X, W, S, beta, k
        self.trace: list[torch.Tensor] = []

    def forward(self, rows: torch.Tensor | None = None, generator: Any = None) -> dict[str, torch.Tensor]:
        X, W, S = self.X, self.W, self.S
        if rows is not None and rows.numel() != X.shape[0]:  # a subset (full batch uses the frames in place)
            rows = rows.sort().values
            X, W, S = X[rows], W[rows], S[rows]
        loss = beta_divergence(S, wiener_split(X, W, self.R, self.k)[0], self.beta) * (1.0 / X.numel())
        if self.training:
            self.trace.append(loss.detach())
        return {"loss": loss}

    @torch.no_grad()
    def after_step(self) -> None:
        self.R.clamp_(min=0)


def mu_terms(X: torch.Tensor, W: torch.Tensor, S: torch.Tensor, R: torch.Tensor, k: int, beta: float,
             eps: float = EPS, *, data_sum: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Weninger et al.'s multiplicative-update terms for the reconstruction dictionary.

    With :math:`A = W_s R_s`, :math:`N = W_n R_n`, :math:`B = A + N` and
    :math:`\hat S = X A / B`, the gradient of :math:`d_\beta(S \mid \hat S)`
    splits into nonnegative parts, ``grad = den - num``:

    - target rows: ``num = W_s^T (S \hat S^{beta-2} X N / B^2)``,
      ``den = W_s^T (\hat S^{beta-1} X N / B^2)``;
    - interference rows: ``num = W_n^T (\hat S^{beta-1} X A / B^2)``,
      ``den = W_n^T (S \hat S^{beta-2} X A / B^2)``;

    and the update is ``R *= num / den``.

    Parameters
    ----------
    X, S : torch.Tensor [shape=(n_frames, n_bins)]
        Mixture and clean-target magnitudes.
    W : torch.Tensor [shape=(n_frames, n_components)]
        Analysis activations (fixed).
    R : torch.Tensor [shape=(n_components, n_bins)]
        Reconstruction dictionary; its first ``k`` rows are the target's.
    k : int
    beta : float
    eps : float
        Floor of ``B`` and of ``\hat S``.
    data_sum : float, optional
        For beta 2, 1, 0: the sum of the terms of ``d_beta(S | .)`` that depend
        on ``S`` alone (:func:`_data_sum`), computed once per fit so that each
        step evaluates only the model part (the same value, one log pass
        fewer).

    Returns
    -------
    num, den : torch.Tensor [shape=(n_components, n_bins)]
    loss : torch.Tensor
        ``d_beta(S | \hat S)`` (sum) at ``R``.
    """
    A, N = W[:, :k] @ R[:k], W[:, k:] @ R[k:]
    B = (A + N).clamp_min(eps)
    S_hat = (X * A / B).clamp_min(eps)
    XB2 = X / (B * B)
    target, other = XB2 * N, XB2 * A
    # the positive and negative parts of d'(S_hat): S_hat^(beta-1) and S S_hat^(beta-2); no pow for KL and Frobenius
    if beta == 1.0:
        up, down = None, S / S_hat
    elif beta == 2.0:
        up, down = S_hat, S
    else:
        up, down = S_hat.pow(beta - 1.0), S * S_hat.pow(beta - 2.0)
    num = torch.cat([W[:, :k].T @ (down * target), W[:, k:].T @ (other if up is None else up * other)])
    den = torch.cat([W[:, :k].T @ (target if up is None else up * target), W[:, k:].T @ (down * other)])
    if data_sum is not None and beta in (0.0, 1.0, 2.0):
        return num, den, model_part(S, S_hat, beta, eps=eps).sum() + data_sum
    return num, den, beta_divergence(S, S_hat, beta)


def _data_sum(S: torch.Tensor, beta: float, eps: float = EPS) -> float | None:
    """The part of ``d_beta(S | S_hat)`` (sum) that depends on ``S`` alone (the divergence module's
    :func:`~deepnmf.divergences.data_term`), for beta 2, 1, 0; else ``None``."""
    return data_term(S, beta, eps) * S.numel() if beta in (0.0, 1.0, 2.0) else None


def _train_mu(R: torch.Tensor, X, W, S, k: int, beta: float, epochs: int, callback) -> list[float]:
    """``epochs`` multiplicative updates of ``R`` (in place); ``d(S | S_hat)`` per element before each and at the end."""
    from deepnmf.callbacks import Clock, report_epoch

    clock, losses, scale = Clock(), [], 1.0 / X.numel()
    data_sum = _data_sum(S, beta)
    for epoch in range(1, epochs + 1):
        num, den, loss = mu_terms(X, W, S, R, k, beta, data_sum=data_sum)
        losses.append(float(loss) * scale)
        R.mul_(num / den.clamp_min(EPS))
        if report_epoch(callback, epoch, epochs, losses[-1], clock):
            break
    losses.append(float(mu_terms(X, W, S, R, k, beta, data_sum=data_sum)[2]) * scale)
    return losses


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
    solver : {"mu", "adam"}
        ``"mu"`` (default): the multiplicative updates of Weninger et al.
        (2014) (:func:`mu_terms`); ``"adam"``: projected Adam through
        :func:`deepnmf.training.fit_module` (the default before 0.2).
    lr : float
        Adam step size, relative to the mean magnitude of the dictionary (``"adam"`` only).
    random_state, device, verbose
        As for :class:`deepnmf.NMF`.

    Attributes
    ----------
    components_ : np.ndarray [shape=(n_components, n_bins)]
        Analysis dictionary ``H = [H_s; H_n]`` (fixed).
    reconstruction_components_ : np.ndarray [shape=(n_components, n_bins)]
        Learned reconstruction dictionary.
    n_target_components_ : int
        Number of target (speech) atoms; the first rows of both dictionaries.
    loss_curve_ : list of float
        Mean training divergence ``d(S | S_hat)`` per element, before training and after each epoch.
    n_iter_ : int
        Epochs run.
    """

    def __init__(
        self,
        *,
        beta_loss: str | float = "kullback-leibler",
        sparsity: float = 0.0,
        n_transform_iter: int = 100,
        max_epochs: int = 200,
        solver: str = "mu",
        lr: float = 1e-2,
        random_state: Any = None,
        device: str = "cpu",
        verbose: int = 0,
    ) -> None:
        self.beta_loss = beta_loss
        self.sparsity = sparsity
        self.n_transform_iter = n_transform_iter
        self.max_epochs = max_epochs
        self.solver = solver
        self.lr = lr
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        beta_from_loss(self.beta_loss)
        check_nonneg_float(self.sparsity, "sparsity")
        check_positive_int(self.n_transform_iter, "n_transform_iter")
        check_positive_int(self.max_epochs, "max_epochs", minimum=0)
        if self.solver not in ("adam", "mu"):
            raise ParameterError(f"solver must be 'adam' or 'mu', got {self.solver!r}")
        if check_nonneg_float(self.lr, "lr") == 0:
            raise ParameterError("lr must be > 0")

    def _dictionaries(self, target_components: Any, other_components: Any, Xt: torch.Tensor) -> torch.Tensor:
        """The analysis dictionary ``H = [H_s; H_n]`` ``(n_components, n_bins)``, atoms normalised to unit L1."""
        parts = []
        for name, D in (("target_components", target_components), ("other_components", other_components)):
            Dt = as_tensor(D, name=name, dtype=Xt.dtype, device=Xt.device)[0]
            if Dt.shape[1] != Xt.shape[1]:
                raise DataError(f"{name} has {Dt.shape[1]} bins but the spectrograms have {Xt.shape[1]}")
            if bool((Dt < 0).any()) or not bool(torch.isfinite(Dt).all()):
                raise DataError(f"{name} must be finite and nonnegative")
            parts.append(Dt / Dt.sum(1, keepdim=True).clamp_min(EPS))
        self.n_target_components_ = parts[0].shape[0]
        return torch.cat(parts, 0)

    def _analyse(self, Xt: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        """Activations ``W`` ``(n_frames, n_components)`` of ``Xt`` against the frozen analysis dictionary ``H``."""
        W0 = torch.full((Xt.shape[0], H.shape[0]), float(Xt.mean()) / H.shape[0] + EPS, dtype=Xt.dtype,
                        device=Xt.device)
        res = multiplicative_updates(
            Xt, W0, H.clone(), beta=beta_from_loss(self.beta_loss), max_iter=self.n_transform_iter, tol=0,
            l1_reg_W=self.sparsity, update_H=False,
        )
        return res.W

    def _check_target(self, S: Any, Xt: torch.Tensor) -> torch.Tensor:
        St = as_tensor(S, name="S", dtype=Xt.dtype, device=Xt.device)[0]
        if St.shape != Xt.shape:
            raise DataError(f"S has shape {tuple(St.shape)} but X has shape {tuple(Xt.shape)}")
        if bool((St < 0).any()) or not bool(torch.isfinite(St).all()):
            raise DataError("S must be finite and nonnegative")
        return St

    def fit(
        self,
        X: Any,
        S: Any,
        *,
        target_components: Any,
        other_components: Any,
        callback: Callback | None = None,
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
            Called with a :class:`deepnmf.callbacks.EpochInfo` after each
            epoch; ``train["loss"]`` is ``d(S | S_hat)`` per element at the
            dictionary the epoch's step started from (what
            :func:`deepnmf.training.fit_module` reports). Returning ``True``
            stops training.
        """
        from deepnmf.training import fit_module

        self._check_params()
        Xt, kind = self._prepare_X(X, reset=True)
        St = self._check_target(S, Xt)
        gen = make_generator(self.random_state, Xt.device)  # only shuffles the (single, full) batch's frames
        H = self._dictionaries(target_components, other_components, Xt)
        module = _ReconstructionModule(H, Xt, self._analyse(Xt, H), St, beta_from_loss(self.beta_loss),
                                       self.n_target_components_)
        if self.solver == "mu":
            R = H.clone()
            losses = _train_mu(R, Xt, module.W, St, self.n_target_components_, module.beta, int(self.max_epochs),
                               self._progress(callback))
            return self._store(H, R, losses, kind)
        if self.max_epochs > 0:
            frames = torch.arange(Xt.shape[0], device=Xt.device)  # the "data" rows: indices of the training frames
            fit_module(
                module, frames, generator=gen, max_epochs=int(self.max_epochs), batch_size=int(Xt.shape[0]),
                lr=self.lr * float(H.mean()), weight_decay=0.0, validation_fraction=0.0, early_stopping=False,
                callback=self._progress(callback),
            )
        losses = [float(v) for v in module.trace]  # d(S | S_hat) before each step
        with torch.no_grad():
            losses.append(float(module()["loss"]))  # the divergence at the final dictionary
        return self._store(H, module.R.detach(), losses, kind)

    def _store(self, H: torch.Tensor, R: torch.Tensor, losses: list[float], kind: Any) -> "DiscriminativeNMF":
        self._H, self._R = H, R
        self._input_kind = kind
        self.components_ = H.cpu().numpy()
        self.reconstruction_components_ = self._R.cpu().numpy()
        self.loss_curve_ = losses
        self.n_iter_ = len(losses) - 1
        return self

    def _progress(self, user: Callback | None) -> Callback | None:
        """The user's callback, chained after the ``verbose`` printer (every 10 epochs)."""
        if not self.verbose:
            return user
        line = lambda i: f"[DNMF] epoch {i.epoch:4d}  d(S|S_hat) {i.loss:.6g}"  # noqa: E731
        return chain(print_every(10, line, at_end=False), user)

    def transform(self, X: Any) -> Any:
        """Activations ``W`` of ``X`` against the analysis dictionary.

        Parameters
        ----------
        X : array [shape=(n_frames, n_bins)]

        Returns
        -------
        W : array [shape=(n_frames, n_components)]
        """
        Xt, kind = self._prepare_X(X, reset=False)
        return self._output(self._analyse(Xt, self._H.to(Xt)), kind)

    def separate(self, X: Any) -> tuple[Any, Any]:
        """Estimated target and interference magnitudes of mixture ``X``.

        Parameters
        ----------
        X : array [shape=(n_frames, n_bins)]

        Returns
        -------
        S_hat, N_hat : array [shape=(n_frames, n_bins)]
            ``S_hat + N_hat = X``.
        """
        Xt, kind = self._prepare_X(X, reset=False)
        W = self._analyse(Xt, self._H.to(Xt))
        S_hat, N_hat = wiener_split(Xt, W, self._R.to(Xt), self.n_target_components_)
        return self._output(S_hat, kind), self._output(N_hat, kind)

    def fit_transform(self, X: Any, y: Any = None, **params: Any) -> Any:
        """Fit (``y`` is the clean target ``S``), then return the activations of ``X``."""
        return self.fit(X, y, **params).transform(X)

    def inverse_transform(self, X: Any) -> Any:
        """Model spectrogram ``X @ components_`` of activations ``X`` (scikit-learn's argument name).

        Parameters
        ----------
        X : array [shape=(n_frames, n_components)]
            Activations ``W``.

        Returns
        -------
        X_hat : array [shape=(n_frames, n_bins)]
        """
        self._check_is_fitted()
        Wt, kind = as_tensor(X, name="X", dtype=self.dtype_, device=self._H.device)
        if Wt.shape[1] != self._H.shape[0]:
            raise DataError(f"X has {Wt.shape[1]} columns but the model has {self._H.shape[0]} components")
        return self._output(Wt @ self._H, kind)

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {"analysis": self._H, "reconstruction": self._R}

    def _state_json(self) -> dict[str, Any]:
        state = super()._state_json()
        state["n_target_components_"] = int(self.n_target_components_)
        return state

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        device = resolve_device(self.device)
        self._restore_common(state)
        self._H = tensors["analysis"].to(device=device, dtype=self.dtype_)
        self._R = tensors["reconstruction"].to(device=device, dtype=self.dtype_)
        if self._H.shape != self._R.shape or self._H.shape[1] != self.n_features_in_:
            raise DataError("saved analysis and reconstruction dictionaries do not match")
        self.n_target_components_ = int(state["n_target_components_"])
        self.components_ = self._H.cpu().numpy()
        self.reconstruction_components_ = self._R.cpu().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.target_tags.required = True
        return tags

