"""The report: one self-contained HTML page (images and audio embedded) and its Markdown twin.

:func:`build_report` reads an output folder of ``deepnmf demo``, ``train``,
``enhance``, ``separate``, ``synergies`` or ``experiment ...`` and renders
``report.html`` and ``report.md`` with Jinja2 templates shipped in
``deepnmf/report/templates``. What is shown is what the folder holds
(:func:`deepnmf.report.sections.collect_sections`): a ``section.json`` where a
job wrote one, otherwise its JSON files (tables of their row lists, a table of
their settings), its PNG figures and its WAV files.
"""
from __future__ import annotations

from deepnmf.report.build import ReportFiles, build_report, environment_info

__all__ = ["ReportFiles", "build_report", "environment_info"]
