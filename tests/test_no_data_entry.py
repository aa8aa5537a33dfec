"""``python -m deepnmf`` is the ``deepnmf`` command (run in-process through runpy)."""
from __future__ import annotations

import runpy
import sys

import pytest


def test_python_dash_m_runs_the_command_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["deepnmf", "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("deepnmf", run_name="__main__", alter_sys=False)
    assert stop.value.code in (0, None)
    out = capsys.readouterr().out
    for command in ("train", "enhance", "separate", "experiment"):
        assert command in out
