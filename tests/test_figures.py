"""Every function in deepnmf.plotting, checked by what it draws: line data, images, bars, titles, panels.

``path=None`` returns the drawn :class:`matplotlib.figure.Figure` unsaved; with
a path the same figure is written as a PNG. Expected values are recomputed
here from the inputs with the formula each docstring states.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from deepnmf.plotting import emg, enhancement, finish_figure, implicit, nmf, vae  # noqa: E402


def _lines(ax):
    """The data lines of an axes (labelled or not), without reference lines drawn by axhline/axvline."""
    return [line for line in ax.get_lines() if len(np.atleast_1d(line.get_xdata())) > 2 or line.get_label()[:1] != "_"]


def _heights(ax):
    return [p.get_height() for p in ax.patches]


def _db(A):
    return 20 * np.log10(np.maximum(A, 1e-8 * A.max()))


# ------------------------------------------------------------- the contract
def test_path_none_returns_the_figure_and_a_path_writes_it(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = vae.plot_loss_curve([3.0, 2.0, 1.0])
    assert isinstance(fig, Figure)
    path = vae.plot_loss_curve([3.0, 2.0, 1.0], tmp_path / "sub" / "loss.png")
    assert path == tmp_path / "sub" / "loss.png"
    image = plt.imread(path)
    assert image.shape[:2] == (int(3.4 * 120), 5 * 120) and image[..., :3].std() > 0
    assert plt.get_fignums() == before  # drawing never goes through pyplot's figure list
    assert finish_figure(fig, None) is fig


# ------------------------------------------------------------------- nmf
def test_factorisation_figure(rng):
    X, H, W = rng.random((30, 12)) + 0.1, rng.random((3, 12)), rng.random((30, 3))
    loss = [9.0, 5.0, 4.0, 3.5]
    fig = nmf.factorisation_figure(X, H, W, loss, title="demo")
    data, recon, atoms, acts = fig.axes
    (inset,) = acts.child_axes  # the objective, inset above the activations
    np.testing.assert_allclose(data.images[0].get_array(), _db(X).T)
    np.testing.assert_allclose(recon.images[0].get_array(), _db(W @ H).T)
    assert data.get_title() == "demo: data (dB)" and recon.get_title() == "demo: reconstruction W H (dB)"
    for k, line in enumerate(atoms.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), H[k] / H[k].max() + k)
    for k, line in enumerate(acts.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), W[:, k] / W[:, k].max() + k)
    (curve,) = inset.get_lines()
    np.testing.assert_allclose(curve.get_ydata(), loss)
    assert inset.get_yscale() == "log"


def test_loss_figure(rng):
    curves = {"mu": [4.0, 2.0, 1.0], "cd": [4.0, 1.5, 1.2, 1.1]}
    fig = nmf.loss_figure(curves, ylabel="beta-divergence")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["mu", "cd"]
    for line, curve in zip(ax.get_lines(), curves.values()):
        np.testing.assert_allclose(line.get_ydata(), curve)
        np.testing.assert_allclose(line.get_xdata(), np.arange(len(curve)))
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "beta-divergence"


# ------------------------------------------------------------------- vae
def test_plot_elbo_draws_each_term_per_epoch():
    history = {"train_loss": [5.0, 4.0, 3.5], "val_loss": [5.5, 4.4, 4.0], "train_nll": [4.0, 3.0, 2.4],
               "train_kl": [1.0, 1.0, 1.1]}
    fig = vae.plot_elbo(history, title="run 1")
    loss, nll, kl = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["loss = -ELBO + penalty", "-E_q[log p(x|z)]", "KL(q(z|x) || p(z))"]
    assert fig.get_suptitle() == "run 1"
    for ax, term in ((loss, "loss"), (nll, "nll"), (kl, "kl")):
        drawn = {line.get_label(): line for line in ax.get_lines()}
        splits = [s for s in ("train", "val") if f"{s}_{term}" in history]
        assert list(drawn) == splits
        for split in splits:
            np.testing.assert_allclose(drawn[split].get_xdata(), [1, 2, 3])
            np.testing.assert_allclose(drawn[split].get_ydata(), history[f"{split}_{term}"])
        assert ax.get_xlabel() == "epoch"


def test_plot_loss_curve_scale_follows_the_sign():
    fig = vae.plot_loss_curve([3.0, 2.0, 1.0], xlabel="epoch", title="NMF objective")
    (ax,) = fig.axes
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [3.0, 2.0, 1.0])
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert ax.get_yscale() == "log" and ax.get_title() == "NMF objective" and ax.get_xlabel() == "epoch"
    (ax,) = vae.plot_loss_curve([1.0, -0.5, -1.0]).axes  # an ELBO-like curve crosses zero: linear axis
    assert ax.get_yscale() == "linear"


def test_uneven_row_edges():
    assert vae.uneven_row_edges(np.array([0.0, 1.0, 2.0, 3.0])) is None
    f = np.array([10.0, 20.0, 40.0, 80.0])
    edges = vae.uneven_row_edges(f)
    np.testing.assert_allclose(edges, [5.0, 15.0, 30.0, 60.0, 100.0])
    assert np.all(edges[:-1] <= f) and np.all(f <= edges[1:])


def test_plot_dictionary_even_and_uneven_frequencies(rng):
    H = rng.random((4, 10))
    normalised = H / H.max(axis=1, keepdims=True)
    fig = vae.plot_dictionary(H, freqs=np.linspace(0, 4000, 10), title="speech atoms")
    ax, bar = fig.axes  # the image and its colour bar
    np.testing.assert_allclose(ax.images[0].get_array(), normalised.T)
    assert ax.images[0].get_extent() == [0.5, 4.5, 0.0, 4000.0]
    assert ax.get_title() == "speech atoms" and ax.get_ylabel() == "frequency (Hz)" and bar.get_ylabel() == "relative weight"
    uneven = np.geomspace(50, 4000, 10)
    ax = vae.plot_dictionary(H, freqs=uneven).axes[0]
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(10, 4), normalised.T)
    np.testing.assert_allclose(mesh.get_coordinates()[:, 0, 1], vae.uneven_row_edges(uneven))
    assert vae.plot_dictionary(H).axes[0].get_ylabel() == "feature"


def test_plot_throughput():
    fps = {"fit_module": 12000.0, "reference loop": 3000.0}
    (ax,) = vae.plot_throughput(fps, title="VAE-NMF").axes
    assert [p.get_width() for p in ax.patches] == list(fps.values())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(fps)
    assert [t.get_text() for t in ax.texts] == [" 12000", " 3000"]
    assert ax.get_xlim() == pytest.approx((0, 14400.0))


# --------------------------------------------------------------- implicit
@pytest.fixture(scope="module")
def grid_model():
    from deepnmf import ImplicitNMF
    from deepnmf.audio.tf import stft_freqs

    rng = np.random.default_rng(0)
    freqs = stft_freqs(64, 8000)
    X = rng.gamma(0.5, 1.0, (20, 3)) @ np.stack([np.exp(-0.5 * ((freqs - f0) / 300) ** 2) + 0.01 for f0 in (500, 1500, 3000)])
    return ImplicitNMF(3, max_epochs=5, n_octaves=4, hidden=8, random_state=0).fit(X, freqs=freqs)


@pytest.fixture(scope="module")
def points():
    from deepnmf.audio.points import hybrid

    t = np.arange(4000) / 8000
    return hybrid(np.sin(2 * np.pi * 440 * t) * (t < 0.3) + 0.5 * np.sin(2 * np.pi * 1200 * t), 8000,
                  stfts=((64, 32), (256, 128)))


def test_plot_dictionary_at_sizes(grid_model):
    from deepnmf.audio.tf import stft_freqs

    sizes = (64, 256)
    fig = implicit.plot_dictionary_at_sizes(grid_model, sizes, 8000, n_atoms=2, fmax=3000)
    curves, first, last = fig.axes
    f = {n: stft_freqs(n, 8000)[stft_freqs(n, 8000) <= 3000] for n in sizes}
    W = {n: np.asarray(grid_model.dictionary_at(f[n])) for n in sizes}
    offsets = np.arange(2) * W[64][:2].max()
    lines = curves.get_lines()
    assert len(lines) == 2 * len(sizes)  # one per (size, atom)
    for i, (n, k) in enumerate((n, k) for n in sizes for k in range(2)):
        np.testing.assert_allclose(lines[i].get_xdata(), f[n])
        np.testing.assert_allclose(lines[i].get_ydata(), W[n][k] + offsets[k], rtol=1e-6)
    for ax, n in ((first, 64), (last, 256)):
        np.testing.assert_allclose(ax.images[0].get_array(), W[n], rtol=1e-6)
        assert ax.get_title() == f"dictionary at size {n} ({f[n].size} bins)"
    assert [t.get_text() for t in curves.get_legend().get_texts()] == [f"size {n} ({f[n].size} bins)" for n in sizes]


def test_plot_point_cloud(points):
    fig = implicit.plot_point_cloud(points, max_points=10**6)
    assert len(fig.axes) == len(points.groups) == 2
    for g, ax in enumerate(fig.axes):
        (scatter,) = [c for c in ax.collections if isinstance(c, PathCollection)]
        mine = points.group == g
        np.testing.assert_allclose(scatter.get_offsets(), np.column_stack([points.t[mine], points.f[mine]]))
        np.testing.assert_allclose(scatter.get_array(), points.value[mine])
        assert ax.get_title() == f"{points.groups[g]} ({mine.sum()} points)"
    # subsampled panels keep the title's full count
    ax = implicit.plot_point_cloud(points, max_points=50).axes[1]
    assert len(ax.collections[0].get_offsets()) == 50 and str(int(np.sum(points.group == 1))) in ax.get_title()


def test_plot_factor_functions_grid_and_points(grid_model, points):
    from deepnmf import ImplicitNMF

    fig = implicit.plot_factor_functions(grid_model, n_grid=50)
    atoms, acts = fig.axes
    f = np.linspace(0, grid_model.nyquist_, 50)
    for k, line in enumerate(atoms.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), np.asarray(grid_model.dictionary_at(f))[k], rtol=1e-6)
    np.testing.assert_allclose(acts.images[0].get_array(), np.asarray(grid_model.activations_).T)
    model = ImplicitNMF(2, mode="points", max_epochs=2, n_octaves=4, hidden=8, random_state=0).fit(points)
    atoms, acts = implicit.plot_factor_functions(model, n_grid=40).axes
    t = np.linspace(0, model.duration_, 40)
    H = np.asarray(model.activations_at(t))
    assert len(acts.get_lines()) == 2 and acts.get_title() == "activations"
    for k, line in enumerate(acts.get_lines()):
        np.testing.assert_allclose(line.get_xdata(), t)
        np.testing.assert_allclose(line.get_ydata(), H[:, k], rtol=1e-6)


def test_implicit_loss_curve_and_separation_table():
    (ax,) = implicit.plot_loss_curve([2.0, 1.0, 0.5], label="KL").axes
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [2.0, 1.0, 0.5])
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "KL"
    summary = [{"model": m, "n_fft": n, "sdr": s, "stoi": s / 10} for m, n, s in
               (("nmf", 1024, 4.0), ("implicit", 512, 5.5), ("nmf", 512, 3.0), ("implicit", 1024, 6.0))]
    sdr, stoi = implicit.plot_separation_table(summary).axes
    for ax, metric in ((sdr, "sdr"), (stoi, "stoi")):
        nmf_line, implicit_line = ax.get_lines()
        np.testing.assert_allclose(nmf_line.get_xdata(), [512, 1024])  # sorted by size
        for line, model in ((nmf_line, "nmf"), (implicit_line, "implicit")):
            naive = [r[metric] for r in sorted(summary, key=lambda r: r["n_fft"]) if r["model"] == model]
            np.testing.assert_allclose(line.get_ydata(), naive)
    assert sdr.get_ylabel() == "SDR (dB)" and stoi.get_ylabel() == "STOI"


# ----------------------------------------------------------- enhancement
def test_plot_sdr_improvement():
    improvement = {"nmf+mu": {5.0: 2.0, -5.0: 6.0, 0.0: 4.0}, "vae-nmf+dnn": {0.0: 5.0, -5.0: 7.0}}
    (ax,) = enhancement.plot_sdr_improvement(improvement, title="factory").axes
    drawn = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert list(drawn) == list(improvement)
    np.testing.assert_allclose(drawn["nmf+mu"].get_xdata(), [-5.0, 0.0, 5.0])
    np.testing.assert_allclose(drawn["nmf+mu"].get_ydata(), [6.0, 4.0, 2.0])
    np.testing.assert_allclose(drawn["vae-nmf+dnn"].get_ydata(), [7.0, 5.0])
    assert ax.get_title() == "factory" and ax.get_legend() is not None
    assert enhancement.plot_sdr_improvement({}).axes[0].get_legend() is None


def test_plot_enhancement(rng):
    Y, G = rng.random((40, 17)) + 0.01, rng.random((40, 17))
    fig = enhancement.plot_enhancement(Y, G, Y * G, sr=8000, hop=64)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3 and len(fig.axes) == 6  # three panels, three colour bars
    want = (20 * np.log10(Y + 1e-6), G, 20 * np.log10(Y * G + 1e-6))
    for ax, title, data in zip(panels, ("noisy (dB)", "gain", "enhanced (dB)"), want):
        np.testing.assert_allclose(ax.images[0].get_array(), data.T)
        assert ax.get_title() == title
        assert ax.images[0].get_extent() == pytest.approx([0.0, 40 * 64 / 8000, 0.0, 4.0])
    assert panels[1].images[0].get_clim() == (0.0, G.max())


# -------------------------------------------------------------------- emg
def test_plot_synergies(rng):
    W = rng.random((3, 5))
    fig = emg.plot_synergies(W, list("abcde"))
    assert len(fig.axes) == 3
    for k, ax in enumerate(fig.axes):
        np.testing.assert_allclose(_heights(ax), W[k])
        assert ax.get_ylabel() == f"S{k + 1}"
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == list("abcde")
    assert fig.axes[0].get_title() == "synergy vectors (unit norm)"


def test_plot_activations(rng):
    H = rng.random((200, 2))
    fig = emg.plot_activations(H, 100.0, bounds=[(1, 0, 100), (2, 100, 200)], title="gait")
    for k, ax in enumerate(fig.axes):
        (line,) = _lines(ax)
        np.testing.assert_allclose(line.get_xdata(), np.arange(200) / 100.0)
        np.testing.assert_allclose(line.get_ydata(), H[:, k])
        marks = [np.atleast_1d(v.get_xdata())[0] for v in ax.get_lines() if v is not line]
        assert marks == [0.0, 1.0]  # repetition starts, in seconds
    assert [t.get_text() for t in fig.axes[0].texts] == [" r1", " r2"] and fig.axes[0].get_title() == "gait"


def test_plot_reconstruction(rng):
    X, Y = rng.random((50, 5)), rng.random((50, 5))
    fig = emg.plot_reconstruction(X, Y, list("abcde"), [0.9, 0.8, 0.7, 0.6, 0.5], fs=10.0, vaf=0.75)
    used = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 6 and len(used) == 5  # two columns, the sixth panel switched off
    by_title = {ax.get_title(): ax for ax in used}
    for c, name in enumerate("abcde"):
        ax = by_title[f"{name}  VAF {[0.9, 0.8, 0.7, 0.6, 0.5][c]:.3f}"]
        original, reconstructed = ax.get_lines()
        np.testing.assert_allclose(original.get_ydata(), X[:, c])
        np.testing.assert_allclose(reconstructed.get_ydata(), Y[:, c])
        np.testing.assert_allclose(original.get_xdata(), np.arange(50) / 10.0)
    assert fig.get_suptitle() == "envelopes: original vs reconstructed (total VAF 0.750)"


def test_plot_vaf_curve():
    curves = {"walk": {3: 0.95, 1: 0.7, 2: 0.88}, "run": {1: 0.6, 2: 0.8, 3: 0.91}}
    (ax,) = emg.plot_vaf_curve(curves, threshold=0.9, rank=2).axes
    drawn = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    np.testing.assert_allclose(drawn["walk"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(drawn["walk"].get_ydata(), [0.7, 0.88, 0.95])
    np.testing.assert_allclose(drawn["run"].get_ydata(), [0.6, 0.8, 0.91])
    references = [line for line in ax.get_lines() if line.get_label().startswith("_")]
    assert sorted(np.atleast_1d(r.get_ydata())[0] for r in references if np.ptp(r.get_ydata()) == 0)[-1] == 0.9
    assert any(np.all(np.asarray(r.get_xdata()) == 2) for r in references)
    assert ax.get_legend() is not None


def test_plot_vaf_comparison():
    rows = [{"movement": 1, "nmf": {"vaf": 0.95, "heldout_vaf": [0.9, 0.92]}, "vae-nmf": {"vaf": 0.93, "heldout_vaf": [0.91]}},
            {"movement": 2, "nmf": {"vaf": 0.9, "heldout_vaf": [0.85, 0.87]}, "vae-nmf": {"vaf": 0.92, "heldout_vaf": []}}]
    (ax,) = emg.plot_vaf_comparison(rows, ["nmf", "vae-nmf"]).axes
    heights = _heights(ax)
    # bars in drawing order: per method, training VAF per movement then held-out means per movement
    expected = [0.95, 0.9, 0.91, 0.86, 0.93, 0.92, 0.91, np.nan]
    np.testing.assert_allclose(heights, expected)
    dots = [line for line in ax.get_lines() if line.get_marker() == "."]
    assert sorted(v for d in dots for v in d.get_ydata()) == sorted([0.9, 0.92, 0.91, 0.85, 0.87])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]


def test_plot_mean_cycle(rng):
    H = rng.random((3 * 20, 2))  # three cycles of 20 points
    fig = emg.plot_mean_cycle(H, 20)
    cycles = H.reshape(3, 20, 2)
    for k, ax in enumerate(fig.axes):
        (mean,) = [line for line in ax.get_lines() if len(line.get_xdata()) == 20]
        np.testing.assert_allclose(mean.get_ydata(), cycles[:, :, k].mean(axis=0))
        np.testing.assert_allclose(mean.get_xdata(), np.arange(20) * 5.0)
    assert fig.axes[0].get_title() == "mean activation over 3 cycles (± 1 sd)"


# ----------------------------------------------------------------- report
def test_log_spectrogram_finds_a_tone_and_clips_at_80_db():
    from deepnmf.plotting.report import log_spectrogram

    sr, n_fft = 8000, 256
    t = np.arange(sr) / sr
    S = log_spectrogram(np.sin(2 * np.pi * 1000 * t), n_fft=n_fft, hop=64)
    assert S.shape[0] == n_fft // 2 + 1
    assert S.max() - S.min() == pytest.approx(80.0)
    assert np.all(np.argmax(S, axis=0) == round(1000 / (sr / n_fft)))  # every frame peaks in the 1 kHz bin


def test_plot_spectrograms_share_one_colour_scale(rng):
    from deepnmf.plotting.report import log_spectrogram, plot_spectrograms

    signals = {"clean": rng.standard_normal(4000), "quiet": 0.01 * rng.standard_normal(4000)}
    fig = plot_spectrograms(signals, 8000, n_fft=128, hop=32, title="demo")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title(loc="left") for ax in panels] == list(signals)
    top = max(log_spectrogram(x, n_fft=128, hop=32).max() for x in signals.values())
    for ax, x in zip(panels, signals.values()):
        np.testing.assert_allclose(ax.images[0].get_array(), log_spectrogram(x, n_fft=128, hop=32))
        assert ax.images[0].get_clim() == pytest.approx((top - 80, top))
    assert fig.get_suptitle() == "demo"
    with pytest.raises(ValueError, match="no signals"):
        plot_spectrograms({}, 8000)


def test_plot_dictionaries_side_by_side(rng):
    from deepnmf.plotting.report import plot_dictionaries

    dictionaries = {"speech": rng.random((4, 9)), "noise": rng.random((2, 9))}
    fig = plot_dictionaries(dictionaries, freqs=np.linspace(0, 4000, 9))
    assert [ax.get_title() for ax in fig.axes] == ["speech", "noise"]
    for ax, H in zip(fig.axes, dictionaries.values()):
        np.testing.assert_allclose(ax.images[0].get_array(), (H / H.max(axis=1, keepdims=True)).T)
        assert ax.images[0].get_extent() == [0.5, H.shape[0] + 0.5, 0.0, 4000.0]
    assert fig.axes[0].get_ylabel() == "frequency (Hz)"
