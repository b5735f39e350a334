"""What a node is in any torch model, and the one layout of its activations.

Statistics and reference proxies read a model the same way, through this module:

- A *node* is a layer holding a weight matrix: ``nn.Conv1d/2d/3d`` (grouped and depthwise included),
  ``nn.Linear`` and ``nn.MultiheadAttention`` (one node: its weights are ``in_proj_weight`` — or the
  separate q/k/v projection weights — followed by ``out_proj.weight``; its input is the query, its
  output the attention output). Fused qkv projections (timm's ``Attention.qkv``) are Linear nodes.
- Activations are laid out as ``(batch, channels, positions)`` for every node and every statistic:
  a convolution's spatial positions, a Linear's tokens (``(B, T, C)`` → ``(B, C, T)``), channels-last
  maps (``(B, H, W, C)`` → ``(B, C, H·W)``, ConvNeXt's Linear) and ``(B, C)`` → ``(B, C, 1)``.
- A node's *code* (NASWOT's binary activation pattern) is the sign pattern of the input of the
  elementwise nonlinearity that feeds it (ReLU, GELU, SiLU, Hardswish, ... matched by class, including
  same-named classes of other libraries such as timm's ``GELU``), looked through pass-through modules
  (``Identity``, ``Dropout``, ``DropPath``). For ReLU that is the pattern of its output, as NASWOT
  defines it. A nonlinearity applied functionally (``F.relu`` in a ``forward``) cannot be seen by hooks;
  such a node has no code.

Everything here works on a copy of the caller's model (``train_copy``): the caller's weights, mode and
hooks are never touched.
"""
from __future__ import annotations

import copy
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from autoproxy.errors import StatisticsError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

NODE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.MultiheadAttention)
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Elementwise nonlinearities whose input's sign pattern is a node's code, by lower-cased class name so
# that other libraries' classes of the same name (timm's GELU, QuickGELU, ...) count too.
NONLINEARITY_NAMES: frozenset[str] = frozenset({
    "relu", "relu6", "leakyrelu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "gelutanh", "quickgelu",
    "silu", "swish", "mish", "hardswish", "hardmish", "hardsigmoid", "sigmoid", "tanh", "hardtanh", "softplus",
    "softsign", "tanhshrink",
})
# Modules whose output carries their input's code unchanged.
PASS_THROUGH_NAMES: frozenset[str] = frozenset({"identity", "dropout", "dropout1d", "dropout2d", "dropout3d",
                                                "alphadropout", "droppath"})


def is_node(module: nn.Module) -> bool:
    return isinstance(module, NODE_TYPES)


def nodes(net: nn.Module) -> list[nn.Module]:
    """The nodes in registration order, as NASLib's ``get_layer_metric_array`` visits them. The
    projection inside an ``nn.MultiheadAttention`` belongs to that node, not to a node of its own."""
    inside_attention = {id(module.out_proj) for module in net.modules() if isinstance(module, nn.MultiheadAttention)}
    return [module for module in net.modules() if is_node(module) and id(module) not in inside_attention]


def node_weights(module: nn.Module) -> list[nn.Parameter]:
    """The weight matrices of a node, in a fixed order (one for convolutions and Linear)."""
    if isinstance(module, nn.MultiheadAttention):
        if module.in_proj_weight is not None:
            inputs = [module.in_proj_weight]
        else:
            inputs = [module.q_proj_weight, module.k_proj_weight, module.v_proj_weight]
        return [*inputs, module.out_proj.weight]
    return [module.weight]


def flat_weight(module: nn.Module) -> torch.Tensor:
    """A node's weights flattened into one vector (the ``weight`` statistic's layout)."""
    weights = node_weights(module)
    return weights[0].flatten() if len(weights) == 1 else torch.cat([w.flatten() for w in weights])


def flat(module: nn.Module, per_weight: list[torch.Tensor]) -> torch.Tensor:
    """Per-weight tensors of a node (gradients, ...) flattened like ``flat_weight``."""
    return per_weight[0].flatten() if len(per_weight) == 1 else torch.cat([t.flatten() for t in per_weight])


def fans(module: nn.Module) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a node's first weight matrix: inputs and outputs of one output unit
    (kernel area included for convolutions; ``in_proj_weight`` of attention: E and 3E)."""
    weight = node_weights(module)[0]
    out_channels = weight.shape[0]
    kernel_area = weight[0, 0].numel()
    return float(weight.numel() // out_channels), float(out_channels * kernel_area)


def node_params(module: nn.Module) -> float:
    """Every parameter of the node (weights and biases; an attention node's projections included)."""
    return float(sum(parameter.numel() for parameter in module.parameters()))


def kind(module: nn.Module) -> str:
    if isinstance(module, _CONVOLUTIONS):
        return "conv"
    return "attention" if isinstance(module, nn.MultiheadAttention) else "linear"


def as_bcp(tensor: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """A node's input or output (or its gradient) as ``(batch, channels, positions)``."""
    if isinstance(module, _CONVOLUTIONS):
        return tensor.reshape(tensor.shape[0], tensor.shape[1], -1)
    if isinstance(module, nn.MultiheadAttention) and not module.batch_first and tensor.dim() == 3:
        tensor = tensor.transpose(0, 1)                   # (T, B, E) -> (B, T, E)
    if tensor.dim() == 2:
        return tensor.unsqueeze(2)                        # (B, C) -> (B, C, 1)
    return tensor.reshape(tensor.shape[0], -1, tensor.shape[-1]).transpose(1, 2)   # (B, ..., C) -> (B, C, T)


@dataclass
class NodeCall:
    """One node's call in a forward pass (tensors still attached to the graph)."""

    name: str
    module: nn.Module
    act_in: torch.Tensor            # as the node received it (use ``as_bcp``)
    act_out: torch.Tensor           # as the node returned it (attention: the attention output)
    code_source: torch.Tensor | None   # input of the nonlinearity feeding the node, shaped like act_in
    code_key: int                   # equal for nodes fed by the same nonlinearity call


@contextmanager
def node_calls(net: nn.Module, keep_tensors: bool = True) -> Iterator[list[NodeCall]]:
    """Hooks on ``net`` for the forward pass run inside the block; yields the list of node calls, filled
    in execution order. A node called twice in the block is refused (shared weights have no single
    input and output).

    ``keep_tensors=False`` keeps no activation alive (a statistic that reads only shapes need not hold
    every layer's output until the pass ends): ``act_in``, ``act_out`` and ``code_source`` are then
    shape-only placeholders on the ``meta`` device, and ``code_key`` is -1."""
    names = {module: name for name, module in net.named_modules()}
    inside_attention = {id(module.out_proj) for module in net.modules() if isinstance(module, nn.MultiheadAttention)}
    # id(output) -> (output or a weak reference to it, pre-activation or its placeholder); a kept output
    # keeps its id unique, a weak one is checked to be the same tensor when looked up
    sources: dict[int, tuple[object, torch.Tensor]] = {}
    calls: list[NodeCall] = []

    def held(tensor: torch.Tensor) -> torch.Tensor:
        return tensor if keep_tensors else torch.empty_like(tensor, device="meta")

    def source_of(tensor: torch.Tensor) -> torch.Tensor | None:
        entry = sources.get(id(tensor))
        if entry is None:
            return None
        output = entry[0] if keep_tensors else entry[0]()
        return entry[1] if output is tensor else None

    def remember(output: torch.Tensor, pre_activation: torch.Tensor) -> None:
        sources[id(output)] = (output if keep_tensors else weakref.ref(output), pre_activation)

    def nonlinearity(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
            remember(output, held(args[0]))

    def pass_through(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
            source = source_of(args[0])
            if source is not None:
                remember(output, source)

    def node(module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        if any(seen.module is module for seen in calls):
            raise StatisticsError(f"layer {names[module]!r} is called twice in one forward pass")
        act_in = args[0] if args else kwargs.get("query", kwargs.get("input"))
        act_out = output[0] if isinstance(output, tuple) else output
        source = source_of(act_in)
        code_source = source if source is not None and source.shape == act_in.shape else None
        code_key = -1 if not keep_tensors else id(code_source) if code_source is not None else id(act_in)
        calls.append(NodeCall(names[module], module, held(act_in), held(act_out), code_source, code_key))

    handles = []
    for module in net.modules():
        class_name = type(module).__name__.lower()
        if is_node(module) and id(module) not in inside_attention:
            handles.append(module.register_forward_hook(node, with_kwargs=True))
        elif class_name in NONLINEARITY_NAMES:
            handles.append(module.register_forward_hook(nonlinearity))
        elif class_name in PASS_THROUGH_NAMES:
            handles.append(module.register_forward_hook(pass_through))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def train_copy(model: nn.Module) -> nn.Module:
    """A deep copy in train mode with out-of-place activations, so the caller's model stays as it was
    (NASLib's convention: batch norm normalises with batch statistics)."""
    net = copy.deepcopy(model).train()
    for module in net.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    return net


def logits(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """A model may return ``(features, logits)`` as NASLib's do; the logits are the last element."""
    return output[-1] if isinstance(output, (tuple, list)) else output


def require_nodes(model: nn.Module, found: list) -> None:
    """One line naming the model when it has no node."""
    if not found:
        raise StatisticsError(f"model {type(model).__name__} has no parameterised layer "
                              "(Conv1d/2d/3d, Linear or MultiheadAttention)")


def checked_loss(model: nn.Module, loss_fn: LossFn | None, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``loss_fn(output, targets)`` (mean cross-entropy by default), refusing with one line naming the
    model a label beyond the classifier's outputs or a loss that is not a scalar."""
    if loss_fn is None:
        if output.dim() != 2:
            raise StatisticsError(f"model {type(model).__name__} returns shape {tuple(output.shape)}; cross-entropy "
                                  "needs (batch, classes) logits (pass loss_fn for other outputs)")
        if targets.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and targets.numel():
            low, high = int(targets.min()), int(targets.max())
            if low < 0 or high >= output.shape[1]:
                raise StatisticsError(f"targets reach class {high if high >= output.shape[1] else low} but model "
                                      f"{type(model).__name__} has {output.shape[1]} outputs")
        loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(output, targets)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise StatisticsError(f"loss_fn returned {shape}, not a scalar tensor (use a mean or sum reduction)")
    return loss


def chunks(inputs: torch.Tensor, targets: torch.Tensor, split_data: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """The ``split_data`` consecutive slices that zero-cost-nas processes one after another, each with
    its share of the batch: a mean loss weighted by its share sums to the whole batch's mean loss, so a
    statistic accumulated over the slices equals the whole batch's up to float rounding (exactly so
    for networks without train-mode batch norm, whose slices see other batch statistics)."""
    size = inputs.shape[0]
    if not 1 <= split_data <= size:
        raise StatisticsError(f"split_data={split_data} must be between 1 and the batch size {size}")
    for part in range(split_data):
        start, end = part * size // split_data, (part + 1) * size // split_data
        yield inputs[start:end], targets[start:end], (end - start) / size
