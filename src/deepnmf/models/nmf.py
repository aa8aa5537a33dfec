r"""Classic NMF with beta-divergence multiplicative updates, a drop-in for scikit-learn's ``NMF``.

Orientation: ``X`` (n_samples, n_features) ~ ``W`` (n_samples, n_components)
@ ``H`` (n_components, n_features); ``H`` is the dictionary
(``components_``), ``W`` the activations returned by ``transform``.

.. math::

    \min_{W, H \geq 0} \; \sum_{ij} M_{ij} d_\beta(X_{ij} \mid (WH)_{ij})
    + \alpha_W n_f \big(\rho \|W\|_1 + \tfrac{1-\rho}{2}\|W\|_F^2\big)
    + \alpha_H n_s \big(\rho \|H\|_1 + \tfrac{1-\rho}{2}\|H\|_F^2\big)

with ``rho = l1_ratio`` and the penalties scaled by the number of features
``n_f`` and samples ``n_s`` exactly as scikit-learn scales them.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin

from deepnmf._utils import (
    as_tensor,
    check_choice,
    check_nonneg_float,
    check_model_size,
    check_positive_int,
    make_generator,
    resolve_device,
)
from deepnmf.callbacks import Callback, chain, print_every
from deepnmf.checkpoints import factor_checkpoints
from deepnmf.divergences import beta_from_loss
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.init import INITS, default_init, initialize
from deepnmf.models import _nmf_checks as checks
from deepnmf.models._base import BaseNMF
from deepnmf.solvers.cd import coordinate_descent
from deepnmf.solvers.mu import multiplicative_updates


def _regularisation(alpha_W: float, alpha_H: float | str, l1_ratio: float, n_samples: int, n_features: int):
    """scikit-learn's scaling of the penalties: ``(l1_W, l2_W, l1_H, l2_H)``."""
    alpha_H = alpha_W if alpha_H == "same" else alpha_H
    l1_W = n_features * alpha_W * l1_ratio
    l2_W = n_features * alpha_W * (1.0 - l1_ratio)
    l1_H = n_samples * alpha_H * l1_ratio
    l2_H = n_samples * alpha_H * (1.0 - l1_ratio)
    return l1_W, l2_W, l1_H, l2_H


class NMF(ClassNamePrefixFeaturesOutMixin, BaseNMF):
    """Nonnegative matrix factorisation: coordinate descent or multiplicative updates, a drop-in for scikit-learn's ``NMF``.

    Parameters
    ----------
    n_components : int, "auto" or None
        Rank. ``None`` uses ``n_features``; ``"auto"`` takes it from custom
        ``W``/``H`` when given, else ``n_features`` (scikit-learn's rule).
    init : {None, "random", "nndsvd", "nndsvda", "nndsvdar", "custom"}
        ``None`` picks ``"nndsvda"`` when ``n_components <= min(X.shape)``,
        else ``"random"`` (as scikit-learn).
    solver : {"auto", "cd", "mu", "newton-cd"}
        ``"cd"``: coordinate descent (HALS), Frobenius only, scikit-learn's
        default and its results to rounding; ``"mu"``: multiplicative
        updates, any beta; ``"newton-cd"``: coordinate descent with Newton
        steps, KL only; ``"auto"`` (default): accelerated HALS (extra
        passes per product, Gillis & Glineur 2012) for Frobenius, ``"mu"``
        otherwise.
        See :mod:`deepnmf.solvers.cd` and :mod:`deepnmf.solvers.mu`.
    beta_loss : {"frobenius", "kullback-leibler", "itakura-saito"} or float
        Divergence to minimise (beta 2, 1, 0, or any real).
    tol : float
        Tolerance of scikit-learn's stopping rules (cd: projected-gradient
        norm relative to the first iteration; mu: decrease of the error over
        10 iterations); 0 runs exactly ``max_iter`` iterations.
    max_iter : int
        Maximum number of iterations.
    random_state : int, generator or None
        Seeds the initialisation and the coordinate orders of ``shuffle``.
    alpha_W, alpha_H : float (``alpha_H`` may be ``"same"``, the default: ``alpha_W``)
        Penalty weights on ``W`` (activations) and ``H`` (dictionary).
    l1_ratio : float in [0, 1]
        Share of L1 in the penalties.
    verbose : int
        Print the objective every 10 iterations to stderr (through a
        callback, :func:`deepnmf.callbacks.print_every`).
    shuffle : bool
        Coordinate descent visits the components in a random order.
    device : {"cpu", "cuda", "auto"}

    Attributes
    ----------
    components_ : array [shape=(n_components, n_features)]
        The dictionary ``H``, same kind (numpy or torch) as the training data.
    n_components_ : int
    n_iter_ : int
    reconstruction_err_ : float
        ``sqrt(2 * divergence)`` at the end of ``fit`` (scikit-learn's definition).
    loss_curve_ : list of float
        Objective (divergence + penalties) at initialisation and after each iteration.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from deepnmf import NMF
    >>> X = np.random.default_rng(0).random((20, 8))
    >>> W = NMF(3, beta_loss="kullback-leibler", random_state=0).fit_transform(X)
    >>> W.shape
    (20, 3)
    """

    def __init__(
        self,
        n_components: int | str | None = "auto",
        *,
        init: str | None = None,
        solver: str = "auto",
        beta_loss: str | float = "frobenius",
        tol: float = 1e-4,
        max_iter: int = 200,
        random_state: Any = None,
        alpha_W: float = 0.0,
        alpha_H: float | str = "same",
        l1_ratio: float = 0.0,
        verbose: int = 0,
        shuffle: bool = False,
        device: str = "cpu",
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.shuffle = shuffle
        self.device = device

    # ------------------------------------------------------------ validation
    def _check_params(self, n_samples: int, n_features: int) -> int | str:
        """Validate the constructor arguments; returns the rank (or ``"auto"``) and sets ``_solver``."""
        beta = beta_from_loss(self.beta_loss)
        if self.init is not None:
            check_choice(self.init, "init", INITS)
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_nonneg_float(self.tol, "tol")
        check_nonneg_float(self.alpha_W, "alpha_W")
        if self.alpha_H != "same":
            check_nonneg_float(self.alpha_H, "alpha_H")
        if not 0.0 <= check_nonneg_float(self.l1_ratio, "l1_ratio") <= 1.0:
            raise ParameterError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        resolve_device(self.device)
        self._solver = checks.resolve_solver(self.solver, beta, self.beta_loss, self.init)
        return checks.check_n_components(self.n_components, n_features)

    @property
    def beta_(self) -> float:
        """The beta of ``beta_loss`` as a float."""
        return beta_from_loss(self.beta_loss)

    @property
    def _n_features_out(self) -> int:
        """Number of output features of ``transform`` (for ``get_feature_names_out``)."""
        return self.components_.shape[0]

    # ------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None, **params: Any) -> "NMF":
        """Learn the dictionary; see :meth:`fit_transform` for the arguments."""
        self.fit_transform(X, **params)
        return self

    def fit_transform(
        self,
        X: Any,
        y: Any = None,
        W: Any = None,
        H: Any = None,
        *,
        mask: Any = None,
        fixed_components: Any = None,
        callback: Callback | None = None,
        checkpoint_dir: Any = None,
        checkpoint_every: int = 0,
        resume: bool = False,
    ) -> Any:
        """Learn the dictionary and return the activations of ``X``.

        Parameters
        ----------
        X : array-like, scipy sparse matrix or torch.Tensor [shape=(n_samples, n_features)]
            Nonnegative data (sparse input is densified).
        y : ignored
        W : array [shape=(n_samples, n_components)], optional
            Initial activations (``init="custom"``).
        H : array [shape=(n_components, n_features)], optional
            Initial dictionary (``init="custom"``).
        mask : array [shape=(n_samples, n_features)], optional
            1 where ``X`` is observed, 0 where it is missing (ignored).
        fixed_components : array [shape=(n_fixed, n_features)], optional
            Atoms held fixed (semi-supervised separation); they become the
            first ``n_fixed`` rows of ``components_`` and the remaining
            ``n_components - n_fixed`` atoms are learned.
        callback : callable, optional
            Called with a :class:`deepnmf.callbacks.EpochInfo` after each
            iteration (``epoch`` = iteration, ``train={"loss": objective}``);
            returning ``True`` stops the fit.
        checkpoint_dir, checkpoint_every, resume
            Checkpoints of ``W``, ``H`` and the objective every
            ``checkpoint_every`` iterations (a multiple of 10) in
            ``checkpoint_dir``, and resuming from the last one
            (:class:`deepnmf.checkpoints.FactorCheckpoints`).

        Returns
        -------
        W : array [shape=(n_samples, n_components)]
            Same kind (numpy or torch) as ``X`` (numpy for sparse input).
        """
        Xt, kind = self._prepare_X(checks.densify(X), reset=True)
        ckpt = {}
        if checkpoint_dir is not None or checkpoint_every or resume:
            if "checkpoint" not in inspect.signature(self._fit_transform).parameters:
                raise ParameterError(f"{type(self).__name__} writes no checkpoints; use NMF(solver='mu')")
            ckpt = {"checkpoint": (checkpoint_dir, checkpoint_every, resume)}
        W_out, H_out, result = self._fit_transform(Xt, W, H, update_H=True, mask=mask,
                                                   fixed_components=fixed_components, callback=callback, **ckpt)
        self._H = H_out
        self._input_kind = kind
        self.n_components_ = H_out.shape[0]
        self.n_iter_ = result.n_iter
        self.loss_curve_ = result.losses
        self.reconstruction_err_ = float(np.sqrt(max(2.0 * result.divergence, 0.0)))
        self.components_ = self._output(H_out, kind)
        return self._output(W_out, kind)

    def _fit_transform(self, Xt, W, H, *, update_H, mask=None, fixed_components=None, callback=None,
                       max_iter=None, checkpoint=None):
        """The one solver call behind fit, transform and :func:`non_negative_factorization`.

        Returns ``(W, H, result)``: tensors like ``Xt`` and the solver's
        :class:`~deepnmf.solvers.mu.MUResult`.
        """
        n, m = Xt.shape
        k = self._check_params(n, m)
        if k != "auto":  # W, H and the solver's buffers of their sizes; the model and the ratio at every entry
            check_model_size("NMF", k, n, m, n_values=3 * (n * k + k * m) + 2 * n * m,
                             itemsize=Xt.element_size(), device=Xt.device)
        M = self._prepare_mask(mask, Xt)
        checks.check_zeros_for_beta(Xt, self.beta_, M)
        X_init = Xt if M is None else _fill_missing(Xt, M)  # missing entries must not steer the start either
        W0, H0, fixed = self._initial_factors(X_init, k, W, H, fixed_components, update_H)
        self._n_components = H0.shape[0]  # the rank that ran ("auto" resolved), as scikit-learn records it
        l1_W, l2_W, l1_H, l2_H = _regularisation(self.alpha_W, self.alpha_H, self.l1_ratio, n, m)
        max_iter = self.max_iter if max_iter is None else max_iter
        common = dict(max_iter=max_iter, tol=self.tol, l1_reg_W=l1_W, l2_reg_W=l2_W, l1_reg_H=l1_H,
                      l2_reg_H=l2_H, update_H=update_H, fixed_components=fixed, mask=M,
                      callback=self._callback(callback))
        saver = factor_checkpoints(self, Xt, max_iter, checkpoint)  # through the callback: the solver is untouched
        if saver is not None:
            initial = lambda: self._solve(Xt, W0.clone(), H0.clone(), {**common, "max_iter": 0}).losses[0]  # noqa: E731
            common["max_iter"], common["tol"] = saver.start(W0, H0, initial)
            common["callback"] = saver.callback(W0, H0, common["callback"])
        result = self._solve(Xt, W0, H0, common)
        if saver is not None:
            result.n_iter, result.losses = saver.finish(result.n_iter)
        checks.warn_convergence(result.n_iter, max_iter, self.tol)
        return result.W, result.H, result

    def _solve(self, Xt, W0, H0, common):
        """The solver of ``solver`` from ``W0``, ``H0`` (updated in place) with the keyword arguments ``common``."""
        if self._solver == "mu":
            return multiplicative_updates(Xt, W0, H0, beta=self.beta_, **common)
        # "cd" is scikit-learn's HALS pass for pass; "auto" adds the accelerated inner passes
        return coordinate_descent(Xt, W0, H0, beta=self.beta_, shuffle=self.shuffle,
                                  inner=None if self.solver == "auto" else 1,
                                  random_state=checks.numpy_random_state(self.random_state), **common)

    def _initial_factors(self, Xt, k, W, H, fixed_components, update_H=True):
        """Starting ``W``, ``H`` and the boolean index of fixed atoms (scikit-learn's ``_check_w_h`` rules)."""
        n, m = Xt.shape
        if update_H and self.init == "custom":
            H0 = checks.check_init_array(H, (k, m), "NMF (input H)", Xt) if H is not None else None
            W0 = checks.check_init_array(W, (n, k), "NMF (input W)", Xt) if W is not None else None
            if H0 is None or W0 is None:
                raise ParameterError("init='custom' needs both W and H")
            checks.check_same_dtype(Xt, W, H)
            W0, H0 = W0.to(Xt.dtype), H0.to(Xt.dtype)
        elif not update_H:
            checks.warn_unused(W, H, update_H)
            if H is None:
                raise ParameterError("update_H=False needs the dictionary H")
            H0 = checks.check_init_array(H, (k, m), "NMF (input H)", Xt)
            checks.check_same_dtype(Xt, None, H)
            W0 = self._transform_start(Xt, H0.shape[0])
        else:
            checks.warn_unused(W, H, update_H)
            k = m if k == "auto" else k
            init = self.init or default_init(k, n, m)
            if init.startswith("nndsvd") and k > min(n, m):
                raise ParameterError(f"init = '{init}' can only be used when n_components <= min(n_samples, "
                                     f"n_features) = {min(n, m)}; got n_components={k}. Use init='random' or a "
                                     "smaller rank")
            W0, H0 = initialize(Xt, k, init=init, generator=make_generator(self.random_state, Xt.device))
        return W0, H0, self._fixed_rows(Xt, H0, fixed_components)

    def _transform_start(self, Xt: torch.Tensor, k: int) -> torch.Tensor:
        """scikit-learn's start of ``transform``: zeros for coordinate descent, a constant for mu."""
        if self._solver != "mu":
            return torch.zeros((Xt.shape[0], k), dtype=Xt.dtype, device=Xt.device)
        avg = float(np.sqrt(max(float(Xt.mean()), 1e-12) / k))
        return torch.full((Xt.shape[0], k), avg, dtype=Xt.dtype, device=Xt.device)

    @staticmethod
    def _fixed_rows(Xt, H0, fixed_components):
        """Write the fixed atoms into the first rows of ``H0``; their boolean index (or None)."""
        if fixed_components is None:
            return None
        k, m = H0.shape
        F = as_tensor(fixed_components, name="fixed_components", dtype=Xt.dtype, device=Xt.device)[0]
        if F.shape[1] != m:
            raise DataError(f"fixed_components has {F.shape[1]} features but X has {m}")
        if F.shape[0] > k:
            raise ParameterError(f"{F.shape[0]} fixed components exceed n_components={k}")
        if not bool(torch.isfinite(F).all()) or bool((F < 0).any()):
            raise DataError("fixed_components must be finite and nonnegative")
        H0[: F.shape[0]] = F
        fixed = torch.zeros(k, dtype=torch.bool)
        fixed[: F.shape[0]] = True
        return fixed

    @staticmethod
    def _prepare_mask(mask: Any, Xt: torch.Tensor) -> torch.Tensor | None:
        if mask is None:
            return None
        M = as_tensor(mask, name="mask", dtype=Xt.dtype, device=Xt.device, ndim=None)[0]
        if tuple(M.shape) != tuple(Xt.shape):
            raise DataError(f"mask has shape {tuple(M.shape)} but X has shape {tuple(Xt.shape)}")
        return M

    def _callback(self, user: Callback | None) -> Callback | None:
        """The user's callback, chained after the ``verbose`` printer (every 10 iterations)."""
        if not self.verbose:
            return user
        printer = print_every(10, lambda i: f"[NMF] iteration {i.epoch:4d}  objective {i.loss:.6g}", at_end=False)
        return chain(printer, user)

    # ------------------------------------------------------------- transform
    def transform(self, X: Any, *, mask: Any = None, max_iter: int | None = None) -> Any:
        """Activations of ``X`` with the dictionary frozen.

        Parameters
        ----------
        X : array-like, scipy sparse matrix or torch.Tensor [shape=(n_samples, n_features)]
        mask : array [shape=(n_samples, n_features)], optional
        max_iter : int, optional
            Defaults to the estimator's ``max_iter``.

        The solver starts from scikit-learn's start (zeros for coordinate
        descent, a constant for mu) and the penalties on ``W`` apply.

        Returns
        -------
        W : array [shape=(n_samples, n_components)]
        """
        Xt, kind = self._prepare_X(checks.densify(X), reset=False)
        H = self._H.to(device=Xt.device, dtype=Xt.dtype)
        W, _, _ = self._fit_transform(Xt, None, H, update_H=False, mask=mask, max_iter=max_iter)
        return self._output(W, kind)

    def inverse_transform(self, X: Any) -> Any:
        """Reconstruction ``X @ components_`` of activations ``X`` (scikit-learn's argument name).

        Parameters
        ----------
        X : array [shape=(n_samples, n_components)]
            Activations ``W``.

        Returns
        -------
        X_hat : array [shape=(n_samples, n_features)]
        """
        self._check_is_fitted()
        Wt, kind = as_tensor(X, name="X", dtype=self.dtype_, device=self._H.device)
        if Wt.shape[1] != self._H.shape[0]:
            raise DataError(f"X has {Wt.shape[1]} columns but the model has {self._H.shape[0]} components")
        return self._output(Wt @ self._H, kind)

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_components(cls, components: Any, **params: Any) -> "NMF":
        """An NMF whose dictionary is given (for ``transform`` with a fixed, e.g. stacked, dictionary).

        Parameters
        ----------
        components : array [shape=(n_components, n_features)]
            Nonnegative dictionary.
        **params
            Constructor arguments (``beta_loss``, ``max_iter``...).
        """
        est = cls(**params)
        device = resolve_device(est.device)
        H, kind = as_tensor(components, name="components", device=device)
        if bool((H < 0).any()) or not bool(torch.isfinite(H).all()) or H.numel() == 0:
            raise DataError("components must be a nonempty, finite, nonnegative matrix")
        if est.n_components in (None, "auto"):
            est.n_components = H.shape[0]
        if est.n_components != H.shape[0]:
            raise ParameterError(f"n_components={est.n_components} but components has {H.shape[0]} rows")
        est._H, est._input_kind = H, kind
        est.components_ = est._output(H, kind)
        est.n_components_, est.n_features_in_ = H.shape[0], H.shape[1]
        est.dtype_, est.device_ = H.dtype, device
        est.n_iter_, est.loss_curve_ = 0, []
        return est

    # ------------------------------------------------------------- save/load
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {"components": self._H}

    def _state_json(self) -> dict[str, Any]:
        state = super()._state_json()
        err = getattr(self, "reconstruction_err_", None)  # absent for from_components: JSON null
        state["reconstruction_err_"] = None if err is None or err != err else float(err)
        return state

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        device = self._restore_common(state)
        H = tensors["components"].to(device=device, dtype=self.dtype_)
        if H.ndim != 2 or H.shape[1] != self.n_features_in_ or bool((H < 0).any()):
            raise DataError("saved components are not a nonnegative (n_components, n_features_in_) matrix")
        self._H = H
        self.n_components_ = H.shape[0]
        self.components_ = H.cpu().numpy()
        err = state.get("reconstruction_err_")
        if err is not None:
            self.reconstruction_err_ = float(err)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True  # densified on input
        return tags


def _fill_missing(X: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``X`` with entries where ``M == 0`` replaced by the mean of the observed ones."""
    observed = M != 0
    if not bool(observed.any()):
        raise DataError("mask marks every entry as missing; nothing to fit")
    return torch.where(observed, X, X[observed].mean())


def non_negative_factorization(
    X: Any,
    W: Any = None,
    H: Any = None,
    n_components: int | str | None = "auto",
    *,
    init: str | None = None,
    update_H: bool = True,
    solver: str = "auto",
    beta_loss: str | float = "frobenius",
    tol: float = 1e-4,
    max_iter: int = 200,
    alpha_W: float = 0.0,
    alpha_H: float | str = "same",
    l1_ratio: float = 0.0,
    random_state: Any = None,
    verbose: int = 0,
    shuffle: bool = False,
    **params: Any,
) -> tuple[Any, Any, int]:
    """Functional form with scikit-learn's meaning and return values: ``X ~ W @ H``.

    With ``update_H=False``, ``H`` is the fixed dictionary and only ``W`` is
    computed (what ``transform`` does). The arguments are those of
    :class:`NMF`; ``params`` takes its deepnmf-only ones (``device``) and
    ``fit_transform``'s (``mask``, ``fixed_components``, ``callback``).

    Parameters
    ----------
    X : array-like, scipy sparse matrix or torch.Tensor [shape=(n_samples, n_features)]
    W : array [shape=(n_samples, n_components)], optional
    H : array [shape=(n_components, n_features)], optional

    Returns
    -------
    W : array [shape=(n_samples, n_components)]
    H : array [shape=(n_components, n_features)]
    n_iter : int
        The number of iterations the solver ran.
    """
    fit_args = {key: params.pop(key) for key in ("mask", "fixed_components", "callback") if key in params}
    est = NMF(n_components, init=init, solver=solver, beta_loss=beta_loss, tol=tol, max_iter=max_iter,
              alpha_W=alpha_W, alpha_H=alpha_H, l1_ratio=l1_ratio, random_state=random_state,
              verbose=verbose, shuffle=shuffle, **params)
    Xt, kind = est._prepare_X(checks.densify(X), reset=True)
    W_out, H_out, result = est._fit_transform(Xt, W, H, update_H=update_H, **fit_args)
    return est._output(W_out, kind), est._output(H_out, kind), result.n_iter
