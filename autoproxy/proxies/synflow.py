"""SynFlow (Tanaka et al. 2020) as zero-cost-nas computes it for NAS: batch norm off, float64."""
from __future__ import annotations

import math

import torch
from torch import nn

from autoproxy.proxies.common import nodes
from autoproxy.proxies.registry import LossFn, register
from autoproxy.statistics import synflow_gradients


@register("synflow")
def synflow(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """ln Σ_n sum(|weight ⊙ ∂R/∂W|), as NAS-Bench-Suite-Zero reports SynFlow (the raw sum overflows
    float32 on NB201): every state tensor made absolute, batch norm bypassed, R = sum(net(ones)) for one
    float64 all-ones sample. Over the statistics: ``ln Σ_n sum(|weight ⊙ synflow_grad|) + synflow_log_scale``."""
    gradients = synflow_gradients(net, inputs.shape[1:])
    names = {module: name for name, module in net.named_modules()}
    total = sum(float((layer.weight.detach().double() * gradients[names[layer]].view_as(layer.weight)).abs().sum())
                for layer in nodes(net))
    return math.log(total) if total > 0 else float("nan")
