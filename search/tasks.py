"""A task is one statistics cache split into train / validation / test, with its packed statistics.

Only the train split goes to the workers. The validation split is scored in the driver for
hall-of-fame members; the test split is loaded only by the final report.

Caches of the same archs (another task, another weight seed) share splits: an arch keeps the split the
first cache holding it gave it, so no test arch of one task is trained on through another. Archs new to
a cache are split by that cache's own seeded stream, numbered among the caches *of its search space*:
a cache gets the same split in a multi-space run as in a run over its own space alone, so the test
archs of a transfer matrix's columns are unseen by every row's search.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autoproxy.errors import CacheError
from search import expressions
from search.fitness import Splits, split_archs


@dataclass
class Task:
    name: str
    space: str
    cache: Any
    keys: list[str]
    accuracy: np.ndarray
    splits: Splits
    train_pack: Any
    train_params: np.ndarray
    _scorers: dict[str, Any] = field(default_factory=dict)

    def accuracy_of(self, split: str) -> np.ndarray:
        return self.accuracy[getattr(self.splits, split)]

    def scorer(self, split: str) -> Any:
        """Exact values over a whole split (``expressions.SplitScorer``), loaded and packed on first use."""
        if split not in self._scorers:
            self._scorers[split] = expressions.SplitScorer(self.cache.load, self.split_keys(split))
        return self._scorers[split]

    def split_keys(self, split: str) -> list[str]:
        return [self.keys[i] for i in getattr(self.splits, split)]


SPLIT_NAMES = ("train", "validation", "test")


def load_tasks(directories: Sequence[str], fractions: tuple[float, float, float], seed: int, *,
               sketch: bool = False, pack_train: bool = True) -> list[Task]:
    """Every cache of a run as a task, archs shared between caches in the same split (``pack_train``
    False: the splits only, for reports that score validation or test)."""
    assigned: dict[tuple[str, str], str] = {}
    streams: dict[str, int] = {}
    tasks = []
    for directory in directories:
        cache = open_split_cache(directory)
        space = cache.manifest.settings.space
        tasks.append(_split_task(cache, streams.get(space, 0), fractions, seed, sketch=sketch, assigned=assigned,
                                 pack_train=pack_train))
        streams[space] = streams.get(space, 0) + 1
    return tasks


def seen_archs(tasks: Sequence[Task]) -> set[tuple[str, str]]:
    """The (space, arch key) pairs the tasks train or validate on: what a transfer report must leave out."""
    return {(task.space, task.keys[i]) for task in tasks for split in ("train", "validation")
            for i in getattr(task.splits, split)}


def open_split_cache(directory: str) -> Any:
    """A cache by directory or ``builtin:NAME`` (made on first use), with a one-line error if absent."""
    from autoproxy.cache import open_cache
    from autoproxy.cache.builtin import resolve_cache

    directory = str(resolve_cache(directory))
    if not Path(directory).is_dir():
        raise CacheError(f"cache {directory} does not exist (build it with `autoproxy cache`, or pass --cache DIR)")
    return open_cache(directory)


def _shared_splits(space: str, keys: list[str], splits: Splits, assigned: dict[tuple[str, str], str]) -> Splits:
    """``splits`` with every arch an earlier cache of ``space`` already placed moved to that split;
    records the rest (keys of different spaces never match, even when they are spelled alike)."""
    own = {position: name for name in SPLIT_NAMES for position in getattr(splits, name)}
    names = [assigned.get((space, key), own[position]) for position, key in enumerate(keys)]
    for key, name in zip(keys, names):
        assigned.setdefault((space, key), name)
    return Splits(*(np.array([p for p, n in enumerate(names) if n == name], dtype=np.int64) for name in SPLIT_NAMES))


def load_task(directory: str, stream: int, fractions: tuple[float, float, float], seed: int, *,
              sketch: bool = False, assigned: dict[tuple[str, str], str] | None = None,
              pack_train: bool = True) -> Task:
    """Open a cache (a built-in one is made on first use), split its archs by ``(seed, stream)`` (archs in
    ``assigned``, (space, arch key) -> split name, keep that split; the others are added to it) and pack the
    train split (sketched for search speed when ``sketch``; other splits are always exact)."""
    return _split_task(open_split_cache(directory), stream, fractions, seed, sketch=sketch, assigned=assigned,
                       pack_train=pack_train)


def _split_task(cache: Any, stream: int, fractions: tuple[float, float, float], seed: int, *, sketch: bool,
                assigned: dict[tuple[str, str], str] | None, pack_train: bool) -> Task:
    """``load_task`` on an opened cache."""
    directory = str(cache.directory)
    keys = list(cache.keys)
    if len(keys) < 6:
        raise CacheError(f"cache {directory} has {len(keys)} archs; a search needs at least 6")
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    splits = _shared_splits(cache.manifest.settings.space, keys, split_archs(len(keys), fractions, seed, stream),
                            {} if assigned is None else assigned)
    if len(splits.train) < 2 or len(splits.validation) < 2:
        raise CacheError(f"cache {directory}: {len(keys)} archs are too few for split fractions {fractions}")
    statistics = cache.load([keys[i] for i in splits.train]) if pack_train else []
    params = np.array([s.scalars["params"] for s in statistics], dtype=np.float64)
    return Task(name=Path(directory).name, space=cache.manifest.settings.space, cache=cache, keys=keys,
                accuracy=accuracy, splits=splits,
                train_pack=expressions.pack(statistics, sketch=sketch, release=True) if pack_train else None,
                train_params=params)


def load_transfer(directory: str, seen: set[tuple[str, str]]) -> Task:
    """A cache the search does not optimise on, for the final report's transfer line: its archs that no
    searched task trained or validated on (``seen``: (space, arch key) pairs) are its test split (train
    and validation stay empty)."""
    cache = open_split_cache(directory)
    space = cache.manifest.settings.space
    keys = list(cache.keys)
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    unseen = np.array([position for position, key in enumerate(keys) if (space, key) not in seen], dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    return Task(name=Path(cache.directory).name, space=space, cache=cache, keys=keys, accuracy=accuracy,
                splits=Splits(empty, empty, unseen), train_pack=None, train_params=np.empty(0))
