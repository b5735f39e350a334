"""The one atomic file writer: a unique temporary file in the target folder, fsync, ``os.replace``.

A killed process leaves the old file or the new one, never half of either; two writers never share
a temporary file. Temporaries are named ``.<name>.<random>.tmp`` so ``remove_stale_temporaries``
can find the ones a killed process left behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (set-and-restore otherwise)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a unique temporary file in the same folder and ``os.replace``.

    The file gets the permissions a plain ``open(path, "wb")`` would give it (``mkstemp`` alone
    would make it owner-only)."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the half-written files a killed writer left behind (only names ``write_atomic`` makes)."""
    for stale in Path(directory).glob(f".*{TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
