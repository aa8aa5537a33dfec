"""What a report shows of an output folder: sections of tables, figures, audio and settings.

A folder written by a job of the demo holds a ``section.json``::

    {"title": str, "what": str, "tables": [{"caption": str, "columns": [...], "rows": [[...], ...]}],
     "figures": [{"file": "x.png", "caption": str}], "audio": [{"file": "x.wav", "label": str}],
     "settings": {...}}

Any other folder is read generically: every list of flat records in its JSON
files becomes a table, the remaining scalars its settings, and its PNG and
WAV files (also under ``figures/``) its figures and audio. Model folders
(``config.json`` + ``weights.safetensors``) are listed, not opened.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepnmf.exceptions import DataError

SECTION_FILE = "section.json"
#: JSON files of the jobs, and the title of their section
KNOWN = {"summary.json": "summary", "train.json": "train", "separation.json": "separation",
         "synergies.json": "synergies", "run.json": "run", "results.json": "enhancement experiment",
         "transfer.json": "resolution transfer", "enhance.json": "enhance"}
MAX_ROWS = 60


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """One part of the report (a job's outputs)."""

    title: str
    folder: Path
    what: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)
    audio: list[tuple[Path, str]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)


def cell(value: Any, fmt: str | None = None) -> str:
    """A table cell: numbers to 3-4 significant figures (or the format spec ``fmt``, e.g. ``".2f"``),
    None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and fmt:
        return format(value, fmt)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        text = ", ".join(cell(v) for v in value[:8])
        return f"[{text}{', …' if len(value) > 8 else ''}]"
    return str(value)


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Scalars and short lists of a JSON object as ``{"a.b": "value"}`` (row lists are tables instead)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(flatten(value, name))
            elif not _records(value):
                out[name] = cell(value)
    return out


def _records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _flat_record(record: dict) -> bool:
    return all(not isinstance(v, (dict, list)) or (isinstance(v, list) and len(v) <= 8 and
                                                   all(not isinstance(x, (dict, list)) for x in v))
               for v in record.values())


def tables_of(obj: Any, name: str) -> list[Table]:
    """Every list of flat records in a JSON object (``rows``, ``summary``, ``movements``...) as a table."""
    found: list[Table] = []
    items = obj.items() if isinstance(obj, dict) else [(name, obj)]
    for key, value in items:
        if _records(value) and all(_flat_record(v) for v in value):
            columns = list(dict.fromkeys(k for record in value for k in record))
            rows = [[cell(record.get(c)) for c in columns] for record in value[:MAX_ROWS]]
            caption = f"{name}: {key}" + (f" (first {MAX_ROWS} of {len(value)} rows)" if len(value) > MAX_ROWS else "")
            found.append(Table(caption, columns, rows))
        elif _records(value):  # nested records (synergy movements): their scalar fields
            flat = [{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in value]
            if any(flat):
                found += tables_of({key: flat}, name)
    return found


def read_json(path: Path) -> Any:
    """A JSON file, or a :class:`DataError` naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable JSON file ({err})") from err


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _explicit_table(table: dict, folder: Path) -> Table:
    """A table of a ``section.json``: ``caption``, ``columns``, ``rows`` and optionally ``formats``, a
    format spec (or null) per column for its float cells."""
    columns = [str(c) for c in table["columns"]]
    formats = table.get("formats") or [None] * len(columns)
    if len(formats) != len(columns):
        raise DataError(f"{folder / SECTION_FILE}: a table has {len(columns)} columns but {len(formats)} formats")
    try:
        rows = [[cell(v, f) for v, f in zip(r, formats)] for r in table["rows"]]
    except (TypeError, ValueError) as err:
        raise DataError(f"{folder / SECTION_FILE}: a table's formats do not fit its cells ({err})") from err
    return Table(table.get("caption", ""), columns, rows)


def explicit_section(folder: Path) -> Section:
    """The section a job described in its ``section.json``."""
    spec = read_json(folder / SECTION_FILE)
    if not isinstance(spec, dict) or "title" not in spec:
        raise DataError(f"{folder / SECTION_FILE}: a section needs at least a title")
    tables = [_explicit_table(t, folder) for t in spec.get("tables", [])]
    return Section(
        title=str(spec["title"]), folder=folder, what=str(spec.get("what", "")), tables=tables,
        figures=[(folder / f["file"], f.get("caption", "")) for f in spec.get("figures", [])],
        audio=[(folder / a["file"], a.get("label", Path(a["file"]).stem)) for a in spec.get("audio", [])],
        settings=flatten(spec.get("settings", {})),
        models=[str(m) for m in spec.get("models", [])],
    )


def generic_section(folder: Path, root: Path) -> Section | None:
    """A section of whatever a folder holds (None when it holds nothing to show)."""
    jsons = sorted(p for p in folder.glob("*.json") if p.name != SECTION_FILE)
    figures = sorted(folder.glob("*.png")) + sorted((folder / "figures").glob("*.png"))
    audio = sorted(folder.glob("*.wav"))
    models = sorted(str(p.relative_to(root)) for p in folder.iterdir() if p.is_dir() and _is_model(p))
    if not (jsons or figures or audio):
        return None
    known = [KNOWN[p.name] for p in jsons if p.name in KNOWN]
    title = " / ".join(dict.fromkeys(known)) or (folder.name if folder != root else "outputs")
    section = Section(title=title if folder == root else f"{folder.relative_to(root)}: {title}", folder=folder,
                      what=("Read from " + ", ".join(p.name for p in jsons) + ".") if jsons else "", models=models)
    for path in jsons:
        obj = read_json(path)
        section.tables += tables_of(obj, path.name)
        section.settings.update({f"{path.stem}.{k}": v for k, v in flatten(obj).items()})
    section.figures = [(p, p.stem.replace("_", " ")) for p in figures]
    section.audio = [(p, p.stem) for p in audio]
    return section


def collect_sections(root: str | Path) -> list[Section]:
    """The sections of an output folder: the folder itself and each subfolder (depth 2), models skipped.

    Raises
    ------
    DataError
        ``root`` is not a folder, or holds nothing a report can show.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (give an output folder of a deepnmf command)")
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not _is_model(p) and p.name != "figures")
    folders += sorted(q for p in folders[1:] for q in p.iterdir()
                      if q.is_dir() and not _is_model(q) and q.name != "figures" and not (p / SECTION_FILE).is_file())
    sections = []
    for folder in folders[1:] + folders[:1]:  # the folder's own files (a run summary) last
        section = explicit_section(folder) if (folder / SECTION_FILE).is_file() else generic_section(folder, root)
        if section is not None:
            sections.append(section)
    if len(sections) > 1 and sections[-1].folder == root and sections[-1].title == "summary":
        sections[-1].title = "Run summary"
    if not sections:
        raise DataError(f"{root}: holds no JSON, PNG or WAV output of a deepnmf command")
    return sections
