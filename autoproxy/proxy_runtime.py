"""A torch-only interpreter of proxy expressions on ONE network's statistics.

Why it exists: an exported proxy must run where only torch is installed. ``autoproxy export --python``
copies this file verbatim (with ``autoproxy/statistics.py`` and ``autoproxy/flops.py``) into a
standalone module, together with the expression as JSON data. So this module imports nothing but
torch and the standard library, and is tested against the packed evaluator of ``primitives/``
(the engine) on random expressions.

Values: a node-level value is a list with one tensor per node, each holding that node's unit
(Param ``(E,)``, activations ``(B, C, P)``, ``(B, C)``, ``(C,)``, ``(B,)``, kernels ``(B, B)``,
``act_cov`` ``(C, C)``, node scalars ``()``); a network-level value is one tensor. A constant is a
0-d tensor; at node level it stands for the same value on every node. Statistics are assumed
unsketched (``compute_statistics`` without ``max_channels``/``max_positions``), so sums need no
rescaling. The semantics (protected ``log``/``inv``/``div``, the ``exp`` clamp, NaN for non-finite
matrices) are those of ``primitives/catalog.py``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

RUNTIME_EPS = 1e-12
RUNTIME_FLAT_RTOL = 1e-5
RUNTIME_RIDGE = 1e-5

NODE_TENSOR_LEAVES = frozenset({
    "weight", "grad", "grad_abs_mean", "grad_std", "hess_grad", "synflow_grad", "act_out", "grad_act_out",
    "act_in", "grad_act_in", "relu_kernel", "act_kernel", "act_cov"})
NODE_SCALAR_LEAVES = frozenset({
    "params", "flops", "depth", "fan_in", "fan_out", "channels_out_total", "positions_out_total",
    "channels_in_total", "positions_in_total", "input_post_relu"})
NETWORK_TENSOR_LEAVES = {"jacobian_corr": "jacobian_corr"}
NETWORK_SCALAR_LEAVES = {"net_params": "params", "net_flops": "flops", "jacobian_norm": "jacobian_norm",
                         "num_nodes": "num_nodes", "synflow_log_scale": "synflow_log_scale"}


class ProxyRuntimeError(ValueError):
    """An expression document this interpreter cannot run (unknown name, malformed node)."""


# ---------------------------------------------------------------- elementwise
def _protected_log(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x == 0, torch.zeros_like(x), torch.log(x.abs()))


def _protected_inv(x: torch.Tensor) -> torch.Tensor:
    small = x.abs() < RUNTIME_EPS
    return torch.where(small, torch.zeros_like(x), 1.0 / torch.where(small, torch.ones_like(x), x))


def _protected_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    small = b.abs() < RUNTIME_EPS
    return torch.where(small, torch.zeros_like(a * b), a / torch.where(small, torch.ones_like(b), b))


def _standardise_unit(x: torch.Tensor) -> torch.Tensor:
    mean, std = x.mean(), x.std(unbiased=False)
    if std <= RUNTIME_EPS + RUNTIME_FLAT_RTOL * mean.abs():
        return torch.zeros_like(x)
    return (x - mean) / std.clamp(min=RUNTIME_EPS)


def _normalise_unit(x: torch.Tensor) -> torch.Tensor:
    low, high = x.amin(), x.amax()
    span = high - low
    if span <= RUNTIME_EPS + RUNTIME_FLAT_RTOL * torch.maximum(low.abs(), high.abs()):
        return torch.zeros_like(x)
    return (x - low) / span.clamp(min=RUNTIME_EPS)


# ---------------------------------------------------------------- matrices (one unit)
def _matrix_is_finite(m: torch.Tensor) -> bool:
    return bool(torch.isfinite(m).all())


def _nan() -> torch.Tensor:
    return torch.tensor(float("nan"))


def _logdet(m: torch.Tensor) -> torch.Tensor:
    if not _matrix_is_finite(m):
        return _nan()
    sign, logabs = torch.linalg.slogdet(m)
    return torch.full_like(logabs, float("-inf")) if sign == 0 else logabs


def _symmetric_eigvals(m: torch.Tensor) -> torch.Tensor | None:
    if not _matrix_is_finite(m):
        return None
    return torch.linalg.eigvalsh(0.5 * (m + m.T))


def _eig_min(m: torch.Tensor) -> torch.Tensor:
    values = _symmetric_eigvals(m)
    return _nan() if values is None else values[0]


def _eig_max(m: torch.Tensor) -> torch.Tensor:
    values = _symmetric_eigvals(m)
    return _nan() if values is None else values[-1]


def _spec_entropy(m: torch.Tensor) -> torch.Tensor:
    values = _symmetric_eigvals(m)
    if values is None:
        return _nan()
    values = values.clamp(min=0)
    p = values / values.sum().clamp(min=RUNTIME_EPS)
    return -(p * _protected_log(p)).sum()


def _offdiag_mean(m: torch.Tensor) -> torch.Tensor:
    size = m.shape[-1]
    if size < 2:
        return torch.zeros((), dtype=m.dtype)
    return (m.sum() - m.diagonal().sum()) / (size * (size - 1))


def _corr(m: torch.Tensor) -> torch.Tensor:
    d = m.diagonal().abs().sqrt()
    return _protected_div(m, d[:, None] * d[None, :])


def _ridge(m: torch.Tensor) -> torch.Tensor:
    return m + RUNTIME_RIDGE * torch.eye(m.shape[-1], dtype=m.dtype)


def _minv(m: torch.Tensor) -> torch.Tensor:
    if not _matrix_is_finite(m):
        return torch.full_like(m, float("nan"))
    inverse, info = torch.linalg.inv_ex(m)
    return inverse if int(info) == 0 else torch.full_like(m, float("nan"))


# ---------------------------------------------------------------- lifting to node lists
def _each(value: Any, fn: Callable) -> Any:
    return [fn(v) for v in value] if isinstance(value, list) else fn(value)


def _pairwise(a: Any, b: Any, fn: Callable) -> Any:
    if not isinstance(a, list) and not isinstance(b, list):
        return fn(a, b)
    count = len(a) if isinstance(a, list) else len(b)
    left = a if isinstance(a, list) else [a] * count
    right = b if isinstance(b, list) else [b] * count
    return [fn(x, y) for x, y in zip(left, right)]


def _node_vector(value: Any, count: int) -> torch.Tensor:
    """Node scalars as one (N,) vector; a constant stands for the same value on every node."""
    return torch.stack(value) if isinstance(value, list) else value.expand(count).clone()


UNARY_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "abs": torch.abs, "square": torch.square, "sqrt": lambda x: x.abs().sqrt(), "log": _protected_log,
    "exp": lambda x: torch.exp(x.clamp(max=50.0)), "neg": torch.neg, "inv": _protected_inv,
    "sigmoid": torch.sigmoid, "relu": torch.relu, "sign": torch.sign,
    "standardise": _standardise_unit, "normalise": _normalise_unit,
    "node_sum": torch.sum, "node_mean": torch.mean, "node_std": lambda x: x.std(unbiased=False),
    "node_l1": lambda x: x.abs().sum(), "node_l2": lambda x: x.square().sum().sqrt(),
    "sum_pos": lambda x: x.sum(-1), "mean_pos": lambda x: x.mean(-1),
    "mean_batch": lambda x: x.mean(0), "std_batch": lambda x: x.std(0, unbiased=False),
    "sum_chan": lambda x: x.sum(-1), "mean_chan": lambda x: x.mean(-1),
    "logdet": _logdet, "trace": lambda m: m.diagonal().sum(), "offdiag_mean": _offdiag_mean,
    "eig_min": _eig_min, "eig_max": _eig_max, "spec_entropy": _spec_entropy,
    "corr": _corr, "ridge": _ridge, "minv": _minv,
}
BINARY_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": _protected_div,
    "min": torch.minimum, "max": torch.maximum,
}
AGGREGATE_OPS = frozenset({"net_sum", "net_mean", "net_std", "net_max", "net_min", "net_median",
                           "net_depth_sum", "net_ksum"})
RUNTIME_OPS = frozenset(UNARY_OPS) | frozenset(BINARY_OPS) | AGGREGATE_OPS


def _aggregate(name: str, value: Any, stats: Any) -> torch.Tensor:
    count = len(stats.nodes)
    if name == "net_ksum":
        return torch.stack(value).sum(0)
    x = _node_vector(value, count)
    if name == "net_sum":
        return x.sum()
    if name == "net_mean":
        return x.mean()
    if name == "net_std":
        return (x - x.mean()).square().mean().sqrt()
    if name == "net_max":
        return x.amax()
    if name == "net_min":
        return x.amin()
    if name == "net_median":
        return x.nanmedian()
    depth = torch.tensor([node.scalars["depth"] for node in stats.nodes], dtype=torch.float32)
    return (x * depth).sum()


def _leaf(name: str, stats: Any) -> Any:
    if name in NODE_TENSOR_LEAVES:
        return [node.tensors[name].float() for node in stats.nodes]
    if name in NODE_SCALAR_LEAVES:
        return [torch.tensor(float(node.scalars[name]), dtype=torch.float32) for node in stats.nodes]
    if name in NETWORK_TENSOR_LEAVES:
        return stats.tensors[NETWORK_TENSOR_LEAVES[name]].float()
    if name in NETWORK_SCALAR_LEAVES:
        return torch.tensor(float(stats.scalars[NETWORK_SCALAR_LEAVES[name]]), dtype=torch.float32)
    raise ProxyRuntimeError(f"unknown leaf {name!r}")


def _value(doc: Any, stats: Any) -> Any:
    if not isinstance(doc, dict):
        raise ProxyRuntimeError(f"expression node must be an object, got {type(doc).__name__}")
    if "leaf" in doc:
        return _leaf(doc["leaf"], stats)
    if "const" in doc:
        return torch.tensor(float(doc["const"]), dtype=torch.float32)
    name, args = doc.get("op"), doc.get("args")
    if name not in RUNTIME_OPS or not isinstance(args, list):
        raise ProxyRuntimeError(f"unknown or malformed operation {name!r}")
    values = [_value(arg, stats) for arg in args]
    if name in BINARY_OPS and len(values) == 2:
        return _pairwise(values[0], values[1], BINARY_OPS[name])
    if len(values) != 1:
        raise ProxyRuntimeError(f"{name!r} takes {2 if name in BINARY_OPS else 1} argument(s), got {len(values)}")
    if name in AGGREGATE_OPS:
        return _aggregate(name, values[0], stats)
    return _each(values[0], UNARY_OPS[name])


def evaluate_expression(doc: dict, stats: Any) -> float:
    """The score of the expression ``doc`` (``{"op", "args"} | {"leaf"} | {"const"}``) on ``stats``.

    ``stats`` is a ``NetworkStatistics`` (anything with ``nodes[i].tensors/.scalars``, ``tensors``
    and ``scalars``). Non-finite results are returned as they are; the caller judges them.
    """
    with torch.no_grad():
        value = _value(doc, stats)
    if isinstance(value, list):
        raise ProxyRuntimeError("expression gives one value per node; its root must aggregate over nodes")
    return float(value)
