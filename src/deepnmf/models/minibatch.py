r"""MiniBatchNMF: online NMF for beta-divergences, a drop-in for scikit-learn's ``MiniBatchNMF``.

Orientation: ``X`` (n_samples, n_features) ~ ``W`` (n_samples, k) @ ``H``
(k, n_features); minibatches are consecutive rows (frames, time points).
The updates are those of :mod:`deepnmf.solvers.online` (Lefèvre et al.
2011): per minibatch one multiplicative step of its activations (or a fresh
solve with ``fresh_restarts``), then the dictionary from running statistics
discounted by ``forget_factor ** (batch_size / n_samples)``. With the whole
data as one batch and ``forget_factor=0`` it is batch multiplicative updates.
Beyond scikit-learn: masks of missing entries, fixed atoms, torch tensors and
devices, an ``EpochInfo`` callback per minibatch step.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from deepnmf._utils import check_nonneg_float, check_positive_int
from deepnmf.callbacks import Callback, Clock, chain, print_every, report_epoch
from deepnmf.exceptions import ParameterError
from deepnmf.models import _nmf_checks as checks
from deepnmf.models.nmf import NMF, _fill_missing, _regularisation
from deepnmf.solvers import online
from deepnmf.solvers.mu import MUResult, mm_gamma


class MiniBatchNMF(NMF):
    """Minibatch (online) NMF with beta-divergence multiplicative updates.

    Parameters
    ----------
    n_components : int, "auto" or None
        Rank, as in :class:`~deepnmf.NMF`.
    init : {None, "random", "nndsvd", "nndsvda", "nndsvdar", "custom"}
    batch_size : int
        Rows per minibatch.
    beta_loss : {"frobenius", "kullback-leibler", "itakura-saito"} or float
    tol : float
        Stop when the relative change of ``H`` over a step is at most ``tol``
        (0 disables).
    max_no_improvement : int or None
        Stop after this many steps without improvement of the smoothed
        minibatch cost (None disables).
    max_iter : int
        Maximum number of passes over the data.
    alpha_W, alpha_H, l1_ratio : float
        Penalties, scaled per minibatch as scikit-learn scales them.
    forget_factor : float in [0, 1]
        Weight of past minibatches in the dictionary statistics.
    fresh_restarts : bool
        Solve each minibatch's activations from scratch (and all of them at the end).
    fresh_restarts_max_iter : int
        Steps of that solve.
    transform_max_iter : int or None
        Steps of ``transform`` (default ``max_iter``).
    random_state : int, generator or None
    verbose : int
    device : {"cpu", "cuda", "auto"}

    Attributes
    ----------
    components_, n_components_, n_iter_, reconstruction_err_, n_features_in_
        As in :class:`~deepnmf.NMF`.
    n_steps_ : int
        Minibatch steps taken.
    loss_curve_ : list of float
        Minibatch cost (scikit-learn's, per sample) of each step.

    Examples
    --------
    >>> import numpy as np
    >>> from deepnmf import MiniBatchNMF
    >>> X = np.random.default_rng(0).random((200, 8))
    >>> MiniBatchNMF(3, batch_size=50, beta_loss="kullback-leibler", random_state=0).fit(X).components_.shape
    (3, 8)
    """

    def __init__(
        self,
        n_components: int | str | None = "auto",
        *,
        init: str | None = None,
        batch_size: int = 1024,
        beta_loss: str | float = "frobenius",
        tol: float = 1e-4,
        max_no_improvement: int | None = 10,
        max_iter: int = 200,
        alpha_W: float = 0.0,
        alpha_H: float | str = "same",
        l1_ratio: float = 0.0,
        forget_factor: float = 0.7,
        fresh_restarts: bool = False,
        fresh_restarts_max_iter: int = 30,
        transform_max_iter: int | None = None,
        random_state: Any = None,
        verbose: int = 0,
        device: str = "cpu",
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.batch_size = batch_size
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.max_iter = max_iter
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.forget_factor = forget_factor
        self.fresh_restarts = fresh_restarts
        self.fresh_restarts_max_iter = fresh_restarts_max_iter
        self.transform_max_iter = transform_max_iter
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------ validation
    solver = "mu"  # the update of every step (read by NMF's checks); not a parameter here
    shuffle = False

    def _check_params(self, n_samples: int, n_features: int) -> int | str:
        k = super()._check_params(n_samples, n_features)
        check_positive_int(self.batch_size, "batch_size")
        if not 0.0 <= check_nonneg_float(self.forget_factor, "forget_factor") <= 1.0:
            raise ParameterError(f"forget_factor must be in [0, 1], got {self.forget_factor!r}")
        if self.max_no_improvement is not None:
            check_positive_int(self.max_no_improvement, "max_no_improvement")
        check_positive_int(self.fresh_restarts_max_iter, "fresh_restarts_max_iter")
        if self.transform_max_iter is not None:
            check_positive_int(self.transform_max_iter, "transform_max_iter")
        self._batch_size = min(self.batch_size, n_samples)
        self._rho = self.forget_factor ** (self._batch_size / n_samples)
        self._gamma = mm_gamma(self.beta_)
        self._transform_max_iter = self.max_iter if self.transform_max_iter is None else self.transform_max_iter
        return k

    # ------------------------------------------------------------------ steps
    def _penalties(self, n_rows: int, n_features: int) -> tuple[float, float, float, float]:
        return _regularisation(self.alpha_W, self.alpha_H, self.l1_ratio, n_rows, n_features)

    def _solve_W(self, X, H, max_iter: int, mask=None):
        l1, l2, _, _ = self._penalties(*X.shape)
        return online.solve_activations(X, H, beta=self.beta_, gamma=self._gamma, l1=l1, l2=l2,
                                        max_iter=max_iter, tol=self.tol, mask=mask)

    def _minibatch_step(self, X, W, H, update_H: bool, mask=None, fixed=None) -> tuple[torch.Tensor, float]:
        """Update the batch's activations ``W`` (None: solve afresh) and, with ``update_H``, ``H``; the batch cost."""
        l1_W, l2_W, l1_H, l2_H = self._penalties(*X.shape)
        if self.fresh_restarts or W is None:
            W = self._solve_W(X, H, self.fresh_restarts_max_iter, mask)
        else:
            online.update_activations(X, W, H, beta=self.beta_, gamma=self._gamma, l1=l1_W, l2=l2_W, mask=mask)
        cost = online.batch_cost(X, W, H, beta=self.beta_, l1_W=l1_W, l2_W=l2_W, l1_H=l1_H, l2_H=l2_H, mask=mask)
        if update_H:
            online.update_dictionary(X, W, H, self._A, self._B, beta=self.beta_, gamma=self._gamma, l1=l1_H,
                                     l2=l2_H, rho=self._rho, mask=mask, fixed=fixed)
        return W, cost

    def _converged(self, batch_rows: int, cost: float, H, H_previous, n_samples: int, step: int) -> bool:
        """scikit-learn's stopping rules: small change of H, or no improvement of the smoothed cost."""
        if step == 1:
            return False
        alpha = min(batch_rows / (n_samples + 1), 1.0)
        self._ewa_cost = cost if self._ewa_cost is None else self._ewa_cost * (1 - alpha) + cost * alpha
        change = float(torch.linalg.norm(H - H_previous) / torch.linalg.norm(H).clamp_min(1e-300))
        if self.tol > 0 and change <= self.tol:
            return True
        if self._ewa_cost_min is None or self._ewa_cost < self._ewa_cost_min:
            self._no_improvement, self._ewa_cost_min = 0, self._ewa_cost
        else:
            self._no_improvement += 1
        return self.max_no_improvement is not None and self._no_improvement >= self.max_no_improvement

    # -------------------------------------------------------------------- fit
    def _fit_transform(self, Xt, W, H, *, update_H, mask=None, fixed_components=None, callback=None,
                       max_iter=None):
        """All minibatch passes (or, with ``update_H=False``, the activations of ``transform``)."""
        n, m = Xt.shape
        k = self._check_params(n, m)
        M = self._prepare_mask(mask, Xt)
        checks.check_zeros_for_beta(Xt, self.beta_, M)
        if not update_H:
            H0 = checks.check_init_array(H, (k, m), "NMF (input H)", Xt)
            W_out = self._solve_W(Xt, H0, self._transform_max_iter if max_iter is None else max_iter, M)
            return W_out, H0, MUResult(W_out, H0, 0)
        X_init = Xt if M is None else _fill_missing(Xt, M)
        W0, H0, fixed = self._initial_factors(X_init, k, W, H, fixed_components, True)
        self._n_components = H0.shape[0]
        self._A, self._B = H0.clone(), torch.ones_like(H0)
        losses, n_steps = self._passes(Xt, M, W0, H0, fixed, self._callback(callback))
        if self.fresh_restarts:
            W0 = self._solve_W(Xt, H0, self._transform_max_iter, M)
        per_pass = math.ceil(n / self._batch_size)
        n_iter = math.ceil(n_steps / per_pass)
        checks.warn_convergence(n_iter, self.max_iter, self.tol)
        self.n_steps_ = n_steps
        divergence = online.batch_cost(Xt, W0, H0, beta=self.beta_, l1_W=0, l2_W=0, l1_H=0, l2_H=0, mask=M) * n
        return W0, H0, MUResult(W0, H0, n_iter, losses, divergence)

    def _passes(self, Xt, M, W, H, fixed, callback) -> tuple[list[float], int]:
        """Minibatch steps over consecutive row ranges, cycling; returns the costs and the step count."""
        n = Xt.shape[0]
        bs = self._batch_size
        starts = list(range(0, n, bs))
        n_steps = self.max_iter * len(starts)
        self._ewa_cost, self._ewa_cost_min, self._no_improvement = None, None, 0
        previous = H.clone()
        losses: list[float] = []
        clock = Clock()
        step = 0
        for step in range(1, n_steps + 1):
            a = starts[(step - 1) % len(starts)]
            rows = slice(a, min(a + bs, n))
            Mb = None if M is None else M[rows]
            W[rows], cost = self._minibatch_step(Xt[rows], W[rows], H, True, Mb, fixed)
            losses.append(cost)
            if report_epoch(callback, step, n_steps, cost, clock):
                break
            if self._converged(rows.stop - rows.start, cost, H, previous, n, step):
                break
            previous.copy_(H)
        return losses, step

    def partial_fit(self, X: Any, y: Any = None, W: Any = None, H: Any = None, *, mask: Any = None) -> "MiniBatchNMF":
        """Update the model with one minibatch ``X`` [shape=(batch, n_features)]; returns ``self``.

        The first call initialises ``H`` (``init``, or the given ``H`` with
        ``init="custom"``); later calls continue from the running statistics.
        """
        fitted = hasattr(self, "components_")
        Xt, kind = self._prepare_X(checks.densify(X), reset=not fitted)
        k = self._check_params(*Xt.shape)
        M = self._prepare_mask(mask, Xt)
        checks.check_zeros_for_beta(Xt, self.beta_, M)
        if not fitted:
            _, H0, _ = self._initial_factors(Xt, k, W, H, None, True)
            self._A, self._B = H0.clone(), torch.ones_like(H0)
            self._H, self._input_kind, self.n_steps_, self.n_iter_, self.loss_curve_ = H0, kind, 0, 0, []
        _, cost = self._minibatch_step(Xt, None, self._H, True, M)
        self.loss_curve_.append(cost)
        self.n_steps_ += 1
        self.n_components_ = self._H.shape[0]
        self.components_ = self._output(self._H, getattr(self, "_input_kind", kind))
        return self

    def _callback(self, user: Callback | None) -> Callback | None:
        if not self.verbose:
            return user
        printer = print_every(10, lambda i: f"[MiniBatchNMF] step {i.epoch:5d}  batch cost {i.loss:.6g}", at_end=False)
        return chain(printer, user)

    # ------------------------------------------------------------- save/load
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = super()._state_tensors()
        if hasattr(self, "_A"):  # the running statistics: partial_fit continues after load
            tensors.update(numerator=self._A, denominator=self._B)
        return tensors

    def _state_json(self) -> dict[str, Any]:
        state = super()._state_json()
        state["n_steps_"] = int(getattr(self, "n_steps_", 0))
        return state

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        super()._set_state(tensors, state)
        self.n_steps_ = int(state.get("n_steps_", 0))
        if "numerator" in tensors:
            self._A = tensors["numerator"].to(self._H)
            self._B = tensors["denominator"].to(self._H)
