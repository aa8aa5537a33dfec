"""``deepnmf train``: learn a dictionary (NMF, VAE-NMF or iN-NMF) from audio files, folders or a ``.npy`` matrix.

Audio becomes a magnitude STFT (frames x bins, via :mod:`deepnmf.audio`); a
``.npy`` file must hold a nonnegative ``(n_samples, n_features)`` matrix.
iN-NMF needs the frequencies of its data, so it trains on audio only: on
the STFT grid (``--model implicit``) or on a point cloud of the
recordings, the union of an STFT at a quarter of ``--n-fft`` / ``--hop``,
one at ``--n-fft`` / ``--hop`` and a constant-Q transform
(``--model implicit-points``).
Writes the model folder (``weights.safetensors`` + ``config.json``), a
``train.json`` (settings, data summary, final loss, time) and figures of the
training curve and the dictionary.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer

from deepnmf.audio.frames import load_matrix, load_signals
from deepnmf.cli.app import COMPILE_HELP, announce_compile, app, echo, handle_errors, progress_bar, write_json

MODELS = ("nmf", "vae-nmf", "implicit", "implicit-points")
LIKELIHOOD_TO_BETA = {"gaussian": "frobenius", "poisson": "kullback-leibler", "exponential": "itakura-saito"}
LIKELIHOOD_TO_IMPLICIT = {"gaussian": "frobenius", "poisson": "kl", "exponential": "is"}
#: --likelihood when none is given: the models' usual choices (iN-NMF's recipe fits KL)
NEEDS_FREQUENCIES = ("iN-NMF needs the frequency of every feature: train it on audio files, or call "
                     "deepnmf.ImplicitNMF(...).fit(X, freqs=...) from Python")
DEFAULT_LIKELIHOOD = {"nmf": "gaussian", "vae-nmf": "gaussian", "implicit": "poisson", "implicit-points": "poisson"}


def _fit_vae(X, *, rank, max_epochs, seed, device, likelihood, progress, task):
    from deepnmf.models.vae import VAENMF

    def callback(info):
        val = f" val {info.val['loss']:.4g}" if info.val else ""
        progress.update(task, completed=info.epoch, info=f"loss {info.train['loss']:.4g}{val}")

    model = VAENMF(rank, likelihood=likelihood, max_epochs=max_epochs, random_state=seed, device=device)
    model.fit(X, callback=callback)
    progress.update(task, completed=max_epochs)
    final = {k: v[-1] for k, v in model.history_.items()}
    return model, {"final": final, "best_epoch": model.best_epoch_, "stopped_early": model.stopped_early_}


def _fit_nmf(X, *, rank, max_epochs, seed, device, likelihood, progress, task, nmf=None):
    from deepnmf.models.nmf import NMF

    def callback(info):
        progress.update(task, completed=info.epoch, info=f"objective {info.loss:.4g}")

    nmf = dict(nmf or {})
    arrays = {key: _load_side_array(nmf.pop(key)) for key in ("mask", "fixed_components") if nmf.get(key)}
    nmf = {key: value for key, value in nmf.items() if key not in ("mask", "fixed_components")}
    beta = nmf.pop("beta_loss", None) or LIKELIHOOD_TO_BETA[likelihood]
    model = NMF(rank, beta_loss=beta, max_iter=max_epochs, random_state=seed, device=device, **nmf)
    model.fit_transform(X, callback=callback, **arrays)
    progress.update(task, completed=max_epochs)
    return model, {"final": {"objective": float(model.loss_curve_[-1]) if model.loss_curve_ else None,
                             "reconstruction_err": float(model.reconstruction_err_)}}


def _fit_implicit(data, *, rank, max_epochs, seed, device, likelihood, progress, task, compile_=False):
    """``data``: ``(X, freqs, sr)`` for grid mode or a :class:`deepnmf.audio.points.TFPoints`."""
    from deepnmf.models.implicit import ImplicitNMF

    def callback(info):
        progress.update(task, completed=info.epoch, info=f"loss {info.loss:.4g}")

    mode = "grid" if isinstance(data, tuple) else "points"
    model = ImplicitNMF(rank, mode=mode, loss=LIKELIHOOD_TO_IMPLICIT[likelihood], max_epochs=max_epochs,
                        random_state=seed, device=device, compile=compile_)
    if mode == "grid":
        X, freqs, sr = data
        model.fit(X, freqs=freqs, sr=sr, callback=callback)
    else:
        model.fit(data, callback=callback)
    progress.update(task, completed=max_epochs)
    return model, {"final": {"loss": float(model.reconstruction_err_)}}


def _grid_data(X: np.ndarray, summary: dict[str, Any]):
    """``(X, freqs, sr)`` for grid-mode iN-NMF: the STFT frames and their bins' frequencies."""
    from deepnmf.audio.tf import stft_freqs
    from deepnmf.exceptions import DataError

    if summary["kind"] != "audio":
        raise DataError(NEEDS_FREQUENCIES)
    return X, stft_freqs(summary["n_fft"], summary["sr"]), summary["sr"]


def _point_cloud(inputs: list[Path], *, sr: int, n_fft: int, hop: int, power: float):
    """Points-mode iN-NMF data: a hybrid cloud of the recordings (one signal, files in order) and its summary."""
    from deepnmf.audio import points as P
    from deepnmf.exceptions import DataError

    if any(p.suffix.lower() == ".npy" for p in inputs):
        raise DataError(NEEDS_FREQUENCIES)
    signals, summary = load_signals(inputs, sr=sr)
    cloud = P.hybrid(np.concatenate(signals), sr, stfts=((max(16, n_fft // 4), max(1, hop // 4)), (n_fft, hop)),
                     cqt={}, power=power)
    summary.update(n_fft=n_fft, hop=hop, power=power, n_points=len(cloud), groups=list(cloud.groups),
                   min=float(cloud.value.min()), mean=float(cloud.value.mean()), max=float(cloud.value.max()))
    return cloud, summary


def write_figures(model, out: Path, summary: dict[str, Any]) -> list[str]:
    """Training curve (ELBO terms or NMF objective) and the dictionary image."""
    from deepnmf.plotting.vae import plot_dictionary, plot_elbo, plot_loss_curve

    paths = []
    implicit = hasattr(model, "freqs_")
    if hasattr(model, "history_"):
        paths.append(plot_elbo(model.history_, out / "elbo.png"))
    else:
        paths.append(plot_loss_curve(model.loss_curve_, out / "loss.png", xlabel="epoch" if implicit else "iteration",
                                     title="iN-NMF mean divergence" if implicit else "NMF objective"))
    freqs, atoms = None, np.asarray(model.components_)
    if implicit:  # the atom functions sampled evenly (a point cloud's own frequencies are uneven)
        freqs = np.linspace(0.0, model.nyquist_, 1025)
        atoms = model.dictionary_at(freqs)
    elif summary.get("kind") == "audio":
        from deepnmf.audio.tf import stft_freqs

        freqs = stft_freqs(summary["n_fft"], summary["sr"])
    paths.append(plot_dictionary(atoms, out / "dictionary.png", freqs=freqs))
    return [str(p) for p in paths]


def _check_options(model: str, likelihood: str, rank: int, max_epochs: int) -> None:
    """Clear errors for unknown choices and non-positive sizes."""
    from deepnmf.exceptions import ParameterError

    if model not in MODELS:
        raise ParameterError(f"--model must be one of {', '.join(MODELS)}; got {model!r}")
    if likelihood not in LIKELIHOOD_TO_BETA:
        raise ParameterError(f"--likelihood must be one of {', '.join(LIKELIHOOD_TO_BETA)}; got {likelihood!r}")
    if rank < 1 or max_epochs < 1:
        raise ParameterError("--rank and --max-epochs must be >= 1")


def _load_side_array(path: Path) -> np.ndarray:
    """A mask or a matrix of fixed atoms from a ``.npy`` file."""
    from deepnmf.exceptions import DataError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {str(path)!r} as a numeric .npy array: {err}") from err


def _beta_option(value: Optional[str]) -> Any:
    """``--beta-loss``: a name (frobenius, kullback-leibler, itakura-saito) or a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


@app.command("train")
@handle_errors
def train(
    inputs: List[Path] = typer.Argument(..., help="Audio files or folders, or .npy matrices (n_samples x n_features)."),
    model: str = typer.Option("vae-nmf", "--model",
                              help="nmf | vae-nmf | implicit (iN-NMF on the STFT grid) | implicit-points "
                                   "(iN-NMF on a hybrid point cloud of the recordings)"),
    rank: int = typer.Option(..., "--rank", help="Number of dictionary atoms."),
    out: Path = typer.Option(..., "--out", help="Model folder to write (created)."),
    sr: int = typer.Option(16000, "--sr", help="Working sampling rate for audio."),
    n_fft: int = typer.Option(512, "--n-fft", help="STFT size."),
    hop: int = typer.Option(128, "--hop", help="STFT hop."),
    power: float = typer.Option(1.0, "--power", help="Spectrogram exponent: |STFT|**power."),
    max_epochs: int = typer.Option(200, "--max-epochs", help="VAE-NMF / iN-NMF epochs, NMF iterations."),
    likelihood: Optional[str] = typer.Option(None, "--likelihood",
                                             help="gaussian | poisson | exponential (NMF, iN-NMF: frobenius | KL | "
                                                  "IS); default gaussian, iN-NMF poisson (KL)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the training-curve and dictionary figures."),
    beta_loss: Optional[str] = typer.Option(None, "--beta-loss",
                                            help="NMF: frobenius | kullback-leibler | itakura-saito | any real beta "
                                                 "(overrides --likelihood)."),
    init: Optional[str] = typer.Option(None, "--init", help="NMF: random | nndsvd | nndsvda | nndsvdar."),
    tol: float = typer.Option(1e-4, "--tol", help="NMF: stopping tolerance (0 runs every iteration)."),
    alpha_w: float = typer.Option(0.0, "--alpha-w", help="NMF: penalty weight on the activations."),
    alpha_h: float = typer.Option(0.0, "--alpha-h", help="NMF: penalty weight on the dictionary."),
    l1_ratio: float = typer.Option(0.0, "--l1-ratio", help="NMF: share of L1 in the penalties (0 = L2, 1 = L1)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="NMF: .npy mask of observed entries (1) and missing ones (0)."),
    fixed_components: Optional[Path] = typer.Option(None, "--fixed-components",
                                                    help="NMF: .npy atoms (n_fixed x n_features) held fixed."),
    compile_: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
) -> None:
    """Learn a dictionary from audio (magnitude STFT) or a matrix, save the model and train.json."""
    likelihood = likelihood or DEFAULT_LIKELIHOOD.get(model, "gaussian")
    _check_options(model, likelihood, rank, max_epochs)
    if model == "implicit-points":
        data, summary = _point_cloud(list(inputs), sr=sr, n_fft=n_fft, hop=hop, power=power)
        echo(f"training {model} (rank {rank}) on {summary['n_points']} points")
    else:
        X, summary = load_matrix(list(inputs), sr=sr, n_fft=n_fft, hop=hop, power=power)
        data = _grid_data(X, summary) if model == "implicit" else X
        summary.update(n_samples=int(X.shape[0]), n_features=int(X.shape[1]),
                       min=float(X.min()), mean=float(X.mean()), max=float(X.max()))
        echo(f"training {model} (rank {rank}) on {X.shape[0]} x {X.shape[1]} data")
    nmf_options = {"beta_loss": _beta_option(beta_loss), "init": init, "tol": tol, "alpha_W": alpha_w,
                   "alpha_H": alpha_h, "l1_ratio": l1_ratio, "mask": mask, "fixed_components": fixed_components}
    if model == "vae-nmf":
        fit = _fit_vae
    elif model.startswith("implicit"):
        fit = functools.partial(_fit_implicit, compile_=compile_)
    else:
        fit = functools.partial(_fit_nmf, nmf=nmf_options)
    if compile_ and model.startswith("implicit"):
        announce_compile()
    progress, task = progress_bar(max_epochs, model)
    start = time.perf_counter()
    with progress:
        estimator, result = fit(data, rank=rank, max_epochs=max_epochs, seed=seed, device=device,
                                likelihood=likelihood, progress=progress, task=task)
    seconds = time.perf_counter() - start
    estimator.save(out)
    report = {
        "model": model,
        "settings": {"rank": rank, "max_epochs": max_epochs, "likelihood": likelihood, "seed": seed,
                     "device": device, "params": estimator._json_params()},
        "data": summary,
        "n_iter": int(estimator.n_iter_),
        **result,
        "seconds": round(seconds, 3),
    }
    if figures:
        report["figures"] = write_figures(estimator, out, summary)
    write_json(out / "train.json", report)
    echo(f"saved {model} model to {out} ({estimator.n_iter_} epochs/iterations, {seconds:.1f} s)")
