"""The built-in demo: KL-NMF on the spectrogram of generated harmonic notes, compared with the truth.

Orientation: the magnitude spectrogram ``X`` is ``(n_frames, n_bins)``;
``X ~ W @ H`` with the activations ``W`` ``(n_frames, n_notes)`` and the
learned note spectra ``H = components_`` ``(n_notes, n_bins)``.

The notes are known (:func:`deepnmf.datasets.synthetic.harmonic_notes`), so
the summary says how close the learned atoms are to each note's spectrum
(cosine, after matching) and the activations to each note's on/off gate
(correlation).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from deepnmf.callbacks import Callback, stage_reporter
from deepnmf.pipelines._common import write_json

N_FFT, HOP = 1024, 256


def _truth_match(sig: Any, model: Any, W: np.ndarray, n_frames: int) -> tuple[np.ndarray, list[float]]:
    """Cosine of each true note spectrum to its matched atom, and each note's gate-activation correlation."""
    import torch

    from deepnmf.audio.tf import magnitude, stft
    from deepnmf.matching import match_components

    truth = np.stack([magnitude(stft(torch.from_numpy(s), n_fft=N_FFT, hop=HOP)).numpy().sum(0) for s in sig.sources])
    order, cosines = match_components(truth, model.components_)
    gates = sig.gates[:, ::HOP][:, :n_frames]
    corr = [float(np.corrcoef(gates[i, : W.shape[0]], W[: gates.shape[1], order[i]])[0, 1]) for i in range(len(order))]
    return cosines, corr


def run_demo(out: str | Path, *, seed: int = 0, n_notes: int = 4, max_iter: int = 300,
             callback: Callback | None = None) -> dict:
    """Factorise the magnitude spectrogram of generated harmonic notes and compare with the truth.

    Parameters
    ----------
    out : str or Path
        Folder written: ``nmf.png`` (data, reconstruction, atoms, activations,
        objective), ``notes.wav``, ``model/`` (the fitted NMF) and ``summary.json``.
    seed : int
        Seed of the generated notes and of the model.
    n_notes : int
        Number of notes, and the NMF rank.
    max_iter : int
        Multiplicative-update iterations at most (tolerance 1e-5).
    callback : callable, optional
        Receives the NMF's :class:`~deepnmf.callbacks.EpochInfo` records (``stage="demo"``).

    Returns
    -------
    summary : dict
        What ``summary.json`` holds.
    """
    from deepnmf.audio.io import save_audio
    from deepnmf.audio.tf import frame_times, magnitude, stft, stft_freqs
    from deepnmf.datasets.synthetic import harmonic_notes
    from deepnmf.models.factory import make_estimator
    from deepnmf.plotting.nmf import factorisation_figure

    out = Path(out)
    sig = harmonic_notes(n_notes, seed=seed)
    X = magnitude(stft(sig.audio, n_fft=N_FFT, hop=HOP)).numpy().astype(np.float64)  # (frames, bins)
    model = make_estimator("nmf", n_notes, beta_loss="kullback-leibler", max_iter=max_iter, tol=1e-5, random_state=seed)
    t0 = time.perf_counter()  # the fit alone (building the model imports its module)
    W = model.fit_transform(X, callback=stage_reporter(callback, "demo"))  # (frames, n_notes)
    seconds = time.perf_counter() - t0
    cosines, corr = _truth_match(sig, model, W, X.shape[0])
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / "notes.wav", sig.audio, sig.sr)
    model.save(out / "model")
    figure = factorisation_figure(
        X, model.components_, W, model.loss_curve_, out / "nmf.png",
        freqs=stft_freqs(N_FFT, sig.sr), times=frame_times(X.shape[0], HOP, sig.sr), title="KL-NMF",
    )
    summary = {
        "data": {"kind": "generated harmonic notes", "n_notes": n_notes, "pitches_hz": sig.pitches.round(2).tolist(),
                 "sr": sig.sr, "n_fft": N_FFT, "hop": HOP, "shape": list(X.shape), "seed": seed},
        "model": {"type": "NMF", "beta_loss": "kullback-leibler", "rank": n_notes, "n_iter": model.n_iter_},
        "objective": {"initial": model.loss_curve_[0], "final": model.loss_curve_[-1]},
        "atom_cosine_to_truth": cosines.round(4).tolist(),
        "mean_atom_cosine": float(cosines.mean()),
        "activation_correlation_to_truth": [round(c, 4) for c in corr],
        "fit_seconds": round(seconds, 3),
        "files": {"figure": figure.name, "audio": "notes.wav", "model": "model/"},
    }
    write_json(out / "summary.json", summary)
    return summary
