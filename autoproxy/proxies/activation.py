"""Activation-pattern proxies: nwot (NASWOT) and jacov (Jacobian covariance)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from autoproxy.proxies.common import NODE_TYPES, forward_with_hooks, logits, train_copy
from autoproxy.proxies.registry import LossFn, register

JACOV_EPSILON = 1e-5


@register("nwot")
def nwot(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """NASWOT on the inputs of conv/linear layers fed directly by an ``nn.ReLU``:
    ``logdet(Σ_n input_post_relu · relu_kernel)`` (log |det| as ``slogdet``).

    NASLib hooks every ReLU's input; a ReLU's output has the same sign pattern as its input, so the
    kernels agree for every ReLU that feeds a layer (all but NB201's final ``lastact`` ReLU, whose
    pattern is thereby left out). Layers fed by anything else (the stem's image input, pooled
    shortcuts, the classifier's pooled features) are skipped, as NASLib never sees them.
    """
    net = train_copy(net)
    size = inputs.shape[0]
    kernel = np.zeros((size, size))
    relu_outputs: dict[int, torch.Tensor] = {}

    def remember(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        relu_outputs[id(output)] = output

    def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal kernel
        if id(args[0]) in relu_outputs:
            codes = (args[0].reshape(size, -1) > 0).double()
            kernel = kernel + (codes @ codes.T + (1 - codes) @ (1 - codes).T).numpy()

    forward_with_hooks(net, inputs, {NODE_TYPES: count, nn.ReLU: remember})
    return float(np.linalg.slogdet(kernel)[1])


@register("jacov")
def jacov(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Jacobian covariance (NASLib): with λ the eigenvalues of ``jacobian_corr`` (correlation of the
    per-sample input gradients of sum(outputs)), ``-Σ (log(λ + 1e-5) + 1 / (λ + 1e-5))``; nan if the
    correlation is undefined."""
    net = train_copy(net)
    x = inputs.detach().clone().requires_grad_(True)
    logits(net(x)).sum().backward()
    correlation = torch.corrcoef(x.grad.reshape(x.shape[0], -1).double())
    if not torch.isfinite(correlation).all():
        return float("nan")
    shifted = torch.linalg.eigvalsh(correlation) + JACOV_EPSILON
    return float(-(shifted.log() + 1.0 / shifted).sum())
