"""One model format: every class of MODEL_CLASSES round-trips through save and deepnmf.load_model.

Generated data only (harmonic notes for "speech", white noise), tiny sizes.
Besides the round trips: folders of another type, corrupted weights, weights
of the wrong names or shapes and pickles are refused with ModelFileError, and
a pickle is never unpickled.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import deepnmf
from deepnmf.audio.points import from_stft
from deepnmf.audio.tf import stft_freqs
from deepnmf.datasets.synthetic import harmonic_notes
from deepnmf.exceptions import ModelFileError
from deepnmf.io.model_files import CONFIG, MODEL_CLASSES, WEIGHTS, peek_model_type, read_model, write_model
from deepnmf.models import make_estimator
from deepnmf.nn.networks import FrameNetwork
from deepnmf.pipelines.enhancement import Enhancer, STFTSettings
from deepnmf.pipelines.enhancement_baselines import DNMFEnhancer, MaskEnhancer
from deepnmf.pipelines.frame_networks import train_frame_network

SR = 16000
STFT = STFTSettings(sr=SR)


# ------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def signals() -> dict[str, Any]:
    """Two "speech" utterances (harmonic notes), a noise recording and a noisy test signal."""
    rng = np.random.default_rng(0)
    speech = [harmonic_notes(3, duration=1.0, sr=SR, seed=s).audio.astype(np.float64) for s in (1, 2)]
    noise = 0.1 * rng.standard_normal(2 * SR)
    test = harmonic_notes(3, duration=0.5, sr=SR, seed=3).audio.astype(np.float64)
    return {"speech": speech, "noise": noise, "noisy": test + 0.05 * rng.standard_normal(test.size)}


@pytest.fixture(scope="module")
def mags(signals) -> dict[str, np.ndarray]:
    """Magnitude spectrograms ``(n_frames, n_bins)`` of the speech, the noise and the noisy signal."""
    speech = np.concatenate([STFT.stft(x).abs().double().numpy() for x in signals["speech"]])
    return {"speech": speech, "noise": STFT.stft(signals["noise"]).abs().double().numpy(),
            "noisy": STFT.stft(signals["noisy"]).abs().double().numpy()}


@pytest.fixture(scope="module")
def dictionaries(mags) -> dict[str, Any]:
    """Tiny NMF and VAE-NMF speech and noise models, built by the factory."""
    def nmf(V):
        return make_estimator("nmf", 3, beta_loss="kullback-leibler", max_iter=20, random_state=0).fit(V)

    def vae(V):
        return make_estimator("vae-nmf", 3, max_epochs=2, early_stopping=False, random_state=0).fit(V)

    return {"nmf": (nmf(mags["speech"]), nmf(mags["noise"])), "vae": (vae(mags["speech"]), vae(mags["noise"]))}


# ------------------------------------------------------------------ cases
# each case: (registered class name, build(signals, mags, dictionaries) -> object, outputs(object, data) -> arrays)
def _nmf(s, m, d):
    return d["nmf"][0]


def _minibatch_nmf(s, m, d):
    return make_estimator("minibatch-nmf", 3, beta_loss="kullback-leibler", batch_size=16, max_iter=5,
                          random_state=0).fit(m["speech"])


def _vae(s, m, d):
    return d["vae"][0]


def _implicit(s, m, d):
    return make_estimator("implicit", 2, max_epochs=3, hidden=8, n_octaves=3, random_state=0).fit(
        m["speech"][:30], freqs=stft_freqs(STFT.n_fft, SR), sr=SR)


def _implicit_points(s, m, d):
    points = from_stft(s["speech"][0][: SR // 4], SR, n_fft=256)
    return make_estimator("implicit-points", 2, max_epochs=3, hidden=8, n_octaves=3, random_state=0).fit(points)


def _dnmf(s, m, d):
    speech, noise = d["nmf"]
    X = m["speech"][:40] + m["noise"][:40]
    return make_estimator("dnmf", None, max_epochs=3, random_state=0).fit(
        X, m["speech"][:40], target_components=speech.components_, other_components=noise.components_)


def _network(output: str) -> Callable:
    def build(s, m, d):
        n_out = 4 if output == "softplus" else STFT.n_bins
        net = FrameNetwork(STFT.n_bins, n_out, context=1, hidden=(8,), output=output)
        X = torch.as_tensor(m["speech"])
        target = torch.rand(X.shape[0], n_out, generator=torch.Generator().manual_seed(0))
        train_frame_network(net, [X], [target], epochs=2, random_state=0)
        net.metadata["note"] = output
        return net
    return build


def _enhancer(activations: str) -> Callable:
    def build(s, m, d):
        models = d["vae" if activations == "encoder" else "nmf"]
        enh = Enhancer(*models, activations=activations if activations != "dnn" else "mu", power=1.0, floor=0.1,
                       max_iter=20)
        if activations == "dnn":
            enh.fit_network(s["speech"], s["noise"], hidden=(8,), epochs=2, random_state=0)
        return enh
    return build


def _mask(s, m, d):
    return MaskEnhancer(mask_power=2.0).fit(s["speech"], s["noise"], hidden=(8,), epochs=2, random_state=0)


def _dnmf_enhancer(s, m, d):
    return DNMFEnhancer(*d["nmf"], floor=0.05, max_epochs=3).fit(s["speech"], s["noise"], max_frames=200, random_state=0)


def _estimator_outputs(est, s, m):
    if type(est).__name__ == "DiscriminativeNMF":
        return [*est.separate(m["noisy"]), est.components_]
    if getattr(est, "mode", "grid") == "points":
        return [est.activations_at(np.linspace(0, 0.2, 5)), est.dictionary_at(stft_freqs(256, SR))]
    return [est.transform(m["noisy"]), est.components_]


def _network_outputs(net, s, m):
    return [net.predict(torch.as_tensor(m["noisy"])).numpy()]


def _enhancer_outputs(enh, s, m):
    return list(enh.enhance(s["noisy"], return_gain=True))


CASES = {
    "nmf": ("NMF", _nmf, _estimator_outputs),
    "minibatch-nmf": ("MiniBatchNMF", _minibatch_nmf, _estimator_outputs),
    "vae-nmf": ("VAENMF", _vae, _estimator_outputs),
    "implicit": ("ImplicitNMF", _implicit, _estimator_outputs),
    "implicit-points": ("ImplicitNMF", _implicit_points, _estimator_outputs),
    "dnmf": ("DiscriminativeNMF", _dnmf, _estimator_outputs),
    "activation-network": ("FrameNetwork", _network("softplus"), _network_outputs),
    "mask-network": ("FrameNetwork", _network("sigmoid"), _network_outputs),
    "enhancer-mu": ("Enhancer", _enhancer("mu"), _enhancer_outputs),
    "enhancer-dnn": ("Enhancer", _enhancer("dnn"), _enhancer_outputs),
    "enhancer-encoder": ("Enhancer", _enhancer("encoder"), _enhancer_outputs),
    "mask-enhancer": ("MaskEnhancer", _mask, _enhancer_outputs),
    "dnmf-enhancer": ("DNMFEnhancer", _dnmf_enhancer, _enhancer_outputs),
}


@pytest.fixture(scope="module")
def saved(signals, mags, dictionaries, tmp_path_factory) -> dict[str, tuple[Any, Path]]:
    """Every case built once and saved: case -> (object, folder)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for case, (_, build, _) in CASES.items():
        obj = build(signals, mags, dictionaries)
        out[case] = (obj, obj.save(root / case))
    return out


def test_every_registered_class_has_a_round_trip_case():
    assert {cls for cls, _, _ in CASES.values()} == set(MODEL_CLASSES)


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_through_load_model(case, saved, signals, mags):
    cls_name, _, outputs = CASES[case]
    obj, folder = saved[case]
    assert peek_model_type(folder) == cls_name
    again = deepnmf.load_model(folder)
    assert type(again) is type(obj) and type(again).__name__ == cls_name
    for before, after in zip(outputs(obj, signals, mags), outputs(again, signals, mags), strict=True):
        np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
    # the class's own load reads the same folder
    assert type(type(obj).load(folder)) is type(obj)


def test_network_metadata_and_dtype_round_trip(saved, mags, tmp_path):
    net, folder = saved["activation-network"]
    assert FrameNetwork.load(folder).metadata == {"note": "softplus"}
    double = FrameNetwork.load(folder).double()
    again = FrameNetwork.load(double.save(tmp_path / "double"))
    assert again.in_mean.dtype == torch.float64
    X = torch.as_tensor(mags["noisy"])
    np.testing.assert_array_equal(again.predict(X), double.predict(X))


def test_enhancer_folder_holds_its_parts_as_model_folders(saved):
    enh, folder = saved["enhancer-dnn"]
    assert {p.name for p in folder.iterdir() if p.is_dir()} == {"speech", "noise", "network"}
    assert peek_model_type(folder / "speech") == "NMF" and peek_model_type(folder / "network") == "FrameNetwork"
    config, tensors = read_model(folder, model="Enhancer")
    assert tensors == {} and config["params"]["activations"] == "dnn"
    assert deepnmf.load_model(folder / "network").metadata["fingerprints"] == enh.fingerprints()
    # settings can be overridden on load
    assert Enhancer.load(folder, power=2.0).power == 2.0


# ---------------------------------------------------------------- refusals
def _other_folder(saved, cls_name: str) -> Path:
    """A saved folder of a class other than ``cls_name``."""
    return next(folder for case, (_, folder) in saved.items() if CASES[case][0] != cls_name)


@pytest.mark.parametrize("cls_name", sorted(MODEL_CLASSES))
def test_a_folder_of_another_type_is_refused(cls_name, saved):
    from deepnmf.io.model_files import registered_class

    folder = _other_folder(saved, cls_name)
    with pytest.raises(ModelFileError, match=f"not a|holds a|is not a mask network"):
        registered_class(cls_name).load(folder)


@pytest.mark.parametrize("case", ["nmf", "activation-network", "enhancer-dnn"])
def test_corrupted_weights_are_refused(case, saved, tmp_path):
    _, folder = saved[case]
    copy = Path(shutil.copytree(folder, tmp_path / case))
    target = copy / ("speech" if case == "enhancer-dnn" else "") / WEIGHTS  # a part of a composite, too
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        deepnmf.load_model(copy)


def _rewrite_weights(folder: Path, content: bytes) -> None:
    """Replace the weights file and record its checksum, as a crafted folder would."""
    (folder / WEIGHTS).write_bytes(content)
    config = json.loads((folder / CONFIG).read_text())
    config["weights_sha256"] = hashlib.sha256(content).hexdigest()
    (folder / CONFIG).write_text(json.dumps(config))


def test_unparsable_weights_with_a_matching_checksum_are_refused(saved, tmp_path):
    copy = Path(shutil.copytree(saved["nmf"][1], tmp_path / "nmf"))
    _rewrite_weights(copy, b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(ModelFileError, match="cannot be read"):
        deepnmf.load_model(copy)


class _Booby:
    """Unpickling this creates ``path`` (pickle calls ``open(path, "w")``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickles_are_never_run(saved, tmp_path):
    # the payload is live: unpickling it does create its marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Booby(probe))).close()
    assert probe.exists()

    marker = tmp_path / "marker"
    payload = pickle.dumps(_Booby(marker))
    only_pickle = tmp_path / "only-pickle"
    only_pickle.mkdir()
    (only_pickle / "model.pkl").write_bytes(payload)
    with pytest.raises(ModelFileError, match="model.pkl, a pickle-based file"):
        deepnmf.load_model(only_pickle)
    # a pickle in place of the weights, with the checksum recorded, as a crafted folder would be
    for case in ("nmf", "activation-network"):
        crafted = Path(shutil.copytree(saved[case][1], tmp_path / f"crafted-{case}"))
        _rewrite_weights(crafted, payload)
        with pytest.raises(ModelFileError, match="cannot be read"):
            deepnmf.load_model(crafted)
    # torch.save's format is a pickle too
    crafted = Path(shutil.copytree(saved["nmf"][1], tmp_path / "crafted-torch"))
    buffer = tmp_path / "t.pt"
    torch.save({"components": _Booby(marker)}, buffer)
    _rewrite_weights(crafted, buffer.read_bytes())
    with pytest.raises(ModelFileError, match="cannot be read"):
        deepnmf.load_model(crafted)
    assert not marker.exists()


def test_network_weights_of_other_names_or_shapes_are_refused(saved, tmp_path):
    net, _ = saved["activation-network"]
    tensors = dict(net.state_dict())
    cases = {
        "lacks mlp.0.bias": {k: v for k, v in tensors.items() if k != "mlp.0.bias"},
        "unexpected extra": {**tensors, "extra": torch.zeros(1)},
        "'mlp.0.weight' has shape": {**tensors, "mlp.0.weight": torch.zeros(3, 3)},
        "one floating-point dtype": {**tensors, "in_mean": tensors["in_mean"].double()},
    }
    for message, bad in cases.items():
        folder = write_model(tmp_path / message[:8].strip("' "), model="FrameNetwork", params=dict(net.config),
                             tensors=bad)
        with pytest.raises(ModelFileError, match=message):
            deepnmf.load_model(folder)
    folder = write_model(tmp_path / "params", model="FrameNetwork", params={**net.config, "output": "relu"},
                         tensors=tensors)
    with pytest.raises(ModelFileError, match="do not describe a frame network"):
        deepnmf.load_model(folder)


def test_composite_checks(saved, tmp_path):
    _, folder = saved["enhancer-mu"]
    # a part list pointing outside the folder
    copy = Path(shutil.copytree(folder, tmp_path / "parts"))
    config = json.loads((copy / CONFIG).read_text())
    config["state"]["parts"] = ["../speech"]
    (copy / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="state.parts"):
        deepnmf.load_model(copy)
    # parts swapped for other dictionaries than the ones recorded
    swapped = Path(shutil.copytree(folder, tmp_path / "swapped"))
    shutil.rmtree(swapped / "speech")
    shutil.copytree(folder / "noise", swapped / "speech")
    with pytest.raises(ModelFileError, match="not the ones this enhancer was saved with"):
        deepnmf.load_model(swapped)


def test_the_old_enhancer_layout(saved, signals, tmp_path):
    enh, folder = saved["enhancer-dnn"]
    old = tmp_path / "old"
    for part in ("speech", "noise", "network"):
        shutil.copytree(folder / part, old / part)
    settings = {k: v for k, v in enh.config().items()}
    (old / "enhancer.json").write_text(json.dumps(settings))
    with pytest.raises(ModelFileError, match="old layout"):
        deepnmf.load_model(old)
    again = Enhancer.load(old)
    np.testing.assert_array_equal(again.enhance(signals["noisy"]), enh.enhance(signals["noisy"]))


PICKLE_NAMES = ("model.pt", "model.pkl", "checkpoint.pt", "model.pth", "weights.ckpt", "model.joblib")


def _loaders() -> dict[str, Callable[[Path], Any]]:
    """Every way a model folder is read: the one loader, each registered class's load, the raw readers."""
    from deepnmf.io.model_files import registered_class

    loaders: dict[str, Callable[[Path], Any]] = {"load_model": deepnmf.load_model, "read_model": read_model,
                                                 "peek_model_type": peek_model_type}
    loaders.update({f"{name}.load": registered_class(name).load for name in MODEL_CLASSES})
    return loaders


@pytest.mark.parametrize("pickle_name", PICKLE_NAMES)
def test_a_folder_with_a_crafted_pickle_is_refused_by_every_loader(pickle_name, saved, tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Booby(marker))
    only = tmp_path / "only"  # nothing but the pickle
    only.mkdir()
    (only / pickle_name).write_bytes(payload)
    beside = Path(shutil.copytree(saved["nmf"][1], tmp_path / "beside"))  # a valid folder with a pickle added
    (beside / pickle_name).write_bytes(payload)
    torch_saved = tmp_path / "torch-saved"  # torch.save's zip of pickles, as a .pt would be
    torch_saved.mkdir()
    torch.save({"state": _Booby(marker)}, torch_saved / pickle_name)
    for folder in (only, beside, torch_saved):
        for name, load in _loaders().items():
            with pytest.raises(ModelFileError, match=f"{pickle_name}, a pickle-based file"):
                load(folder)
    assert not marker.exists()


def test_a_folder_without_a_checksum_still_loads(saved, mags, tmp_path):
    """Folders written before the checksum existed: loaded, the check skipped."""
    est, folder = saved["nmf"]
    old = Path(shutil.copytree(folder, tmp_path / "old"))
    config = json.loads((old / CONFIG).read_text())
    del config["weights_sha256"]
    (old / CONFIG).write_text(json.dumps(config))
    np.testing.assert_array_equal(deepnmf.load_model(old).components_, est.components_)


def test_format_version_and_dtype_against_the_config(saved, tmp_path):
    _, folder = saved["nmf"]
    newer = Path(shutil.copytree(folder, tmp_path / "newer"))
    config = json.loads((newer / CONFIG).read_text())
    config["format_version"] = 99
    (newer / CONFIG).write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="format version 99"):
        deepnmf.load_model(newer)
    # float32 weights in a folder whose config records float64
    _, tensors = read_model(folder)
    config = json.loads((folder / CONFIG).read_text())
    assert config["state"]["dtype_"] == "float64"
    wrong = write_model(tmp_path / "dtype", model="NMF", params=config["params"], state=config["state"],
                        tensors={k: v.float() for k, v in tensors.items()})
    with pytest.raises(ModelFileError, match="float32, expected torch.float64"):
        deepnmf.load_model(wrong)
    extra = write_model(tmp_path / "extra", model="NMF", params=config["params"], state=config["state"],
                        tensors={**tensors, "payload": torch.zeros(3)})
    with pytest.raises(ModelFileError, match="unexpected payload"):
        deepnmf.load_model(extra)


def test_writing_leaves_no_temporary_files(saved, tmp_path):
    est, _ = saved["vae-nmf"]
    folder = est.save(tmp_path / "vae")
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG, WEIGHTS]
