"""Every script in benchmarks/ runs end to end in its seconds-long ``--smoke`` mode and prints its figure
lines, so that none can rot unnoticed (evaluator_throughput.py without --cache once crashed for want of
a statistic added later). Each runs as a subprocess in a temporary folder, which is all it may write to."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CACHE = "{cache}"   # placeholder in an argument list: the module's tiny cache
NUMBER = r"[-+]?(?:[\d.]+|nan)"   # as printed with :.3f, :+.3f or :.4f

# (script, extra arguments) -> regular expressions that must each match a whole line of its output
SMOKE_RUNS: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {
    ("cache_size", ()): (r"build: 3 archs, .* s/arch .*", r"estimate for all 506 public NB201 cifar10 archs: .*",
                         r"cache .*: 3 archs, .*", r"load 8 archs \(no checksum\): .*",
                         r"load 8 archs \(sha256 verified\): .*"),
    ("check_params", ()): (r"nb201_flops_exact=3/3 nb201_flops_within_1pct=3/3 "
                           r"nb101_flops_exact=3/3 nb101_flops_within_1pct=3/3",
                           r"nb201_params_exact=3/3 nb101_params_exact=3/3",
                           r"nb301_params_exact=3/3 nb301_flops_exact=3/3 nb301_flops_within_1pct=3/3 "
                           r"nb301_flops_median_rel_err=.*"),
    ("digits_seed_agreement", ()): (r"3 archs, train seeds 1 and 2", rf"Kendall tau: {NUMBER}",
                                    rf"Spearman: {NUMBER}"),
    ("evaluator_throughput", ()): (r"4 archs \(synthetic statistics with real NB201 shapes\), .*",
                                   r"fidelity of sketch .* \(search default\):",
                                   r"candidates_per_s=[\d.]+ speedup_vs_per_node_loop=[\d.]+ shape_errors=0"),
    ("evaluator_throughput", ("--cache", CACHE)): (
        r"4 archs \(cache .*\), .*",
        rf"  \w+ +rho\(exact, sketched\)={NUMBER}  rho_acc exact={NUMBER} sketched={NUMBER}",
        r"candidates_per_s=[\d.]+ speedup_vs_per_node_loop=[\d.]+ shape_errors=0"),
    ("faithfulness", ()): (r"cifar10, real batch, 3 archs", r"proxy +rho_ours +rho_file +delta +rho\(ours,file\)",
                           rf"nwot +{NUMBER} +{NUMBER} +{NUMBER}.*"),
    ("faithfulness", ("--cache", CACHE)): (r"cifar10, cache .* \(nb201, real batch, 8 archs, float16, sketch 8x8\)",
                                           rf"synflow +{NUMBER} +{NUMBER} +{NUMBER}.*"),
    ("faithfulness", ("--cache", CACHE, "--exact-sketched")): (
        rf"synflow +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}  cache",
        rf"fisher +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}  direct \(exact\)"),
    ("model_zoo", ()): (r"model zoo: 2 models × 4 proxies; .*", r"inputs: 8 .*",
                        r"memory check: noop .* MiB .*; 256 MiB tensor \+2\d\d\.\d MiB .*",
                        r"model nb201: .* nodes; .*", r"model tiny_transformer: .*",
                        r"  f:snip +(?:\S+ +[\d.]+ +[\d.]+ +[\d.]+|ERROR +.+).*", r"ratio nb201: .*",
                        r"measurements=8 errors=0 undefined=\d+ \(without a reason: \d+\)"),
    ("search_quality", ()): (r"train fitness on the whole train split \(4 train archs\): [\d.]+ ms per candidate",
                             r"seed 0: best reference proxy on the test split \(\d+ archs\): \w+ ρ .*",
                             r"  pareto run: 2 generations, \d+ formulas, [\d.]+ formulas/s; complexity of the final population .*",
                             rf"  pareto: complexity \d+  test ρ {NUMBER} τ {NUMBER}  nb201-cifar10-tiny ρ {NUMBER}"
                             rf"  other-seed cache ρ {NUMBER}",
                             r"  previous pick \(same run\): complexity .*", r"  previous: complexity .*",
                             rf"pareto: test ρ {NUMBER} ± {NUMBER}  complexity .*",
                             rf"previous pick: test ρ {NUMBER} ± {NUMBER}  complexity .*"),
    ("split_baselines", ()): (r"nb201-digits: test split of \d+ archs \(split seed 0\), cache .*",
                              rf"params +{NUMBER} +{NUMBER}", rf"nwot +{NUMBER} +{NUMBER}",
                              rf"fisher +{NUMBER} +{NUMBER}  \(from the cache's activation sketch: an estimate\)"),
    ("transfer_matrix", ()): (r"transfer matrix: Spearman ρ \(Kendall τ\) on each cache's test split .*",
                              r"\| formula \| nb201-cifar10-tiny \(4\) \|",
                              rf"\| params: `net_params` \| {NUMBER} \({NUMBER}\) \|",
                              rf"\| best reference proxy \| \w+ {NUMBER} \({NUMBER}\) \|"),
    ("soak", ("--out", "soak")): (r"soak: nb201-digits, \d+ generations \(time budget\)", r"\d+ generations in .* h",
                                  r"driver_rss_mb: .* MB after .* h, .* MB/h, 24 h: .*",
                                  r"evaluations_per_s: first quarter .*, last quarter .*",
                                  r"journal bytes per formula: \d+; rescored for behaviour: \d+",
                                  r"wrote soak/soak.csv and soak/soak.png"),
    ("build_parallelism", ()): (r"nb201: 2 archs, batch 8, 2 cores", r"serial_1_thread_s_per_arch=[\d.]+",
                                r"serial_2_threads_s_per_arch=[\d.]+ ratio=[\d.]+", r"ray_2_workers_s_per_arch=nan .*"),
    ("statistics_profile", ()): (r"statistics profile: nb201, 1 archs, batch 8, .*",
                                 rf"  forward \+ hooks +{NUMBER} +{NUMBER}% +{NUMBER} +{NUMBER}  -",
                                 rf"  Hessian-gradient +{NUMBER} +{NUMBER}% +{NUMBER} +{NUMBER}  loss backward, .*",
                                 rf"  file write \+ sha256 +{NUMBER} .*",
                                 rf"total: {NUMBER} s summed over the rows .*: {NUMBER} s, peak {NUMBER} MiB"),
    ("statistics_speed", ()): (r"archs=1 batch=8 median=.*", r"s_per_arch=[\d.]+ bytes_per_arch=\d+",
                               rf"reference proxies one by one \(.*\): median={NUMBER} s  "
                               rf"ratio_all_statistics_vs_proxies_one_by_one={NUMBER}"),
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One tiny cache of shared-file archs, made by the scripts' own smoke helper, for the --cache runs
    (the helper leaves torch single-threaded, which must not leak into the other tests of the session)."""
    spec = importlib.util.spec_from_file_location("_smoke", BENCHMARKS / "_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    threads = torch.get_num_threads()
    try:
        return smoke.tiny_cache(tmp_path_factory.mktemp("smoke-cache"))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("nb201_benchmark_path")  # the scripts read ../shared: fail clearly without it
@pytest.mark.parametrize(("script", "extra"), list(SMOKE_RUNS), ids=[" ".join([s, *a]) for s, a in SMOKE_RUNS])
def test_script_smoke(script: str, extra: tuple[str, ...], tmp_path: Path, request) -> None:
    arguments = [str(request.getfixturevalue("cache_dir")) if a == CACHE else a for a in extra]
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", *arguments],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    missing = [pattern for pattern in SMOKE_RUNS[script, extra] if not any(re.fullmatch(pattern, l) for l in lines)]
    assert not missing, f"lines missing from the output of {script}: {missing}\n{done.stdout[-3000:]}"
    assert {p.name for p in tmp_path.iterdir()} <= {"soak"}, "a smoke run wrote outside its temporary folders"
