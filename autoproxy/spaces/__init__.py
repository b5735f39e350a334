"""Search-space registry: an arch key (the benchmark files' encoding) → a ``torch.nn.Module``.

Each space object offers ``parse(key)``, ``build(key, num_classes, in_channels, width, depth)`` and
``sample(rng)``. Every built network names its final ``nn.Linear`` ``classifier``.
"""
from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, Protocol, Sequence

from autoproxy.benchmark import canonical_arch_key, format_key
from autoproxy.errors import InvalidArchError

if TYPE_CHECKING:
    import random

    import torch


class SearchSpace(Protocol):
    name: str

    def parse(self, key: str | Sequence[int]) -> tuple[int, ...]: ...

    def build(
        self,
        key: str | Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: int | None = None,
        depth: int | None = None,
    ) -> "torch.nn.Module": ...

    def sample(self, rng: "random.Random") -> str: ...


def parse_int_tuple(key: str | Sequence[int], length: int, space: str) -> tuple[int, ...]:
    """The integers of a key given as text ``"(0, 2, ...)"`` or as a sequence, checked for length."""
    if isinstance(key, str):
        try:
            text = canonical_arch_key(key)
        except ValueError:
            raise InvalidArchError(f"{space}: key {key!r} is not a tuple of integers") from None
        values = tuple(int(item) for item in text[1:-1].split(", ")) if text != "()" else ()
    else:
        if not all(isinstance(value, Integral) and not isinstance(value, bool) for value in key):
            raise InvalidArchError(f"{space}: key {key!r} is not a tuple of integers")
        values = tuple(int(value) for value in key)
    if len(values) != length:
        raise InvalidArchError(
            f"{space}: key {format_key(values)} has {len(values)} entries, expected {length}"
        )
    return values


def get_space(name: str) -> SearchSpace:
    """The search space called ``name`` ("nb201" or "nb101")."""
    from autoproxy.spaces.nb101 import NB101Space
    from autoproxy.spaces.nb201 import NB201Space

    spaces: dict[str, SearchSpace] = {"nb201": NB201Space(), "nb101": NB101Space()}
    try:
        return spaces[name]
    except KeyError:
        raise InvalidArchError(f"unknown search space {name!r} (known: {', '.join(spaces)})") from None


__all__ = ["SearchSpace", "get_space", "parse_int_tuple", "format_key"]
