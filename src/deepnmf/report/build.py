"""Render the sections of an output folder into ``report.html`` (self-contained) and ``report.md``.

The HTML page embeds every figure as a base64 PNG ``<img>`` and every sound
as a base64 WAV ``<audio>`` player (at most :data:`MAX_AUDIO_SECONDS` of each,
re-encoded as 16-bit PCM), so it opens without network or the folder beside
it. The Markdown twin links the same files by relative path.
"""
from __future__ import annotations

import base64
import datetime
import io
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepnmf.exceptions import DataError
from deepnmf.report.sections import Section, collect_sections

MAX_AUDIO_SECONDS = 30.0
_PACKAGES = ("deepnmf", "torch", "numpy", "scipy", "scikit-learn", "librosa", "matplotlib", "jinja2")


@dataclass
class ReportFiles:
    """The two files :func:`build_report` wrote."""

    html: Path
    markdown: Path


def git_commit(path: str | Path | None = None) -> str:
    """The git commit of the checkout holding ``path`` (this package by default), or ``"unknown"``."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = ""
    if out.returncode == 0:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
        dirty = " (with uncommitted changes)" if status.stdout.strip() else ""
    return out.stdout.strip() + dirty if out.returncode == 0 else "unknown"


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="ignore") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info() -> dict[str, Any]:
    """Package versions, Python, platform, processor, torch threads and git commit, as recorded in
    every report and in the experiments' run files.

    The processor matters for comparing figures: a run repeats exactly on one machine, but the same
    seed on another machine moved the enhancement experiment's network rows by a few hundredths of a
    dB, most likely through the processor's floating-point kernels (docs/enhancement.md).
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "packages": versions,
            "git_commit": git_commit()}


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` of a PNG file (checked to be one)."""
    raw = path.read_bytes()
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DataError(f"{path}: not a PNG file")
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def wav_data_uri(path: Path, *, max_seconds: float = MAX_AUDIO_SECONDS) -> tuple[str, float]:
    """``data:audio/wav;base64,...`` of (the first ``max_seconds`` of) an audio file, and its duration in s."""
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), frames=-1, always_2d=False)
    except (OSError, RuntimeError) as err:  # soundfile's errors are RuntimeError subclasses
        raise DataError(f"{path}: not a readable audio file ({err})") from err
    x = x[: int(max_seconds * sr)]
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), len(x) / sr


def _render_context(sections: list[Section], root: Path, title: str, embed: bool) -> dict[str, Any]:
    """The templates' variables: sections with their figures/audio as data URIs (HTML) or paths (Markdown)."""
    items = []
    for s in sections:
        figures = [{"src": png_data_uri(p) if embed else p.relative_to(root).as_posix(), "caption": c,
                    "file": p.relative_to(root).as_posix()} for p, c in s.figures if p.is_file()]
        audio = []
        for p, label in s.audio:
            if not p.is_file():
                continue
            src, seconds = wav_data_uri(p) if embed else (p.relative_to(root).as_posix(), 0.0)
            audio.append({"src": src, "label": label, "file": p.relative_to(root).as_posix(), "seconds": seconds})
        items.append({"title": s.title, "what": s.what, "tables": s.tables, "figures": figures, "audio": audio,
                      "settings": s.settings, "models": s.models, "anchor": f"s{len(items) + 1}"})
    return {"title": title, "sections": items, "env": environment_info(),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def build_report(folder: str | Path, *, title: str | None = None, out: str | Path | None = None) -> ReportFiles:
    """Write ``report.html`` and ``report.md`` of an output folder.

    Parameters
    ----------
    folder : str or Path
        An output folder of ``deepnmf demo``, ``train``, ``enhance``,
        ``separate``, ``synergies`` or ``experiment ...``.
    title : str, optional
        Page title (default: ``"deepnmf report: <folder name>"``).
    out : str or Path, optional
        Folder of the two files (default ``folder``); the Markdown links
        figures and sounds relative to it.

    Returns
    -------
    ReportFiles

    Raises
    ------
    DataError
        Not a folder, nothing to show, or a file that cannot be read.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    root = Path(folder)
    sections = collect_sections(root)
    dest = Path(out) if out is not None else root
    dest.mkdir(parents=True, exist_ok=True)
    title = title or f"deepnmf report: {root.resolve().name}"
    env = Environment(loader=PackageLoader("deepnmf.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("report.html.j2").render(**_render_context(sections, root, title, embed=True))
    md_env = Environment(loader=PackageLoader("deepnmf.report", "templates"), autoescape=False,
                         trim_blocks=True, lstrip_blocks=True)
    md_context = _render_context(sections, root, title, embed=False)
    if dest.resolve() != root.resolve():  # the Markdown links are relative to where it is written
        for s in md_context["sections"]:
            for item in s["figures"] + s["audio"]:
                item["src"] = Path(os.path.relpath(root / item["file"], dest)).as_posix()
    markdown = md_env.get_template("report.md.j2").render(**md_context)
    (dest / "report.html").write_text(html, encoding="utf-8")
    (dest / "report.md").write_text(markdown, encoding="utf-8")
    return ReportFiles(dest / "report.html", dest / "report.md")
