"""Location of the real recordings (``DEEPNMF_DATA``, default ``../shared/data``)."""
from __future__ import annotations

import os
from pathlib import Path

from deepnmf.exceptions import DataError

_REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_data_dir(*parts: str, must_exist: bool = True) -> Path:
    """Folder of the real data sets, optionally a path inside it.

    The environment variable ``DEEPNMF_DATA`` wins; otherwise ``../shared/data``
    relative to the repository root (then to the working directory).

    Raises
    ------
    DataError
        If ``must_exist`` and the path does not exist.
    """
    env = os.environ.get("DEEPNMF_DATA")
    candidates = [Path(env)] if env else [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for base in candidates:
        path = base.joinpath(*parts)
        if path.exists():
            return path
    path = candidates[0].joinpath(*parts)
    if must_exist:
        raise DataError(
            f"real data not found at {path}; set DEEPNMF_DATA to the folder holding "
            "speech/, noise/, music/ and emg/"
        )
    return path
