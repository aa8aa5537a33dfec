"""Command-line interface (typer). Each command module registers on :data:`deepnmf.cli.app.app`."""
