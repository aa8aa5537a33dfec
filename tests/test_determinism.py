"""Determinism: the same seed gives bit-identical weights on CPU, in two separate processes.

Two subprocesses fit every estimator of the factory (tiny sizes, generated
data) and run ``deepnmf train``, each saving its models; the saved
``weights.safetensors`` files must be byte for byte the same. A fit with
another seed must differ (so the comparison can fail), except DNMF's, which
has no randomness.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import sys
import warnings
from pathlib import Path
import numpy as np
import soundfile as sf
from typer.testing import CliRunner
import deepnmf.cli.main
from deepnmf.audio.points import from_stft
from deepnmf.cli.app import app
from deepnmf.datasets.synthetic import harmonic_notes
from deepnmf.models import make_estimator

warnings.simplefilter("ignore")  # convergence warnings of the short fits
rng = np.random.default_rng(0)  # the data are the same in every run; only the models' seed varies
X = rng.gamma(1.0, 1.0, (80, 3)) @ rng.uniform(size=(3, 12))
audio = harmonic_notes(3, duration=1.0, sr=8000, seed=1).audio
S, N = X[:, :6], X[:, 6:] * 0.5
speech = make_estimator("nmf", 2, max_iter=10, random_state=0).fit(np.concatenate([S, S], axis=1))
noise = make_estimator("nmf", 2, max_iter=10, random_state=0).fit(np.concatenate([N, N], axis=1))


def fit_all(out, seed):
    small = dict(max_epochs=5, random_state=seed)
    make_estimator("nmf", 3, init="random", max_iter=20, random_state=seed).fit(X).save(out / "nmf")
    make_estimator("minibatch-nmf", 3, init="random", batch_size=16, max_iter=5, random_state=seed).fit(X).save(
        out / "minibatch-nmf")
    make_estimator("vae-nmf", 3, hidden=(8,), **small).fit(X).save(out / "vae-nmf")
    make_estimator("implicit", 2, hidden=8, n_octaves=3, **small).fit(X).save(out / "implicit")
    make_estimator("implicit-points", 2, hidden=8, n_octaves=3, point_fraction=0.5, **small).fit(
        from_stft(audio, 8000, n_fft=64)).save(out / "implicit-points")
    # DNMF has no randomness (full batch from the given dictionaries): the seed changes nothing
    make_estimator("dnmf", None, max_epochs=3, random_state=seed).fit(
        np.concatenate([S + N, S + N], axis=1), np.concatenate([S, S], axis=1),
        target_components=speech.components_, other_components=noise.components_).save(out / "dnmf")
    sf.write(out / "a.wav", audio, 8000)
    result = CliRunner().invoke(app, ["train", str(out / "a.wav"), "--model", "vae-nmf", "--rank", "2", "--sr",
                                      "8000", "--n-fft", "128", "--hop", "64", "--max-epochs", "3", "--seed",
                                      str(seed), "--no-figures", "--out", str(out / "cli")])
    assert result.exit_code == 0, result.output


for seed in map(int, sys.argv[2:]):
    fit_all(Path(sys.argv[1]) / f"seed{seed}", seed)
'''

MODELS = ("nmf", "minibatch-nmf", "vae-nmf", "implicit", "implicit-points", "dnmf", "cli")


def _run(out: Path, *seeds: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), *map(str, seeds)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_same_seed_same_weights_across_processes(tmp_path):
    procs = [_run(tmp_path / "a", 0, 1), _run(tmp_path / "b", 0)]  # process a also fits with another seed
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output.decode()[-3000:]
    for model in MODELS:
        a, b, other = ((tmp_path / run / seed / model / "weights.safetensors").read_bytes()
                       for run, seed in (("a", "seed0"), ("b", "seed0"), ("a", "seed1")))
        assert a == b, f"{model}: two processes with one seed wrote different weights"
        if model != "dnmf":
            assert a != other, f"{model}: another seed gave the same weights; the check cannot tell"
