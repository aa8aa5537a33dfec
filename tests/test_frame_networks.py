"""Huang et al.'s pieces of the frame networks: the joint mask layer, recurrent layers, signal approximation
with the discriminative term; on generated data (no ../shared needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnmf.exceptions import DataError, ParameterError
from deepnmf.nn.networks import FrameNetwork
from deepnmf.pipelines.frame_networks import _chunks, signal_loss, signal_sources, train_frame_network

F = 24


def _mixtures(n: int = 6, frames: int = 120, seed: int = 0):
    """Speech in the low half of the bins, noise everywhere (weaker); magnitudes (Y, S, N), Y = S + N."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        S = torch.rand(frames, F, generator=g, dtype=torch.float64) * (torch.arange(F) < F // 2)
        N = 0.3 * torch.rand(frames, F, generator=g, dtype=torch.float64)
        out.append((S + N, S, N))
    return out


def test_signal_loss_matches_naive_formula():
    rng = np.random.default_rng(0)
    M, Y, S, N = (rng.random((5, 7)) for _ in range(4))
    gamma = 0.05
    naive = (np.mean((M * Y - S) ** 2) + np.mean(((1 - M) * Y - N) ** 2)
             - gamma * (np.mean((M * Y - N) ** 2) + np.mean(((1 - M) * Y - S) ** 2)))
    got = signal_loss(torch.tensor(M), torch.tensor(np.concatenate([Y, S, N], axis=1)), gamma)
    assert float(got) == pytest.approx(naive, rel=1e-12)
    plain = signal_loss(torch.tensor(M), torch.tensor(np.concatenate([Y, S, N], axis=1)))
    assert float(plain) == pytest.approx(np.mean((M * Y - S) ** 2) + np.mean(((1 - M) * Y - N) ** 2), rel=1e-12)


def test_signal_sources_scale_each_mixture_to_unit_power():
    mixes = _mixtures(2)
    mixes[1] = tuple(10 * m for m in mixes[1])
    sources = signal_sources(mixes)
    for (Y, S, N), src in zip(mixes, sources):
        assert src.shape == (Y.shape[0], 3 * F)
        assert float(src[:, :F].pow(2).mean()) == pytest.approx(1.0, rel=1e-5)
        np.testing.assert_allclose(src[:, F : 2 * F] * Y.pow(2).mean().sqrt(), S, rtol=1e-5)


@pytest.mark.parametrize("scale, part", [("mixture", 0), ("speech", 1), ("noise", 2), ("sdr", 2)])
def test_signal_sources_units_weigh_each_mixture_by_its_reference(scale, part):
    mixes = _mixtures(3)
    mixes[1] = (mixes[1][1] + 4 * mixes[1][2], mixes[1][1], 4 * mixes[1][2])  # a lower SNR
    mixes[2] = tuple(0.1 * m for m in mixes[2])
    sources = signal_sources(mixes, scale)
    mask = torch.rand(mixes[0][0].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for mix, src in zip(mixes, sources):
        block = src[:, part * F : (part + 1) * F]
        assert float(block.pow(2).mean()) == pytest.approx(1.0, rel=1e-5)
        # the loss of a mixture is the plain one divided by its reference's mean power
        Y, S, N = (m.float() for m in mix)
        naive = ((mask * Y - S).pow(2).mean() + ((1 - mask) * Y - N).pow(2).mean()) / mix[part].pow(2).mean()
        assert float(signal_loss(mask.float(), src)) == pytest.approx(float(naive), rel=1e-4)


def test_signal_sources_refuse_an_unknown_scale():
    with pytest.raises(ParameterError, match="scale"):
        signal_sources(_mixtures(1), "loudest")


def test_weighted_signal_loss_matches_naive_formula():
    rng = np.random.default_rng(1)
    M, Y, S, N = (rng.random((5, 7)) for _ in range(4))
    w = rng.random(5)
    gamma = 0.05
    frame = (np.mean((M * Y - S) ** 2, 1) + np.mean(((1 - M) * Y - N) ** 2, 1)
             - gamma * (np.mean((M * Y - N) ** 2, 1) + np.mean(((1 - M) * Y - S) ** 2, 1)))
    src = torch.tensor(np.concatenate([Y, S, N], axis=1))
    got = signal_loss(torch.tensor(M), src, gamma, torch.tensor(w))
    assert float(got) == pytest.approx(np.mean(w * frame), rel=1e-12)
    ones = signal_loss(torch.tensor(M), src, gamma, torch.ones(5, dtype=torch.float64))
    assert float(ones) == pytest.approx(float(signal_loss(torch.tensor(M), src, gamma)), rel=1e-12)


def test_mixture_weights_are_the_inverse_mean_speech_error_of_the_last_epoch():
    from deepnmf.pipelines.frame_networks import _MixtureWeights

    rng = np.random.default_rng(2)
    mask, Y, S, N = (torch.tensor(rng.random((40, 6))) for _ in range(4))
    index = torch.tensor(rng.integers(0, 3, 40))
    weighting = _MixtureWeights(4)  # mixture 3 is never seen
    first = weighting.observe(mask[:25], torch.cat([Y, S, N], 1)[:25], index[:25])
    weighting.observe(mask[25:], torch.cat([Y, S, N], 1)[25:], index[25:])
    np.testing.assert_array_equal(first, np.ones(25))  # the first epoch is unweighted
    weighting.update()
    err = ((mask * Y - S) ** 2).mean(1).numpy()
    inv = np.array([1 / err[index.numpy() == u].mean() for u in range(3)])
    inv = np.append(inv, inv.mean())  # an unseen mixture takes the mean weight
    np.testing.assert_allclose(weighting.weights, inv / inv.mean(), rtol=1e-5)
    assert float(weighting.count.sum()) == 0  # the next epoch starts afresh


def test_sdr_weights_leave_the_first_epoch_unweighted_and_then_change_training():
    mixes = _mixtures(4)
    mixes[1] = (mixes[1][1] + 5 * mixes[1][2], mixes[1][1], 5 * mixes[1][2])
    sources = signal_sources(mixes, "sdr")
    runs = {}
    for weighted in (False, True):
        net = FrameNetwork(F, F, context=1, hidden=(16,), output="joint")
        runs[weighted] = train_frame_network(net, [m[0] for m in mixes], sources=sources, sdr_weights=weighted,
                                             epochs=3, validation_fraction=0.2, random_state=4)
    assert runs[True].train_loss[0] == pytest.approx(runs[False].train_loss[0], rel=1e-6)
    assert runs[True].val_loss[0] == pytest.approx(runs[False].val_loss[0], rel=1e-6)
    assert runs[True].train_loss[1] != pytest.approx(runs[False].train_loss[1], rel=1e-3)
    net = FrameNetwork(F, F, context=0, hidden=(8,), output="sigmoid")
    with pytest.raises(ParameterError, match="sdr_weights"):
        train_frame_network(net, [m[0] for m in mixes], [m[1] for m in mixes], sdr_weights=True, epochs=1)
    from deepnmf.pipelines.frame_networks import train_on_mixtures

    with pytest.raises(ParameterError, match="loss_scale"):
        train_on_mixtures(net, mixes, target_fn=lambda S, N: S / (S + N + 1e-9), loss_scale="noise", epochs=1)


def test_joint_mask_layer_is_the_ratio_of_two_softplus_outputs():
    net = FrameNetwork(F, F, context=0, hidden=(16,), output="joint").double()
    x = torch.randn(9, F, dtype=torch.float64)
    with torch.no_grad():
        z, out = net.mlp(x), net(x)
    a, b = torch.nn.functional.softplus(z[:, :F]), torch.nn.functional.softplus(z[:, F:])
    np.testing.assert_allclose(out, a / (a + b), rtol=1e-12)
    assert float(out.min()) > 0 and float(out.max()) < 1


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_network_is_causal_and_runs_whole_utterances(kind):
    torch.manual_seed(0)
    net = FrameNetwork(F, F, context=1, hidden=(16, 12), output="sigmoid", recurrent=kind).eval()
    mag = torch.rand(50, F)
    out = net.predict(mag)
    assert out.shape == (50, F)
    changed = mag.clone()
    changed[40:] *= 5.0
    later = net.predict(changed)
    # frame t sees frames up to t + context: outputs before 39 cannot change
    np.testing.assert_array_equal(out[:39], later[:39])
    assert not torch.equal(out[39:], later[39:])


@pytest.mark.parametrize("kind", ["bgru", "blstm"])
def test_bidirectional_network_sees_the_future_and_matches_torch_reversal(kind):
    torch.manual_seed(0)
    net = FrameNetwork(F, F, context=0, hidden=(16, 6), output="sigmoid", recurrent=kind).eval()
    assert net.rnn[0].bidirectional and net.head.in_features == 12
    mag = torch.rand(50, F)
    out = net.predict(mag)
    changed = mag.clone()
    changed[40:] *= 5.0
    assert not torch.equal(out[:39], net.predict(changed)[:39])  # the backward direction carries the future
    # naive: the backward half is a forward pass of the same cell over the reversed frames
    rnn = net.rnn[0]
    fwd = (torch.nn.GRU if kind == "bgru" else torch.nn.LSTM)(16, 6, batch_first=True)
    bwd = (torch.nn.GRU if kind == "bgru" else torch.nn.LSTM)(16, 6, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(fwd, name).copy_(getattr(rnn, name))
            getattr(bwd, name).copy_(getattr(rnn, name + "_reverse"))
        z = net.mlp(net.features(mag))[None]
        both = torch.cat([fwd(z)[0], bwd(z.flip(1))[0].flip(1)], dim=-1)
        np.testing.assert_allclose(out, torch.sigmoid(net.head(both))[0], rtol=1e-5, atol=1e-6)


def test_chunks_cover_every_frame_in_order():
    x = torch.arange(23.0)[:, None].repeat(1, 2)
    c = _chunks(x, 10).reshape(-1, 10, 2)
    assert c.shape == (3, 10, 2)
    assert c[:, :, 0].flatten().unique().numel() == 23  # every frame, the last chunk overlaps its predecessor
    np.testing.assert_array_equal(c[-1, :, 0], torch.arange(13.0, 23.0))
    short = _chunks(x[:4], 10).reshape(-1, 10, 2)
    np.testing.assert_array_equal(short[0, :, 0], torch.tensor([0, 1, 2, 3] + [3] * 6, dtype=torch.float32))
    assert _chunks(x, 0) is x


@pytest.mark.parametrize("recurrent,output", [(None, "sigmoid"), (None, "joint"), ("gru", "joint"), ("blstm", "joint")])
def test_signal_training_learns_where_the_speech_is(recurrent, output):
    mixes = _mixtures()
    net = FrameNetwork(F, F, context=1, hidden=(32, 32), output=output, recurrent=recurrent)
    result = train_frame_network(net, [m[0] for m in mixes], sources=signal_sources(mixes), discriminative=0.05,
                                 epochs=25, batch_size=16, sequence_length=20, validation_fraction=0, random_state=0)
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    mask = net.predict(mixes[0][0].float())
    assert float(mask[:, : F // 2].mean()) > 0.6 > 0.2 > float(mask[:, F // 2 :].mean())


def test_save_load_round_trip_of_recurrent_joint_network(tmp_path):
    mixes = _mixtures(2)
    net = FrameNetwork(F, F, context=1, hidden=(8, 8), output="joint", recurrent="lstm")
    train_frame_network(net, [m[0] for m in mixes], sources=signal_sources(mixes), epochs=2, random_state=1)
    net.save(tmp_path / "net")
    back = FrameNetwork.load(tmp_path / "net")
    assert back.config == net.config and back.is_recurrent
    np.testing.assert_array_equal(back.predict(mixes[0][0]), net.predict(mixes[0][0]))


def test_training_is_reproducible_with_a_seed():
    mixes = _mixtures(3)
    preds = []
    for _ in range(2):
        net = FrameNetwork(F, F, context=1, hidden=(8, 8), output="joint", recurrent="gru")
        train_frame_network(net, [m[0] for m in mixes], sources=signal_sources(mixes), epochs=2, random_state=7)
        preds.append(net.predict(mixes[0][0]))
    np.testing.assert_array_equal(*preds)


def test_bad_settings_are_refused():
    mixes = _mixtures(2)
    inputs = [m[0] for m in mixes]
    net = FrameNetwork(F, F, hidden=(8,), output="sigmoid")
    with pytest.raises(ParameterError, match="either targets"):
        train_frame_network(net, inputs, epochs=1)
    with pytest.raises(ParameterError, match="either targets"):
        train_frame_network(net, inputs, [m[1] for m in mixes], sources=signal_sources(mixes), epochs=1)
    with pytest.raises(DataError, match="do not match"):
        train_frame_network(net, inputs, sources=[s[:, :F] for s in signal_sources(mixes)], epochs=1)
    with pytest.raises(ParameterError, match="at least two hidden"):
        FrameNetwork(F, F, hidden=(8,), recurrent="gru")
    with pytest.raises(ParameterError, match="recurrent must be one of"):
        FrameNetwork(F, F, hidden=(8, 8), recurrent="rnn")


def test_column_statistics_and_finiteness_check_match_torch():
    """The fast normalisation statistics against ``mean(0)`` / ``std(0)`` in float64, over several chunks."""
    from deepnmf.pipelines.frame_networks import _all_finite, _column_mean_std

    x = torch.from_numpy(np.random.default_rng(0).normal(-5.0, 2.0, (1000, 7)).astype(np.float32))
    mean, std = _column_mean_std([x[:450], x[450:]], chunk=300)
    assert mean.dtype == std.dtype == torch.float32
    torch.testing.assert_close(mean.double(), x.double().mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(std.double(), x.double().std(0), rtol=1e-5, atol=0)
    assert _all_finite(x) and _all_finite(torch.full((4, 2), 3e38))  # an overflowing sum of finite values
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[17, 3] = bad
        assert not _all_finite(y)
    bad_targets = [torch.zeros(6, F)]
    bad_targets[0][2, 1] = float("nan")
    with pytest.raises(DataError, match="NaN/inf"):
        train_frame_network(FrameNetwork(F, F, hidden=(8,), output="sigmoid"), [torch.ones(6, F)], bad_targets,
                            epochs=1)


@pytest.mark.parametrize("recurrent, length", [(None, 0), ("gru", 7)], ids=["mlp", "recurrent"])
def test_training_rows_are_the_standardised_features_beside_the_targets(recurrent, length):
    """The matrix written pair by pair equals the naive one: stacked features, standardised by their
    own column mean and deviation, concatenated with the targets (frame after frame in a chunk)."""
    from deepnmf.pipelines.frame_networks import _training_rows

    g = torch.Generator().manual_seed(0)
    net = FrameNetwork(9, 4, context=1, hidden=(8, 8), recurrent=recurrent, noise_aware=True)
    inputs = [torch.rand(n, 9, generator=g) + 0.01 for n in (5, 12, 20)]
    targets = [torch.rand(n, 4, generator=g) for n in (5, 12, 20)]
    rows = _training_rows(net, inputs, targets, length, 4)
    assert torch.equal(_training_rows(net, inputs, targets, length, 4, chunk=3), rows)  # standardised chunk by chunk
    L = max(length, 1)
    X = torch.cat([_chunks(net.raw_features(m), length) for m in inputs])
    Y = torch.cat([_chunks(t, length) for t in targets])
    frames = X.reshape(-1, net.in_mean.numel())
    torch.testing.assert_close(net.in_mean, frames.mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(net.in_std, frames.std(0), rtol=1e-4, atol=0)
    torch.testing.assert_close(net.out_scale, Y.reshape(-1, 4).mean(0))
    Xn = ((frames - net.in_mean) / net.in_std).reshape(X.shape[0], L, -1)
    assert torch.equal(rows, torch.cat([Xn, Y.reshape(Y.shape[0], L, -1)], 2).flatten(1))


def _noise_and_speech(n_utterances: int):
    """``n_utterances`` white-noise "utterances" of growing length, a longer noise, the default STFT."""
    from deepnmf.pipelines.enhancement import STFTSettings

    rng = np.random.default_rng(0)
    speech = [rng.standard_normal(4000 + 500 * i) for i in range(n_utterances)]
    return speech, rng.standard_normal(20000), STFTSettings()


def test_training_mixtures_are_capped_and_unchanged_below_the_cap():
    from deepnmf.pipelines.enhancement import training_mixtures

    speech, noise, stft = _noise_and_speech(4)
    full = list(training_mixtures(speech, noise, stft, n_copies=2, random_state=1))
    same = list(training_mixtures(speech, noise, stft, n_copies=2, max_mixtures=8, random_state=1))
    assert len(full) == len(same) == 8
    for a, b in zip(full, same):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    capped = list(training_mixtures(speech, noise, stft, n_copies=2, max_mixtures=3, random_state=1))
    assert len(capped) == 3
    lengths = {Y.shape[0] for Y, _, _ in full}
    assert {Y.shape[0] for Y, _, _ in capped} <= lengths
    with pytest.raises(ParameterError):
        list(training_mixtures(speech, noise, stft, max_mixtures=0))


def test_phase_sensitive_sources_are_the_best_real_mask_of_the_noisy_stft():
    from deepnmf.pipelines.enhancement import phase_sensitive_sources

    rng = np.random.default_rng(3)
    S = torch.tensor(rng.standard_normal((40, 9)) + 1j * rng.standard_normal((40, 9)))
    N = torch.tensor(0.7 * (rng.standard_normal((40, 9)) + 1j * rng.standard_normal((40, 9))))
    Y = S + N
    speech, noise = phase_sensitive_sources(Y, S)
    # naive: |S| cos(angle S - angle Y), truncated to [0, |Y|]
    naive = np.clip(np.abs(S.numpy()) * np.cos(np.angle(S.numpy()) - np.angle(Y.numpy())), 0, np.abs(Y.numpy()))
    np.testing.assert_allclose(speech, naive, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(speech + noise, Y.abs(), rtol=1e-12)
    assert float(noise.min()) >= 0
    # the mask S'/|Y| minimises |M Y - S|^2 over real M in [0, 1], bin by bin (a grid search agrees)
    grid = np.linspace(0, 1, 2001)[:, None, None]
    err = np.abs(grid * Y.numpy()[None] - S.numpy()[None]) ** 2
    best = grid[np.argmin(err, axis=0), 0, 0]
    np.testing.assert_allclose(speech / Y.abs(), best, atol=1e-3)


def test_phase_sensitive_mixtures_share_the_magnitude_mixtures_draws():
    from deepnmf.pipelines.enhancement import training_mixtures

    speech, noise, stft = _noise_and_speech(3)
    plain = list(training_mixtures(speech, noise, stft, n_copies=2, random_state=1))
    phase = list(training_mixtures(speech, noise, stft, n_copies=2, phase_sensitive=True, random_state=1))
    for (Y, S, N), (Yp, Sp, Np) in zip(plain, phase):
        np.testing.assert_allclose(Yp, Y, rtol=1e-6)
        np.testing.assert_allclose(Sp + Np, Y, rtol=1e-5, atol=1e-7)
        assert bool((Sp <= S + 1e-6).all())  # a projection is never longer than the source
        assert float(Sp.sum()) < float(S.sum())


@pytest.mark.parametrize("objective", ["signal", "phase"])
def test_mask_enhancer_trained_by_signal_objectives_improves_sdr(objective):
    from deepnmf.metrics import bss_eval
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000

    def voice(f0):  # harmonic "speech" with a slow envelope, noise is white
        return sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 6)) \
            * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))

    speech = [voice(f0) for f0 in (150, 180, 210, 240, 270)]
    noise = rng.standard_normal(80000)
    enh = MaskEnhancer().fit(speech, noise, objective=objective, output="joint", snr_range=(0, 0), n_copies=2,
                             hidden=(32, 32), epochs=15, random_state=0)
    assert enh.network.metadata["objective"] == objective
    s = voice(200)
    from deepnmf.audio.mixing import mix_at_snr
    y, s, n = mix_at_snr(s, noise[:8000], 0.0, peak=None)
    est = enh.enhance(y)
    before = bss_eval(np.stack([s, n]), np.stack([y, n]))["sdr"][0]
    after = bss_eval(np.stack([s, n]), np.stack([est, n]))["sdr"][0]
    assert after > before + 5


def test_mask_ensemble_averages_members_trained_as_single_networks(tmp_path):
    from deepnmf.exceptions import ModelFileError
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    rng = np.random.default_rng(0)
    speech = [rng.standard_normal(4000) * np.sin(np.linspace(0, 3, 4000)) ** 2 for _ in range(3)]
    noise = 0.5 * rng.standard_normal(30000)
    kw = dict(objective="signal", output="joint", hidden=(16, 16), epochs=3, n_copies=1)
    ens = MaskEnhancer().fit(speech, noise, n_networks=3, random_state=5, **kw)
    assert len(ens.networks) == 3 and ens.network is ens.networks[0] and ens.config()["n_networks"] == 3
    mag = torch.rand(30, 257) + 0.05
    # member i is the single network of seed 5 + i; the gain is the members' mean
    singles = [MaskEnhancer().fit(speech, noise, random_state=5 + i, **kw) for i in range(3)]
    for member, single in zip(ens.networks, singles):
        np.testing.assert_array_equal(member.predict(mag), single.gain(mag))
    np.testing.assert_allclose(ens.gain(mag), sum(m.gain(mag) for m in singles) / 3, rtol=1e-6)
    assert not torch.equal(singles[0].gain(mag), singles[1].gain(mag))
    # round trip of the ensemble folder
    ens.save(tmp_path / "ens")
    back = MaskEnhancer.load(tmp_path / "ens")
    assert len(back.networks) == 3
    np.testing.assert_array_equal(back.gain(mag), ens.gain(mag))
    # a member that is not a mask network is refused
    import shutil
    shutil.rmtree(tmp_path / "ens" / "network-2")
    FrameNetwork(257, 7, hidden=(4,)).save(tmp_path / "ens" / "network-2")
    with pytest.raises(ModelFileError, match="not a mask network"):
        MaskEnhancer.load(tmp_path / "ens")
    with pytest.raises(ParameterError, match="n_networks"):
        MaskEnhancer().fit(speech, noise, n_networks=0, **kw)
    with pytest.raises(ParameterError, match="integer random_state"):
        MaskEnhancer().fit(speech, noise, n_networks=2, random_state=np.random.default_rng(0), **kw)


def test_noise_estimate_is_the_mean_of_the_quietest_frames():
    from deepnmf.nn.networks import noise_estimate

    feats = torch.tensor([[5.0, 5.0], [1.0, 3.0], [9.0, 9.0], [0.0, 2.0], [7.0, 7.0]], dtype=torch.float64)
    est = noise_estimate(feats, quantile=0.4)  # the 2 quietest frames: rows 3 and 1
    np.testing.assert_allclose(est, np.tile([[0.5, 2.5]], (5, 1)))
    assert noise_estimate(feats[:1], quantile=0.2).shape == (1, 2)


def test_running_noise_estimate_matches_a_naive_loop():
    from deepnmf.nn.networks import noise_estimate

    feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    feats[25:] += 3.0  # the noise gets louder
    for window, quantile in ((3, 0.2), (5, 0.5), (1, 1.0)):
        got = noise_estimate(feats, quantile=quantile, window=window)
        for t in range(40):
            lo, hi = max(0, t - window), min(40, t + window + 1)
            part = feats[lo:hi]
            n = max(1, round(quantile * part.shape[0]))
            quiet = part[torch.argsort(part.mean(1))[:n]]
            np.testing.assert_allclose(got[t], quiet.mean(0), rtol=1e-12, atol=1e-12)
    # computed block by block (memory not quadratic in the length), to the same values
    np.testing.assert_allclose(noise_estimate(feats, window=3, block=7), noise_estimate(feats, window=3), rtol=1e-12)
    # it follows the level: late frames' estimates are louder than early ones'
    running = noise_estimate(feats, window=5)
    assert float(running[35:].mean()) > float(running[:15].mean()) + 2
    # a window as long as the utterance is the static estimate
    np.testing.assert_allclose(noise_estimate(feats, window=39), noise_estimate(feats))


def test_noise_window_is_saved_and_needs_noise_aware_input(tmp_path):
    net = FrameNetwork(F, F, context=1, hidden=(8,), output="sigmoid", noise_aware=True, noise_window=4)
    mag = torch.rand(30, F, generator=torch.Generator().manual_seed(1))
    net.save(tmp_path / "net")
    back = FrameNetwork.load(tmp_path / "net")
    assert back.config["noise_window"] == 4
    np.testing.assert_allclose(back.predict(mag), net.predict(mag))
    from deepnmf.nn.networks import log_features, noise_estimate

    np.testing.assert_allclose(net.raw_features(mag)[:, -F:], noise_estimate(log_features(mag), window=4))
    assert "noise_window" not in FrameNetwork(F, F, noise_aware=True).config  # older files stay as they were
    with pytest.raises(ParameterError, match="noise_aware"):
        FrameNetwork(F, F, noise_window=4)
    with pytest.raises(ParameterError, match="noise_window"):
        FrameNetwork(F, F, noise_aware=True, noise_window=-1)


def test_noise_aware_network_sees_the_utterance_noise_and_round_trips(tmp_path):
    net = FrameNetwork(F, F, context=1, hidden=(16,), output="joint", noise_aware=True)
    mag = torch.rand(50, F) + 0.1
    x = net.raw_features(mag)
    assert x.shape == (50, F * 4)
    # the last block is the same for every frame and moves with the noise floor
    np.testing.assert_allclose(x[:, 3 * F:], x[:1, 3 * F:].expand(50, -1))
    louder = net.raw_features(mag * 10)
    np.testing.assert_allclose(louder[:, 3 * F:] - x[:, 3 * F:], np.log(10) * np.ones((50, F)), rtol=1e-3)
    mixes = _mixtures(4)
    result = train_frame_network(net, [Y for Y, _, _ in mixes], sources=signal_sources(mixes), epochs=2,
                                 random_state=0)
    assert len(result.train_loss) == 2
    net.save(tmp_path / "nat")
    back = FrameNetwork.load(tmp_path / "nat")
    assert back.config["noise_aware"] is True
    torch.testing.assert_close(back.predict(mag), net.predict(mag))
    assert "noise_aware" not in FrameNetwork(F, F, hidden=(8,)).config  # old folders load unchanged


def test_speed_perturbed_mixtures_change_length_and_keep_the_snr_range():
    from deepnmf.pipelines.enhancement import training_mixtures

    speech, noise, stft = _noise_and_speech(3)
    plain = list(training_mixtures(speech, noise, stft, n_copies=4, random_state=1))
    unit = list(training_mixtures(speech, noise, stft, n_copies=4, speed_range=(1.0, 1.0), random_state=1))
    for a, b in zip(plain, unit):  # (1, 1) draws nothing: the same mixtures as without the option
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    fast = list(training_mixtures(speech, noise, stft, n_copies=4, speed_range=(1.2, 1.3), random_state=1))
    slow = list(training_mixtures(speech, noise, stft, n_copies=4, speed_range=(0.7, 0.8), random_state=1))
    for (Y, S, N), (Yf, Sf, Nf), (Ys, Ss, Ns) in zip(plain, fast, slow):
        assert Y.shape[0] / 1.3 - 2 <= Yf.shape[0] <= Y.shape[0] / 1.2 + 2
        assert Y.shape[0] / 0.8 - 2 <= Ys.shape[0] <= Y.shape[0] / 0.7 + 2
        # the SNR is set after the speed change (STFT energies follow Parseval up to the window's edges)
        for S_, N_ in ((Sf, Nf), (Ss, Ns)):
            assert -5.5 < 10 * np.log10(float((S_**2).sum()) / float((N_**2).sum())) < 10.5
    with pytest.raises(ParameterError):
        list(training_mixtures(speech, noise, stft, speed_range=(1.1, 0.9)))
    with pytest.raises(ParameterError):
        list(training_mixtures(speech, noise, stft, speed_range=(0.2, 1.0)))


@pytest.mark.parametrize("recurrent", [None, "lstm"])
def test_dropout_is_active_in_training_only_and_saved(recurrent, tmp_path):
    torch.manual_seed(0)
    net = FrameNetwork(F, F, context=1, hidden=(32, 16), output="joint", recurrent=recurrent, dropout=0.5)
    x = torch.randn(4, 20, net.in_mean.numel()) if recurrent else torch.randn(20, net.in_mean.numel())
    net.train()
    assert not torch.equal(net(x), net(x))  # a fresh mask per call
    net.eval()
    np.testing.assert_array_equal(net(x).detach(), net(x).detach())
    # in eval mode it is the network without dropout, weights alike
    plain = FrameNetwork(F, F, context=1, hidden=(32, 16), output="joint", recurrent=recurrent).eval()
    plain.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(plain(x).detach(), net(x).detach())
    net.save(tmp_path / "net")
    back = FrameNetwork.load(tmp_path / "net")
    assert back.config["dropout"] == 0.5
    for bad in (-0.1, 1.0):
        with pytest.raises(ParameterError, match="dropout"):
            FrameNetwork(F, F, hidden=(8, 8), dropout=bad)


def test_gain_exponent_applies_at_enhancement_only_and_round_trips(tmp_path):
    from deepnmf import NMF
    from deepnmf.pipelines.enhancement import Enhancer, load_enhancer, wiener_gain
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    rng = np.random.default_rng(0)
    speech = [rng.standard_normal(4000) * np.sin(np.linspace(0, 3, 4000)) ** 2 for _ in range(3)]
    noise = 0.5 * rng.standard_normal(30000)
    V = np.abs(rng.standard_normal((60, 257)))
    dicts = [NMF(4, max_iter=20, random_state=i).fit(V) for i in range(2)]
    kw = dict(objective="signal", hidden=(16,), epochs=2, n_copies=1, random_state=3)
    plain = Enhancer(*dicts, power=1.0).fit_network(speech, noise, **kw)
    sharp = Enhancer(*dicts, power=1.0, exponent=2.0).fit_network(speech, noise, **kw)
    for a, b in zip(plain.network.state_dict().values(), sharp.network.state_dict().values()):
        np.testing.assert_array_equal(a, b)  # training goes through the plain ratio
    mag = torch.rand(20, 257) + 0.05
    S, N = plain.estimate_magnitudes(mag)
    np.testing.assert_allclose(sharp.gain(mag), wiener_gain(S, N, power=1.0) ** 2, rtol=1e-5)
    sharp.save(tmp_path / "enh")
    assert Enhancer.load(tmp_path / "enh").exponent == 2.0
    assert Enhancer.load(tmp_path / "enh", exponent=1.5).exponent == 1.5

    mask = MaskEnhancer().fit(speech, noise, output="joint", **kw)
    m = mask.gain(mag)
    mask.exponent = 2.0
    np.testing.assert_allclose(mask.gain(mag), m**2, rtol=1e-6)
    mask.save(tmp_path / "mask")
    assert MaskEnhancer.load(tmp_path / "mask").exponent == 2.0
    via = load_enhancer(mask_network=tmp_path / "mask", exponent=3.0)
    np.testing.assert_allclose(via.gain(mag), m**3, rtol=1e-5)
    with pytest.raises(ParameterError, match="works alone"):
        load_enhancer(mask_network=tmp_path / "mask", power=2.0)
    with pytest.raises(ParameterError, match="gain exponent"):
        MaskEnhancer(exponent=-1)


@pytest.mark.parametrize("n_bins, n_bands", [(257, 64), (257, 128), (24, 24), (24, 5), (3, 1)])
def test_band_matrix_averages_contiguous_bands_widening_upwards(n_bins, n_bands):
    from deepnmf.nn.networks import band_matrix

    M = band_matrix(n_bins, n_bands)
    assert M.shape == (n_bins, n_bands)
    support = M > 0
    assert bool((support.sum(1) == 1).all())  # every bin in exactly one band
    widths = support.sum(0)
    assert bool((widths >= 1).all())
    torch.testing.assert_close(M.sum(0), torch.ones(n_bands))  # band means
    band_of = support.float().argmax(1)
    assert bool((band_of.diff() >= 0).all())  # contiguous, in order
    if n_bands < n_bins // 2:
        assert widths[-1] > widths[0]  # mel-like: wider at the top
    X = torch.rand(7, n_bins, dtype=torch.float64)
    naive = torch.stack([X[:, band_of == k].mean(1) for k in range(n_bands)], dim=1)
    torch.testing.assert_close(X @ M.double(), naive)


def test_band_matrix_refuses_more_bands_than_bins():
    from deepnmf.nn.networks import band_matrix

    with pytest.raises(ParameterError, match="bands"):
        band_matrix(10, 11)
    with pytest.raises(ParameterError, match="n_bands"):
        band_matrix(10, 0)


@pytest.mark.parametrize("noise_aware", [False, True])
def test_context_bands_feed_neighbours_as_band_means_and_round_trip(noise_aware, tmp_path):
    from deepnmf.nn.networks import band_matrix, log_features, noise_estimate

    B, c = 5, 2
    net = FrameNetwork(F, F, context=c, hidden=(16,), output="joint", noise_aware=noise_aware, context_bands=B)
    mag = torch.rand(30, F, generator=torch.Generator().manual_seed(3)) + 0.05
    x = net.raw_features(mag)
    assert x.shape == (30, F + 2 * c * B + (B if noise_aware else 0)) == (30, net.in_mean.numel())
    logs = log_features(mag)
    band_of = (band_matrix(F, B) > 0).float().argmax(1)
    bands = lambda v: torch.stack([v[band_of == k].mean() for k in range(B)])  # noqa: E731
    for t in (0, 1, 14, 29):  # edge frames repeat the first / last frame
        naive = [bands(logs[min(max(t + d, 0), 29)]) for d in range(-c, 0)] + [logs[t]] \
            + [bands(logs[min(max(t + d, 0), 29)]) for d in range(1, c + 1)]
        if noise_aware:
            naive.append(bands(noise_estimate(logs)[t]))
        torch.testing.assert_close(x[t], torch.cat(naive))
    mixes = _mixtures(3)
    train_frame_network(net, [Y for Y, _, _ in mixes], sources=signal_sources(mixes), epochs=1, random_state=0)
    net.save(tmp_path / "banded")
    back = FrameNetwork.load(tmp_path / "banded")
    assert back.config["context_bands"] == B
    torch.testing.assert_close(back.predict(mag), net.predict(mag))
    assert "context_bands" not in FrameNetwork(F, F, hidden=(8,)).config  # older folders load unchanged


def test_context_bands_are_refused_where_they_mean_nothing():
    with pytest.raises(ParameterError, match="context_bands"):
        FrameNetwork(F, F, context=0, context_bands=4)
    with pytest.raises(ParameterError, match="at most n_bins"):
        FrameNetwork(F, F, context=2, context_bands=F + 1)
    with pytest.raises(ParameterError, match="context_bands"):
        FrameNetwork(F, F, context=2, context_bands=-1)
