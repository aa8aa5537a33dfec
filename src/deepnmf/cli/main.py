"""Entry point of the ``deepnmf`` command: imports every command module, then runs the app."""
from __future__ import annotations

import importlib

from deepnmf.cli.app import app

# Command modules register themselves on ``app`` when imported. Add new ones here.
COMMAND_MODULES = [
    "deepnmf.cli.demo",
    "deepnmf.cli.synergies",
    "deepnmf.cli.separate",
    "deepnmf.cli.enhance",
    "deepnmf.cli.train",
    "deepnmf.cli.report",
]


def _register() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def main() -> None:
    """Run the ``deepnmf`` command line."""
    _register()
    app()


_register()

if __name__ == "__main__":
    main()
