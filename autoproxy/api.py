"""The Python API: score a model with any registered proxy, list and load proxies.

``autoproxy.score``, ``autoproxy.list_proxies`` and ``autoproxy.load_proxy`` re-export these lazily,
so ``import autoproxy`` stays free of torch.
"""
from __future__ import annotations

from pathlib import Path

from autoproxy.registry import Proxy, all_proxies, get_proxy


def list_proxies() -> list[str]:
    """Names of every proxy: built-in, in the user registry, and from installed packages."""
    return list(all_proxies())


def load_proxy(name_or_path: str | Path) -> Proxy:
    """A proxy by name or registry-file path; call it as ``proxy(net, inputs, targets)``."""
    return get_proxy(name_or_path)


def score(model, inputs, targets, proxy: str | Path = "nwot", loss_fn=None) -> float:
    """The score of ``model`` on one minibatch ``(inputs, targets)`` under ``proxy`` (name or file).

    The model is never modified: every proxy works on a train-mode copy.
    """
    return get_proxy(proxy)(model, inputs, targets, loss_fn=loss_fn)
