"""deepnmf train --stream and --distributed (torchrun, gloo): the scale pipelines end to end."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from deepnmf.cli.main import app

SR = 8000
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    rng = np.random.default_rng(0)
    for i in range(4):
        t = np.arange(int(1.5 * SR)) / SR
        x = sum(0.2 * np.sin(2 * np.pi * f * (1 + 0.02 * i) * t) for f in (220, 440, 880)) * (1 + 0.5 * np.sin(6 * t))
        sf.write(root / f"u{i}.wav", (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)
    return root


def _train(*args) -> dict:
    res = CliRunner().invoke(app, ["train", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.parametrize("model", ["vae-nmf", "nmf"])
def test_streamed_training_writes_a_model_that_loads(corpus, tmp_path, model):
    import deepnmf

    out = tmp_path / model
    _train(corpus, "--model", model, "--rank", 6, "--max-epochs", 3, "--seed", 0, "--sr", SR, "--n-fft", 256,
           "--hop", 64, "--stream", "--batch-size", 64, "--shuffle-buffer", 256, "--no-figures", "-o", out)
    report = json.loads((out / "train.json").read_text())
    assert report["data"]["kind"] == "audio-stream" and report["data"]["n_files"] == 4
    assert report["n_iter"] == 3 and report["settings"]["stream"] is True
    est = deepnmf.load_model(out)
    assert est.components_.shape == (6, 129) and np.all(np.asarray(est.components_) >= 0)
    curve = est.loss_curve_
    assert curve[-1] < curve[0]  # the streamed passes learn


def test_stream_options_are_checked(corpus, tmp_path):
    res = CliRunner().invoke(app, ["train", str(corpus), "--model", "implicit", "--rank", "3", "--stream", "-o",
                                   str(tmp_path / "m")])
    assert res.exit_code == 2 and "--stream trains" in res.output
    res = CliRunner().invoke(app, ["train", str(corpus), "--model", "nmf", "--rank", "3", "--distributed", "-o",
                                   str(tmp_path / "m")])
    assert res.exit_code == 2 and "torchrun" in res.output


def _torchrun(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "deepnmf", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
@pytest.mark.parametrize("model", ["nmf", "vae-nmf", "implicit"])
def test_two_processes_reach_the_one_process_loss(corpus, tmp_path, model):
    common = ["--model", model, "--rank", 6, "--max-epochs", 8, "--seed", 0, "--sr", SR, "--n-fft", 256, "--hop", 64,
              "--no-figures", "-q"]
    _train(corpus, *common, "-o", tmp_path / "one")
    res = _torchrun(corpus, *common, "--distributed", "-o", tmp_path / "two")
    assert res.returncode == 0, res.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "train.json").read_text())
    two = json.loads((tmp_path / "two" / "train.json").read_text())
    assert two["distributed"]["world_size"] == 2 and two["distributed"]["backend"] == "gloo"
    key = {"nmf": "objective", "vae-nmf": "train_loss", "implicit": "loss"}[model]
    assert two["final"][key] == pytest.approx(one["final"][key], rel=0.02)  # the target
    if model != "nmf":  # the ranks replay the one-process run (VAE-NMF: its random stream), up to rounding
        other = "val_loss" if model == "vae-nmf" else key
        assert two["final"][other] == pytest.approx(one["final"][other], rel=1e-3)
