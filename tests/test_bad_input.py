"""Bad input everywhere: every case gives a correct result or a clear error naming the problem.

The command line answers bad input with a nonzero exit and one ``error:``
line, never a traceback; the library raises :class:`deepnmf.exceptions`
errors (never a bare numpy/torch/libsndfile exception, a hang or a NaN in an
output); legal but suspicious input (a rank above the number of frames, a
file shorter than one STFT frame) gives a warning. Files are generated here:
WAVs of every sample format and rate, FLAC, OGG, truncated and corrupt
headers, text named ``.wav``, EMG tables with missing columns or
non-numeric cells, model folders of the wrong type. ``hypothesis`` drives
the array APIs with arbitrary shapes and values.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from typer.testing import CliRunner

import deepnmf.cli.main  # noqa: F401 - registers the commands
from deepnmf import NMF, VAENMF, ImplicitNMF, load_model
from deepnmf.audio.io import load_audio
from deepnmf.cli.app import app
from deepnmf.datasets.synthetic import harmonic_notes
from deepnmf.exceptions import DataError, DeepNMFError, ModelFileError, NotFittedError, ParameterError
from deepnmf.models import make_estimator

SR = 16000


# ------------------------------------------------------------------ files
def _tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1320 * t)


def _write_files(root: Path) -> dict[str, Path]:
    """Every audio, matrix and EMG file the cases read; name -> path."""
    x = _tone(0.5, SR)
    f: dict[str, Path] = {}

    def wav(name: str, data: Any, sr: int = SR, **kw: Any) -> None:
        f[name] = root / (name if "." in name else f"{name}.wav")
        sf.write(f[name], data, sr, **kw)

    wav("good", x)
    wav("stereo", np.stack([x, 0.5 * x], axis=1))
    wav("pcm8", x, subtype="PCM_U8")
    wav("pcm24", x, subtype="PCM_24")
    wav("float", x.astype(np.float32), subtype="FLOAT")
    wav("good.flac", x, format="FLAC")
    wav("good.ogg", x, format="OGG", subtype="VORBIS")
    for rate in (8000, 22050, 44100, 48000, 96000):
        wav(f"sr{rate}", _tone(0.5, rate), rate)
    wav("silent", np.zeros_like(x))
    wav("short", x[:100])
    wav("zero-length", np.zeros(0))
    nan = x.astype(np.float32).copy()
    nan[100:200] = np.nan
    wav("nan", nan, subtype="FLOAT")
    inf = x.astype(np.float32).copy()
    inf[5] = np.inf
    wav("inf", inf, subtype="FLOAT")
    blob = f["good"].read_bytes()
    for name, data in {"truncated": blob[:30], "corrupt-header": b"RIFX" + blob[4:8] + b"JUNKfmt " + blob[16:],
                       "text": b"this is not audio\n" * 20, "empty-file": b""}.items():
        f[name] = root / f"{name}.wav"
        f[name].write_bytes(data)
    f["no-audio-folder"] = root / "nothing"
    f["no-audio-folder"].mkdir()
    (f["no-audio-folder"] / "notes.txt").write_text("no audio here")
    rng = np.random.default_rng(0)
    good = rng.gamma(1.0, 1.0, (60, 12))
    for name, arr in {"matrix": good, "negative": good - 1.0, "nan-matrix": np.where(good > 2, np.nan, good),
                      "inf-matrix": np.where(good > 2, np.inf, good), "empty-matrix": np.zeros((0, 12)),
                      "vector": good[0], "complex": good + 1j, "zeros": np.zeros((60, 12))}.items():
        f[name] = root / f"{name}.npy"
        np.save(f[name], arr)
    f["object-npy"] = root / "object.npy"
    np.save(f["object-npy"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    f["text-npy"] = root / "text.npy"
    f["text-npy"].write_text("1,2,3\n")
    f["wide-mask"] = root / "wide-mask.npy"
    np.save(f["wide-mask"], np.ones((60, 13)))
    _emg_files(root, f)
    return f


def _emg_files(root: Path, f: dict[str, Path]) -> None:
    """EMG CSVs: a good one and ones with missing columns, non-numeric cells, no rows."""
    rng = np.random.default_rng(1)
    t = np.arange(2000) / 1000.0
    emg = rng.standard_normal((2000, 3)) * np.abs(np.sin(2 * np.pi * 0.5 * t))[:, None]
    rows = ["time,m1,m2,m3"] + [f"{a:.4f},{b:.5f},{c:.5f},{d:.5f}" for a, (b, c, d) in zip(t, emg)]
    labels = (np.arange(2000) // 250) % 2  # rest, movement 1, rest, ...: four repetitions
    cases = {
        "emg": ["time,m1,m2,m3,label"] + [f"{r},{lab}" for r, lab in zip(rows[1:], labels)],
        "emg-no-time": ["m1,m2,m3"] + [r.split(",", 1)[1] for r in rows[1:]],
        "emg-non-numeric": rows[:50] + ["0.0490,abc,0.1,0.2"] + rows[51:],
        "emg-ragged": rows[:50] + ["0.0490,0.1"] + rows[51:],
        "emg-header-only": rows[:1],
        "emg-only-time": ["time"] + [r.split(",")[0] for r in rows[1:]],
    }
    for name, lines in cases.items():
        f[name] = root / f"{name}.csv"
        f[name].write_text("\n".join(lines) + "\n")
    f["emg-binary"] = root / "emg-binary.csv"
    f["emg-binary"].write_bytes(bytes(range(256)) * 4)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return _write_files(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture(scope="module")
def folders(files, tmp_path_factory) -> dict[str, Path]:
    """Saved models for the enhance/separate cases: an NMF dictionary, a frame network."""
    root = tmp_path_factory.mktemp("models")
    from deepnmf.audio.tf import magnitude, stft

    x, _ = load_audio(files["good"], sr=SR)
    V = magnitude(stft(x, n_fft=512, hop=128), 1.0).numpy()
    nmf = make_estimator("nmf", 3, max_iter=5, random_state=0).fit(V)
    other = make_estimator("nmf", 3, max_iter=5, random_state=0).fit(V[:, :129])
    out = {"nmf": nmf.save(root / "nmf"), "nmf-129": other.save(root / "nmf-129"), "not-a-model": root / "plain"}
    out["not-a-model"].mkdir()
    (out["not-a-model"] / "readme.txt").write_text("hello")
    return out


# ------------------------------------------------------------------ the command line
def _cli(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_cli_error(result, *words: str) -> None:
    """A clean refusal: nonzero exit through typer (no exception escaped), one ``error:`` line naming it."""
    assert result.exit_code in (1, 2), result.output  # 1: bad data or files, 2: bad options (cli.app)
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "unexpected" not in lines[0], lines[0]  # the handler's wording for an exception deepnmf did not mean
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def _train(files, name: str, tmp_path: Path, *extra: Any):
    return _cli("train", files[name], "--rank", 2, "--max-epochs", 2, "--seed", 0, "--no-figures", "--out",
                tmp_path / "out", *extra)


# name of the input file, extra options, words the error must contain
TRAIN_ERRORS = {
    "text": ("text", (), ("cannot read audio",)),
    "empty-file": ("empty-file", (), ("cannot read audio",)),
    "truncated": ("truncated", (), ("cannot read audio",)),
    "corrupt-header": ("corrupt-header", (), ("cannot read audio",)),
    "zero-length": ("zero-length", (), ("empty",)),
    "silent": ("silent", (), ("silent",)),
    "nan-samples": ("nan", (), ("nan",)),
    "inf-samples": ("inf", (), ("infinite",)),
    "no-audio-in-folder": ("no-audio-folder", (), ("no audio files",)),
    "negative-npy": ("negative", ("--model", "nmf"), ("negative",)),
    "nan-npy": ("nan-matrix", ("--model", "nmf"), ("nan",)),
    "inf-npy": ("inf-matrix", ("--model", "nmf"), ("infinite",)),
    "empty-npy": ("empty-matrix", ("--model", "nmf"), ("empty",)),
    "1-D-npy": ("vector", ("--model", "nmf"), ("1-d",)),
    "complex-npy": ("complex", ("--model", "nmf"), ("real",)),
    "object-npy": ("object-npy", ("--model", "nmf"), ("cannot read",)),
    "text-npy": ("text-npy", ("--model", "nmf"), ("cannot read",)),
    "all-zero-npy-vae": ("zeros", (), ("all zeros",)),
    "implicit-on-npy": ("matrix", ("--model", "implicit"), ("frequency",)),
    "rank-0": ("good", ("--rank", 0), ("rank",)),
    "max-epochs-0": ("good", ("--max-epochs", 0), ("max_epochs",)),
    "unknown-model": ("good", ("--model", "pca"), ("model must be one of",)),
    "unknown-likelihood": ("good", ("--likelihood", "cauchy"), ("likelihood",)),
    "unknown-beta-loss": ("matrix", ("--model", "nmf", "--beta-loss", "euclid"), ("beta",)),
    "cuda-without-cuda": ("good", ("--device", "cuda"), ("cuda",)),
    "bad-device": ("good", ("--device", "tpu"), ("device",)),
    "n-fft-0": ("good", ("--n-fft", 0), ("n_fft",)),
    "hop-0": ("good", ("--hop", 0), ("hop",)),
    "sr-0": ("good", ("--sr", 0), ("sampling rate",)),
    "mask-shape": ("matrix", ("--model", "nmf", "--mask", "WIDE"), ("mask",)),
    "resume-without-checkpoint": ("good", ("--resume",), ("no checkpoint",)),
    "absurd-rank-memory": ("matrix", ("--model", "nmf", "--rank", 10**9), ("memory",)),
    "absurd-rank-memory-vae": ("matrix", ("--rank", 10**9), ("memory",)),
    "points-cqt-at-8-khz": ("good", ("--model", "implicit-points", "--sr", 8000), ("constant-q",)),
    "checkpoint-every-negative": ("good", ("--checkpoint-every", -1), ("checkpoint_every",)),
    "nmf-checkpoint-not-10": ("matrix", ("--model", "nmf", "--checkpoint-every", 7), ("multiples of 10",)),
}


@pytest.mark.parametrize("case", list(TRAIN_ERRORS))
def test_train_refuses(case, files, tmp_path):
    name, extra, words = TRAIN_ERRORS[case]
    extra = tuple(files["wide-mask"] if e == "WIDE" else e for e in extra)
    assert_cli_error(_train(files, name, tmp_path, *extra), *words)


@pytest.mark.parametrize("name", ["stereo", "pcm8", "pcm24", "float", "good.flac", "good.ogg",
                                  "sr8000", "sr22050", "sr44100", "sr48000", "sr96000"])
def test_train_reads_every_format_and_rate(name, files, tmp_path):
    """Stereo, 8/24-bit, float, FLAC, OGG, 8-96 kHz: read, mixed to mono, resampled to --sr; a finite model."""
    result = _train(files, name, tmp_path, "--model", "nmf", "--n-fft", 256, "--hop", 128)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "train.json").read_text())
    assert report["data"]["sr"] == SR and report["data"]["n_features"] == 129
    assert report["data"]["seconds"] == pytest.approx(0.5, abs=0.01)
    assert np.isfinite(load_model(tmp_path / "out").components_).all()


def test_a_file_shorter_than_one_frame_warns(files, tmp_path):
    with pytest.warns(UserWarning, match="shorter than one STFT frame"):
        result = _train(files, "short", tmp_path, "--model", "nmf")
    assert result.exit_code == 0, result.output


def test_rank_above_the_number_of_frames_warns(files, tmp_path):
    with pytest.warns(UserWarning, match="more components than"):
        result = _train(files, "matrix", tmp_path, "--model", "vae-nmf", "--rank", 100)
    assert result.exit_code == 0, result.output


ENHANCE_ERRORS = {
    "wrong-model-type": (lambda f, m: ("--model", m["nmf"]), ("not a", "enhancer")),
    "not-a-model-folder": (lambda f, m: ("--model", m["not-a-model"]), ("not a model folder",)),
    "missing-folder": (lambda f, m: ("--model", m["nmf"].parent / "missing"), ("not a model folder",)),
    "mismatched-dictionaries": (lambda f, m: ("--speech-model", m["nmf"], "--noise-model", m["nmf-129"]),
                                ("257 bins",)),
}


@pytest.mark.parametrize("case", list(ENHANCE_ERRORS))
def test_enhance_refuses(case, files, folders, tmp_path):
    options, words = ENHANCE_ERRORS[case]
    result = _cli("enhance", files["good"], "--output", tmp_path / "out.wav", *options(files, folders))
    assert_cli_error(result, *words)


@pytest.mark.parametrize("noisy,words", [("silent", ("silent",)), ("text", ("cannot read audio",)),
                                         ("nan", ("nan",)), ("zero-length", ("empty",))])
def test_enhance_refuses_bad_audio(noisy, words, files, folders, tmp_path):
    result = _cli("enhance", files[noisy], "--output", tmp_path / "out.wav", "--speech-model", folders["nmf"],
                  "--noise-model", folders["nmf"])
    assert_cli_error(result, *words)


@pytest.mark.parametrize("mixture,example,words", [
    ("silent", "good", ("silent",)), ("good", "text", ("cannot read audio",)),
    ("truncated", "good", ("cannot read audio",)), ("good", "zero-length", ("empty",)),
])
def test_separate_refuses(mixture, example, words, files, tmp_path):
    result = _cli("separate", files[mixture], "--source-example", files[example], "--source-example", files["good"],
                  "--rank", 2, "--iterations", 3, "--n-fft", 256, "--out", tmp_path / "sep")
    assert_cli_error(result, *words)


@pytest.mark.parametrize("name,words", [
    ("emg-no-time", ("time",)), ("emg-non-numeric", ("numeric",)), ("emg-ragged", ("columns",)),
    ("emg-header-only", ("no samples",)), ("emg-only-time", ("no channel",)), ("emg-binary", ("text",)),
])
def test_synergies_refuse_bad_emg(name, words, files, tmp_path):
    result = _cli("synergies", files[name], "--format", "csv", "--out", tmp_path / "syn", "--rank", 2,
                  "--no-figures")
    assert_cli_error(result, *words)


def test_train_on_good_emg_envelopes(files, tmp_path):
    """The good EMG table is usable (the refusals above are about the table, not the command)."""
    result = _cli("synergies", files["emg"], "--format", "csv", "--label-column", "label", "--out",
                  tmp_path / "syn", "--rank", 2, "--no-figures", "--restarts", 1, "--max-curve-rank", 0)
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ the library
def _estimators() -> dict[str, Callable[[], Any]]:
    return {
        "nmf": lambda: NMF(2, max_iter=5, random_state=0),
        "vae-nmf": lambda: VAENMF(2, hidden=(8,), max_epochs=2, random_state=0),
        "implicit": lambda: ImplicitNMF(2, max_epochs=2, hidden=8, n_octaves=2, random_state=0),
    }


_good = np.random.default_rng(0).gamma(1.0, 1.0, (40, 10))
BAD_ARRAYS = {
    "negative": (_good - 1.0, "Negative"),
    "nan": (np.where(_good > 2, np.nan, _good), "NaN"),
    "inf": (np.where(_good > 2, np.inf, _good), "infinite"),
    "empty-rows": (np.zeros((0, 10)), "empty"),
    "empty-columns": (np.zeros((10, 0)), "empty"),
    "1-D": (_good[0], "2-D"),
    "3-D": (_good[None], "2-D"),
    "complex": (_good + 0j, "real-valued"),
    "strings": (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    "torch-nan": (torch.full((5, 4), float("nan")), "NaN"),
}


@pytest.mark.parametrize("model", list(_estimators()))
@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_estimators_refuse_bad_arrays(model, case):
    X, message = BAD_ARRAYS[case]
    with pytest.raises(DataError, match=message):
        _estimators()[model]().fit(X)


@pytest.mark.parametrize("model", list(_estimators()))
def test_transform_with_another_feature_count(model):
    est = _estimators()[model]().fit(_good)
    with pytest.raises(DataError, match="features"):
        est.transform(_good[:, :7])
    with pytest.raises(NotFittedError, match="not fitted"):
        _estimators()[model]().transform(_good)


@pytest.mark.parametrize("model,params", [
    ("nmf", {}), ("vae-nmf", {"hidden": (8,)}), ("implicit", {"hidden": 8}),
])
def test_memory_that_would_not_fit_is_refused_up_front(model, params):
    est = make_estimator(model, 10**9, **params)
    with pytest.raises(ParameterError, match=r"GiB .*memory"):
        est.fit(_good)


def test_ranks_are_checked():
    for rank in (0, -3, 2.5, "4", True):
        with pytest.raises(ParameterError, match="n_components"):
            VAENMF(rank).fit(_good)


def test_load_model_refuses_files_and_strangers(folders, files, tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        load_model(files["good"])  # a file, not a folder
    broken = Path(shutil.copytree(folders["nmf"], tmp_path / "broken"))
    (broken / "config.json").write_text("{")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(broken)
    with pytest.raises(ModelFileError, match="holds a 'NMF' model"):
        VAENMF.load(folders["nmf"])


def test_audio_reader_formats_agree(files):
    """Every format and rate reads to the same mono 16 kHz tone (an independent check: the samples)."""
    ref, _ = load_audio(files["good"], sr=SR)
    for name in ("pcm24", "float", "good.flac"):
        x, sr = load_audio(files[name], sr=SR)
        assert sr == SR and np.allclose(x, ref, atol=1e-4), name
    x, _ = load_audio(files["stereo"], sr=SR)
    assert np.allclose(x, 0.75 * ref, atol=1e-4)  # the mean of the channels
    for rate in (8000, 44100, 96000):
        x, sr = load_audio(files[f"sr{rate}"], sr=SR)
        assert sr == SR and abs(x.size - ref.size) <= 1


# ------------------------------------------------------------------ hypothesis: any array
_any_arrays = arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=st.tuples(st.integers(0, 12), st.integers(0, 9)),
    elements=st.one_of(st.floats(-10.0, float(np.float32(1e30)), width=32), st.sampled_from([0.0, np.nan, np.inf, -np.inf])),
)


def _huge(X: np.ndarray) -> bool:
    """Values whose sum of squares overflows X's dtype (refused rather than turned into NaN)."""
    return X.size > 0 and float(np.abs(X).max()) > np.sqrt(float(np.finfo(X.dtype).max) / X.size)


def _refusable(X: np.ndarray) -> bool:
    """What the estimators must refuse: empty, non-finite, negative or all-zero data."""
    return X.size == 0 or not np.isfinite(X).all() or bool((X < 0).any()) or not X.any()


@settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(X=_any_arrays)
def test_nmf_on_any_array_fits_or_refuses(X):
    """Any 2-D float array: a DataError naming the problem, or finite nonnegative factors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = NMF(2, max_iter=3, init="random", random_state=0)
            W = est.fit_transform(X)
        except DeepNMFError as err:
            assert _refusable(X) or ("too large" in str(err) and _huge(X)), f"refused good data: {err}"
            assert "\n" not in str(err)
            return
    assert np.isfinite(W).all() and (W >= 0).all()
    assert np.isfinite(est.components_).all() and (est.components_ >= 0).all()
    assert X.size and np.isfinite(X).all() and (X >= 0).all()


@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(X=_any_arrays)
def test_vae_on_any_array_fits_or_refuses(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = VAENMF(2, hidden=(4,), max_epochs=1, random_state=0).fit(X)
        except DeepNMFError as err:
            # besides bad data: fewer than 2 samples, or values whose squares overflow (named in the message)
            assert (_refusable(X) or X.shape[0] < 2 or ("too large" in str(err) and _huge(X.astype(np.float32)))
                    or ("too small" in str(err) and X.max() < 1e-18)), f"refused good data: {err}"
            return
    assert X.size and np.isfinite(X).all() and (X >= 0).all()
    assert np.isfinite(est.components_).all() and np.isfinite(est.transform(X)).all()


@settings(max_examples=20, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(X=_any_arrays)
def test_implicit_on_any_array_fits_or_refuses(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est = ImplicitNMF(2, max_epochs=2, hidden=4, n_octaves=2, random_state=0).fit(X)
        except DeepNMFError as err:
            assert _refusable(X) or ("too large" in str(err) and _huge(X.astype(np.float32))), f"refused: {err}"
            return
    assert X.size and np.isfinite(X).all() and (X >= 0).all()
    assert np.isfinite(est.components_).all() and (est.components_ >= 0).all()
    assert np.isfinite(est.loss_curve_).all()


@pytest.mark.parametrize("name", ["stereo", "pcm24", "good.ogg", "sr8000", "sr96000"])
def test_enhance_and_separate_read_every_format(name, files, folders, tmp_path):
    """The other commands read the same formats: a finite output of the input's duration at the working rate."""
    result = _cli("enhance", files[name], "--output", tmp_path / "enh.wav", "--speech-model", folders["nmf"],
                  "--noise-model", folders["nmf"])
    assert result.exit_code == 0, result.output
    y, sr = sf.read(tmp_path / "enh.wav")
    assert sr == SR and abs(y.size - SR // 2) <= 2 and np.isfinite(y).all()
    result = _cli("separate", files[name], "--source-example", files["good"], "--source-example", files["pcm8"],
                  "--rank", 2, "--iterations", 3, "--n-fft", 256, "--out", tmp_path / "sep")
    assert result.exit_code == 0, result.output
    for i in (1, 2):
        y, sr = sf.read(tmp_path / "sep" / f"source_{i}.wav")
        assert sr == SR and abs(y.size - SR // 2) <= 2 and np.isfinite(y).all()


def test_vae_refuses_data_on_a_degenerate_scale():
    """Below 1e-18 training gives NaN at any dtype: refused up front; 1e-12 still trains."""
    with pytest.raises(DataError, match="too small for VAENMF"):
        VAENMF(2, hidden=(4,), max_epochs=1, random_state=0).fit(_good * 1e-25)
    est = VAENMF(2, hidden=(4,), max_epochs=1, random_state=0).fit(_good * 1e-12)
    assert np.isfinite(est.components_).all()
