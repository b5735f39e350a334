"""Node-wise statistics of many archs on disk: safetensors entries, a checksummed manifest, resumable.

``build_cache`` computes and stores; ``open_cache`` reads. See ``store`` for the entry format and
``manifest`` for what a cache records about how it was built. Names are imported on first use
(PEP 562) so that torch-free submodules such as ``defaults`` stay cheap to import.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "BuildSummary": "autoproxy.cache.build",
    "build_cache": "autoproxy.cache.build",
    "StatisticsCache": "autoproxy.cache.loader",
    "open_cache": "autoproxy.cache.loader",
    "CacheSettings": "autoproxy.cache.manifest",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'autoproxy.cache' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
