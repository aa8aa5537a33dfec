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


@pytest.fixture(scope="session")
def synthetic_audio(tmp_path_factory) -> dict:
    """A TIMIT-like corpus made by the project's own generators, written as 16 kHz WAVs.

    Speakers are :func:`deepnmf.datasets.synthetic.speech_like` voices, one
    folder per speaker: ``train/spk0``, ``train/spk1`` and ``test/spk2``,
    ``test/spk3``, two 1.5 s utterances each (``u0.wav``, ``u1.wav``). Noises
    are 8 s of :func:`deepnmf.datasets.synthetic.noise_signal` (``noise/hum.wav``,
    ``noise/machine.wav``). Returns the paths and the float64 signals.
    """
    import soundfile as sf

    from deepnmf.datasets.synthetic import noise_signal, speech_like

    root = tmp_path_factory.mktemp("synthetic-audio")
    speech: dict[str, list[np.ndarray]] = {}
    for k, split in enumerate(("train", "train", "test", "test")):
        folder = root / split / f"spk{k}"
        folder.mkdir(parents=True)
        utterances = [0.5 * speech_like(1.5, sr=SYNTH_SR, speaker=k, seed=i).audio.astype(np.float64) for i in range(2)]
        for i, u in enumerate(utterances):
            sf.write(folder / f"u{i}.wav", u, SYNTH_SR, subtype="FLOAT")
        speech[f"{split}/spk{k}"] = utterances
    (root / "noise").mkdir()
    noises = {name: 0.3 * noise_signal(name, 8.0, sr=SYNTH_SR, seed=1).astype(np.float64) for name in ("hum", "machine")}
    for name, x in noises.items():
        sf.write(root / "noise" / f"{name}.wav", x, SYNTH_SR, subtype="FLOAT")
    return {"root": root, "sr": SYNTH_SR, "speech": speech, "noises": noises,
            "train": [root / "train" / "spk0", root / "train" / "spk1"],
            "test": [root / "test" / "spk2", root / "test" / "spk3"],
            "noise_files": {name: root / "noise" / f"{name}.wav" for name in noises}}
