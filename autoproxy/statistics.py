"""Node-wise statistics of an untrained network on one minibatch: the leaves of the proxy language.

Everything a known zero-cost proxy needs is gathered here once per architecture, so that evolved
expressions never touch a network again. The passes are shared wherever the maths allows:

1. one forward pass of the whole batch with hooks on every ``nn.Conv2d``/``nn.Linear`` (a *node*),
   keeping each node's input and output tensors;
2. from that graph: the input Jacobian of ``sum(outputs)`` (jacov), then one backward of the loss
   with ``create_graph`` giving dL/dW and dL/d activations together, then GraSP's Hessian-gradient
   product Hg = d(g·dL/dW)/dW by a second backward through the same graph (GraSP runs two identical
   forwards; in train mode they are the same function, so sharing one is exact);
3. ``sub_batches`` forward/backward passes for ZiCo's per-weight gradient std;
4. one float64 forward/backward of |W| on an all-ones input with batch norm disabled (SynFlow).

Passes 3, 4, the Jacobian, the Hessian-gradient product and the FLOPs count are optional: ``needs`` (the statistics a
formula reads) skips those it does not read, and their statistics hold NaN, so a formula that reads a
skipped one is undefined rather than wrong. Scoring one formula on fresh networks (an exported proxy,
the stability report) thus pays only for what it reads: 0.4–0.6 of the full set on the digits nets.

Conventions, as NASLib computes the Suite-Zero scores: the model is deep-copied (the caller's model is
never touched) and put in train mode, so batch norm normalises with batch statistics; in-place ReLUs of
the copy are made out-of-place so that stored activations are the true layer outputs; the loss is
``loss_fn`` or the mean cross-entropy. With batch norm in train mode a sub-batch sees other batch
statistics, so ``grad`` (whole batch) equals the mean of the sub-batch gradients only for networks
without batch norm.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Collection

import torch
from torch import nn

from autoproxy.errors import StatisticsError

NODE_TYPES = (nn.Conv2d, nn.Linear)
# Bumped whenever the set or meaning of the statistics, or the minibatch they are computed on,
# changes, so that older caches are refused instead of silently mixed (2: grad_abs_mean added).
DEFAULT_SUB_BATCHES = 4  # equal sub-batches for ZiCo's gradient mean |g| and std
STATISTICS_VERSION = 4  # 3: synflow_grad scaled per network, synflow_log_scale added;
                        # 4: image minibatches drawn without repeated samples (autoproxy.data)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# The passes that ``needs`` can skip, by the statistics that read them.
OPTIONAL_PASSES: dict[str, frozenset[str]] = {
    "jacobian": frozenset({"jacobian_corr", "jacobian_norm"}),
    "hessian": frozenset({"hess_grad"}),
    "sub_batches": frozenset({"grad_abs_mean", "grad_std"}),
    "synflow": frozenset({"synflow_grad", "synflow_log_scale"}),
    "flops": frozenset({"flops"}),
}


@dataclass
class NodeStatistics:
    name: str
    kind: str
    tensors: dict[str, torch.Tensor]
    scalars: dict[str, float]


@dataclass
class NetworkStatistics:
    nodes: list[NodeStatistics]
    tensors: dict[str, torch.Tensor]
    scalars: dict[str, float]


@dataclass
class _Capture:
    """One node's tensors from the shared forward pass (still attached to the graph)."""

    name: str
    module: nn.Module
    act_in: torch.Tensor
    act_out: torch.Tensor
    input_post_relu: bool
    pattern_key: int  # equal for nodes whose inputs have the same sign pattern (same ReLU source)


def compute_statistics(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    *,
    sub_batches: int = DEFAULT_SUB_BATCHES,
    max_channels: int | None = None,
    max_positions: int | None = None,
    seed: int = 0,
    needs: Collection[str] | None = None,
) -> NetworkStatistics:
    """All node and network statistics of ``model`` on ``(inputs, targets)`` (see ARCHITECTURE.md).

    ``max_channels``/``max_positions`` sketch the four activation tensors to a seeded subset of
    channels/positions (the same subset for an activation and its gradient); kernels, ``act_cov``
    and the per-weight tensors are always exact. With ``needs`` (statistics keys), the passes of
    ``OPTIONAL_PASSES`` that none of them reads are skipped and their statistics are NaN.
    """
    batch = inputs.shape[0]
    if sub_batches < 1 or batch % sub_batches:
        raise StatisticsError(f"batch of {batch} cannot be split into {sub_batches} equal sub-batches")
    if targets.shape[0] != batch:
        raise StatisticsError(f"{batch} inputs but {targets.shape[0]} targets")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    net = _node_weights_only(train_copy(model))
    x = inputs.detach().clone().requires_grad_(True)
    captures, output = _forward_with_captures(net, x)
    if not captures:
        raise StatisticsError("model has no nn.Conv2d or nn.Linear layer")
    weights = [capture.module.weight for capture in captures]

    passes = {name for name, reads in OPTIONAL_PASSES.items() if needs is None or reads & set(needs)}
    jacobian_corr, jacobian_norm = (_input_jacobian_statistics(output, x) if "jacobian" in passes
                                    else (torch.full((batch, batch), math.nan), math.nan))
    loss = loss_fn(output, targets)
    acts = [capture.act_out for capture in captures] + [capture.act_in for capture in captures]
    first = _grads(loss, weights + acts, create_graph="hessian" in passes)
    grads, act_grads = first[: len(weights)], first[len(weights) :]
    hess_grads = _hessian_gradient(weights, grads) if "hessian" in passes else _skipped(weights)
    del loss, output, first

    grad_abs_means, grad_stds = (_sub_batch_grad_moments(net, weights, inputs, targets, loss_fn, sub_batches)
                                 if "sub_batches" in passes else (_skipped(weights), _skipped(weights)))
    synflow_grads, synflow_log_scale = (
        _scaled_synflow_gradients(model, inputs.shape[1:]) if "synflow" in passes
        else (dict(zip((capture.name for capture in captures), _skipped(weights))), math.nan))
    module_flops = (_node_flops(model, inputs.shape[1:]) if "flops" in passes
                    else {capture.name: math.nan for capture in captures})

    relu_kernels: dict[int, torch.Tensor] = {}
    nodes = []
    for index, capture in enumerate(captures):
        sketch = torch.Generator().manual_seed(seed * 1_000_003 + index)
        out_keep = _sketch_indices(capture.act_out, max_channels, max_positions, sketch)
        in_keep = _sketch_indices(capture.act_in, max_channels, max_positions, sketch)
        act_out = _as_bcp(capture.act_out.detach())
        act_in = _as_bcp(capture.act_in.detach())
        if capture.pattern_key not in relu_kernels:
            relu_kernels[capture.pattern_key] = relu_kernel(act_in)
        tensors = {
            "weight": capture.module.weight.detach().flatten(),
            "grad": grads[index].detach().flatten(),
            "grad_abs_mean": grad_abs_means[index],
            "grad_std": grad_stds[index],
            "hess_grad": hess_grads[index],
            "synflow_grad": synflow_grads[capture.name],
            "act_out": _take(act_out, out_keep),
            "grad_act_out": _take(_as_bcp(act_grads[index].detach()), out_keep),
            "act_in": _take(act_in, in_keep),
            "grad_act_in": _take(_as_bcp(act_grads[len(captures) + index].detach()), in_keep),
            "relu_kernel": relu_kernels[capture.pattern_key].clone(),
            "act_kernel": activation_kernel(act_out),
            "act_cov": channel_covariance(act_out),
        }
        scalars = _node_scalars(capture, act_in, act_out, index, len(captures), module_flops[capture.name])
        nodes.append(NodeStatistics(capture.name, _kind(capture.module), _as_float32(tensors), scalars))

    network_tensors = {"jacobian_corr": jacobian_corr}
    network_scalars = {
        "params": sum(p.numel() for p in model.parameters()) / 1e6,
        "flops": _network_flops(model, inputs.shape[1:]) if "flops" in passes else math.nan,
        "jacobian_norm": jacobian_norm,
        "num_nodes": float(len(nodes)),
        "synflow_log_scale": synflow_log_scale,
    }
    return NetworkStatistics(nodes, network_tensors, network_scalars)


def relu_kernel(act_in: torch.Tensor) -> torch.Tensor:
    """NWOT's c cᵀ + (1−c)(1−c)ᵀ for c = [act_in > 0] per sample: D − Hamming distance, exact.

    One matmul: with s = 2c − 1 in {±1}, c cᵀ + (1−c)(1−c)ᵀ = (s sᵀ + D) / 2; every partial sum is an
    integer of magnitude ≤ D, so float32 is exact below 2^24 entries (float64 beyond).
    """
    flat = act_in.reshape(act_in.shape[0], -1)
    signs = (flat > 0).to(torch.float64 if flat.shape[1] >= 2**24 else torch.float32).mul_(2).sub_(1)
    return ((signs @ signs.T + flat.shape[1]) / 2).float()


def activation_kernel(act_out: torch.Tensor) -> torch.Tensor:
    """A Aᵀ / D for A the per-sample flattened activation (D entries)."""
    flat = act_out.reshape(act_out.shape[0], -1)
    return flat @ flat.T / flat.shape[1]


def channel_covariance(act_out: torch.Tensor) -> torch.Tensor:
    """Covariance (N − 1 normalised) of output channels over all batch × position samples."""
    channels = act_out.shape[1]
    samples = act_out.transpose(0, 1).reshape(channels, -1)
    if samples.shape[1] < 2:
        return torch.zeros(channels, channels)
    return torch.cov(samples)


def synflow_gradients(model: nn.Module, input_shape: torch.Size | tuple[int, ...]) -> dict[str, torch.Tensor]:
    """dR/dW per node name (flattened, float64) for R = sum(net_|W|(ones)), as SynFlow computes it.

    As zero-cost-nas/NASLib ``synflow``: batch norm is bypassed, every state tensor (parameters and
    buffers) is replaced by its absolute value, and one float64 all-ones sample is propagated.
    """
    net = copy.deepcopy(model).double()
    net.train(model.training)
    for module in net.modules():
        if isinstance(module, _BATCH_NORMS):
            module.forward = _identity
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    nodes = {name: module for name, module in net.named_modules() if isinstance(module, NODE_TYPES)}
    weights = [module.weight.requires_grad_(True) for module in nodes.values()]
    output = logits(net(torch.ones(1, *input_shape, dtype=torch.float64)))
    return {name: grad.detach().flatten() for name, grad in zip(nodes, _grads(output.sum(), weights))}


def _scaled_synflow_gradients(
    model: nn.Module, input_shape: torch.Size | tuple[int, ...]
) -> tuple[dict[str, torch.Tensor], float]:
    """SynFlow gradients divided by one power of two per network, and the natural log of that power.

    dR/dW grows exponentially with depth (beyond float32's range on NB201), so the statistic holds
    dR/dW / 2^k, with 2^k ≤ max|dR/dW| < 2^(k+1), and ``synflow_log_scale`` = k·ln 2 restores the
    scale: ln synflow = ln Σ|W ⊙ synflow_grad| + synflow_log_scale, exactly as in float64.
    """
    raw = synflow_gradients(model, input_shape)
    largest = max((float(g.abs().max()) for g in raw.values() if g.numel()), default=0.0)
    exponent = math.frexp(largest)[1] - 1 if largest > 0 and math.isfinite(largest) else 0
    scaled = {name: torch.ldexp(g, torch.tensor(-exponent, dtype=torch.float64)).float() for name, g in raw.items()}
    return scaled, exponent * math.log(2.0)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def train_copy(model: nn.Module) -> nn.Module:
    """A deep copy in train mode with out-of-place activations, so the caller's model stays as it was."""
    net = copy.deepcopy(model).train()
    for module in net.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    return net


def _node_weights_only(net: nn.Module) -> nn.Module:
    """Only node weights need gradients: batch-norm affine and bias gradients are skipped in every
    backward (a few reductions per layer; the statistics are bit-identical)."""
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    for module in net.modules():
        if isinstance(module, NODE_TYPES):
            module.weight.requires_grad_(True)
    return net


def logits(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """A model may return ``(features, logits)`` as NASLib's do; the logits are the last element."""
    return output[-1] if isinstance(output, (tuple, list)) else output


def _forward_with_captures(net: nn.Module, x: torch.Tensor) -> tuple[list[_Capture], torch.Tensor]:
    """One forward pass keeping every node's input and output, in execution order."""
    names = {module: name for name, module in net.named_modules()}
    relu_sources: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # kept alive so ids stay unique
    captures: list[_Capture] = []

    def remember_relu(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        relu_sources[id(output)] = (output, args[0])

    def capture(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if any(seen.module is module for seen in captures):
            raise StatisticsError(f"layer {names[module]!r} is called twice in one forward pass")
        if output.dim() not in (2, 4):
            raise StatisticsError(f"layer {names[module]!r} gives a {output.dim()}-D output; expected NCHW or NC")
        act_in = args[0]
        source = relu_sources.get(id(act_in))
        pattern_key = id(source[1]) if source is not None else id(act_in)
        captures.append(_Capture(names[module], module, act_in, output, source is not None, pattern_key))

    handles = [
        module.register_forward_hook(capture if isinstance(module, NODE_TYPES) else remember_relu)
        for module in net.modules()
        if isinstance(module, NODE_TYPES + (nn.ReLU,))
    ]
    try:
        output = logits(net(x))
    finally:
        for handle in handles:
            handle.remove()
    return captures, output


def _input_jacobian_statistics(output: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """jacov's correlation matrix of the per-sample input Jacobians of sum(output), and their norm / B."""
    batch = x.shape[0]
    jacobian = torch.autograd.grad(output.sum(), x, retain_graph=True)[0].reshape(batch, -1)
    return torch.corrcoef(jacobian.double()).float(), float(jacobian.norm()) / batch


def _skipped(weights: list[nn.Parameter]) -> list[torch.Tensor]:
    """NaN in place of a per-weight statistic whose pass was skipped."""
    return [torch.full((weight.numel(),), math.nan) for weight in weights]


def _grads(output: torch.Tensor, inputs: list[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    """d output / d inputs, zeros for inputs the output does not depend on."""
    grads = torch.autograd.grad(output, inputs, create_graph=create_graph, retain_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(tensor) if grad is None else grad for tensor, grad in zip(inputs, grads)]


def _hessian_gradient(weights: list[nn.Parameter], grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """GraSP's Hg: d/dW of sum(stop_grad(g) · g) for g = dL/dW."""
    connected = [(weight, grad) for weight, grad in zip(weights, grads) if grad.requires_grad]
    if not connected:
        return [torch.zeros(weight.numel()) for weight in weights]
    z = sum((grad.detach() * grad).sum() for _, grad in connected)
    hess = _grads(z, weights)
    return [h.detach().flatten() for h in hess]


def _sub_batch_grad_moments(
    net: nn.Module,
    weights: list[nn.Parameter],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn,
    sub_batches: int,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-weight mean of |dL/dW| and population std (ddof 0, as ZiCo's ``np.std``) over equal sub-batches.

    ZiCo's signal is the mean *absolute* sub-batch gradient, which the whole-batch ``grad`` cannot give.
    """
    if sub_batches == 1:
        grads = _grads(loss_fn(logits(net(inputs)), targets), weights)
        return [g.detach().abs().flatten() for g in grads], [torch.zeros(w.numel()) for w in weights]
    per_batch = [
        _grads(loss_fn(logits(net(chunk)), labels), weights)
        for chunk, labels in zip(inputs.chunk(sub_batches), targets.chunk(sub_batches))
    ]
    stacked = [torch.stack([grads[i].detach().flatten() for grads in per_batch]) for i in range(len(weights))]
    return [g.abs().mean(0) for g in stacked], [g.std(0, unbiased=False) for g in stacked]


def _as_bcp(tensor: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H·W); (B, F) → (B, F, 1)."""
    return tensor.reshape(tensor.shape[0], tensor.shape[1], -1)


def _sketch_indices(
    tensor: torch.Tensor, max_channels: int | None, max_positions: int | None, generator: torch.Generator
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    channels, positions = tensor.shape[1], _as_bcp(tensor).shape[2]

    def subset(size: int, limit: int | None) -> torch.Tensor | None:
        if limit is None or size <= limit:
            return None
        return torch.randperm(size, generator=generator)[:limit].sort().values

    return subset(channels, max_channels), subset(positions, max_positions)


def _take(tensor: torch.Tensor, keep: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor:
    channels, positions = keep
    if channels is not None:
        tensor = tensor[:, channels]
    if positions is not None:
        tensor = tensor[:, :, positions]
    return tensor.contiguous()


def _kind(module: nn.Module) -> str:
    return "conv" if isinstance(module, nn.Conv2d) else "linear"


def _node_scalars(
    capture: _Capture, act_in: torch.Tensor, act_out: torch.Tensor, index: int, count: int, flops: float
) -> dict[str, float]:
    weight = capture.module.weight
    bias = capture.module.bias
    out_channels = weight.shape[0]
    kernel_area = weight[0, 0].numel()
    return {
        "params": float(weight.numel() + (bias.numel() if bias is not None else 0)),
        "flops": float(flops),
        "depth": index / (count - 1) if count > 1 else 0.0,
        "fan_in": float(weight.numel() // out_channels),
        "fan_out": float(out_channels * kernel_area),
        "channels_out_total": float(act_out.shape[1]),
        "positions_out_total": float(act_out.shape[2]),
        "channels_in_total": float(act_in.shape[1]),
        "positions_in_total": float(act_in.shape[2]),
        "input_post_relu": float(capture.input_post_relu),
    }


def _node_flops(model: nn.Module, input_shape: torch.Size | tuple[int, ...]) -> dict[str, float]:
    from autoproxy.flops import module_flops

    return module_flops(model, (1, *input_shape))


def _network_flops(model: nn.Module, input_shape: torch.Size | tuple[int, ...]) -> float:
    from autoproxy.flops import count_flops

    return float(count_flops(model, (1, *input_shape)))


def _as_float32(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().float().contiguous() for name, tensor in tensors.items()}
