"""Learn a dictionary (NMF, VAE-NMF or iN-NMF) from audio, EMG or a matrix: the job of ``deepnmf train``.

Orientation (the package's): the training matrix ``X`` is ``(n_samples,
n_features)``, frames x frequency bins for audio, time x channels for EMG
envelopes; the learned dictionary ``H = components_`` is ``(n_components,
n_features)``; ``X ~ W @ H`` with the activations ``W``.

- Audio files or folders become ``|STFT| ** power`` frames
  (:func:`deepnmf.audio.frames.load_matrix`).
- ``.npy`` files hold a nonnegative ``(n_samples, n_features)`` matrix.
- An array (numpy or torch) is used as the matrix; an EMG
  :class:`~deepnmf.emg.io.Recording` (envelopes from
  :func:`deepnmf.emg.preprocess.preprocess`) gives its ``data``.
- iN-NMF needs the frequency of every feature, so it trains on audio only:
  on the STFT grid (``model="implicit"``) or on a hybrid point cloud of the
  recordings, the union of an STFT at a quarter of ``n_fft`` / ``hop``,
  one at ``n_fft`` / ``hop`` and a constant-Q transform
  (``model="implicit-points"``).

:func:`learn_dictionary` returns the fitted estimator and a JSON-able
report; :func:`write_dictionary` writes the model folder, ``train.json``
and the figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnmf.callbacks import Callback, stage_reporter
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.pipelines._common import COMPILE_NOTICE, send_notice, write_json

MODELS = ("nmf", "vae-nmf", "implicit", "implicit-points")
#: likelihood -> (NMF ``beta_loss``, iN-NMF ``loss``): the divergence its negative log-likelihood is
LIKELIHOOD_LOSSES = {
    "gaussian": ("frobenius", "frobenius"),
    "poisson": ("kullback-leibler", "kl"),
    "exponential": ("itakura-saito", "is"),
}
#: the likelihood used when none is given: the models' usual choices (iN-NMF's recipe fits KL; VAE-NMF:
#: Poisson, better dictionaries for speech on validation data and stable training, docs/vae-nmf.md)
DEFAULT_LIKELIHOOD = {"nmf": "gaussian", "vae-nmf": "poisson", "implicit": "poisson", "implicit-points": "poisson"}
NEEDS_FREQUENCIES = ("iN-NMF needs the frequency of every feature: train it on audio files, or call "
                     "deepnmf.ImplicitNMF(...).fit(X, freqs=...) from Python")


@dataclass
class TrainingData:
    """What a dictionary is learned from (:func:`load_training_data`).

    Attributes
    ----------
    X : np.ndarray [shape=(n_samples, n_features)] or deepnmf.audio.points.TFPoints
        The training matrix, or the point cloud of ``model="implicit-points"``.
    summary : dict
        JSON-able description of the data (``kind``, files, sizes, value range).
    freqs : np.ndarray [shape=(n_features,)] or None
        Frequency of each column in Hz (audio matrices only).
    """

    X: Any
    summary: dict[str, Any]
    freqs: np.ndarray | None = None

    def describe(self) -> str:
        """``"251 x 129 data"`` or ``"75996 points"``."""
        if "n_points" in self.summary:
            return f"{self.summary['n_points']} points"
        return f"{self.summary['n_samples']} x {self.summary['n_features']} data"


def check_options(model: str, likelihood: str, rank: int, max_epochs: int) -> None:
    """Clear errors for an unknown model or likelihood and for non-positive sizes."""
    if model not in MODELS:
        raise ParameterError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if likelihood not in LIKELIHOOD_LOSSES:
        raise ParameterError(f"likelihood must be one of {', '.join(LIKELIHOOD_LOSSES)}; got {likelihood!r}")
    if rank < 1 or max_epochs < 1:
        raise ParameterError("rank and max_epochs must be >= 1")


def loss_params(model: str, likelihood: str, beta_loss: str | float | None = None) -> dict[str, Any]:
    """The loss argument of a model for a likelihood: ``beta_loss`` (NMF), ``likelihood`` (VAE-NMF) or ``loss``.

    ``beta_loss`` (NMF only: a divergence name or any real beta) overrides the likelihood.
    """
    if model in ("nmf", "minibatch-nmf"):
        return {"beta_loss": beta_loss if beta_loss is not None else LIKELIHOOD_LOSSES[likelihood][0]}
    extra = {} if beta_loss is None else {"beta_loss": beta_loss}  # the factory says whether the model takes it
    if model == "vae-nmf":
        return {"likelihood": likelihood, **extra}
    return {"loss": LIKELIHOOD_LOSSES[likelihood][1], **extra}


def _paths(inputs: Any) -> list[Path]:
    if isinstance(inputs, (str, Path)):
        return [Path(inputs)]
    return [Path(p) for p in inputs]


def _in_memory(inputs: Any) -> tuple[np.ndarray, dict[str, Any]] | None:
    """An array or an EMG recording given directly: the matrix and its summary (None for paths)."""
    if hasattr(inputs, "channels") and hasattr(inputs, "fs") and hasattr(inputs, "data"):  # an EMG Recording
        return np.asarray(inputs.data), {"kind": "emg", "channels": list(inputs.channels), "fs": float(inputs.fs)}
    if hasattr(inputs, "detach"):  # a torch tensor
        return inputs.detach().cpu().numpy(), {"kind": "matrix"}
    if isinstance(inputs, np.ndarray):
        return inputs, {"kind": "matrix"}
    return None


def _point_cloud(inputs: Any, *, sr: int, n_fft: int, hop: int, power: float) -> TrainingData:
    """Points-mode iN-NMF data: a hybrid cloud of the recordings (one signal, files in order) and its summary."""
    from deepnmf.audio import points as P
    from deepnmf.audio.frames import load_signals

    if _in_memory(inputs) is not None or any(p.suffix.lower() == ".npy" for p in _paths(inputs)):
        raise DataError(NEEDS_FREQUENCIES)
    signals, summary = load_signals(_paths(inputs), sr=sr)
    cloud = P.hybrid(np.concatenate(signals), sr, stfts=((max(16, n_fft // 4), max(1, hop // 4)), (n_fft, hop)),
                     cqt={}, power=power)
    summary.update(n_fft=n_fft, hop=hop, power=power, n_points=len(cloud), groups=list(cloud.groups),
                   min=float(cloud.value.min()), mean=float(cloud.value.mean()), max=float(cloud.value.max()))
    return TrainingData(cloud, summary)


def load_training_data(inputs: Any, *, model: str = "vae-nmf", sr: int = 16000, n_fft: int = 512, hop: int = 128,
                       power: float = 1.0) -> TrainingData:
    """Read (or take) the data a dictionary of ``model`` learns from.

    Parameters
    ----------
    inputs : path, sequence of paths, array-like [shape=(n_samples, n_features)] or Recording
        Audio files or folders (searched recursively), ``.npy`` matrices
        (stacked by rows), an array, or EMG envelopes.
    model : {"nmf", "vae-nmf", "implicit", "implicit-points"}
    sr, n_fft, hop, power
        Audio only: working sampling rate and ``|STFT| ** power`` settings.

    Returns
    -------
    TrainingData
    """
    from deepnmf.audio.frames import load_matrix
    from deepnmf.audio.tf import stft_freqs

    if model == "implicit-points":
        return _point_cloud(inputs, sr=sr, n_fft=n_fft, hop=hop, power=power)
    given = _in_memory(inputs)
    X, summary = given if given is not None else load_matrix(_paths(inputs), sr=sr, n_fft=n_fft, hop=hop, power=power)
    if X.ndim != 2 or X.size == 0:
        raise DataError(f"the training matrix must be a non-empty 2-D array (n_samples, n_features), got shape "
                        f"{X.shape}")
    audio = summary["kind"] == "audio"
    if model == "implicit" and not audio:
        raise DataError(NEEDS_FREQUENCIES)
    summary.update(n_samples=int(X.shape[0]), n_features=int(X.shape[1]),
                   min=float(X.min()), mean=float(X.mean()), max=float(X.max()))
    return TrainingData(X, summary, stft_freqs(summary["n_fft"], summary["sr"]) if audio else None)


def _side_array(value: Any) -> Any:
    """A mask or fixed atoms: an array as given, or read from a ``.npy`` path."""
    from deepnmf.audio.frames import read_npy

    return read_npy(value) if isinstance(value, (str, Path)) else value


def _fit(estimator: Any, model: str, data: TrainingData, callback: Callback | None, fit_arrays: dict) -> dict:
    """Train ``estimator`` on ``data``; the report's final losses.

    ``fit_arrays`` holds the NMF side arrays and the checkpoint arguments of every model's ``fit``.
    """
    if model == "nmf":
        estimator.fit_transform(data.X, callback=callback, **fit_arrays)
        objective = float(estimator.loss_curve_[-1]) if estimator.loss_curve_ else None
        return {"final": {"objective": objective, "reconstruction_err": float(estimator.reconstruction_err_)}}
    if model == "vae-nmf":
        estimator.fit(data.X, callback=callback, **fit_arrays)
        final = {k: v[-1] for k, v in estimator.history_.items()}
        return {"final": final, "best_epoch": estimator.best_epoch_, "stopped_early": estimator.stopped_early_}
    if model == "implicit":
        estimator.fit(data.X, freqs=data.freqs, sr=data.summary["sr"], callback=callback, **fit_arrays)
    else:
        estimator.fit(data.X, callback=callback, **fit_arrays)
    return {"final": {"loss": float(estimator.reconstruction_err_)}}


#: candidate ranks of ``rank="auto"`` (those up to half the smaller side of the data are tried)
AUTO_RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def _select_rank(data: TrainingData, model: str, beta_loss: Any, ranks: Any, fit_arrays: dict, run: dict,
                 params: dict, callback: Callback | None) -> tuple[int, dict[str, Any]]:
    """``rank="auto"``: the rank of :func:`deepnmf.models.select_rank` on the training matrix; (rank, its record)."""
    from deepnmf.models.rank import select_rank

    if model not in ("nmf", "minibatch-nmf"):
        raise ParameterError(f"rank auto (chosen by held-out entries) is for the NMF models; model {model!r} "
                             "needs a number of atoms")
    limit = max(1, min(np.shape(data.X)) // 2)
    ranks = list(ranks) if ranks else [r for r in AUTO_RANKS if r <= limit]
    send_notice(callback, f"choosing the rank among {ranks} by held-out entries", stage="rank")
    run = {k: v for k, v in run.items() if k != "random_state"}
    selection = select_rank(data.X, ranks, beta_loss=beta_loss, mask=fit_arrays.get("mask"), estimator=model,
                            random_state=run.pop("seed"), callback=callback, **run, **params)
    return selection.best_rank, selection.as_dict()


def learn_dictionary(
    inputs: Any,
    *,
    rank: int | str,
    model: str = "vae-nmf",
    likelihood: str | None = None,
    max_epochs: int = 200,
    random_state: int | None = None,
    device: str = "cpu",
    compile: bool = False,  # noqa: A002 - ImplicitNMF's parameter
    sr: int = 16000,
    n_fft: int = 512,
    hop: int = 128,
    power: float = 1.0,
    mask: Any = None,
    fixed_components: Any = None,
    callback: Callback | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    ranks: Any = None,
    **params: Any,
) -> tuple[Any, dict[str, Any]]:
    """Learn a dictionary from audio, a matrix or EMG envelopes.

    Parameters
    ----------
    inputs : paths, array-like [shape=(n_samples, n_features)], Recording or TrainingData
        See :func:`load_training_data`.
    rank : int or "auto"
        Number of atoms; ``"auto"`` (NMF models) chooses it among ``ranks``
        with :func:`deepnmf.models.select_rank` (recorded in the report's
        ``rank_selection``).
    model : {"nmf", "vae-nmf", "implicit", "implicit-points"}
        Built by :func:`deepnmf.models.make_estimator`.
    likelihood : {"gaussian", "poisson", "exponential"}, optional
        The data model; NMF and iN-NMF fit the matching divergence
        (Frobenius, KL, IS). Default gaussian, poisson (KL) for iN-NMF.
    max_epochs : int
        VAE-NMF / iN-NMF epochs, NMF iterations.
    random_state, device, compile
        Passed to the estimator (``compile``: iN-NMF only).
    sr, n_fft, hop, power
        Audio front end (see :func:`load_training_data`).
    mask, fixed_components : array-like or path of a ``.npy``, optional
        NMF only: observed entries (1) and missing ones (0), ``(n_samples,
        n_features)``; atoms held fixed, ``(n_fixed, n_features)``.
    callback : callable, optional
        Receives :class:`deepnmf.callbacks.EpochInfo` records: a notice
        (``epoch=0``, ``message``) before training, then one per epoch or
        iteration with ``stage=model``.
    checkpoint_dir, checkpoint_every, resume
        Training checkpoints (:mod:`deepnmf.checkpoints`): the folder, the
        interval in epochs (iterations for NMF; 0: none) and whether to
        continue from the folder's checkpoint, to the state an uninterrupted
        run with the same seed reaches.
    **params
        Other constructor arguments of the model (NMF: ``beta_loss``
        overriding the likelihood, ``init``, ``tol``, ``alpha_W``, ``alpha_H``,
        ``l1_ratio``; VAE-NMF: ``hidden``, ``lr``...).

    Returns
    -------
    estimator : NMF, VAENMF or ImplicitNMF (fitted)
    report : dict
        ``model``, ``settings`` (with the estimator's parameters), ``data``
        (the data summary), ``n_iter``, ``final`` (last losses), ``seconds``.
    """
    from deepnmf.models.factory import make_estimator

    likelihood = likelihood or DEFAULT_LIKELIHOOD.get(model, "gaussian")
    check_options(model, likelihood, 1 if rank == "auto" else rank, max_epochs)
    data = inputs if isinstance(inputs, TrainingData) else load_training_data(
        inputs, model=model, sr=sr, n_fft=n_fft, hop=hop, power=power)
    fit_arrays = {k: _side_array(v) for k, v in (("mask", mask), ("fixed_components", fixed_components))
                  if v is not None}
    if fit_arrays and model != "nmf":
        raise ParameterError(f"{' and '.join(fit_arrays)} are NMF options; model {model!r} takes neither")
    if checkpoint_dir is not None:
        fit_arrays.update(checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)
        if model == "nmf" and params.get("solver", "auto") == "auto":  # NMF checkpoints resume exactly with
            params["solver"] = "mu"  # the multiplicative updates (FactorCheckpoints); an explicit cd is refused
    elif checkpoint_every or resume:
        raise ParameterError("checkpoint_every and resume need checkpoint_dir, the checkpoint folder")
    losses = loss_params(model, likelihood, params.pop("beta_loss", None))
    selection = None
    if rank == "auto":
        run = {**_run_params(model, max_epochs, random_state, device, compile), "seed": random_state}
        rank, selection = _select_rank(data, model, losses.get("beta_loss"), ranks, fit_arrays, run, params, callback)
    estimator = make_estimator(model, rank, **{**losses, **_run_params(model, max_epochs, random_state, device,
                                                                         compile), **params})
    send_notice(callback, f"training {model} (rank {rank}) on {data.describe()}", stage=model)
    if compile and model.startswith("implicit"):
        send_notice(callback, COMPILE_NOTICE, stage=model)
    start = time.perf_counter()
    result = _fit(estimator, model, data, stage_reporter(callback, model), fit_arrays)
    seconds = time.perf_counter() - start
    settings = {"rank": rank, "max_epochs": max_epochs, "likelihood": likelihood, "seed": random_state,
                "device": device, "params": estimator._json_params()}
    report = {"model": model, "settings": settings, "data": data.summary, "n_iter": int(estimator.n_iter_),
              **result, "seconds": round(seconds, 3)}
    if selection is not None:
        report["rank_selection"] = selection
    return estimator, report


def _run_params(model: str, max_epochs: int, random_state: Any, device: str, compile_: bool) -> dict[str, Any]:
    """Length of training, seed and device in each model's own parameter names."""
    length = {"max_iter": max_epochs} if model in ("nmf", "minibatch-nmf") else {"max_epochs": max_epochs}
    extra = {"compile": compile_} if model.startswith("implicit") else {}
    return {**length, "random_state": random_state, "device": device, **extra}


def dictionary_figures(estimator: Any, out: str | Path, summary: dict[str, Any]) -> list[str]:
    """Training curve (ELBO terms, NMF objective or iN-NMF divergence) and the dictionary image; the paths."""
    from deepnmf.plotting.vae import plot_dictionary, plot_elbo, plot_loss_curve

    out = Path(out)
    paths = []
    implicit = hasattr(estimator, "freqs_")
    if hasattr(estimator, "history_"):
        paths.append(plot_elbo(estimator.history_, out / "elbo.png"))
    else:
        paths.append(plot_loss_curve(estimator.loss_curve_, out / "loss.png",
                                     xlabel="epoch" if implicit else "iteration",
                                     title="iN-NMF mean divergence" if implicit else "NMF objective"))
    freqs, atoms = None, np.asarray(estimator.components_)
    if implicit:  # the atom functions sampled evenly (a point cloud's own frequencies are uneven)
        freqs = np.linspace(0.0, estimator.nyquist_, 1025)
        atoms = estimator.dictionary_at(freqs)
    elif summary.get("kind") == "audio":
        from deepnmf.audio.tf import stft_freqs

        freqs = stft_freqs(summary["n_fft"], summary["sr"])
    paths.append(plot_dictionary(atoms, out / "dictionary.png", freqs=freqs))
    return [str(p) for p in paths]


def write_dictionary(estimator: Any, report: dict[str, Any], out: str | Path, *, figures: bool = True) -> dict:
    """Save the model folder (``weights.safetensors`` + ``config.json``), the figures and ``train.json``.

    Returns the report as written (with ``figures``, the figure paths, when drawn).
    """
    out = Path(out)
    estimator.save(out)
    if figures:
        report = {**report, "figures": dictionary_figures(estimator, out, report["data"])}
    write_json(out / "train.json", report)
    return report
