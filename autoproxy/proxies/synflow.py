"""SynFlow (Tanaka et al. 2020) as zero-cost-nas computes it for NAS: batch norm off, float64."""
from __future__ import annotations

import math

import torch
from torch import nn

from autoproxy.nodes import LossFn, flat_weight, nodes, require_nodes
from autoproxy.proxies.common import undefined
from autoproxy.proxies.registry import register
from autoproxy.statistics import synflow_gradients


@register("synflow")
def synflow(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """ln Σ_n sum(|weight ⊙ ∂R/∂W|), as NAS-Bench-Suite-Zero reports SynFlow (the raw sum overflows
    float32 on NB201): every state tensor made absolute, batch norm bypassed, R = sum(net(ones)) for one
    float64 all-ones sample (so ``split_data`` has nothing to split). Over the statistics:
    ``ln Σ_n sum(|weight ⊙ synflow_grad|) + synflow_log_scale``. NaN with a warning when the sum is 0
    (no path from input to output) or not finite."""
    layers = nodes(net)
    require_nodes(net, layers)
    gradients = synflow_gradients(net, inputs.shape[1:])
    names = {module: name for name, module in net.named_modules()}
    total = sum(float((flat_weight(layer).detach().double() * gradients[names[layer]]).abs().sum()) for layer in layers)
    if not 0 < total < math.inf:
        return undefined("synflow", f"the synaptic-flow sum is {total}")
    return math.log(total)
