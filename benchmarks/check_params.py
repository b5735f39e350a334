"""Build every arch of the shared benchmark files at default sizes; compare params and FLOPs.

Parameters must match the records' ``params`` (millions, 6 decimals) exactly; FLOPs
(``autoproxy.flops.count_flops``) are compared with the records' ``flops``, exactly (6 decimals),
within 1 % and by the median relative error. Ends with ``nb201_flops_exact=... nb201_flops_within_1pct=...``,
then ``nb201_params_exact=A/B nb101_params_exact=C/D``, then one line per later space:
``nb301_params_exact=N/507 nb301_flops_exact=... nb301_flops_within_1pct=... nb301_flops_median_rel_err=...``.

    python benchmarks/check_params.py [--shared DIR]
    python benchmarks/check_params.py --smoke      # the first 3 archs of each file, for CI
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from typing import NamedTuple

import torch

from _smoke import FEW_ARCHS, SMOKE_HELP
from autoproxy.benchmark import load_benchmark
from autoproxy.flops import count_flops
from autoproxy.settings import SHARED_ENV, shared_path
from autoproxy.spaces import get_space

FILES = {"nb201": "zc_nasbench201.json", "nb101": "zc_nasbench101.json", "nb301": "zc_nasbench301.json"}
FIRST_SPACES = ("nb201", "nb101")  # reported on the two shared summary lines; later spaces get a line each
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
INPUT_SHAPE = (3, 32, 32)


class SpaceCheck(NamedTuple):
    params_exact: int
    flops_exact: int
    flops_close: int  # within 1 %
    flops_rel_errors: list[float]
    archs: int

    def flops_figures(self, name: str) -> str:
        compared = len(self.flops_rel_errors)
        exact, close = f"{self.flops_exact}/{compared}", f"{self.flops_close}/{compared}"
        return f"{name}_flops_exact={exact} {name}_flops_within_1pct={close}"

    def params_figure(self, name: str) -> str:
        return f"{name}_params_exact={self.params_exact}/{self.archs}"

    def median_figure(self, name: str) -> str:
        median = statistics.median(self.flops_rel_errors) if self.flops_rel_errors else math.nan
        return f"{name}_flops_median_rel_err={median:.3g}"


def check_space(space_name: str, limit: int | None) -> SpaceCheck:
    """Params and FLOPs agreement for one shared file (its first ``limit`` archs; all for None)."""
    space = get_space(space_name)
    records = load_benchmark(shared_path("benchmarks", FILES[space_name]), space=space_name)[:limit]
    params_exact = flops_exact = flops_close = 0
    rel_errors: list[float] = []
    for record in records:
        model = space.build(record.key, num_classes=NUM_CLASSES[record.task])
        params = round(sum(p.numel() for p in model.parameters()) / 1e6, 6)
        if params == record.scores["params"]:
            params_exact += 1
        else:
            expected_params = record.scores["params"]
            print(f"params mismatch {space_name} {record.task} {record.key}: {params} != {expected_params}")
        expected = record.scores.get("flops", math.nan)
        if not math.isnan(expected):
            flops = count_flops(model, INPUT_SHAPE)
            rel_errors.append(abs(flops - expected) / abs(expected))
            flops_exact += round(flops, 6) == expected
            if abs(flops - expected) <= 0.01 * abs(expected):
                flops_close += 1
            else:
                print(f"flops mismatch {space_name} {record.task} {record.key}: {flops:.6f} != {expected}")
    return SpaceCheck(params_exact, flops_exact, flops_close, rel_errors, len(records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", help=f"shared data folder (default: ${SHARED_ENV} or ../shared)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.shared:
        os.environ[SHARED_ENV] = args.shared
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = {name: check_space(name, FEW_ARCHS if args.smoke else None) for name in FILES}
    print(f"checked in {time.perf_counter() - start:.1f} s")
    print(" ".join(results[name].flops_figures(name) for name in FIRST_SPACES))
    print(" ".join(results[name].params_figure(name) for name in FIRST_SPACES))
    for name in FILES:
        if name not in FIRST_SPACES:
            result = results[name]
            print(f"{result.params_figure(name)} {result.flops_figures(name)} {result.median_figure(name)}")


if __name__ == "__main__":
    main()
