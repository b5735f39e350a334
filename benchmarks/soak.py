"""Soak: run one search for a given wall time and record, per generation, the memory of every process
of the run, the run directory's file sizes, distinct formulas per second and the generation time; then
extrapolate each to 24 hours from a linear fit over the second half of the run.

    python benchmarks/soak.py --minutes 120 --out soak/           # writes soak/soak.csv, soak/soak.png
    python benchmarks/soak.py --smoke                             # a 3-second serial search on a tiny cache

RSS is read from /proc (Linux): the driver, and all its descendant processes (the local Ray node:
raylet, GCS, the scoring actors) together.
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _smoke import SMOKE_HELP, SMOKE_SEARCH, tiny_cache
from search.config import SearchConfig, load_config
from search.runner import resume_config, run_search

DAY_S = 24 * 3600.0
SMOKE_MINUTES = 3 / 60
RUN_FILES = ("evaluations.jsonl", "log.jsonl", "checkpoint.json", "hall_of_fame.json")


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of all its threads, recursively)."""
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        for task in sorted(Path(f"/proc/{parent}/task").glob("*")) if Path(f"/proc/{parent}").exists() else []:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            stack.extend(children)
    return found


class Recorder:
    """Collects one row per generation (the run's ``on_generation`` listener) and appends it to a CSV at
    once, so a soak that dies still leaves its curves."""

    def __init__(self, run: Path, table: Path) -> None:
        self.run = run
        self.table = table
        self.rows: list[dict[str, float]] = []
        self.last = time.monotonic()

    def __call__(self, line: dict) -> None:
        now = time.monotonic()
        row = {"generation": line["generation"], "elapsed_s": line["elapsed_s"],
               "generation_s": now - self.last, "evaluations": line["evaluations"],
               "evaluations_per_s": line["evaluations_per_s"], "evaluated_total": line["evaluated_total"],
               "rescored_total": line["rescored_total"],
               "driver_rss_mb": rss_bytes(os.getpid()) / 2**20,
               "children_rss_mb": sum(rss_bytes(p) for p in descendants(os.getpid())) / 2**20}
        for name in RUN_FILES:
            path = self.run / name
            row[name] = path.stat().st_size if path.exists() else 0
        self.rows.append(row)
        self.last = now
        with open(self.table, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if handle.tell() == 0:
                writer.writeheader()
            writer.writerow(row)


def read_table(path: Path) -> list[dict[str, float]]:
    """The rows a soak wrote (for ``--report``: summarise and plot again without running)."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def slope_per_hour(rows: list[dict], column: str) -> tuple[float, float]:
    """(value at the end, change per hour) from a least-squares line over the second half of the run."""
    half = rows[len(rows) // 2:]
    hours = np.array([r["elapsed_s"] for r in half]) / 3600.0
    values = np.array([r[column] for r in half], dtype=float)
    slope = float(np.polyfit(hours, values, 1)[0]) if len(half) > 2 and np.ptp(hours) > 0 else 0.0
    return float(values[-1]), slope


def summary(rows: list[dict]) -> list[str]:
    """Printed lines: each series now, its slope and its 24-hour extrapolation."""
    hours_left = (DAY_S - rows[-1]["elapsed_s"]) / 3600.0
    lines = []
    for column, unit, scale in (("driver_rss_mb", "MB", 1.0), ("children_rss_mb", "MB", 1.0),
                                ("evaluations.jsonl", "MB", 2**-20), ("log.jsonl", "MB", 2**-20),
                                ("checkpoint.json", "kB", 2**-10), ("evaluated_total", "formulas", 1.0)):
        now, slope = slope_per_hour(rows, column)
        lines.append(f"{column}: {now * scale:.1f} {unit} after {rows[-1]['elapsed_s'] / 3600:.2f} h, "
                     f"{slope * scale:+.2f} {unit}/h, 24 h: {(now + slope * hours_left) * scale:.1f} {unit}")
    quarter = max(1, len(rows) // 4)
    for column in ("evaluations_per_s", "generation_s"):
        first = np.mean([r[column] for r in rows[1:quarter + 1]])
        last = np.mean([r[column] for r in rows[-quarter:]])
        lines.append(f"{column}: first quarter {first:.2f}, last quarter {last:.2f}")
    journal = rows[-1]["evaluations.jsonl"] / max(1, rows[-1]["evaluated_total"])
    lines.append(f"journal bytes per formula: {journal:.0f}; rescored for behaviour: {rows[-1]['rescored_total']:.0f}")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [r["elapsed_s"] / 3600 for r in rows]
    panels = (("driver_rss_mb", "driver RSS (MB)"), ("children_rss_mb", "Ray processes RSS (MB)"),
              ("evaluations.jsonl", "journal (bytes)"), ("checkpoint.json", "checkpoint (bytes)"),
              ("evaluations_per_s", "distinct formulas / s"), ("generation_s", "generation time (s)"))
    figure, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for axis, (column, label) in zip(axes.flat, panels):
        axis.plot(hours, [r[column] for r in rows], linewidth=0.8)
        axis.set_xlabel("hours")
        axis.set_title(label)
    figure.suptitle("autoproxy soak: one search, per generation")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--config", default="nb201-digits")
    parser.add_argument("--cache", action="append", default=[], help="Replaces the config's caches.")
    parser.add_argument("--executor", choices=["ray", "serial"], default="ray")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="Folder for soak.csv, soak.png and the run (default: soak; "
                                                    "with --smoke a temporary one).")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--resume", metavar="RUN", help="Continue a soak's run directory (after a crash); "
                        "--minutes is then the total, rows are appended to OUT/soak.csv.")
    parser.add_argument("--report", metavar="CSV", help="Summarise and plot a soak.csv written earlier.")
    args = parser.parse_args()
    if args.report:
        report(read_table(Path(args.report)), Path(args.report).parent)
    elif args.smoke:
        smoke(args)
    else:
        soak(args, load_config(args.config), Path(args.out or "soak"))


def smoke(args: argparse.Namespace) -> None:
    """A search of a few seconds, serial, on a tiny cache unless caches are given."""
    with tempfile.TemporaryDirectory(prefix="soak-smoke-") as folder:
        args.cache = args.cache or [str(tiny_cache(Path(folder)))]
        args.minutes, args.executor = SMOKE_MINUTES, "serial"
        soak(args, load_config(args.config).replace(**SMOKE_SEARCH), Path(args.out or folder))


def soak(args: argparse.Namespace, base: SearchConfig, out: Path) -> None:
    """Run the search from ``base`` for ``--minutes``, then write and print what was recorded."""
    out.mkdir(parents=True, exist_ok=True)
    config = base.replace(generations=10**9, time_budget_s=args.minutes * 60, seed=args.seed,
                          executor=args.executor, workers=args.workers, caches=args.cache or None)
    table = out / "soak.csv"
    if args.resume:
        run = Path(args.resume)
        config = resume_config(run, {"time_budget_s": config.time_budget_s, "executor": config.executor,
                                     "workers": config.workers})
    else:
        run = out / f"run-{int(time.time())}"
        table.unlink(missing_ok=True)
    recorder = Recorder(run, table)
    outcome = run_search(config, run, resume=bool(args.resume), progress=False, on_generation=recorder)
    print(f"soak: {args.config}, {outcome.generation} generations ({outcome.stop_reason})")
    report(recorder.rows, out)


def report(rows: list[dict[str, float]], out: Path) -> None:
    print(f"{len(rows)} generations in {rows[-1]['elapsed_s'] / 3600:.2f} h")
    for line in summary(rows):
        print(line)
    plot(rows, out / "soak.png")
    print(f"wrote {out / 'soak.csv'} and {out / 'soak.png'}")


if __name__ == "__main__":
    main()
