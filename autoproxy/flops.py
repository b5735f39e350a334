"""FLOPs per module by forward hooks, in the convention of the benchmarks' ``flops`` field.

NAS-Bench-Suite-Zero's ``flops`` (both NAS-Bench-201 and -101) is tensorwatch's ``ModelStats.Flops``
for one 3x32x32 input, divided by 1e6. Per counted module it counts:

- ``Conv1d/2d/3d``: kernel volume·C_in/groups·C_out per output position (+ C_out per position with a
  bias);
- ``Linear``: in·out per output row (tokens and channels-last positions included; the bias is free);
- ``MultiheadAttention``: its multiply-accumulates per batch element, L query and S key positions,
  embedding E: L·E·E (query projection) + S·kdim·E + S·vdim·E (key and value projections) + L·S·E
  (scores q·kᵀ) + L·S·E (weighted sum of values) + L·E·E (output projection); softmax and biases free;
- norms (``BatchNorm1d/2d/3d``, ``InstanceNorm``, ``LayerNorm``, ``GroupNorm``, ``RMSNorm`` and their
  subclasses, e.g. timm's ``BatchNormAct2d``): 2 per input element with an affine transform, 1 without;
- elementwise nonlinearities (any class whose lower-cased name is in
  :data:`autoproxy.nodes.NONLINEARITY_NAMES`: ReLU, GELU, SiLU, Hardswish, Sigmoid, ...): 1 per input
  element;
- ``AvgPool2d``/``MaxPool2d``: k_h·k_w per output element;
- ``AdaptiveAvgPool2d``/``AdaptiveMaxPool2d``: C·(window height + 1)·(window width + 1) per output
  position (tensorwatch's formula, off by one as it is: 64x8x8 → 1x1 counts 64·9·9);
- functional matrix products run while no counted module is running (timm's ``q @ k.transpose(-2, -1)``,
  ``attn @ v``, ``torch.einsum``, ``F.scaled_dot_product_attention``): their multiply-accumulates
  (``mm``, ``bmm``, ``mv``, ``dot`` and their ``add`` forms: output elements × inner size; fused
  attention: L·S·(E + E_v) per batch and head), credited to the innermost module running them
  (``""`` for the model's own ``forward``). Products inside a counted module are that module's
  business, so NB201/NB101 counts (convolutions, batch norms, ReLUs, pools, one Linear) are unaffected;
- anything else (identity, additions, softmax, ``torch.mean``, concatenation): 0.

For convolutions, ``Linear`` and ``MultiheadAttention`` the count is exactly the multiply-accumulates.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from autoproxy.nodes import NONLINEARITY_NAMES

_Counter = Callable[[nn.Module, list, torch.Tensor], float]


def module_flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """FLOPs of each counted module (qualified name → count) for one input of ``input_shape``.

    ``input_shape`` is one sample's shape ((C, H, W), (T, C), (C, L), ...), to which a batch
    dimension of 1 is prepended, or a 4-dim (1, C, H, W). Modules appear in forward-execution order;
    a module run twice counts twice. The model runs in eval mode, without gradients, and is put back
    in its previous mode afterwards.
    """
    shape = _batch_of_one(input_shape)
    counts: dict[str, float] = {}
    scope = _Scope()
    handles = []
    for name, module in model.named_modules():
        counter = _counter_for(module)
        handles.append(module.register_forward_pre_hook(scope.enter(name, counter is not None)))
        handles.append(module.register_forward_hook(scope.leave(counter is not None)))
        if counter is not None:
            handles.append(module.register_forward_hook(_recorder(name, module, counter, counts), with_kwargs=True))
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad(), _MatmulCounter(scope, counts):
            model(torch.zeros(shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return counts


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Total FLOPs for one input, in millions (the benchmarks' ``flops`` unit)."""
    return sum(module_flops(model, input_shape).values()) / 1e6


def _batch_of_one(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(size) for size in input_shape)
    if not shape:
        raise ValueError("input_shape must name at least one dimension")
    return shape if len(shape) == 4 and shape[0] == 1 else (1, *shape)


class _Scope:
    """Which module runs now (a stack of names) and how many counted modules are running, kept by
    pre- and post-forward hooks on every module."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.counted_depth = 0

    def enter(self, name: str, counted: bool) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            self.names.append(name)
            self.counted_depth += counted

        return hook

    def leave(self, counted: bool) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            self.names.pop()
            self.counted_depth -= counted

        return hook


class _MatmulCounter(TorchDispatchMode):
    """Counts the multiply-accumulates of matrix-product operators run outside every counted module."""

    def __init__(self, scope: _Scope, counts: dict[str, float]) -> None:
        super().__init__()
        self.scope, self.counts = scope, counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        formula = _MATMULS.get(func.overloadpacket)
        if formula is not None and self.scope.counted_depth == 0:
            name = self.scope.names[-1] if self.scope.names else ""
            self.counts[name] = self.counts.get(name, 0.0) + float(formula(args, output))
        return output


def _product(args: tuple, output: torch.Tensor) -> float:
    """mm/bmm/mv/dot: output elements × inner size."""
    return output.numel() * args[0].shape[-1]


def _added_product(args: tuple, output: torch.Tensor) -> float:
    """addmm/baddbmm/addmv(bias, a, b): the product's multiply-accumulates; the addition is free."""
    return output.numel() * args[1].shape[-1]


def _fused_attention(args: tuple, output: Any) -> float:
    """softmax(q kᵀ) v: L·S·E for the scores and L·S·E_v for the weighted sum, per batch and head."""
    query, key, value = args[:3]
    return query.shape[:-1].numel() * key.shape[-2] * (query.shape[-1] + value.shape[-1])


_ATTENTION_OPS = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                  "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                  "_scaled_dot_product_fused_attention_overrideable")
_MATMULS: dict[Any, Callable[[tuple, Any], float]] = {
    torch.ops.aten.mm: _product,
    torch.ops.aten.bmm: _product,
    torch.ops.aten.mv: _product,
    torch.ops.aten.dot: _product,
    torch.ops.aten.addmm: _added_product,
    torch.ops.aten.baddbmm: _added_product,
    torch.ops.aten.addmv: _added_product,
    **{getattr(torch.ops.aten, op): _fused_attention for op in _ATTENTION_OPS if hasattr(torch.ops.aten, op)},
}


def _recorder(name: str, module: nn.Module, counter: _Counter, counts: dict[str, float]) -> Callable:
    """A forward hook adding the module's count; inputs are bound to ``forward``'s parameters in order
    (attention's key may come by keyword)."""
    signature = inspect.signature(module.forward)

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        inputs = list(signature.bind(*args, **kwargs).arguments.values())
        first = output[0] if isinstance(output, tuple) else output
        counts[name] = counts.get(name, 0.0) + float(counter(module, inputs, first))

    return hook


def _counter_for(module: nn.Module) -> _Counter | None:
    if type(module).__name__.lower() in NONLINEARITY_NAMES:
        return _elementwise
    for kinds, counter in _COUNTERS:
        if isinstance(module, kinds):
            return counter
    return None


def _conv(module: nn.Conv1d | nn.Conv2d | nn.Conv3d, inputs: list, y: torch.Tensor) -> float:
    positions = y.shape[0] * math.prod(y.shape[2:])
    per_position = math.prod(module.kernel_size) * module.in_channels // module.groups * module.out_channels
    bias = module.out_channels if module.bias is not None else 0
    return (per_position + bias) * positions


def _linear(module: nn.Linear, inputs: list, y: torch.Tensor) -> float:
    return module.in_features * module.out_features * (y.numel() // y.shape[-1])


def _attention(module: nn.MultiheadAttention, inputs: list, y: torch.Tensor) -> float:
    query, key = inputs[0], inputs[1]
    embed = module.embed_dim
    batch = 1 if query.dim() == 2 else query.shape[0 if module.batch_first else 1]
    length = query.shape[1 if module.batch_first and query.dim() == 3 else 0]
    sources = key.shape[1 if module.batch_first and key.dim() == 3 else 0]
    projections = 2 * length * embed * embed + sources * (module.kdim + module.vdim) * embed
    return batch * (projections + 2 * length * sources * embed)


def _norm(module: nn.Module, inputs: list, y: torch.Tensor) -> float:
    affine = getattr(module, "affine", getattr(module, "elementwise_affine", False))
    return inputs[0].numel() * (2 if affine else 1)


def _elementwise(module: nn.Module, inputs: list, y: torch.Tensor) -> float:
    return inputs[0].numel()


def _pool(module: nn.AvgPool2d | nn.MaxPool2d, inputs: list, y: torch.Tensor) -> float:
    kernel = module.kernel_size
    window = kernel * kernel if isinstance(kernel, int) else math.prod(kernel)
    return y.numel() * window


def _adaptive_pool(module: nn.Module, inputs: list, y: torch.Tensor) -> float:
    x = inputs[0]
    in_h, in_w = x.shape[-2:]
    out_h, out_w = y.shape[-2:]
    heights = sum(math.ceil((i + 1) * in_h / out_h) - (i * in_h) // out_h + 1 for i in range(out_h))
    widths = sum(math.ceil((j + 1) * in_w / out_w) - (j * in_w) // out_w + 1 for j in range(out_w))
    return x.shape[0] * x.shape[1] * heights * widths


_NORMS: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                            *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))
_COUNTERS: tuple[tuple[type | tuple[type, ...], _Counter], ...] = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), _conv),
    (nn.Linear, _linear),
    (nn.MultiheadAttention, _attention),
    (_NORMS, _norm),
    ((nn.AvgPool2d, nn.MaxPool2d), _pool),
    ((nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), _adaptive_pool),
)
