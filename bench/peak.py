"""The bare model's peak: passes per second on a ready tensor, the physical limit on a CPU.

Not a test: it prints numbers (``bench/compare.py`` calls :func:`model_peak` and prints every
row as a ratio to it). A model's pass is the one cost no path can avoid, so how close a path
comes to the model alone says what the rest of it costs. Measured on the runtime and
precision the defaults pick for the model on this machine (OpenVINO on a CPU, in bf16 where
the model was cleared for it and the CPU has native bf16), with the settings' thread count,
in the three shapes a server could run it:

- one stream: one pass at a time, every thread on it (``PERFORMANCE_HINT=LATENCY``, what a
  session of alphacut runs by default): its seconds per pass are the latency limit;
- streams: 2 (and, with more cores, cores/4 and cores/2) passes at once, the threads shared
  among them (``NUM_STREAMS``), fed by OpenVINO's ``AsyncInferQueue``;
- batches of 2 and 4 photos in one pass, one stream.

The peak is the best of these. Each shape runs for ``seconds`` after a warm-up pass.

    .venv/bin/python bench/peak.py                 # fast, the settings' threads
    .venv/bin/python bench/peak.py --model precise --seconds 10
    taskset -c 0 .venv/bin/python bench/peak.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from alphacut import Remover
from alphacut.config import get_settings
from alphacut.engine.sessions import openvino as openvino_sessions
from alphacut.engine.sessions import resolve_runtime


def _shapes(threads: int) -> list[tuple[int, int]]:
    """(streams, batch) pairs to try, one stream first."""
    streams = sorted({2, max(2, threads // 4), max(2, threads // 2)})
    return [(1, 1), *((n, 1) for n in streams if n <= max(2, threads)), (1, 2), (1, 4)]


def _passes_per_second(compiled: Any, streams: int, batch: int, size: int, seconds: float) -> float:
    import openvino

    tensor = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    queue = openvino.AsyncInferQueue(compiled, streams)
    for _ in range(streams):  # warm-up: each request's first pass allocates
        queue.start_async({0: tensor})
    queue.wait_all()
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(streams):
            queue.start_async({0: tensor})
        queue.wait_all()
        done += streams
    return done * batch / (time.perf_counter() - started)


def model_peak(
    model: str = "fast", threads: int | None = None, seconds: float = 6.0
) -> dict[str, Any]:
    """Passes per second of ``model`` in each shape, the best of them (``peak``) and one
    pass's seconds at one stream (``pass_s``), on the runtime the defaults pick here."""
    settings = get_settings()
    threads = threads or settings.inference_threads
    remover = Remover(model, settings=settings)
    spec = remover.spec
    choice = resolve_runtime(
        settings.runtime,
        settings.device,
        precision=settings.precision_for(spec.name),
        bf16_proven=spec.bf16,
    )
    size = remover.recipe.size
    result: dict[str, Any] = {
        "model": spec.name,
        "runtime": f"{choice.runtime} {choice.precision} {choice.device}",
        "threads": threads,
        "shapes": {},
    }
    if choice.runtime != "openvino":  # onnxruntime (CUDA): one stream, a pass at a time
        loaded = remover.load()
        tensor = np.zeros((1, 3, size, size), np.float32)
        loaded.run(tensor)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            loaded.run(tensor)
            count += 1
        rate = count / (time.perf_counter() - started)
        result["shapes"]["1 stream"] = rate
        result |= {"peak": rate, "best": "1 stream", "pass_s": 1 / rate}
        return result
    core = openvino_sessions.core()
    if core is None:
        raise SystemExit("OpenVINO was chosen but does not import")
    precision = "bf16" if choice.precision == "bf16" else "f32"
    path = str(remover.load_spec.path)
    for streams, batch in _shapes(threads):
        graph = core.read_model(path)
        if batch > 1:
            try:
                graph.reshape({graph.inputs[0].any_name: [batch, 3, size, size]})
            except RuntimeError:
                continue  # a graph whose batch is fixed
        config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads}
        if streams == 1:
            config["PERFORMANCE_HINT"] = "LATENCY"
        else:
            config["NUM_STREAMS"] = streams
        compiled = core.compile_model(graph, "CPU", config)
        label = f"{streams} streams" if streams > 1 else (f"batch {batch}" if batch > 1
                                                          else "1 stream")  # fmt: skip
        result["shapes"][label] = _passes_per_second(compiled, streams, batch, size, seconds)
        del compiled
    best = max(result["shapes"], key=result["shapes"].get)
    result |= {
        "peak": result["shapes"][best],
        "best": best,
        "pass_s": 1 / result["shapes"]["1 stream"],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    peak = model_peak(args.model, args.threads, args.seconds)
    print(f"{peak['model']} ({peak['runtime']}, {peak['threads']} threads, "
          f"{len(os.sched_getaffinity(0))} CPUs usable):")  # fmt: skip
    for label, rate in peak["shapes"].items():
        print(f"  {label:<10} {rate:6.2f} passes/s")
    print(f"  peak {peak['peak']:.2f} passes/s ({peak['best']}); one pass {peak['pass_s']:.3f} s")


if __name__ == "__main__":
    main()
