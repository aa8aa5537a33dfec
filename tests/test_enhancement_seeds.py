"""The enhancement experiment at several seeds (``--seeds``): one full run per seed, a summary across them.

Generated audio only (the ``synthetic_audio`` fixture); nothing reads ``../shared/data``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepnmf.cli.main import app
from deepnmf.exceptions import ParameterError
from deepnmf.experiments.enhancement import EnhancementConfig, run_enhancement
from deepnmf.experiments.enhancement_seeds import check_seeds, seed_summary, seeds_markdown

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
runner = CliRunner()


def _rows(values: dict[str, list[float]]) -> list[dict]:
    """Rows of one run: method -> its SDR in the cells (babble, 0 dB), (babble, 5 dB), (hum, 0 dB)."""
    cells = [("babble", 0.0), ("babble", 5.0), ("hum", 0.0)]
    return [{"method": m, "noise": n, "snr": snr, "sdr": v} for m, vals in values.items() for (n, snr), v in zip(cells, vals)]


def test_seed_summary_matches_naive_means_and_differences():
    runs = {0: {"noisy": [0.0, 5.0, 0.1], "a": [3.0, 8.0, 4.0], "b": [4.0, 7.0, 5.0]},
            7: {"noisy": [0.1, 5.1, 0.0], "a": [2.0, 9.0, 4.0], "b": [2.0, 8.0, 3.0]},
            2: {"noisy": [0.0, 5.0, 0.0], "a": [5.0, 8.0, 2.0], "b": [6.0, 9.0, 4.0]}}
    summary = seed_summary({s: _rows(v) for s, v in runs.items()})
    assert summary["seeds"] == [0, 7, 2]
    assert list(summary["methods"]) == ["noisy", "a", "b"]
    for m in ("noisy", "a", "b"):
        per = [np.mean(runs[s][m]) for s in (0, 7, 2)]
        row = summary["methods"][m]
        np.testing.assert_allclose([row["by_seed"][s] for s in (0, 7, 2)], per)
        assert row["mean"] == pytest.approx(np.mean(per))
        assert row["sd"] == pytest.approx(np.std(per, ddof=1))
        assert (row["min"], row["max"]) == (pytest.approx(min(per)), pytest.approx(max(per)))
    [pair] = summary["differences"]  # noisy is left out of the pairs
    assert (pair["a"], pair["b"]) == ("a", "b")
    diffs = [np.mean(runs[s]["b"]) - np.mean(runs[s]["a"]) for s in (0, 7, 2)]
    np.testing.assert_allclose([pair["by_seed"][s] for s in (0, 7, 2)], diffs)
    assert pair["mean"] == pytest.approx(np.mean(diffs))
    assert pair["b_at_least_a"] == sum(d >= 0 for d in diffs) == 2
    md = seeds_markdown(summary)
    assert "| a | 5.00 | 5.00 | 5.00 | 5.00 | 0.00 | 5.00 to 5.00 |" in md
    assert "| b | a | 0.33 | -0.67 | 1.33 | 0.33 | 2 of 3 |" in md


def test_one_seed_has_no_spread():
    summary = seed_summary({4: _rows({"a": [1.0, 2.0, 3.0]})})
    assert summary["methods"]["a"]["sd"] is None and summary["methods"]["a"]["mean"] == pytest.approx(2.0)
    assert "n/a" in seeds_markdown(summary)


@pytest.mark.parametrize("seeds, message", [([], "at least one"), ([1, 1], "twice"), ([-1], ">= 0"),
                                            ([1.5], "integers"), ([True], "integers")])
def test_check_seeds_refuses_bad_lists(seeds, message):
    with pytest.raises(ParameterError, match=message):
        check_seeds(seeds)


def test_cli_seeds_runs_the_experiment_once_per_seed(synthetic_audio, tmp_path):
    a = synthetic_audio
    base = ["experiment", "enhancement", "--train-speech", *map(str, a["train"]), "--test-speech", *map(str, a["test"]),
            "--noise", "babble", "--snr", "5", "--methods", "nmf+mu", "--n-test", "1", "--rank", "4",
            "--vae-epochs", "1", "--dnn-epochs", "1", "--out", str(tmp_path / "cli")]
    res = runner.invoke(app, [*base, "--seeds", "3", "5"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "cli"
    assert (out / "seeds.md").read_text() in res.output
    summary = json.loads((out / "seeds.json").read_text())
    assert set(summary) == {"sdr", "pesq", "stoi"} and summary["sdr"]["seeds"] == [3, 5]
    assert (out / "seeds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # deepnmf report shows the summary table and figure, then each seed's run
    from deepnmf.report.sections import collect_sections

    sections = {sec.title: sec for sec in collect_sections(out)}
    top = sections["Enhancement experiment at 2 seeds"]
    assert top.tables[0].columns == ["method", "seed 3", "seed 5", "mean", "sd"]
    assert [r[0] for r in top.tables[0].rows] == ["noisy", "nmf+mu"]
    assert top.figures[0][0] == out / "seeds.png"
    assert any(title.startswith("seed-3") for title in sections) and any(title.startswith("seed-5") for title in sections)
    for seed in (3, 5):
        written = json.loads((out / f"seed-{seed}" / "results.json").read_text())
        naive = np.mean([r["sdr"] for r in written if r["method"] == "nmf+mu"])
        assert summary["sdr"]["methods"]["nmf+mu"]["by_seed"][str(seed)] == pytest.approx(naive)
        assert json.loads((out / f"seed-{seed}" / "run.json").read_text())["config"]["random_state"] == seed
    # summarising the seed folders afterwards (runs made one at a time) writes the same summary
    from deepnmf.experiments.enhancement_seeds import write_seed_summary

    again = write_seed_summary({s: json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in (3, 5)},
                               tmp_path / "again")
    assert json.loads((tmp_path / "again" / "seeds.json").read_text()) == summary
    assert (tmp_path / "again" / "seeds.md").read_text() == (out / "seeds.md").read_text()
    assert again["methods"]["nmf+mu"]["mean"] == pytest.approx(summary["sdr"]["methods"]["nmf+mu"]["mean"])
    # each seed's run is the plain run with that seed
    cfg = EnhancementConfig(train_speech=a["train"], test_speech=a["test"], noises=["babble"], out=tmp_path / "lib",
                            snrs=[5.0], methods=["nmf+mu"], n_test=1, n_components=4, vae_epochs=1, dnn_epochs=1,
                            random_state=5)
    rows = run_enhancement(cfg)
    assert summary["sdr"]["methods"]["nmf+mu"]["by_seed"]["5"] == pytest.approx(
        np.mean([r["sdr"] for r in rows if r["method"] == "nmf+mu"]))
    for extra, message in ((["--seeds", "2", "2"], "given twice"), (["--seeds", "two"], "takes integers")):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_seed_spread_figure_puts_each_seed_where_its_value_is():
    from deepnmf.plotting.enhancement import plot_seed_spread

    by_seed = {"nmf+mu": {0: 4.1, 1: 4.3}, "dnn-mask": {0: 9.9, 1: None}}
    fig = plot_seed_spread(by_seed)
    ax = fig.axes[0]
    dots = {c.get_label(): c.get_offsets() for c in ax.collections}
    np.testing.assert_allclose(dots["seed 0"], [[4.1, 0], [9.9, 1]])
    np.testing.assert_allclose(dots["seed 1"], [[4.3, 0]])  # the missing value is left out
    bars = [line.get_xdata()[0] for line in ax.lines]
    np.testing.assert_allclose(bars, [4.2, 9.9])  # the means over the seeds
    assert [t.get_text() for t in ax.get_yticklabels()] == ["nmf+mu", "dnn-mask"]
