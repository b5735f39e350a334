"""The run's memory of every canonical form it has scored: train fitness in 16 bytes per form.

A 24-hour run scores about 10^7 distinct forms. Holding their journal records in memory (expression
text and a 64-float behaviour vector, ~2.5 kB each) grew without bound; the journal on disk keeps
their text. This cache keeps only what the loop needs to never score a form twice: a 64-bit BLAKE2b
digest of the canonical key and its fitness. Recent forms sit in a dict; every ``MERGE_AT`` of them
are merged into sorted numpy arrays (searched by bisection). Two forms share a digest with odds of
about n²/2^65, 3·10^-6 for 10^7 forms.
"""
from __future__ import annotations

import hashlib

import numpy as np

MERGE_AT = 1 << 16


def digest(key: str) -> int:
    """The 64-bit digest a canonical key is stored under (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


class FitnessCache:
    """Canonical key -> train fitness, for every form the run has scored."""

    def __init__(self) -> None:
        self._recent: dict[int, float] = {}
        self._digests = np.empty(0, dtype=np.uint64)
        self._fitness = np.empty(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self._recent) + len(self._digests)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> float | None:
        """The stored fitness, or None for a form never scored."""
        value = digest(key)
        if value in self._recent:
            return self._recent[value]
        position = int(np.searchsorted(self._digests, np.uint64(value)))
        if position < len(self._digests) and int(self._digests[position]) == value:
            return float(self._fitness[position])
        return None

    def add(self, key: str, fitness: float) -> None:
        self._recent[digest(key)] = float(fitness)
        if len(self._recent) >= MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        """Fold the recent dict into the sorted arrays (linear in their size)."""
        digests = np.fromiter(self._recent.keys(), dtype=np.uint64, count=len(self._recent))
        fitness = np.fromiter(self._recent.values(), dtype=np.float64, count=len(self._recent))
        order = np.argsort(digests, kind="stable")
        digests, fitness = digests[order], fitness[order]
        positions = np.searchsorted(self._digests, digests)
        self._digests = np.insert(self._digests, positions, digests)
        self._fitness = np.insert(self._fitness, positions, fitness)
        self._recent = {}
