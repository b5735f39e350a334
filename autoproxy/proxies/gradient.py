"""Loss-gradient proxies: snip, grad_norm, plain, grasp and fisher (zero-cost-nas / NASLib)."""
from __future__ import annotations

import torch
from torch import nn

from autoproxy.proxies.common import accumulate_loss_grads, logits, nodes, splits, train_copy, weight_grad
from autoproxy.proxies.registry import LossFn, register


@register("snip")
def snip(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """SNIP connection sensitivity: ``Σ_n sum(abs(weight * grad))``."""
    net = train_copy(net)
    accumulate_loss_grads(net, inputs, targets, loss_fn, split_data)
    return float(sum((layer.weight.detach() * weight_grad(layer)).abs().sum() for layer in nodes(net)))


@register("grad_norm")
def grad_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Sum of per-layer gradient L2 norms: ``Σ_n sqrt(sum(grad ** 2))``."""
    net = train_copy(net)
    accumulate_loss_grads(net, inputs, targets, loss_fn, split_data)
    return float(sum(weight_grad(layer).norm() for layer in nodes(net)))


@register("plain")
def plain(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Signed first-order saliency: ``Σ_n sum(weight * grad)``."""
    net = train_copy(net)
    accumulate_loss_grads(net, inputs, targets, loss_fn, split_data)
    return float(sum((layer.weight.detach() * weight_grad(layer)).sum() for layer in nodes(net)))


@register("grasp")
def grasp(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """GraSP with NASLib's sign: ``Σ_n sum(-weight * hess_grad)``, Hg = ∂(stop_grad(g)·∂L/∂W)/∂W.

    As the reference: g is the gradient of a first pass (summed over splits), then each split's loss is
    differentiated again with ``create_graph`` and z = Σ g·∂L/∂W is backpropagated into the weights.
    """
    net = train_copy(net)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    layers = nodes(net)
    weights = [layer.weight for layer in layers]
    first: list[torch.Tensor | None] = [None] * len(weights)
    for chunk, labels in splits(inputs, targets, split_data):
        grads = torch.autograd.grad(loss_fn(logits(net(chunk)), labels), weights, allow_unused=True)
        first = [g if acc is None else (acc if g is None else acc + g) for acc, g in zip(first, grads)]
    net.zero_grad()
    for chunk, labels in splits(inputs, targets, split_data):
        grads = torch.autograd.grad(loss_fn(logits(net(chunk)), labels), weights, create_graph=True, allow_unused=True)
        terms = [(g0.detach() * g).sum() for g0, g in zip(first, grads) if g0 is not None and g is not None]
        if terms:
            sum(terms).backward()
    return float(sum((-layer.weight.detach() * weight_grad(layer)).sum() for layer in layers))


@register("fisher")
def fisher(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Fisher channel saliency broadcast to weights as zero-cost-nas does (each channel's value counted
    once per weight of that channel, i.e. ``fan_in`` times):
    ``Σ_n fan_in · Σ_c 0.5 · mean_b (Σ_p act_out · grad_act_out)²``.
    """
    net = train_copy(net)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    layers = nodes(net)
    saliency: dict[nn.Module, torch.Tensor] = {}

    def record(layer: nn.Module, act: torch.Tensor, grad: torch.Tensor) -> None:
        per_sample = (act * grad).flatten(2).sum(2) if act.dim() > 2 else act * grad
        value = per_sample.pow(2).mean(0).mul(0.5)
        saliency[layer] = saliency[layer] + value if layer in saliency else value

    def hook(layer: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if output.requires_grad:
            act = output.detach()
            output.register_hook(lambda grad: record(layer, act, grad.detach()))

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        for chunk, labels in splits(inputs, targets, split_data):
            loss_fn(logits(net(chunk)), labels).backward()
    finally:
        for handle in handles:
            handle.remove()
    return float(sum(saliency[layer].abs().sum() * (layer.weight[0].numel()) for layer in layers if layer in saliency))
