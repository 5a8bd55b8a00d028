"""Model runtimes side by side: onnxruntime fp32, OpenVINO fp32, OpenVINO bf16 (issue 14).

Not a test: it prints numbers. For each model, over a data set (a folder with ``pairs.csv``,
as ``alphacut eval`` reads; default: ../shared/evaldata/davis345):

- quality: the model's plain mask (``refine=none``: the runtime's only effect) under each
  runtime, its mean IoU and boundary F against the hand-made masks, and the IoU of each
  reduced-precision mask with the fp32 reference's at 0.5, judged by the project's rule
  (issue 24; ``alphacut.evaluation.runtime_verdicts``, as ``alphacut eval --runtime``): mean
  IoU within 0.002 and mean boundary F within 0.005 of fp32's, and no photo whose mask agrees
  with fp32's below IoU 0.80.
- speed: seconds per model call (``run`` on a ready tensor at the model's input size), median
  of ``--repeat`` calls per runtime, interleaved so that a noisy neighbour hits all alike.

    .venv/bin/python bench/runtime.py                      # all pairs, all three runtimes
    .venv/bin/python bench/runtime.py --limit 0 --repeat 9 # speed only
    .venv/bin/python bench/runtime.py --runtimes onnxruntime-fp32 openvino-bf16
    .venv/bin/python bench/runtime.py --models precise --runtimes openvino-fp32 openvino-bf16 \
        --fp32-layers '^/stage1/' '^/side'   # mixed: these convolutions kept in fp32

``--fp32-layers`` keeps the layers whose names match (regular expressions, on OpenVINO's
names: ``Conv_12/WithoutBiases`` for U2-Netp, ``/stage1/rebnconv1/conv_s1/Conv/WithoutBiases``
for IS-Net) in fp32 when the rest runs in bf16 or f16: OpenVINO's CPU plugin leaves a node in
its original precision when it carries the ``precise`` runtime attribute (what
``ov::disable_conversion`` sets from C++). Python cannot build that attribute, so the model
goes through OpenVINO's IR text, where the attribute is written. Pooling and interpolation
nodes lose the attribute in the plugin's own transformations and stay in reduced precision.

OpenVINO's bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); elsewhere it is emulated
(slow) and this script says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alphacut import Remover
from alphacut.config import Settings
from alphacut.engine.recipes import preprocess
from alphacut.engine.sessions import (
    LoadedModel,
    Loader,
    LoadSpec,
    RuntimeChoice,
    SessionCache,
)
from alphacut.engine.sessions import onnx as onnx_sessions
from alphacut.engine.sessions import openvino as openvino_sessions
from alphacut.evaluation import (
    RULE_AGREEMENT,
    Variant,
    evaluate,
    load_pairs,
    runtime_verdicts,
    spread,
    summarize,
)
from alphacut.models.registry import DEFAULT_TARGETS, MODELS

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = ("onnxruntime-fp32", "openvino-fp32", "openvino-bf16", "openvino-f16")


def fixed_runtime(name: str, fp32_layers: list[str] | None = None) -> Loader:
    """A loader that always builds runtime ``name`` (``openvino-bf16``...), whatever the
    settings say (the service resolves ``runtime`` instead), on the CPU and with no compile
    cache; ``fp32_layers``: patterns of layer names kept in fp32 by a reduced precision (see
    the module docstring)."""
    runtime, precision = name.split("-")
    patterns = [re.compile(pattern) for pattern in fp32_layers or []]

    def load(spec: LoadSpec) -> LoadedModel:
        spec = dataclasses.replace(spec, device="cpu", cache_dir=None)
        if runtime == "onnxruntime":
            return onnx_sessions.load(spec, RuntimeChoice("onnxruntime", "fp32", "cpu", "bench"))
        mixed = precision != "fp32" and bool(patterns)
        reason = "bench, mixed" if mixed else "bench"
        # f16 is not a precision alphacut offers: the choice only names it
        choice = RuntimeChoice("openvino", precision, "cpu", reason)  # type: ignore[arg-type]
        if precision != "f16" and not mixed:
            return openvino_sessions.compile_model(spec, choice)
        core = openvino_sessions.core()
        if core is None:
            raise SystemExit(f"{name}: the openvino package is not installed")
        model = core.read_model(str(spec.path))
        if mixed:
            model = _keep_in_fp32(core, model, patterns)
        return openvino_sessions.compile_model(
            spec, choice, model=model, overrides={"INFERENCE_PRECISION_HINT": precision}
        )

    return load


def _keep_in_fp32(core: Any, model: Any, patterns: list[re.Pattern[str]]) -> Any:
    """``model`` with the ``precise`` attribute on every layer whose name matches one of
    ``patterns``, through OpenVINO's IR text (the only way to set it from Python)."""
    import openvino

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "model.xml"
        openvino.save_model(model, xml, compress_to_fp16=False)
        text = xml.read_text(encoding="utf-8")
        weights = openvino.Tensor(np.fromfile(xml.with_suffix(".bin"), np.uint8))
    kept = 0

    def mark(match: re.Match[str]) -> str:
        nonlocal kept
        if not any(pattern.search(match.group(1)) for pattern in patterns):
            return match.group(0)
        kept += 1
        attribute = '<attribute name="precise" version="0" value="dynamic:dynamic" />'
        return f"{match.group(0)}\n<rt_info>{attribute}</rt_info>"

    text = re.sub(
        r'<layer id="\d+" name="([^"]*)" type="(?!Parameter|Result)[^"]*"[^>]*>', mark, text
    )
    print(f"  {kept} layers kept in fp32", file=sys.stderr)
    return core.read_model(text.encode("utf-8"), weights)


def quality(
    model: str,
    runtimes: list[str],
    loaders: dict[str, Loader],
    pairs: list[Any],
    settings: Settings,
) -> dict[str, Any]:
    """Each runtime's plain mask (``refine=none``) scored against the hand-made masks, the
    first fp32 runtime the reference, judged by the library's rule (alphacut.evaluation)."""
    ordered = sorted(runtimes, key=lambda name: not name.endswith("fp32"))  # reference first
    variants = [Variant(model, "none", name) for name in ordered]
    started = time.perf_counter()
    done = 0

    def progress(_: Any) -> None:
        nonlocal done
        done += 1
        if done % (25 * len(variants)) == 0:
            elapsed = time.perf_counter() - started
            print(f"  {model}: {done // len(variants)}/{len(pairs)} in {elapsed:.0f} s",
                  file=sys.stderr)  # fmt: skip

    results = evaluate(pairs, variants, settings=settings, loaders=loaders, on_result=progress)
    summaries = {summary.variant: summary for summary in summarize(results)}
    verdicts = {verdict.candidate: verdict for verdict in runtime_verdicts(results)}
    report: dict[str, Any] = {"reference": ordered[0], "images": len(pairs), "runtimes": {}}
    for variant in variants:
        summary = summaries[variant.label]
        row: dict[str, Any] = {
            "mean_iou": summary.all["iou"],
            "mean_boundary_f": summary.all["boundary_f"],
        }
        verdict = verdicts.get(variant.label)
        if verdict is not None:
            row |= {
                "mean_iou_delta": verdict.iou[1] - verdict.iou[0],
                "boundary_f_delta": verdict.boundary_f[1] - verdict.boundary_f[0],
                "min_agreement": verdict.min_agreement,
                "worst": [(image, round(value, 4)) for image, value in verdict.worst],
                "failures": verdict.failures,
                "passes": verdict.passes,
            }
        report["runtimes"][variant.runtime] = row
    return report


def speed(
    model: str, removers: dict[str, Remover], image: Image.Image, repeat: int
) -> dict[str, float]:
    tensors = {}
    for name, remover in removers.items():
        tensors[name] = preprocess(remover.recipe, image)
        loaded = remover.load()
        loaded.run(tensors[name])  # first call: allocations, kernels
        loaded.run(tensors[name])
    seconds: dict[str, list[float]] = {name: [] for name in removers}
    for _ in range(repeat):
        for name, remover in removers.items():
            loaded = remover.load()
            started = time.perf_counter()
            loaded.run(tensors[name])
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=REPO.parent / "shared" / "evaldata" / "davis345"
    )
    parser.add_argument(
        "--models", nargs="+", default=list(DEFAULT_TARGETS), choices=[*DEFAULT_TARGETS, *MODELS]
    )
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--limit", type=int, default=None, help="pairs (spread); 0: speed only")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per runtime (0: none)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--fp32-layers",
        nargs="+",
        default=[],
        metavar="REGEX",
        help="layers kept in fp32 under bf16/f16 (mixed precision; see above)",
    )
    args = parser.parse_args()
    if not any(name.endswith("fp32") for name in args.runtimes):
        parser.error("name at least one fp32 runtime: the reference")

    flags = openvino_sessions.cpu_flags()
    native = openvino_sessions.native_bf16()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads; native bf16: {native or 'no (bf16 is emulated: slow)'}; "
          f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
          f"AVX-512: {'avx512f' in flags}")  # fmt: skip
    pairs = spread(load_pairs(args.folder), args.limit) if args.limit != 0 else []
    settings = Settings(inference_threads=args.threads)
    report: dict[str, Any] = {}
    loaders = {name: fixed_runtime(name, args.fp32_layers) for name in args.runtimes}
    for model in args.models:
        removers = {
            name: Remover(
                model,
                refine="none",
                settings=settings,
                sessions=SessionCache(loader=loaders[name]),
            )
            for name in args.runtimes
        }
        report[model] = {}
        if pairs:
            report[model]["quality"] = quality(model, args.runtimes, loaders, pairs, settings)
        if args.repeat:
            with Image.open(
                pairs[0].image if pairs else REPO / "tests" / "fixtures" / "rembg" / "cloth-1.jpg"
            ) as opened:
                image = opened.convert("RGB")
            report[model]["seconds"] = speed(model, removers, image, args.repeat)
        _print(model, MODELS[DEFAULT_TARGETS.get(model, model)].recipe.size, report[model])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _print(model: str, size: int, result: dict[str, Any]) -> None:
    print(f"\n{model} ({size} px)")
    rows: dict[str, dict[str, Any]] = result.get("quality", {}).get("runtimes", {})
    seconds: dict[str, float] = result.get("seconds", {})
    if "quality" in result:
        q = result["quality"]
        print(f"  {q['images']} images; agreement = IoU at 0.5 with {q['reference']}'s mask; "
              f"the rule: mean IoU and boundary F within 0.002 and 0.005, agreement >= "
              f"{RULE_AGREEMENT}")  # fmt: skip
    for name in dict.fromkeys([*rows, *seconds]):
        row = rows.get(name, {})
        parts = [f"  {name:<17}"]
        if "mean_iou" in row:
            parts.append(f"mean IoU {row['mean_iou']:.4f}, boundary F {row['mean_boundary_f']:.4f}")
        if "min_agreement" in row:
            verdict = "PASS" if row["passes"] else "FAIL: " + "; ".join(row["failures"])
            parts.append(
                f"(deltas {row['mean_iou_delta']:+.4f}, {row['boundary_f_delta']:+.4f}); "
                f"agreement min {row['min_agreement']:.4f}: {verdict}"
            )
        if name in seconds:
            parts.append(f"{seconds[name]:.3f} s/call")
        print(" ".join(parts))
        if row.get("worst"):
            print("    worst: " + ", ".join(f"{image} {value}" for image, value in row["worst"]))


if __name__ == "__main__":
    main()
