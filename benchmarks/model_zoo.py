"""Every proxy on torch models beyond the search spaces: a table model × proxy (value, seconds, peak RSS).

Models: timm's resnet18, mobilenetv3_small_100, efficientnet_b0, convnext_atto, vit_tiny_patch16_224
(built with ``img_size=--size``, so its patch grid fits the small inputs) and regnetx_002, all untrained
(``pretrained=False``) with 10 classes; an NB201 cell net (``autoproxy.spaces``, every op in one cell);
and a tiny transformer made of torch modules (patch-embedding conv, ``nn.TransformerEncoderLayer``,
linear head). Proxies: every built-in direct proxy of the registry, the expression form of each
reference proxy (``primitives.reference``) and the discovered formulas quoted in README.md, the latter
two scored by the engine itself (``autoproxy.expression_proxy.expression_score``: statistics with
``needs``, pack, evaluator).

Each measurement runs in a child forked after the model is built and every module imported, so its
peak RSS is that proxy's own: ``ru_maxrss`` of the child minus the child's RSS just before the proxy
runs (the kernel's high-water mark is reset there through ``/proc/self/clear_refs`` where allowed). The
figure counts everything the proxy touches, including library code pages faulted in for the first time
(``file_mib`` in the JSON). A failing measurement is a table row with its one-line error; an undefined
value (NaN, ±inf) shows the warnings the proxy gave as its reason.

The second figure: for each formula, its peak RSS over the largest peak RSS of the direct reference
proxies that pay for one of the statistic groups it reads (groups: autoproxy.statistics.STATISTIC_GROUPS;
snip, grad_norm, plain, fisher: gradients; grasp: hessian; zico: sub_batches; synflow: synflow;
jacov: jacobian; nwot, meco: kernels; params, l2_norm: structure; flops: flops); target <= 1.3.

    python benchmarks/model_zoo.py [--models a,b] [--proxies direct,formulas,discovered,NAME,...]
        [--batch 16] [--size 64] [--timeout 300] [--json OUT]
    python benchmarks/model_zoo.py --smoke      # NB201 net and tiny transformer, 4 proxies, no timm

The timm models need ``pip install torch==2.14.1 torchvision==0.29.1 timm`` (or the ``zoo`` extra).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from _smoke import SMOKE_HELP

TIMM_MODELS = ("resnet18", "mobilenetv3_small_100", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224",
               "regnetx_002")
LOCAL_MODELS = ("nb201", "tiny_transformer")
DEFAULT_MODELS = (*TIMM_MODELS, *LOCAL_MODELS)
NB201_KEY = "(2, 3, 0, 4, 2, 1)"   # conv3x3, conv1x1, skip, avg-pool, conv3x3, zero: every op once
INSTALL_HINT = ("the timm models need timm: pip install torch==2.14.1 torchvision==0.29.1 timm "
                "(or pip install -e '.[zoo]'); --smoke or --models nb201,tiny_transformer run without it")

# The discovered formulas quoted in README.md, in the printed SymPy form that parse() accepts.
DISCOVERED: dict[str, str] = {
    # 'Discovery': the nb201-cifar10 search, 8 minutes per seed, the formula chosen on validation
    "cifar10_seed0": "net_sum(eig_min(corr(act_cov)))*net_sum(node_sum(normalise(Max(0, normalise(grad_act_in**2)))"
                     " + sign(grad_act_in)))**2",
    "cifar10_seed1": "net_sum(Max(0, eig_min(sigmoid(corr(act_cov**2))))*Max(0, eig_min(Abs(Min(sigmoid(act_cov),"
                     " node_l1(hess_grad))))))",
    "cifar10_seed2": "synflow_log_scale*(net_std(Max(0, eig_min(sigmoid(sigmoid(Abs(act_cov)))))) + 2)"
                     "*eig_min(jacobian_corr*eig_min(jacobian_corr*net_params))"
                     "*net_std(Max(0, eig_min(sigmoid(sigmoid(act_cov)))))",
    # 'The main job': nb201-digits, seed 0
    "digits_chosen": "sqrt(Abs(num_nodes/net_max(node_l2(grad_abs_mean**2))))",
}

# The statistic group each direct reference proxy pays for (the pass of autoproxy.statistics that its
# expression form needs beyond the always-computed structure), in the group names of
# autoproxy.statistics.STATISTIC_GROUPS.
DIRECT_GROUPS: dict[str, str] = {
    "snip": "gradients", "grad_norm": "gradients", "plain": "gradients", "fisher": "gradients",
    "grasp": "hessian", "zico": "sub_batches", "synflow": "synflow", "jacov": "jacobian",
    "nwot": "kernels", "meco": "kernels", "params": "structure", "flops": "flops", "l2_norm": "structure",
}
RATIO_TARGET = 1.3
SMOKE = {"models": LOCAL_MODELS, "proxies": ("nwot", "snip", "f:snip", "d:digits_chosen"), "batch": 8, "size": 32}
MIB = 2 ** 20


# ---------------------------------------------------------------------------------------------- models
class TinyTransformer(nn.Module):
    """A ViT in miniature from torch modules only: patch-embedding conv, one encoder layer, linear head."""

    def __init__(self, num_classes: int = 10, dim: int = 32, patch: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.encoder = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)          # (B, T, dim)
        return self.head(self.norm(self.encoder(tokens)).mean(dim=1))


def timm_available() -> str | None:
    """timm's version, or None when it cannot be imported."""
    try:
        import timm
    except Exception:  # noqa: BLE001  (a broken install is as good as none here)
        return None
    return timm.__version__


def build_model(name: str, size: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if name == "nb201":
        from autoproxy.spaces import get_space

        return get_space("nb201").build(NB201_KEY, num_classes=10)
    if name == "tiny_transformer":
        return TinyTransformer(num_classes=10)
    import timm

    extra = {"img_size": size} if name.startswith(("vit_", "deit_")) else {}
    return timm.create_model(name, pretrained=False, num_classes=10, **extra)


def model_description(name: str, model: nn.Module) -> str:
    params = sum(p.numel() for p in model.parameters())
    try:
        from autoproxy.nodes import nodes

        node_text = f", {len(nodes(model))} nodes"
    except Exception as err:  # noqa: BLE001  (the nodes module may be mid-edit)
        node_text = f", nodes: {one_line(err)}"
    origin = "autoproxy.spaces nb201 " + NB201_KEY if name == "nb201" else (
        "torch modules" if name == "tiny_transformer" else "timm, pretrained=False")
    return f"{params / 1e6:.3f} M params{node_text}; {origin}"


# -------------------------------------------------------------------------------------------- inputs
def make_batch(batch: int, size: int, seed: int, noise: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A seeded batch: real CIFAR-10 images of the shared sample (autoproxy.data's crops and flips,
    normalised), bilinearly resized from 32×32 to ``size``; Gaussian noise with ``noise`` or without
    the shared file."""
    from autoproxy.data import load_minibatch

    if not noise:
        try:
            from autoproxy.settings import shared_path

            path = shared_path("data", "cifar10_sample.npz")
            inputs, targets, _ = load_minibatch(path, batch, seed)
            text = f"{batch} real CIFAR-10 images ({path.name}, autoproxy.data seed {seed})"
            if inputs.shape[-1] != size:
                text += f", bilinearly resized {inputs.shape[-1]}→{size}"
                inputs = nn.functional.interpolate(inputs, size=(size, size), mode="bilinear", align_corners=False)
            return inputs.contiguous(), targets, text
        except Exception as err:  # noqa: BLE001  (no shared data: say so and use noise)
            reason = f" (real images unavailable: {one_line(err)})"
    else:
        reason = ""
    inputs, targets, _ = load_minibatch(None, batch, seed, image_shape=(3, size, size), num_classes=10)
    return inputs, targets, f"{batch} Gaussian-noise inputs 3×{size}×{size}, uniform labels, seed {seed}{reason}"


# ------------------------------------------------------------------------------------------- proxies
def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300]


def statistic_groups() -> tuple[dict[str, str], str]:
    """statistics key → group, and where the table came from."""
    from autoproxy.statistics import STATISTIC_GROUPS

    return ({key: group for group, keys in STATISTIC_GROUPS.items() for key in keys},
            "autoproxy.statistics.STATISTIC_GROUPS")


class Spec:
    """One column of the table: a direct proxy, a reference formula (f:NAME) or a discovered one (d:NAME)."""

    def __init__(self, label: str, kind: str, run: Callable | None, groups: frozenset[str], error: str | None = None,
                 text: str | None = None) -> None:
        self.label, self.kind, self.run, self.groups, self.error, self.text = label, kind, run, groups, error, text


def proxy_specs(wanted: list[str] | None) -> tuple[list[Spec], list[str]]:
    """The proxies to measure (all, or those named: a label or the words direct / formulas / discovered),
    and notes about what could not be prepared (printed; each such proxy is still a row, with its error)."""
    notes: list[str] = []
    specs: list[Spec] = []
    group_of, source = statistic_groups()
    notes.append(f"statistic groups from {source}")
    try:
        from autoproxy.registry import scan_proxies

        listing = scan_proxies()
        direct = {name: proxy for name, proxy in listing.proxies.items() if proxy.kind == "direct" and proxy.origin == "built-in"}
    except Exception as err:  # noqa: BLE001  (the registry may be mid-edit: every direct row shows why)
        notes.append(f"registry unavailable: {one_line(err)}")
        direct = {name: None for name in DIRECT_GROUPS}
    for name, proxy in direct.items():
        group = DIRECT_GROUPS.get(name)
        run = (lambda net, x, y, p=proxy: p(net, x, y)) if proxy is not None else None
        specs.append(Spec(name, "direct", run, frozenset({group} if group else ()),
                          None if proxy is not None else "registry unavailable"))

    def formula(label: str, kind: str, text: str) -> Spec:
        try:
            from autoproxy.expression_proxy import expression_score
            from primitives.leaves import statistics_read
            from primitives.parse import parse

            tree = parse(text)
            keys = statistics_read(tree)
            groups = frozenset(group_of.get(key, f"?{key}") for key in keys)
            return Spec(label, kind, lambda net, x, y: expression_score(tree, net, x, y), groups, text=text)
        except Exception as err:  # noqa: BLE001
            return Spec(label, kind, None, frozenset(), f"cannot prepare: {one_line(err)}", text=text)

    try:
        from primitives.reference import REFERENCE_EXPRESSIONS
    except Exception as err:  # noqa: BLE001
        notes.append(f"primitives.reference unavailable: {one_line(err)}")
        REFERENCE_EXPRESSIONS = {}
    specs += [formula(f"f:{name}", "formula", text) for name, text in REFERENCE_EXPRESSIONS.items()]
    specs += [formula(f"d:{name}", "discovered", text) for name, text in DISCOVERED.items()]
    if wanted:
        kinds = {"direct": "direct", "formulas": "formula", "discovered": "discovered"}
        chosen = [s for s in specs if s.label in wanted or any(kinds.get(w) == s.kind for w in wanted)]
        unknown = set(wanted) - {s.label for s in specs} - set(kinds)
        if unknown:
            raise SystemExit(f"unknown proxies {sorted(unknown)}; known: {', '.join(s.label for s in specs)}")
        specs = chosen
    return specs, notes


# --------------------------------------------------------------------------------------- measurement
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux ≥ 4.0); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _noop(net, inputs, targets) -> float:
    return 0.0


def _allocate_256(net, inputs, targets) -> float:
    buffer = torch.ones(64 * MIB)   # 256 MiB of float32, every page written
    return float(buffer[:: 1 << 20].sum())


def _child(run: Callable, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    reset = _reset_peak()
    rss0 = _status_kib("VmRSS")
    file0 = _status_kib("RssFile")
    cpu0, start = time.process_time(), time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = run(model, inputs, targets)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    texts = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    return {"value": float(value), "seconds": seconds, "cpu_seconds": cpu,
            "peak_mib": (peak_kib - rss0) / 1024, "hwm_mib": (_status_kib("VmHWM") - rss0) / 1024,
            "file_mib": (_status_kib("RssFile") - file0) / 1024, "baseline_mib": rss0 / 1024,
            "peak_reset": reset, "warnings": texts}


def measure(run: Callable, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, timeout: float) -> dict[str, Any]:
    """Run ``run(model, inputs, targets)`` in a forked child; its result, or its one-line error."""
    sys.stdout.flush()
    sys.stderr.flush()
    gc.collect()
    gc.freeze()   # the child's collections would touch every object of the parent: copy-on-write pages, not the proxy's
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never returns
        os.close(read_end)
        try:
            result = _child(run, model, inputs, targets)
        except BaseException as err:  # noqa: BLE001  (reported as the row's error)
            frame = traceback.extract_tb(err.__traceback__)[-1]
            result = {"error": f"{one_line(err)} [{Path(frame.filename).name}:{frame.lineno}]"}
        try:
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready = select.select([read_end], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"error": f"timeout: no result within {timeout:g} s (killed)"}
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
        return {"error": f"child died without a result ({how}; out of memory?)"}
    return json.loads(data)


# -------------------------------------------------------------------------------------------- output
def reason_of(result: dict[str, Any]) -> str:
    if "error" in result:
        return result["error"]
    if math.isfinite(result["value"]):
        return ""
    return "; ".join(result["warnings"]) or "undefined, and the proxy gave no warning saying why"


TABLE_HEADER = f"  {'proxy':<18} {'value':>13} {'seconds':>8} {'peak MiB':>9} {'code MiB':>8}  reason / error"


def row(label: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return f"  {label:<18} {'ERROR':>13} {'':>8} {'':>9} {'':>8}  {result['error']}"
    return (f"  {label:<18} {result['value']:>13.6g} {result['seconds']:>8.2f} {result['peak_mib']:>9.1f}"
            f" {result['file_mib']:>8.1f}  {reason_of(result)}").rstrip()


def ratios(specs: list[Spec], results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per formula: peak RSS / the largest peak RSS of the direct proxies reading one of its groups."""
    direct_peaks = {s.label: results[s.label]["peak_mib"] for s in specs
                    if s.kind == "direct" and "peak_mib" in results.get(s.label, {})}
    own = {label: r["peak_mib"] - r["file_mib"] for label, r in results.items() if "peak_mib" in r}
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.kind == "direct":
            continue
        result = results.get(spec.label, {})
        peers = {name: peak for name, peak in direct_peaks.items() if DIRECT_GROUPS.get(name) in spec.groups}
        entry: dict[str, Any] = {"groups": sorted(spec.groups)}
        if "peak_mib" not in result:
            entry["note"] = "formula not measured"
        elif not peers:
            entry["note"] = "no measured direct proxy reads these groups"
        else:
            reference = max(peers, key=peers.get)
            entry.update(reference=reference, reference_mib=peers[reference], formula_mib=result["peak_mib"],
                         ratio=result["peak_mib"] / max(peers[reference], 1.0),
                         ratio_without_code=(own[spec.label] / own[reference]) if own[reference] >= 16 else None)
        out[spec.label] = entry
    return out


def ratio_lines(model_name: str, table: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"peak RSS, formula / most expensive direct proxy reading the same groups (target <= {RATIO_TARGET}):"]
    for label, entry in table.items():
        groups = ",".join(entry["groups"]) or "-"
        if "ratio" in entry:
            lines.append(f"  {label:<18} {entry['ratio']:>6.2f}  {entry['formula_mib']:.1f} / {entry['reference_mib']:.1f} MiB "
                         f"({entry['reference']}; groups {groups}); without code pages "
                         + (f"{entry['ratio_without_code']:.2f}" if entry["ratio_without_code"] is not None
                            else "- (reference under 16 MiB)"))
        else:
            lines.append(f"  {label:<18} {'-':>6}  {entry['note']} (groups {groups})")
    measured = [(e["ratio"], label) for label, e in table.items() if "ratio" in e]
    if measured:
        within = sum(r <= RATIO_TARGET for r, _ in measured)
        worst, worst_label = max(measured)
        lines.append(f"ratio {model_name}: {within}/{len(measured)} formulas <= {RATIO_TARGET}x, "
                     f"max {worst:.2f} ({worst_label})")
    else:
        lines.append(f"ratio {model_name}: no formula measured against a direct proxy")
    return lines


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated: timm names, nb201, tiny_transformer")
    parser.add_argument("--proxies", default="", help="comma-separated labels (snip, f:snip, d:digits_chosen) or "
                                                      "direct / formulas / discovered; default all")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument("--seed", type=int, default=0, help="weight init and batch seed")
    parser.add_argument("--noise", action="store_true", help="Gaussian inputs instead of resized real images")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: figures per core)")
    parser.add_argument("--json", type=Path, help="write every measurement here (rewritten after each model)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--adaptive-malloc", action="store_true",
                        help="keep glibc's adaptive mmap threshold (freed blocks under 32 MiB then stay in the heap, "
                             "so RSS shows the allocator's history more than what a proxy holds)")
    return parser.parse_args(argv)


def fixed_mmap_threshold(threshold: int = 64 << 10) -> str:
    """Make glibc serve every block above ``threshold`` by mmap and return it on free (mallopt
    M_MMAP_THRESHOLD), so that peak RSS measures what each proxy allocates rather than what earlier
    frees left in the heap; the same setting for direct proxies and formulas."""
    try:
        applied = ctypes.CDLL("libc.so.6").mallopt(-3, threshold) == 1   # -3: M_MMAP_THRESHOLD
    except OSError:
        applied = False
    return f"mmap threshold fixed at {threshold >> 10} KiB" if applied else "default (mallopt unavailable)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.models, args.batch, args.size = ",".join(SMOKE["models"]), SMOKE["batch"], SMOKE["size"]
        args.proxies = args.proxies or ",".join(SMOKE["proxies"])
    models = [m for m in args.models.split(",") if m]
    timm_version = timm_available()
    if any(m not in LOCAL_MODELS for m in models) and timm_version is None:
        print(INSTALL_HINT)
        return 2
    torch.set_num_threads(args.threads)
    malloc_text = "glibc adaptive mmap threshold" if args.adaptive_malloc else fixed_mmap_threshold()
    specs, notes = proxy_specs([p for p in args.proxies.split(",") if p] or None)
    inputs, targets, input_text = make_batch(args.batch, args.size, args.seed, args.noise)

    print(f"model zoo: {len(models)} models × {len(specs)} proxies; torch {torch.__version__}, "
          f"timm {timm_version or 'not installed'}, {args.threads} torch thread(s), timeout {args.timeout:g} s")
    print(f"inputs: {input_text}; 10 classes; cross-entropy")
    print("memory: peak MiB = ru_maxrss of the forked child - its RSS just before the proxy (high-water mark reset "
          "there); code MiB = library pages the child mapped meanwhile (a fork maps code lazily), included in peak; "
          f"allocator: {malloc_text}")
    for note in notes:
        print(f"note: {note}")
    report: dict[str, Any] = {"torch": torch.__version__, "timm": timm_version, "inputs": input_text,
                              "batch": args.batch, "size": args.size, "threads": args.threads, "notes": notes,
                              "proxies": {s.label: {"kind": s.kind, "groups": sorted(s.groups), "text": s.text} for s in specs},
                              "models": {}}
    counts = {"measurements": 0, "errors": 0, "undefined": 0, "undefined_without_reason": 0}
    calibrated = False
    for name in models:
        start = time.perf_counter()
        try:
            model = build_model(name, args.size, args.seed)
        except Exception as err:  # noqa: BLE001  (a model that cannot be built is a finding, not a crash)
            print(f"\nmodel {name}: cannot build: {one_line(err)}")
            report["models"][name] = {"error": one_line(err)}
            counts["errors"] += 1
            continue
        built = time.perf_counter() - start
        print(f"\nmodel {name}: {model_description(name, model)}; built in {built:.1f} s; "
              f"parent RSS {_status_kib('VmRSS') / 1024:.0f} MiB")
        if not calibrated:   # the memory method, checked on known work
            check = {label: measure(fn, model, inputs, targets, args.timeout)
                     for label, fn in (("noop", _noop), ("256 MiB tensor", _allocate_256))}
            parts = [f"{label} {r['peak_mib']:+.1f} MiB (VmHWM {r['hwm_mib']:+.1f}, code {r['file_mib']:+.1f}, "
                     f"reset {'yes' if r['peak_reset'] else 'no'})"
                     if "peak_mib" in r else f"{label}: {r['error']}" for label, r in check.items()]
            print("memory check: " + "; ".join(parts))
            report["memory_check"] = check
            calibrated = True
        print(TABLE_HEADER)
        results: dict[str, dict[str, Any]] = {}
        for spec in specs:
            result = {"error": spec.error} if spec.run is None else measure(spec.run, model, inputs, targets, args.timeout)
            results[spec.label] = result
            counts["measurements"] += 1
            if "error" in result:
                counts["errors"] += 1
            elif not math.isfinite(result["value"]):
                counts["undefined"] += 1
                counts["undefined_without_reason"] += not result["warnings"]
            print(row(spec.label, result), flush=True)
        table = ratios(specs, results)
        for line in ratio_lines(name, table):
            print(line)
        report["models"][name] = {"description": model_description(name, model), "build_seconds": built,
                                  "results": results, "ratios": table}
        del model
        gc.collect()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    report["counts"] = counts
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    print(f"\nmeasurements={counts['measurements']} errors={counts['errors']} undefined={counts['undefined']} "
          f"(without a reason: {counts['undefined_without_reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
