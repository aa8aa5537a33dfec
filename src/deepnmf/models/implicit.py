r"""ImplicitNMF: NMF whose factors are neural functions of a coordinate (iN-NMF).

.. math::

    V(t, f) \approx \sum_k W_k(f) \, H_k(t)

with each atom ``W_k`` (and, in ``"points"`` mode, each activation ``H_k``) a
small sine MLP of a normalised coordinate with a softplus output
(:mod:`deepnmf.nn.implicit`). Frequencies are normalised by the Nyquist
frequency, ``f / (sr / 2)``, and times by the duration, ``t / duration``
(:mod:`deepnmf.audio.points`), so a dictionary learned at one STFT size can
be sampled at the bins of any other.

Orientation: ``X`` is ``(n_frames, n_bins)``; ``components_`` is the
dictionary sampled at the fitted bins, ``(n_components, n_bins)``;
activations are ``(n_frames, n_components)``, so ``X ~ activations @
components_`` as in scikit-learn. The formula above and the networks' names
(``module_["W"]`` the atoms of ``f``, ``module_["H"]`` the activations of
``t``, also the keys of saved model files) keep the iN-NMF paper's letters.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepnmf._utils import (
    as_tensor, check_choice, check_finite_nonnegative, check_nonneg_float, check_positive_int,
    check_model_size, make_generator, resolve_device, to_kind,
)
from deepnmf.callbacks import Callback, EpochInfo, chain, print_every, stop_on_plateau
from deepnmf.divergences import EPS, IMPLICIT_EPS, loss_name, short_loss_name
from deepnmf.exceptions import DataError, ModelFileError, ParameterError
from deepnmf.models._base import BaseNMF
from deepnmf.models._implicit_training import (
    frame_block, train_grid, train_grid_compiled, train_points, train_points_compiled,
)
from deepnmf.nn.implicit import paired_model

MODES = ("grid", "points")
LOSSES = ("kl", "frobenius", "is")
OPTIMIZERS = ("rprop", "adam")
#: ImplicitNMF loss name -> NMF beta_loss (used to refit activations)
BETA_LOSS = {name: loss_name(name) for name in LOSSES}


class ImplicitNMF(BaseNMF):
    """Implicit-neural NMF (iN-NMF) on spectrogram grids or time-frequency point clouds.

    Parameters
    ----------
    n_components : int
        Rank ``K``.
    mode : {"grid", "points"}
        ``"grid"``: atoms ``W_k(f)`` are networks, activations a plain
        nonnegative matrix, fitted on a regular grid ``X`` with bin
        frequencies ``freqs``. ``"points"``: atoms and activations ``H_k(t)``
        are networks, fitted on a :class:`deepnmf.audio.points.TFPoints`.
    loss : {"kl", "frobenius", "is"}
        Mean generalised Kullback-Leibler, half squared error or Itakura-Saito
        divergence over the data entries or points.
    beta_loss : str or float, optional
        The same choice in :class:`deepnmf.NMF`'s vocabulary (any name
        :func:`deepnmf.divergences.beta_from_loss` knows: ``"kullback-leibler"``,
        ``"itakura-saito"``, ``"poisson"``..., or beta 2, 1, 0); when given it
        sets the loss and ``loss`` is ignored.
    n_octaves : int
        Octaves of the Fourier features (``2 * n_octaves`` inputs).
    hidden : int
        Width of the 3 sine layers (the reference recipe's functions, see :mod:`deepnmf.nn.implicit`).
    optimizer : {"rprop", "adam"}
        Full-batch optimiser of the network weights (and grid activations).
    lr : float
        Learning rate (Rprop's initial step).
    max_epochs : int
        Most optimiser steps over the data (exactly this many with ``tol=0``).
    tol : float
        Stop early once the training loss falls by less than ``tol``
        (relative) over ``PLATEAU_WINDOW`` (100) epochs; 0 (default) runs every
        epoch. Not combined with checkpoints.
    point_fraction : float in (0, 1]
        ``"points"`` mode: share of the points drawn at random each epoch.
    random_state : int, generator or None
        Seeds the weights, the initial activations and the point draws.
    device : {"cpu", "cuda", "auto"}
    verbose : int
        Print the loss every ``max(1, max_epochs // 20)`` epochs to stderr
        (through a callback, :func:`deepnmf.callbacks.print_every`).
    sr : float, optional
        Sampling rate of the data. Grid mode: frequencies are normalised by
        ``sr / 2``, and a ``fit`` without ``freqs`` (as
        ``librosa.decompose.decompose`` calls it) takes the columns of ``X``
        as evenly spaced STFT bins from 0 to ``sr / 2``; without ``sr`` those
        bins are normalised frequencies from 0 to 0.5 (Nyquist 0.5).
    compile : bool
        Compile each training epoch with :func:`torch.compile` (fused
        kernels; a grid step took 0.68-0.80x the time on the project's 2-core
        CPU, see ``docs/implicit-nmf.md``). Compiling takes 9-25 s on first
        use (0.7-5 s once torch's on-disk cache holds the graph) and needs a
        C++ compiler on CPU; without one, training runs uncompiled with a
        warning. Results agree with uncompiled training up to float32
        rounding.

    Attributes
    ----------
    components_ : array [shape=(n_components, n_features)]
        Atoms sampled at ``freqs_``.
    freqs_ : np.ndarray [shape=(n_features,)]
        Frequencies (Hz) of the fitted bins (``"points"``: the distinct point frequencies).
    activations_ : array [shape=(n_frames, n_components)]
        ``"grid"`` mode: fitted activations of the training frames.
    nyquist_ : float
        Frequency (Hz) that normalises to 1.
    duration_ : float
        ``"points"`` mode: duration (s) that normalises to 1.
    module_ : torch.nn.ModuleDict
        ``{"W": ImplicitFactor}`` (and ``"H"`` in points mode).
    n_iter_ : int
    loss_curve_ : list of float
        Mean divergence before each optimiser step, then at the end.
    reconstruction_err_ : float
        Final mean divergence.

    Examples
    --------
    >>> import numpy as np
    >>> from deepnmf import ImplicitNMF
    >>> X = np.random.default_rng(0).random((30, 65))
    >>> freqs = np.linspace(0, 8000, 65)
    >>> model = ImplicitNMF(3, max_epochs=20, random_state=0).fit(X, freqs=freqs, sr=16000)
    >>> model.dictionary_at(np.linspace(0, 8000, 129)).shape
    (3, 129)
    """

    def __init__(
        self,
        n_components: int,
        *,
        mode: str = "grid",
        loss: str = "kl",
        beta_loss: str | float | None = None,
        n_octaves: int = 10,
        hidden: int = 64,
        optimizer: str = "rprop",
        lr: float = 1e-3,
        max_epochs: int = 1000,
        tol: float = 0.0,
        point_fraction: float = 1.0,
        random_state: Any = None,
        device: str = "cpu",
        verbose: int = 0,
        compile: bool = False,  # noqa: A002 - the estimator parameter's natural name
        sr: float | None = None,
    ) -> None:
        self.n_components = n_components
        self.mode = mode
        self.loss = loss
        self.beta_loss = beta_loss
        self.n_octaves = n_octaves
        self.hidden = hidden
        self.optimizer = optimizer
        self.lr = lr
        self.max_epochs = max_epochs
        self.tol = tol
        self.point_fraction = point_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.compile = compile
        self.sr = sr

    #: epochs between two comparisons of the ``tol`` rule
    PLATEAU_WINDOW = 100

    #: floor of the model inside logs and ratios (see :data:`deepnmf.divergences.IMPLICIT_EPS`)
    eps = IMPLICIT_EPS

    # ------------------------------------------------------------ validation
    def _check_params(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.mode, "mode", MODES)
        check_choice(self.loss, "loss", LOSSES)
        if self.beta_loss is not None:
            self._loss()
        if self.sr is not None and not check_nonneg_float(self.sr, "sr") > 0:
            raise ParameterError(f"sr must be > 0, got {self.sr!r}")
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_positive_int(self.n_octaves, "n_octaves")
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.max_epochs, "max_epochs", minimum=0)
        check_nonneg_float(self.tol, "tol")
        if not check_nonneg_float(self.lr, "lr") > 0:
            raise ParameterError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 < check_nonneg_float(self.point_fraction, "point_fraction") <= 1.0:
            raise ParameterError(f"point_fraction must be in (0, 1], got {self.point_fraction!r}")
        resolve_device(self.device)
        if not isinstance(self.compile, (bool, np.bool_)):
            raise ParameterError(f"compile must be True or False, got {self.compile!r}")

    def _loss(self) -> str:
        """The loss in this class's vocabulary: from ``beta_loss`` when given, else ``loss``."""
        if self.beta_loss is None:
            return self.loss
        try:
            return short_loss_name(self.beta_loss)
        except ParameterError as err:
            raise ParameterError(f"ImplicitNMF fits beta 2, 1 or 0; beta_loss={self.beta_loss!r}: {err}") from err

    def _new_factor(self, gen: torch.Generator, device: torch.device):
        from deepnmf.nn.implicit import ImplicitFactor

        return ImplicitFactor(self.n_components, n_octaves=self.n_octaves, hidden=self.hidden,
                              generator=gen).to(device)

    def _check_freqs(self, freqs: Any, n_bins: int | None, sr: float | None) -> np.ndarray:
        if freqs is None:
            raise ParameterError("grid mode needs freqs=, the frequency in Hz of every column of X")
        f = np.asarray(freqs.detach().cpu().numpy() if hasattr(freqs, "detach") else freqs, dtype=np.float64)
        if f.ndim != 1 or (n_bins is not None and f.size != n_bins):
            raise DataError(f"freqs must be 1-D with one frequency per column of X ({n_bins}), got shape {f.shape}")
        if f.size == 0 or not np.all(np.isfinite(f)) or (f < 0).any():
            raise DataError("freqs must be finite, nonnegative frequencies in Hz")
        if sr is not None and (f > sr / 2 * (1 + 1e-9)).any():
            raise DataError(f"freqs exceed the Nyquist frequency {sr / 2:g} Hz of sr={sr:g}")
        return f

    def _norm_f(self, f: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(f / self.nyquist_, dtype=torch.float32, device=device)

    # ------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None, *, freqs: Any = None, sr: float | None = None,
            callback: Callback | None = None, checkpoint_dir: Any = None, checkpoint_every: int = 0,
            resume: bool = False) -> "ImplicitNMF":
        """Learn the implicit dictionary (and activations).

        Parameters
        ----------
        X : array-like [shape=(n_frames, n_bins)] or TFPoints
            ``"grid"``: nonnegative data (for example ``|STFT| ** 0.5``; the
            model fits what it is given). ``"points"``: a point cloud.
        y : ignored
        freqs : array-like [shape=(n_bins,)], optional
            ``"grid"`` mode: frequency in Hz of each column of ``X``. Without
            it the columns are evenly spaced STFT bins from 0 to ``sr / 2``
            (``sr`` of this call or of the estimator), or normalised
            frequencies 0 to 0.5 when neither gives ``sr``.
        sr : float, optional
            ``"grid"`` mode: sampling rate (default: the estimator's ``sr``);
            frequencies are normalised by ``sr / 2``. Without any ``sr``,
            ``max(freqs)`` is taken as the Nyquist frequency (right for STFT bins).
        callback : callable, optional
            Called with a :class:`deepnmf.callbacks.EpochInfo` after every
            optimiser step (``train={"loss": mean divergence}``); returning
            ``True`` stops training.
        checkpoint_dir : str or Path, optional
            Folder of the training checkpoints (:mod:`deepnmf.checkpoints`;
            uncompiled training only).
        checkpoint_every : int
            Write a checkpoint every this many epochs (0: none).
        resume : bool
            Continue from the checkpoint in ``checkpoint_dir``, to the state an
            uninterrupted fit with the same seed reaches (bit for bit on CPU).

        Inside a ``torch.distributed`` process group, ``"grid"`` mode trains
        each process on a block of the frames and sums the networks' gradient
        over the processes: every process ends with the one-process fit.
        """
        self._check_params()
        ckpt = (checkpoint_dir, checkpoint_every, resume)
        if checkpoint_dir is not None and self.tol:
            raise ParameterError("tol (stopping on a plateau) is not combined with checkpoints: use tol=0 with "
                                 "checkpoint_dir=")
        if checkpoint_dir is not None and self.compile:
            raise ParameterError("checkpoints are written by the uncompiled training loops; use compile=False "
                                 "with checkpoint_dir=")
        if self.mode == "grid":
            self._fit_grid(X, freqs, self.sr if sr is None else sr, callback, ckpt)
        else:
            if freqs is not None or sr is not None:
                raise ParameterError("points mode takes the frequencies and sr from the TFPoints; drop freqs=/sr=")
            self._fit_points(X, callback, ckpt)
        return self

    def _check_size(self, n: int, m: int, *, n_points: int, networks: int = 1) -> None:
        """Refuse a fit that would not fit in memory (an estimate), warn about a rank above ``n`` frames."""
        k, h, j2 = int(self.n_components), int(self.hidden), 2 * int(self.n_octaves)
        weights = networks * k * (h * h + (j2 + 3) * h + 1)  # per network: one hidden layer of h x h and the edges
        # weights with their gradient and two optimiser states; the networks' saved states at every
        # coordinate; the factors; the data, the model and the gradient at every point
        n_values = 4 * weights + networks * 4 * k * h * (n + m) + 3 * k * (n + m) + 4 * n_points
        check_model_size("ImplicitNMF", k, n, m, n_values=n_values, device=resolve_device(self.device))

    def _checkpointer(self, ckpt: tuple, data: torch.Tensor):
        """The :class:`~deepnmf.checkpoints.Checkpointer` of ``fit``'s checkpoint arguments (None without a folder)."""
        from deepnmf.checkpoints import data_signature, make_checkpointer, run_signature

        folder, every, resume = ckpt
        if folder is None:
            return make_checkpointer(None, every, resume, {})
        return make_checkpointer(folder, every, resume, run_signature(self, data_signature(data)))

    def _grid_frequencies(self, freqs: Any, n_bins: int, sr: float | None) -> tuple[np.ndarray, float]:
        """Frequencies of the columns and the Nyquist frequency that normalises them.

        Without ``freqs``: ``n_bins`` evenly spaced STFT bins from 0 to ``sr / 2``
        (0 to 0.5 without ``sr``: normalised frequencies).
        """
        if freqs is None:
            nyquist = float(sr) / 2 if sr is not None else 0.5
            return np.linspace(0.0, nyquist, n_bins), nyquist
        f = self._check_freqs(freqs, n_bins, sr)
        nyquist = float(sr) / 2 if sr is not None else float(f.max())
        if not nyquist > 0:
            raise DataError("cannot normalise frequencies: give sr= or include a positive frequency")
        return f, nyquist

    def fit_transform(self, X: Any, y: Any = None, **params: Any) -> Any:
        """Fit, then return the activations of ``X`` ``(n_frames, n_components)``.

        ``"grid"``: the fitted activation matrix. ``"points"``: the activation
        networks evaluated at the distinct point times, ``(n_times, n_components)``.
        """
        self.fit(X, **params)
        if self.mode == "grid":
            return self.activations_
        return self.activations_at(np.unique(X.t))

    def _progress(self, callback: Callback | None) -> Callback | None:
        """The user's callback, chained after the ``verbose`` printer (about 20 lines per fit), then the
        plateau rule of ``tol``."""
        if self.tol:
            callback = chain(callback, stop_on_plateau(float(self.tol), self.PLATEAU_WINDOW))
        if not self.verbose:
            return callback
        line = lambda i: f"[ImplicitNMF] epoch {i.epoch:5d}  loss {i.loss:.6g}"  # noqa: E731
        printer = print_every(max(1, self.max_epochs // 20), line)
        if self.compile and self.max_epochs > 0:
            printer(EpochInfo(0, self.max_epochs, message="[ImplicitNMF] compiling the training epoch with "
                              "torch.compile (9-25 s the first time, less with torch's cache)"))
        return chain(printer, callback)

    def _fit_grid(self, X: Any, freqs: Any, sr: float | None, callback: Callback | None, ckpt: tuple) -> None:
        Xt, kind = self._prepare_X(X, reset=True, dtype=torch.float32)
        self._check_size(*Xt.shape, n_points=Xt.numel())
        checkpoint = self._checkpointer(ckpt, Xt)
        f, self.nyquist_ = self._grid_frequencies(freqs, Xt.shape[1], sr)
        gen = make_generator(self.random_state)
        net = self._new_factor(gen, Xt.device)
        F = net.features(self._norm_f(f, Xt.device))  # (K, 2J, n_bins), constant on the grid
        H = self._initial_activations(Xt, net, F, gen)
        rows, extra = frame_block(Xt.shape[0], compiled=self.compile, checkpoint=checkpoint)
        trainer = train_grid_compiled if self.compile else train_grid
        losses = trainer(net, F, H[rows], Xt[rows], loss=self._loss(), eps=self.eps, optimizer=self.optimizer,
                         lr=self.lr, epochs=self.max_epochs, callback=self._progress(callback), **extra)
        if "reduce" in extra:  # every process's trained block of the activations
            from deepnmf.distributed import all_gather_rows, block_sizes

            H = all_gather_rows(H[rows].contiguous(), block_sizes(H.shape[0]))
        self.module_ = torch.nn.ModuleDict({"W": net})
        self._input_kind, self.freqs_ = kind, f
        self._finish(losses, net(F).detach(), H.detach())

    def _initial_activations(self, Xt, net, F, gen) -> torch.Tensor:
        """Uniform random activations scaled so that ``H @ W`` has the mean of ``X``."""
        with torch.no_grad():
            W0 = net(F)  # (K, n_bins)
        H = torch.rand(Xt.shape[0], self.n_components, generator=gen).to(Xt.device)
        scale = float(Xt.mean()) / max(float((H @ W0).mean()), EPS)
        return H * scale

    def _finish(self, losses: list[float], W: torch.Tensor, H: torch.Tensor | None) -> None:
        self.n_iter_ = len(losses) - 1  # epochs run (a callback may stop early); the last entry is the end
        self.loss_curve_ = losses
        self.reconstruction_err_ = losses[-1]
        self._W = W
        self.n_components_ = self.n_components
        self.components_ = to_kind(W, self._input_kind)
        if H is not None:
            self._H = H
            self.activations_ = to_kind(H, self._input_kind)

    def _fit_points(self, points: Any, callback: Callback | None, ckpt: tuple) -> None:
        from deepnmf.audio.points import TFPoints
        from deepnmf.nn.implicit import unique_coordinates

        if not isinstance(points, TFPoints):
            raise DataError(f"points mode fits a deepnmf.audio.points.TFPoints, got {type(points).__name__}; "
                            "a matrix (as librosa.decompose.decompose passes) needs mode='grid'")
        if self.sr is not None and float(self.sr) != float(points.sr):
            raise ParameterError(f"sr={self.sr:g} but the TFPoints were made at sr={points.sr:g}")

        device = resolve_device(self.device)
        tn, fn = (torch.as_tensor(c, dtype=torch.float64) for c in points.coords())
        t_u, t_idx = unique_coordinates(tn)
        f_u, f_idx = unique_coordinates(fn)
        V = torch.as_tensor(points.value, dtype=torch.float32, device=device)
        self._check_size(len(t_u), len(f_u), n_points=V.numel(), networks=2)
        checkpoint = self._checkpointer(ckpt, torch.cat([tn, fn, V.double().cpu()]))
        gen = make_generator(self.random_state)
        nets = torch.nn.ModuleDict({"W": self._new_factor(gen, device), "H": self._new_factor(gen, device)})
        Ft = nets["H"].features(t_u.to(device, torch.float32))  # (K, 2J, n_times), constant
        Ff = nets["W"].features(f_u.to(device, torch.float32))  # (K, 2J, n_freqs), constant
        self._scale_points_init(nets, Ff, Ft, f_idx.to(device), t_idx.to(device), V)
        trainer = train_points_compiled if self.compile else train_points
        losses = trainer(nets, Ff, Ft, f_idx.to(device), t_idx.to(device), V, loss=self._loss(), eps=self.eps,
                               optimizer=self.optimizer, lr=self.lr, epochs=self.max_epochs,
                               fraction=self.point_fraction, gen=gen, callback=self._progress(callback),
                               **({"checkpoint": checkpoint} if checkpoint is not None else {}))
        self.module_ = nets
        self.nyquist_, self.duration_ = points.sr / 2, points.duration
        self.freqs_ = f_u.numpy() * self.nyquist_
        self.n_features_in_, self.dtype_, self.device_ = len(self.freqs_), torch.float32, device
        self._input_kind = as_tensor(np.zeros((1, 1), dtype=np.float32))[1]
        with torch.no_grad():
            self._finish(losses, nets["W"](Ff), None)

    @staticmethod
    def _scale_points_init(nets, Ff, Ft, f_idx, t_idx, V) -> None:
        """Shift the activation networks' output so the initial model has the data's mean."""
        with torch.no_grad():
            Y = paired_model(nets["W"](Ff), nets["H"](Ft), f_idx, t_idx)
            nets["H"].scale_output(max(float(V.mean()), EPS) / max(float(Y.mean()), EPS))

    # ------------------------------------------------------ using the model
    def dictionary_at(self, freqs: Any) -> Any:
        """Atoms sampled at any frequencies.

        Parameters
        ----------
        freqs : array-like [shape=(n_freqs,)]
            Frequencies in Hz (for example ``stft_freqs(n_fft, sr)`` of another STFT size).

        Returns
        -------
        W : array [shape=(n_components, n_freqs)]
            numpy unless ``freqs`` is a tensor.
        """
        self._check_is_fitted()
        f = self._check_freqs(freqs, None, 2 * self.nyquist_)
        net = self.module_["W"]
        with torch.no_grad():
            W = net.at(self._norm_f(f, self.device_))
        return W if isinstance(freqs, torch.Tensor) else W.cpu().numpy()

    def activations_at(self, times: Any) -> Any:
        """``"points"`` mode: activation functions at times in seconds.

        Parameters
        ----------
        times : array-like [shape=(n_times,)]

        Returns
        -------
        H : array [shape=(n_times, n_components)]
        """
        self._check_is_fitted()
        if self.mode != "points":
            raise ParameterError("activations_at needs mode='points'; in grid mode use activations_ or fit_activations")
        t = np.asarray(times.detach().cpu().numpy() if hasattr(times, "detach") else times, dtype=np.float64)
        if t.ndim != 1 or not np.all(np.isfinite(t)):
            raise DataError("times must be a 1-D array of finite times in seconds")
        with torch.no_grad():
            H = self.module_["H"].at(torch.as_tensor(t / self.duration_, dtype=torch.float32, device=self.device_))
        H = H.T.contiguous()  # (n_times, K)
        return H if isinstance(times, torch.Tensor) else H.cpu().numpy()

    def fit_activations(self, X: Any, *, freqs: Any, max_iter: int = 500, tol: float = 1e-4) -> Any:
        """Activations of new data with the dictionary frozen, at any STFT size.

        The atoms are sampled at ``freqs`` and the activations found by
        multiplicative updates for this model's divergence
        (:meth:`deepnmf.NMF.transform`).

        Parameters
        ----------
        X : array-like [shape=(n_frames, n_freqs)]
        freqs : array-like [shape=(n_freqs,)]
            Frequencies in Hz of the columns of ``X``.
        max_iter : int
        tol : float

        Returns
        -------
        H : array [shape=(n_frames, n_components)]
            Same kind as ``X``.
        """
        from deepnmf.models.nmf import NMF

        self._check_is_fitted()
        Xt, kind = as_tensor(X, name="X", device=self.device_)
        check_finite_nonnegative(Xt, "X")
        f = self._check_freqs(freqs, Xt.shape[1], 2 * self.nyquist_)
        W = self.dictionary_at(torch.as_tensor(f)).to(Xt.dtype)
        est = NMF.from_components(W, beta_loss=BETA_LOSS[self._loss()], max_iter=max_iter, tol=tol, device=str(self.device_))
        return to_kind(est.transform(Xt), kind)

    def transform(self, X: Any) -> Any:
        """Activations of ``X`` ``(n_frames, n_features_in_)`` on the fitted bins ``freqs_``."""
        self._check_is_fitted()
        n_features = as_tensor(X, name="X")[0].shape[1]
        if n_features != self.n_features_in_:
            raise DataError(f"X has {n_features} features, but ImplicitNMF is expecting {self.n_features_in_} "
                            "features as input (its fitted bins); use fit_activations(X, freqs=) at another size")
        return self.fit_activations(X, freqs=self.freqs_)

    def inverse_transform(self, X: Any) -> Any:
        """Reconstruction ``X @ components_`` of activations ``X`` (scikit-learn's argument name).

        Parameters
        ----------
        X : array [shape=(n_frames, n_components)]
            Activations.

        Returns
        -------
        X_hat : array [shape=(n_frames, n_features_in_)]
        """
        self._check_is_fitted()
        Ht, kind = as_tensor(X, name="X", dtype=self._W.dtype, device=self._W.device)
        if Ht.shape[1] != self.n_components_:
            raise DataError(f"X has {Ht.shape[1]} columns but the model has {self.n_components_} components")
        return to_kind(Ht @ self._W, kind)

    def reconstruct_at(self, t: Any, f: Any, *, grid: bool = False) -> np.ndarray:
        """The model ``sum_k W_k(f) H_k(t)`` at given coordinates.

        Parameters
        ----------
        t : array-like [shape=(n,)]
            ``"points"`` mode: times in seconds. ``"grid"`` mode: integer
            indices of fitted frames (rows of ``activations_``).
        f : array-like [shape=(n,)] (or ``(m,)`` with ``grid=True``)
            Frequencies in Hz.
        grid : bool
            ``False``: paired points, result ``(n,)``. ``True``: every ``t``
            with every ``f``, result ``(len(t), len(f))``.

        Returns
        -------
        V : np.ndarray [shape=(n,) or (len(t), len(f))]
        """
        self._check_is_fitted()
        W = np.asarray(self.dictionary_at(np.asarray(f, dtype=np.float64)))  # (K, n_f)
        if self.mode == "points":
            H = np.asarray(self.activations_at(np.asarray(t, dtype=np.float64)))  # (n_t, K)
        else:
            idx = np.asarray(t)
            if not np.issubdtype(idx.dtype, np.integer) or idx.min(initial=0) < 0 or idx.max(initial=0) >= self._H.shape[0]:
                raise DataError(f"grid mode: t must be frame indices in [0, {self._H.shape[0]})")
            H = self._H.cpu().numpy()[idx]
        if grid:
            return H @ W
        if H.shape[0] != W.shape[1]:
            raise DataError(f"t and f must have the same length for paired points, got {H.shape[0]} and {W.shape[1]}")
        return np.einsum("nk,kn->n", H, W)

    # ------------------------------------------------------------- save/load
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"{name}.theta": net.theta.detach() for name, net in self.module_.items()}
        tensors.update({f"{name}.phase": net.phase for name, net in self.module_.items()})
        if self.mode == "grid":
            tensors["activations"] = self._H
        return tensors

    def _state_json(self) -> dict[str, Any]:
        state = super()._state_json()
        state.update(nyquist_=self.nyquist_, duration_=getattr(self, "duration_", None),
                     freqs_=[float(v) for v in self.freqs_], reconstruction_err_=float(self.reconstruction_err_))
        return state

    def _set_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        device = self._restore_common(state)
        self._check_params()
        names = ("W",) if self.mode == "grid" else ("W", "H")
        nets = torch.nn.ModuleDict({n: self._new_factor(make_generator(0), device) for n in names})
        for name, net in nets.items():
            theta, phase = tensors[f"{name}.theta"], tensors[f"{name}.phase"]
            if theta.shape != net.theta.shape or phase.shape != net.phase.shape:
                raise ModelFileError(f"saved {name} network does not match n_components/n_octaves/hidden")
            with torch.no_grad():
                net.theta.copy_(theta)
                net.phase.copy_(phase)
        self.module_ = nets
        self.nyquist_, self.duration_ = float(state["nyquist_"]), state.get("duration_")
        self.freqs_ = np.asarray(state["freqs_"], dtype=np.float64)
        self._input_kind = as_tensor(np.zeros((1, 1), dtype=np.float32))[1]
        H = tensors["activations"].to(device) if self.mode == "grid" else None
        with torch.no_grad():
            W = nets["W"].at(self._norm_f(self.freqs_, device))
        self._finish(self.loss_curve_ or [float(state.get("reconstruction_err_", np.nan))], W, H)
        self.n_iter_ = int(state.get("n_iter_", 0))
