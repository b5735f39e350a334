"""Recent single-signal proxies: ZiCo (ICLR'23) and MeCo (NeurIPS'23), written directly."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from autoproxy.errors import StatisticsError
from autoproxy.nodes import LossFn, as_bcp, chunks, node_calls
from autoproxy.proxies.common import loss_gradients, per_node, prepared
from autoproxy.proxies.registry import register
from autoproxy.statistics import DEFAULT_SUB_BATCHES


@register("zico")
def zico(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """ZiCo: ``Σ_n log(Σ grad_abs_mean / grad_std)`` over weights with non-zero std, with the mean and
    population std of dL/dW taken over ``DEFAULT_SUB_BATCHES`` (4) equal sub-batches, as the statistics
    take them; a node whose sum is 0 adds 0, as in ZiCo's code. ``split_data`` only cuts each sub-batch
    further into chunks no larger than the batch's ``split_data`` chunks (memory), the value unchanged."""
    if len(inputs) < DEFAULT_SUB_BATCHES:
        raise StatisticsError(f"zico needs a batch of at least {DEFAULT_SUB_BATCHES} samples (one per sub-batch), "
                              f"got {len(inputs)}")
    net, layers = prepared(net)
    largest = max(len(chunk) for chunk, _, _ in chunks(inputs, targets, split_data))
    samples = [
        per_node(layers, loss_gradients(net, layers, sub, labels, loss_fn, math.ceil(len(sub) / largest)))
        for sub, labels, _ in chunks(inputs, targets, DEFAULT_SUB_BATCHES)
    ]
    score = 0.0
    for index in range(len(layers)):
        grads = torch.stack([sample[index] for sample in samples])
        mean_abs, std = grads.abs().mean(0), grads.std(0, unbiased=False)
        nonzero = std != 0
        total = (mean_abs[nonzero] / std[nonzero]).sum()
        if total != 0:
            score += float(torch.log(total))
    return score


@dataclass
class _Moments:
    """Count, mean and centred scatter matrix of column samples, merged chunk by chunk (Chan et al.),
    so the covariance over batch × positions needs one chunk's activations at a time."""

    count: int
    mean: torch.Tensor
    scatter: torch.Tensor

    @classmethod
    def of(cls, samples: torch.Tensor) -> _Moments:
        mean = samples.mean(1)
        centred = samples - mean[:, None]
        return cls(samples.shape[1], mean, centred @ centred.T)

    def merged(self, other: _Moments) -> _Moments:
        count = self.count + other.count
        delta = other.mean - self.mean
        return _Moments(count, self.mean + delta * (other.count / count),
                        self.scatter + other.scatter + torch.outer(delta, delta) * (self.count * other.count / count))


@register("meco")
def meco(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """MeCo over the whole batch: ``Σ_n λ_min(corr(act_cov))``, the smallest eigenvalue of the correlation
    matrix of each node's output channels over batch × positions, laid out ``(batch, channels,
    positions)`` (tokens are positions; a constant channel correlates 0). The moments are merged over
    the chunks in float64."""
    net, _ = prepared(net)
    moments: dict[str, _Moments] = {}
    with torch.no_grad():
        for chunk, _, _ in chunks(inputs, targets, split_data):
            with node_calls(net) as calls:
                net(chunk)
            for call in calls:
                output = as_bcp(call.act_out, call.module)
                part = _Moments.of(output.transpose(0, 1).reshape(output.shape[1], -1).double())
                moments[call.name] = moments[call.name].merged(part) if call.name in moments else part
    return float(sum(_smallest_correlation_eigenvalue(m) for m in moments.values() if m.count >= 2))


def _smallest_correlation_eigenvalue(moments: _Moments) -> float:
    covariance = moments.scatter / (moments.count - 1)
    scale = covariance.diagonal().abs().sqrt()
    outer = scale[:, None] * scale[None, :]
    correlation = torch.where(outer > 1e-12, covariance / outer.clamp(min=1e-300), torch.zeros_like(covariance))
    return float(torch.linalg.eigvalsh(correlation)[0])
