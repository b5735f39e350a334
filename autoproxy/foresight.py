"""Every autoproxy proxy as a measure of zero-cost-nas (``foresight``) or NASLib.

Both keep measures in a dict ``_measure_impls`` (``foresight/pruners/measures/__init__.py``, NASLib's
``naslib/predictors/utils/pruners/measures/__init__.py``); ``calc_measure(name, net, device, *args,
**kwargs)`` calls ``_measure_impls[name](net, device, inputs, targets, loss_fn=loss_fn,
split_data=split_data)``, with the net on the CPU and the batch on ``device``, and retries with a
larger ``split_data`` on CUDA out-of-memory. Their ``find_measures`` then reduces each result by
name: it sums a per-layer list of tensors, except for a few names whose value it keeps as it is
(zero-cost-nas: ``jacob_cov``; NASLib: ``jacov``, ``epe_nas``, ``nwot``, ``zen``). An autoproxy proxy
returns one float, so it crashes there (``object of type 'float' has no len()``); the measures made
here return ``[score]`` as a one-element list of a float64 tensor, which the sum turns back into the
exact score, and the bare float under the names kept as they are.

Neither package is a dependency: the caller passes its registry dict.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Callable, Collection, Iterable, MutableMapping

import torch
from torch import nn

from autoproxy.errors import RegistryError
from autoproxy.registry import Proxy, all_proxies

# The names whose value each package's ``find_measures`` keeps as it is instead of summing it.
FORESIGHT_UNSUMMED = frozenset({"jacob_cov"})
NASLIB_UNSUMMED = frozenset({"jacov", "epe_nas", "nwot", "zen"})


def _on_device(net: nn.Module, device: torch.device | str) -> nn.Module:
    """``net`` itself when it already lives on ``device``, else a copy there: ``find_measures`` hands
    over the net on the CPU and the batch on ``device`` (its own measures copy the net to ``device``),
    and moving the caller's net would modify it."""
    target = torch.empty(0, device=device).device     # "cuda" resolves to the current "cuda:N"
    if all(tensor.device == target for tensor in itertools.chain(net.parameters(), net.buffers())):
        return net
    return copy.deepcopy(net).to(target)


@dataclass(frozen=True)
class ForesightMeasure:
    """An autoproxy proxy with the call that ``calc_measure`` makes. The proxy copies the net itself
    and puts it in train mode (batch norm on batch statistics, as NASLib's measures do)."""

    proxy: Proxy
    summed: bool    # False for a name that ``find_measures`` keeps as it is

    def __call__(self, net: nn.Module, device: torch.device | str, inputs: torch.Tensor, targets: torch.Tensor,
                 loss_fn: Callable | None = None, split_data: int = 1, **_ignored) -> list[torch.Tensor] | float:
        """Extra keywords that forks pass (``mode``) mean nothing to an autoproxy proxy. ``split_data``
        goes through; expression proxies compute their statistics on the whole batch, so for them
        the out-of-memory retry cannot help."""
        score = self.proxy(_on_device(net, device), inputs.to(device), targets.to(device),
                           loss_fn=loss_fn, split_data=split_data)
        return [torch.tensor(score, dtype=torch.float64)] if self.summed else score


def register_measures(measure_impls: MutableMapping[str, Callable], *, names: Iterable[str] | None = None,
                      prefix: str = "", overwrite: bool = False, unsummed: Collection[str] = FORESIGHT_UNSUMMED,
                      available: list[str] | None = None) -> list[str]:
    """Put autoproxy proxies (``names``, default: every built-in, user-registry and entry-point proxy)
    into a zero-cost-nas measure registry under ``prefix + name``; returns those keys.

    A key already in ``measure_impls`` is refused unless ``overwrite`` (zero-cost-nas has its own
    ``snip``, ``synflow``...; a prefix such as ``"ap_"`` keeps both). Nothing is registered when
    anything is refused. ``unsummed`` are the keys that ``find_measures`` does not sum; append the
    keys to ``available`` (the package's ``available_measures``) to have them computed when
    ``find_measures`` is given no ``measure_names``.
    """
    proxies = all_proxies()
    wanted = list(proxies) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in proxies]
    if unknown:
        raise RegistryError(f"unknown proxies {', '.join(map(repr, unknown))}; known: {', '.join(proxies)}")
    keys = {prefix + name: name for name in wanted}
    taken = [key for key in keys if key in measure_impls]
    if taken and not overwrite:
        raise RegistryError(f"measures {', '.join(map(repr, taken))} are already registered; pass overwrite=True "
                            f"to replace them or a prefix to keep both")
    for key, name in keys.items():
        measure_impls[key] = ForesightMeasure(proxies[name], summed=key not in unsummed)
        if available is not None and key not in available:
            available.append(key)
    return list(keys)


def register_naslib_measures(measure_impls: MutableMapping[str, Callable], *, names: Iterable[str] | None = None,
                             prefix: str = "", overwrite: bool = False,
                             available: list[str] | None = None) -> list[str]:
    """``register_measures`` for NASLib's registry: its ``find_measures`` keeps more names unsummed
    (autoproxy's ``nwot`` and ``jacov`` among them) and returns the score of one measure only."""
    return register_measures(measure_impls, names=names, prefix=prefix, overwrite=overwrite,
                             unsummed=NASLIB_UNSUMMED, available=available)
