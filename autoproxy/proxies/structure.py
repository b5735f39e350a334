"""Proxies that need no data: params, flops and the weights' l2_norm."""
from __future__ import annotations

import torch
from torch import nn

from autoproxy.flops import count_flops
from autoproxy.proxies.common import nodes
from autoproxy.proxies.registry import LossFn, register


@register("params")
def params(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """All parameters (batch norm and biases included) in millions: network scalar ``params``."""
    return sum(parameter.numel() for parameter in net.parameters()) / 1e6


@register("flops")
def flops(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Multiply-accumulates of one sample in millions (:func:`autoproxy.flops.count_flops`):
    network scalar ``flops``."""
    return count_flops(net, (1, *inputs.shape[1:]))


@register("l2_norm")
def l2_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Sum of per-layer weight L2 norms: ``Σ_n sqrt(sum(weight ** 2))``."""
    return float(sum(layer.weight.detach().norm() for layer in nodes(net)))
