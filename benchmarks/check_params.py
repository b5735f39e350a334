"""Build every arch of the shared benchmark files at default sizes; compare params and FLOPs.

Parameters must match the records' ``params`` (millions, 6 decimals) exactly; FLOPs
(``autoproxy.flops.count_flops``) are compared with the records' ``flops``, exactly (6 decimals) and
within 1 %. Ends with ``nb201_flops_exact=... nb201_flops_within_1pct=...`` and then
``nb201_params_exact=A/B nb101_params_exact=C/D``.

    python benchmarks/check_params.py [--shared DIR]
    python benchmarks/check_params.py --smoke      # the first 3 archs of each file, for CI
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch

from _smoke import FEW_ARCHS, SMOKE_HELP
from autoproxy.benchmark import load_benchmark
from autoproxy.flops import count_flops
from autoproxy.settings import SHARED_ENV, shared_path
from autoproxy.spaces import get_space

FILES = {"nb201": "zc_nasbench201.json", "nb101": "zc_nasbench101.json"}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
INPUT_SHAPE = (3, 32, 32)


def check_space(space_name: str, limit: int | None) -> tuple[int, int, int, int, int]:
    """(params exact, flops exact, flops within 1 %, flops compared, archs) for one shared file (its
    first ``limit`` archs; all for None)."""
    space = get_space(space_name)
    records = load_benchmark(shared_path("benchmarks", FILES[space_name]), space=space_name)[:limit]
    params_exact = flops_exact = flops_close = flops_compared = 0
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
            flops_compared += 1
            flops = count_flops(model, INPUT_SHAPE)
            flops_exact += round(flops, 6) == expected
            if abs(flops - expected) <= 0.01 * abs(expected):
                flops_close += 1
            else:
                print(f"flops mismatch {space_name} {record.task} {record.key}: {flops:.6f} != {expected}")
    return params_exact, flops_exact, flops_close, flops_compared, len(records)


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
    print(
        " ".join(
            f"{name}_flops_exact={exact}/{compared} {name}_flops_within_1pct={close}/{compared}"
            for name, (_, exact, close, compared, _) in results.items()
        )
    )
    print(" ".join(f"{name}_params_exact={result[0]}/{result[-1]}" for name, result in results.items()))


if __name__ == "__main__":
    main()
