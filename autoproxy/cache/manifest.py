"""``manifest.json``: what a cache holds and the settings it was built with.

The manifest is rewritten atomically after every finished entry, so a killed build loses nothing it
finished. Settings are compared field by field before a build extends a cache: one cache never mixes
statistics computed under different batch sizes, seeds, spaces or sketches.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autoproxy.atomic import write_atomic
from autoproxy.errors import CacheError

MANIFEST_NAME = "manifest.json"
CACHE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CacheSettings:
    """Everything that changes the statistics of an arch; two caches agree only if these agree.

    File paths are recorded for the reader, but files are compared by their sha256 so that moving
    the shared folder does not invalidate a cache.
    """

    space: str
    task: str
    num_classes: int
    benchmark_sha256: str
    data_sha256: str | None      # None: noise inputs
    noise: bool
    batch_size: int
    seed: int
    width: int | None
    depth: int | None
    sub_batches: int
    max_channels: int | None     # sketch; None keeps every channel
    max_positions: int | None    # sketch; None keeps every position
    dtype: str                   # "float32" | "float16" (power-of-two scaled per tensor)
    statistics_version: int = 1  # autoproxy.statistics.STATISTICS_VERSION at build time (1 if unrecorded)
    device: str = "cpu"          # where the networks ran ("cuda" rounds differently; older caches: cpu)

    @property
    def sketched(self) -> bool:
        """Whether activations and their gradients are stored on a subset of channels or positions."""
        return self.max_channels is not None or self.max_positions is not None


@dataclass(frozen=True)
class Entry:
    key: str
    accuracy: float
    file: str
    sha256: str
    bytes: int


@dataclass
class Manifest:
    settings: CacheSettings
    benchmark_path: str
    data_path: str | None
    entries: dict[str, Entry] = field(default_factory=dict)   # in selection order
    format_version: int = CACHE_FORMAT_VERSION

    def to_json(self) -> dict:
        return {
            "format_version": self.format_version,
            "settings": asdict(self.settings),
            "benchmark_path": self.benchmark_path,
            "data_path": self.data_path,
            "entries": [asdict(entry) for entry in self.entries.values()],
        }

    def write(self, directory: Path) -> None:
        text = json.dumps(self.to_json(), indent=1, allow_nan=False)
        write_atomic(directory / MANIFEST_NAME, text.encode())


def read_manifest(directory: Path) -> Manifest:
    """Parse ``DIR/manifest.json``; a missing, truncated or malformed manifest is a ``CacheError``."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise CacheError(f"no statistics cache at {directory}: {MANIFEST_NAME} is missing")
    try:
        raw = json.loads(path.read_text())
        version = raw["format_version"]
        if version != CACHE_FORMAT_VERSION:
            raise CacheError(f"{path} has cache format {version}, this autoproxy reads {CACHE_FORMAT_VERSION}")
        entries = [Entry(key=str(e["key"]), accuracy=float(e["accuracy"]), file=str(e["file"]),
                         sha256=str(e["sha256"]), bytes=int(e["bytes"])) for e in raw["entries"]]
        return Manifest(settings=CacheSettings(**raw["settings"]), benchmark_path=raw["benchmark_path"],
                        data_path=raw["data_path"], entries={e.key: e for e in entries})
    except CacheError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise CacheError(f"{path} is unreadable ({type(err).__name__}: {err}); "
                         f"rebuild with `autoproxy cache build`") from None


def settings_mismatch(old: CacheSettings, new: CacheSettings) -> str | None:
    """A one-line description of the differing settings, or None when they agree."""
    differing = [f"{name} {value!r} (cache) vs {getattr(new, name)!r} (requested)"
                 for name, value in asdict(old).items() if getattr(new, name) != value]
    return "; ".join(differing) or None
