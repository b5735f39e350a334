"""Where the project finds data that lives outside the repository.

The shared ground truth and images sit next to the repository root (``../shared``); users point
elsewhere with the ``AUTOPROXY_SHARED`` environment variable or a CLI option. Nothing here is an
absolute path.
"""
from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "AUTOPROXY_SHARED"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared data folder: ``$AUTOPROXY_SHARED``, else ``../shared`` next to the repository root."""
    configured = os.environ.get(SHARED_ENV)
    if configured:
        return Path(configured)
    beside_repo = _REPO_ROOT.parent / "shared"
    if beside_repo.is_dir():
        return beside_repo
    return Path.cwd().parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside the shared folder, e.g. ``shared_path("benchmarks", "zc_nasbench201.json")``."""
    return shared_dir().joinpath(*parts)
