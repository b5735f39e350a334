"""Ground truth: NAS-Bench-Suite-Zero JSON files and plain CSV files → ``ArchRecord``s.

The JSON layout is ``{search_space: {task: {arch_key: record}}}`` (NASLib's ``zc_*.json``), or
``{task: {arch_key: record}}`` without the search-space level (NASLib's NAS-Bench-301 file), which
the caller names with ``space=``. A record
holds ``val_accuracy`` plus one field per reference proxy, either a number or ``{"score", "time"}``.
NASLib wrote ``-1e8``, ``Infinity`` or ``NaN`` where a proxy failed; those become ``nan`` so that
rankings skip them instead of treating them as extreme scores.

A CSV holds one space and task: columns ``arch`` and ``accuracy``, optionally ``space``, ``task``,
``idx``, and any number of score columns (``params``, ``flops``, proxy names); empty cells are ``nan``.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from autoproxy.errors import BenchmarkError

#: The search-space names NAS-Bench-Suite-Zero uses, mapped to ours.
SPACE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "nasbench201": "nb201",
        "nb201": "nb201",
        "nasbench101": "nb101",
        "nb101": "nb101",
        "nasbench301": "nb301",
        "nb301": "nb301",
        "mbnet": "mbnet",  # autoproxy's own MobileNet/ResNet space (no Suite-Zero name)
    }
)
FAILURE_MARKER = -1e8
_METADATA_FIELDS = ("idx", "arch")
_CSV_RESERVED = ("arch", "accuracy", "space", "task", "idx", "seconds")  # seconds: training time, not a proxy


@dataclass(frozen=True)
class ArchRecord:
    """One trained architecture: its validation accuracy and the reference proxy scores."""

    space: str
    task: str
    key: str
    accuracy: float
    scores: Mapping[str, float]
    idx: int | None = None
    #: Seconds NASLib needed per proxy (NAS-Bench-201 file only; empty when the file has none).
    times: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def canonical_arch_key(text: str) -> str:
    """``"(0,2, 3)"`` → ``"(0, 2, 3)"``: the one spelling every module uses for an arch key.

    Keys are integer tuples, possibly nested (NAS-Bench-301's ``[[(0, 1), ...], [...]]``). Raises
    ``ValueError`` when ``text`` is not such a key.
    """
    return format_key(parse_key(text))


def format_key(values: Sequence[Any]) -> str:
    """The canonical spelling of a key: a sequence of integers as a tuple ``"(0, 2, 3)"``, a sequence of
    sequences as a list, so NAS-Bench-301's keys read as in its file: ``"[[(0, 0), (1, 5), ...], [...]]"``."""
    items = ", ".join(
        format_key(value) if isinstance(value, (list, tuple)) else str(int(value)) for value in values
    )
    return f"[{items}]" if any(isinstance(value, (list, tuple)) for value in values) else f"({items})"


KeyValues = tuple[Any, ...]  # integers, or (at most MAX_KEY_DEPTH levels of) tuples of them
MAX_KEY_DEPTH = 4
_KEY_TOKEN = re.compile(r"\s*([\[\]()]|,|[+-]?\d+)\s*")
_CLOSING = {"(": ")", "[": "]"}


def parse_key(text: str) -> KeyValues:
    """The integers of a key as (nested) tuples: ``"[[(0, 1)], [(2, 3)]]"`` → ``(((0, 1),), ((2, 3),))``.

    A hand-written reader (keys come from files; nothing is evaluated): brackets ``()`` or ``[]``,
    a trailing comma allowed, the items of one sequence either all integers or all sequences.
    Raises ``ValueError`` otherwise.
    """
    tokens = _key_tokens(text)
    values, end = _key_sequence(tokens, 0, 1, text)
    if end != len(tokens):
        raise ValueError(f"not an arch key: {text!r}")
    return values


def _key_tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text):
        match = _KEY_TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"not an arch key: {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _key_sequence(tokens: list[str], start: int, depth: int, text: str) -> tuple[KeyValues, int]:
    """The sequence opening at ``tokens[start]`` and the index after its closing bracket."""
    opening = tokens[start] if start < len(tokens) else ""
    if opening not in _CLOSING or depth > MAX_KEY_DEPTH:
        raise ValueError(f"not an arch key: {text!r}")
    items: list[Any] = []
    position = start + 1
    while _token(tokens, position) != _CLOSING[opening]:
        token = _token(tokens, position)
        if token in _CLOSING:
            item, position = _key_sequence(tokens, position, depth + 1, text)
        elif token.lstrip("+-").isdigit():
            item, position = int(token), position + 1
        else:
            raise ValueError(f"not an arch key: {text!r}")
        items.append(item)
        if _token(tokens, position) == ",":
            position += 1
        elif _token(tokens, position) != _CLOSING[opening]:
            raise ValueError(f"not an arch key: {text!r}")
    if len({isinstance(item, tuple) for item in items}) > 1:
        raise ValueError(f"not an arch key (integers mixed with sequences): {text!r}")
    return tuple(items), position + 1


def _token(tokens: list[str], position: int) -> str:
    return tokens[position] if position < len(tokens) else ""


def load_benchmark(
    path: str | Path, space: str | None = None, task: str | None = None
) -> list[ArchRecord]:
    """Records of a ``.json`` (NAS-Bench-Suite-Zero) or ``.csv`` file, optionally one space/task only.

    ``space`` accepts our names (``"nb201"``) or the file's (``"nasbench201"``); a JSON file without
    the search-space level (NAS-Bench-301) needs it. Raises
    ``BenchmarkError`` naming the file and key for a missing or malformed file, or when the
    requested space/task is absent.
    """
    path = Path(path)
    wanted_space = _our_space(space, path) if space is not None else None
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such benchmark file")
    if path.suffix.lower() == ".json":
        records = _load_json(path, wanted_space, task)
    elif path.suffix.lower() == ".csv":
        records = _load_csv(path, wanted_space, task)
    else:
        raise BenchmarkError(f"{path}: unknown benchmark format (expected .json or .csv)")
    if not records:
        raise BenchmarkError(f"{path}: no records for space={space!r} task={task!r}")
    return records


def _our_space(name: str, path: Path) -> str:
    """Our name of a space: a file's alias of a built-in one, or a plug-in space's name as given."""
    from autoproxy.spaces.plugins import is_plugin_space

    if name in SPACE_ALIASES:
        return SPACE_ALIASES[name]
    if is_plugin_space(name):
        return name
    known = ", ".join(sorted(SPACE_ALIASES))
    raise BenchmarkError(f"{path}: unknown search space {name!r} (known: {known}, plug-in spaces)")


# --------------------------------------------------------------------------------------------- JSON


def _load_json(path: Path, wanted_space: str | None, wanted_task: str | None) -> list[ArchRecord]:
    document = _read_json(path)
    if not isinstance(document, dict):
        raise BenchmarkError(f"{path}: top level must be an object {{search_space: {{task: ...}}}}")
    if _names_tasks(document):
        if wanted_space is None:
            layout = "{task: {arch_key: record}}"
            raise BenchmarkError(f"{path}: no search-space level ({layout}); pass the space")
        document = {wanted_space: document}
    records: list[ArchRecord] = []
    found_space = found_task = False
    for file_space, tasks in document.items():
        if wanted_space is not None and SPACE_ALIASES.get(file_space, file_space) != wanted_space:
            continue
        our_space = _our_space(file_space, path)
        found_space = True
        if not isinstance(tasks, dict):
            raise BenchmarkError(f"{path}: {file_space}: expected an object of tasks")
        for task, archs in tasks.items():
            if wanted_task is not None and task != wanted_task:
                continue
            found_task = True
            if not isinstance(archs, dict):
                raise BenchmarkError(f"{path}: {file_space}/{task}: expected an object of archs")
            for key, record in archs.items():
                where = f"{path}: {file_space}/{task}/{key}"
                records.append(_json_record(where, our_space, task, key, record))
    if wanted_space is not None and not found_space:
        raise BenchmarkError(f"{path}: no search space {wanted_space!r} (has {sorted(document)})")
    if wanted_task is not None and not found_task:
        raise BenchmarkError(f"{path}: no task {wanted_task!r}")
    return records


def _names_tasks(document: dict[str, Any]) -> bool:
    """Whether the top level names tasks, not spaces: then the level below it holds arch keys."""
    return any(
        _is_arch_key(name) for archs in document.values() if isinstance(archs, dict) for name in archs
    )


def _is_arch_key(text: str) -> bool:
    try:
        parse_key(text)
    except ValueError:
        return False
    return True


def _read_json(path: Path) -> Any:
    def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in pairs:
            if name in result:
                raise BenchmarkError(f"{path}: duplicate key {name!r}")
            result[name] = value
        return result

    try:
        with path.open(encoding="utf-8") as handle:
            # json maps Infinity/NaN to floats by default; parse_constant makes that explicit.
            return json.load(handle, object_pairs_hook=reject_duplicates, parse_constant=float)
    except json.JSONDecodeError as error:
        raise BenchmarkError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkError(f"{path}: cannot read: {error}") from None


def _json_record(where: str, space: str, task: str, key: str, record: Any) -> ArchRecord:
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where}: record must be an object")
    if "val_accuracy" not in record:
        raise BenchmarkError(f"{where}: missing val_accuracy")
    accuracy = _finite_number(where, "val_accuracy", record["val_accuracy"])
    scores: dict[str, float] = {}
    times: dict[str, float] = {}
    for name, value in record.items():
        if name == "val_accuracy" or name in _METADATA_FIELDS:
            continue
        if isinstance(value, dict):
            if "score" not in value:
                raise BenchmarkError(f"{where}: {name}: object without 'score'")
            scores[name] = _score(where, name, value["score"])
            if "time" in value:
                times[name] = _finite_number(where, f"{name}.time", value["time"])
        else:
            scores[name] = _score(where, name, value)
    return ArchRecord(
        space=space,
        task=task,
        key=_key(where, key),
        accuracy=accuracy,
        scores=MappingProxyType(scores),
        idx=_index(where, record.get("idx")),
        times=MappingProxyType(times),
    )


# ---------------------------------------------------------------------------------------------- CSV


def _load_csv(path: Path, wanted_space: str | None, wanted_task: str | None) -> list[ArchRecord]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
            columns = list(rows[0].keys()) if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BenchmarkError(f"{path}: cannot read CSV: {error}") from None
    for required in ("arch", "accuracy"):
        if required not in columns:
            raise BenchmarkError(f"{path}: missing column {required!r} (has {columns})")
    if "space" not in columns and wanted_space is None:
        raise BenchmarkError(f"{path}: no 'space' column; pass the space")
    if "task" not in columns and wanted_task is None:
        raise BenchmarkError(f"{path}: no 'task' column; pass the task")
    score_columns = [name for name in columns if name not in _CSV_RESERVED]
    records = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{path}: line {line}"
        if None in row or any(value is None for value in row.values()):
            raise BenchmarkError(f"{where}: wrong number of cells")
        space = _our_space(row["space"], path) if "space" in row else wanted_space
        task = row["task"] if "task" in row else wanted_task
        if (wanted_space is not None and space != wanted_space) or (
            wanted_task is not None and task != wanted_task
        ):
            continue
        where = f"{where} ({row['arch']})"
        accuracy = _finite_number(where, "accuracy", _csv_number(where, "accuracy", row["accuracy"]))
        scores = {
            name: _score(where, name, _csv_number(where, name, row[name])) for name in score_columns
        }
        records.append(
            ArchRecord(
                space=space,
                task=task,
                key=_key(where, row["arch"]),
                accuracy=accuracy,
                scores=MappingProxyType(scores),
                idx=_index(where, row.get("idx") or None),
            )
        )
    return records


def _csv_number(where: str, name: str, cell: str) -> float:
    if cell.strip() == "":
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise BenchmarkError(f"{where}: {name}: not a number: {cell!r}") from None


# ------------------------------------------------------------------------------------------- fields


def _finite_number(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BenchmarkError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def _score(where: str, name: str, value: Any) -> float:
    """A proxy score; NASLib's failure markers (-1e8, ±inf, nan) become nan."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BenchmarkError(f"{where}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value == FAILURE_MARKER:
        return math.nan
    return value


def _key(where: str, key: str) -> str:
    try:
        return canonical_arch_key(key)
    except ValueError as error:
        raise BenchmarkError(f"{where}: bad arch key: {error}") from None


def _index(where: str, value: Any) -> int | None:
    """NASLib stores ``idx`` as a string ("534"); accept that or an integer."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise BenchmarkError(f"{where}: idx must be an integer, got {value!r}")
