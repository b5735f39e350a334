"""A task is one statistics cache split into train / validation / test, with its packed statistics.

Only the train split goes to the workers. The validation split is scored in the driver for
hall-of-fame members; the test split is loaded only by the final report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def load_task(directory: str, index: int, fractions: tuple[float, float, float], seed: int, *,
              sketch: bool = False) -> Task:
    """Open a cache (a built-in one is made on first use), split its archs by ``(seed, index)`` and
    pack the train split (sketched for search speed when ``sketch``; other splits are always exact)."""
    from autoproxy.cache import open_cache
    from autoproxy.cache.builtin import resolve_cache

    directory = str(resolve_cache(directory))
    if not Path(directory).is_dir():
        raise CacheError(f"cache {directory} does not exist (build it with `autoproxy cache`, or pass --cache DIR)")
    cache = open_cache(directory)
    keys = list(cache.keys)
    if len(keys) < 6:
        raise CacheError(f"cache {directory} has {len(keys)} archs; a search needs at least 6")
    accuracy = np.array([cache.accuracy[key] for key in keys], dtype=np.float64)
    splits = split_archs(len(keys), fractions, seed, index)
    if len(splits.train) < 2 or len(splits.validation) < 2:
        raise CacheError(f"cache {directory}: {len(keys)} archs are too few for split fractions {fractions}")
    statistics = cache.load([keys[i] for i in splits.train])
    params = np.array([s.scalars["params"] for s in statistics], dtype=np.float64)
    return Task(name=Path(directory).name, cache=cache, keys=keys, accuracy=accuracy, splits=splits,
                train_pack=expressions.pack(statistics, sketch=sketch), train_params=params)
