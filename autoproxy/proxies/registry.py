"""Name → reference proxy function, filled by the ``@register`` decorator of each proxy module."""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import nn

from autoproxy.errors import UnknownProxyError
from autoproxy.nodes import LossFn


class ProxyFn(Protocol):
    def __call__(
        self, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1
    ) -> float: ...


_PROXIES: dict[str, ProxyFn] = {}


def register(name: str) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator adding ``fn`` to the registry under ``name`` (names are unique)."""

    def add(fn: ProxyFn) -> ProxyFn:
        if name in _PROXIES:
            raise ValueError(f"proxy {name!r} is registered twice")
        _PROXIES[name] = fn
        return fn

    return add


def reference_proxy(name: str) -> ProxyFn:
    """The reference implementation registered under ``name`` (callers use ``autoproxy.registry.get_proxy``)."""
    try:
        return _PROXIES[name]
    except KeyError:
        raise UnknownProxyError(f"unknown proxy {name!r}; known: {', '.join(reference_names())}") from None


def reference_names() -> list[str]:
    """The names of the reference implementations, sorted."""
    return sorted(_PROXIES)
