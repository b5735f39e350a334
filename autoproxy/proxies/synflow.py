"""SynFlow (Tanaka et al. 2020) as zero-cost-nas computes it for NAS: batch norm off, float64."""
from __future__ import annotations

import copy

import torch
from torch import nn

from autoproxy.proxies.common import logits, nodes, weight_grad
from autoproxy.proxies.registry import LossFn, register

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _bypass(x: torch.Tensor) -> torch.Tensor:
    return x


@register("synflow")
def synflow(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """``Σ_n sum(abs(weight) * synflow_grad)``: every state tensor made absolute, batch norm bypassed,
    R = sum(net(ones)) for one float64 all-ones sample, score Σ |W ⊙ ∂R/∂W| over conv/linear weights."""
    net = copy.deepcopy(net).double()
    for module in net.modules():
        if isinstance(module, _BATCH_NORMS):
            module.forward = _bypass
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    net.zero_grad()
    logits(net(torch.ones(1, *inputs.shape[1:], dtype=torch.float64))).sum().backward()
    return float(sum((layer.weight.detach() * weight_grad(layer)).abs().sum() for layer in nodes(net)))
