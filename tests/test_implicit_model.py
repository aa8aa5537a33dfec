"""ImplicitNMF: training properties, resolution transfer, points mode, save/load, errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from deepnmf import NMF, ImplicitNMF
from deepnmf.audio import points as P
from deepnmf.audio.tf import stft_freqs
from deepnmf.divergences import beta_divergence
from deepnmf.exceptions import DataError, NotFittedError, ParameterError
from conftest import needs_cxx
from deepnmf.models import _implicit_training as T
from deepnmf.models._implicit_training import data_term, divergence_terms, grid_objective
from deepnmf.nn.implicit import pointwise_loss

SR = 8000
SMALL = {"n_octaves": 6, "hidden": 16}


def planted_atoms(freqs: np.ndarray) -> np.ndarray:
    """Three smooth nonnegative atoms of frequency (Hz): harmonic bumps, ``(3, n_freqs)``."""
    atoms = []
    for f0 in (300.0, 500.0, 1100.0):
        a = sum(np.exp(-0.5 * ((freqs - h * f0) / 60.0) ** 2) / h for h in (1, 2, 3))
        atoms.append(a + 0.01)
    return np.array(atoms)


def planted_data(n_fft: int, n_frames: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    freqs = stft_freqs(n_fft, SR)
    H = rng.gamma(0.5, 1.0, size=(n_frames, 3))
    return H @ planted_atoms(freqs), freqs


@pytest.fixture(scope="module")
def grid_model():
    X, freqs = planted_data(128)
    model = ImplicitNMF(3, max_epochs=150, random_state=0, **SMALL).fit(X, freqs=freqs, sr=SR)
    return model, X, freqs


def test_grid_training_reduces_the_loss_and_reports_it_honestly(grid_model):
    model, X, _ = grid_model
    assert model.n_iter_ == 150 and len(model.loss_curve_) == 151
    assert model.loss_curve_[-1] < 0.1 * model.loss_curve_[0]
    Y = torch.as_tensor(model.activations_ @ model.components_, dtype=torch.float64)
    ref = float(beta_divergence(torch.as_tensor(X), Y, 1.0, reduction="mean"))
    assert model.reconstruction_err_ == pytest.approx(ref, rel=1e-3)
    assert model.components_.shape == (3, 65) and model.activations_.shape == (40, 3)
    assert (model.components_ >= 0).all() and (model.activations_ >= 0).all()


def _naive_mu_activations(X, W, H, loss, eps):
    """Reference: one multiplicative update of H (n_frames, K) in place, atoms W (K, n_bins) fixed."""
    Y = (H @ W).clamp_min(eps)
    if loss == "kl":
        num, den = (X / Y) @ W.T, W.sum(dim=1)
    elif loss == "frobenius":
        num, den = X @ W.T, Y @ W.T
    else:
        num, den = (X / Y.square()) @ W.T, (1.0 / Y) @ W.T
    H.mul_(num / den.clamp_min(eps))


@pytest.mark.parametrize("loss", ["kl", "frobenius", "is"])
def test_activation_update_never_increases_the_divergence(loss, torch_gen):
    X = torch.rand(12, 20, generator=torch_gen, dtype=torch.float64) + 0.01
    W = torch.rand(4, 20, generator=torch_gen, dtype=torch.float64) + 0.01
    H = torch.rand(12, 4, generator=torch_gen, dtype=torch.float64)
    beta = {"kl": 1.0, "frobenius": 2.0, "is": 0.0}[loss]
    prev = float(beta_divergence(X, H @ W, beta))
    for _ in range(25):
        H.mul_(grid_objective(W, H, X, loss, 1e-12)[1])
        cur = float(beta_divergence(X, H @ W, beta))
        assert cur <= prev * (1 + 1e-12)
        prev = cur


def test_dictionary_is_a_function_of_frequency_in_hz(grid_model):
    model, _, freqs = grid_model
    np.testing.assert_allclose(model.dictionary_at(freqs), model.components_, rtol=1e-5, atol=1e-7)
    # the bins of size 256 include those of size 128: same function, same values
    fine = model.dictionary_at(stft_freqs(256, SR))
    np.testing.assert_allclose(fine[:, ::2], model.components_, rtol=1e-5, atol=1e-7)
    as_tensor = model.dictionary_at(torch.as_tensor(stft_freqs(256, SR)))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (3, 129)


def test_transfer_to_another_stft_size(grid_model):
    model, _, _ = grid_model
    X256, f256 = planted_data(256, seed=1)
    H = model.fit_activations(X256, freqs=f256)
    assert H.shape == (40, 3) and (H >= 0).all()
    ref = NMF.from_components(model.dictionary_at(f256), beta_loss="kullback-leibler", max_iter=500).transform(X256)
    np.testing.assert_allclose(H, ref, rtol=1e-4, atol=1e-6)
    err = float(beta_divergence(torch.as_tensor(X256), torch.as_tensor(H @ model.dictionary_at(f256)), 1.0,
                                reduction="mean"))
    scale = float(X256.mean())
    assert err < 0.01 * scale  # the planted atoms transfer to the finer grid
    np.testing.assert_allclose(model.transform(planted_data(128)[0]).shape, (40, 3))


def test_same_seed_same_model_and_float_kinds():
    X, freqs = planted_data(64, n_frames=10)
    a = ImplicitNMF(2, max_epochs=5, random_state=3, **SMALL).fit(X, freqs=freqs)
    b = ImplicitNMF(2, max_epochs=5, random_state=3, **SMALL).fit(X, freqs=freqs)
    c = ImplicitNMF(2, max_epochs=5, random_state=4, **SMALL).fit(X, freqs=freqs)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.allclose(a.components_, c.components_)
    assert isinstance(a.components_, np.ndarray)
    t = ImplicitNMF(2, max_epochs=2, random_state=3, **SMALL).fit(torch.as_tensor(X), freqs=freqs)
    assert isinstance(t.components_, torch.Tensor)
    assert a.nyquist_ == SR / 2  # max(freqs) of STFT bins is Nyquist


@pytest.fixture(scope="module")
def two_tone_points():
    sr, seconds = 8000, 1.0
    t = np.arange(int(sr * seconds)) / sr
    first = (t < 0.5).astype(float)
    x = 0.5 * np.sin(2 * np.pi * 440 * t) * first + 0.5 * np.sin(2 * np.pi * 1320 * t) * (1 - first)
    return P.hybrid(x, sr, stfts=((128, 64), (512, 256)))


def test_points_mode_learns_the_two_notes(two_tone_points):
    pts = two_tone_points
    model = ImplicitNMF(2, mode="points", max_epochs=250, point_fraction=0.5, random_state=0, **SMALL)
    model.fit(pts)
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]
    f = np.linspace(0, 4000, 801)
    peaks = sorted(f[np.argmax(model.dictionary_at(f), axis=1)])
    assert abs(peaks[0] - 440) < 40 and abs(peaks[1] - 1320) < 40
    W = model.dictionary_at(np.array([440.0, 1320.0]))  # (2, 2)
    low = int(np.argmax(W[:, 0]))
    H = model.activations_at(np.array([0.25, 0.75]))  # (2 times, 2 atoms)
    assert H[0, low] > H[1, low] and H[1, 1 - low] > H[0, 1 - low]
    V = model.reconstruct_at(pts.t[:10], pts.f[:10])
    assert V.shape == (10,) and (V >= 0).all()
    assert model.reconstruct_at([0.1, 0.2], [100.0, 200.0, 300.0], grid=True).shape == (2, 3)


def test_save_load_round_trip(tmp_path, grid_model, two_tone_points):
    model, _, freqs = grid_model
    loaded = ImplicitNMF.load(model.save(tmp_path / "grid"))
    np.testing.assert_array_equal(loaded.dictionary_at(stft_freqs(300, SR)), model.dictionary_at(stft_freqs(300, SR)))
    np.testing.assert_array_equal(loaded.activations_, model.activations_)
    assert loaded.get_params() == model.get_params() and loaded.loss_curve_ == model.loss_curve_
    pts_model = ImplicitNMF(2, mode="points", max_epochs=3, random_state=0, **SMALL).fit(two_tone_points)
    back = ImplicitNMF.load(pts_model.save(tmp_path / "points"))
    times = np.array([0.0, 0.3, 0.9])
    np.testing.assert_array_equal(back.activations_at(times), pts_model.activations_at(times))


def test_clone_and_errors(grid_model):
    model, X, freqs = grid_model
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        ImplicitNMF(2).dictionary_at(freqs)
    with pytest.raises(ParameterError, match="needs freqs"):
        model.dictionary_at(None)
    with pytest.raises(DataError, match="one frequency per column"):
        ImplicitNMF(2, max_epochs=1).fit(X, freqs=freqs[:-1])
    with pytest.raises(DataError, match="negative"):
        ImplicitNMF(2, max_epochs=1).fit(-X, freqs=freqs)
    with pytest.raises(DataError, match="Nyquist"):
        model.dictionary_at([SR])
    with pytest.raises(DataError, match="TFPoints"):
        ImplicitNMF(2, mode="points", max_epochs=1).fit(X)
    with pytest.raises(ParameterError, match="activations_at needs mode='points'"):
        model.activations_at([0.1])
    for bad in ({"mode": "mesh"}, {"loss": "l2"}, {"optimizer": "sgd"}, {"lr": 0.0}, {"point_fraction": 0.0},
                {"n_components": 0}, {"max_epochs": -1}, {"beta_loss": 1.5}, {"beta_loss": "l1"}, {"sr": 0}):
        with pytest.raises(ParameterError):
            ImplicitNMF(**{"n_components": 2, **bad}).fit(X, freqs=freqs)


@pytest.mark.parametrize("clamped", [True, False])
@pytest.mark.parametrize("loss", ["kl", "is", "frobenius"])
def test_grid_objective_matches_autograd_and_mu_update(loss, clamped, rng):
    """The fused grid objective: same value and W-gradient as autograd, same H update as the naive formula."""
    X = torch.from_numpy(rng.random((30, 25)) + 0.01)
    H = torch.from_numpy(rng.random((30, 4)))
    W0 = torch.from_numpy(rng.random((4, 25)))
    if clamped:
        H[0] = 0.0  # a row of Y below eps: the clamp must stop the gradient there
    Wa = W0.clone().requires_grad_(True)
    ref = pointwise_loss(X, H @ Wa, loss, eps=1e-8) - data_term(X, loss, 1e-8)  # the full divergence, autograd
    ref.backward()
    value, factor, G = grid_objective(W0.clone(), H, X, loss, 1e-8)
    assert float(value) / X.numel() == pytest.approx(float(ref.detach()), rel=1e-12)
    torch.testing.assert_close(H.T @ G / X.numel(), Wa.grad, rtol=1e-10, atol=1e-14)
    # the branch-free form that torch.compile traces gives the same terms
    for got, want in zip(grid_objective(W0.clone(), H, X, loss, 1e-8, branch_free=True), (value, factor, G)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    H_ref = H.clone()
    _naive_mu_activations(X, W0, H_ref, loss, 1e-8)
    torch.testing.assert_close(H * factor, H_ref, rtol=1e-10, atol=1e-14)
    # rows are independent: the terms of two ranges of frames add up to those of the whole
    parts = [grid_objective(W0.clone(), H[r], X[r], loss, 1e-8) for r in (slice(0, 13), slice(13, 30))]
    assert float(parts[0][0] + parts[1][0]) == pytest.approx(float(value), rel=1e-12)
    torch.testing.assert_close(torch.cat([parts[0][1], parts[1][1]]), factor, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.cat([parts[0][2], parts[1][2]]), G, rtol=1e-12, atol=0)


@pytest.mark.parametrize("loss", ["kl", "is", "frobenius"])
def test_divergence_terms_match_autograd_of_the_full_divergence(loss, rng):
    """Value and gradient of the points' loss (the floor stops the gradient) against autograd."""
    V = torch.from_numpy(rng.random(40) + 0.01)
    Y = torch.from_numpy(rng.random(40)).requires_grad_(True)
    with torch.no_grad():
        Y[:3] = 1e-12  # below the floor
    ref = (pointwise_loss(V, Y, loss, eps=1e-8) - data_term(V, loss, 1e-8)) * V.numel()
    ref.backward()
    value, dY = divergence_terms(V, Y.detach(), loss, 1e-8)
    assert float(value) == pytest.approx(float(ref.detach()), rel=1e-12)
    torch.testing.assert_close(dY, Y.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["grid", "points"])
def test_padding_the_points_changes_nothing_but_rounding(mode, monkeypatch, two_tone_points):
    """Zero feature columns appended for the batched products leave the training path unchanged."""
    X, freqs = planted_data(64, n_frames=12)  # 33 bins: padded to 48
    fits = []
    for multiple in (1, 16):
        monkeypatch.setattr(T, "PAD_MULTIPLE", multiple)
        model = ImplicitNMF(2, mode=mode, max_epochs=8, random_state=1, **SMALL)
        fits.append(model.fit(X, freqs=freqs) if mode == "grid" else model.fit(two_tone_points))
    np.testing.assert_allclose(fits[0].loss_curve_, fits[1].loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(fits[0].components_, fits[1].components_, rtol=1e-4, atol=1e-6)
    assert T.pad_points(torch.zeros(2, 4, 33)).shape == (2, 4, 48)
    assert T.pad_points(torch.zeros(2, 4, 32)).shape == (2, 4, 32)


@needs_cxx
@pytest.mark.parametrize("loss, optimizer", [("kl", "rprop"), ("is", "adam")])
def test_compiled_training_matches_uncompiled(loss, optimizer):
    """compile=True fuses each epoch with torch.compile: the same training up to float32 rounding."""
    X, freqs = planted_data(128, n_frames=24)
    kw = dict(loss=loss, optimizer=optimizer, max_epochs=12, random_state=3, **SMALL)
    eager = ImplicitNMF(3, **kw).fit(X, freqs=freqs, sr=SR)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")  # a fallback: fail instead
        compiled = ImplicitNMF(3, compile=True, **kw).fit(X, freqs=freqs, sr=SR)
    assert compiled.n_iter_ == 12 and len(compiled.loss_curve_) == 13
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=2e-5)
    np.testing.assert_allclose(compiled.components_, eager.components_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(compiled.activations_, eager.activations_, rtol=1e-4, atol=1e-6)
    assert compiled.loss_curve_[-1] < compiled.loss_curve_[0]


def test_compile_failure_falls_back_to_uncompiled_training_with_a_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return run

    monkeypatch.setattr(T.torch, "compile", broken_compile)
    X, freqs = planted_data(64, n_frames=10)
    kw = dict(max_epochs=5, random_state=0, **SMALL)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .RuntimeError: no C.. compiler found.; training without it"):
        fallback = ImplicitNMF(2, compile=True, **kw).fit(X, freqs=freqs, sr=SR)
    eager = ImplicitNMF(2, **kw).fit(X, freqs=freqs, sr=SR)
    assert fallback.loss_curve_ == eager.loss_curve_
    np.testing.assert_array_equal(fallback.components_, eager.components_)


def test_compile_parameter_is_checked():
    X, freqs = planted_data(64, n_frames=10)
    with pytest.raises(ParameterError, match="compile must be True or False"):
        ImplicitNMF(2, compile="yes", max_epochs=1).fit(X, freqs=freqs, sr=SR)


@needs_cxx
@pytest.mark.parametrize("dense_ratio, loss, optimizer, fraction", [
    (32, "kl", "rprop", 1.0),  # the dense product of the distinct coordinates
    (0, "is", "adam", 0.6),  # gathered rows, a random share of the points each epoch
])
def test_compiled_points_training_matches_uncompiled(dense_ratio, loss, optimizer, fraction, monkeypatch,
                                                     two_tone_points, tmp_path):
    from deepnmf.nn import implicit as I

    monkeypatch.setattr(I, "DENSE_PAIR_RATIO", dense_ratio)
    kw = dict(mode="points", loss=loss, optimizer=optimizer, point_fraction=fraction, max_epochs=8, random_state=2,
              **SMALL)
    eager = ImplicitNMF(2, **kw).fit(two_tone_points)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")
        compiled = ImplicitNMF(2, compile=True, **kw).fit(two_tone_points)
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=2e-5)
    np.testing.assert_allclose(compiled.components_, eager.components_, rtol=1e-4, atol=1e-6)
    times = np.linspace(0, two_tone_points.duration, 50)
    np.testing.assert_allclose(compiled.activations_at(times), eager.activations_at(times), rtol=1e-4, atol=1e-6)
    assert ImplicitNMF.load(compiled.save(tmp_path / "m")).compile is True


def test_compiled_points_fallback_redraws_the_same_points(monkeypatch, two_tone_points):
    """Where compiling fails, uncompiled training starts from the same generator state (same draws)."""
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(T.torch, "compile", broken_compile)
    kw = dict(mode="points", point_fraction=0.5, max_epochs=4, random_state=0, **SMALL)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        fallback = ImplicitNMF(2, compile=True, **kw).fit(two_tone_points)
    eager = ImplicitNMF(2, **kw).fit(two_tone_points)
    assert fallback.loss_curve_ == eager.loss_curve_


@needs_cxx
def test_compiled_training_reuses_one_graph_for_any_number_of_frames():
    """Recordings differ in length: the frame count is a dynamic dimension, not a recompile."""
    torch._dynamo.reset()
    freqs = stft_freqs(64, SR)
    with warnings.catch_warnings(), torch._dynamo.config.patch(recompile_limit=1):  # a second graph: fallback
        warnings.filterwarnings("error", message="torch.compile failed")
        for n_frames in (9, 14, 23):
            X, _ = planted_data(64, n_frames=n_frames)
            model = ImplicitNMF(2, compile=True, max_epochs=3, random_state=0, **SMALL).fit(X, freqs=freqs, sr=SR)
            assert model.activations_.shape == (n_frames, 2)


def test_fit_without_freqs_assumes_evenly_spaced_stft_bins():
    """No freqs: the columns are STFT bins 0..sr/2 (the estimator's sr), or normalised 0..0.5 without sr."""
    X, freqs = planted_data(128, n_frames=20)
    kw = dict(max_epochs=10, random_state=0, **SMALL)
    explicit = ImplicitNMF(3, **kw).fit(X, freqs=freqs, sr=SR)
    implied = ImplicitNMF(3, sr=SR, **kw).fit(X)
    np.testing.assert_allclose(implied.freqs_, freqs)
    assert implied.nyquist_ == SR / 2
    assert implied.loss_curve_ == explicit.loss_curve_
    normalised = ImplicitNMF(3, **kw).fit(X)
    assert normalised.nyquist_ == 0.5 and normalised.freqs_[-1] == 0.5
    assert normalised.loss_curve_ == explicit.loss_curve_  # the same normalised coordinates
    np.testing.assert_array_equal(normalised.dictionary_at(normalised.freqs_), implied.dictionary_at(freqs))
    with pytest.raises(ParameterError, match="sr="):
        ImplicitNMF(2, mode="points", sr=SR + 1, max_epochs=1).fit(P.from_stft(np.ones(256), sr=SR, n_fft=32, hop=16))


def test_librosa_decompose_with_implicit_nmf():
    """librosa.decompose.decompose(S, transformer=...) calls fit_transform(S.T) without freqs: it works."""
    librosa = pytest.importorskip("librosa")
    X, _ = planted_data(128, n_frames=40)
    S = X.T  # librosa's orientation: (n_bins, n_frames)
    model = ImplicitNMF(3, sr=SR, max_epochs=300, random_state=0, **SMALL)
    components, activations = librosa.decompose.decompose(S, transformer=model)
    assert components.shape == (65, 3) and activations.shape == (3, 40)
    S_hat = components @ activations
    assert np.linalg.norm(S - S_hat) / np.linalg.norm(S) < 0.1
    np.testing.assert_allclose(S_hat, model.inverse_transform(activations.T).T, rtol=1e-5, atol=1e-7)
    again, act_again = librosa.decompose.decompose(S, transformer=model, fit=False)  # transform with the atoms frozen
    np.testing.assert_array_equal(again, components)
    assert np.linalg.norm(S - again @ act_again) / np.linalg.norm(S) < 0.1


def test_beta_loss_names_set_the_loss():
    X, freqs = planted_data(64, n_frames=10)
    kw = dict(max_epochs=6, random_state=0, **SMALL)
    for beta_loss, loss in (("kullback-leibler", "kl"), ("poisson", "kl"), (0, "is"), ("euclidean", "frobenius")):
        by_name = ImplicitNMF(2, loss="frobenius" if loss != "frobenius" else "kl", beta_loss=beta_loss, **kw)
        by_name.fit(X + 0.01, freqs=freqs)
        own = ImplicitNMF(2, loss=loss, **kw).fit(X + 0.01, freqs=freqs)
        assert by_name.loss_curve_ == own.loss_curve_, beta_loss


def test_callback_gets_epoch_records_and_can_stop():
    X, freqs = planted_data(64, n_frames=10)
    for mode_kw, data in (({}, None), ({"mode": "points"}, P.from_stft(np.random.default_rng(0).random(600), sr=SR,
                                                                       n_fft=32, hop=16))):
        seen = []
        model = ImplicitNMF(2, max_epochs=20, random_state=0, **mode_kw, **SMALL)

        def callback(info):
            seen.append(info)
            return info.epoch == 4

        model.fit(X, freqs=freqs, callback=callback) if data is None else model.fit(data, callback=callback)
        assert [i.epoch for i in seen] == [1, 2, 3, 4] and all(i.max_epochs == 20 for i in seen)
        assert model.n_iter_ == 4 and len(model.loss_curve_) == 5
        assert [i.loss for i in seen] == model.loss_curve_[:4]  # the curve's values, as recorded


def test_verbose_prints_through_the_callback(capsys):
    X, freqs = planted_data(64, n_frames=10)
    ImplicitNMF(2, max_epochs=40, verbose=1, random_state=0, **SMALL).fit(X, freqs=freqs)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 20 and lines[-1].startswith("[ImplicitNMF] epoch    40")


def test_models_saved_before_beta_loss_and_sr_existed_still_load(tmp_path, grid_model):
    import json

    model, X, freqs = grid_model
    folder = model.save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    del config["params"]["beta_loss"], config["params"]["sr"]
    (folder / "config.json").write_text(json.dumps(config))
    back = ImplicitNMF.load(folder)
    assert back.beta_loss is None and back.sr is None
    np.testing.assert_array_equal(back.components_, model.components_)



def test_plateau_rule_stops_where_the_relative_decrease_falls_below_tol():
    from deepnmf.callbacks import EpochInfo, stop_on_plateau

    rule = stop_on_plateau(0.01, window=10)
    losses = [100.0 * 0.98 ** min(e, 30) for e in range(1, 101)]  # falls 2% an epoch until epoch 30, then flat
    stops = [e for e, loss in enumerate(losses, 1) if rule(EpochInfo(e, 100, {"loss": loss}))]
    assert stops[0] == 40  # 30 -> 40 is the first window without a 1% fall (20 -> 30 fell 18%)
    with pytest.raises(ValueError):
        stop_on_plateau(0.0)


def test_tol_stops_early_on_the_same_trajectory():
    rng = np.random.default_rng(0)
    X = rng.random((40, 65))
    full = ImplicitNMF(3, max_epochs=800, random_state=0).fit(X, sr=16000)
    early = ImplicitNMF(3, max_epochs=800, tol=1e-2, random_state=0).fit(X, sr=16000)
    assert early.n_iter_ < full.n_iter_ == 800 and early.n_iter_ % 100 == 0
    np.testing.assert_array_equal(early.loss_curve_[:-1], full.loss_curve_[: len(early.loss_curve_) - 1])
    old, new = full.loss_curve_[early.n_iter_ - 100], full.loss_curve_[early.n_iter_]
    assert (old - new) < 1e-2 * old  # the rule held where it stopped
    with pytest.raises(ParameterError, match="not combined with checkpoints"):
        ImplicitNMF(3, max_epochs=10, tol=1e-2).fit(X, sr=16000, checkpoint_dir="unused", checkpoint_every=5)
