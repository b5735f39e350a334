"""The ground-truth CSV, written one finished arch at a time so that a run can be resumed.

Beside ``FILE.csv`` sits ``FILE.settings.json``, the settings that produced it; rerunning with other
settings is refused, because mixing accuracies from different training recipes would silently
corrupt the ranking.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from autoproxy.errors import GroundTruthError
from autoproxy.groundtruth.train import TrainResult

COLUMNS = ("arch", "accuracy", "params", "flops", "seconds")


def settings_path(csv_path: Path) -> Path:
    """``runs/x.csv`` → ``runs/x.settings.json``."""
    return csv_path.with_name(csv_path.stem + ".settings.json")


class GroundTruthStore:
    """Appends finished archs to the CSV (flushed and fsynced per row) and knows which are done."""

    def __init__(self, path: Path, settings: dict) -> None:
        self.path = Path(path)
        self._check_or_write_settings(settings)
        self.done: dict[str, TrainResult] = self._read_rows()

    def append(self, result: TrainResult) -> None:
        row = io.StringIO()
        csv.writer(row, lineterminator="\n").writerow([
            result.key, f"{result.accuracy:.4f}", f"{result.params:.6f}", f"{result.flops:.6f}",
            f"{result.seconds:.3f}"])
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write(row.getvalue())    # one write per row: a crash loses at most this row
            handle.flush()
            os.fsync(handle.fileno())
        self.done[result.key] = result

    def _check_or_write_settings(self, settings: dict) -> None:
        sidecar = settings_path(self.path)
        if sidecar.is_file():
            try:
                recorded = json.loads(sidecar.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise GroundTruthError(f"{sidecar}: not valid JSON ({err})") from None
            differing = [name for name in sorted(set(settings) | set(recorded))
                         if recorded.get(name) != settings.get(name)]
            if differing:
                name = differing[0]
                raise GroundTruthError(
                    f"{self.path} was made with {name}={recorded.get(name)!r}, not {settings.get(name)!r}; "
                    f"rerun with the same settings or choose another --out")
            return
        if self.path.is_file() and self.path.stat().st_size > 0:
            raise GroundTruthError(f"{self.path} exists without {sidecar.name}; it was not written by "
                                   f"'groundtruth train', choose another --out")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def _read_rows(self) -> dict[str, TrainResult]:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            self.path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
            return {}
        self._drop_torn_last_row()
        with open(self.path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or tuple(header) != COLUMNS:
                raise GroundTruthError(f"{self.path}: header {header}, expected {','.join(COLUMNS)}")
            done = {}
            for line, row in enumerate(reader, start=2):
                done[row[0] if row else ""] = self._parse_row(row, line)
        return done

    def _parse_row(self, row: list[str], line: int) -> TrainResult:
        if len(row) != len(COLUMNS):
            raise GroundTruthError(f"{self.path}:{line}: {len(row)} fields, expected {len(COLUMNS)}")
        try:
            numbers = [float(value) for value in row[1:]]
        except ValueError:
            raise GroundTruthError(f"{self.path}:{line}: non-numeric value in {row[1:]}") from None
        if not all(math.isfinite(number) for number in numbers):
            raise GroundTruthError(f"{self.path}:{line}: non-finite value in {row[1:]}")
        return TrainResult(row[0], *numbers)

    def _drop_torn_last_row(self) -> None:
        """A run killed mid-write leaves a last line without its newline: forget that row."""
        with open(self.path, "rb+") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return
            handle.truncate(data.rfind(b"\n") + 1)
