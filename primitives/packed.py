"""Pack the statistics of many architectures into a few flat tensors.

Why: the evaluator then runs each primitive once for all nodes of all architectures (segment
reductions, batched linear algebra) instead of once per node in a Python loop.

Layout (N nodes over A archs, batch B):

* param leaves: one flat tensor each, ``param_seg`` gives the node of every entry (and when all nodes
  keep the same count S, as under a sketch, ``param_width`` = S lets it be viewed as (N, S) rows); with
  ``param_sample=S`` each node keeps a fixed seeded sample of at most S entries and ``param_scale``
  (true / kept count) rescales sums;
* activation leaves: buckets of nodes with equal (sketched) shape, each ``(n_b, B, C, P)``, with the
  true / kept channel and position ratios that rescale sums;
* ``act_cov``: buckets by channel count, ``(n_b, C, C)``; node kernels ``(N, B, B)``;
* node scalars ``(N,)``, network kernels ``(A, B, B)``, network scalars ``(A,)``.

Search-time sketches (``SEARCH_SKETCH``; ``pack`` without them is exact). Memory traffic over ~60 M
floats per param statistic, and LAPACK on thousands of 64×64 matrices, cost far more than Python:

* ``param_sample=S``: a fixed seeded sample of at most S entries per node (the same entries for every
  param statistic); sums are rescaled by true / kept entries;
* ``batch_sample=b``: one fixed seeded subset of b of the B samples for every node and arch: node and
  network kernels become their b×b principal submatrices (a principal submatrix of ``net_ksum`` is
  the ``net_ksum`` of the submatrices, so the sketch commutes with it) and activations keep those b
  samples; sums over the batch axis (and ``trace``) are rescaled by B / b;
* ``channel_sample=c``: each node's ``act_cov`` becomes the c×c principal submatrix of a fixed
  seeded subset of its channels (``trace`` rescaled by C / c).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from autoproxy.errors import CacheError
from primitives.types import (BUCKETED_IN, BUCKETED_OUT, ActIn, ActOut, ChanMatrix, Kernel, NetKernel, NetScalar,
                              NodeScalar, Param)
from primitives.leaves import leaves_of

# What ``search`` packs with: measured on 128 NB201 cifar10 archs, see benchmarks/evaluator_throughput.py.
SEARCH_SKETCH: dict[str, int] = {"param_sample": 256, "batch_sample": 16, "channel_sample": 16}
_CHANNEL_SALT = 0x5EED
_BATCH_SALT = 0xBA7C


@dataclass
class Bucket:
    """Nodes whose tensors of one family share a shape."""

    node_index: torch.Tensor             # (n_b,) long: global node ids
    tensors: dict[str, torch.Tensor]     # leaf name -> (n_b, *shape)
    chan_scale: torch.Tensor             # (n_b,) true / kept channels (act_cov: rows and columns)
    pos_scale: torch.Tensor              # (n_b,) true / kept positions


@dataclass
class PackedStatistics:
    num_archs: int
    num_nodes: int
    batch: int                                     # samples kept (b of B with batch_sample)
    device: torch.device
    node_arch: torch.Tensor                        # (N,) long: arch of each node
    arch_pad_index: torch.Tensor                   # (A, M) long: node ids, N where padded
    arch_pad_mask: torch.Tensor                    # (A, M) bool: True for a real node
    node_scalars: dict[str, torch.Tensor]          # (N,)
    net_scalars: dict[str, torch.Tensor]           # (A,)
    params: dict[str, torch.Tensor]                # (E,)
    param_seg: torch.Tensor                        # (E,) long
    param_count: torch.Tensor                      # (N,) kept entries per node
    param_scale: torch.Tensor                      # (N,) true / kept entries
    param_width: int | None                        # S when every node keeps S entries (rows view), else None
    kernels: dict[str, torch.Tensor]               # (N, B, B)
    net_kernels: dict[str, torch.Tensor]           # (A, B, B)
    out_buckets: list[Bucket] = field(default_factory=list)
    in_buckets: list[Bucket] = field(default_factory=list)
    cov_buckets: list[Bucket] = field(default_factory=list)
    batch_scale: float = 1.0                       # true / kept samples (B / b)

    def buckets_for(self, shape_class: type) -> list[Bucket]:
        """The bucket list that values of a bucketed shape class are laid out by."""
        if shape_class in BUCKETED_OUT:
            return self.out_buckets
        if shape_class in BUCKETED_IN:
            return self.in_buckets
        if shape_class is ChanMatrix:
            return self.cov_buckets
        raise KeyError(shape_class.__name__)

    def nbytes(self) -> int:
        tensors = [*self.params.values(), *self.kernels.values(), *self.net_kernels.values()]
        for bucket in (*self.out_buckets, *self.in_buckets, *self.cov_buckets):
            tensors.extend(bucket.tensors.values())
        return sum(t.numel() * t.element_size() for t in tensors)


def _require(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise CacheError(f"statistics of {where} lack {key!r}")
    return mapping[key]


def _sample_index(numel: int, keep: int, node_position: int, seed: int) -> torch.Tensor:
    """A fixed subset per (layer position, size): the same arch gets the same sample in any subset."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + node_position * 7919 + numel)
    return torch.randperm(numel, generator=generator)[:keep].sort().values


def _principal(matrix: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """The principal submatrix on ``index`` (all of it for None), over the last two axes."""
    return matrix if index is None else matrix[..., index[:, None], index[None, :]]


def _bucketise(groups: dict[tuple, list[tuple[int, dict[str, torch.Tensor], float, float]]],
               device: torch.device) -> list[Bucket]:
    buckets = []
    for members in groups.values():
        buckets.append(Bucket(
            node_index=torch.tensor([m[0] for m in members], dtype=torch.long, device=device),
            tensors={name: torch.stack([m[1][name] for m in members]).to(device, torch.float32)
                     for name in members[0][1]},
            chan_scale=torch.tensor([m[2] for m in members], dtype=torch.float32, device=device),
            pos_scale=torch.tensor([m[3] for m in members], dtype=torch.float32, device=device),
        ))
    return buckets


def _batch_size(stats: Sequence) -> int:
    """B, from the first node's output activation (every node is checked against it while packing)."""
    if not stats[0].nodes:
        raise CacheError("statistics of arch #0 have no nodes")
    return int(_require(stats[0].nodes[0].tensors, leaves_of(ActOut)[0].key, "arch #0 node 0").shape[0])


def pack(stats: Sequence, device: str | torch.device = "cpu", *, param_sample: int | None = None,
         batch_sample: int | None = None, channel_sample: int | None = None, seed: int = 0) -> PackedStatistics:
    """Pack a list of ``NetworkStatistics`` (one per arch, in order) for the evaluator.

    The ``*_sample`` sizes are the search-time sketches of the module docstring (``SEARCH_SKETCH``);
    ``None`` keeps everything (exact), as the final report needs.
    """
    if not stats:
        raise CacheError("pack needs at least one architecture's statistics")
    for name, size in (("param_sample", param_sample), ("batch_sample", batch_sample),
                       ("channel_sample", channel_sample)):
        if size is not None and size < 1:
            raise CacheError(f"pack: {name} must be at least 1, got {size}")
    device = torch.device(device)
    full_batch = _batch_size(stats)
    batch_index = None
    if batch_sample is not None and batch_sample < full_batch:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + _BATCH_SALT)
        batch_index = torch.randperm(full_batch, generator=generator)[:batch_sample].sort().values
    param_names = [leaf.key for leaf in leaves_of(Param)]
    node_scalar_names = [leaf.key for leaf in leaves_of(NodeScalar)]
    out_names = [leaf.key for leaf in leaves_of(ActOut)]
    in_names = [leaf.key for leaf in leaves_of(ActIn)]
    kernel_names = [leaf.key for leaf in leaves_of(Kernel)]
    (cov_name,) = [leaf.key for leaf in leaves_of(ChanMatrix)]     # channel sampling assumes one such leaf

    node_arch: list[int] = []
    node_scalars: dict[str, list[float]] = {n: [] for n in node_scalar_names}
    params: dict[str, list[torch.Tensor]] = {n: [] for n in param_names}
    param_count: list[int] = []
    param_scale: list[float] = []
    kernels: dict[str, list[torch.Tensor]] = {n: [] for n in kernel_names}
    out_groups: dict[tuple, list] = {}
    in_groups: dict[tuple, list] = {}
    cov_groups: dict[tuple, list] = {}
    for arch, net in enumerate(stats):
        if not net.nodes:
            raise CacheError(f"statistics of arch #{arch} have no nodes")
        for position, node in enumerate(net.nodes):
            where = f"arch #{arch} node {node.name!r}"
            global_id = len(node_arch)
            node_arch.append(arch)
            for name in node_scalar_names:
                node_scalars[name].append(float(_require(node.scalars, name, where)))
            numel = _require(node.tensors, param_names[0], where).numel()     # the same for every param leaf
            index = None
            if param_sample is not None and numel > param_sample:
                index = _sample_index(numel, param_sample, position, seed)
            for name in param_names:
                flat = _require(node.tensors, name, where).reshape(-1)
                if flat.numel() != numel:
                    raise CacheError(f"{where}: {name!r} has {flat.numel()} entries, {param_names[0]} {numel}")
                params[name].append(flat if index is None else flat[index])
            kept = numel if index is None else len(index)
            param_count.append(kept)
            param_scale.append(numel / kept)
            for name in kernel_names:
                kernels[name].append(_principal(_require(node.tensors, name, where), batch_index))
            act_out = {n: _require(node.tensors, n, where) for n in out_names}
            act_in = {n: _require(node.tensors, n, where) for n in in_names}
            for acts, groups, chan_key, pos_key in ((act_out, out_groups, "channels_out_total",
                                                    "positions_out_total"),
                                                   (act_in, in_groups, "channels_in_total",
                                                    "positions_in_total")):
                shapes = {tuple(t.shape) for t in acts.values()}
                if len(shapes) != 1 or len(next(iter(shapes))) != 3:
                    raise CacheError(f"{where}: activation shapes {sorted(shapes)} differ or are not 3-d")
                shape = next(iter(shapes))
                if shape[0] != full_batch:
                    raise CacheError(f"{where}: batch {shape[0]} differs from {full_batch}")
                if batch_index is not None:
                    acts = {n: t[batch_index] for n, t in acts.items()}
                groups.setdefault(tuple(next(iter(acts.values())).shape), []).append((
                    global_id, acts, node.scalars[chan_key] / shape[1], node.scalars[pos_key] / shape[2]))
            cov = _require(node.tensors, cov_name, where)
            channels = cov.shape[-1]
            if channel_sample is not None and channels > channel_sample:
                cov = _principal(cov, _sample_index(channels, channel_sample, position, seed + _CHANNEL_SALT))
            cov_groups.setdefault(tuple(cov.shape), []).append(
                (global_id, {cov_name: cov}, channels / cov.shape[-1], 1.0))

    num_nodes, num_archs = len(node_arch), len(stats)
    node_arch_t = torch.tensor(node_arch, dtype=torch.long)
    counts = torch.bincount(node_arch_t, minlength=num_archs)
    width = int(counts.max())
    pad_index = torch.full((num_archs, width), num_nodes, dtype=torch.long)
    starts = torch.cumsum(counts, 0) - counts
    for arch in range(num_archs):
        pad_index[arch, : counts[arch]] = torch.arange(int(starts[arch]), int(starts[arch] + counts[arch]))

    def f32(values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32).to(device)

    return PackedStatistics(
        num_archs=num_archs, num_nodes=num_nodes, device=device,
        batch=full_batch if batch_index is None else len(batch_index),
        batch_scale=1.0 if batch_index is None else full_batch / len(batch_index),
        node_arch=node_arch_t.to(device), arch_pad_index=pad_index.to(device),
        arch_pad_mask=(pad_index < num_nodes).to(device),
        node_scalars={n: f32(v) for n, v in node_scalars.items()},
        net_scalars={leaf.key: f32([float(_require(s.scalars, leaf.key, f"arch #{i}"))
                                    for i, s in enumerate(stats)])
                     for leaf in leaves_of(NetScalar)},
        params={n: torch.cat(v).to(device, torch.float32) for n, v in params.items()},
        param_seg=torch.repeat_interleave(torch.arange(num_nodes), torch.tensor(param_count)).to(device),
        param_count=f32(param_count), param_scale=f32(param_scale),
        param_width=param_count[0] if len(set(param_count)) == 1 else None,
        kernels={n: torch.stack(v).to(device, torch.float32) for n, v in kernels.items()},
        net_kernels={leaf.key: _principal(torch.stack([_require(s.tensors, leaf.key, f"arch #{i}")
                                                       for i, s in enumerate(stats)]), batch_index
                                          ).to(device, torch.float32)
                     for leaf in leaves_of(NetKernel)},
        out_buckets=_bucketise(out_groups, device),
        in_buckets=_bucketise(in_groups, device),
        cov_buckets=_bucketise(cov_groups, device),
    )
