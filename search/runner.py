"""Wire a run together: config + caches + executor + engine + run directory + progress bar + signals.

Used by ``autoproxy search`` and by ``benchmarks/search_quality.py``.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from autoproxy.errors import ConfigError
from search.config import SearchConfig
from search.store import RunStore

# Options that may change when a run is resumed: they decide when it stops or where it runs, never
# what it finds.
RESUMABLE_OVERRIDES = ("generations", "time_budget_s", "executor", "workers", "ray_address", "transfer_caches")


@dataclass
class RunOutcome:
    directory: Path
    stop_reason: str
    generation: int
    result: dict[str, Any] | None   # None when interrupted


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: the engine stops after saving its last complete generation."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_config(directory: Path, overrides: dict[str, Any]) -> SearchConfig:
    """The stored config of a run, with the overrides a resume may change (others are refused)."""
    stored = RunStore(directory).read_config()
    changed = {k: v for k, v in overrides.items() if v is not None and v != getattr(stored, k)}
    refused = sorted(set(changed) - set(RESUMABLE_OVERRIDES))
    if refused:
        raise ConfigError(f"cannot change {', '.join(refused)} when resuming {directory} "
                          f"(only {', '.join(RESUMABLE_OVERRIDES)} may change)")
    return stored.replace(**changed)


def run_search(config: SearchConfig, directory: Path, *, resume: bool = False, progress: bool = True,
               on_generation: Callable[[dict[str, Any]], None] | None = None) -> RunOutcome:
    """Start (or resume) the run in ``directory`` and drive it to a stop criterion; ``on_generation``
    sees each generation's log line (benchmarks/soak.py records memory and file sizes with it)."""
    from search.engine import Engine
    from search.executor import make_executor
    from search.tasks import load_tasks

    if not config.caches:
        raise ConfigError("no caches to search on: name them in the config or pass --cache DIR")
    store = RunStore(directory)
    tasks = load_tasks(config.caches, config.split_fractions, config.splits_seed, sketch=config.sketch)
    if resume:
        store.write_config(config)
    else:
        store.create(config)
    packs = [task.train_pack for task in tasks]
    for task in tasks:
        task.train_pack = None   # the executor's copy is the run's only one (Ray's: in the object store)
    executor = make_executor(config.executor, packs, workers=config.workers, address=config.ray_address,
                             object_store_mb=config.object_store_mb)
    del packs
    bar = _progress_bar(config, enabled=progress)
    listeners = [listener for listener in (bar.update_line if bar else None, on_generation) if listener]

    def generation_done(line: dict[str, Any]) -> None:
        for listener in listeners:
            listener(line)

    engine = Engine(config, store, tasks, executor, on_generation=generation_done)
    try:
        with _sigterm_as_interrupt():
            try:
                if resume:
                    engine.resume()
                else:
                    engine.start()
            except KeyboardInterrupt:
                return RunOutcome(directory, "interrupted", engine.generation, None)
            reason = engine.run()
        if reason == "interrupted":
            return RunOutcome(directory, reason, engine.generation, None)
        return RunOutcome(directory, reason, engine.generation, engine.finish(reason))
    finally:
        executor.close()
        if bar:
            bar.close()


class _ProgressBar:
    """tqdm over generations (or over the time budget): ETA plus the current best formula."""

    def __init__(self, config: SearchConfig) -> None:
        from tqdm import tqdm

        self.by_generation = config.generations is not None
        total = config.generations + 1 if self.by_generation else int(config.time_budget_s)
        self.bar = tqdm(total=total, unit="gen" if self.by_generation else "s", dynamic_ncols=True)
        self.seconds = 0.0

    def update_line(self, line: dict[str, Any]) -> None:
        if self.by_generation:
            self.bar.update(1)
        else:
            self.bar.update(int(line["elapsed_s"]) - int(self.seconds))
            self.seconds = line["elapsed_s"]
        best = line["best"] or "-"
        self.bar.set_postfix_str(f"gen {line['generation']} best {line['best_fitness']:.3f} {best[:60]}")

    def close(self) -> None:
        self.bar.close()


def _progress_bar(config: SearchConfig, enabled: bool) -> _ProgressBar | None:
    return _ProgressBar(config) if enabled else None
