"""Node-wise statistics of an untrained network on one minibatch: the leaves of the proxy language.

Everything a known zero-cost proxy needs is gathered here once per architecture, so that evolved
expressions never touch a network again. What a node is, and the ``(batch, channels, positions)``
layout of its activations, come from ``autoproxy/nodes.py``. The passes are shared wherever the maths
allows:

1. one forward pass with hooks on every node (per ``split_data`` chunk), keeping each node's input,
   output and code source only when a statistic reads them;
2. from that graph: the input Jacobian of ``sum(outputs)`` (jacov), then one backward of the loss
   giving dL/dW and the dL/d activations asked for, then GraSP's Hessian-gradient product
   Hg = d(g·dL/dW)/dW by a second backward through the same graph (GraSP runs two identical forwards;
   in train mode they are the same function, so sharing one is exact). With several chunks Hg needs
   the whole batch's g first, so each chunk is run again for its share of Hg;
3. ``sub_batches`` forward/backward passes for ZiCo's per-weight gradient mean |g| and std;
4. one float64 forward/backward of |W| on an all-ones input with batch norm made an identity (SynFlow).

Statistics come in groups (``STATISTIC_GROUPS``): ``needs`` (the keys a formula reads) computes only
the groups those keys read, and the keys of the other groups are absent from the result. A group
that fails on a model (torch has no double backward for Hardswish, so no ``hess_grad``) is recorded in
``NetworkStatistics.unavailable`` with a one-line reason and its keys are absent; every other group is
still computed. A formula reading an absent key is undefined (NaN) on that arch.

Conventions, as NASLib computes the Suite-Zero scores: the model is deep-copied (the caller's model is
never touched) and put in train mode, so batch norm normalises with batch statistics; in-place
activations of the copy are made out-of-place so that stored activations are the true layer outputs;
the loss is ``loss_fn`` or the mean cross-entropy. With batch norm in train mode a sub-batch or chunk
sees other batch statistics, so ``grad`` (whole batch) equals the mean of the sub-batch gradients, and
statistics with ``split_data`` > 1 equal those of the whole batch, only for networks without it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Collection, Sequence

import torch
from torch import nn

from autoproxy.errors import StatisticsError
from autoproxy.nodes import (LossFn, NodeCall, as_bcp, checked_loss, chunks, fans, flat, flat_weight, kind, logits,
                             node_calls, node_params, node_weights, nodes, require_nodes, train_copy)

DEFAULT_SUB_BATCHES = 4  # equal sub-batches for ZiCo's gradient mean |g| and std
# Bumped whenever the set or meaning of the statistics, or the minibatch they are computed on,
# changes, so that older caches are refused instead of silently mixed (2: grad_abs_mean added).
STATISTICS_VERSION = 4  # 3: synflow_grad scaled per network, synflow_log_scale added;
                        # 4: image minibatches drawn without repeated samples (autoproxy.data)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

# Every statistics key (node and network level; ``params`` and ``flops`` are both) by the group that
# computes it. ``structure`` is always computed; ``needs`` selects the others.
STATISTIC_GROUPS: dict[str, frozenset[str]] = {
    "structure": frozenset({"weight", "params", "depth", "fan_in", "fan_out", "channels_out_total",
                            "positions_out_total", "channels_in_total", "positions_in_total",
                            "input_post_relu", "num_nodes"}),
    "activations": frozenset({"act_out", "act_in"}),
    "gradients": frozenset({"grad", "grad_act_out", "grad_act_in"}),
    "hessian": frozenset({"hess_grad"}),
    "sub_batches": frozenset({"grad_abs_mean", "grad_std"}),
    "synflow": frozenset({"synflow_grad", "synflow_log_scale"}),
    "jacobian": frozenset({"jacobian_corr", "jacobian_norm"}),
    "kernels": frozenset({"relu_kernel", "act_kernel", "act_cov"}),
    "flops": frozenset({"flops"}),
}
ALL_STATISTICS: frozenset[str] = frozenset().union(*STATISTIC_GROUPS.values())
_GRAPH_GROUPS = frozenset({"gradients", "hessian", "jacobian"})   # need the forward pass's autograd graph


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
    unavailable: dict[str, str] = field(default_factory=dict)   # group -> why it could not be computed


def groups_reading(keys: Collection[str]) -> set[str]:
    """The groups that compute ``keys`` (``structure`` always); an unknown key is refused."""
    unknown = set(keys) - ALL_STATISTICS
    if unknown:
        raise StatisticsError(f"unknown statistics {sorted(unknown)}: known are {sorted(ALL_STATISTICS)}")
    return {"structure"} | {group for group, members in STATISTIC_GROUPS.items() if members & set(keys)}


def unavailable_read(stats: NetworkStatistics, keys: Collection[str]) -> dict[str, str]:
    """The unavailable groups (with their reasons) among those that compute ``keys``."""
    return {group: reason for group, reason in stats.unavailable.items() if STATISTIC_GROUPS[group] & set(keys)}


class _Groups:
    """The groups a call computes, and the reasons of those that failed on this model."""

    def __init__(self, keys: frozenset[str]):
        self.keys = keys
        self.wanted = groups_reading(keys)
        self.unavailable: dict[str, str] = {}

    def __contains__(self, group: str) -> bool:
        return group in self.wanted and group not in self.unavailable

    def emits(self, key: str, group: str) -> bool:
        """Whether ``key`` (of ``group``) is asked for and its group succeeded."""
        return key in self.keys and group in self

    def attempt(self, groups: Sequence[str], compute: Callable, *args):
        """``compute(*args)``, or None with ``groups`` recorded as unavailable when it fails. A
        ``StatisticsError`` (bad input, not a model limitation) is raised."""
        try:
            return compute(*args)
        except StatisticsError:
            raise
        except Exception as err:  # any failure of one group leaves the others intact; named in one line
            reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
            for group in groups:
                if group in self.wanted:
                    self.unavailable.setdefault(group, reason)
            return None


@dataclass(frozen=True)
class _Sketch:
    max_channels: int | None
    max_positions: int | None
    seed: int


_Keep = tuple[torch.Tensor | None, torch.Tensor | None]     # channel and position subsets (None: all)
# The activation tensors and the group that emits each.
_ACTIVATION_KEYS = {"act_out": "activations", "grad_act_out": "gradients", "act_in": "activations",
                    "grad_act_in": "gradients"}
# What a cache's ``max_channels``/``max_positions`` sketch subsamples: a formula reading one of these
# is scored on a cache from a seeded subset of channels and positions (an estimate; fisher is one).
SKETCHED_KEYS = frozenset(_ACTIVATION_KEYS)


@dataclass
class _NodeInfo:
    """What the statistics need of one node beyond its tensors (from the first chunk's call)."""

    name: str
    module: nn.Module
    out_shape: tuple[int, int, int]     # (batch of the chunk, channels, positions)
    in_shape: tuple[int, int, int]
    coded: bool                          # a nonlinearity feeds the node
    code_key: int
    out_keep: _Keep
    in_keep: _Keep


@dataclass
class _Passes:
    """What the forward/backward passes over the chunks gathered, per node in execution order."""

    info: list[_NodeInfo] = field(default_factory=list)
    acts: dict[str, list[list[torch.Tensor]]] = field(default_factory=dict)   # key -> node -> chunks (B,C,P)
    grads: list[torch.Tensor] | None = None                                    # per weight, whole batch
    hess_grads: list[torch.Tensor] | None = None
    jacobians: list[torch.Tensor] = field(default_factory=list)


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
    split_data: int = 1,
) -> NetworkStatistics:
    """The node and network statistics of ``model`` on ``(inputs, targets)`` (see ARCHITECTURE.md).

    ``max_channels``/``max_positions`` sketch the four activation tensors to a seeded subset of
    channels/positions (the same subset for an activation and its gradient); kernels, ``act_cov``
    and the per-weight tensors are always exact. ``needs`` (statistics keys; None: all) computes only
    the groups of ``STATISTIC_GROUPS`` that read them; other keys are absent. ``split_data`` runs the
    batch as that many consecutive chunks (less memory, the same statistics up to float rounding for
    networks without train-mode batch norm).
    """
    _check_batch(inputs, targets, sub_batches)
    groups = _Groups(ALL_STATISTICS if needs is None else frozenset(needs))
    net = _node_weights_only(train_copy(model))
    passes = _main_passes(model, net, inputs, targets, loss_fn, groups, split_data,
                          _Sketch(max_channels, max_positions, seed))
    with torch.enable_grad():            # whatever the caller's mode: these passes differentiate
        if "hessian" in groups and passes.hess_grads is None:
            passes.hess_grads = groups.attempt(["hessian"], _chunked_hessian_gradient, model, net, inputs,
                                               targets, loss_fn, split_data, passes.grads)
        moments = (groups.attempt(["sub_batches"], _sub_batch_grad_moments, model, net, inputs, targets, loss_fn,
                                  sub_batches, split_data) if "sub_batches" in groups else None)
        synflow = (groups.attempt(["synflow"], _scaled_synflow_gradients, model, inputs.shape[1:])
                   if "synflow" in groups else None)
    flops = groups.attempt(["flops"], _flops, model, inputs.shape[1:]) if "flops" in groups else None
    node_stats = _node_statistics(passes, groups, moments, synflow, flops)
    return NetworkStatistics(node_stats, *_network_statistics(model, passes, groups, synflow, flops),
                             unavailable=dict(groups.unavailable))


def _check_batch(inputs: torch.Tensor, targets: torch.Tensor, sub_batches: int) -> None:
    batch = inputs.shape[0]
    if sub_batches < 1 or batch % sub_batches:
        raise StatisticsError(f"batch of {batch} cannot be split into {sub_batches} equal sub-batches")
    if targets.shape[0] != batch:
        raise StatisticsError(f"{batch} inputs but {targets.shape[0]} targets")


def _main_passes(model: nn.Module, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                 loss_fn: LossFn | None, groups: _Groups, split_data: int, sketch: _Sketch) -> _Passes:
    """The hooked forward pass of each chunk and what its graph gives: activations, the Jacobian, the
    loss gradients (summed over chunks, each chunk's mean loss weighted by its share) and, with one
    chunk, Hg from the same graph. Activations and their gradients are sketched chunk by chunk; the
    kernels keep the full output (``kernel_out``) and code source (``code``)."""
    act_grad_keys = [key for key in ("grad_act_out", "grad_act_in") if groups.emits(key, "gradients")]
    kernel_sources = [source for source, keys in (("kernel_out", ("act_kernel", "act_cov")), ("code", ("relu_kernel",)))
                      if any(groups.emits(key, "kernels") for key in keys)]
    kept = [*(("act_out", "act_in") if "activations" in groups else ()), *kernel_sources, *act_grad_keys]
    passes = _Passes(acts=dict.fromkeys(kept))
    for part, chunk in enumerate(chunks(inputs, targets, split_data)):
        with torch.set_grad_enabled(bool(_GRAPH_GROUPS & groups.wanted)):
            _chunk_pass(model, net, chunk, loss_fn, groups, passes, part, split_data == 1, act_grad_keys, sketch)
    return passes


def _chunk_pass(model: nn.Module, net: nn.Module, chunk: tuple[torch.Tensor, torch.Tensor, float],
                loss_fn: LossFn | None, groups: _Groups, passes: _Passes, part: int, whole_batch: bool,
                act_grad_keys: list[str], sketch: _Sketch) -> None:
    """One chunk's forward pass and what its graph gives; the graph is freed on return, before the
    next chunk runs."""
    chunk_inputs, chunk_targets, share = chunk
    x = chunk_inputs.detach().clone().requires_grad_("jacobian" in groups or "grad_act_in" in act_grad_keys)
    with node_calls(net, keep_tensors=bool(passes.acts)) as calls:
        output = logits(net(x))
    require_nodes(model, calls)
    _record_calls(passes, calls, part, sketch)
    loss = checked_loss(model, loss_fn, output, chunk_targets) * share
    if "jacobian" in groups:
        jacobian = groups.attempt(["jacobian"], _input_jacobian, output, x)
        if jacobian is not None:
            passes.jacobians.append(jacobian)
    if "gradients" in groups or "hessian" in groups:
        weights = [weight for call in calls for weight in node_weights(call.module)]
        acts = [call.act_out for call in calls] * ("grad_act_out" in act_grad_keys) + \
               [call.act_in for call in calls] * ("grad_act_in" in act_grad_keys)
        groups.attempt(["gradients", "hessian"], _gradient_pass, passes, groups, loss, weights, acts,
                       act_grad_keys, whole_batch)


def _record_calls(passes: _Passes, calls: list[NodeCall], part: int, sketch: _Sketch) -> None:
    """The nodes of the first chunk (later chunks must run the same ones, with the same sketch) and
    the activations kept."""
    if part == 0:
        passes.info = [_node_info(index, call, sketch) for index, call in enumerate(calls)]
        for key in passes.acts:
            passes.acts[key] = [[] for _ in calls]
    elif [call.name for call in calls] != [info.name for info in passes.info]:
        raise StatisticsError("the model runs other layers on another chunk of the batch; use split_data=1")
    sources = {"act_out": lambda call, info: _take(as_bcp(call.act_out, call.module), info.out_keep),
               "act_in": lambda call, info: _take(as_bcp(call.act_in, call.module), info.in_keep),
               "kernel_out": lambda call, info: as_bcp(call.act_out, call.module),
               "code": lambda call, info: as_bcp(call.act_in if call.code_source is None else call.code_source,
                                                 call.module)}
    for key in set(passes.acts) & set(sources):
        for index, (call, info) in enumerate(zip(calls, passes.info)):
            passes.acts[key][index].append(sources[key](call, info).detach())


def _node_info(index: int, call: NodeCall, sketch: _Sketch) -> _NodeInfo:
    """A node's name, module, (B, C, P) shapes, code and its seeded sketch: an activation and its
    gradient keep the same channels and positions."""
    out_shape = tuple(as_bcp(call.act_out, call.module).shape)
    in_shape = tuple(as_bcp(call.act_in, call.module).shape)
    generator = torch.Generator().manual_seed(sketch.seed * 1_000_003 + index)
    out_keep = _sketch_indices(out_shape, sketch.max_channels, sketch.max_positions, generator)
    in_keep = _sketch_indices(in_shape, sketch.max_channels, sketch.max_positions, generator)
    return _NodeInfo(call.name, call.module, out_shape, in_shape, call.code_source is not None, call.code_key,
                     out_keep, in_keep)


def _gradient_pass(passes: _Passes, groups: _Groups, loss: torch.Tensor, weights: list[nn.Parameter],
                   acts: list[torch.Tensor], act_grad_keys: list[str], whole_batch: bool) -> None:
    """One chunk's dL/dW (added to the sum over chunks) and the dL/d activations asked for; with the
    whole batch in one chunk, Hg from the same graph as well."""
    hessian_here = whole_batch and "hessian" in groups
    first = _grads(loss, weights + acts, create_graph=hessian_here)
    grads = first[: len(weights)]
    passes.grads = _accumulate(passes.grads, [grad.detach() for grad in grads])
    for offset, key in enumerate(act_grad_keys):
        for index, info in enumerate(passes.info):
            grad = as_bcp(first[len(weights) + offset * len(passes.info) + index].detach(), info.module)
            passes.acts[key][index].append(_take(grad, info.out_keep if key == "grad_act_out" else info.in_keep))
    if hessian_here:
        passes.hess_grads = groups.attempt(["hessian"], _hessian_gradient, weights, passes.grads, grads)


def _accumulate(total: list[torch.Tensor] | None, part: list[torch.Tensor]) -> list[torch.Tensor]:
    """Elementwise sum of per-weight tensors over chunks (the first chunk's as they are)."""
    return part if total is None else [a + b for a, b in zip(total, part)]


def _chunked_hessian_gradient(model: nn.Module, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                              loss_fn: LossFn | None, split_data: int,
                              grads: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """Hg over several chunks: with the whole batch's g fixed, each chunk's share of d(g·dL/dW)/dW."""
    if grads is None:
        raise RuntimeError("no loss gradient to multiply the Hessian with")
    total = None
    for chunk in chunks(inputs, targets, split_data):
        total = _accumulate(total, _hessian_share(model, net, chunk, loss_fn, grads))
    return total


def _hessian_share(model: nn.Module, net: nn.Module, chunk: tuple[torch.Tensor, torch.Tensor, float],
                   loss_fn: LossFn | None, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """One chunk's share of Hg (its double-backward graph is freed on return)."""
    chunk_inputs, chunk_targets, share = chunk
    with node_calls(net, keep_tensors=False) as calls:     # the weights in execution order, as g
        loss = checked_loss(model, loss_fn, logits(net(chunk_inputs)), chunk_targets) * share
    weights = [weight for call in calls for weight in node_weights(call.module)]
    return _hessian_gradient(weights, grads, _grads(loss, weights, create_graph=True))


def _node_statistics(passes: _Passes, groups: _Groups, moments, synflow, flops) -> list[NodeStatistics]:
    """Per node: the tensors and scalars of the groups asked for that succeeded."""
    acts = {key: _concatenated(per_node) for key, per_node in passes.acts.items() if all(per_node)}
    per_weight = _per_node_weights(passes, groups, moments, synflow)
    relu_kernels: dict[int, torch.Tensor] = {}
    result = []
    for index, info in enumerate(passes.info):
        # the weight only when asked: it keeps the network copy's parameters alive
        tensors = {"weight": flat_weight(info.module).detach()} if "weight" in groups.keys else {}
        tensors.update({key: values[index] for key, values in per_weight.items()})
        tensors.update({key: acts[key][index] for key, group in _ACTIVATION_KEYS.items()
                        if key in acts and groups.emits(key, group)})
        if groups.emits("relu_kernel", "kernels"):
            if info.code_key not in relu_kernels:
                relu_kernels[info.code_key] = relu_kernel(acts["code"][index])
            tensors["relu_kernel"] = relu_kernels[info.code_key].clone()
        if groups.emits("act_kernel", "kernels"):
            tensors["act_kernel"] = activation_kernel(acts["kernel_out"][index])
        if groups.emits("act_cov", "kernels"):
            tensors["act_cov"] = channel_covariance(acts["kernel_out"][index])
        scalars = _node_scalars(info, index, len(passes.info))
        if flops is not None:
            scalars["flops"] = float(flops[0].get(info.name, math.nan))
        result.append(NodeStatistics(info.name, kind(info.module), _as_float32(tensors), scalars))
    return result


def _per_node_weights(passes: _Passes, groups: _Groups, moments, synflow) -> dict[str, list[torch.Tensor]]:
    """The per-weight statistics asked for, flattened per node (weights of a node concatenated)."""
    by_weight: dict[str, list[torch.Tensor]] = {}
    if groups.emits("grad", "gradients") and passes.grads is not None:
        by_weight["grad"] = passes.grads
    if groups.emits("hess_grad", "hessian") and passes.hess_grads is not None:
        by_weight["hess_grad"] = passes.hess_grads
    if moments is not None:
        by_weight.update({key: values for key, values in zip(("grad_abs_mean", "grad_std"), moments)
                          if groups.emits(key, "sub_batches")})
    result: dict[str, list[torch.Tensor]] = {key: [] for key in by_weight}
    start = 0
    for info in passes.info:
        count = len(node_weights(info.module))
        for key, values in by_weight.items():
            result[key].append(flat(info.module, values[start:start + count]))
        start += count
    if synflow is not None and groups.emits("synflow_grad", "synflow"):
        result["synflow_grad"] = [synflow[0][info.name] for info in passes.info]
    return result


def _concatenated(per_node: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Each node's chunks concatenated over the batch, node by node, so that only one node's copy is
    held twice at a time."""
    for index, parts in enumerate(per_node):
        per_node[index] = torch.cat(parts) if len(parts) > 1 else parts[0]
    return per_node


def _network_statistics(model: nn.Module, passes: _Passes, groups: _Groups, synflow,
                        flops) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Network tensors and scalars of the groups asked for that succeeded."""
    tensors: dict[str, torch.Tensor] = {}
    scalars = {"params": sum(p.numel() for p in model.parameters()) / 1e6, "num_nodes": float(len(passes.info))}
    if "jacobian" in groups:
        jacobian = torch.cat(passes.jacobians)
        if groups.emits("jacobian_corr", "jacobian"):
            tensors["jacobian_corr"] = torch.corrcoef(jacobian.double()).float().cpu()
        if groups.emits("jacobian_norm", "jacobian"):
            scalars["jacobian_norm"] = float(jacobian.norm()) / jacobian.shape[0]
    if synflow is not None and groups.emits("synflow_log_scale", "synflow"):
        scalars["synflow_log_scale"] = synflow[1]
    if flops is not None:
        scalars["flops"] = flops[1]
    return tensors, scalars


def relu_kernel(code: torch.Tensor) -> torch.Tensor:
    """NWOT's c cᵀ + (1−c)(1−c)ᵀ for c = [code > 0] per sample: D − Hamming distance, exact.

    One matmul: with s = 2c − 1 in {±1}, c cᵀ + (1−c)(1−c)ᵀ = (s sᵀ + D) / 2; every partial sum is an
    integer of magnitude ≤ D, so float32 is exact below 2^24 entries (float64 beyond).
    """
    flat_code = code.reshape(code.shape[0], -1)
    signs = (flat_code > 0).to(torch.float64 if flat_code.shape[1] >= 2**24 else torch.float32).mul_(2).sub_(1)
    return ((signs @ signs.T + flat_code.shape[1]) / 2).float()


def activation_kernel(act_out: torch.Tensor) -> torch.Tensor:
    """A Aᵀ / D for A the per-sample flattened activation (D entries)."""
    flat_act = act_out.reshape(act_out.shape[0], -1)
    return flat_act @ flat_act.T / flat_act.shape[1]


def channel_covariance(act_out: torch.Tensor) -> torch.Tensor:
    """Covariance (N − 1 normalised) of output channels over all batch × position samples."""
    channels = act_out.shape[1]
    samples = act_out.transpose(0, 1).reshape(channels, -1)
    if samples.shape[1] < 2:
        return torch.zeros(channels, channels, device=act_out.device)
    return torch.cov(samples)


def synflow_gradients(model: nn.Module, input_shape: torch.Size | tuple[int, ...]) -> dict[str, torch.Tensor]:
    """dR/dW per node name (flattened, float64) for R = sum(net_|W|(ones)), as SynFlow computes it.

    As zero-cost-nas/NASLib ``synflow``: batch norm is bypassed, every state tensor (parameters and
    buffers) is replaced by its absolute value, and one float64 all-ones sample is propagated. The
    bypass makes each batch norm an exact identity transform rather than skipping its ``forward``, so
    that an activation fused into a norm module (timm's ``BatchNormAct2d``) still runs.
    """
    net = copy.deepcopy(model).double()
    net.train(model.training)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    for module in net.modules():
        if isinstance(module, _BATCH_NORMS):
            _make_identity(module)
    names = {module: name for name, module in net.named_modules()}
    found = {names[module]: module for module in nodes(net)}
    weights = [weight.requires_grad_(True) for module in found.values() for weight in node_weights(module)]
    device = next((tensor.device for tensor in net.state_dict().values()), torch.device("cpu"))
    output = logits(net(torch.ones(1, *input_shape, dtype=torch.float64, device=device)))
    grads = _grads(output.sum(), weights)
    result, start = {}, 0
    for name, module in found.items():
        count = len(node_weights(module))
        result[name] = flat(module, [grad.detach() for grad in grads[start:start + count]])
        start += count
    return result


def _make_identity(norm: nn.Module) -> None:
    """Batch norm as y = x exactly: eval mode with mean 0, variance 1, eps 0, weight 1, bias 0."""
    norm.eval()
    norm.eps = 0.0
    with torch.no_grad():
        device = norm.weight.device if norm.weight is not None else None
        norm.running_mean = torch.zeros(norm.num_features, dtype=torch.float64, device=device)
        norm.running_var = torch.ones(norm.num_features, dtype=torch.float64, device=device)
        if norm.weight is not None:
            norm.weight.fill_(1.0)
        if norm.bias is not None:
            norm.bias.fill_(0.0)


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
    scaled = {name: torch.ldexp(g, torch.tensor(-exponent, dtype=torch.float64, device=g.device)).float() for name, g in raw.items()}
    return scaled, exponent * math.log(2.0)


def _node_weights_only(net: nn.Module) -> nn.Module:
    """Only node weights need gradients: batch-norm affine and bias gradients are skipped in every
    backward (a few reductions per layer; the statistics are bit-identical)."""
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    for module in nodes(net):
        for weight in node_weights(module):
            weight.requires_grad_(True)
    return net


def _input_jacobian(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The per-sample input Jacobians of sum(output), one row per sample (jacov)."""
    return torch.autograd.grad(output.sum(), x, retain_graph=True)[0].reshape(x.shape[0], -1)


def _grads(output: torch.Tensor, inputs: list[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    """d output / d inputs, zeros for inputs the output does not depend on."""
    grads = torch.autograd.grad(output, inputs, create_graph=create_graph, retain_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(tensor) if grad is None else grad for tensor, grad in zip(inputs, grads)]


def _hessian_gradient(weights: list[nn.Parameter], g: list[torch.Tensor],
                      grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """GraSP's Hg: d/dW of sum(stop_grad(g) · dL/dW) for ``grads`` = dL/dW still attached to its graph
    (the whole batch's loss, or one chunk's share of it)."""
    connected = [(fixed, grad) for fixed, grad in zip(g, grads) if grad.requires_grad]
    if not connected:
        return [torch.zeros_like(weight) for weight in weights]
    z = sum((fixed.detach() * grad).sum() for fixed, grad in connected)
    return [h.detach() for h in _grads(z, weights)]


def _sub_batch_grad_moments(model: nn.Module, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                            loss_fn: LossFn | None, sub_batches: int,
                            split_data: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-weight mean of |dL/dW| and population std (ddof 0, as ZiCo's ``np.std``) over equal
    sub-batches; with ``split_data`` > ``sub_batches`` each sub-batch is itself run in pieces.

    ZiCo's signal is the mean *absolute* sub-batch gradient, which the whole-batch ``grad`` cannot give.
    """
    pieces = -(-split_data // sub_batches)
    weights = [weight for module in nodes(net) for weight in node_weights(module)]
    per_batch = []
    for sub_inputs, sub_targets, _ in chunks(inputs, targets, sub_batches):
        total = None
        for piece_inputs, piece_targets, share in chunks(sub_inputs, sub_targets, pieces):
            with node_calls(net, keep_tensors=False) as calls:     # the weights in execution order
                loss = checked_loss(model, loss_fn, logits(net(piece_inputs)), piece_targets) * share
            weights = [weight for call in calls for weight in node_weights(call.module)]
            total = _accumulate(total, [grad.detach() for grad in _grads(loss, weights)])
        per_batch.append(total)
    stacked = [torch.stack([grads[i].flatten() for grads in per_batch]) for i in range(len(weights))]
    return [g.abs().mean(0) for g in stacked], [g.std(0, unbiased=False) for g in stacked]


def _sketch_indices(
    shape: tuple[int, int, int], max_channels: int | None, max_positions: int | None, generator: torch.Generator
) -> _Keep:
    """Seeded channel and position subsets for a (B, C, P) shape (None: all)."""

    def subset(size: int, limit: int | None) -> torch.Tensor | None:
        if limit is None or size <= limit:
            return None
        return torch.randperm(size, generator=generator)[:limit].sort().values

    return subset(shape[1], max_channels), subset(shape[2], max_positions)


def _take(tensor: torch.Tensor, keep: _Keep) -> torch.Tensor:
    channels, positions = keep
    if channels is not None:
        tensor = tensor[:, channels]
    if positions is not None:
        tensor = tensor[:, :, positions]
    return tensor.contiguous()


def _node_scalars(info: _NodeInfo, index: int, count: int) -> dict[str, float]:
    fan_in, fan_out = fans(info.module)
    return {
        "params": node_params(info.module),
        "depth": index / (count - 1) if count > 1 else 0.0,
        "fan_in": fan_in,
        "fan_out": fan_out,
        "channels_out_total": float(info.out_shape[1]),
        "positions_out_total": float(info.out_shape[2]),
        "channels_in_total": float(info.in_shape[1]),
        "positions_in_total": float(info.in_shape[2]),
        "input_post_relu": float(info.coded),
    }


def _flops(model: nn.Module, input_shape: torch.Size | tuple[int, ...]) -> tuple[dict[str, float], float]:
    """FLOPs per module name and of the whole network (millions), for one sample."""
    from autoproxy.flops import count_flops, module_flops

    return module_flops(model, (1, *input_shape)), float(count_flops(model, (1, *input_shape)))


def _as_float32(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Statistics are float32 on the CPU whatever device the network ran on."""
    return {name: tensor.detach().float().cpu().contiguous() for name, tensor in tensors.items()}
