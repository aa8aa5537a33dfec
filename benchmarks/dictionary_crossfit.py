"""How well each dictionary of an enhancement run explains its own class and the other one.

A diagnostic of the dictionaries that ``deepnmf experiment enhancement`` caches
(``OUT/models/KIND/speech`` and ``OUT/models/KIND/noise-NAME``), for the NMF and
VAE-NMF kinds side by side: the frames of each class are refitted against each
frozen dictionary (the KL multiplicative updates of
:func:`deepnmf.pipelines.enhancement.frozen_activations`, 200 iterations), and the
generalised KL divergence per element of the fit is reported. A speech
dictionary that fits speech well and noise badly (and the reverse for a noise
dictionary) leaves the activation network less to untangle.

It chooses nothing: the defaults are chosen on validation speakers
(``tune_enhancement_networks.py``). Speech frames come from ``--speech`` (by
default the test speakers' ``si``/``sx`` utterances, which no model was trained
on); noise frames from the *test part* of each noise file as the experiment
splits it (``split_excerpt``), which no dictionary was trained on.

Example::

    python benchmarks/dictionary_crossfit.py --models OUT/seed-3/models OUT/seed-4/models \\
        --noise factory2=../shared/data/noise/noisex-excerpts/factory2.wav
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from deepnmf.audio.io import list_audio_files, load_audio
from deepnmf.audio.mixing import split_excerpt
from deepnmf.datasets.paths import shared_data_dir
from deepnmf.divergences import beta_divergence
from deepnmf.experiments.enhancement import EnhancementConfig, _magnitudes
from deepnmf.io.model_files import load_model
from deepnmf.pipelines.enhancement import frozen_activations

KINDS = ("nmf", "vae-nmf")


def kl_per_element(frames: torch.Tensor, dictionary: np.ndarray) -> float:
    """Generalised KL per element of ``frames`` ``(n, n_bins)`` refitted against ``dictionary`` ``(k, n_bins)``."""
    H = torch.as_tensor(dictionary, dtype=torch.float64)
    W = frozen_activations(frames, H, max_iter=200)
    return float(beta_divergence(frames, W @ H, 1.0)) / frames.numel()


def speech_frames(paths: list[str]) -> torch.Tensor:
    """Magnitude frames ``(n, 257)`` of the utterances (the experiment's STFT), the SA sentences left out."""
    files = [f for f in list_audio_files(*paths) if not f.name.lower().startswith("sa")]
    signals = [load_audio(f, sr=16000)[0] for f in files]
    return torch.cat(_magnitudes(signals)).double()


def noise_frames(path: str) -> torch.Tensor:
    """Magnitude frames of the test part of a noise file, as the experiment splits it."""
    x, _ = load_audio(path, sr=16000)
    cfg = EnhancementConfig(train_speech=[], test_speech=[], noises=[path], out="unused")
    _, test = split_excerpt(x.size, train_samples=cfg.noise_frames * 128, max_train_fraction=cfg.max_train_fraction)
    return _magnitudes([x[test]])[0].double()


def crossfit(models: Path, speech: torch.Tensor, noises: dict[str, torch.Tensor]) -> dict:
    """``{kind: {dictionary: {class: KL per element}}}`` for the cached dictionaries under ``models``."""
    out: dict = {}
    for kind in KINDS:
        dicts = {"speech": models / kind / "speech", **{n: models / kind / f"noise-{n}" for n in noises}}
        out[kind] = {}
        for name, folder in dicts.items():
            W = load_model(folder).components_
            out[kind][name] = {"speech": kl_per_element(speech, W),
                               **{n: kl_per_element(v, W) for n, v in noises.items()}}
    return out


def main() -> None:
    root = shared_data_dir(must_exist=False)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="OUT/models folders of enhancement runs")
    p.add_argument("--speech", nargs="+",
                   default=[str(root / "speech" / "timit-sample" / s) for s in ("dr6-fapb0", "dr6-mbma1")])
    p.add_argument("--noise", nargs="+", required=True, help="NAME=FILE, NAME as in the runs' noise dictionaries")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    torch.set_num_threads(1)
    speech = speech_frames(a.speech)
    noises = {}
    for spec in a.noise:
        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"--noise takes NAME=FILE, got {spec!r}")
        noises[name] = noise_frames(path)
    results = {}
    for folder in a.models:
        res = results[folder] = crossfit(Path(folder), speech, noises)
        for kind in KINDS:
            for dname, fits in res[kind].items():
                cells = "  ".join(f"on {c} {v:.4f}" for c, v in fits.items())
                print(f"{folder}  {kind:8s} {dname:9s} dictionary: {cells}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"args": vars(a), "kl_per_element": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
