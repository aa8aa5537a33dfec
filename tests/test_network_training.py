"""The one settings object of the enhancement networks' training (pipelines.network_training)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from deepnmf.exceptions import ParameterError
from deepnmf.pipelines.network_training import NetworkTraining


def _data():
    rng = np.random.default_rng(0)
    speech = [rng.standard_normal(4000) * np.sin(np.linspace(0, 3, 4000)) ** 2 for _ in range(3)]
    return speech, 0.5 * rng.standard_normal(30000)


def _toy_enhancer():
    from deepnmf import NMF
    from deepnmf.pipelines.enhancement import Enhancer

    rng = np.random.default_rng(0)
    return Enhancer(*(NMF(3, max_iter=20, random_state=i).fit(rng.random((40, 257))) for i in range(2)), power=1.0)


def test_settings_replace_fields_and_refuse_unknown_names():
    base = NetworkTraining(epochs=3, hidden=(8,))
    merged = NetworkTraining.of(base, {"lr": 2e-3})
    assert (merged.epochs, tuple(merged.hidden), merged.lr) == (3, (8,), 2e-3)
    assert base.lr == 1e-3  # frozen: the original is unchanged
    assert NetworkTraining.of(None, {}) == NetworkTraining()
    assert NetworkTraining.names() == tuple(f.name for f in dataclasses.fields(NetworkTraining))
    with pytest.raises(ParameterError, match="unknown network training setting.*epoch.*the settings are"):
        NetworkTraining.of(None, {"epoch": 3})
    with pytest.raises(ParameterError, match="must be a NetworkTraining"):
        NetworkTraining.of({"epochs": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.epochs = 4


def test_mask_fit_with_a_settings_object_equals_keywords():
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    speech, noise = _data()
    kw = dict(hidden=(16, 16), epochs=2, n_copies=1, noise_aware=True, discriminative=0.05, batch_size=64)
    by_keywords = MaskEnhancer().fit(speech, noise, objective="signal", output="joint", random_state=3, **kw)
    training = NetworkTraining(**kw)
    by_object = MaskEnhancer().fit(speech, noise, objective="signal", output="joint", training=training, random_state=3)
    # an object with a keyword on top: the keyword wins
    mixed = MaskEnhancer().fit(speech, noise, objective="signal", output="joint", random_state=3,
                               training=dataclasses.replace(training, epochs=5), epochs=2)
    mag = torch.rand(20, 257) + 0.05
    np.testing.assert_array_equal(by_object.gain(mag), by_keywords.gain(mag))
    np.testing.assert_array_equal(mixed.gain(mag), by_keywords.gain(mag))
    assert by_object.network.config["noise_aware"] is True and by_object.network.config["hidden"] == [16, 16]
    assert by_object.network.metadata["discriminative"] == 0.05
    assert len(by_object.network_training_.train_loss) == 2
    with pytest.raises(ParameterError, match="unknown network training setting"):
        MaskEnhancer().fit(speech, noise, epochz=2)


def test_activation_network_fit_with_a_settings_object_equals_keywords():
    speech, noise = _data()
    kw = dict(hidden=(8,), epochs=2, n_copies=1, context=1)
    a = _toy_enhancer().fit_network(speech, noise, objective="signal", random_state=0, **kw)
    b = _toy_enhancer().fit_network(speech, noise, objective="signal", training=NetworkTraining(**kw), random_state=0)
    mag = torch.rand(20, 257) + 0.05
    np.testing.assert_array_equal(a.gain(mag), b.gain(mag))
    assert b.network.config["context"] == 1 and b.activations == "dnn"
    with pytest.raises(ParameterError, match="unknown network training setting.*n_copy"):
        _toy_enhancer().fit_network(speech, noise, n_copy=2)
    with pytest.raises(ParameterError, match="loss_scale"):  # a target objective has no loss units
        _toy_enhancer().fit_network(speech, noise, objective="activations", loss_scale="noise", **kw)


@pytest.mark.parametrize("loss_scale", ["mixture", "sdr"])
def test_shared_training_matrix_trains_the_same_networks_without_remaking_the_mixtures(loss_scale):
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    speech, noise = _data()
    kw = dict(hidden=(16, 16), epochs=2, n_copies=2, noise_aware=True, context_bands=12, discriminative=0.05,
              batch_size=64, loss_scale=loss_scale)
    alone = [_toy_enhancer().fit_network(speech, noise, objective="signal", random_state=4, **kw),
             MaskEnhancer().fit(speech, noise, objective="signal", output="joint", n_networks=2, random_state=4, **kw)]
    cache: dict = {}
    pairs = []
    count = lambda info: pairs.append(info) if info.stage == "pairs" else None  # noqa: E731
    first = _toy_enhancer().fit_network(speech, noise, objective="signal", random_state=4, cache=cache, callback=count, **kw)
    made = len(pairs)
    assert made == 2 * len(speech) and len(cache) == 1
    # another dictionary's network and the mask ensemble: the first member takes the matrix, the second (seed 5) makes its own
    shared = MaskEnhancer().fit(speech, noise, objective="signal", output="joint", n_networks=2, random_state=4,
                                cache=cache, callback=count, **kw)
    assert len(pairs) == 2 * made and len(cache) == 2
    mag = torch.rand(30, 257) + 0.05
    np.testing.assert_array_equal(first.gain(mag), alone[0].gain(mag))
    np.testing.assert_array_equal(shared.gain(mag), alone[1].gain(mag))
    for net, ref in ((first.network, alone[0].network), (shared.networks[0], alone[1].networks[0])):
        torch.testing.assert_close(net.in_std, ref.in_std, rtol=0, atol=0)
    # other inputs, units or seeds are not shared
    _toy_enhancer().fit_network(speech, noise, objective="signal", random_state=4, cache=cache, **{**kw, "context_bands": 0})
    _toy_enhancer().fit_network(speech, noise, objective="signal", random_state=6, cache=cache, **kw)
    assert len(cache) == 4
    # target objectives and unseeded fits never touch the cache
    _toy_enhancer().fit_network(speech, noise, objective="activations", random_state=4, cache=cache,
                                **{**kw, "loss_scale": "mixture"})
    _toy_enhancer().fit_network(speech, noise, objective="signal", random_state=np.random.default_rng(0), cache=cache, **kw)
    assert len(cache) == 4


def test_the_last_fit_takes_the_shared_matrix_and_frees_it():
    """The experiment hands a noise model's last network fit its cache as a _LastUse: the mask ensemble's first
    member reads (removes) the shared matrix, which is freed once that member is trained; the second member's
    own matrix is not kept; the networks are those trained without any cache."""
    import gc
    import weakref

    from deepnmf.experiments.enhancement import _LastUse
    from deepnmf.pipelines.enhancement_baselines import MaskEnhancer

    speech, noise = _data()
    kw = dict(hidden=(16,), epochs=1, n_copies=2, noise_aware=True, context_bands=12, batch_size=64)
    alone = MaskEnhancer().fit(speech, noise, objective="signal", output="joint", n_networks=2, random_state=4, **kw)
    cache: dict = {}
    _toy_enhancer().fit_network(speech, noise, objective="signal", random_state=4, cache=cache, **kw)
    (matrix,) = cache.values()
    gone = weakref.ref(matrix)
    last = _LastUse(cache)
    del cache, matrix
    freed = []
    watch = lambda info: freed.append(gone() is None) if info.stage == "pairs" else None  # noqa: E731
    shared = MaskEnhancer().fit(speech, noise, objective="signal", output="joint", n_networks=2, random_state=4,
                                cache=last, callback=watch, **kw)
    gc.collect()
    assert len(last) == 0 and gone() is None
    assert freed and all(freed)  # already freed while the second member made its mixtures
    mag = torch.rand(30, 257) + 0.05
    np.testing.assert_array_equal(shared.gain(mag), alone.gain(mag))


def test_a_laid_out_matrix_is_refused_by_a_network_of_other_inputs():
    from deepnmf.nn.networks import FrameNetwork
    from deepnmf.pipelines.frame_networks import signal_sources, train_frame_network

    g = torch.Generator().manual_seed(0)
    mixes = [(S + N, S, N) for S, N in ((torch.rand(40, 20, generator=g), torch.rand(40, 20, generator=g)) for _ in range(3))]
    kept = []
    net = FrameNetwork(20, 20, context=1, hidden=(8,), output="joint", context_bands=5)
    train_frame_network(net, [m[0] for m in mixes], sources=signal_sources(mixes), epochs=1, random_state=0, keep=kept.append)
    assert len(kept) == 1 and kept[0].rows.shape[0] == 120
    other = FrameNetwork(20, 20, context=2, hidden=(8,), output="joint", context_bands=5)
    with pytest.raises(ParameterError, match="laid out for inputs"):
        train_frame_network(other, [], sources=[], laid_out=kept[0], epochs=1)
    with pytest.raises(ParameterError, match="this fit needs"):  # the matrix holds sources, not targets
        train_frame_network(FrameNetwork(20, 20, context=1, hidden=(8,), output="sigmoid", context_bands=5), [], [],
                            laid_out=kept[0], epochs=1)
