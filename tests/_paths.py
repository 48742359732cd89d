"""Where the tests find things, relative to this checkout (never an absolute machine path).

``shared/`` (the project's specs and reference documents) lives beside the repository:
``<repo>/../shared``. ``SEQENGINE_SHARED_DIR`` points elsewhere when a checkout lives apart
from it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the folder holding pyproject.toml).
ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The ``shared/`` folder: ``$SEQENGINE_SHARED_DIR``, else the one beside the repository."""
    override = os.environ.get("SEQENGINE_SHARED_DIR")
    if override:
        return Path(override)
    return ROOT.parent / "shared"


def shared_file(*parts: str) -> Path:
    """A file under ``shared/`` (it may be absent: test with ``.exists()``)."""
    return shared_dir().joinpath(*parts)
