"""Search spaces: an arch key (the benchmark files' encoding) → a ``torch.nn.Module``.

``get_space(name)`` knows the built-in spaces (nb201, nb101, nb301, mbnet), the spaces other packages
declare in the ``autoproxy.spaces`` entry-point group, and ``module:attribute`` references; every
command that takes ``--space`` takes all three. A space is any object with the members of the
``SearchSpace`` protocol below.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from numbers import Integral
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from autoproxy.benchmark import MAX_KEY_DEPTH, KeyValues, format_key, parse_key
from autoproxy.errors import InvalidArchError

if TYPE_CHECKING:
    import random

    import torch


class SearchSpace(Protocol):
    """What autoproxy needs of a search space; a plug-in space implements these four members.

    Keys are integer tuples, possibly nested (at most four levels), written in the canonical spelling
    of ``autoproxy.benchmark.format_key``: ``"(3, 5, 3)"``, or lists of tuples ``"[(0, 1), (2, 3)]"``.
    That is the text of the ``arch`` column of a ground-truth CSV and the key of a cache entry.
    """

    #: A short label for messages (the name the user passes to ``--space`` is what gets recorded).
    name: str

    def parse(self, key: str | Sequence[Any]) -> KeyValues:
        """The key's integers as (nested) tuples, given as text or as sequences; a key outside the
        space raises ``InvalidArchError`` naming it (``key_values`` and ``parse_int_tuple`` help)."""
        ...

    def build(
        self,
        key: str | Sequence[Any],
        num_classes: int = 10,
        in_channels: int = 3,
        width: int | None = None,
        depth: int | None = None,
    ) -> "torch.nn.Module":
        """A freshly initialised network of ``key`` (weights from torch's global generator, which
        callers seed) mapping ``(batch, in_channels, H, W)`` images to ``(batch, num_classes)``
        logits. ``width`` and ``depth`` scale the network (None: the space's defaults); a space
        without such knobs may ignore them."""
        ...

    def sample(self, rng: "random.Random") -> str:
        """One key drawn with ``rng`` only (the same ``rng`` state gives the same key), so
        ``autoproxy groundtruth train --seed`` is reproducible."""
        ...


def key_values(key: str | Sequence[Any], space: str) -> KeyValues:
    """The integers of a key given as text or as (nested) sequences, as (nested) tuples."""
    if isinstance(key, str):
        try:
            return parse_key(key)
        except ValueError:
            raise InvalidArchError(f"{space}: key {key!r} is not a tuple of integers") from None
    return _as_tuples(key, key, space, 1)


def _as_tuples(values: Any, key: Sequence[Any], space: str, depth: int) -> KeyValues:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or depth > MAX_KEY_DEPTH:
        raise InvalidArchError(f"{space}: key {key!r} is not a tuple of integers")
    return tuple(
        int(value)
        if isinstance(value, Integral) and not isinstance(value, bool)
        else _as_tuples(value, key, space, depth + 1)
        for value in values
    )


def parse_int_tuple(key: str | Sequence[int], length: int, space: str) -> tuple[int, ...]:
    """The integers of a flat key given as text ``"(0, 2, ...)"`` or as a sequence, checked for length."""
    values = key_values(key, space)
    if any(isinstance(value, tuple) for value in values):
        raise InvalidArchError(f"{space}: key {format_key(values)} is not a tuple of integers")
    if len(values) != length:
        raise InvalidArchError(
            f"{space}: key {format_key(values)} has {len(values)} entries, expected {length}"
        )
    return values


def _built_in() -> dict[str, Callable[[], SearchSpace]]:
    """The spaces shipped with autoproxy, by name (imported on demand: they import torch)."""
    from autoproxy.spaces.mobilenet import MBNetSpace
    from autoproxy.spaces.nb101 import NB101Space
    from autoproxy.spaces.nb201 import NB201Space
    from autoproxy.spaces.nb301 import NB301Space

    return {"nb101": NB101Space, "nb201": NB201Space, "nb301": NB301Space, "mbnet": MBNetSpace}


def space_names() -> list[str]:
    """The built-in spaces and the installed plug-in spaces, sorted; ``module:attribute`` references
    are not listed (any importable module may hold one)."""
    from autoproxy.spaces.plugins import entry_point_names

    return sorted({*_built_in(), *entry_point_names()})


@cache
def get_space(name: str) -> SearchSpace:
    """The search space called ``name``: a built-in ("nb201", "nb101", "nb301", "mbnet"), an ``autoproxy.spaces``
    entry point, or ``module:attribute``. A plug-in is loaded once per process (cached) and checked:
    whatever it raises or returns that is not a network is one ``InvalidArchError`` line."""
    from autoproxy.spaces.plugins import load_plugin_space

    built_in = _built_in()
    if name in built_in:
        return built_in[name]()
    space = load_plugin_space(name)
    if space is None:
        raise InvalidArchError(f"unknown search space {name!r} (known: {', '.join(space_names())}; "
                               f"or module:attribute)")
    return space


__all__ = ["SearchSpace", "get_space", "space_names", "key_values", "parse_int_tuple", "format_key"]
