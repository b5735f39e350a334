"""The leaves of the expression language: the statistics of ARCHITECTURE.md, by shape class.

Each leaf has the name it is written with in expressions, its shape class, and the key it has in
``NodeStatistics`` / ``NetworkStatistics`` (network-level names get a ``net_`` prefix in the language
where they would clash with a node-level one). This table is the only list of the statistics the
language reads: packing, evaluation and exported modules (which bundle this file) all take the names
from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from primitives.types import ActIn, ActOut, ChanMatrix, Kernel, NetKernel, NetScalar, NodeScalar, Param


@dataclass(frozen=True)
class Leaf:
    name: str        # as written in expressions
    type: type       # shape class
    key: str         # key in the statistics' tensors / scalars dict


LEAVES: tuple[Leaf, ...] = (
    *(Leaf(n, Param, n) for n in ("weight", "grad", "grad_abs_mean", "grad_std", "hess_grad", "synflow_grad")),
    Leaf("act_out", ActOut, "act_out"),
    Leaf("grad_act_out", ActOut, "grad_act_out"),
    Leaf("act_in", ActIn, "act_in"),
    Leaf("grad_act_in", ActIn, "grad_act_in"),
    Leaf("relu_kernel", Kernel, "relu_kernel"),
    Leaf("act_kernel", Kernel, "act_kernel"),
    Leaf("act_cov", ChanMatrix, "act_cov"),
    *(Leaf(n, NodeScalar, n) for n in (
        "params", "flops", "depth", "fan_in", "fan_out", "channels_out_total", "positions_out_total",
        "channels_in_total", "positions_in_total", "input_post_relu")),
    Leaf("jacobian_corr", NetKernel, "jacobian_corr"),
    Leaf("net_params", NetScalar, "params"),
    Leaf("net_flops", NetScalar, "flops"),
    Leaf("jacobian_norm", NetScalar, "jacobian_norm"),
    Leaf("num_nodes", NetScalar, "num_nodes"),
    Leaf("synflow_log_scale", NetScalar, "synflow_log_scale"),
)
LEAVES_BY_NAME: dict[str, Leaf] = {leaf.name: leaf for leaf in LEAVES}


def leaves_of(shape_class: type) -> list[Leaf]:
    return [leaf for leaf in LEAVES if leaf.type is shape_class]


def statistics_read(tree: Iterable[Any]) -> frozenset[str]:
    """The statistics keys a tree reads, so that ``compute_statistics(needs=...)`` skips the passes of
    the others when one formula is scored on fresh networks."""
    return frozenset(LEAVES_BY_NAME[node.name].key for node in tree if node.name in LEAVES_BY_NAME)
