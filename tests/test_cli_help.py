"""The command line's manners: help with an example everywhere, common options alike, one-line errors.

- ``deepnmf --help`` and every subcommand's ``--help`` exit 0 and show an example;
- a wrong option exits 2 with one line; bad data exits 1 with one line naming
  the file and the problem; a traceback only with ``--debug``;
- ``--quiet`` / ``-q`` and ``--debug`` are accepted by every command, before or after its name.
"""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from deepnmf.cli.main import app

runner = CliRunner()


def _commands() -> list[list[str]]:
    from typer.main import get_command

    group = get_command(app)
    out = []
    for name, cmd in group.commands.items():
        out.append([name])
        out += [[name, sub] for sub in getattr(cmd, "commands", {})]
    return out


COMMANDS = _commands()


def test_every_command_is_listed():
    names = {" ".join(c) for c in COMMANDS}
    assert {"demo", "report", "train", "enhance", "separate", "synergies", "experiment enhancement",
            "experiment transfer", "experiment separation", "experiment synergies"} <= names


@pytest.mark.parametrize("command", [[]] + COMMANDS, ids=lambda c: " ".join(c) or "deepnmf")
def test_help_exits_0_with_an_example(command):
    res = runner.invoke(app, [*command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.output and "deepnmf" in res.output
    if command and command != ["experiment"]:
        assert "--quiet" in res.output and "--debug" in res.output


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != ["experiment"]], ids=" ".join)
def test_a_wrong_option_exits_2_with_one_line(command):
    res = runner.invoke(app, [*command, "--no-such-option"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: No such option: --no-such-option"), res.output


def test_unknown_command_exits_2_with_one_line():
    res = runner.invoke(app, ["enhanse"])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "enhanse" in res.output


@pytest.mark.parametrize("common", [["--out"], ["-o"]])
def test_out_is_named_alike(common):
    """Every command that writes takes --out and -o."""
    for command in (["demo"], ["report"], ["train"], ["enhance"], ["separate"], ["synergies"],
                    ["experiment", "enhancement"], ["experiment", "transfer"], ["experiment", "separation"],
                    ["experiment", "synergies"]):
        res = runner.invoke(app, [*command, "--help"])
        assert f" {common[0]} " in res.output.replace(",", " "), (command, common)


def test_bad_data_exits_1_with_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "not-audio.wav"
    bad.write_text("this is not a WAV file")
    res = runner.invoke(app, ["enhance", str(bad), "-o", str(tmp_path / "out.wav")])
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not-audio.wav" in lines[0]
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_a_missing_file_exits_1(tmp_path):
    res = runner.invoke(app, ["train", str(tmp_path / "nope.npy"), "--model", "nmf", "--rank", "2",
                              "-o", str(tmp_path / "m")])
    assert res.exit_code == 1 and "nope.npy" in res.output and len(res.output.strip().splitlines()) == 1


def test_a_bad_option_value_exits_2(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((10, 4)))
    res = runner.invoke(app, ["train", str(tmp_path / "x.npy"), "--model", "pca", "--rank", "2", "-o", str(tmp_path / "m")])
    assert res.exit_code == 2 and res.output.startswith("error: ")


def test_traceback_only_with_debug(tmp_path):
    bad = tmp_path / "bad.json"  # a report of a folder whose JSON is damaged: a DataError
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.json").write_text("{not json")
    plain = runner.invoke(app, ["report", str(tmp_path / "out")])
    assert plain.exit_code == 1 and "train.json" in plain.output and not isinstance(plain.exception, ValueError)
    for args in (["--debug", "report", str(tmp_path / "out")], ["report", str(tmp_path / "out"), "--debug"]):
        debug = runner.invoke(app, args)
        assert debug.exit_code != 0 and type(debug.exception).__name__ == "DataError", args
    assert not bad.exists()


def test_quiet_silences_status_lines(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((30, 6)))
    args = ["train", str(tmp_path / "x.npy"), "--model", "nmf", "--rank", "2", "--max-epochs", "5", "--no-figures"]
    loud = runner.invoke(app, [*args, "-o", str(tmp_path / "a")])
    quiet = runner.invoke(app, [*args, "-o", str(tmp_path / "b"), "--quiet"])
    quiet_first = runner.invoke(app, ["-q", *args, "-o", str(tmp_path / "c")])
    assert loud.exit_code == quiet.exit_code == quiet_first.exit_code == 0, loud.output
    assert "saved nmf model" in loud.output
    assert quiet.output.strip() == "" and quiet_first.output.strip() == ""
    assert (tmp_path / "b" / "config.json").is_file() and (tmp_path / "c" / "config.json").is_file()
