"""File plumbing shared by the cache: atomic writes, checksums, entry file names."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

ENTRY_SUFFIX = ".safetensors"
_TMP_SUFFIX = ".tmp"


def entry_file_name(key: str) -> str:
    """A file-system-safe, collision-free name: a readable slug of the key plus a hash of it."""
    slug = re.sub(r"[^0-9A-Za-z]+", "-", key).strip("-")[:40] or "arch"
    return f"{slug}_{hashlib.sha256(key.encode()).hexdigest()[:12]}{ENTRY_SUFFIX}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and ``os.replace``: a killed process leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the half-written files a killed build leaves behind (only names ``write_atomic`` makes)."""
    for stale in directory.glob(f".*{_TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
