"""Caches the package knows how to make by itself, named in configs as ``builtin:NAME``.

The embedded benchmarks ``nb201-digits`` (300 NB201 cells trained on scikit-learn's digits, shipped as
``autoproxy/data/nb201-digits.csv``) and ``mbnet-digits`` (300 archs of the MobileNet/ResNet space
``mbnet``, ``autoproxy/data/mbnet-digits.csv``) need no download, so a first search runs anywhere: their
caches are built on first use under ``$AUTOPROXY_CACHE_DIR`` (default ``./caches``) and reused afterwards.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from autoproxy.errors import CacheError

BUILTIN_PREFIX = "builtin:"
CACHE_DIR_ENV = "AUTOPROXY_CACHE_DIR"
_PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"

# The digits recipes match how the ground truth was trained (autoproxy/data/<name>.settings.json).
BUILTIN_RECIPES: dict[str, dict] = {
    "nb201-digits": dict(benchmark=_PACKAGE_DATA / "nb201-digits.csv", space="nb201", task="digits",
                         data="digits", width=8, depth=3, batch_size=64, seed=0),
    "mbnet-digits": dict(benchmark=_PACKAGE_DATA / "mbnet-digits.csv", space="mbnet", task="digits",
                         data="digits", batch_size=64, seed=0),  # the space's default width (stem 8)
}


def resolve_cache(spec: str, *, executor: str = "ray", echo: Callable[[str], None] = print) -> Path:
    """The directory of a config's cache entry: a path as given, or a built-in cache made if needed."""
    if not spec.startswith(BUILTIN_PREFIX):
        return Path(spec)
    name = spec[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_RECIPES:
        raise CacheError(f"unknown built-in cache {name!r}: choose from {', '.join(sorted(BUILTIN_RECIPES))}")
    directory = Path(os.environ.get(CACHE_DIR_ENV, "caches")) / name
    from autoproxy.cache.build import build_cache

    _drop_if_outdated(directory, echo)

    summary = build_cache(directory, executor=executor, progress=False, echo=echo, **BUILTIN_RECIPES[name])
    if summary.built:
        echo(summary.line())
    return directory


def _drop_if_outdated(directory: Path, echo: Callable[[str], None]) -> None:
    """A built-in cache is the package's own derived data: one made by an older statistics version is
    deleted so that it can be rebuilt, instead of refusing the user's first search."""
    from autoproxy.cache.manifest import MANIFEST_NAME, read_manifest
    from autoproxy.statistics import STATISTICS_VERSION

    if not (directory / MANIFEST_NAME).is_file():
        return
    try:
        version = read_manifest(directory).settings.statistics_version
    except CacheError:
        version = None
    if version != STATISTICS_VERSION:
        echo(f"rebuilding {directory}: made by statistics version {version}, this autoproxy has {STATISTICS_VERSION}")
        shutil.rmtree(directory)
