"""Reading a statistics cache: ``open_cache(dir)`` → ``StatisticsCache``."""
from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from autoproxy.cache.files import sha256_file
from autoproxy.cache.manifest import Entry, Manifest, read_manifest
from autoproxy.cache.store import read_entry
from autoproxy.errors import CacheError
from autoproxy.statistics import STATISTICS_VERSION, NetworkStatistics

_LOAD_THREADS = 4  # hashing and float16 decoding release the GIL


class StatisticsCache:
    """The finished entries of one cache directory, with their ground-truth accuracies."""

    def __init__(self, directory: Path, manifest: Manifest):
        self.directory = Path(directory)
        self.manifest = manifest

    @property
    def keys(self) -> list[str]:
        """Arch keys in selection order (the builder's seeded order)."""
        return list(self.manifest.entries)

    @property
    def accuracy(self) -> dict[str, float]:
        """Validation accuracy (%) per arch key."""
        return {key: entry.accuracy for key, entry in self.manifest.entries.items()}

    def __len__(self) -> int:
        return len(self.manifest.entries)

    def _entry(self, key: str) -> Entry:
        try:
            return self.manifest.entries[key]
        except KeyError:
            raise CacheError(f"arch {key} is not in the cache at {self.directory}") from None

    def _check(self, entry: Entry, checksum: bool = True) -> str | None:
        """Why an entry's file does not match the manifest, or None when it does."""
        path = self.directory / entry.file
        if not path.is_file():
            return "file is missing"
        if path.stat().st_size != entry.bytes:
            return f"file has {path.stat().st_size} bytes, manifest says {entry.bytes}"
        if checksum and sha256_file(path) != entry.sha256:
            return "sha256 does not match the manifest"
        return None

    def load(self, keys: Iterable[str] | None = None, *, verify: bool = True) -> list[NetworkStatistics]:
        """Statistics (float32 CPU tensors) of ``keys`` (default: all) in the order given.

        ``verify`` checks each file's sha256 (hashing runs on threads beside decoding); a corrupt
        entry raises a ``CacheError`` naming the key and file. Without it, missing and truncated
        files are still caught (size and header checks), flipped bits inside tensors are not.
        """
        entries = [self._entry(key) for key in (self.keys if keys is None else keys)]
        with ThreadPoolExecutor(max_workers=min(_LOAD_THREADS, os.cpu_count() or 1)) as pool:
            return list(pool.map(lambda entry: self._load_entry(entry, verify), entries))

    def _load_entry(self, entry: Entry, verify: bool) -> NetworkStatistics:
        path = self.directory / entry.file
        problem = self._check(entry, checksum=verify)
        if problem:
            raise CacheError(f"cache entry {entry.key} ({path}) is corrupt: {problem}; "
                             f"rerun `autoproxy cache build` to rebuild it")
        return read_entry(path, entry.key)

    def verify(self) -> list[str]:
        """Keys whose file is missing, truncated or fails its checksum."""
        return [key for key, entry in self.manifest.entries.items() if self._check(entry)]

    def subset(self, n: int, seed: int = 0) -> list[str]:
        """``n`` keys drawn uniformly with ``seed``; depends only on the set of keys, not on build order."""
        if not 0 < n <= len(self):
            raise CacheError(f"cannot take a subset of {n} archs from a cache of {len(self)}")
        chosen = set(random.Random(seed).sample(sorted(self.manifest.entries), n))
        return [key for key in self.keys if key in chosen]


def open_cache(directory: str | Path) -> StatisticsCache:
    """Open a cache built by ``autoproxy cache build``; ``CacheError`` if it is missing, unreadable or
    holds statistics of another version."""
    manifest = read_manifest(Path(directory))
    version = manifest.settings.statistics_version
    if version != STATISTICS_VERSION:
        raise CacheError(f"cache {directory} holds statistics version {version}, this autoproxy computes "
                         f"version {STATISTICS_VERSION}: rebuild it with `autoproxy cache build` into a new --out")
    return StatisticsCache(Path(directory), manifest)
