"""The slow way, kept as an oracle and as the throughput baseline: one node at a time.

EZNAS-style interpreters run a program per architecture and per layer in Python. Here every node
of every arch gets its own one-node ``PackedStatistics`` (sliced from the packed subset, so the
data are identical), node-level subtrees are evaluated node by node, and only the aggregations see
a whole architecture. The kernels are the evaluator's own (``primitives/kernels.py``); only the
loop differs, so the comparison measures vectorisation and nothing else.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import torch

from primitives.evaluate import EvalResult, judge, terminal_value
from primitives.fold import fold
from primitives.kernels import VARIANTS_BY_KEY
from primitives.packed import Bucket, PackedStatistics


def _slice_buckets(buckets: list[Bucket], keep: torch.Tensor, new_id: torch.Tensor) -> list[Bucket]:
    out = []
    for b in buckets:
        rows = keep[b.node_index]
        if bool(rows.any()):
            out.append(Bucket(new_id[b.node_index[rows]], {k: v[rows] for k, v in b.tensors.items()},
                              b.chan_scale[rows], b.pos_scale[rows]))
    return out


def subset(pk: PackedStatistics, arch: int, nodes: Sequence[int] | None = None) -> PackedStatistics:
    """The packed data of one arch, or of some of its nodes (global node ids), as its own pack."""
    arch_nodes = torch.nonzero(pk.node_arch == arch).flatten()
    ids = arch_nodes if nodes is None else torch.as_tensor(list(nodes), dtype=torch.long, device=pk.device)
    keep = torch.zeros(pk.num_nodes, dtype=torch.bool, device=pk.device)
    keep[ids] = True
    new_id = torch.full((pk.num_nodes,), -1, dtype=torch.long, device=pk.device)
    new_id[ids] = torch.arange(len(ids), device=pk.device)
    entries = keep[pk.param_seg]
    k = len(ids)
    return replace(
        pk, num_archs=1, num_nodes=k,
        node_arch=torch.zeros(k, dtype=torch.long, device=pk.device),
        arch_pad_index=torch.arange(k, device=pk.device)[None],
        arch_pad_mask=torch.ones(1, k, dtype=torch.bool, device=pk.device),
        node_scalars={n: v[ids] for n, v in pk.node_scalars.items()},
        net_scalars={n: v[arch:arch + 1] for n, v in pk.net_scalars.items()},
        params={n: v[entries] for n, v in pk.params.items()},
        param_seg=new_id[pk.param_seg[entries]].to(pk.param_seg.dtype),
        param_count=pk.param_count[ids], param_scale=pk.param_scale[ids],
        kernels={n: v[ids] for n, v in pk.kernels.items()},
        net_kernels={n: v[arch:arch + 1] for n, v in pk.net_kernels.items()},
        out_buckets=_slice_buckets(pk.out_buckets, keep, new_id),
        in_buckets=_slice_buckets(pk.in_buckets, keep, new_id),
        cov_buckets=_slice_buckets(pk.cov_buckets, keep, new_id),
    )


class PerNodeData:
    """One pack per arch and one per node of it, sliced once (not part of any timing)."""

    def __init__(self, pk: PackedStatistics):
        self.archs = [subset(pk, a) for a in range(pk.num_archs)]
        self.nodes = [[subset(arch_pack, 0, [i]) for i in range(arch_pack.num_nodes)] for arch_pack in self.archs]


def _leaf(node) -> Callable:
    return lambda pack, node_packs: terminal_value(pack, node)


def _call(node, args: list[Callable]) -> Callable:
    """How to compute a subtree on one arch's pack: an aggregation runs its argument once per node pack."""
    variant = VARIANTS_BY_KEY[node.name]
    if variant.out_type.level == "network" and variant.in_types[0].level == "node":
        (per_node,) = args
        return lambda pack, node_packs: variant.fn(pack, torch.cat([per_node(p, []) for p in node_packs]))
    return lambda pack, node_packs: variant.fn(pack, *(arg(pack, node_packs) for arg in args))


def evaluate_per_node(tree: Sequence, data: PerNodeData) -> EvalResult:
    """Same result as ``evaluate`` (up to float rounding), computed arch by arch and node by node."""
    run = fold(tree, _leaf, _call)

    def scores() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([run(arch, nodes) for arch, nodes in zip(data.archs, data.nodes)])
    return judge(scores)
