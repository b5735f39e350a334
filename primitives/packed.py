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
from primitives.leaves import LEAVES, leaves_of

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
    param_seg: torch.Tensor                        # (E,) int32: half the bytes of long (one per weight)
    param_count: torch.Tensor                      # (N,) kept entries per node
    param_scale: torch.Tensor                      # (N,) true / kept entries
    param_width: int | None                        # S when every node keeps S entries (rows view), else None
    kernels: dict[str, torch.Tensor]               # (N, B, B)
    net_kernels: dict[str, torch.Tensor]           # (A, B, B)
    out_buckets: list[Bucket] = field(default_factory=list)
    in_buckets: list[Bucket] = field(default_factory=list)
    cov_buckets: list[Bucket] = field(default_factory=list)
    batch_scale: float = 1.0                       # true / kept samples (B / b)
    missing: dict[str, torch.Tensor] = field(default_factory=dict)   # leaf name -> (A,) bool: archs lacking it

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


def _holder(shape_class: type, node_or_net) -> dict:
    """The dict of a node's or network's statistics that holds leaves of ``shape_class``."""
    scalar = shape_class in (NodeScalar, NetScalar)
    return node_or_net.scalars if scalar else node_or_net.tensors


def _presence(stats: Sequence) -> dict[str, list[bool]]:
    """Per leaf name, per arch: whether the statistics hold it (on every node, for node leaves). A
    statistic that was not asked for, or whose group could not be computed, is absent."""
    presence = {}
    for leaf in LEAVES:
        if leaf.type in (NetKernel, NetScalar):
            presence[leaf.name] = [leaf.key in _holder(leaf.type, net) for net in stats]
        else:
            presence[leaf.name] = [all(leaf.key in _holder(leaf.type, node) for node in net.nodes) for net in stats]
    return presence


def _batch_size(stats: Sequence) -> int:
    """B, from the first batch-shaped statistic of arch #0 (every node is checked against it while
    packing); 1 when no batch-shaped statistic is held at all."""
    if not stats[0].nodes:
        raise CacheError("statistics of arch #0 have no nodes")
    for leaf in LEAVES:
        if leaf.type in (ActOut, ActIn, Kernel) and leaf.key in stats[0].nodes[0].tensors:
            return int(stats[0].nodes[0].tensors[leaf.key].shape[0])
        if leaf.type is NetKernel and leaf.key in stats[0].tensors:
            return int(stats[0].tensors[leaf.key].shape[0])
    return 1


def _kept(numel: int, param_sample: int | None) -> int:
    """Entries a node keeps of each param leaf (all, or the sketch's sample)."""
    return numel if param_sample is None or numel <= param_sample else param_sample


def _param_numel(node, param_names: list[str], where: str) -> int:
    """Entries of each param leaf of a node (the same for all of them; 0 when none is packed). A node
    of an arch that lacks some param leaf is sized by one it holds."""
    if not param_names:
        return 0
    held = [node.tensors[name] for name in param_names if name in node.tensors]
    if not held:
        raise CacheError(f"statistics of {where} lack every param statistic ({', '.join(param_names)})")
    return held[0].numel()


def _or_nan(mapping: dict, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A statistic, or NaN of ``shape`` where the arch lacks it (the evaluator marks that arch undefined)."""
    return mapping[key] if key in mapping else torch.full(shape, float("nan"))


def pack(stats: Sequence, device: str | torch.device = "cpu", *, param_sample: int | None = None,
         batch_sample: int | None = None, channel_sample: int | None = None, seed: int = 0,
         release: bool = False) -> PackedStatistics:
    """Pack a list of ``NetworkStatistics`` (one per arch, in order) for the evaluator.

    The ``*_sample`` sizes are the search-time sketches of the module docstring (``SEARCH_SKETCH``);
    ``None`` keeps everything (exact), as the final report needs. A leaf no arch holds is not packed;
    one that some archs lack is packed with NaN there, and ``missing`` names those archs. Param leaves
    are copied into buffers allocated once; with ``release`` each node's param tensors are dropped from
    ``stats`` as they are copied, so a caller holding the only reference (one model scored directly)
    never holds both copies of a large network's per-weight statistics.
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
    presence = _presence(stats)
    held = {name for name, present in presence.items() if any(present)}

    def names(shape_class: type) -> list[str]:
        return [leaf.key for leaf in leaves_of(shape_class) if leaf.name in held]

    param_names, node_scalar_names = names(Param), names(NodeScalar)
    out_names, in_names, kernel_names, cov_names = names(ActOut), names(ActIn), names(Kernel), names(ChanMatrix)

    node_arch: list[int] = []
    node_scalars: dict[str, list[float]] = {n: [] for n in node_scalar_names}
    kept_total = sum(_kept(_param_numel(node, param_names, f"arch #{arch} node {node.name!r}"), param_sample)
                     for arch, net in enumerate(stats) for node in net.nodes)
    params = {n: torch.empty(kept_total, dtype=torch.float32) for n in param_names}
    offset = 0
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
                node_scalars[name].append(float(node.scalars.get(name, float("nan"))))
            numel = _param_numel(node, param_names, where)
            index = None
            if param_sample is not None and numel > param_sample:
                index = _sample_index(numel, param_sample, position, seed)
            kept = _kept(numel, param_sample)
            for name in param_names:
                flat = _or_nan(node.tensors, name, (numel,)).reshape(-1)
                if flat.numel() != numel:
                    raise CacheError(f"{where}: {name!r} has {flat.numel()} entries, {param_names[0]!r} {numel}")
                params[name][offset:offset + kept] = flat if index is None else flat[index]
                if release:
                    node.tensors.pop(name, None)
            offset += kept
            param_count.append(kept)
            param_scale.append(numel / kept if kept else 1.0)
            for name in kernel_names:
                kernels[name].append(_principal(_or_nan(node.tensors, name, (full_batch, full_batch)), batch_index))
            for names_, groups, chan_key, pos_key in ((out_names, out_groups, "channels_out_total",
                                                      "positions_out_total"),
                                                     (in_names, in_groups, "channels_in_total",
                                                      "positions_in_total")):
                if names_:
                    _group_activations(node, names_, groups, global_id, chan_key, pos_key, full_batch,
                                       batch_index, where)
            for cov_name in cov_names:
                cov = _or_nan(node.tensors, cov_name, (1, 1))
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
        net_scalars={leaf.key: f32([float(s.scalars.get(leaf.key, float("nan"))) for s in stats])
                     for leaf in leaves_of(NetScalar) if leaf.name in held},
        params={n: v.to(device) for n, v in params.items()},
        param_seg=torch.repeat_interleave(torch.arange(num_nodes, dtype=torch.int32),
                                          torch.tensor(param_count)).to(device),
        param_count=f32(param_count), param_scale=f32(param_scale),
        param_width=param_count[0] if len(set(param_count)) == 1 else None,
        kernels={n: torch.stack(v).to(device, torch.float32) for n, v in kernels.items()},
        net_kernels={leaf.key: _principal(torch.stack([_or_nan(s.tensors, leaf.key, (full_batch, full_batch))
                                                       for s in stats]), batch_index).to(device, torch.float32)
                     for leaf in leaves_of(NetKernel) if leaf.name in held},
        out_buckets=_bucketise(out_groups, device),
        in_buckets=_bucketise(in_groups, device),
        cov_buckets=_bucketise(cov_groups, device),
        missing={name: torch.tensor([not p for p in present], device=device)
                 for name, present in presence.items() if not all(present)},
    )


def _group_activations(node, names: list[str], groups: dict[tuple, list], global_id: int, chan_key: str,
                       pos_key: str, full_batch: int, batch_index: torch.Tensor | None, where: str) -> None:
    """Adds one node's activation leaves of one family (output or input side) to the bucket of their
    shape. A leaf the node lacks is NaN shaped like a held one of the family ((B, 1, 1) if none)."""
    held = [node.tensors[n] for n in names if n in node.tensors]
    shapes = {tuple(t.shape) for t in held}
    if len(shapes) > 1 or any(len(shape) != 3 for shape in shapes):
        raise CacheError(f"{where}: activation shapes {sorted(shapes)} differ or are not 3-d")
    shape = next(iter(shapes)) if shapes else (full_batch, 1, 1)
    if shape[0] != full_batch:
        raise CacheError(f"{where}: batch {shape[0]} differs from {full_batch}")
    acts = {n: _or_nan(node.tensors, n, shape) for n in names}
    if batch_index is not None:
        acts = {n: t[batch_index] for n, t in acts.items()}
    chan_scale = node.scalars[chan_key] / shape[1] if held else 1.0
    pos_scale = node.scalars[pos_key] / shape[2] if held else 1.0
    groups.setdefault(tuple(next(iter(acts.values())).shape), []).append((global_id, acts, chan_scale, pos_scale))
