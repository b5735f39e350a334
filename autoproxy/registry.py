"""One registry for every proxy: the built-in reference proxies, discovered proxies saved as JSON
files in a user registry directory, and proxies shipped by other packages through the
``autoproxy.proxies`` entry-point group.

A registry file is data, never code: it is read with ``json.loads`` and its expression is parsed by
the expression language's own parser against the whitelisted primitives and leaves, so a file that
holds Python code, unknown names or inconsistent forms is refused with one line naming the file.

File format (``<registry dir>/<name>.json``)::

    {"format": 1, "name": "...", "expression": "<canonical text>", "tree": {<JSON form>},
     "simplified": "...", "statistics": {"sub_batches": 4}, "source": {...run, scores...}}
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from autoproxy.errors import AutoproxyError, ExpressionError

REGISTRY_ENV = "AUTOPROXY_REGISTRY"
ENTRY_POINT_GROUP = "autoproxy.proxies"
FORMAT_VERSION = 1
DEFAULT_SUB_BATCHES = 4  # autoproxy.statistics.DEFAULT_SUB_BATCHES, repeated to keep this module torch-free
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_KEYS = frozenset({"format", "name", "expression", "tree", "simplified", "statistics", "source"})
_REQUIRED = frozenset({"format", "name", "expression", "tree"})


class RegistryError(AutoproxyError):
    """A proxy that cannot be found, saved or trusted (the message names the file or name)."""


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
        """The proxy's score of ``net`` on ``(inputs, targets)``. Expression proxies compute their
        statistics on the whole batch, so ``split_data`` only matters to direct proxies."""
        if self.function is not None:
            return float(self.function(net, inputs, targets, loss_fn=loss_fn, split_data=split_data))
        from autoproxy.expression_proxy import expression_score

        return expression_score(self.tree(), net, inputs, targets, loss_fn, sub_batches=self.sub_batches)


def registry_dir() -> Path:
    """The user registry: ``$AUTOPROXY_REGISTRY``, else ``~/.local/share/autoproxy/proxies``."""
    configured = os.environ.get(REGISTRY_ENV)
    return Path(configured) if configured else Path.home() / ".local" / "share" / "autoproxy" / "proxies"


def check_name(name: str) -> str:
    """Proxy names are Python identifiers (an exported module defines a function of that name)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(f"invalid proxy name {name!r}: use letters, digits and '_' (a Python identifier)")
    return name


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
        raise RegistryError(f"{where}: format {doc['format']!r} is not {FORMAT_VERSION}")
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
    for key in ("simplified",):
        if key in doc and not isinstance(doc[key], str):
            raise RegistryError(f"{where}: {key!r} must be a string")
    if "source" in doc and not isinstance(doc["source"], dict):
        raise RegistryError(f"{where}: 'source' must be an object")
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
        text = path.read_text()
    except OSError as err:
        raise RegistryError(f"cannot read proxy file {path}: {err.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise RegistryError(f"{path}: refused, not JSON (registry files are data, never code): {err.msg} "
                            f"at line {err.lineno}") from None
    return _expression_proxy(validate_document(doc, str(path)), str(path))


def _builtin_names() -> list[str]:
    from autoproxy.proxies import list_proxies

    return list_proxies()


def _builtin(name: str) -> Proxy:
    from autoproxy.proxies import get_proxy

    return Proxy(name, "direct", "built-in", function=get_proxy(name))


def _user_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {path.stem: path for path in sorted(directory.glob("*.json"))}


def _entry_point_proxies() -> dict[str, Proxy]:
    """Proxies other packages declare under ``[project.entry-points."autoproxy.proxies"]``: the
    target is either a function with the measure signature or a registry document (a dict)."""
    from importlib.metadata import entry_points

    found: dict[str, Proxy] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value}"
        try:
            target = point.load()
        except Exception as err:  # a broken third-party package is named, never a traceback
            raise RegistryError(f"{where}: cannot load: {type(err).__name__}: {err}") from None
        if isinstance(target, Mapping):
            doc = validate_document(dict(target), where)
            if doc["name"] != point.name:
                raise RegistryError(f"{where}: document name {doc['name']!r} differs from the entry point name")
            found[point.name] = _expression_proxy(doc, where)
        elif callable(target):
            found[check_name(point.name)] = Proxy(point.name, "direct", where, function=target)
        else:
            raise RegistryError(f"{where}: target is neither a proxy function nor a proxy document")
    return found


def all_proxies(directory: Path | None = None) -> dict[str, Proxy]:
    """Every registered proxy by name; a name registered twice is an error naming both places."""
    directory = registry_dir() if directory is None else Path(directory)
    proxies = {name: _builtin(name) for name in _builtin_names()}
    for name, path in _user_files(directory).items():
        proxy = read_proxy_file(path)
        if proxy.name != name:
            raise RegistryError(f"{path}: holds proxy {proxy.name!r}; the file must be named {proxy.name}.json")
        _add(proxies, proxy)
    for proxy in _entry_point_proxies().values():
        _add(proxies, proxy)
    return dict(sorted(proxies.items()))


def _add(proxies: dict[str, Proxy], proxy: Proxy) -> None:
    if proxy.name in proxies:
        raise RegistryError(f"proxy {proxy.name!r} is defined twice: {proxies[proxy.name].origin} and {proxy.origin}")
    proxies[proxy.name] = proxy


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
        return read_proxy_file(path)
    from_packages = _entry_point_proxies()
    if text in from_packages:
        return from_packages[text]
    known = ", ".join(all_proxies(directory))
    raise RegistryError(f"unknown proxy {text!r}; known: {known}")


def save_proxy(doc: Mapping[str, Any], directory: Path | None = None, *, overwrite: bool = False) -> Path:
    """Write a proxy document into the user registry (atomically); built-in names are reserved."""
    directory = registry_dir() if directory is None else Path(directory)
    doc = validate_document(dict(doc), f"proxy {doc.get('name')!r}")
    name = doc["name"]
    if name in _builtin_names():
        raise RegistryError(f"{name!r} is a built-in proxy; choose another --name")
    path = directory / f"{name}.json"
    if path.exists() and not overwrite:
        raise RegistryError(f"{path} exists; pass --overwrite to replace it or choose another --name")
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    os.replace(temporary, path)
    return path
