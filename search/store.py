"""A run directory: resolved config, per-generation log, evaluation journal, hall of fame, atomic
JSON checkpoint and final result. JSON only (never pickle), so a run can be read, resumed and
audited by anything.

Layout of ``<out>/<name>/``::

    config.json         resolved SearchConfig
    environment.json    Python and package versions the run started with (search.environment)
    log.jsonl           one line per completed generation
    evaluations.jsonl   one line per distinct canonical form ever evaluated (the fitness cache)
    hall_of_fame.json   the Pareto front so far (best train fitness per complexity, validation scored)
    checkpoint.json     state after the last complete generation (written atomically)
    result.json         the chosen proxy and its test correlations (at the end)

The evaluation journal is append-only; the checkpoint records how many of its lines belong to the
checkpointed state, so lines written by a generation that was interrupted are dropped on resume.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from autoproxy.atomic import write_atomic
from autoproxy.errors import ConfigError
from search.config import SearchConfig, config_from_dict
from search.environment import current_environment

CHECKPOINT_VERSION = 3  # 3: the hall of fame keeps the best formula per complexity


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through the one atomic writer."""
    write_atomic(path, json.dumps(data, indent=1, allow_nan=False).encode())


def rng_state_to_json(state: tuple) -> list:
    """A ``random.getstate()`` tuple as JSON-ready lists."""
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def rng_state_from_json(data: list) -> tuple:
    """The inverse of ``rng_state_to_json``: a state ``random.setstate`` accepts."""
    version, internal, gauss_next = data
    return version, tuple(internal), gauss_next


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def checkpoint_path(self) -> Path:
        return self.directory / "checkpoint.json"

    @property
    def journal_path(self) -> Path:
        return self.directory / "evaluations.jsonl"

    @property
    def config_path(self) -> Path:
        return self.directory / "config.json"

    @property
    def environment_path(self) -> Path:
        return self.directory / "environment.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "log.jsonl"

    @property
    def hall_of_fame_path(self) -> Path:
        return self.directory / "hall_of_fame.json"

    @property
    def result_path(self) -> Path:
        return self.directory / "result.json"

    def create(self, config: SearchConfig) -> None:
        """Start a fresh run; refuses to overwrite one that already has a checkpoint."""
        if self.checkpoint_path.exists():
            raise ConfigError(f"{self.directory} already holds a run; pass --resume {self.directory} "
                              "or choose another --name")
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in (self.log_path, self.journal_path, self.hall_of_fame_path, self.result_path):
            stale.unlink(missing_ok=True)
        _write_json(self.config_path, config.to_dict())
        _write_json(self.environment_path, current_environment())

    def read_environment(self) -> dict[str, Any] | None:
        """environment.json, or None for a run made before runs recorded it."""
        return json.loads(self.environment_path.read_text()) if self.environment_path.is_file() else None

    def read_config_dict(self) -> dict[str, Any]:
        """config.json as stored (JSON), unvalidated: for readers that only report on a run."""
        return json.loads(self.config_path.read_text())

    def read_config(self) -> SearchConfig:
        if not self.config_path.is_file():
            raise ConfigError(f"{self.directory} is not a run directory (no config.json)")
        return config_from_dict(self.read_config_dict(), source=str(self.config_path))

    def write_config(self, config: SearchConfig) -> None:
        _write_json(self.config_path, config.to_dict())

    def append_log(self, record: dict[str, Any]) -> None:
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(record, allow_nan=False) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def append_evaluations(self, records: Iterable[dict[str, Any]]) -> None:
        with open(self.journal_path, "a") as handle:
            for record in records:
                handle.write(json.dumps(record, allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read_evaluations(self, count: int) -> Iterator[dict[str, Any]]:
        """Yield the first ``count`` journal lines (the checkpointed ones), read-only."""
        with open(self.journal_path) as handle:
            for number, line in enumerate(handle):
                if number == count:
                    break
                yield json.loads(line)

    def replay_evaluations(self, count: int) -> Iterator[dict[str, Any]]:
        """Yield the first ``count`` journal lines one at a time (a long run's journal does not fit in
        memory), then cut the rest (an interrupted generation) off the file."""
        if count == 0:
            self.journal_path.unlink(missing_ok=True)
            return
        seen, kept_bytes = 0, 0
        with open(self.journal_path, "rb") as handle:
            for line in handle:
                if seen == count:
                    break
                yield json.loads(line)
                seen += 1
                kept_bytes += len(line)
        if seen < count:
            raise ConfigError(f"{self.journal_path} has {seen} evaluations, the checkpoint expects {count}")
        os.truncate(self.journal_path, kept_bytes)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        _write_json(self.checkpoint_path, {"version": CHECKPOINT_VERSION, **state})

    def read_checkpoint_dict(self) -> dict[str, Any]:
        """checkpoint.json as stored (JSON), version unchecked: for readers that only report on a run."""
        return json.loads(self.checkpoint_path.read_text())

    def load_checkpoint(self) -> dict[str, Any]:
        if not self.checkpoint_path.is_file():
            raise ConfigError(f"{self.directory} has no checkpoint.json to resume from")
        state = self.read_checkpoint_dict()
        if state.get("version") != CHECKPOINT_VERSION:
            raise ConfigError(f"{self.checkpoint_path}: checkpoint version {state.get('version')} is not "
                              f"{CHECKPOINT_VERSION}")
        return state

    def truncate_log(self, generations: int) -> None:
        """Keep the log lines of the checkpointed generations only (resume after an interruption)."""
        kept = [r for r in self.read_log() if r["generation"] <= generations]
        self.log_path.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))

    def write_hall_of_fame(self, entries: list[dict[str, Any]]) -> None:
        _write_json(self.hall_of_fame_path, entries)

    def read_hall_of_fame(self) -> list[dict[str, Any]]:
        return json.loads(self.hall_of_fame_path.read_text())

    def write_result(self, result: dict[str, Any]) -> None:
        _write_json(self.result_path, result)

    def read_result(self) -> dict[str, Any] | None:
        """result.json, or None while the run has none (interrupted or still running)."""
        return json.loads(self.result_path.read_text()) if self.result_path.is_file() else None

