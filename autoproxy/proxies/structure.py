"""Proxies that need no data: params, flops and the weights' l2_norm."""
from __future__ import annotations

import torch
from torch import nn

from autoproxy.flops import count_flops
from autoproxy.nodes import LossFn, flat_weight, nodes, require_nodes
from autoproxy.proxies.registry import register


@register("params")
def params(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """All parameters (batch norm and biases included) in millions: network scalar ``params``."""
    return sum(parameter.numel() for parameter in net.parameters()) / 1e6


@register("flops")
def flops(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Multiply-accumulates of one sample in millions (:func:`autoproxy.flops.count_flops`):
    network scalar ``flops``."""
    return count_flops(net, inputs.shape[1:])


@register("l2_norm")
def l2_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Sum of per-node weight L2 norms (every weight matrix of a node): ``Σ_n sqrt(sum(weight ** 2))``."""
    layers = nodes(net)
    require_nodes(net, layers)
    return sum(float(flat_weight(layer).detach().norm()) for layer in layers)
