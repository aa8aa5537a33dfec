"""Choose the enhancement networks' settings on validation data from the training side.

Protocol (never touches the test speakers dr6-*): TIMIT sample speakers
dr1-dr4 train, dr5 validates (10 utterances, 5 per speaker); noises factory2
and babble constructed from six training speakers, each cut like the
experiment (its training part: the first 70 %) and then split again: the
first 60 % of that part trains, the rest gives the validation excerpts.
Validation mixtures at -5/0/5/10 dB; the score is BSS Eval SDR (dB) of the
speech estimate, averaged over utterances, SNRs and noises.

The validation utterances follow the experiment's rule for test utterances
(``--valid-split no-shared``, the default since session 31): a sentence that a
training speaker also reads (TIMIT's ``sa1``/``sa2``) is not taken. Lines
without ``valid_split`` in their ``args`` (sessions before 31) used every other
file of the two speakers in sorted order (``--valid-split every-other``),
which includes each speaker's ``sa1``; only lines of the same split compare.

Each variant is one JSON line appended to ``--out``::

    python benchmarks/tune_enhancement_networks.py --method dnn-mask --objective signal --output joint
    python benchmarks/tune_enhancement_networks.py --method nmf+dnn --objective signal
    python benchmarks/tune_enhancement_networks.py --method vae-nmf+dnn --objective signal --vae '{"likelihood": "poisson"}'
    python benchmarks/tune_enhancement_networks.py --method nmf+mu --mu-gains 0.5:0 0.5:0.3 1:0  # the gain of nmf+mu
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from deepnmf.audio.io import list_audio_files, load_audio
from deepnmf.audio.mixing import babble, mix_at_snr, noise_excerpt
from deepnmf.experiments.enhancement import _pick_test
from deepnmf.metrics import bss_eval
from deepnmf.models.factory import make_estimator
from deepnmf.pipelines.enhancement import Enhancer, STFTSettings
from deepnmf.pipelines.enhancement_baselines import MaskEnhancer
from deepnmf.pipelines.frame_networks import LOSS_SCALES

DATA = Path(os.environ.get("DEEPNMF_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TRAIN = ["dr1-fvmh0", "dr1-mcpm0", "dr2-faem0", "dr2-marc0", "dr3-falk0", "dr3-madc0", "dr4-falr0", "dr4-maeb0"]
VALID = ["dr5-ftlg0", "dr5-mbgt0"]
SNRS = (-5.0, 0.0, 5.0, 10.0)


def _files(name: str) -> list[Path]:
    return list_audio_files(DATA / "speech" / "timit-sample" / name)


def _read(files: list[Path]) -> list[np.ndarray]:
    return [load_audio(f, sr=16000, dtype=np.float64)[0] for f in files]


def validation_files(split: str = "no-shared") -> list[Path]:
    """The 10 validation utterances of the dr5 speakers (see the module docstring for ``split``)."""
    if split == "every-other":
        return [f for s in VALID for f in _files(s)][::2]
    if split != "no-shared":
        raise ValueError(f"unknown validation split {split!r}")
    return _pick_test([f for s in VALID for f in _files(s)], 10, [f for s in TRAIN for f in _files(s)])


def load(noises: list[str], split: str = "no-shared") -> dict:
    """Training and validation speech, and per noise its (train, validation) parts."""
    train = {s: _read(_files(s)) for s in TRAIN}
    valid = _read(validation_files(split))
    parts = {}
    for name in noises:
        if name == "babble":
            x = babble([np.concatenate(v) for v in list(train.values())[:6]], 60 * 16000, random_state=0)
        else:
            x = load_audio(DATA / "noise" / "noisex-excerpts" / f"{name}.wav", sr=16000, dtype=np.float64)[0]
        x = x[: int(0.7 * x.size)]
        cut = int(0.6 * x.size)
        parts[name] = (x[:cut], x[cut:])
    return {"train": [u for v in train.values() for u in v], "valid": valid, "noises": parts}


def dictionaries(data: dict, noise: str, kind: str = "nmf", vae: dict | None = None, seed: int = 0,
                 noise_kind: str | None = None, noise_vae: dict | None = None):
    """Speech (10000 random training frames) and noise dictionaries, rank 40: KL-NMF (200 iterations)
    or VAE-NMF with the parameters ``vae``; ``noise_kind`` (default ``kind``) for the noise dictionary alone,
    ``noise_vae`` VAE-NMF parameters that replace those of ``vae`` for the noise dictionary alone."""
    stft = STFTSettings()
    V = torch.cat([stft.stft(x).abs() for x in data["train"]]).numpy()
    V = V[np.sort(np.random.default_rng(seed).choice(V.shape[0], min(10000, V.shape[0]), replace=False))]
    N = stft.stft(data["noises"][noise][0]).abs().numpy()
    kinds = (kind, noise_kind or kind)
    params = (dict(vae or {}), {**(vae or {}), **(noise_vae or {})})
    return tuple(make_estimator(k, 40, random_state=seed + i,
                                **({"beta_loss": "kullback-leibler", "max_iter": 200} if k == "nmf" else params[i])).fit(X)
                 for i, (k, X) in enumerate(zip(kinds, (V, N))))


def validate(enhancer, data: dict, noise: str) -> dict[float, float]:
    """Mean SDR per SNR of ``enhancer`` on the validation mixtures."""
    out = {}
    for snr in SNRS:
        sdrs = []
        for j, s in enumerate(data["valid"]):
            y, s2, n = mix_at_snr(s, noise_excerpt(data["noises"][noise][1], s.size, random_state=1000 + j), snr)
            est = enhancer.enhance(y)
            sdrs.append(float(bss_eval(np.stack([s2, n]), np.stack([est, n]))["sdr"][0]))
        out[snr] = float(np.mean(sdrs))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="dnn-mask", choices=["dnn-mask", "nmf+dnn", "vae-nmf+dnn", "nmf+mu"])
    p.add_argument("--vae", default='{"likelihood": "poisson", "max_epochs": 30, "early_stopping": false}',
                   help="vae-nmf+dnn: VAENMF parameters as JSON")
    p.add_argument("--noise-dictionary", default=None, choices=["nmf", "vae-nmf"],
                   help="+dnn: the noise dictionary's kind when it differs from the speech one's (a diagnostic)")
    p.add_argument("--vae-noise", default=None,
                   help="vae-nmf+dnn: VAENMF parameters as JSON that replace --vae's for the noise dictionary alone")
    p.add_argument("--noises", nargs="+", default=["factory2", "babble"])
    p.add_argument("--objective", default=None, help="dnn-mask: mask|signal|phase; nmf+dnn: activations|signal|phase")
    p.add_argument("--output", default="sigmoid", help="dnn-mask: sigmoid|joint")
    p.add_argument("--recurrent", default=None)
    p.add_argument("--noise-aware", action="store_true")
    p.add_argument("--noise-window", type=int, default=0, help="noise-aware: frames on each side of a running noise estimate")
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--context", type=int, default=2)
    p.add_argument("--context-bands", type=int, default=0, help="the context frames and noise estimate in this many bands (0: every bin)")
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--discriminative", type=float, default=0.0)
    p.add_argument("--gain-range", type=float, nargs=2, default=(0.0, 0.0))
    p.add_argument("--speed-range", type=float, nargs=2, default=(1.0, 1.0))
    p.add_argument("--max-mixtures", type=int, default=None)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--loss-scale", default="mixture", choices=LOSS_SCALES,
                   help="units of each training mixture in the signal-approximation loss")
    p.add_argument("--networks", type=int, default=1, help="dnn-mask: an ensemble of this many networks")
    p.add_argument("--seed", type=int, default=0, help="seeds the dictionaries, mixtures and networks")
    p.add_argument("--exponents", type=float, nargs="+", default=[1.0],
                   help="gain exponents at enhancement time to score (the trained model is shared)")
    p.add_argument("--mu-gains", nargs="+", default=["0.5:0"],
                   help="nmf+mu: the gains POWER:FLOOR[:EXPONENT] to score (200 multiplicative updates on the NMF dictionaries)")
    p.add_argument("--valid-split", default="no-shared", choices=["no-shared", "every-other"],
                   help="validation utterances: without the sentences training speakers read (default), or the "
                        "pre-session-31 every other file (SA1 included)")
    p.add_argument("--out", default="benchmarks/results/tune_enhancement_networks.jsonl")
    a = p.parse_args()
    data = load(a.noises, a.valid_split)
    if a.method == "nmf+mu":
        return _mu_gains(a, data)
    hidden = tuple(int(h) for h in a.hidden.split(","))
    common = dict(n_copies=a.copies, context=a.context, context_bands=a.context_bands, hidden=hidden, epochs=a.epochs, batch_size=a.batch_size,
                  lr=a.lr, lr_schedule=a.lr_schedule, recurrent=a.recurrent, noise_aware=a.noise_aware, noise_window=a.noise_window, discriminative=a.discriminative,
                  gain_range=tuple(a.gain_range), speed_range=tuple(a.speed_range), max_mixtures=a.max_mixtures,
                  dropout=a.dropout, loss_scale=a.loss_scale, random_state=a.seed)
    by_exponent, seconds = {}, {}
    for noise in a.noises:
        t0 = time.perf_counter()
        if a.method == "dnn-mask":
            enh = MaskEnhancer().fit(data["train"], data["noises"][noise][0], objective=a.objective or "mask",
                                     output=a.output, n_networks=a.networks, **common)
        else:
            speech, noise_model = dictionaries(data, noise, a.method.split("+")[0], json.loads(a.vae), seed=a.seed,
                                               noise_kind=a.noise_dictionary,
                                               noise_vae=json.loads(a.vae_noise) if a.vae_noise else None)
            enh = Enhancer(speech, noise_model, power=1.0).fit_network(
                data["train"], data["noises"][noise][0], objective=a.objective or "activations", **common)
        seconds[noise] = round(time.perf_counter() - t0, 1)
        for e in a.exponents:
            enh.exponent = e
            by_exponent.setdefault(str(e), {})[noise] = {str(k): round(v, 2) for k, v in validate(enh, data, noise).items()}
    scores = by_exponent[str(a.exponents[0])]
    avg = float(np.mean([v for s in scores.values() for v in s.values()]))
    line = {"args": vars(a), "train_s": seconds, "sdr": scores, "avg_sdr": round(avg, 2),
            "epochs_run": len(enh.network_training_.train_loss)}
    if len(a.exponents) > 1:
        line["avg_sdr_by_exponent"] = {e: round(float(np.mean([v for s in sc.values() for v in s.values()])), 2)
                                       for e, sc in by_exponent.items()}
        line["sdr_by_exponent"] = by_exponent
    print(json.dumps(line), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(line) + "\n")


def _mu_gains(a: argparse.Namespace, data: dict) -> None:
    """``--method nmf+mu``: score each gain of ``--mu-gains`` (no network), one line for all."""
    gains = {g: [float(v) for v in g.split(":")] for g in a.mu_gains}
    scores: dict[str, dict] = {}
    for noise in a.noises:
        speech, noise_model = dictionaries(data, noise, "nmf", seed=a.seed)
        for name, (power, floor, *exponent) in gains.items():
            enh = Enhancer(speech, noise_model, activations="mu", power=power, floor=floor,
                           exponent=exponent[0] if exponent else 1.0, max_iter=200)
            scores.setdefault(name, {})[noise] = {str(k): round(v, 2) for k, v in validate(enh, data, noise).items()}
    line = {"args": vars(a), "sdr_by_gain": scores,
            "avg_sdr_by_gain": {g: round(float(np.mean([v for s in sc.values() for v in s.values()])), 2) for g, sc in scores.items()}}
    print(json.dumps(line), flush=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
