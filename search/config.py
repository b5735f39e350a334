"""Search configuration: one frozen dataclass, named JSON configs in ``search/configs/``, and
validation that names the culprit in one line."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoproxy.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

_CHOICES = {
    "metric": ("kendall", "spearman"),
    "task_aggregate": ("mean", "min"),
    "choice_metric": ("kendall", "spearman"),
    "subset_schedule": ("run", "generation"),
    "selection": ("double_tournament", "nsga2"),
    "executor": ("ray", "serial"),
}
_MUTATIONS = ("subtree", "point", "shrink", "ephemeral")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a run. Together with ``seed`` it fixes the discovered formula."""

    name: str = "custom"
    caches: tuple[str, ...] = ()
    transfer_caches: tuple[str, ...] = ()   # reported on by the final report, never searched on
    # fitness
    metric: str = "kendall"
    choice_metric: str = "spearman"  # validation score of the final choice (search/front.py says why)
    task_aggregate: str = "mean"
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int | None = None    # seeds the train/validation/test split; None: ``seed`` (so that runs
                                     # of several seeds can share one split and their test figures compare)
    subsets: int = 0                 # 0: Kendall/Spearman on the whole train split; K: mean over K subsets (EZNAS)
    subset_size: int = 20
    subset_schedule: str = "run"
    sketch: bool = True              # train fitness on search-time sketches (primitives.packed.SEARCH_SKETCH)
    prune_params_equivalent: bool = True
    params_threshold: float = 0.99
    # evolution
    population: int = 64
    generations: int | None = 50
    time_budget_s: float | None = None
    elites: int = 2
    crossover_prob: float = 0.5
    mutation_prob: float = 0.4
    mutation_weights: dict[str, float] = field(
        default_factory=lambda: {"subtree": 1.0, "point": 1.0, "shrink": 0.5, "ephemeral": 0.5})
    init_min_depth: int = 1
    init_max_depth: int = 4
    max_height: int = 10
    max_size: int = 40
    selection: str = "double_tournament"
    tournament_size: int = 5
    parsimony_size: float = 1.4
    parsimony_coefficient: float = 0.0   # selection fitness loses this much per unit of complexity
    seed_reference: bool = True
    diversity_threshold: float = 0.99
    diversity_penalty: float = 0.5
    diversity_probe: int = 64
    seed: int = 0
    # final report: the chosen formula on the test split under init seeds 0..inits-1 × batch seeds
    # 0..batches-1 (autoproxy.stability); 0 disables it
    stability_inits: int = 5
    stability_batches: int = 3
    # execution
    executor: str = "ray"
    workers: int | None = None
    ray_address: str | None = None
    object_store_mb: int = 512

    @property
    def splits_seed(self) -> int:
        """The seed of the train/validation/test split."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> "SearchConfig":
        """A validated copy with ``changes`` applied; ``None`` values mean "keep"."""
        merged = self.to_dict()
        merged.update({k: v for k, v in changes.items() if v is not None})
        return config_from_dict(merged, source="options")


def _check(condition: bool, source: str, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{source}: {key} {message}")


def config_from_dict(data: dict[str, Any], source: str) -> SearchConfig:
    """Build and validate a config; ``source`` names the file (or "options") in error messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config must be a JSON object")
    known = {f.name: f for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(data) - set(known))
    _check(not unknown, source, ", ".join(unknown), "is not a config key")
    values = dict(data)
    for key in ("caches", "transfer_caches"):
        if key in values:
            _check(isinstance(values[key], (list, tuple)) and all(isinstance(c, str) for c in values[key]),
                   source, key, "must be a list of cache directories")
            values[key] = tuple(values[key])
    if "split_fractions" in values:
        fractions = values["split_fractions"]
        _check(isinstance(fractions, (list, tuple)) and len(fractions) == 3
               and all(isinstance(f, (int, float)) and f >= 0 for f in fractions)
               and abs(sum(fractions) - 1.0) < 1e-6 and fractions[0] > 0,
               source, "split_fractions", "must be three non-negative fractions (train > 0) summing to 1")
        values["split_fractions"] = tuple(float(f) for f in fractions)
    config = SearchConfig(**values)
    for key, choices in _CHOICES.items():
        _check(getattr(config, key) in choices, source, key, f"must be one of {', '.join(choices)}")
    _check(isinstance(config.subsets, int) and not isinstance(config.subsets, bool) and config.subsets >= 0,
           source, "subsets", "must be a non-negative integer (0: the whole train split)")
    for key in ("subset_size", "population", "tournament_size",
                "init_min_depth", "max_height", "max_size", "diversity_probe", "object_store_mb"):
        value = getattr(config, key)
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, source, key,
               "must be a positive integer")
    _check(config.subset_size >= 2, source, "subset_size", "must be at least 2")
    _check(config.population >= 2, source, "population", "must be at least 2")
    _check(isinstance(config.elites, int) and 0 <= config.elites < config.population, source, "elites",
           "must be an integer in [0, population)")
    _check(config.init_max_depth >= config.init_min_depth, source, "init_max_depth", "must be >= init_min_depth")
    _check(config.generations is None or (isinstance(config.generations, int) and config.generations >= 0),
           source, "generations", "must be a non-negative integer or null")
    _check(config.time_budget_s is None or config.time_budget_s > 0, source, "time_budget_s", "must be positive")
    _check(config.generations is not None or config.time_budget_s is not None, source, "generations",
           "and time_budget_s cannot both be null (the run would never stop)")
    for key in ("crossover_prob", "mutation_prob", "diversity_threshold", "params_threshold", "parsimony_coefficient"):
        value = getattr(config, key)
        _check(isinstance(value, (int, float)) and 0.0 <= value <= 1.0, source, key, "must be in [0, 1]")
    _check(config.parsimony_size >= 1.0 and config.parsimony_size <= 2.0, source, "parsimony_size",
           "must be in [1, 2] (DEAP's double tournament)")
    weights = config.mutation_weights
    _check(isinstance(weights, dict) and weights and set(weights) <= set(_MUTATIONS)
           and all(isinstance(w, (int, float)) and w >= 0 for w in weights.values()) and sum(weights.values()) > 0,
           source, "mutation_weights", f"must map some of {', '.join(_MUTATIONS)} to non-negative weights")
    _check(config.workers is None or (isinstance(config.workers, int) and config.workers >= 1), source, "workers",
           "must be a positive integer or null")
    _check(isinstance(config.seed, int), source, "seed", "must be an integer")
    _check(config.split_seed is None or isinstance(config.split_seed, int), source, "split_seed",
           "must be an integer or null")
    for key in ("stability_inits", "stability_batches"):
        value = getattr(config, key)
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 0, source, key,
               "must be a non-negative integer (0 disables the stability report)")
    return config


def named_configs() -> list[str]:
    """Names of the configs shipped in ``search/configs/``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str) -> SearchConfig:
    """A shipped config by name (``nb201-cifar10``) or a JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ConfigError(f"config {name_or_path!r} is neither a file nor one of: {', '.join(named_configs())}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return config_from_dict(data, source=str(path))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """"24h", "30m", "90s", "1.5h", "2d" or plain seconds → seconds."""
    match = _DURATION.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"time budget {text!r} is not a positive duration like 24h, 30m or 90s")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
