"""File plumbing shared by the cache: checksums, entry file names (atomic writes: ``autoproxy.atomic``)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

ENTRY_SUFFIX = ".safetensors"


def entry_file_name(key: str) -> str:
    """A file-system-safe, collision-free name: a readable slug of the key plus a hash of it."""
    slug = re.sub(r"[^0-9A-Za-z]+", "-", key).strip("-")[:40] or "arch"
    return f"{slug}_{hashlib.sha256(key.encode()).hexdigest()[:12]}{ENTRY_SUFFIX}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
