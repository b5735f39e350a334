"""One registry for every proxy: the built-in reference proxies, discovered proxies saved as JSON
files in a user registry directory, and proxies shipped by other packages through the
``autoproxy.proxies`` entry-point group.

A registry file is data, never code: it is read with ``json.loads`` and its expression is parsed by
the expression language's own parser against the whitelisted primitives and leaves, so a file that
holds Python code, unknown names or inconsistent forms is refused with one line naming the file.
What is shown or exported is derived from the parsed expression; the free-text fields
(``simplified``, the strings of ``source``) are for people reading the file, must be printable
single lines, and are never displayed as the formula nor written into generated code. A bad file
hides only itself: listing reports it and goes on.

File format (``<registry dir>/<name>.json``)::

    {"format": 1, "name": "...", "expression": "<canonical text>", "tree": {<JSON form>},
     "simplified": "...", "statistics": {"sub_batches": 4}, "source": {...run, scores...}}
"""
from __future__ import annotations

import builtins
import json
import keyword
import os
import re
import reprlib
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from autoproxy.atomic import write_atomic
from autoproxy.errors import ExpressionError, RegistryError

REGISTRY_ENV = "AUTOPROXY_REGISTRY"
ENTRY_POINT_GROUP = "autoproxy.proxies"
FORMAT_VERSION = 1
DEFAULT_SUB_BATCHES = 4  # autoproxy.statistics.DEFAULT_SUB_BATCHES, repeated to keep this module torch-free
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_KEYS = frozenset({"format", "name", "expression", "tree", "simplified", "statistics", "source"})
_REQUIRED = frozenset({"format", "name", "expression", "tree"})
_MAX_TEXT = 4096            # characters of one free-text string
_MAX_SOURCE_DEPTH = 4       # nesting of the 'source' object (run, config, scores by task)


class RegistryWarning(UserWarning):
    """A registry file or entry point that was skipped while listing (the message names it)."""


@dataclass(frozen=True)
class Proxy:
    """A named proxy, callable with the NASLib / zero-cost-nas measure signature."""

    name: str
    kind: str                                   # "direct" (a function) | "expression"
    origin: str                                 # "built-in", a file path, or "entry point <target>"
    expression: str | None = None               # canonical text, for expression proxies
    document: Mapping[str, Any] = field(default_factory=dict)   # the validated registry document
    function: Callable | None = None            # the implementation of a direct proxy

    @property
    def sub_batches(self) -> int:
        return int(self.document.get("statistics", {}).get("sub_batches", DEFAULT_SUB_BATCHES))

    def tree(self):
        """The typed tree of an expression proxy."""
        from primitives.tree import parse

        if self.expression is None:
            raise RegistryError(f"proxy {self.name!r} is a direct proxy, it has no expression")
        return parse(self.expression)

    def __call__(self, net, inputs, targets, loss_fn=None, split_data: int = 1) -> float:
        """The proxy's score of ``net`` on ``(inputs, targets)``; ``split_data`` runs the batch in that
        many chunks (less memory, the same score up to float rounding without train-mode batch norm)."""
        if self.function is not None:
            return float(self.function(net, inputs, targets, loss_fn=loss_fn, split_data=split_data))
        from autoproxy.expression_proxy import expression_score

        return expression_score(self.tree(), net, inputs, targets, loss_fn, sub_batches=self.sub_batches,
                                split_data=split_data)


def registry_dir() -> Path:
    """The user registry: ``$AUTOPROXY_REGISTRY``, else ``~/.local/share/autoproxy/proxies``."""
    configured = os.environ.get(REGISTRY_ENV)
    return Path(configured) if configured else Path.home() / ".local" / "share" / "autoproxy" / "proxies"


def check_name(name: str) -> str:
    """Proxy names are Python identifiers that an exported module can define as its function: no
    keyword or soft keyword, and no builtin (the bundled code calls builtins such as ``sum``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(f"invalid proxy name {reprlib.repr(name)}: use letters, digits and '_' "
                            f"(a Python identifier)")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name):
        raise RegistryError(f"invalid proxy name {name!r}: a Python keyword or builtin name; choose another")
    return name


def _check_free_text(value: Any, where: str, depth: int = 0) -> None:
    """Strings anywhere in ``value`` must be printable single lines (no newline, escape or control
    character) of at most ``_MAX_TEXT`` characters, in JSON nested at most ``_MAX_SOURCE_DEPTH`` deep."""
    if depth > _MAX_SOURCE_DEPTH:
        raise RegistryError(f"{where}: nested deeper than {_MAX_SOURCE_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > _MAX_TEXT or not value.isprintable():
            raise RegistryError(f"{where}: free text must be one printable line of at most {_MAX_TEXT} characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_free_text(key, where, depth + 1)
            _check_free_text(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_free_text(item, where, depth + 1)


def validate_document(doc: Any, where: str) -> dict[str, Any]:
    """A registry document checked field by field; the expression and tree must parse against the
    whitelisted primitives and agree with each other."""
    from primitives.tree import from_json, parse, to_string

    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: a proxy document must be a JSON object")
    unknown, missing = sorted(set(doc) - _KEYS), sorted(_REQUIRED - set(doc))
    if unknown or missing:
        raise RegistryError(f"{where}: unknown fields {unknown} / missing fields {missing}")
    if doc["format"] != FORMAT_VERSION:
        raise RegistryError(f"{where}: format {reprlib.repr(doc['format'])} is not {FORMAT_VERSION}")
    try:
        check_name(doc["name"])
    except RegistryError as err:
        raise RegistryError(f"{where}: {err}") from None
    if not isinstance(doc["expression"], str):
        raise RegistryError(f"{where}: 'expression' must be a string")
    try:
        text = to_string(parse(doc["expression"]))
        tree_text = to_string(from_json(doc["tree"]))
    except ExpressionError as err:
        raise RegistryError(f"{where}: refused, not an expression over the known primitives: {err}") from None
    if text != tree_text:
        raise RegistryError(f"{where}: 'expression' ({text}) and 'tree' ({tree_text}) disagree")
    statistics = doc.get("statistics", {})
    sub_batches = statistics.get("sub_batches", DEFAULT_SUB_BATCHES) if isinstance(statistics, dict) else None
    if set(statistics or {}) - {"sub_batches"} or isinstance(sub_batches, bool) \
            or not isinstance(sub_batches, int) or sub_batches < 1:
        raise RegistryError(f"{where}: 'statistics' must be {{\"sub_batches\": positive int}}")
    if "simplified" in doc and not isinstance(doc["simplified"], str):
        raise RegistryError(f"{where}: 'simplified' must be a string")
    if "source" in doc and not isinstance(doc["source"], dict):
        raise RegistryError(f"{where}: 'source' must be an object")
    for key in ("simplified", "source"):
        _check_free_text(doc.get(key), f"{where}: {key!r}")
    return {**doc, "expression": text}


def proxy_document(name: str, tree, *, sub_batches: int = DEFAULT_SUB_BATCHES,
                   source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The registry document of a typed tree."""
    from primitives.symbolic import simplified_text
    from primitives.tree import to_json, to_string

    return {"format": FORMAT_VERSION, "name": check_name(name), "expression": to_string(tree),
            "tree": to_json(tree), "simplified": simplified_text(tree),
            "statistics": {"sub_batches": sub_batches}, "source": dict(source or {})}


def _expression_proxy(doc: dict[str, Any], origin: str) -> Proxy:
    return Proxy(doc["name"], "expression", origin, expression=doc["expression"], document=doc)


def read_proxy_file(path: str | Path) -> Proxy:
    """An expression proxy from a registry file (JSON only; anything else is refused)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RegistryError(f"cannot read proxy file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise RegistryError(f"{path}: refused, not UTF-8 JSON text (registry files are data, never code)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise RegistryError(f"{path}: refused, not JSON (registry files are data, never code): {err.msg} "
                            f"at line {err.lineno}") from None
    except RecursionError:
        raise RegistryError(f"{path}: refused, JSON nested too deeply to be a proxy document") from None
    return _expression_proxy(validate_document(doc, str(path)), str(path))


def _builtin_names() -> list[str]:
    from autoproxy.proxies import reference_names

    return reference_names()


def _builtin(name: str) -> Proxy:
    from autoproxy.proxies import reference_proxy

    return Proxy(name, "direct", "built-in", function=reference_proxy(name))


def _user_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {path.stem: path for path in sorted(directory.glob("*.json"))}


def _user_file_proxy(name: str, path: Path) -> Proxy:
    """The proxy of registry file ``<name>.json``, which must hold proxy ``name``."""
    proxy = read_proxy_file(path)
    if proxy.name != name:
        raise RegistryError(f"{path}: holds proxy {proxy.name!r}; the file must be named {proxy.name}.json")
    return proxy


def _entry_point_proxy(point) -> Proxy:
    """A proxy another package declares under ``[project.entry-points."autoproxy.proxies"]``: the
    target is either a function with the measure signature or a registry document (a dict)."""
    where = f"entry point {point.name} = {point.value}"
    try:
        target = point.load()
    except Exception as err:  # a broken third-party package is named, never a traceback
        raise RegistryError(f"{where}: cannot load: {type(err).__name__}: {err}") from None
    if isinstance(target, Mapping):
        doc = validate_document(dict(target), where)
        if doc["name"] != point.name:
            raise RegistryError(f"{where}: document name {doc['name']!r} differs from the entry point name")
        return _expression_proxy(doc, where)
    if callable(target):
        try:
            return Proxy(check_name(point.name), "direct", where, function=target)
        except RegistryError as err:
            raise RegistryError(f"{where}: {err}") from None
    raise RegistryError(f"{where}: target is neither a proxy function nor a proxy document")


def _entry_points(name: str | None = None) -> list:
    from importlib.metadata import entry_points

    points = entry_points(group=ENTRY_POINT_GROUP)
    return [point for point in points if name is None or point.name == name]


@dataclass(frozen=True)
class Listing:
    """The proxies that load, by name, and one line per registry file or entry point that does not."""

    proxies: dict[str, Proxy]
    problems: list[str]


def scan_proxies(directory: Path | None = None) -> Listing:
    """Every proxy that loads; a bad file or entry point hides only itself. A name defined twice keeps
    its first definition in the order ``get_proxy`` looks names up: built-in, user file, entry point."""
    directory = registry_dir() if directory is None else Path(directory)
    proxies = {name: _builtin(name) for name in _builtin_names()}
    problems: list[str] = []
    loaders = [partial(_user_file_proxy, name, path) for name, path in _user_files(directory).items()]
    loaders += [partial(_entry_point_proxy, point) for point in _entry_points()]
    for load in loaders:
        try:
            proxy = load()
        except RegistryError as err:
            problems.append(str(err))
            continue
        if proxy.name in proxies:
            problems.append(f"proxy {proxy.name!r} is defined twice: {proxies[proxy.name].origin} and "
                            f"{proxy.origin}; the first is used")
            continue
        proxies[proxy.name] = proxy
    return Listing(dict(sorted(proxies.items())), problems)


def all_proxies(directory: Path | None = None) -> dict[str, Proxy]:
    """Every proxy that loads, by name; each file or entry point that does not is a ``RegistryWarning``."""
    listing = scan_proxies(directory)
    for problem in listing.problems:
        warnings.warn(problem, RegistryWarning, stacklevel=2)
    return listing.proxies


def get_proxy(name_or_path: str | Path, directory: Path | None = None) -> Proxy:
    """A proxy by registry name, or from a registry file path (``*.json`` or an existing file)."""
    text = str(name_or_path)
    if text.endswith(".json") or os.sep in text or Path(text).is_file():
        return read_proxy_file(text)
    directory = registry_dir() if directory is None else Path(directory)
    if text in _builtin_names():
        return _builtin(text)
    path = directory / f"{check_name(text)}.json"
    if path.is_file():
        return _user_file_proxy(text, path)
    points = _entry_points(text)
    if points:
        return _entry_point_proxy(points[0])
    known = ", ".join(scan_proxies(directory).proxies)
    raise RegistryError(f"unknown proxy {text!r}; known: {known}")


def registry_entry(doc: Mapping[str, Any], directory: Path | None = None, *,
                   overwrite: bool = False) -> tuple[Path, bytes]:
    """Where a proxy document goes in the user registry and its file content, checked before anything
    is written: the document must validate, built-in names are reserved, a file is replaced only
    with ``overwrite``."""
    directory = registry_dir() if directory is None else Path(directory)
    doc = validate_document(dict(doc), f"proxy {doc.get('name')!r}")
    name = doc["name"]
    if name in _builtin_names():
        raise RegistryError(f"{name!r} is a built-in proxy; choose another --name")
    path = directory / f"{name}.json"
    if path.exists() and not overwrite:
        raise RegistryError(f"{path} exists; pass --overwrite to replace it or choose another --name")
    return path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()


def save_proxy(doc: Mapping[str, Any], directory: Path | None = None, *, overwrite: bool = False) -> Path:
    """Write a proxy document into the user registry (atomically); built-in names are reserved."""
    path, content = registry_entry(doc, directory, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, content)
    return path
