"""The report: a self-contained HTML page and its Markdown twin, of the demo or of any command's output.

The page is parsed with an HTML parser: every table, image and audio player
is present, each image decodes as the PNG it was made from and each sound as
the WAV it was made from. Where Chromium is installed, the page is also
opened headless: the images decode and the audio elements report a duration.
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from deepnmf.cli.main import app
from deepnmf.exceptions import DataError
from deepnmf.report import build_report
from deepnmf.report.build import cpu_model


class PageParser(HTMLParser):
    """Tables (as lists of cell texts), image sources, audio sources and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.audio: list[str] = []
        self.external: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "audio":
            self.audio.append(a.get("src", ""))
        for key in ("src", "href"):
            value = a.get(key, "")
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> PageParser:
    page = PageParser()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def decode(uri: str, kind: str) -> bytes:
    head, payload = uri.split(",", 1)
    assert head == f"data:{kind};base64"
    return base64.b64decode(payload, validate=True)


def _png(path: Path, seed: int) -> np.ndarray:
    from matplotlib.figure import Figure

    data = np.random.default_rng(seed).random((8, 12))
    fig = Figure(figsize=(2, 2))
    fig.subplots().imshow(data)
    fig.savefig(path)
    return data


def _fake_output(folder: Path) -> dict:
    """A train-like output: train.json with settings and a list of records, two figures, one sound."""
    folder.mkdir(parents=True)
    info = {"model": "nmf", "rank": 3, "settings": {"sr": 16000, "n_fft": 512},
            "history": [{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 1.25}]}
    (folder / "train.json").write_text(json.dumps(info))
    _png(folder / "dictionary.png", 0)
    (folder / "figures").mkdir()
    _png(folder / "figures" / "loss.png", 1)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    sf.write(folder / "tone.wav", tone, 16000)
    return {"tone": tone}


def test_report_of_a_folder_embeds_tables_images_and_audio(tmp_path):
    made = _fake_output(tmp_path / "run")
    files = build_report(tmp_path / "run")
    page = parse(files.html)
    assert page.external == []  # self-contained: no network, no file beside it
    history = next(t for t in page.tables if t and t[0] == ["epoch", "loss"])
    assert history[1:] == [["1", "2.5"], ["2", "1.25"]]
    settings = {row[0]: row[1] for t in page.tables for row in t if len(row) == 2}
    assert settings["train.settings.n_fft"] == "512" and settings["train.rank"] == "3"
    assert len(page.images) == 2
    from matplotlib.image import imread

    for uri in page.images:
        assert imread(io.BytesIO(decode(uri, "image/png")), format="png").ndim == 3
    (uri,) = page.audio
    x, sr = sf.read(io.BytesIO(decode(uri, "audio/wav")))
    assert sr == 16000 and x.shape == made["tone"].shape
    np.testing.assert_allclose(x, made["tone"], atol=1 / 2**15)
    md = files.markdown.read_text()
    assert "| epoch | loss |" in md and "(dictionary.png)" in md and "(figures/loss.png)" in md and "(tone.wav)" in md
    assert f"| processor | {cpu_model()} (" in md


def test_markdown_links_resolve_when_written_elsewhere(tmp_path):
    _fake_output(tmp_path / "run")
    files = build_report(tmp_path / "run", out=tmp_path / "elsewhere")
    import re

    links = re.findall(r"\]\(([^)]+)\)", files.markdown.read_text())
    assert links and all((files.markdown.parent / link).is_file() for link in links)


def test_report_refuses_what_it_cannot_show(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        build_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no JSON, PNG or WAV"):
        build_report(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("not a png")
    with pytest.raises(DataError, match="x.png: not a PNG"):
        build_report(tmp_path / "bad")


def test_section_tables_take_a_format_per_column(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    table = {"caption": "scores", "columns": ["method", "SDR", "STOI", "n"],
             "rows": [["noisy", 0.021934, None, 3], ["nmf", 5.2519, 0.69251, 4]], "formats": [None, ".2f", ".3f", None]}
    (folder / "section.json").write_text(json.dumps({"title": "Job", "tables": [table]}))
    md = build_report(tmp_path).markdown.read_text()
    assert "| noisy | 0.02 | – | 3 |" in md and "| nmf | 5.25 | 0.693 | 4 |" in md
    for formats, message in (([".2f"], "4 columns but 1 formats"), ([None, ".2q", None, None], "formats do not fit")):
        (folder / "section.json").write_text(json.dumps({"title": "Job", "tables": [{**table, "formats": formats}]}))
        with pytest.raises(DataError, match=message):
            build_report(tmp_path)


def test_report_command_on_a_train_output(tmp_path):
    """`deepnmf report` reads what `deepnmf train` wrote."""
    runner = CliRunner()
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 6)))
    res = runner.invoke(app, ["train", str(tmp_path / "x.npy"), "--model", "nmf", "--rank", "2", "--max-epochs", "20",
                              "-o", str(tmp_path / "model")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "model")])
    assert res.exit_code == 0, res.output
    page = parse(tmp_path / "model" / "report.html")
    pngs = sorted(p for p in (tmp_path / "model").rglob("*.png"))
    assert pngs and len(page.images) == len(pngs)
    assert any(row and row[0].startswith("train.") for t in page.tables for row in t)


CHECK_JS = """
<script>
window.addEventListener('load', async () => {
  const imgs = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  const audios = await Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
    if (a.readyState >= 1) return done(a.duration);
    a.addEventListener('loadedmetadata', () => done(a.duration));
    a.addEventListener('error', () => done(-1));
    a.load();
  })));
  const pre = document.createElement('pre');
  pre.id = 'deepnmf-check';
  pre.textContent = JSON.stringify({images: imgs, audio: audios, tables: document.querySelectorAll('table').length});
  document.body.appendChild(pre);
});
</script>
"""


def chromium_check(html: Path, screenshot: Path | None = None) -> dict:
    """Open the page in headless Chromium: which images decoded, each audio element's duration."""
    exe = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))))
    probe = html.with_name("check-" + html.name)
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", CHECK_JS + "</body>"), encoding="utf-8")
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
    dom = subprocess.run(base + ["--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    if screenshot is not None:
        subprocess.run(base + [f"--screenshot={screenshot}", "--window-size=1200,3000", html.as_uri()],
                       capture_output=True, timeout=120)
    probe.unlink()
    start = dom.index('<pre id="deepnmf-check">') + len('<pre id="deepnmf-check">')
    return json.loads(dom[start:dom.index("</pre>", start)])


needs_chromium = pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="headless Chromium is not installed (apt-get install chromium)")


@needs_chromium
def test_page_renders_in_chromium(tmp_path):
    made = _fake_output(tmp_path / "run")
    files = build_report(tmp_path / "run")
    result = chromium_check(files.html, tmp_path / "shot.png")
    assert result["images"] == [True, True]
    assert result["audio"] == [pytest.approx(made["tone"].size / 16000, abs=0.01)]
    assert result["tables"] >= 2
    assert (tmp_path / "shot.png").read_bytes().startswith(b"\x89PNG")
