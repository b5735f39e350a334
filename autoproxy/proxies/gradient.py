"""Loss-gradient proxies: snip, grad_norm, plain, grasp and fisher (zero-cost-nas / NASLib).

A node's weight is every weight matrix of the node (:func:`autoproxy.nodes.flat_weight`; all
projections of an ``nn.MultiheadAttention``). ``split_data`` weights each chunk's mean loss by its
share of the batch (:mod:`autoproxy.proxies.common`), unlike zero-cost-nas's unweighted sum.
"""
from __future__ import annotations

import torch
from torch import nn

from autoproxy.nodes import LossFn, as_bcp, chunks, fans, node_calls
from autoproxy.proxies.common import (chunk_loss, gradients, loss_gradients, node_loss_gradients, per_node,
                                      prepared, undefined, weights_of)
from autoproxy.proxies.registry import register


@register("snip")
def snip(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """SNIP connection sensitivity: ``Σ_n sum(abs(weight * grad))``."""
    weights, grads = node_loss_gradients(net, inputs, targets, loss_fn, split_data)
    return sum(float((w * g).abs().sum()) for w, g in zip(weights, grads))


@register("grad_norm")
def grad_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Sum of per-node gradient L2 norms: ``Σ_n sqrt(sum(grad ** 2))``."""
    _, grads = node_loss_gradients(net, inputs, targets, loss_fn, split_data)
    return sum(float(g.norm()) for g in grads)


@register("plain")
def plain(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Signed first-order saliency: ``Σ_n sum(weight * grad)``."""
    weights, grads = node_loss_gradients(net, inputs, targets, loss_fn, split_data)
    return sum(float((w * g).sum()) for w, g in zip(weights, grads))


@register("grasp")
def grasp(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """GraSP with NASLib's sign: ``Σ_n sum(-weight * hess_grad)``, Hg = ∂(stop_grad(g)·∂L/∂W)/∂W.

    As the reference: g is the whole batch's gradient (accumulated over all chunks first), then each
    chunk's share-weighted loss is differentiated again with ``create_graph`` and z = Σ g·∂L/∂W is
    differentiated into the weights. NaN with a warning when an operator of the model has no second
    derivative (``hardsigmoid``: MobileNetV3's squeeze-excite).
    """
    net, layers = prepared(net)
    weights = weights_of(layers)
    first = loss_gradients(net, layers, inputs, targets, loss_fn, split_data)
    hessian_gradient = [torch.zeros_like(weight) for weight in weights]
    for chunk, labels, share in chunks(inputs, targets, split_data):
        grads = gradients(chunk_loss(net, chunk, labels, loss_fn, share), weights, create_graph=True)
        z = sum((g0 * g).sum() for g0, g in zip(first, grads))
        try:
            hessian_gradient = [acc + h for acc, h in zip(hessian_gradient, gradients(z, weights))]
        except RuntimeError as error:
            if "derivative for" not in str(error) or "not implemented" not in str(error):
                raise
            return undefined("grasp", f"no second derivative ({error})")
    weights = per_node(layers, [w.detach() for w in weights])
    return sum(float((-w * h).sum()) for w, h in zip(weights, per_node(layers, hessian_gradient)))


@register("fisher")
def fisher(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Fisher channel saliency broadcast to weights as zero-cost-nas does (each channel's value counted
    once per weight of that channel, i.e. ``fan_in`` times), over output channels laid out
    ``(batch, channels, positions)`` (tokens are positions):
    ``Σ_n fan_in · Σ_c 0.5 · mean_b (Σ_p act_out · grad_act_out)²``.
    """
    net, layers = prepared(net)
    saliency: dict[str, torch.Tensor] = {}
    fan_in: dict[str, float] = {}
    for chunk, labels, share in chunks(inputs, targets, split_data):
        with node_calls(net) as calls:
            loss = chunk_loss(net, chunk, labels, loss_fn, share)
        reached = [call for call in calls if call.act_out.requires_grad]
        grads = gradients(loss, [call.act_out for call in reached])
        for call, grad in zip(reached, grads):
            per_sample = (as_bcp(call.act_out.detach(), call.module) * as_bcp(grad, call.module)).sum(2)
            value = per_sample.pow(2).mean(0).mul(0.5) * share
            saliency[call.name] = saliency[call.name] + value if call.name in saliency else value
            fan_in[call.name] = fans(call.module)[0]
    return sum(float(value.abs().sum()) * fan_in[name] for name, value in saliency.items())
