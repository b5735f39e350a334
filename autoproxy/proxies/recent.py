"""Recent single-signal proxies: ZiCo (ICLR'23) and MeCo (NeurIPS'23), written directly."""
from __future__ import annotations

import torch
from torch import nn

from autoproxy.proxies.common import NODE_TYPES, forward_with_hooks, logits, nodes, splits, train_copy
from autoproxy.proxies.registry import LossFn, register
from autoproxy.statistics import DEFAULT_SUB_BATCHES



@register("zico")
def zico(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """ZiCo: ``Σ_n log(Σ grad_abs_mean / grad_std)`` over weights with non-zero std, with the mean and
    population std of dL/dW taken over ``split_data`` equal sub-batches (4 when ``split_data`` is 1);
    a layer whose sum is 0 adds 0, as in ZiCo's code."""
    net = train_copy(net)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    layers = nodes(net)
    weights = [layer.weight for layer in layers]
    parts = split_data if split_data > 1 else DEFAULT_SUB_BATCHES  # a std needs several gradient samples
    samples = [
        torch.autograd.grad(loss_fn(logits(net(chunk)), labels), weights, allow_unused=True)
        for chunk, labels in splits(inputs, targets, parts)
    ]
    score = 0.0
    for index, weight in enumerate(weights):
        grads = torch.stack([
            torch.zeros_like(weight).flatten() if sample[index] is None else sample[index].flatten()
            for sample in samples
        ])
        mean_abs, std = grads.abs().mean(0), grads.std(0, unbiased=False)
        nonzero = std != 0
        total = (mean_abs[nonzero] / std[nonzero]).sum()
        if total != 0:
            score += float(torch.log(total))
    return score


@register("meco")
def meco(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """MeCo over the whole batch: ``Σ_n λ_min(corr(act_cov))``, the smallest eigenvalue of the correlation
    matrix of each layer's output channels over batch × positions (a constant channel correlates 0)."""
    net = train_copy(net)
    outputs: list[torch.Tensor] = []
    forward_with_hooks(net, inputs, {NODE_TYPES: lambda module, args, output: outputs.append(output.detach())})
    score = 0.0
    for output in outputs:
        channels = output.shape[1]
        samples = output.transpose(0, 1).reshape(channels, -1).double()
        if samples.shape[1] < 2:
            continue
        covariance = torch.cov(samples)
        scale = covariance.diagonal().abs().sqrt()
        outer = scale[:, None] * scale[None, :]
        correlation = torch.where(outer > 1e-12, covariance / outer.clamp(min=1e-300), torch.zeros_like(covariance))
        score += float(torch.linalg.eigvalsh(correlation)[0])
    return score
