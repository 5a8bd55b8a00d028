"""OpenVINO (CPU): one compiled model, and a pool of infer requests (cheap: they share the
compiled weights) so that concurrent callers never share one. In bf16 where the CPU does bf16
natively (:func:`native_bf16`) and the model keeps its masks in bf16 (``ModelSpec.bf16``).

The ``openvino`` package is imported on first use (about 0.3 s), only where it is used."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphacut.engine.sessions.base import DeviceUnavailableError, LoadSpec, RuntimeChoice
from alphacut.engine.sessions.compile_cache import compile_cache

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 math


class OpenVinoModel:
    """A model compiled by OpenVINO for the CPU. Each call takes an idle infer request from a
    pool (or makes one: cheap, the weights are the compiled model's) and gives it back, so
    concurrent callers never share a request and none waits for another's request.

    With ``shared`` (the model compiled a second time with several streams) a call that
    starts while another is running goes there: a call alone gets every thread (``compiled``,
    one stream: the lowest latency), calls at once share them stream by stream (more passes a
    second: on 2 cores U2-Netp does 4.70 a second in two streams against 4.14 in one)."""

    def __init__(
        self, compiled: Any, output: Any, choice: RuntimeChoice, shared: Any | None = None
    ) -> None:
        self.compiled = compiled  # openvino.CompiledModel: one stream, every thread
        self.shared = shared  # the same, in streams; None: one stream only
        self._output = output  # the output port alphacut reads, on `compiled`
        # the same output on `shared`, by its name (a port's get_index() is its node's)
        self._ports = {False: output, True: shared.output(output.any_name) if shared else None}
        self._idle: dict[bool, queue.SimpleQueue[Any]] = {
            False: queue.SimpleQueue(),
            True: queue.SimpleQueue(),
        }
        self._running = 0
        self._lock = threading.Lock()
        self.choice = choice

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with self._lock:
            crowded = self.shared is not None and self._running > 0
            self._running += 1
        idle = self._idle[crowded]
        compiled: Any = self.shared if crowded else self.compiled
        try:
            try:
                request = idle.get_nowait()
            except queue.Empty:
                request = compiled.create_infer_request()
            try:
                request.infer({0: tensor})
                # a copy: the request's own buffer is reused by its next call
                return np.array(request.get_tensor(self._ports[crowded]).data, np.float32)
            finally:
                idle.put(request)
        finally:
            with self._lock:
                self._running -= 1


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(flags: Iterable[str] | None = None) -> str | None:
    """The feature that gives the CPU native bf16 math (``amx_bf16``, ``avx512_bf16``), or
    None. ``flags`` as in /proc/cpuinfo; by default this CPU's, and where there are none
    (macOS, Windows) OpenVINO's own answer (``BF16`` in its CPU optimisation capabilities)."""
    found = frozenset(flags) if flags is not None else cpu_flags()
    if found or flags is not None:
        return next((flag for flag in _BF16_FLAGS if flag in found), None)
    runtime = core()
    if runtime is not None and "BF16" in runtime.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "BF16 in OpenVINO's CPU capabilities"
    return None


_core_lock = threading.Lock()
_core: list[Any] = []


def core() -> Any | None:
    """The process's one ``openvino.Core`` (imported on first use), or None without OpenVINO."""
    with _core_lock:
        if not _core:
            try:
                import openvino
            except ImportError:
                return None
            _core.append(openvino.Core())
        return _core[0]


def compile_model(
    spec: LoadSpec,
    choice: RuntimeChoice,
    *,
    model: Any | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> OpenVinoModel:
    """``spec``'s ONNX file compiled by OpenVINO for the CPU, in ``choice.precision``. The
    precision is always set: on a CPU with native bf16 OpenVINO's own default is bf16. With a
    usable ``spec.cache_dir`` (:func:`compile_cache`) a model compiled before is loaded from
    there: the file's path is given to OpenVINO, which then skips reading the ONNX graph
    altogether. ``model``: an ``openvino.Model`` to compile instead of the file (read from
    it, then changed); ``overrides``: compile options over these (bench/runtime.py: other
    precisions, layers kept in fp32)."""
    runtime = core()
    if runtime is None:  # resolve_runtime chose OpenVINO, so it was importable
        raise DeviceUnavailableError("the openvino package is not installed")
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if choice.precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": spec.threads,
        "PERFORMANCE_HINT": "LATENCY",  # one stream: one call at a time uses every thread
    }
    cache = compile_cache(spec.cache_dir)
    if cache is not None:
        config["CACHE_DIR"] = str(cache)
    config.update(overrides or {})
    source = str(spec.path) if model is None else model
    compiled = runtime.compile_model(source, "CPU", config)
    shared = None
    if spec.streams > 1:  # calls at once: the threads shared among that many streams
        streamed = {k: v for k, v in config.items() if k != "PERFORMANCE_HINT"}
        shared = runtime.compile_model(source, "CPU", streamed | {"NUM_STREAMS": spec.streams})
    port = compiled.output(spec.output) if spec.output else compiled.output(0)
    devices = tuple(str(device) for device in compiled.get_property("EXECUTION_DEVICES"))
    return OpenVinoModel(compiled, port, dataclasses.replace(choice, providers=devices), shared)
