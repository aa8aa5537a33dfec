"""deepnmf.pipelines.enhancement, deepnmf.pipelines.frame_networks and deepnmf.nn.networks on real TIMIT speech
and NOISEX factory noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnmf import NMF
from deepnmf.audio import mixing
from deepnmf.audio.io import load_audio
from deepnmf.pipelines.enhancement import Enhancer, STFTSettings, frozen_activations, wiener_gain
from deepnmf.exceptions import DataError, ModelFileError, ParameterError
from deepnmf.metrics import bss_eval
from deepnmf.nn.networks import FrameNetwork, stack_context
from deepnmf.pipelines.frame_networks import train_frame_network

SR = 16000
STFT = STFTSettings()


@pytest.fixture(scope="module")
def audio(data_dir):
    """Training utterances of two speakers, one test utterance of another, factory noise split in two."""
    timit = data_dir / "speech" / "timit-sample"
    train = [load_audio(f, dtype=np.float64)[0] for spk in ("dr1-fvmh0", "dr1-mcpm0") for f in sorted((timit / spk).glob("s*.wav"))[:4]]
    test = load_audio(timit / "dr6-fapb0" / "sa1.wav", dtype=np.float64)[0]
    noise = load_audio(data_dir / "noise" / "noisex-excerpts" / "factory2.wav", sr=SR, dtype=np.float64)[0]
    cut = int(0.7 * noise.size)
    return {"train": train, "test": test, "noise_train": noise[:cut], "noise_test": noise[cut:]}


@pytest.fixture(scope="module")
def models(audio):
    Vs = torch.cat([STFT.stft(x).abs() for x in audio["train"]]).double().numpy()
    Vn = STFT.stft(audio["noise_train"]).abs().double().numpy()
    speech = NMF(12, beta_loss="kullback-leibler", max_iter=60, random_state=0).fit(Vs)
    noise = NMF(8, beta_loss="kullback-leibler", max_iter=60, random_state=0).fit(Vn)
    return speech, noise


@pytest.fixture(scope="module")
def mixture(audio):
    n = mixing.noise_excerpt(audio["noise_test"], audio["test"].size, random_state=0)
    return mixing.mix_at_snr(audio["test"], n, 0.0)


def _sdr(clean, noise, estimate):
    return float(bss_eval(np.stack([clean, noise]), np.stack([estimate, noise]))["sdr"][0])


# ----------------------------------------------------------------- gain
def test_wiener_gain_matches_formula(rng):
    S, N = torch.tensor(rng.random((5, 7))), torch.tensor(rng.random((5, 7)))
    for p in (1.0, 2.0):
        np.testing.assert_allclose(wiener_gain(S, N, power=p), S**p / (S**p + N**p))
    G = wiener_gain(S, N, floor=0.3)
    assert float(G.min()) >= 0.3 and float(G.max()) <= 1.0
    np.testing.assert_allclose(G, torch.clamp(S**2 / (S**2 + N**2), min=0.3))
    assert wiener_gain(torch.zeros(2, 2), torch.zeros(2, 2)).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(ParameterError, match="floor must be in"):
        wiener_gain(S, N, floor=1.0)
    with pytest.raises(ParameterError, match="power must be > 0"):
        wiener_gain(S, N, power=0)


def test_gain_exponent_matches_formula_and_is_checked(rng):
    from deepnmf.pipelines.enhancement import sharpen

    S, N = torch.tensor(rng.random((5, 7))), torch.tensor(rng.random((5, 7)))
    for p, e, floor in ((1.0, 2.0, 0.0), (2.0, 1.5, 0.1), (1.0, 0.5, 0.0)):
        naive = np.maximum((S.numpy() ** p / (S.numpy() ** p + N.numpy() ** p)) ** e, floor)
        np.testing.assert_allclose(wiener_gain(S, N, power=p, floor=floor, exponent=e), naive, rtol=1e-12)
    G = wiener_gain(S, N, power=1.0)
    assert torch.equal(sharpen(G), G)  # exponent 1, no floor: the gain itself
    assert bool((sharpen(G, exponent=2.0) <= G).all())  # a sharper gain never lets more through
    assert sharpen(torch.ones(3), exponent=3.0).tolist() == [1.0, 1.0, 1.0]  # a full pass stays full
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="gain exponent must be > 0"):
            sharpen(G, exponent=bad)
    with pytest.raises(ParameterError, match="gain exponent"):
        Enhancer(*_toy_models(), exponent=0)


def _toy_models():
    rng = np.random.default_rng(0)
    return tuple(NMF(3, max_iter=20, random_state=i).fit(rng.random((40, 257))) for i in range(2))


def test_frozen_activations_match_scikit_learn(models, audio):
    from sklearn.decomposition import non_negative_factorization

    speech, _ = models
    V = STFT.stft(audio["test"]).abs().double()
    ours = frozen_activations(V, torch.as_tensor(speech.components_), max_iter=50)
    ref, _, _ = non_negative_factorization(V.numpy(), H=speech.components_, n_components=12, update_H=False, solver="mu",
                                           beta_loss="kullback-leibler", max_iter=50, tol=0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------ pipeline
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_mu_enhancement_improves_sdr(models, mixture, power):
    y, s, n = mixture
    enhanced = Enhancer(*models, activations="mu", power=power).enhance(y)
    assert enhanced.shape == y.shape
    assert _sdr(s, n, enhanced) > _sdr(s, n, y) + 3.0


def test_oracle_parts_give_the_ideal_gain(models, mixture):
    # the gain the enhancer applies equals the formula applied to its own estimates
    y, _, _ = mixture
    enh = Enhancer(*models, power=2.0, floor=0.1)
    Y = STFT.stft(y).abs()
    S, N = enh.estimate_magnitudes(Y)
    np.testing.assert_allclose(enh.gain(Y), torch.clamp(S**2 / (S**2 + N**2), min=0.1), rtol=1e-5)
    Hs, Hn = enh.estimate_activations(Y)
    assert Hs.shape == (Y.shape[0], 12) and Hn.shape == (Y.shape[0], 8)
    assert float(torch.cat([Hs, Hn], 1).min()) >= 0


def test_dnn_enhancement_learns_and_round_trips(models, audio, mixture, tmp_path):
    y, s, n = mixture
    enh = Enhancer(*models, activations="dnn", power=1.0)
    with pytest.raises(ParameterError, match="needs a trained network"):
        enh.enhance(y)
    enh.fit_network(audio["train"], audio["noise_train"], hidden=(64,), epochs=6, random_state=0)
    losses = enh.network_training_.train_loss
    assert losses[-1] < 0.7 * losses[0]
    out = enh.enhance(y)
    assert _sdr(s, n, out) > _sdr(s, n, y) + 3.0
    enh.save(tmp_path / "enh")
    again = Enhancer.load(tmp_path / "enh")
    assert again.activations == "dnn" and again.power == 1.0
    np.testing.assert_allclose(again.enhance(y), out, atol=1e-6)
    # a network only fits the dictionaries it was trained for
    Vs = torch.cat([STFT.stft(x).abs() for x in audio["train"][:2]]).double().numpy()
    NMF(12, beta_loss="kullback-leibler", max_iter=5, random_state=1).fit(Vs).save(tmp_path / "other")
    with pytest.raises(ModelFileError, match="trained for other speech/noise dictionaries"):
        Enhancer.from_folders(tmp_path / "other", tmp_path / "enh" / "noise", network=tmp_path / "enh" / "network")


def test_bad_inputs(models, mixture):
    speech, noise = models
    enh = Enhancer(speech, noise)
    with pytest.raises(DataError, match="silent"):
        enh.enhance(np.zeros(SR))
    with pytest.raises(DataError, match="empty"):
        enh.enhance(np.array([]))
    with pytest.raises(DataError, match="1-D"):
        enh.enhance(np.zeros((2, SR)))
    with pytest.raises(DataError, match="NaN"):
        enh.enhance(np.full(SR, np.nan))
    narrow = NMF.from_components(np.ones((3, 129)))
    with pytest.raises(DataError, match="noise model: .*129"):
        Enhancer(speech, narrow)
    with pytest.raises(ParameterError, match="needs VAE-NMF models"):
        Enhancer(speech, noise, activations="encoder")
    with pytest.raises(ParameterError, match="activations must be one of"):
        Enhancer(speech, noise, activations="wiener")
    with pytest.raises(ParameterError, match="components_"):
        Enhancer(object(), noise)


# ------------------------------------------------------------- networks
def test_stack_context_matches_naive_loop(rng):
    F = torch.tensor(rng.random((6, 3)))
    got = stack_context(F, 2)
    for t in range(6):
        naive = torch.cat([F[min(max(t + d, 0), 5)] for d in range(-2, 3)])
        np.testing.assert_array_equal(got[t], naive)
    assert stack_context(F, 0) is F


def test_mask_network_learns_ideal_ratio_mask(audio):
    # a sigmoid network regresses the ideal ratio mask; outputs stay in (0, 1)
    inputs, targets = [], []
    for k, x in enumerate(audio["train"]):
        n = mixing.noise_excerpt(audio["noise_train"], x.size, random_state=k)
        y, s, n = mixing.mix_at_snr(x, n, 0.0)
        S, N = STFT.stft(s).abs(), STFT.stft(n).abs()
        inputs.append(STFT.stft(y).abs())
        targets.append(S**2 / (S**2 + N**2 + 1e-12))
    net = FrameNetwork(STFT.n_bins, STFT.n_bins, context=1, hidden=(64,), output="sigmoid")
    result = train_frame_network(net, inputs, targets, epochs=6, random_state=0)
    assert result.val_loss[result.best_epoch] < result.val_loss[0]
    mask = net.predict(inputs[0])
    assert mask.shape == targets[0].shape
    assert float(mask.min()) > 0 and float(mask.max()) < 1
    # better than the constant mask of the mean target
    constant = torch.cat(targets).mean()
    assert float(((mask - targets[0]) ** 2).mean()) < float(((constant - targets[0]) ** 2).mean())


def test_network_training_is_reproducible_and_checked(audio):
    x = STFT.stft(audio["train"][0]).abs()
    target = torch.rand(x.shape[0], 4, generator=torch.Generator().manual_seed(0))
    nets = [FrameNetwork(STFT.n_bins, 4, hidden=(16,)) for _ in range(2)]
    for net in nets:
        train_frame_network(net, [x], [target], epochs=2, random_state=5)
    np.testing.assert_array_equal(nets[0].predict(x), nets[1].predict(x))
    with pytest.raises(DataError, match="do not match"):
        train_frame_network(nets[0], [x], [target[:-1]], epochs=1)
    with pytest.raises(DataError, match="expects spectrograms of shape"):
        nets[0].predict(x[:, :100])
    with pytest.raises(ParameterError, match="output must be one of"):
        FrameNetwork(10, 2, output="relu")


# ------------------------------------------------------------- baselines
def test_dnmf_baseline_learns_a_useful_gain(models, audio, mixture, tmp_path):
    from deepnmf.pipelines.enhancement_baselines import DNMFEnhancer

    y, s, n = mixture
    enh = DNMFEnhancer(*models, max_epochs=20)
    with pytest.raises(ParameterError, match="not trained"):
        enh.enhance(y)
    enh.fit(audio["train"][:4], audio["noise_train"], max_frames=1500, random_state=0)
    assert enh.model.loss_curve_[-1] < enh.model.loss_curve_[0]
    out, G = enh.enhance(y, return_gain=True)
    assert G.min() >= 0 and G.max() <= 1
    assert _sdr(s, n, out) > _sdr(s, n, y) + 3.0


def test_dnmf_baseline_mixes_at_most_max_mixtures(models, audio):
    from deepnmf.pipelines.enhancement_baselines import DNMFEnhancer

    speech = audio["train"][:4]

    def fit(cap):
        enh = DNMFEnhancer(*models, max_epochs=3).fit(speech, audio["noise_train"], max_frames=10**6, max_mixtures=cap,
                                                      random_state=0)
        return enh.model.reconstruction_components_

    every = fit(None)
    np.testing.assert_array_equal(fit(len(speech)), every)  # a cap at or above the corpus changes nothing
    assert not np.allclose(fit(1), every)  # one mixture: another training set


def test_mask_baseline_round_trip(audio, mixture, tmp_path):
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    y, s, n = mixture
    enh = MaskEnhancer().fit(audio["train"], audio["noise_train"], hidden=(64,), epochs=6, random_state=0)
    out = enh.enhance(y)
    assert _sdr(s, n, out) > _sdr(s, n, y) + 2.0
    enh.save(tmp_path / "mask")
    np.testing.assert_allclose(MaskEnhancer.load(tmp_path / "mask").enhance(y), out, atol=1e-6)
    with pytest.raises(ParameterError, match="mask_power must be > 0"):
        MaskEnhancer(mask_power=0)
