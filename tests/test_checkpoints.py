"""Checkpoints and resume: a resumed fit ends where an uninterrupted one ends; a killed training resumes.

Generated data only, tiny sizes. The state round trip (tensors, tuples,
integer keys, infinities) is checked against the original; checkpoints
written by another loop, another run or damaged are refused; each
estimator resumed from a checkpoint reaches the uninterrupted run's
weights bit for bit; ``deepnmf train`` killed with SIGKILL mid-run leaves an
intact checkpoint and ``--resume`` reaches the uninterrupted final loss.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import deepnmf.cli.main  # noqa: F401 - registers the commands
from deepnmf import VAENMF, ImplicitNMF
from deepnmf.audio.points import from_stft
from deepnmf.checkpoints import (
    INDEX, Checkpointer, join_state, read_checkpoint, split_state, write_checkpoint,
)
from deepnmf.cli.app import app
from deepnmf.datasets.synthetic import harmonic_notes
from deepnmf.exceptions import ModelFileError, ParameterError
from deepnmf.training import fit_module

SR = 16000


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "notes.wav"
    sf.write(path, harmonic_notes(3, duration=1.0, sr=SR, seed=1).audio, SR)
    return path


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.gamma(1.0, 1.0, (120, 3)) @ rng.uniform(size=(3, 16))


def _equal_states(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------ the state format
def test_state_round_trip():
    state = {"w": torch.arange(6.0).reshape(2, 3), "opt": {0: {"step": 3, "m": torch.ones(2)}, 1: {}},
             "groups": [{"betas": (0.9, 0.999), "lr": 1e-3}], "best": [math.inf, None, -math.inf],
             "gen": torch.Generator().manual_seed(3).get_state(), "flag": True, "name": "x"}
    tree, tensors = split_state(state)
    json.dumps(tree, allow_nan=False)  # plain JSON
    back = join_state(json.loads(json.dumps(tree)), tensors)
    assert back["opt"][0]["step"] == 3 and set(back["opt"]) == {0, 1}
    assert back["groups"][0]["betas"] == (0.9, 0.999) and back["best"] == [math.inf, None, -math.inf]
    assert torch.equal(back["w"], state["w"]) and torch.equal(back["gen"], state["gen"])
    assert back["flag"] is True and back["name"] == "x"
    with pytest.raises(ParameterError, match="cannot hold a object"):
        split_state({"x": object()})


def test_checkpoint_files_are_checked(tmp_path):
    folder = tmp_path / "ck"
    write_checkpoint(folder, kind="k", epoch=3, state={"a": torch.ones(3)}, signature={"n": 1})
    write_checkpoint(folder, kind="k", epoch=6, state={"a": torch.zeros(3)}, signature={"n": 1})
    # one tensor file: the older one is removed once the index names the new one; no temporary files
    assert sorted(p.name for p in folder.iterdir()) == [INDEX, "state-00000006.safetensors"]
    got = read_checkpoint(folder, kind="k", signature={"n": 1})
    assert got["epoch"] == 6 and torch.equal(got["state"]["a"], torch.zeros(3))
    with pytest.raises(ModelFileError, match="another run"):
        read_checkpoint(folder, kind="k", signature={"n": 2})
    with pytest.raises(ModelFileError, match="of 'k' training, not 'other'"):
        read_checkpoint(folder, kind="other")
    blob = folder / "state-00000006.safetensors"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        read_checkpoint(folder, kind="k")
    (folder / INDEX).write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        read_checkpoint(folder, kind="k")
    with pytest.raises(ModelFileError, match="holds no checkpoint"):
        read_checkpoint(tmp_path / "none", kind="k")
    with pytest.raises(ParameterError, match="checkpoint_every"):
        Checkpointer(folder, every=-1)


# ------------------------------------------------------------ resume = uninterrupted run
def test_fit_module_resume_with_early_stopping(X, tmp_path):
    """Early stopping's best weights and patience counter survive the checkpoint."""
    from deepnmf.nn.vae import build_module

    def run(epochs, **kw):
        gen = torch.Generator().manual_seed(0)
        T = torch.as_tensor(X)
        module = build_module(16, 3, device=torch.device("cpu"), dtype=T.dtype, generator=gen, hidden=(8,))
        module.init_from_data(T, gen)
        result = fit_module(module, T, generator=gen, max_epochs=epochs, batch_size=32, patience=3, tol=0.05, **kw)
        return module, result

    full_module, full = run(40)
    assert full.stopped_early  # the interesting case: the run stops on patience
    cut = full.best_epoch + 1  # after the best epoch, before the stop
    run(cut, checkpoint=Checkpointer(tmp_path, every=1))
    module, resumed = run(40, checkpoint=Checkpointer(tmp_path, every=1, resume=True))
    assert (resumed.n_epochs, resumed.best_epoch, resumed.stopped_early) == (full.n_epochs, full.best_epoch, True)
    assert resumed.history == full.history
    _equal_states(module, full_module)


def test_fit_module_resume_keeps_the_cosine_schedule(X, tmp_path):
    """A run stopped mid-way and resumed follows the same learning rates as the uninterrupted run."""
    from deepnmf.nn.vae import build_module

    def run(stop_at=None, schedule="cosine", **kw):
        gen = torch.Generator().manual_seed(0)
        T = torch.as_tensor(X)
        module = build_module(16, 3, device=torch.device("cpu"), dtype=T.dtype, generator=gen, hidden=(8,))
        module.init_from_data(T, gen)
        stop = (lambda info: info.epoch == stop_at) if stop_at else None
        fit_module(module, T, generator=gen, max_epochs=8, batch_size=32, early_stopping=False,
                   lr_schedule=schedule, lr=1e-2, callback=stop, **kw)
        return module

    full = run()
    run(stop_at=3, checkpoint=Checkpointer(tmp_path, every=1))
    _equal_states(run(checkpoint=Checkpointer(tmp_path, every=1, resume=True)), full)
    constant = run(schedule="constant").state_dict()  # and the schedule changed the run
    assert any(not torch.equal(v, constant[k]) for k, v in full.state_dict().items())


def _vae(epochs):
    return VAENMF(3, hidden=(16,), max_epochs=epochs, batch_size=32, random_state=0)


def _grid(epochs):
    return ImplicitNMF(2, max_epochs=epochs, hidden=8, n_octaves=3, random_state=0)


def _points(epochs):
    return ImplicitNMF(2, mode="points", max_epochs=epochs, hidden=8, n_octaves=3, point_fraction=0.5,
                       random_state=0)


@pytest.mark.parametrize("make", [_vae, _grid, _points], ids=["vae-nmf", "implicit", "implicit-points"])
def test_python_resume_reaches_the_uninterrupted_weights(make, X, tmp_path):
    data = X
    if make is _points:
        data = from_stft(harmonic_notes(3, duration=1.0, sr=8000, seed=1).audio, 8000, n_fft=64)
    full = make(20).fit(data)
    make(7).fit(data, checkpoint_dir=tmp_path, checkpoint_every=3)  # the "interrupted" run: stops at 7
    assert read_checkpoint(tmp_path, kind=json.loads((tmp_path / INDEX).read_text())["kind"])["epoch"] == 7
    resumed = make(20).fit(data, checkpoint_dir=tmp_path, checkpoint_every=3, resume=True)
    assert resumed.loss_curve_ == full.loss_curve_ and resumed.n_iter_ == full.n_iter_
    _equal_states(resumed.module_, full.module_)
    other = data[:60] if make is not _points else from_stft(harmonic_notes(3, duration=1.0, sr=8000, seed=2).audio,
                                                             8000, n_fft=64)
    with pytest.raises(ModelFileError, match="another run"):
        make(20).fit(other, checkpoint_dir=tmp_path, resume=True)


def test_checkpoint_arguments_are_checked(X, tmp_path):
    with pytest.raises(ParameterError, match="need checkpoint_dir"):
        _vae(2).fit(X, resume=True)
    with pytest.raises(ModelFileError, match="holds no checkpoint"):
        _vae(2).fit(X, checkpoint_dir=tmp_path / "empty", resume=True)
    with pytest.raises(ParameterError, match="uncompiled"):
        ImplicitNMF(2, compile=True).fit(X, checkpoint_dir=tmp_path)


# --------------------------------------------------------------- deepnmf train, killed
def _train_args(wav: Path, model: str, out: Path, epochs: int) -> list[str]:
    return ["train", str(wav), "--model", model, "--rank", "2", "--n-fft", "128", "--hop", "64", "--max-epochs",
            str(epochs), "--seed", "0", "--no-figures", "--out", str(out)]


def _final(out: Path) -> float:
    report = json.loads((out / "train.json").read_text())
    final = report["final"]
    return final.get("val_loss", final.get("loss", final.get("objective")))


@pytest.mark.parametrize("model,epochs", [("vae-nmf", 100), ("implicit", 600)])
def test_a_killed_training_resumes_to_the_uninterrupted_loss(model, epochs, wav, tmp_path):
    full = tmp_path / "full"
    assert CliRunner().invoke(app, _train_args(wav, model, full, epochs)).exit_code == 0
    out = tmp_path / "killed"
    args = _train_args(wav, model, out, epochs) + ["--checkpoint-every", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from deepnmf.cli.main import main; main()", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    index = out / "checkpoint" / INDEX
    deadline = time.monotonic() + 120
    while not index.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (out / "train.json").exists(), "the run ended before it was killed: nothing was tested"
    kind = json.loads(index.read_text())["kind"]
    epoch = read_checkpoint(out / "checkpoint", kind=kind)["epoch"]  # intact: parses and its checksum matches
    assert 10 <= epoch < epochs
    result = CliRunner().invoke(app, args + ["--resume"])
    assert result.exit_code == 0, result.output
    assert _final(out) == pytest.approx(_final(full), rel=1e-6)
    assert (out / "weights.safetensors").read_bytes() == (full / "weights.safetensors").read_bytes()


def test_cli_resume_without_a_checkpoint_is_one_line(wav, tmp_path):
    result = CliRunner().invoke(app, _train_args(wav, "vae-nmf", tmp_path, 3) + ["--resume"])
    assert result.exit_code != 0 and "holds no checkpoint" in result.output
    assert "Traceback" not in result.output


def test_replace_folder_keeps_the_old_folder_when_writing_fails(tmp_path):
    """The enhancement experiment's model cache: a folder replaced whole, or not at all."""
    from deepnmf.io.model_files import replace_folder

    target = tmp_path / "cache"
    replace_folder(lambda tmp: (tmp.mkdir(), (tmp / "a.txt").write_text("old")), target)

    def fails(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "a.txt").write_text("half")
        raise KeyboardInterrupt  # a kill in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        replace_folder(fails, target)
    assert (target / "a.txt").read_text() == "old"
    replace_folder(lambda tmp: (tmp.mkdir(), (tmp / "b.txt").write_text("new")), target)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temporary siblings left


@pytest.mark.parametrize("beta,tol", [("kullback-leibler", 1e-3), ("frobenius", 0.0), ("itakura-saito", 0.0)])
def test_nmf_resume_reaches_the_uninterrupted_factors(beta, tol, X, tmp_path):
    """From the saved W, H and objective: the same factors, curve and stop (tol rescaled to the initial objective)."""
    from deepnmf import NMF

    def make(max_iter):
        return NMF(3, solver="mu", beta_loss=beta, init="random", max_iter=max_iter, tol=tol, random_state=0)

    full = make(300)
    W_full = full.fit_transform(X)
    make(40).fit(X, checkpoint_dir=tmp_path, checkpoint_every=20)
    resumed = make(300)
    W = resumed.fit_transform(X, checkpoint_dir=tmp_path, checkpoint_every=20, resume=True)
    assert resumed.n_iter_ == full.n_iter_ and resumed.loss_curve_ == full.loss_curve_
    np.testing.assert_array_equal(W, W_full)
    np.testing.assert_array_equal(resumed.components_, full.components_)
    if tol:
        assert 40 < full.n_iter_ < 300  # the tolerance stopped both runs, at the same iteration


def test_nmf_checkpoint_arguments_are_checked(X, tmp_path):
    from deepnmf import NMF

    with pytest.raises(ParameterError, match="multiples of 10"):
        NMF(2, solver="mu", max_iter=5).fit(X, checkpoint_dir=tmp_path, checkpoint_every=7)
    with pytest.raises(ParameterError, match="multiplicative updates only"):
        NMF(2, solver="cd", max_iter=5).fit(X, checkpoint_dir=tmp_path, checkpoint_every=10)


@pytest.mark.parametrize("model,epochs,every", [("nmf", 200, 10), ("implicit-points", 30, 5)])
def test_cli_resume_after_a_shorter_run(model, epochs, every, wav, tmp_path):
    """``deepnmf train --resume`` continues a run cut short to the uninterrupted run's train.json and weights."""
    extra = ["--beta-loss", "kullback-leibler", "--tol", "1e-3"] if model == "nmf" else []
    full, out = tmp_path / "full", tmp_path / "cut"
    for folder, n, more in ((full, epochs, []), (out, epochs // 2, []), (out, epochs, ["--resume"])):
        args = _train_args(wav, model, folder, n) + extra + ["--checkpoint-every", str(every), *more]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert _final(out) == pytest.approx(_final(full), rel=1e-6)
    assert json.loads((out / "train.json").read_text())["n_iter"] == json.loads((full / "train.json").read_text())["n_iter"]
    assert (out / "weights.safetensors").read_bytes() == (full / "weights.safetensors").read_bytes()
