"""Supervised two-source separation on real speech (TIMIT sample), masks, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from conftest import needs_cxx
from deepnmf import ImplicitNMF
from deepnmf.audio.tf import stft_freqs
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.experiments.transfer import load_speaker, mix_at_0db, separation_table
from deepnmf.metrics import bss_eval
from deepnmf.pipelines.separation import (
    compressed_spectrogram, learn_source_model, separate, separate_with_examples, wiener_masks,
)

SR = 16000


@pytest.fixture(scope="module")
def speakers(data_dir):
    """Two TIMIT speakers (a woman and a man): 4 s of training speech and a disjoint 2 s test excerpt each."""
    root = data_dir / "speech" / "timit-sample"
    out = []
    for name in ("dr1-fvmh0", "dr1-mcpm0"):
        x = load_speaker(root / name)
        out.append((x[: 4 * SR], x[5 * SR: 7 * SR]))
    return out


@pytest.fixture(scope="module")
def mixture(speakers):
    return mix_at_0db(speakers[0][1], speakers[1][1])  # (mixture, a, b)


@pytest.fixture(scope="module")
def nmf_models(speakers):
    return [learn_source_model(tr, sr=SR, model="nmf", n_fft=512, rank=10, max_iter=150, random_state=i)
            for i, (tr, _) in enumerate(speakers)]


def test_masks_share_the_mixture(torch_gen):
    parts = torch.rand(3, 5, 7, generator=torch_gen, dtype=torch.float64)
    parts[:, 0, 0] = 0.0
    M = wiener_masks(parts)
    torch.testing.assert_close(M.sum(0), torch.ones(5, 7, dtype=torch.float64))
    assert bool((M >= 0).all()) and bool((M <= 1).all())
    torch.testing.assert_close(M[:, 0, 0], torch.full((3,), 1 / 3, dtype=torch.float64))
    torch.testing.assert_close(M[0, 1:], parts[0, 1:] / parts[:, 1:].sum(0))
    with pytest.raises(DataError, match="nonnegative"):
        wiener_masks(-parts)


def sdr_gain(refs, est, mix) -> np.ndarray:
    """SDR of each estimate minus SDR of the unprocessed mixture, per source (dB)."""
    return bss_eval(refs, est)["sdr"] - bss_eval(refs, np.stack([mix, mix]))["sdr"]


def test_nmf_separation_improves_both_speakers(mixture, nmf_models):
    mix, a, b = mixture
    est = separate(mix, nmf_models, sr=SR, n_fft=512)
    assert est.shape == (2, mix.size)
    assert (sdr_gain(np.stack([a, b]), est, mix) > 3.0).all()


def test_with_power_one_the_estimates_sum_to_the_mixture(mixture, nmf_models):
    mix, _, _ = mixture
    est = separate(mix, [m.components_ for m in nmf_models], sr=SR, n_fft=512, power=1.0, max_iter=20)
    np.testing.assert_allclose(est.sum(0), mix, atol=1e-6)


def test_implicit_dictionaries_separate_at_another_size(speakers, mixture):
    mix, a, b = mixture
    models = []
    for i, (tr, _) in enumerate(speakers):
        V = compressed_spectrogram(tr, n_fft=1024)
        models.append(ImplicitNMF(10, max_epochs=60, hidden=32, random_state=i).fit(V, freqs=stft_freqs(1024, SR), sr=SR))
    est = separate(mix, models, sr=SR, n_fft=512)  # trained at 1024, sampled at the bins of 512
    assert (sdr_gain(np.stack([a, b]), est, mix) > 1.0).all()


def test_separation_errors(mixture, nmf_models, speakers):
    mix, _, _ = mixture
    with pytest.raises(DataError, match="STFT of size 1024 has 513 bins"):
        separate(mix, nmf_models, sr=SR, n_fft=1024)
    with pytest.raises(ParameterError, match="at least two sources"):
        separate(mix, nmf_models[:1], sr=SR, n_fft=512)
    with pytest.raises(DataError, match="silent"):
        separate(np.zeros(8000), nmf_models, sr=SR, n_fft=512)
    with pytest.raises(ParameterError, match="cannot separate at size 512"):
        separate_with_examples(mix, [s[0] for s in speakers], sr=SR, model="nmf", n_fft=512, train_n_fft=1024)
    with pytest.raises(ParameterError, match="model must be one of"):
        learn_source_model(speakers[0][0], sr=SR, model="vae")


def _write_cli_inputs(folder, speakers, mix) -> list[str]:
    """Two 2 s example recordings and the mixture as WAV files: ``[a, b, mixture]`` paths."""
    paths = []
    for name, sig in (("a.wav", speakers[0][0][: 2 * SR]), ("b.wav", speakers[1][0][: 2 * SR]), ("mix.wav", mix / 2)):
        sf.write(folder / name, sig, SR)
        paths.append(str(folder / name))
    return paths


def test_cli_separate_writes_one_file_per_example(tmp_path, speakers, mixture):
    from deepnmf.cli.main import app  # importing main registers every command

    mix, _, _ = mixture
    paths = _write_cli_inputs(tmp_path, speakers, mix)
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["separate", paths[2], "--source-example", paths[0], "--source-example", paths[1], "--model", "nmf",
            "--n-fft", "256", "--rank", "4", "--iterations", "20", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for i in (1, 2):
        y, sr = sf.read(out / f"source_{i}.wav")
        assert sr == SR and y.shape == mix.shape
    bad = runner.invoke(app, args[:-2] + ["--train-n-fft", "512", "--out", str(out)])
    assert bad.exit_code == 2 and "NMF dictionaries only work at the size" in bad.output
    missing = runner.invoke(app, ["separate", str(tmp_path / "none.wav"), "--source-example", paths[0],
                                  "--source-example", paths[1], "--out", str(out)])
    assert missing.exit_code == 1 and "does not exist" in missing.output


@needs_cxx
def test_cli_separate_implicit_compiled(tmp_path, speakers, mixture):
    """--compile trains the implicit dictionaries with torch.compile (no fallback warning) and records it."""
    import json
    import warnings

    from deepnmf.cli.main import app

    mix, _, _ = mixture
    paths = _write_cli_inputs(tmp_path, speakers, mix)
    out = tmp_path / "out"
    args = ["separate", paths[2], "--source-example", paths[0], "--source-example", paths[1], "--model", "implicit",
            "--n-fft", "256", "--train-n-fft", "512", "--rank", "4", "--epochs", "5", "--compile",
            "--save-models", str(tmp_path / "models"), "--out", str(out)]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "separation.json").read_text())["compile"] is True
    model = ImplicitNMF.load(tmp_path / "models" / "source_1")
    assert model.compile is True and model.n_iter_ == 5
    assert sf.read(out / "source_2.wav")[0].shape == mix.shape


def test_separation_table_layout():
    summary = [{"n_fft": n, "model": m, "sdr": 4.0, "sir": 9.0, "sar": 6.5, "stoi": 0.7}
               for n in (1000, 2000) for m in ("nmf", "implicit")]
    lines = separation_table(summary).splitlines()
    assert lines[0].startswith("| STFT size | SDR NMF / iN-NMF")
    assert lines[2] == "| 1000 | 4.00 / 4.00 | 9.00 / 9.00 | 6.50 / 6.50 | 0.700 / 0.700 |"


# ------------------------------------------------ synthetic sources (no recordings needed)
@pytest.fixture(scope="module")
def notes():
    """Two generated harmonic sources (1.5 s each, different pitches) and their mixture."""
    from deepnmf.datasets.synthetic import harmonic_notes

    a, b = (harmonic_notes(2, duration=1.5, seed=s).audio for s in (2, 3))
    return a, b, a + b


def test_source_seeds_rule():
    from deepnmf.pipelines.separation import source_seeds

    assert source_seeds(7, 3) == [8, 9, 10]
    assert source_seeds(None, 2) == [None, None]
    drawn = source_seeds(np.random.default_rng(0), 2)
    assert drawn[1] == drawn[0] + 1
    with pytest.raises(ParameterError, match="random_state must be an int"):
        source_seeds("0", 2)


def test_separate_with_examples_is_learn_then_separate(notes):
    """The pipeline equals its parts composed by hand, with source i seeded ``random_state + i``."""
    a, b, mix = notes
    infos = []
    est, models = separate_with_examples(mix, [a, b], sr=SR, n_fft=256, rank=3, max_iter=15, random_state=4,
                                         callback=infos.append, return_models=True)
    ref = [learn_source_model(x, sr=SR, n_fft=256, rank=3, max_iter=15, random_state=4 + i)
           for i, x in enumerate((a, b), start=1)]
    for got, want in zip(models, ref):
        np.testing.assert_array_equal(got.components_, want.components_)
    np.testing.assert_array_equal(est, separate(mix, ref, sr=SR, n_fft=256))
    by_stage = {s: [i.epoch for i in infos if i.stage == s] for s in ("source 1", "source 2")}
    assert by_stage == {"source 1": list(range(1, 16)), "source 2": list(range(1, 16))}
    with pytest.raises(ParameterError, match="at least two sources"):
        separate_with_examples(mix, [a], sr=SR, n_fft=256)


def test_cli_separate_is_the_pipeline_with_its_seed(tmp_path, notes):
    """`deepnmf separate --seed 3` writes what separate_with_examples(random_state=3) returns."""
    from deepnmf.cli.main import app

    a, b, mix = notes
    paths = []
    for name, sig in (("a.wav", a), ("b.wav", b), ("mix.wav", mix / 2)):
        sf.write(tmp_path / name, sig, SR, subtype="FLOAT")
        paths.append(str(tmp_path / name))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["separate", paths[2], "--source-example", paths[0], "--source-example", paths[1],
                                      "--n-fft", "256", "--rank", "3", "--iterations", "15", "--seed", "3",
                                      "--out", str(out), "--save-models", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    inputs = [sf.read(p, dtype="float64")[0] for p in paths]
    expected = separate_with_examples(inputs[2], inputs[:2], sr=SR, n_fft=256, rank=3, max_iter=15, random_state=3)
    for i in (1, 2):
        np.testing.assert_allclose(sf.read(out / f"source_{i}.wav", dtype="float64")[0], expected[i - 1], atol=1e-4)
    from deepnmf import load_model

    assert load_model(tmp_path / "models" / "source_2").random_state == 5  # seed + 2


# ------------------------------------------------ the iN-NMF protocol runners on generated "speakers"
@pytest.fixture(scope="module")
def speaker_folders(tmp_path_factory):
    """Three generated speakers of 26 s each (two files each), enough for the protocols' 25 s rule."""
    from deepnmf.datasets.synthetic import harmonic_notes

    root = tmp_path_factory.mktemp("timit-like")
    for k in range(3):
        folder = root / f"dr1-spk{k}"
        folder.mkdir()
        x = harmonic_notes(3, duration=26.0, seed=10 + k).audio
        sf.write(folder / "s1.wav", x[: 13 * SR], SR)
        sf.write(folder / "s2.wav", x[13 * SR:], SR)
    return root


def _tiny_config(model_dir):
    from deepnmf.experiments.transfer import ProtocolConfig

    return ProtocolConfig(rank=3, train_n_fft=512, sizes=(256, 512), max_epochs=3, nmf_iter=5, refit_iter=5,
                          train_seconds=2.0, test_seconds=2.5, model_dir=model_dir)


def test_resolution_transfer_runner(speaker_folders, tmp_path):
    from deepnmf.experiments.transfer import resolution_transfer, timit_speakers

    infos = []
    speakers = timit_speakers(speaker_folders)[:2]
    cfg = _tiny_config(tmp_path / "models")
    result = resolution_transfer(speakers, cfg, progress=infos.append)
    rows = result["rows"]
    assert [(r["speaker"], r["n_fft"]) for r in rows] == [(s.name, n) for s in speakers for n in (256, 512)]
    for r in rows:
        assert r["ratio"] == pytest.approx(r["kl_implicit"] / r["kl_nmf"]) and r["kl_nmf"] > 0
    for s in result["summary"]:
        sel = [r for r in rows if r["n_fft"] == s["n_fft"]]
        assert s["kl_nmf"] == pytest.approx(np.mean([r["kl_nmf"] for r in sel]))
    notices = [i.message for i in infos if i.epoch == 0]
    assert notices == [f"transfer: {s.name}" for s in speakers]
    assert [(i.epoch, i.max_epochs, i.stage) for i in infos if i.epoch] == [(1, 2, "transfer"), (2, 2, "transfer")]
    again = resolution_transfer(speakers, cfg)  # every model now comes from cfg.model_dir
    assert again["rows"] == rows


def test_two_speaker_separation_runner(speaker_folders, tmp_path):
    from deepnmf.experiments.transfer import two_speaker_separation, timit_speakers

    infos = []
    result = two_speaker_separation(timit_speakers(speaker_folders), _tiny_config(tmp_path / "models"), max_pairs=2,
                                    progress=infos.append)
    assert len(result["rows"]) == 2 * 2 * 2  # pairs x sizes x models
    for s in result["summary"]:
        sel = [r for r in result["rows"] if r["n_fft"] == s["n_fft"] and r["model"] == s["model"]]
        assert s["n_pairs"] == 2 and s["sdr"] == pytest.approx(np.mean([r["sdr"] for r in sel]))
    assert [i.epoch for i in infos if i.epoch] == [1, 2]
    assert infos[0].message == "separation: pair 1/2 dr1-spk0 + dr1-spk1"


@pytest.mark.parametrize("command", ["transfer", "separation"])
def test_experiment_commands_write_their_tables(speaker_folders, tmp_path, command):
    import json

    from deepnmf.cli.main import app

    out = tmp_path / command
    args = ["experiment", command, "--out", str(out), "--data", str(speaker_folders), "--max-speakers", "2",
            "--size", "256", "--train-n-fft", "512", "--rank", "2", "--epochs", "2", "--iterations", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / f"{command}.json").read_text())
    assert doc["config"]["sizes"] == [256] and doc["config"]["model_dir"] == str(out / "models")
    assert doc["environment"]["cpu"] and doc["environment"]["packages"]["torch"] == torch.__version__
    table = (out / f"{command}.md").read_text()
    assert table in result.output and table.count("\n| 256 |") == 1
    figure = "dictionary_sizes.png" if command == "transfer" else "separation.png"
    assert (out / figure).is_file()
