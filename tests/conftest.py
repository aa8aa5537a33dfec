"""Shared fixtures. Tests that need the real recordings skip without them, and fail under CI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnmf.datasets.paths import shared_data_dir
from deepnmf.exceptions import DataError


def _data_missing_reason() -> str | None:
    """Why the real recordings cannot be used (None when they are there)."""
    try:
        shared_data_dir()
    except DataError as err:
        return str(err)
    return None


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the real recordings (the ``data_dir`` fixture) ``shared_data``."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the real data (``DEEPNMF_DATA`` or ``../shared/data``).

    Absent data skips the test with a one-line reason, except under CI (the
    environment variable ``CI`` set), where it fails: CI always has the data.
    """
    reason = _data_missing_reason()
    if reason is None:
        return shared_data_dir()
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the real data is missing: {reason}")
    pytest.skip(f"needs the real recordings: {reason}")


#: torch.compile on CPU builds C++: its tests need a compiler (the project's machines have g++).
needs_cxx = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c),
    reason="ImplicitNMF(compile=True) needs a C++ compiler, none found on PATH",
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def torch_gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# ------------------------------------------------ generated audio (every module runs without the recordings)
SYNTH_SR = 16000


def coloured_noise(n_samples: int, *, slope: float, hum_hz: float | None, seed: int) -> np.ndarray:
    """Stationary noise with a ``f**-slope`` power spectrum (plus an optional hum), unit RMS, shape ``(n_samples,)``."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    f = np.fft.rfftfreq(n_samples, 1.0 / SYNTH_SR)
    spectrum *= np.maximum(f, 50.0) ** (-slope / 2)
    x = np.fft.irfft(spectrum, n_samples)
    if hum_hz is not None:
        x += 0.5 * np.std(x) * np.sin(2 * np.pi * hum_hz * np.arange(n_samples) / SYNTH_SR)
    return x / np.sqrt(np.mean(x**2))


@pytest.fixture(scope="session")
def synthetic_audio(tmp_path_factory) -> dict:
    """A TIMIT-like corpus made by the project itself, written as 16 kHz WAVs.

    Speakers are :func:`deepnmf.datasets.synthetic.harmonic_notes` signals
    (harmonic tones switched on and off, a different set of pitches per
    speaker), one folder per speaker: ``train/spk0``, ``train/spk1`` (two
    1.5 s utterances each) and ``test/spk2``, ``test/spk3`` (two each).
    Noises are 8 s files ``noise/hum.wav`` (pink noise and a 120 Hz hum) and
    ``noise/hiss.wav`` (bright noise). Returns the paths and the signals.
    """
    import soundfile as sf

    from deepnmf.datasets.synthetic import harmonic_notes

    root = tmp_path_factory.mktemp("synthetic-audio")
    speech: dict[str, list[np.ndarray]] = {}
    for k, split in enumerate(("train", "train", "test", "test")):
        folder = root / split / f"spk{k}"
        folder.mkdir(parents=True)
        x = harmonic_notes(3, duration=3.0, sr=SYNTH_SR, seed=20 + k).audio.astype(np.float64)
        utterances = [0.5 * x[: len(x) // 2], 0.5 * x[len(x) // 2:]]
        for i, u in enumerate(utterances):
            sf.write(folder / f"u{i}.wav", u, SYNTH_SR, subtype="FLOAT")
        speech[f"{split}/spk{k}"] = utterances
    (root / "noise").mkdir()
    noises = {"hum": 0.1 * coloured_noise(8 * SYNTH_SR, slope=1.0, hum_hz=120.0, seed=1),
              "hiss": 0.1 * coloured_noise(8 * SYNTH_SR, slope=-0.5, hum_hz=None, seed=2)}
    for name, x in noises.items():
        sf.write(root / "noise" / f"{name}.wav", x, SYNTH_SR, subtype="FLOAT")
    return {"root": root, "sr": SYNTH_SR, "speech": speech, "noises": noises,
            "train": [root / "train" / "spk0", root / "train" / "spk1"],
            "test": [root / "test" / "spk2", root / "test" / "spk3"],
            "noise_files": {name: root / "noise" / f"{name}.wav" for name in noises}}
