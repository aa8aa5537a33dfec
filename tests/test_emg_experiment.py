"""The synergy study runner: subject grouping of UCI files and the NMF vs VAE-NMF comparison."""
from __future__ import annotations

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
