"""What the reference proxies share beyond :mod:`autoproxy.nodes`: the network copy with its nodes, the
loss gradients of node weights accumulated over ``split_data`` chunks, and the undefined value.

``split_data`` semantics (every proxy): the batch is cut into ``split_data`` consecutive chunks
(:func:`autoproxy.nodes.chunks`), processed one after another so that memory falls with ``split_data``,
and each chunk's mean loss is weighted by its share of the batch. A proxy's value therefore equals its
``split_data=1`` value up to float rounding on a network without train-mode batch norm. This
deliberately differs from zero-cost-nas, which sums the chunks' unweighted mean losses (its gradients
grow with ``split_data``).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from autoproxy.nodes import LossFn, checked_loss, chunks, flat, logits, node_weights, nodes, require_nodes, train_copy


def prepared(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """A train-mode copy of the caller's model and its nodes (one line naming the model when it has
    none), so that the caller's weights, mode and hooks stay as they were."""
    net = train_copy(model)
    found = nodes(net)
    require_nodes(model, found)
    return net, found


def undefined(proxy: str, reason: str) -> float:
    """NaN with a one-line warning: a proxy undefined on a model is never a silent -inf or 0."""
    warnings.warn(f"{proxy} is undefined on this model: {reason}", RuntimeWarning, stacklevel=3)
    return float("nan")


def weights_of(layers: list[nn.Module]) -> list[nn.Parameter]:
    """Every node's weight matrices, node after node (``node_weights`` order)."""
    return [weight for layer in layers for weight in node_weights(layer)]


def per_node(layers: list[nn.Module], tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors aligned with :func:`weights_of` regrouped into one flat vector per node."""
    grouped, start = [], 0
    for layer in layers:
        count = len(node_weights(layer))
        grouped.append(flat(layer, tensors[start:start + count]))
        start += count
    return grouped


def chunk_loss(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None,
               share: float) -> torch.Tensor:
    """A chunk's checked mean loss weighted by its share of the batch."""
    return checked_loss(net, loss_fn, logits(net(inputs)), targets) * share


def gradients(loss: torch.Tensor, weights: list[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    """dloss/dW for each weight; zeros for a weight the loss does not reach."""
    if not loss.requires_grad:
        return [torch.zeros_like(weight) for weight in weights]
    grads = torch.autograd.grad(loss, weights, allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(weight) if grad is None else grad for weight, grad in zip(weights, grads)]


def loss_gradients(net: nn.Module, layers: list[nn.Module], inputs: torch.Tensor, targets: torch.Tensor,
                   loss_fn: LossFn | None, split_data: int) -> list[torch.Tensor]:
    """dL/dW of the whole batch's mean loss for every node weight (:func:`weights_of` order), summed
    over the chunks' share-weighted losses (see the module docstring)."""
    weights = weights_of(layers)
    total: list[torch.Tensor] | None = None
    for chunk, labels, share in chunks(inputs, targets, split_data):
        grads = gradients(chunk_loss(net, chunk, labels, loss_fn, share), weights)
        total = grads if total is None else [acc + grad for acc, grad in zip(total, grads)]
    return total


def node_loss_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None,
                        split_data: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(weights, grads)``: each node's flat weight and flat dL/dW (whole-batch mean loss)."""
    net, layers = prepared(model)
    grads = loss_gradients(net, layers, inputs, targets, loss_fn, split_data)
    return per_node(layers, [w.detach() for w in weights_of(layers)]), per_node(layers, grads)
