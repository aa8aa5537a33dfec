"""The demo's data: generated signals with known ground truth, or the real recordings when they are there.

Every loader returns a dict with ``what`` (one sentence naming the data for
the report) and the arrays its job needs; audio is mono float at 16 kHz.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SR = 16000


# ------------------------------------------------------------- generated
def synthetic_enhancement(seed: int, quick: bool) -> dict[str, Any]:
    """Two generated voices (3 utterances each) and three generated noises; test mixtures of unseen ones."""
    from deepnmf.datasets.synthetic import noise_signal, speech_like

    n_utt, dur = (1, 2.0) if quick else (3, 3.0)
    speech = [speech_like(dur, sr=SR, speaker=spk, seed=seed + k).audio for spk in (0, 1) for k in range(n_utt)]
    noise = [noise_signal(kind, 2 * dur, sr=SR, seed=seed) for kind in ("machine", "pink", "hum")]
    tests = [("generated voice 1 + machine noise", speech_like(dur, sr=SR, speaker=0, seed=seed + 90).audio,
              noise_signal("machine", dur, sr=SR, seed=seed + 9)),
             ("generated voice 2 + pink noise", speech_like(dur, sr=SR, speaker=1, seed=seed + 91).audio,
              noise_signal("pink", dur, sr=SR, seed=seed + 9))]
    return {"what": ("Generated data: speech-like utterances (harmonic syllables with formant envelopes, pitch "
                     "contours and fricatives) of two voices, and machine, pink and mains-hum noise; the test "
                     "utterances and noise excerpts were not used in training."),
            "train_speech": speech, "train_noise": noise, "tests": tests}


def synthetic_separation(seed: int, quick: bool) -> dict[str, Any]:
    """Two generated voices: example recordings and an unseen test utterance of each."""
    from deepnmf.datasets.synthetic import speech_like

    dur = 2.0 if quick else 3.0
    examples = [np.concatenate([speech_like(dur, sr=SR, speaker=spk, seed=seed + k).audio for k in range(2)])
                for spk in (2, 3)]
    tests = [speech_like(dur, sr=SR, speaker=spk, seed=seed + 80).audio for spk in (2, 3)]
    return {"what": "Generated data: two speech-like voices (low and high pitch), 0 dB mixture of unseen utterances.",
            "examples": examples, "tests": tests, "names": ["low voice", "high voice"]}


def synthetic_synergies(seed: int, quick: bool) -> dict[str, Any]:
    """8-channel EMG generated from 4 planted synergies, 4 repetitions of one movement."""
    from deepnmf.datasets.synthetic_emg import make_synthetic_emg
    from deepnmf.emg.preprocess import preprocess

    syn = make_synthetic_emg(n_channels=8, n_synergies=4, n_repetitions=4, repetition_duration=1.0 if quick else 2.0,
                             random_state=seed)
    env = preprocess(syn.recording)
    truth = syn.expected_synergies(env.meta["preprocessing"].get("channel_scale"))
    return {"what": "Generated EMG: 8 channels from 4 planted synergies (band-limited carriers, sensor noise, "
                    "electrode gains), 4 repetitions of one movement.",
            "recording": syn.recording, "envelopes": env, "movements": None, "truth": truth,
            "files": [], "format": "synthetic"}


# ------------------------------------------------------------------ real
def _load(path: Path, seconds: float | None = None) -> np.ndarray:
    from deepnmf.audio.io import load_audio

    x = load_audio(path, sr=SR)[0].astype(np.float64)
    return x[: int(seconds * SR)] if seconds else x


def real_enhancement(root: Path, seed: int, quick: bool) -> dict[str, Any]:
    """LibriSpeech + CMU ARCTIC training speech, Speech Commands noise (first 70 %); held-out tests."""
    lim = 6.0 if quick else 12.0
    speech = [_load(root / "speech/librispeech/198-209-0000.hq.ogg", lim)]
    speech += [_load(p) for p in sorted((root / "speech/cmu-arctic").glob("cmu_arctic_us_aew_*.wav"))]
    noises = [_load(root / f"noise/speech-commands/{n}.wav") for n in ("doing_the_dishes", "exercise_bike")]
    cuts = [int(0.7 * n.size) for n in noises]
    train_noise = [n[: min(c, int(2 * lim * SR))] for n, c in zip(noises, cuts)]
    timit = sorted((root / "speech/timit-sample/dr1-fvmh0").glob("si*.wav"))[0]
    arctic = _load(root / "speech/cmu-arctic/arctic_a0010.wav")
    t1 = _load(timit)
    tests = [(f"TIMIT {timit.parent.name}/{timit.stem} + dishes noise", t1, noises[0][cuts[0]: cuts[0] + t1.size]),
             ("ARCTIC a0010 + exercise-bike noise", arctic, noises[1][cuts[1]: cuts[1] + arctic.size])]
    return {"what": ("Real recordings: training speech from LibriSpeech and CMU ARCTIC, training noise from the first "
                     "70 % of two Speech Commands background noises; test speech from TIMIT and a held-out ARCTIC "
                     "clip, test noise from the last 30 %."),
            "train_speech": speech, "train_noise": train_noise, "tests": tests}


def real_separation(root: Path, seed: int, quick: bool) -> dict[str, Any]:
    """Two TIMIT speakers: examples from some sentences, a test sentence of each."""
    out = {"examples": [], "tests": [], "names": []}
    for spk in ("dr1-fvmh0", "dr2-marc0"):
        files = sorted((root / "speech/timit-sample" / spk).glob("*.wav"))
        out["tests"].append(_load(files[0], 3.0))
        out["examples"].append(np.concatenate([_load(f) for f in files[1:4 if quick else 5]]))
        out["names"].append(spk)
    n = min(t.size for t in out["tests"])
    out["tests"] = [t[:n] for t in out["tests"]]
    return {"what": "Real recordings: two TIMIT speakers (a woman and a man); examples from other sentences than the "
                    "0 dB test mixture's.", **out}


def real_synergies(root: Path, seed: int, quick: bool) -> dict[str, Any]:
    """UCI gestures, one subject's two series, the fist gesture (4 repetitions)."""
    from deepnmf.pipelines.synergies import load_envelopes

    folder = root / "emg/uci-gestures"
    files = [folder / "1_raw_data_13-12_22.03.16.txt.gz", folder / "2_raw_data_13-13_22.03.16.txt.gz"]
    rec, env = load_envelopes(files, format="uci")
    return {"what": "Real recordings: UCI EMG for gestures (8-channel Myo armband), one subject, the fist gesture, "
                    "4 repetitions.", "recording": rec, "envelopes": env, "movements": [2], "truth": None,
            "files": [str(f) for f in files], "format": "uci"}


def demo_data(kind: str, seed: int, quick: bool) -> tuple[str, dict[str, dict]]:
    """The data of the three jobs: ``("synthetic" | "real", {"enhancement": ..., ...})``."""
    from deepnmf.datasets.paths import shared_data_dir
    from deepnmf.exceptions import DataError

    root = None
    if kind != "synthetic":
        try:
            root = shared_data_dir()
        except DataError:
            if kind == "real":
                raise
    if root is None:
        return "synthetic", {"enhancement": synthetic_enhancement(seed, quick),
                             "separation": synthetic_separation(seed, quick),
                             "synergies": synthetic_synergies(seed, quick)}
    return "real", {"enhancement": real_enhancement(root, seed, quick), "separation": real_separation(root, seed, quick),
                    "synergies": real_synergies(root, seed, quick)}
