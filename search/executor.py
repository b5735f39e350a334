"""Evaluate candidates in parallel: serially in-process (debugging) or on Ray actors.

Candidates travel as expression strings and are parsed where they are scored: nothing pickled
from a file is ever loaded. Each cache's packed statistics are put into Ray's object store once and
every actor holds a reference, so a generation ships only strings out and score vectors back.
Results come back in submission order, so serial and Ray runs are identical for the same seed.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Protocol, Sequence

from search.expressions import Outcome, evaluator, score_expression

MAX_BATCH_RETRIES = 3


class Executor(Protocol):
    """Scores expression strings on every task's packed train statistics."""

    def score(self, expressions: Sequence[str]) -> list[list[Outcome]]:
        """Per expression, per task: the outcome, in the order given."""

    def map(self, function: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        """``function(item)`` for every item on the workers, results in order (module-level functions
        and picklable items only); for driver-side work that is not candidate scoring."""

    def close(self) -> None:
        """Release workers (a no-op for the serial executor)."""


class PackScorer:
    """Holds one evaluator per task's packed statistics and scores expression strings on them all;
    the one scoring body of the serial executor and the Ray actor."""

    def __init__(self, packs: Sequence[Any]) -> None:
        self.scorers = [evaluator(pack) for pack in packs]

    def score(self, expressions: Sequence[str]) -> list[list[Outcome]]:
        return [score_expression(text, self.scorers) for text in expressions]


class SerialExecutor(PackScorer):
    """Scores in this process, one candidate after the other."""

    def map(self, function: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        return map(function, items)

    def close(self) -> None:
        pass


class ScoringActor(PackScorer):
    """Ray actor body: holds every task's packed statistics, scores batches of strings."""

    def __init__(self, *packs: Any) -> None:
        import torch

        torch.set_num_threads(1)  # one actor per CPU; intra-op threads would oversubscribe
        super().__init__(packs)

    def call(self, function: Callable[[Any], Any], item: Any) -> Any:
        return function(item)


class RayExecutor:
    """A pool of ``ScoringActor``s on a local Ray instance or a cluster (``address``).

    A dead actor is restarted (from the same object-store references) and its in-flight batch
    retried, so one lost worker costs time, not the run.
    """

    def __init__(self, packs: Sequence[Any], *, workers: int | None = None, address: str | None = None,
                 object_store_mb: int = 512, chunks_per_worker: int = 4) -> None:
        import ray

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=object_store_mb * 2**20, log_to_driver=False)
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(workers or cluster_cpus, cluster_cpus))
        self._refs = [ray.put(pack) for pack in packs]
        actor_class = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=3)(ScoringActor)
        self._actors = [actor_class.remote(*self._refs) for _ in range(count)]
        self._chunks = count * chunks_per_worker

    @property
    def workers(self) -> int:
        return len(self._actors)

    def score(self, expressions: Sequence[str]) -> list[list[Outcome]]:
        expressions = list(expressions)
        if not expressions:
            return []
        size = max(1, -(-len(expressions) // self._chunks))
        batches = [expressions[i:i + size] for i in range(0, len(expressions), size)]
        futures = [self._actors[i % len(self._actors)].score.remote(batch) for i, batch in enumerate(batches)]
        return [outcome for i, future in enumerate(futures) for outcome in self._result(i, future, batches[i])]

    def _result(self, index: int, future: Any, batch: list[str]) -> list[list[Outcome]]:
        """A batch's outcomes; a batch lost with its actor (killed, out of memory) is resubmitted, so a
        dying worker costs time, not the run. Scoring is deterministic, so a retry changes nothing."""
        from ray.exceptions import ActorUnavailableError, RayActorError

        for attempt in range(MAX_BATCH_RETRIES):
            try:
                return self._ray.get(future)
            except (RayActorError, ActorUnavailableError):
                future = self._actors[(index + attempt + 1) % len(self._actors)].score.remote(batch)
        return self._ray.get(future)

    def map(self, function: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        """Items dealt round-robin to the actors; a dead actor is restarted and its calls retried by Ray."""
        futures = [self._actors[i % len(self._actors)].call.remote(function, item) for i, item in enumerate(items)]
        for future in futures:
            yield self._ray.get(future)

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        self._refs = []
        if self._owns_ray:
            self._ray.shutdown()


def make_executor(kind: str, packs: Sequence[Any], *, workers: int | None = None, address: str | None = None,
                  object_store_mb: int = 512) -> Executor:
    """``"serial"`` or ``"ray"`` (a cluster when ``address`` is given)."""
    if kind == "serial":
        return SerialExecutor(packs)
    return RayExecutor(packs, workers=workers, address=address, object_store_mb=object_store_mb)
