"""``deepnmf synergies``: output files and schema, real gait and UCI files, bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import deepnmf.cli.synergies  # noqa: F401  (registers the command)
from deepnmf.cli.app import app
from deepnmf.datasets.synthetic_emg import make_synthetic_emg

MOVEMENT_KEYS = {"movement", "channels", "synergies", "vaf", "vaf_per_channel", "heldout_vaf", "vaf_curve"}


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    """A CSV with a time column, 6 named channels and a task label column (3 repetitions)."""
    syn = make_synthetic_emg(n_channels=6, n_synergies=3, n_repetitions=3, repetition_duration=1.5, random_state=3)
    rec = syn.recording
    labels = np.zeros(rec.n_samples)
    for seg in rec.segments:
        labels[seg.start : seg.stop] = seg.movement
    path = tmp_path_factory.mktemp("emg") / "subject.csv"
    header = ",".join(["time", *rec.channels, "task"])
    np.savetxt(path, np.column_stack([rec.times(), rec.data, labels]), delimiter=",", header=header, comments="", fmt="%.6g")
    return path, syn


def _run(*args):
    result = CliRunner().invoke(app, ["synergies", *map(str, args)])
    return result, result.output + (result.stderr if hasattr(result, "stderr") else "")


def test_csv_run_writes_schema_activations_and_figures(synthetic_csv, tmp_path):
    path, syn = synthetic_csv
    out = tmp_path / "out"
    result, text = _run(path, "--format", "csv", "--label-column", "task", "--rank", "3", "--out", out, "--restarts", "2", "--max-curve-rank", "4")
    assert result.exit_code == 0, text
    doc = json.loads((out / "synergies.json").read_text())
    assert set(doc) == {"preprocessing", "movements"}
    assert doc["preprocessing"]["bandpass_applied"]["type"] == "bandpass"
    (mov,) = doc["movements"]
    assert set(mov) == MOVEMENT_KEYS
    assert mov["channels"] == [f"m{i}" for i in range(1, 7)]
    W = np.array(mov["synergies"])
    assert W.shape == (3, 6)
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0)
    assert len(mov["heldout_vaf"]) == 3 and len(mov["vaf_per_channel"]) == 6
    assert list(mov["vaf_curve"]) == ["1", "2", "3", "4"]
    assert mov["vaf"] > 0.95 and mov["vaf_curve"]["3"] == pytest.approx(mov["vaf"], abs=0.01)
    with (out / "activations.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["movement", "repetition", "sample", "time", "S1", "S2", "S3"]
    assert {r["repetition"] for r in rows} == {"1", "2", "3"}
    assert len(rows) == 3 * 150  # 1.5 s repetitions at the 100 Hz envelope rate
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["movement-1_activations.png", "movement-1_reconstruction.png", "movement-1_synergies.png", "vaf_curve.png"]
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "nmf" and run["n_restarts"] == 2
    assert run["environment"]["cpu"] and run["environment"]["packages"]["numpy"] == np.__version__
    assert run["train_vaf_nnls"]["1"] >= mov["vaf"] - 1e-9  # NNLS activations are optimal for the synergies
    assert len(run["heldout_vaf_transform"]["1"]) == 3


def test_gait_end_to_end_with_cycle_normalised_envelopes(data_dir, tmp_path):
    emg = data_dir / "emg" / "gait-13ch" / "RAW_DATA_ID0012_TW_01_emg.csv"
    out = tmp_path / "gait"
    result, text = _run(emg, "--format", "gait", "--rank", "4", "--out", out, "--restarts", "2", "--max-curve-rank", "5")
    assert result.exit_code == 0, text
    doc = json.loads((out / "synergies.json").read_text())
    assert doc["preprocessing"]["time_points"] == 200
    (mov,) = doc["movements"]
    assert mov["movement"] == "gait" and len(mov["channels"]) == 13
    assert len(mov["heldout_vaf"]) == 5  # one per complete cycle
    assert mov["vaf"] > 0.85 and min(mov["heldout_vaf"]) > 0.5
    with (out / "activations.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 * 200
    assert rows[100]["cycle_percent"] == "50" and rows[0]["repetition"] == "1" and rows[-1]["repetition"] == "5"
    assert (out / "figures" / "movement-gait_reconstruction.png").stat().st_size > 10_000
    assert (out / "figures" / "movement-gait_mean_cycle.png").is_file()


def test_uci_one_gesture(data_dir, tmp_path):
    folder = data_dir / "emg" / "uci-gestures"
    files = [folder / "1_raw_data_11-19_23.03.16.txt.gz", folder / "2_raw_data_11-20_23.03.16.txt.gz"]
    out = tmp_path / "uci"
    result, text = _run(*files, "--format", "uci", "--movement", "4", "--out", out, "--restarts", "2",
                        "--max-curve-rank", "0", "--no-figures")
    assert result.exit_code == 0, text
    (mov,) = json.loads((out / "synergies.json").read_text())["movements"]
    assert mov["movement"] == 4 and mov["vaf"] >= 0.9
    assert len(mov["heldout_vaf"]) == 4 and mov["vaf_curve"] == {}
    assert not (out / "figures").exists()


@pytest.mark.parametrize(
    ("args", "message", "code"),  # a wrong option exits 2, options the data does not have 1 (a data error)
    [
        (["--format", "edf"], "unknown EMG format 'edf'", 2),
        (["--format", "csv", "--rank", "7"], "rank 7 is larger than the number of channels (6)", 2),
        (["--format", "csv", "--method", "pca"], "method must be one of 'nmf', 'vae-nmf'", 2),
        (["--format", "csv", "--movement", "9"], "movement '9' is not in the recording", 1),
    ],
)
def test_bad_options_exit_with_a_message(synthetic_csv, tmp_path, args, message, code):
    path, _ = synthetic_csv
    result, text = _run(path, *args, "--label-column", "task", "--out", tmp_path / "o", "--restarts", "1", "--max-curve-rank", "0")
    assert result.exit_code == code
    assert message in text
    assert "Traceback" not in text


def test_dead_channel_stops_or_is_dropped(tmp_path):
    rng = np.random.default_rng(0)
    n, fs = 3000, 1000.0
    x = rng.standard_normal((n, 4)) * (1 + np.sin(np.linspace(0, 12, n)))[:, None]
    x[:, 2] = 0.0
    path = tmp_path / "walk_emg.csv"
    np.savetxt(path, np.column_stack([np.arange(n) / fs, x]), delimiter=",", header="time,a,b,dead,d", comments="")
    (tmp_path / "walk_cycles.csv").write_text("V1,V2\n0.2,0.8\n1.2,1.8\n2.2,2.8\n")
    result, text = _run(path, "--format", "gait", "--rank", "2", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "dead are constant or all zero" in text
    result, text = _run(path, "--format", "gait", "--rank", "2", "--out", tmp_path / "o", "--drop-dead-channels",
                        "--restarts", "1", "--max-curve-rank", "2")
    assert result.exit_code == 0, text
    assert "warning: dropping constant/all-zero channel(s): dead" in text
    (mov,) = json.loads((tmp_path / "o" / "synergies.json").read_text())["movements"]
    assert mov["channels"] == ["a", "b", "d"] and len(mov["heldout_vaf"]) == 2


def test_single_repetition_warns_and_reports_no_heldout_vaf(tmp_path):
    rng = np.random.default_rng(1)
    n, fs = 3000, 1000.0
    x = rng.standard_normal((n, 3)) * (1 + np.sin(np.linspace(0, 12, n)))[:, None]
    path = tmp_path / "one_emg.csv"
    np.savetxt(path, np.column_stack([np.arange(n) / fs, x]), delimiter=",", header="time,a,b,c", comments="")
    (tmp_path / "one_cycles.csv").write_text("V1,V2\n0.2,0.8\n1.4,2.0\n")
    result, text = _run(path, "--format", "gait", "--rank", "2", "--out", tmp_path / "o", "--restarts", "1", "--max-curve-rank", "0")
    assert result.exit_code == 0, text
    assert "cross-validation needs at least 2 repetitions" in text
    (mov,) = json.loads((tmp_path / "o" / "synergies.json").read_text())["movements"]
    assert mov["heldout_vaf"] == []
