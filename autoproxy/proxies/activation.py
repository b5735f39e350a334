"""Activation-pattern proxies: nwot (NASWOT) and jacov (Jacobian covariance)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from autoproxy.nodes import LossFn, chunks, logits, node_calls
from autoproxy.proxies.common import prepared, undefined
from autoproxy.proxies.registry import register

JACOV_EPSILON = 1e-5


@register("nwot")
def nwot(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """NASWOT on the nodes fed by a visible elementwise nonlinearity (ReLU, GELU, SiLU, ...):
    ``logdet(Σ_n input_post_relu · relu_kernel)`` (log |det| as ``slogdet``), where a node's binary
    code c is the sign pattern (> 0) of the input of the nonlinearity feeding it
    (:attr:`autoproxy.nodes.NodeCall.code_source`) and its kernel c cᵀ + (1−c)(1−c)ᵀ.

    For ReLU the pattern of its input is that of its output, which NASLib hooks, so the kernels agree
    for every ReLU that feeds a node (all but NB201's final ``lastact`` ReLU, whose pattern is thereby
    left out). Nodes fed by anything else (the stem's image input, pooled shortcuts, the classifier's
    pooled features) are skipped, as NASLib never sees them. The codes of every chunk are kept (bits)
    and joined per node, so the kernel is the whole batch's. NaN with a warning when no node is fed by
    a visible nonlinearity or the kernel is singular (log det = -inf).
    """
    net, _ = prepared(net)
    codes: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for chunk, _, _ in chunks(inputs, targets, split_data):
            with node_calls(net) as calls:
                net(chunk)
            for call in calls:
                if call.code_source is not None:
                    codes.setdefault(call.name, []).append(call.code_source.reshape(len(chunk), -1) > 0)
    if not codes:
        return undefined("nwot", "no node is fed by an elementwise nonlinearity module")
    kernel = np.zeros((inputs.shape[0], inputs.shape[0]))
    for parts in codes.values():
        code = torch.cat(parts).double()
        kernel = kernel + (code @ code.T + (1 - code) @ (1 - code).T).cpu().numpy()
    logdet = float(np.linalg.slogdet(kernel)[1])
    return logdet if np.isfinite(logdet) else undefined("nwot", "the activation-code kernel is singular")


@register("jacov")
def jacov(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn | None = None, split_data: int = 1) -> float:
    """Jacobian covariance (NASLib): with λ the eigenvalues of ``jacobian_corr`` (correlation of the
    per-sample input gradients of sum(outputs)), ``-Σ (log(λ + 1e-5) + 1 / (λ + 1e-5))``. The
    per-sample Jacobians are taken chunk by chunk. NaN with a warning where the correlation is undefined
    (an input gradient that is constant across its entries, e.g. an output independent of the input)."""
    net, _ = prepared(net)
    jacobians = []
    for chunk, _, _ in chunks(inputs, targets, split_data):
        x = chunk.detach().clone().requires_grad_(True)
        output = logits(net(x)).sum()
        grad = torch.autograd.grad(output, x)[0] if output.requires_grad else torch.zeros_like(x)
        jacobians.append(grad.reshape(len(chunk), -1))
    correlation = torch.corrcoef(torch.cat(jacobians).double())
    if not torch.isfinite(correlation).all():
        return undefined("jacov", "the per-sample input Jacobians have an undefined correlation")
    shifted = torch.linalg.eigvalsh(correlation) + JACOV_EPSILON
    return float(-(shifted.log() + 1.0 / shifted).sum())
