"""One cache entry on disk: the ``NetworkStatistics`` of one arch as a safetensors file.

Why safetensors: no pickle (reading a cache can never run code), tensors are memory-mapped, and the
header is plain JSON. Tensors are named ``node/{i}/{stat}`` and ``net/{stat}``; node names, kinds,
scalars, float16 exponents and the statistics groups that could not be computed for the arch
(``unavailable``: group -> reason; absent in entries written before it existed, which read as "all
available") live in the ``content`` metadata string (JSON, parsed as data only).

float16 storage: each tensor is scaled by a power of two 2**-e so that its largest finite magnitude
lies in [2**14, 2**15) (far below float16's 65504: SynFlow gradients can reach 1e30) and ``e`` is
recorded; loading restores float32 exactly up to float16's 11-bit mantissa (relative error ≤ 2**-11
for values within 2**28 of the tensor's maximum). Power-of-two scaling is itself exact.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import torch

from autoproxy.errors import CacheError
from autoproxy.statistics import NetworkStatistics, NodeStatistics

ENTRY_FORMAT = "autoproxy-statistics/1"
DTYPES = ("float32", "float16")
_FLOAT16_TOP_EXPONENT = 15  # scaled maxima lie in [2**14, 2**15)


def _float16_exponent(values: np.ndarray) -> int:
    """The power of two that brings the largest finite magnitude into [2**14, 2**15)."""
    finite = np.abs(values[np.isfinite(values)])
    peak = float(finite.max()) if finite.size else 0.0
    if peak == 0.0:
        return 0
    return int(np.frexp(peak)[1]) - _FLOAT16_TOP_EXPONENT


def _encode_tensor(tensor: torch.Tensor, dtype: str) -> tuple[np.ndarray, int]:
    values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
    if dtype == "float32":
        return values, 0
    exponent = _float16_exponent(values)
    return np.ldexp(values, -exponent).astype(np.float16), exponent


def encode_entry(key: str, stats: NetworkStatistics, dtype: str) -> bytes:
    """Serialise one arch's statistics to safetensors bytes in ``dtype`` ("float32" or "float16")."""
    if dtype not in DTYPES:
        raise CacheError(f"unknown cache dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    named = {f"net/{stat}": t for stat, t in stats.tensors.items()}
    for index, node in enumerate(stats.nodes):
        named.update({f"node/{index}/{stat}": t for stat, t in node.tensors.items()})
    arrays, exponents = {}, {}
    for name, tensor in named.items():
        arrays[name], exponent = _encode_tensor(tensor, dtype)
        if exponent:
            exponents[name] = exponent
    content = {
        "key": key,
        "dtype": dtype,
        "nodes": [{"name": n.name, "kind": n.kind, "scalars": n.scalars,
                   "tensors": list(n.tensors)} for n in stats.nodes],
        "tensors": list(stats.tensors),
        "scalars": stats.scalars,
        "exponents": exponents,
        "unavailable": stats.unavailable,
    }
    metadata = {"format": ENTRY_FORMAT, "content": json.dumps(content)}
    return safetensors.numpy.save(arrays, metadata=metadata)


def _decode_all(handle, names: list[str], exponents: dict[str, int]) -> dict[str, torch.Tensor]:
    """All tensors of an entry as float32 views of one buffer.

    One allocation per entry instead of hundreds; a torch buffer rather than a numpy one because
    numpy asks for transparent huge pages, whose compaction tripled loading time in measurements.
    float16 is widened by torch's vectorised conversion, then rescaled in place.
    """
    shapes = {name: handle.get_slice(name).get_shape() for name in names}
    buffer = torch.empty(sum(math.prod(shape) for shape in shapes.values()), dtype=torch.float32)
    decoded, start = {}, 0
    for name in names:
        size = math.prod(shapes[name])
        out = buffer[start:start + size].view(shapes[name])
        start += size
        out.copy_(torch.from_numpy(handle.get_tensor(name)))
        exponent = exponents.get(name, 0)
        if -126 <= exponent <= 127:  # a normal float32 power of two: scaling is exact
            if exponent:
                out.mul_(2.0**exponent)
        else:
            np.ldexp(out.numpy(), exponent, out=out.numpy())
        decoded[name] = out
    return decoded


def read_entry(path: Path, key: str) -> NetworkStatistics:
    """Load one entry as float32 tensors; anything unreadable or inconsistent is a ``CacheError``."""
    try:
        with safetensors.safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != ENTRY_FORMAT:
                raise ValueError(f"format is {metadata.get('format')!r}, expected {ENTRY_FORMAT!r}")
            content = json.loads(metadata["content"])
            if content.get("key") != key:
                raise ValueError(f"it holds arch {content.get('key')!r}")
            exponents = {name: int(e) for name, e in content["exponents"].items()}
            names = [f"net/{stat}" for stat in content["tensors"]]
            names += [f"node/{i}/{stat}" for i, node in enumerate(content["nodes"]) for stat in node["tensors"]]
            tensors = _decode_all(handle, names, exponents)
        nodes = [NodeStatistics(
            name=str(node["name"]), kind=str(node["kind"]),
            tensors={stat: tensors[f"node/{i}/{stat}"] for stat in node["tensors"]},
            scalars={k: float(v) for k, v in node["scalars"].items()},
        ) for i, node in enumerate(content["nodes"])]
        return NetworkStatistics(
            nodes=nodes,
            tensors={stat: tensors[f"net/{stat}"] for stat in content["tensors"]},
            scalars={k: float(v) for k, v in content["scalars"].items()},
            unavailable={str(group): str(reason) for group, reason in content.get("unavailable", {}).items()},
        )
    except CacheError:
        raise
    except (OSError, ValueError, KeyError, TypeError, safetensors.SafetensorError) as err:
        raise CacheError(f"cache entry {key} ({path}) is corrupt: {err}") from None
