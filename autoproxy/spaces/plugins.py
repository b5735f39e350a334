"""Search spaces from other code: an ``autoproxy.spaces`` entry point of an installed package, or a
``module:attribute`` reference given on the command line.

Both are resolved the same way (``importlib.metadata.EntryPoint.load``), and the object found is
wrapped in a ``CheckedSpace``: third-party code may raise anything or return anything, and every
caller (cache build, ground-truth training, evaluation, the stability report) must get one
``InvalidArchError`` line naming the space and the key instead, which the cache build records as a
skipped arch while keeping every arch it finished.
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from autoproxy.benchmark import canonical_arch_key
from autoproxy.errors import InvalidArchError

if TYPE_CHECKING:
    import random

    from torch import nn

    from autoproxy.benchmark import KeyValues
    from autoproxy.spaces import SearchSpace

ENTRY_POINT_GROUP = "autoproxy.spaces"
_IDENTIFIERS = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REFERENCE = re.compile(rf"{_IDENTIFIERS}:{_IDENTIFIERS}\Z", re.ASCII)
_MEMBERS = ("name", "parse", "build", "sample")
_T = TypeVar("_T")


def is_reference(text: str) -> bool:
    """Whether ``text`` is ``dotted.module:attribute`` made of Python identifiers only, so that
    nothing but a module import and attribute lookups can follow from it."""
    return bool(_REFERENCE.match(text))


def entry_point_names() -> list[str]:
    """The names of the installed ``autoproxy.spaces`` entry points, sorted."""
    return sorted({point.name for point in _entry_points()})


def is_plugin_space(name: str) -> bool:
    """Whether ``name`` can only mean a plug-in space (an entry point or a module reference); cheap
    and torch-free, for code that checks a space name without building anything."""
    return is_reference(name) or name in entry_point_names()


def load_plugin_space(name: str) -> CheckedSpace | None:
    """The checked space of entry point ``name`` or reference ``module:attribute``; None when
    ``name`` is neither."""
    if is_reference(name):
        return _checked(name, importlib.metadata.EntryPoint(name, name, ENTRY_POINT_GROUP), repr(name))
    points = [point for point in _entry_points() if point.name == name]
    if not points:
        return None
    return _checked(name, points[0], f"entry point {name} = {points[0].value}")


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The declared ``autoproxy.spaces`` entry points (read from the installed packages' metadata)."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _checked(name: str, point: importlib.metadata.EntryPoint, where: str) -> CheckedSpace:
    """Import ``point`` and make a space of its target; every failure is one line naming ``where``."""
    try:
        target = point.load()
    except Exception as err:  # a broken plug-in is named in one line, never a traceback
        raise InvalidArchError(f"search space {where}: cannot import: {_one_line(err)}") from err
    return CheckedSpace(name, _instance(target, where))


def _instance(target: Any, where: str) -> SearchSpace:
    """``target`` itself when it is a space; a class or zero-argument factory is called once."""
    if isinstance(target, type) or (callable(target) and _missing(target)):
        try:
            target = target()
        except Exception as err:
            raise InvalidArchError(f"search space {where}: its factory raised {_one_line(err)}") from err
    missing = _missing(target)
    if missing:
        raise InvalidArchError(f"search space {where}: {type(target).__name__} is not a SearchSpace: "
                               f"{', '.join(missing)}")
    return target


def _missing(target: Any) -> list[str]:
    """What ``target`` lacks of the ``SearchSpace`` protocol, one phrase per member."""
    problems = [f"no {member}" for member in _MEMBERS if not hasattr(target, member)]
    problems += [f"{member} is not callable" for member in _MEMBERS[1:]
                 if hasattr(target, member) and not callable(getattr(target, member))]
    if hasattr(target, "name") and not isinstance(target.name, str):
        problems.append("name is not a string")
    return problems


def _canonical(key: Any) -> str | None:
    """The canonical spelling of a key given as text, None for anything else."""
    try:
        return canonical_arch_key(key) if isinstance(key, str) else None
    except ValueError:
        return None


def _one_line(err: BaseException) -> str:
    """``Type: first line of the message``: what a user needs to find the fault, on one line."""
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


@dataclass(frozen=True)
class CheckedSpace:
    """A plug-in space whose results are checked at the one boundary every caller goes through.

    ``name`` is what the user typed (entry point name or ``module:attribute``): it is recorded in
    caches and ground-truth settings and names the space in every error.
    """

    name: str
    space: SearchSpace

    def parse(self, key: str | Sequence[Any]) -> KeyValues:
        return self._guarded("parse", key, lambda: self.space.parse(key))

    def build(self, key: str | Sequence[Any], num_classes: int = 10, in_channels: int = 3,
              width: int | None = None, depth: int | None = None) -> nn.Module:
        """The plug-in's network of ``key``, refused unless it is a ``torch.nn.Module``."""
        from torch import nn

        model = self._guarded("build", key, lambda: self.space.build(
            key, num_classes=num_classes, in_channels=in_channels, width=width, depth=depth))
        if not isinstance(model, nn.Module):
            raise InvalidArchError(f"search space {self.name}: build of key {key} returned "
                                   f"{type(model).__name__}, not a torch.nn.Module")
        return model

    def sample(self, rng: random.Random) -> str:
        """The plug-in's sampled key in its canonical spelling, the one CSV files and caches use."""
        key = self._guarded("sample", None, lambda: self.space.sample(rng))
        canonical = _canonical(key)
        if canonical is None:
            raise InvalidArchError(f"search space {self.name}: sample returned {key!r}, not a key such as "
                                   f"'(3, 5, 3)' (a tuple of integers, possibly nested)")
        return canonical

    def _guarded(self, member: str, key: Any, call: Callable[[], _T]) -> _T:
        """``call()``, with anything it raises turned into one line naming the space and the key."""
        try:
            return call()
        except Exception as err:
            of_key = "" if key is None else f" of key {key}"
            raise InvalidArchError(f"search space {self.name}: {member}{of_key} raised {_one_line(err)}") from err
