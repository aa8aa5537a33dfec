"""Folders of files: enhance_folder / run_batch (pool, atomic outputs, skip existing, failures per file)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from deepnmf import NMF
from deepnmf.audio.tf import magnitude, stft
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.pipelines.batch import TMP_TAG, enhance_folder, plan_outputs
from deepnmf.pipelines.enhancement import Enhancer, STFTSettings

SR = 8000


def _tone(freqs, seconds, rng):
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs) + 0.01 * rng.standard_normal(t.size)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    settings = STFTSettings(sr=SR, n_fft=256, hop=64)
    frames = lambda x: magnitude(stft(x, n_fft=256, hop=64)).numpy()  # noqa: E731
    speech = NMF(6, beta_loss="kullback-leibler", solver="mu", max_iter=60, tol=0.0, random_state=0).fit(frames(_tone([300, 600], 2.0, rng)))
    noise = NMF(4, beta_loss="kullback-leibler", solver="mu", max_iter=60, tol=0.0, random_state=0).fit(
        frames(rng.standard_normal(2 * SR) * 0.1))
    Enhancer(speech, noise, stft=settings).save(root / "enhancer")
    inputs = root / "in"
    (inputs / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.wav", "b.wav", "sub/c.wav"]):
        y = _tone([300 + 10 * i, 600], 0.6, rng) + 0.1 * rng.standard_normal(int(0.6 * SR))
        sf.write(inputs / name, y.astype(np.float32), SR, subtype="FLOAT")
    return root, inputs


def test_folder_outputs_mirror_the_inputs_and_equal_one_file_enhancement(setup, tmp_path):
    from deepnmf.audio.io import load_audio
    from deepnmf.pipelines.enhancement import load_enhancer

    root, inputs = setup
    res = enhance_folder([inputs], tmp_path / "out", model=root / "enhancer")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in res.written) == ["a.wav", "b.wav", "sub/c.wav"]
    assert res.failed == {} and res.skipped == []
    enh = load_enhancer(model=root / "enhancer")
    for name in ["a.wav", "sub/c.wav"]:
        y, _ = load_audio(inputs / name, sr=SR)
        got, sr = sf.read(tmp_path / "out" / name)
        assert sr == SR and got.shape == y.shape
        np.testing.assert_allclose(got, enh.enhance(y), atol=1e-4)  # PCM16 rounding
    assert not list((tmp_path / "out").rglob(f"*{TMP_TAG}*"))


def test_rerun_skips_existing_outputs_and_failures_do_not_stop_the_batch(setup, tmp_path):
    root, inputs = setup
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ["a.wav", "b.wav"]:
        (mixed / name).write_bytes((inputs / name).read_bytes())
    (mixed / "broken.wav").write_text("not audio")
    out = tmp_path / "out"
    first = enhance_folder([mixed], out, model=root / "enhancer")
    assert len(first.written) == 2 and list(first.failed) == [str(mixed / "broken.wav")]
    message = first.failed[str(mixed / "broken.wav")]
    assert "broken.wav" in message and "\n" not in message
    assert not (out / "broken.wav").exists()
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    (out / f"b{TMP_TAG}999.wav").write_bytes(b"half")  # left by a killed run
    again = enhance_folder([mixed], out, model=root / "enhancer")
    assert again.written == [] and sorted(again.skipped) == sorted(stamp)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.wav")} == stamp
    assert not list(out.glob(f"*{TMP_TAG}*"))


def test_two_workers_write_what_one_process_writes(setup, tmp_path):
    root, inputs = setup
    one = enhance_folder([inputs], tmp_path / "one", model=root / "enhancer")
    two = enhance_folder([inputs], tmp_path / "two", model=root / "enhancer", jobs=2)
    assert len(two.written) == 3 and two.failed == {}
    for p in one.written:
        rel = p.relative_to(tmp_path / "one")
        assert (tmp_path / "two" / rel).read_bytes() == p.read_bytes()


def test_bad_batches_are_refused(setup, tmp_path):
    root, inputs = setup
    (tmp_path / "a.wav").write_bytes((inputs / "a.wav").read_bytes())
    with pytest.raises(DataError, match="would both be written"):
        plan_outputs([inputs / "a.wav", tmp_path / "a.wav"], tmp_path / "o")
    with pytest.raises(DataError, match="neither an audio file"):
        plan_outputs([tmp_path / "missing"], tmp_path)
    with pytest.raises(ParameterError, match="jobs"):
        enhance_folder([inputs], tmp_path / "o", model=root / "enhancer", jobs=0)
    listing = tmp_path / "files.txt"
    listing.write_text(f"{inputs / 'a.wav'}\n\n{inputs / 'sub' / 'c.wav'}\n")
    assert [d.name for _, d in plan_outputs([listing], tmp_path / "o")] == ["a.wav", "c.wav"]


def test_cli_enhances_a_folder_and_exits_1_when_a_file_failed(setup, tmp_path):
    from typer.testing import CliRunner

    from deepnmf.cli.main import app

    root, inputs = setup
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["enhance", str(inputs), "-o", str(out), "--model", str(root / "enhancer"), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == ["a.wav", "b.wav", "sub/c.wav"]
    (tmp_path / "bad.wav").write_text("not audio")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{inputs / 'a.wav'}\n{tmp_path / 'bad.wav'}\n")
    res = runner.invoke(app, ["enhance", str(listing), "-o", str(out), "--model", str(root / "enhancer"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1
    assert "failed: " in res.output and "bad.wav" in res.output and "Traceback" not in res.output
    import json

    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["skipped"] == 1 and summary["n_failed"] == 1 and summary["written"] == 0


def test_cli_separates_a_folder_like_one_file_at_a_time(tmp_path):
    from typer.testing import CliRunner

    from deepnmf.cli.main import app

    rng = np.random.default_rng(3)
    a, b = _tone([220, 440], 1.5, rng), _tone([330, 990], 1.5, rng)
    for name, x in (("a.wav", a), ("b.wav", b)):
        sf.write(tmp_path / name, x.astype(np.float32), SR, subtype="FLOAT")
    mixes = tmp_path / "mixes"
    mixes.mkdir()
    for i in range(2):
        y = _tone([220, 440], 0.8, rng) + _tone([330, 990], 0.8, rng)
        sf.write(mixes / f"m{i}.wav", y.astype(np.float32), SR, subtype="FLOAT")
    common = ["--source-example", str(tmp_path / "a.wav"), "--source-example", str(tmp_path / "b.wav"),
              "--sr", str(SR), "--n-fft", "256", "--rank", "4", "--iterations", "40"]
    runner = CliRunner()
    res = runner.invoke(app, ["separate", str(mixes), "-o", str(tmp_path / "out"), "--jobs", "2", *common])
    assert res.exit_code == 0, res.output
    res1 = runner.invoke(app, ["separate", str(mixes / "m1.wav"), "-o", str(tmp_path / "one"), *common])
    assert res1.exit_code == 0, res1.output
    for i in (1, 2):
        folder, single = sf.read(tmp_path / "out" / "m1" / f"source_{i}.wav")[0], sf.read(tmp_path / "one" / f"source_{i}.wav")[0]
        np.testing.assert_allclose(folder, single, atol=1e-4)
    assert (tmp_path / "out" / "m0" / "source_2.wav").is_file()
    assert not list((tmp_path / "out").glob(f"*{TMP_TAG}*"))


def test_process_pool_workers_run_one_torch_and_one_blas_thread():
    """Worker processes get one torch thread and one BLAS thread for their life (OpenBLAS's busy-waiting
    threads would take the cycles of the other workers), and a dead worker becomes one clear error."""
    import os
    from concurrent.futures.process import BrokenProcessPool

    from threadpoolctl import threadpool_info

    from deepnmf._threads import default_workers
    from deepnmf.exceptions import DeepNMFError
    from deepnmf.pipelines.batch import process_pool, worker_died

    with process_pool(2) as pool:
        assert [f.result() for f in [pool.submit(default_workers) for _ in range(2)]] == [1, 1]
        blas = [lib for lib in pool.submit(threadpool_info).result() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)
    with process_pool(1) as pool:
        with pytest.raises(BrokenProcessPool) as died:
            pool.submit(os._exit, 1).result()
    err = worker_died(died.value, "run again with --jobs 1")
    assert isinstance(err, DeepNMFError) and "a worker process died" in str(err) and str(err).endswith("--jobs 1")
    for jobs in (0, 1.5, True):
        with pytest.raises(ParameterError, match="jobs must be an integer >= 1"):
            process_pool(jobs)
