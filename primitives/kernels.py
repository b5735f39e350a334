"""The torch kernel of every typed primitive: the one implementation that the search, ``autoproxy.score``
and exported modules all run.

A variant is one typing of a primitive name (``abs`` on every shape class, ``node_sum`` from every
tensor class); its kernel ``fn(packed, *values)`` works on packed statistics (all nodes of all archs
at once, ``primitives/packed.py``), so one network is a pack of one. ``primitives/catalog.py`` adds the
SymPy form and complexity of each name. Only torch, the standard library and the torch-only
``primitives`` modules are imported: ``autoproxy export --python`` bundles this file.

Protected semantics (so that no valid tree raises): ``log(0) = 0`` and ``log x = log|x|``;
``sqrt x = sqrt|x|``; ``inv`` and ``div`` give 0 where the denominator is below 1e-12 in magnitude;
``exp`` clamps its argument at 50; ``standardise``/``normalise`` give 0 for a unit constant up to 1e-5 relative; matrix
reductions give NaN for a unit with non-finite entries (the evaluator then marks the tree invalid).
"""
from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import torch

from primitives.packed import PackedStatistics
from primitives.types import (ALL_TYPES, ActIn, ActOut, Batch, BatchChanIn, BatchChanOut, ChanIn, ChanMatrix,
                              ChanOut, Kernel, NetKernel, NetScalar, NodeScalar, Param)

EPS = 1e-12
FLAT_RTOL = 1e-5     # standardise/normalise treat a unit this flat (relative) as constant
RIDGE = 1e-5          # jacov's k: eigenvalues v enter as v + 1e-5


@dataclass(frozen=True)
class Variant:
    """One typing of a primitive and its kernel."""

    name: str                                   # as written in expressions
    in_types: tuple[type, ...]
    out_type: type
    fn: Callable                                # fn(packed, *values) -> value

    @property
    def key(self) -> str:
        """Unique typed name (the DEAP primitive name)."""
        return "__".join([self.name, *(t.__name__ for t in self.in_types)])


# ---------------------------------------------------------------- value helpers
def _map(value, f):
    return tuple(f(t) for t in value) if isinstance(value, tuple) else f(value)


def _zip(a, b, f):
    return tuple(f(x, y) for x, y in zip(a, b)) if isinstance(a, tuple) else f(a, b)


def _unsqueeze_to(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(t.shape + (1,) * (ndim - t.dim()))


def param_rows(pk: PackedStatistics, x: torch.Tensor) -> torch.Tensor | None:
    """A param value as (N, S) rows when every node keeps S entries (the usual sketch): dense row
    reductions are several times faster than segment scatters."""
    return None if pk.param_width is None else x.view(pk.num_nodes, pk.param_width)


def broadcast_scalar(pk: PackedStatistics, scalar: torch.Tensor, shape_class: type, like):
    """Spread a node scalar (N,) or network scalar (A,) over the entries of a value of shape_class."""
    if shape_class is Param:
        if pk.param_width is not None:
            return scalar[:, None].expand(pk.num_nodes, pk.param_width).reshape(-1)
        return scalar[pk.param_seg]
    if isinstance(like, tuple):
        return tuple(_unsqueeze_to(scalar[b.node_index], t.dim())
                     for b, t in zip(pk.buckets_for(shape_class), like))
    return _unsqueeze_to(scalar, like.dim())


def _seg_sum(x: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, seg, x)


def _seg_extreme(x: torch.Tensor, seg: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    return torch.zeros(n, dtype=x.dtype, device=x.device).scatter_reduce_(0, seg.long(), x, reduce, include_self=False)


def _per_unit(pk, shape_class, value, stat: Callable[[torch.Tensor, tuple], torch.Tensor]):
    """Apply a per-unit transform (unit = node for node tensors, arch for network kernels)."""
    if shape_class is Param:
        rows = param_rows(pk, value)
        if rows is not None:
            return stat(rows, (1,)).reshape(-1)
        return stat(value, (pk.param_seg, pk.num_nodes))
    return _map(value, lambda t: stat(t, tuple(range(1, t.dim()))))


def _standardise(x, where):
    if isinstance(where, tuple) and len(where) == 2 and isinstance(where[0], torch.Tensor):
        seg, n = where
        count = _seg_sum(torch.ones_like(x), seg, n).clamp(min=1)
        mean = (_seg_sum(x, seg, n) / count)[seg]
        std = (_seg_sum((x - mean) ** 2, seg, n) / count).sqrt()[seg]
    else:
        mean = x.mean(dim=where, keepdim=True)
        std = x.std(dim=where, keepdim=True, unbiased=False)
    flat = std <= EPS + FLAT_RTOL * mean.abs()      # constant up to float rounding: do not amplify noise
    return torch.where(flat, torch.zeros_like(x), (x - mean) / std.clamp(min=EPS))


def _normalise(x, where):
    if isinstance(where, tuple) and len(where) == 2 and isinstance(where[0], torch.Tensor):
        seg, n = where
        low, high = _seg_extreme(x, seg, n, "amin")[seg], _seg_extreme(x, seg, n, "amax")[seg]
    else:
        low, high = x.amin(dim=where, keepdim=True), x.amax(dim=where, keepdim=True)
    span = high - low
    flat = span <= EPS + FLAT_RTOL * torch.maximum(low.abs(), high.abs())
    return torch.where(flat, torch.zeros_like(x), (x - low) / span.clamp(min=EPS))


# ---------------------------------------------------------------- elementwise
# Few passes over memory (search-time values hold millions of entries): the masked-out quotients may be
# inf or nan, torch.where discards them, and nothing here is differentiated.
def _plog(x):
    return torch.where(x == 0, 0.0, torch.log(x.abs()))


def _pinv(x):
    return torch.where(x.abs() < EPS, 0.0, x.reciprocal())


def _pdiv(a, b):
    return torch.where(b.abs() < EPS, 0.0, a / b)


UNARY: dict[str, Callable] = {
    "abs": torch.abs,
    "square": torch.square,
    "sqrt": lambda x: x.abs().sqrt(),
    "log": _plog,
    "exp": lambda x: torch.exp(x.clamp(max=50.0)),
    "neg": torch.neg,
    "inv": _pinv,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "sign": torch.sign,
}
BINARY: dict[str, Callable] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": _pdiv,
    "min": torch.minimum,
    "max": torch.maximum,
}


# ---------------------------------------------------------------- reductions to a node scalar
def _scatter_nodes(pk, buckets, per_bucket: list[torch.Tensor]) -> torch.Tensor:
    out = torch.zeros((pk.num_nodes,) + per_bucket[0].shape[1:], dtype=per_bucket[0].dtype, device=pk.device)
    for bucket, vals in zip(buckets, per_bucket):
        out[bucket.node_index] = vals
    return out


def _sum_scale(pk, shape_class, bucket) -> torch.Tensor:
    """How much a plain sum over a sketched unit under-counts: true / kept entries."""
    if shape_class in (ActOut, ActIn):
        return bucket.chan_scale * bucket.pos_scale * pk.batch_scale
    if shape_class in (BatchChanOut, BatchChanIn):
        return bucket.chan_scale * pk.batch_scale
    if shape_class in (ChanOut, ChanIn):
        return bucket.chan_scale
    return torch.ones_like(bucket.chan_scale)


def _node_reduce(kind: str, shape_class: type):
    def param(pk, x):
        rows = param_rows(pk, x)
        if rows is not None:
            return dense(rows, pk.param_scale)
        seg, n = pk.param_seg, pk.num_nodes
        if kind == "sum":
            return _seg_sum(x, seg, n) * pk.param_scale
        if kind == "l1":
            return _seg_sum(x.abs(), seg, n) * pk.param_scale
        if kind == "l2":
            return (_seg_sum(x * x, seg, n) * pk.param_scale).sqrt()
        mean = _seg_sum(x, seg, n) / pk.param_count
        if kind == "mean":
            return mean
        return (_seg_sum((x - mean[seg]) ** 2, seg, n) / pk.param_count).sqrt()

    def dense(t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, t.dim()))
        if kind == "sum":
            return t.sum(dims) * scale
        if kind == "l1":
            return t.abs().sum(dims) * scale
        if kind == "l2":
            return (t.square().sum(dims) * scale).sqrt()
        if kind == "mean":
            return t.mean(dims)
        return t.flatten(1).std(1, unbiased=False)

    def bucketed(pk, value):
        buckets = pk.buckets_for(shape_class)
        return _scatter_nodes(pk, buckets, [dense(t, _sum_scale(pk, shape_class, b)) for b, t in zip(buckets, value)])

    def batch(pk, x):
        return dense(x, torch.full((1,), pk.batch_scale, device=x.device))

    if shape_class is Param:
        return param
    return batch if shape_class is Batch else bucketed


def _sum_pos(shape_class):
    def fn(pk, value):
        return tuple(t.sum(-1) * b.pos_scale[:, None, None] for b, t in zip(pk.buckets_for(shape_class), value))
    return fn


def _over_chan(kind: str, shape_class):
    def fn(pk, value):
        buckets = pk.buckets_for(shape_class)
        if kind == "sum":
            per = [t.sum(-1) * b.chan_scale[:, None] for b, t in zip(buckets, value)]
        else:
            per = [t.mean(-1) for t in value]
        return _scatter_nodes(pk, buckets, per)
    return fn


# ---------------------------------------------------------------- matrices
def _finite_units(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Units (leading dim) with only finite entries, and t with the others zeroed (so LAPACK never fails)."""
    ok = torch.isfinite(t.abs().amax((-2, -1)))       # amax propagates NaN; one cheap pass
    if bool(ok.all()):
        return ok, t
    return ok, torch.where(ok[:, None, None], t, 0.0)


_LAPACK_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}     # (pid, threads): a fork gets its own
_LAPACK_MIN_UNITS = 256


def _lapack(fn: Callable, t: torch.Tensor):
    """``fn`` on a batch of matrices, split over torch's intra-op threads: ATen loops over a CPU batch
    on one thread, and thousands of small per-node matrices make this the costliest step of a search."""
    threads = torch.get_num_threads()
    if t.device.type != "cpu" or threads < 2 or t.shape[0] < _LAPACK_MIN_UNITS:
        return fn(t)
    pool_key = (os.getpid(), threads)
    if pool_key not in _LAPACK_POOLS:
        _LAPACK_POOLS[pool_key] = ThreadPoolExecutor(threads, thread_name_prefix="lapack")
    parts = list(_LAPACK_POOLS[pool_key].map(fn, t.chunk(threads)))
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return tuple(torch.cat(items) for items in zip(*parts))


# Eigenvalues of the last few matrices, by tensor identity: the evaluator's memo hands back the same
# tensor for the same subtree, so eig_min, eig_max and spec_entropy of one matrix share one eigvalsh
# (the dominant cost of a search over thousands of per-node matrices).
_SPECTRA: OrderedDict[int, tuple[weakref.ref, int, tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
_SPECTRA_KEPT = 16


def _eigvalsh(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    entry = _SPECTRA.get(id(t))
    if entry is not None and entry[0]() is t and entry[1] == t._version:
        _SPECTRA.move_to_end(id(t))
        return entry[2]
    ok, clean = _finite_units(t)
    result = ok, _lapack(torch.linalg.eigvalsh, 0.5 * (clean + clean.transpose(-1, -2)))
    _SPECTRA[id(t)] = (weakref.ref(t), t._version, result)
    while len(_SPECTRA) > _SPECTRA_KEPT:
        _SPECTRA.popitem(last=False)
    return result


def _nan_where_bad(ok: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return torch.where(ok, values, torch.full_like(values, float("nan")))


def _logdet(t):
    ok, clean = _finite_units(t)
    sign, logabs = _lapack(torch.linalg.slogdet, clean)
    return _nan_where_bad(ok, torch.where(sign == 0, float("-inf"), logabs))


def _trace(t):
    return t.diagonal(dim1=-2, dim2=-1).sum(-1)


def _offdiag_mean(t):
    m = t.shape[-1]
    if m < 2:
        return torch.zeros(t.shape[0], dtype=t.dtype, device=t.device)
    return (t.sum((-1, -2)) - _trace(t)) / (m * (m - 1))


def _eig_min(t):
    ok, v = _eigvalsh(t)
    return _nan_where_bad(ok, v[:, 0])


def _eig_max(t):
    ok, v = _eigvalsh(t)
    return _nan_where_bad(ok, v[:, -1])


def _spec_entropy(t):
    ok, v = _eigvalsh(t)
    v = v.clamp(min=0)
    p = v / v.sum(-1, keepdim=True).clamp(min=EPS)
    return _nan_where_bad(ok, -(p * _plog(p)).sum(-1))


def _corr(t):
    d = t.diagonal(dim1=-2, dim2=-1).abs().sqrt()
    return _pdiv(t, d[..., :, None] * d[..., None, :])


def _ridge(t):
    return t + RIDGE * torch.eye(t.shape[-1], dtype=t.dtype, device=t.device)


def _minv(t):
    ok, clean = _finite_units(t)
    inverse, info = _lapack(torch.linalg.inv_ex, clean)
    good = ok & (info == 0)
    return torch.where(good[:, None, None], inverse, float("nan"))


# Reductions that sum over a matrix's rows: rescaled by true / kept rows under a sketch.
SUMMED_MATRIX_REDUCE = frozenset({"trace"})
MATRIX_REDUCE: dict[str, Callable] = {
    "logdet": _logdet, "trace": _trace, "offdiag_mean": _offdiag_mean,
    "eig_min": _eig_min, "eig_max": _eig_max, "spec_entropy": _spec_entropy,
}
MATRIX_MAP: dict[str, Callable] = {"corr": _corr, "ridge": _ridge, "minv": _minv}


def _matrix_reduce(impl: Callable, shape_class: type, summed: bool) -> Callable:
    def fn(pk, value):
        if shape_class is ChanMatrix:
            return _scatter_nodes(pk, pk.cov_buckets, [impl(t) * b.chan_scale if summed else impl(t)
                                                       for b, t in zip(pk.cov_buckets, value)])
        return impl(value) * pk.batch_scale if summed else impl(value)
    return fn


# ---------------------------------------------------------------- aggregation over nodes
def _padded(pk, x, fill: float) -> torch.Tensor:
    return torch.cat([x, x.new_full((1,), fill)])[pk.arch_pad_index]


def _net_sum(pk, x):
    return _seg_sum(x, pk.node_arch, pk.num_archs)


def _net_mean(pk, x):
    return _net_sum(pk, x) / pk.arch_pad_mask.sum(1)


def _net_std(pk, x):
    mean = _net_mean(pk, x)
    return (_net_sum(pk, (x - mean[pk.node_arch]) ** 2) / pk.arch_pad_mask.sum(1)).sqrt()


AGGREGATE: dict[str, Callable] = {
    "net_sum": _net_sum,
    "net_mean": _net_mean,
    "net_std": _net_std,
    "net_max": lambda pk, x: _padded(pk, x, float("-inf")).amax(1),
    "net_min": lambda pk, x: _padded(pk, x, float("inf")).amin(1),
    "net_median": lambda pk, x: _padded(pk, x, float("nan")).nanmedian(1).values,
    "net_depth_sum": lambda pk, x: _net_sum(pk, x * pk.node_scalars["depth"]),
}


# ---------------------------------------------------------------- the typed variants
def _variants() -> list[Variant]:
    variants: list[Variant] = []
    for name, impl in UNARY.items():
        for t in ALL_TYPES:
            variants.append(Variant(name, (t,), t, lambda pk, v, f=impl: _map(v, f)))
    for name, transform in (("standardise", _standardise), ("normalise", _normalise)):
        for t in ALL_TYPES:
            # per node (or per arch for NetKernel); not across nodes or archs, so that a node's value
            # depends on that node alone and an arch's score on that arch alone
            if t not in (NodeScalar, NetScalar):
                variants.append(Variant(name, (t,), t, lambda pk, v, t=t, f=transform: _per_unit(pk, t, v, f)))
    for name, impl in BINARY.items():
        for t in ALL_TYPES:
            variants.append(Variant(name, (t, t), t, lambda pk, a, b, f=impl: _zip(a, b, f)))
            scalar = NodeScalar if t.level == "node" else NetScalar
            if t is not scalar:
                variants.append(Variant(
                    name, (t, scalar), t, lambda pk, a, s, t=t, f=impl: _zip(a, broadcast_scalar(pk, s, t, a), f)))
    for kind in ("sum", "mean", "std", "l1", "l2"):
        for t in (Param, ActOut, ActIn, BatchChanOut, BatchChanIn, ChanOut, ChanIn, Batch):
            variants.append(Variant(f"node_{kind}", (t,), NodeScalar, _node_reduce(kind, t)))
    for act, bc, chan in ((ActOut, BatchChanOut, ChanOut), (ActIn, BatchChanIn, ChanIn)):
        variants.append(Variant("sum_pos", (act,), bc, _sum_pos(act)))
        variants.append(Variant("mean_pos", (act,), bc, lambda pk, v: tuple(t.mean(-1) for t in v)))
        variants.append(Variant("mean_batch", (bc,), chan, lambda pk, v: tuple(t.mean(1) for t in v)))
        variants.append(Variant("std_batch", (bc,), chan, lambda pk, v: tuple(t.std(1, unbiased=False) for t in v)))
        variants.append(Variant("sum_chan", (bc,), Batch, _over_chan("sum", bc)))
        variants.append(Variant("mean_chan", (bc,), Batch, _over_chan("mean", bc)))
    for name, impl in MATRIX_REDUCE.items():
        for t, out in ((Kernel, NodeScalar), (ChanMatrix, NodeScalar), (NetKernel, NetScalar)):
            variants.append(Variant(name, (t,), out, _matrix_reduce(impl, t, name in SUMMED_MATRIX_REDUCE)))
    for name, impl in MATRIX_MAP.items():
        for t in (Kernel, ChanMatrix, NetKernel):
            variants.append(Variant(name, (t,), t, lambda pk, v, f=impl: _map(v, f)))
    for name, impl in AGGREGATE.items():
        variants.append(Variant(name, (NodeScalar,), NetScalar, impl))
    variants.append(Variant(
        "net_ksum", (Kernel,), NetKernel,
        lambda pk, v: torch.zeros((pk.num_archs,) + v.shape[1:], dtype=v.dtype, device=v.device
                                  ).index_add_(0, pk.node_arch, v)))
    return variants


VARIANTS: tuple[Variant, ...] = tuple(_variants())
VARIANTS_BY_KEY: dict[str, Variant] = {v.key: v for v in VARIANTS}
