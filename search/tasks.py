"""A task is one statistics cache split into train / validation / test, with its packed statistics.

Only the train split goes to the workers. The validation split is scored in the driver for
hall-of-fame members; the test split is loaded only by the final report.

Caches of the same archs (another task, another weight seed) share splits: an arch keeps the split the
first cache holding it gave it, so no test arch of one task is trained on through another. Archs new to
a cache are split by that cache's own seeded stream.
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
        """An evaluator over the validation or test split, loaded and packed on first use."""
        if split not in self._scorers:
            keys = [self.keys[i] for i in getattr(self.splits, split)]
            self._scorers[split] = expressions.evaluator(expressions.pack(self.cache.load(keys)))
        return self._scorers[split]


SPLIT_NAMES = ("train", "validation", "test")


def load_tasks(directories: Sequence[str], fractions: tuple[float, float, float], seed: int, *,
               sketch: bool = False) -> list[Task]:
    """Every cache of a run as a task, archs shared between caches in the same split."""
    assigned: dict[str, str] = {}
    return [load_task(directory, index, fractions, seed, sketch=sketch, assigned=assigned)
            for index, directory in enumerate(directories)]


def open_split_cache(directory: str) -> Any:
    """A cache by directory or ``builtin:NAME`` (made on first use), with a one-line error if absent."""
    from autoproxy.cache import open_cache
    from autoproxy.cache.builtin import resolve_cache

    directory = str(resolve_cache(directory))
    if not Path(directory).is_dir():
        raise CacheError(f"cache {directory} does not exist (build it with `autoproxy cache`, or pass --cache DIR)")
    return open_cache(directory)


def _shared_splits(keys: list[str], splits: Splits, assigned: dict[str, str]) -> Splits:
    """``splits`` with every arch an earlier cache already placed moved to that split; records the rest."""
    own = {position: name for name in SPLIT_NAMES for position in getattr(splits, name)}
    names = [assigned.get(key, own[position]) for position, key in enumerate(keys)]
    for key, name in zip(keys, names):
        assigned.setdefault(key, name)
    return Splits(*(np.array([p for p, n in enumerate(names) if n == name], dtype=np.int64) for name in SPLIT_NAMES))


def load_task(directory: str, index: int, fractions: tuple[float, float, float], seed: int, *,
              sketch: bool = False, assigned: dict[str, str] | None = None) -> Task:
    """Open a cache (a built-in one is made on first use), split its archs by ``(seed, index)`` (archs in
    ``assigned``, arch key -> split name, keep that split; the others are added to it) and pack the
    train split (sketched for search speed when ``sketch``; other splits are always exact)."""
    cache = open_split_cache(directory)
    directory = str(cache.directory)
    keys = list(cache.keys)
    if len(keys) < 6:
        raise CacheError(f"cache {directory} has {len(keys)} archs; a search needs at least 6")
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    splits = _shared_splits(keys, split_archs(len(keys), fractions, seed, index), {} if assigned is None else assigned)
    if len(splits.train) < 2 or len(splits.validation) < 2:
        raise CacheError(f"cache {directory}: {len(keys)} archs are too few for split fractions {fractions}")
    statistics = cache.load([keys[i] for i in splits.train])
    params = np.array([s.scalars["params"] for s in statistics], dtype=np.float64)
    return Task(name=Path(directory).name, cache=cache, keys=keys, accuracy=accuracy, splits=splits,
                train_pack=expressions.pack(statistics, sketch=sketch), train_params=params)


def load_transfer(directory: str, seen: set[str]) -> Task:
    """A cache the search does not optimise on, for the final report's transfer line: its archs that no
    searched task trained or validated on are its test split (train and validation stay empty)."""
    cache = open_split_cache(directory)
    keys = list(cache.keys)
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    unseen = np.array([position for position, key in enumerate(keys) if key not in seen], dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    return Task(name=Path(cache.directory).name, cache=cache, keys=keys, accuracy=accuracy,
                splits=Splits(empty, empty, unseen), train_pack=None, train_params=np.empty(0))
