"""The synergy study runner: subject grouping of UCI files and the NMF vs VAE-NMF comparison."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepnmf.datasets.synthetic_emg import make_synthetic_emg
from deepnmf.emg.io import list_uci_files
from deepnmf.emg.preprocess import preprocess
from deepnmf.exceptions import DataError, ParameterError
from deepnmf.experiments.synergies import compare_methods, group_uci_subjects, rows_to_markdown, run_synergy_study


def test_uci_files_pair_by_session(data_dir, tmp_path):
    groups = group_uci_subjects(list_uci_files(data_dir / "emg" / "uci-gestures"))
    assert [[p.name for p in g] for g in groups] == [
        ["1_raw_data_11-19_23.03.16.txt.gz", "2_raw_data_11-20_23.03.16.txt.gz"],
        ["1_raw_data_13-12_22.03.16.txt.gz", "2_raw_data_13-13_22.03.16.txt.gz"],
    ]
    # the original layout: one folder per subject
    for subject in ("01", "02"):
        (tmp_path / subject).mkdir()
        for name in ("1_raw_data_10-00_01.01.16.txt", "2_raw_data_10-01_01.01.16.txt"):
            (tmp_path / subject / name).write_text("time\tchannel1\tclass\n")
    groups = group_uci_subjects(list_uci_files(tmp_path))
    assert [[p.parent.name for p in g] for g in groups] == [["01", "01"], ["02", "02"]]
    with pytest.raises(DataError, match="not a UCI gestures file name"):
        group_uci_subjects([tmp_path / "x.txt", tmp_path / "y.txt"])


@pytest.fixture(scope="module")
def envelopes():
    syn = make_synthetic_emg(n_channels=6, n_synergies=3, n_movements=2, n_repetitions=3,
                             repetition_duration=1.5, random_state=5)
    return syn, preprocess(syn.recording)


def test_study_defaults_and_rank_check(envelopes):
    _, env = envelopes
    study = run_synergy_study(env, rank=3, movements=[2], curve_ranks=[2, 3], n_restarts=2)
    assert study.settings["n_restarts"] == 2 and study.settings["cv_restarts"] == 2
    assert study.settings["curve_method"] == "nmf"
    (mov,) = study.movements
    assert mov.movement == 2 and list(mov.curve) == [2, 3]
    assert [b[0] for b in mov.repetition_bounds] == [1, 2, 3]
    assert mov.envelopes.shape == (450, 6)
    with pytest.raises(ParameterError, match=r"rank 7 is larger than the number of channels \(6\)"):
        run_synergy_study(env, rank=7)


def test_nmf_and_vae_nmf_find_the_same_planted_synergies(envelopes):
    syn, env = envelopes
    res = compare_methods(env, rank=3, methods=("nmf", "vae-nmf"), movements=[1], curve_ranks=[], n_restarts=2,
                          estimator_params={"vae-nmf": {"max_epochs": 50}})
    assert [r["movement"] for r in res["rows"]] == [1]
    for row in res["rows"]:
        for m in ("nmf", "vae-nmf"):
            assert row[m]["vaf"] > 0.9 and len(row[m]["heldout_vaf"]) == 3
        assert row["matched_cosine"] > 0.9  # both find the planted synergies
    table = rows_to_markdown("synthetic", res["rows"], ("nmf", "vae-nmf"))
    assert table.count("\n| ") == 2 and "matched cosine" in table


def test_study_progress_counts_the_work_units(envelopes):
    from deepnmf.experiments.synergies import work_units

    _, env = envelopes
    infos = []
    run_synergy_study(env, rank=2, curve_ranks=[1, 2], n_restarts=2, callback=infos.append)
    total = work_units(env, rank=2, method="nmf", n_restarts=2, curve_ranks=[1, 2])
    assert [i.epoch for i in infos] == list(range(1, total + 1))
    assert {i.max_epochs for i in infos} == {total} and {i.stage for i in infos} == {"synergies (nmf)"}
    assert infos[0].message == "restart 1" and infos[-1].message == "rank 2"


def _write_csv(syn, path):
    rec = syn.recording
    labels = np.zeros(rec.n_samples)
    for seg in rec.segments:
        labels[seg.start:seg.stop] = seg.movement
    header = ",".join(["time", *rec.channels, "task"])
    np.savetxt(path, np.column_stack([rec.times(), rec.data, labels]), delimiter=",", header=header, comments="",
               fmt="%.6g")
    return path


def test_synergies_from_files_is_load_preprocess_study(envelopes, tmp_path):
    """The pipeline on a file equals the three steps done by hand; run.json's extra numbers are consistent."""
    from deepnmf.emg.io import load_recording
    from deepnmf.emg.preprocess import preprocess
    from deepnmf.pipelines.synergies import synergies_from_files, write_synergy_outputs

    syn, _ = envelopes
    path = _write_csv(syn, tmp_path / "s.csv")
    infos = []
    run = synergies_from_files([path], format="csv", label_column="task", rank=3, n_restarts=1, max_curve_rank=2,
                               envelope_fs=50.0, random_state=3, callback=infos.append)
    env = preprocess(load_recording([path], format="csv", label_column="task"), envelope_fs=50.0)
    ref = run_synergy_study(env, rank=3, n_restarts=1, curve_ranks=[1, 2], random_state=3)
    assert run.study.to_json() == ref.to_json()
    assert infos[0].epoch == 0 and infos[0].message == "1 file(s): 6 channels at 1000 Hz, movements 1, 2"
    info = run.run_info()
    for m in run.study.movements:
        assert info["train_vaf_nnls"][str(m.movement)] >= m.fit.vaf - 1e-9  # NNLS activations are optimal
        assert len(info["heldout_vaf_transform"][str(m.movement)]) == 3
    paths = write_synergy_outputs(run, tmp_path / "out", figures=False)
    assert [p.name for p in paths] == ["synergies.json", "activations.csv", "run.json"]


def _write_uci(syn, path):
    """A UCI gestures file: tab-separated time (ms), channel1..n, class."""
    rec = syn.recording
    labels = np.zeros(rec.n_samples)
    for seg in rec.segments:
        labels[seg.start:seg.stop] = seg.movement
    cols = ["time", *[f"channel{i + 1}" for i in range(rec.n_channels)], "class"]
    np.savetxt(path, np.column_stack([rec.times() * 1000.0, rec.data, labels]), delimiter="\t",
               header="\t".join(cols), comments="", fmt="%.6g")


@pytest.fixture(scope="module")
def uci_folder(tmp_path_factory):
    """One generated subject in the UCI layout: two series, two movements, two repetitions each."""
    folder = tmp_path_factory.mktemp("uci")
    for series, seed in ((1, 11), (2, 12)):
        syn = make_synthetic_emg(n_channels=4, n_synergies=2, n_movements=2, n_repetitions=2,
                                 repetition_duration=1.0, random_state=seed)
        _write_uci(syn, folder / f"{series}_raw_data_10-0{series}_01.01.16.txt")
    return folder


def test_uci_protocol_runs_each_method_on_each_subject(uci_folder, tmp_path):
    from deepnmf.emg.io import list_uci_files, load_recording
    from deepnmf.experiments.synergies import uci_protocol, uci_report, write_uci_protocol

    infos = []
    result = uci_protocol(uci_folder, rank=2, methods=["nmf"], n_restarts=1, callback=infos.append)
    (subject,) = result["subjects"]
    assert [f.split("/")[-1] for f in subject["files"]] == [p.name for p in sorted(list_uci_files(uci_folder))]
    ref = compare_methods(preprocess(load_recording(list_uci_files(uci_folder), format="uci")), rank=2,
                          methods=["nmf"], n_restarts=1)
    assert subject["rows"] == ref["rows"] and [r["movement"] for r in ref["rows"]] == [1, 2]
    assert infos[0].message.startswith("subject 1 (1_raw_data") and {i.stage for i in infos[1:]} == {"subject 1 nmf"}
    write_uci_protocol(result, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["subject1"]["rows"] == subject["rows"]
    assert (tmp_path / "results.md").read_text() == uci_report(result)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["rank"] == 2 and run["methods"] == ["nmf"] and run["environment"]["cpu"]
    assert (tmp_path / "subject1-nmf" / "synergies.json").is_file() and (tmp_path / "subject1_vaf.png").is_file()


def test_experiment_synergies_command(uci_folder, tmp_path):
    from typer.testing import CliRunner

    from deepnmf.cli.main import app

    result = CliRunner().invoke(app, ["experiment", "synergies", "--out", str(tmp_path), "--data", str(uci_folder),
                                      "--rank", "2", "--methods", "nmf", "--restarts", "1"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "results.md").read_text()
    assert report in result.output and report.count("| 1 hand at rest |") == 1
    bad = CliRunner().invoke(app, ["experiment", "synergies", "--out", str(tmp_path), "--data", str(uci_folder),
                                   "--methods", "nmf,pca"])
    assert bad.exit_code == 2 and "method must be one of 'nmf', 'vae-nmf'; got 'pca'" in bad.output
