"""Helpers shared by the reference proxies: the network copy and the split-batch loss passes."""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn

from autoproxy.proxies.registry import LossFn
from autoproxy.statistics import NODE_TYPES, logits, train_copy

__all__ = ["NODE_TYPES", "accumulate_loss_grads", "forward_with_hooks", "logits", "nodes", "splits", "train_copy",
           "weight_grad"]


def nodes(net: nn.Module) -> list[nn.Module]:
    """The parameterised layers (conv and linear), as NASLib's ``get_layer_metric_array`` visits them."""
    return [module for module in net.modules() if isinstance(module, NODE_TYPES)]


def splits(inputs: torch.Tensor, targets: torch.Tensor, split_data: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``split_data`` consecutive slices that zero-cost-nas processes one after another."""
    size = inputs.shape[0]
    for part in range(split_data):
        start, end = part * size // split_data, (part + 1) * size // split_data
        yield inputs[start:end], targets[start:end]


def accumulate_loss_grads(
    net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None, split_data: int
) -> None:
    """``.grad`` of every parameter, summed over the splits' mean losses (zero-cost-nas semantics)."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    net.zero_grad()
    for chunk, labels in splits(inputs, targets, split_data):
        loss_fn(logits(net(chunk)), labels).backward()


def forward_with_hooks(net: nn.Module, inputs: torch.Tensor, hooks: dict[type | tuple[type, ...], Callable]) -> None:
    """One no-grad forward pass with ``hooks[type]`` as forward hook on every module of that type."""
    handles = [module.register_forward_hook(hook) for module in net.modules()
               for types, hook in hooks.items() if isinstance(module, types)]
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for handle in handles:
            handle.remove()


def weight_grad(module: nn.Module) -> torch.Tensor:
    grad = module.weight.grad
    return torch.zeros_like(module.weight) if grad is None else grad
