r"""Supervised source separation with one nonnegative dictionary per source.

Orientation (the package's, scikit-learn's): spectrograms are ``(n_frames,
n_bins)``; source ``i`` has a dictionary ``H_i`` ``(K_i, n_bins)`` (its
estimator's ``components_``) learned from an example recording of it. The
mixture's compressed magnitude ``V = |STFT(x)| ** p`` ``(n_frames, n_bins)``
is explained as ``V ~ W @ H`` by the stacked dictionary ``H`` (activations
``W`` ``(n_frames, sum K_i)`` by multiplicative updates, dictionary frozen);
each source's part ``S_i = W_i H_i`` gives a mask

.. math::

    M_i = \frac{S_i}{\sum_j S_j}, \qquad
    \hat X_i = (M_i \, V)^{1/p} \, e^{j \angle X}

and the masked spectrogram, with the mixture's phase, is inverted.

Dictionaries can come from :class:`deepnmf.NMF` (one per STFT size: the
atoms only exist at the bins they were learned on) or from
:class:`deepnmf.ImplicitNMF` (learned once, sampled at the bins of any STFT
size).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from deepnmf.callbacks import Callback, stage_reporter
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.pipelines._common import COMPILE_NOTICE, send_notice

MODELS = ("nmf", "implicit")


#: iN-NMF source dictionaries train until the loss falls by less than this (relative) over 100 epochs ...
IMPLICIT_TOL = 1e-3
#: ... or for at most this many epochs
IMPLICIT_MAX_EPOCHS = 5000


def wiener_masks(parts: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """Masks ``S_i / sum_j S_j`` of nonnegative source estimates.

    Parameters
    ----------
    parts : torch.Tensor [shape=(n_sources, n_frames, n_bins)]

    Returns
    -------
    masks : torch.Tensor [shape=(n_sources, n_frames, n_bins)]
        In [0, 1], summing to 1 over sources (equal shares where all parts are 0).
    """
    if parts.ndim < 2 or parts.shape[0] < 1:
        raise DataError(f"parts must be (n_sources, ...), got shape {tuple(parts.shape)}")
    if bool((parts < 0).any()):
        raise DataError("source estimates must be nonnegative")
    total = parts.sum(dim=0, keepdim=True)
    share = torch.full_like(parts, 1.0 / parts.shape[0])
    return torch.where(total > eps, parts / total.clamp_min(eps), share)


def atoms_at(source: Any, *, n_fft: int, sr: float) -> torch.Tensor:
    """The dictionary of one source at the bins of an ``n_fft``-point STFT.

    Parameters
    ----------
    source : array-like [shape=(n_components, n_fft // 2 + 1)], fitted NMF or ImplicitNMF
        An explicit dictionary, an estimator with ``components_`` on these
        bins, or an :class:`~deepnmf.ImplicitNMF` (sampled at the bins).

    Returns
    -------
    H : torch.Tensor [shape=(n_components, n_fft // 2 + 1), float64]
    """
    from deepnmf.audio.tf import stft_freqs

    n_bins = n_fft // 2 + 1
    if hasattr(source, "dictionary_at"):
        H = source.dictionary_at(stft_freqs(n_fft, sr))
    elif hasattr(source, "components_"):
        H = source.components_
    else:
        H = source
    H = torch.as_tensor(np.asarray(H.detach().cpu() if isinstance(H, torch.Tensor) else H), dtype=torch.float64)
    if H.ndim != 2 or H.shape[1] != n_bins:
        raise DataError(
            f"a dictionary has shape {tuple(H.shape)} but an STFT of size {n_fft} has {n_bins} bins; "
            "NMF dictionaries must be learned at the size used for separation (ImplicitNMF can be sampled at any size)"
        )
    if not bool(torch.isfinite(H).all()) or bool((H < 0).any()):
        raise DataError("dictionaries must be finite and nonnegative")
    return H


def separate(
    mixture: Any,
    sources: Sequence[Any],
    *,
    sr: float,
    n_fft: int,
    hop: int | None = None,
    window: str = "sqrt-hann",
    power: float = 0.5,
    beta_loss: str | float = "kullback-leibler",
    max_iter: int = 200,
    tol: float = 1e-4,
) -> np.ndarray:
    """Separate a mono mixture with one dictionary per source.

    Parameters
    ----------
    mixture : array-like [shape=(n_samples,)]
    sources : sequence of dictionaries or fitted estimators
        One per source (see :func:`atoms_at`).
    sr : float
        Sampling rate in Hz.
    n_fft : int
        STFT size used for separation.
    hop : int, optional
        Default ``n_fft // 2``.
    window : str
        Analysis/synthesis window (sqrt-Hann with hop ``n_fft // 2`` reconstructs exactly).
    power : float
        Exponent ``p`` of the magnitudes the dictionaries model.
    beta_loss : str or float
        Divergence used to fit the mixture's activations.
    max_iter, tol : int, float
        Multiplicative updates for the activations.

    Returns
    -------
    estimates : np.ndarray [shape=(n_sources, n_samples)]
        Source estimates in the order of ``sources``. (With ``power != 1``
        they do not sum exactly to the mixture: the masks share ``|X| ** p``,
        not ``|X|``.)
    """
    from deepnmf.audio.tf import istft, stft
    from deepnmf.models.nmf import NMF

    x = _mono(mixture, "mixture")
    if len(sources) < 2:
        raise ParameterError(f"separation needs at least two sources, got {len(sources)}")
    if not power > 0:
        raise ParameterError(f"power must be > 0, got {power}")
    hop = hop or n_fft // 2
    Hs = [atoms_at(s, n_fft=n_fft, sr=sr) for s in sources]  # dictionaries, (K_i, n_bins) each
    S = stft(torch.from_numpy(x), n_fft=n_fft, hop=hop, window=window)  # (n_frames, n_bins) complex
    V = S.abs().pow(power)  # (n_frames, n_bins)
    W = NMF.from_components(torch.cat(Hs), beta_loss=beta_loss, max_iter=max_iter, tol=tol).transform(V)  # (n_frames, sum K_i)
    bounds = np.cumsum([0] + [H.shape[0] for H in Hs])
    parts = torch.stack([W[:, a:b] @ H for a, b, H in zip(bounds[:-1], bounds[1:], Hs)])  # (n_src, n_frames, n_bins)
    masks = wiener_masks(parts)
    phase = torch.exp(1j * torch.angle(S))
    out = [istft((m * V).pow(1.0 / power) * phase, n_fft=n_fft, hop=hop, window=window, length=x.size) for m in masks]
    return torch.stack(out).numpy()


def _mono(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{name} must be a non-empty mono signal (1-D), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite samples")
    if not np.any(arr):
        raise DataError(f"{name} is silent")
    return arr


def compressed_spectrogram(x: Any, *, n_fft: int, hop: int | None = None, window: str = "sqrt-hann",
                           power: float = 0.5) -> np.ndarray:
    """``|STFT(x)| ** power`` as float64, ``(n_frames, n_fft // 2 + 1)``; hop defaults to ``n_fft // 2``."""
    from deepnmf.audio.tf import stft

    sig = _mono(x, "signal")
    S = stft(torch.from_numpy(sig), n_fft=n_fft, hop=hop or n_fft // 2, window=window)
    return S.abs().pow(power).numpy()


def learn_source_model(
    example: Any,
    *,
    sr: float,
    model: str = "nmf",
    n_fft: int = 2000,
    rank: int = 20,
    power: float = 0.5,
    window: str = "sqrt-hann",
    max_iter: int = 500,
    max_epochs: int = IMPLICIT_MAX_EPOCHS,
    tol: float = IMPLICIT_TOL,
    random_state: Any = None,
    device: str = "cpu",
    verbose: int = 0,
    callback: Callback | None = None,
    compile: bool = False,  # noqa: A002 - ImplicitNMF's parameter
):
    """Learn one source's dictionary from an example recording (KL on ``|STFT| ** power``).

    Parameters
    ----------
    example : array-like [shape=(n_samples,)]
    sr : float
    model : {"nmf", "implicit"}
        :class:`deepnmf.NMF` (``max_iter`` multiplicative updates; usable at
        ``n_fft`` only) or :class:`deepnmf.ImplicitNMF` (``max_epochs`` Rprop
        steps; usable at any size), built by :func:`deepnmf.models.make_estimator`.
    n_fft : int
        STFT size of the training spectrogram (hop ``n_fft // 2``).
    rank : int
    power, window
        As in :func:`separate`.
    max_iter, max_epochs, random_state, device, verbose
        Passed to the estimator (``max_iter`` to NMF, ``max_epochs`` to ImplicitNMF).
    tol : float
        ImplicitNMF: stop once the loss falls by less than ``tol`` (relative)
        over 100 epochs, within ``max_epochs`` (0: every epoch). The defaults
        (:data:`IMPLICIT_TOL`, :data:`IMPLICIT_MAX_EPOCHS`) were chosen for
        held-out speaker pairs to separate as well as NMF (docs/implicit-nmf.md).
    callback : callable, optional
        Called with a :class:`deepnmf.callbacks.EpochInfo` per iteration or epoch
        during training (``info.loss``); ``True`` stops it.
    compile : bool
        ImplicitNMF only: train with :func:`torch.compile` (see :class:`deepnmf.ImplicitNMF`).

    Returns
    -------
    estimator : NMF or ImplicitNMF (fitted)
        Its ``components_`` ``(rank, n_fft // 2 + 1)`` is the dictionary ``H``.
    """
    from deepnmf.audio.tf import stft_freqs
    from deepnmf.models.factory import make_estimator

    if model not in MODELS:
        raise ParameterError(f"model must be one of {MODELS}, got {model!r}")
    V = compressed_spectrogram(example, n_fft=n_fft, window=window, power=power)  # (n_frames, n_bins)
    common = {"random_state": random_state, "device": device, "verbose": verbose}
    if model == "nmf":
        est = make_estimator("nmf", rank, beta_loss="kullback-leibler", max_iter=max_iter, tol=1e-4, **common)
        return est.fit(V, callback=callback)
    est = make_estimator("implicit", rank, loss="kl", max_epochs=max_epochs, tol=tol, compile=compile, **common)
    return est.fit(V, freqs=stft_freqs(n_fft, sr), sr=sr, callback=callback)


def source_seeds(random_state: Any, n_sources: int) -> list[int | None]:
    """The seed of each source's dictionary: source ``i`` (1-based) gets ``random_state + i``.

    ``None`` leaves every dictionary unseeded; a :class:`numpy.random.Generator`
    draws the base seed. This is the rule of :func:`separate_with_examples`
    and of ``deepnmf separate --seed``.
    """
    if random_state is None:
        return [None] * n_sources
    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ParameterError(f"random_state must be an int, a numpy Generator or None, got {random_state!r}")
    return [int(random_state) + i for i in range(1, n_sources + 1)]


def learn_source_models(examples: Sequence[Any], *, sr: float, model: str = "nmf", n_fft: int = 2000, rank: int = 20,
                        power: float = 0.5, random_state: Any = None, callback: Callback | None = None,
                        **learn: Any) -> list[Any]:
    """One dictionary per example recording (source ``i`` seeded ``random_state + i``).

    The arguments are those of :func:`separate_with_examples` (``n_fft`` is
    the size the dictionaries are learned at); returns the fitted models in
    the order of ``examples``.
    """
    if learn.get("compile") and model == "implicit":
        send_notice(callback, COMPILE_NOTICE)
    return [learn_source_model(ex, sr=sr, model=model, n_fft=n_fft, rank=rank, power=power, random_state=seed,
                               callback=stage_reporter(callback, f"source {i}"), **learn)
            for i, (ex, seed) in enumerate(zip(examples, source_seeds(random_state, len(examples))), start=1)]


def separate_with_examples(
    mixture: Any,
    examples: Sequence[Any],
    *,
    sr: float,
    model: str = "nmf",
    n_fft: int = 2000,
    train_n_fft: int | None = None,
    rank: int = 20,
    power: float = 0.5,
    random_state: Any = None,
    callback: Callback | None = None,
    return_models: bool = False,
    **learn: Any,
) -> np.ndarray | tuple[np.ndarray, list[Any]]:
    """Learn one dictionary per example recording, then :func:`separate` the mixture.

    Parameters
    ----------
    mixture : array-like [shape=(n_samples,)]
    examples : sequence of array-like [shape=(n_samples_i,)]
        One example recording per source, in the order of the output.
    model : {"nmf", "implicit"}
    n_fft : int
        STFT size of the separation.
    train_n_fft : int, optional
        STFT size the dictionaries are learned at (default ``n_fft``); with
        ``model="implicit"`` it may differ from ``n_fft``.
    random_state : int, numpy Generator or None
        Source ``i`` (1-based) is learned with seed ``random_state + i``
        (:func:`source_seeds`).
    callback : callable, optional
        Receives each dictionary's training records (:class:`~deepnmf.callbacks.EpochInfo`)
        with ``stage="source i"``, and a notice before a compiled training.
    return_models : bool
        Also return the fitted dictionary models.
    **learn
        Passed to :func:`learn_source_model` (``max_epochs``, ``max_iter``,
        ``device``, ``compile``, ``verbose``...).

    Returns
    -------
    estimates : np.ndarray [shape=(n_sources, n_samples)]
    models : list of NMF or ImplicitNMF
        Only with ``return_models=True``, in the order of ``examples``.
    """
    train_n_fft = train_n_fft or n_fft
    if model == "nmf" and train_n_fft != n_fft:
        raise ParameterError(
            f"an NMF dictionary learned at STFT size {train_n_fft} cannot separate at size {n_fft}; "
            "use the same size or model='implicit'"
        )
    if len(examples) < 2:
        raise ParameterError(f"separation needs at least two sources, got {len(examples)}")
    models = learn_source_models(examples, sr=sr, model=model, n_fft=train_n_fft, rank=rank, power=power,
                                 random_state=random_state, callback=callback, **learn)
    estimates = separate(mixture, models, sr=sr, n_fft=n_fft, power=power)
    return (estimates, models) if return_models else estimates
