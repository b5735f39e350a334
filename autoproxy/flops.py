"""FLOPs per layer by forward hooks, in the convention of the benchmarks' ``flops`` field.

NAS-Bench-Suite-Zero's ``flops`` (both NAS-Bench-201 and -101) is tensorwatch's ``ModelStats.Flops``
for one 3x32x32 input, divided by 1e6. Per leaf module it counts:

- ``Conv2d``: k_h·k_w·C_in/groups·C_out per output position (+ C_out per position with a bias);
- ``Linear``: in·out (the bias is free);
- ``BatchNorm2d``: 2 per input element (1 without affine); ``ReLU``: 1 per input element;
- ``AvgPool2d``/``MaxPool2d``: k_h·k_w per output element;
- ``AdaptiveAvgPool2d``/``AdaptiveMaxPool2d``: C·(window height + 1)·(window width + 1) per output
  position (tensorwatch's formula, off by one as it is: 64x8x8 → 1x1 counts 64·9·9);
- anything else (identity, additions, ``torch.mean``, concatenation): 0.

For ``Conv2d`` and ``Linear`` modules the count is exactly the multiply-accumulates.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

_Counter = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


def module_flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """FLOPs of each counted leaf module (qualified name → count) for one input of ``input_shape``.

    ``input_shape`` is (C, H, W) or (1, C, H, W). Modules appear in forward-execution order;
    a module run twice counts twice. The model runs in eval mode, without gradients, and is put
    back in its previous mode afterwards.
    """
    shape = tuple(int(size) for size in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1:
        raise ValueError(f"input_shape must be (C, H, W) or (1, C, H, W), got {tuple(input_shape)}")
    counts: dict[str, float] = {}
    handles = [
        module.register_forward_hook(_recorder(name, counter, counts))
        for name, module in model.named_modules()
        if (counter := _counter_for(module)) is not None
    ]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return counts


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Total FLOPs for one input, in millions (the benchmarks' ``flops`` unit)."""
    return sum(module_flops(model, input_shape).values()) / 1e6


def _recorder(name: str, counter: _Counter, counts: dict[str, float]):
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        counts[name] = counts.get(name, 0.0) + float(counter(module, inputs[0], output))

    return hook


def _counter_for(module: nn.Module) -> _Counter | None:
    for kinds, counter in _COUNTERS:
        if isinstance(module, kinds):
            return counter
    return None


def _conv(module: nn.Conv2d, x: torch.Tensor, y: torch.Tensor) -> float:
    positions = y.shape[0] * y.shape[-2] * y.shape[-1]
    per_position = math.prod(module.kernel_size) * module.in_channels // module.groups * module.out_channels
    bias = module.out_channels if module.bias is not None else 0
    return (per_position + bias) * positions


def _linear(module: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return module.in_features * module.out_features * (y.numel() // y.shape[-1])


def _batch_norm(module: nn.BatchNorm2d, x: torch.Tensor, y: torch.Tensor) -> float:
    return x.numel() * (2 if module.affine else 1)


def _elementwise(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return x.numel()


def _pool(module: nn.AvgPool2d | nn.MaxPool2d, x: torch.Tensor, y: torch.Tensor) -> float:
    kernel = module.kernel_size
    window = kernel * kernel if isinstance(kernel, int) else math.prod(kernel)
    return y.numel() * window


def _adaptive_pool(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    in_h, in_w = x.shape[-2:]
    out_h, out_w = y.shape[-2:]
    heights = sum(math.ceil((i + 1) * in_h / out_h) - (i * in_h) // out_h + 1 for i in range(out_h))
    widths = sum(math.ceil((j + 1) * in_w / out_w) - (j * in_w) // out_w + 1 for j in range(out_w))
    return x.shape[0] * x.shape[1] * heights * widths


_COUNTERS: tuple[tuple[type | tuple[type, ...], _Counter], ...] = (
    (nn.Conv2d, _conv),
    (nn.Linear, _linear),
    (nn.BatchNorm2d, _batch_norm),
    ((nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU), _elementwise),
    ((nn.AvgPool2d, nn.MaxPool2d), _pool),
    ((nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), _adaptive_pool),
)
