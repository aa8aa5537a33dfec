"""EMG loaders: real UCI gestures and gait files, CSV, Ninapro .mat, bad input."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from deepnmf.emg.io import (
    Recording,
    Segment,
    concatenate,
    load_csv,
    load_cycles,
    load_gait,
    load_ninapro,
    load_recording,
    load_uci,
)
from deepnmf.exceptions import DataError, ParameterError

# files of one subject: the prefix is the series, the date-time stamp the session
UCI_SUBJECT = ["1_raw_data_11-19_23.03.16.txt.gz", "2_raw_data_11-20_23.03.16.txt.gz"]
GAIT = "RAW_DATA_ID0012_TW_01_emg.csv"


@pytest.fixture(scope="module")
def uci_path(data_dir):
    return data_dir / "emg" / "uci-gestures" / UCI_SUBJECT[0]


def test_uci_series_has_two_repetitions_of_six_gestures(uci_path):
    rec = load_uci(uci_path)
    assert rec.channels == [f"channel{i}" for i in range(1, 9)]
    assert rec.fs == 1000.0
    assert rec.movements() == [1, 2, 3, 4, 5, 6]
    for m in rec.movements():
        reps = rec.repetitions(m)
        assert [s.repetition for s in reps] == [1, 2]
        # every gesture lasts 1.5-2.2 s in these files
        assert all(1.4 < s.n_samples / rec.fs < 2.3 for s in reps)


def test_uci_grid_is_sample_and_hold_of_the_file(uci_path):
    raw = np.loadtxt(uci_path, skiprows=1)
    rec = load_uci(uci_path)
    t = raw[:, 0] / 1000.0
    rng = np.random.default_rng(0)
    for i in rng.integers(0, rec.n_samples, 50):
        t_grid = t[0] + i / rec.fs
        j = np.flatnonzero(t <= t_grid + 1e-9)[-1]  # naive: last stamp at or before
        np.testing.assert_array_equal(rec.data[i], raw[j, 1:9])
    # the labels of the segments agree with the class column at the same times
    for seg in rec.segments:
        mid = t[0] + (seg.start + seg.stop) / 2 / rec.fs
        assert raw[np.flatnonzero(t <= mid)[-1], -1] == seg.movement
    assert 50 < rec.meta["distinct_rate_hz"] < 250


def test_uci_plain_text_equals_gzip(uci_path, tmp_path):
    plain = tmp_path / "series.txt"
    with gzip.open(uci_path, "rb") as src, plain.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    a, b = load_uci(uci_path), load_uci(plain)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.segments == b.segments


def test_two_series_of_one_subject_give_four_repetitions(data_dir):
    paths = [data_dir / "emg" / "uci-gestures" / f for f in UCI_SUBJECT]
    rec = load_recording(paths, format="uci")
    first = load_uci(paths[0])
    assert rec.n_samples == first.n_samples + load_uci(paths[1]).n_samples
    for m in range(1, 7):
        reps = rec.repetitions(m)
        assert [s.repetition for s in reps] == [1, 2, 3, 4]
        assert reps[2].start >= first.n_samples  # repetitions 3-4 come from the second file
    assert rec.meta["sources"] == [str(p) for p in paths]


def test_gait_recording_with_sibling_cycles(data_dir):
    folder = data_dir / "emg" / "gait-13ch"
    rec = load_recording(folder / GAIT, format="gait")
    assert rec.channels == ["ME", "MA", "FL", "RF", "VM", "VL", "ST", "BF", "TA", "PL", "GM", "GL", "SO"]
    assert rec.fs == pytest.approx(1000.0)
    rows = load_cycles(folder / "RAW_DATA_ID0012_TW_01_cycles.csv")
    assert rows.shape == (6, 2)
    # complete cycles: one fewer than the stance starts; each from one stance start to the next
    assert len(rec.segments) == rows.shape[0] - 1
    t0 = np.loadtxt(folder / GAIT, delimiter=",", skiprows=1, max_rows=1)[0]
    for seg, (start, swing), nxt in zip(rec.segments, rows[:-1], rows[1:, 0]):
        assert seg.kind == "cycle" and seg.movement == "gait"
        assert seg.start == round((start - t0) * 1000) and seg.stop == round((nxt - t0) * 1000)
        assert seg.phases == (round((swing - t0) * 1000) - seg.start,)
    explicit = load_gait(folder / GAIT, cycles=folder / "RAW_DATA_ID0012_TW_01_cycles.csv")
    assert explicit.segments == rec.segments


def test_csv_keeps_channel_names_and_labels(tmp_path):
    fs = 500.0
    t = np.arange(1000) / fs
    labels = np.r_[np.zeros(100), np.full(300, 2), np.zeros(200), np.full(300, 2), np.zeros(100)]
    x = np.random.default_rng(0).standard_normal((1000, 3))
    path = tmp_path / "rec.csv"
    np.savetxt(path, np.column_stack([t, x, labels]), delimiter=",", header="time,biceps,triceps,deltoid,task", comments="")
    rec = load_csv(path, label_column="task")
    assert rec.channels == ["biceps", "triceps", "deltoid"]
    assert rec.fs == pytest.approx(fs)
    np.testing.assert_allclose(rec.data, x)
    assert [(s.start, s.stop, s.movement, s.repetition) for s in rec.segments] == [(100, 400, 2, 1), (600, 900, 2, 2)]
    only = load_csv(path, channels=["deltoid", "biceps"])
    np.testing.assert_allclose(only.data, x[:, [2, 0]])


def test_ninapro_mat(tmp_path):
    from scipy.io import savemat

    n = 600
    stim = np.zeros(n, int)
    rep = np.zeros(n, int)
    for k, (a, b) in enumerate([(50, 150), (250, 350), (450, 550)]):
        stim[a:b], rep[a:b] = 3, k + 1
    emg = np.abs(np.random.default_rng(1).standard_normal((n, 10)))
    path = tmp_path / "S1_A1_E1.mat"
    savemat(path, {"emg": emg, "restimulus": stim[:, None], "rerepetition": rep[:, None]})
    rec = load_ninapro(path)
    assert rec.fs == 100.0 and rec.n_channels == 10
    assert [(s.start, s.stop, s.movement, s.repetition) for s in rec.segments] == [
        (50, 150, 3, 1), (250, 350, 3, 2), (450, 550, 3, 3)]
    assert rec.meta["already_rectified"]
    # the unrefined label keys are accepted too, and a 'frequency' entry sets fs
    savemat(path, {"emg": emg, "stimulus": stim[:, None], "repetition": rep[:, None], "frequency": 2000})
    assert load_ninapro(path).fs == 2000.0
    savemat(path, {"data": emg})
    with pytest.raises(DataError, match="no 'emg' variable"):
        load_ninapro(path)


def test_unknown_format_is_a_parameter_error(uci_path):
    with pytest.raises(ParameterError, match="unknown EMG format 'edf'; choose one of csv, uci, ninapro, gait"):
        load_recording(uci_path, format="edf")


def test_wrong_files_give_clear_errors(tmp_path, data_dir):
    gait = data_dir / "emg" / "gait-13ch" / GAIT
    with pytest.raises(DataError, match="not a UCI gestures file"):
        load_uci(gait)
    with pytest.raises(FileNotFoundError):
        load_recording(tmp_path / "missing.csv", format="csv")
    lonely = tmp_path / "walk_emg.csv"
    lonely.write_text("time,a,b\n0.000,1,2\n0.001,2,3\n0.002,1,1\n")
    with pytest.raises(DataError, match="no cycle-time file found"):
        load_gait(lonely)
    bad = tmp_path / "bad.csv"
    bad.write_text("time,a\n0.0,1\n0.0,2\n")
    with pytest.raises(DataError, match="strictly increasing"):
        load_csv(bad)


def test_concatenate_requires_matching_channels():
    a = Recording(np.ones((10, 2)), 100.0, ["a", "b"], [Segment(0, 5, 1, 1)])
    b = Recording(np.ones((10, 2)), 100.0, ["a", "c"], [Segment(0, 5, 1, 1)])
    with pytest.raises(DataError, match="channel names differ"):
        concatenate([a, b])
    joined = concatenate([a, a])
    assert [(s.start, s.repetition) for s in joined.segments] == [(0, 1), (10, 2)]
    with pytest.raises(DataError, match="movement 7 is not in this recording"):
        joined.repetitions(7)
