"""One shared onnxruntime session per model file, created on first use under a lock.

``InferenceSession.run`` is thread-safe, so every caller in the process shares one session
(and one copy of the weights). The CUDA execution provider is used when onnxruntime-gpu and a
GPU are present, with the CPU as fallback; ``device="cpu"`` or ``"cuda"`` forces a choice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from alphacut.config import Device
from alphacut.errors import AlphacutError

log = logging.getLogger(__name__)

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


class DeviceUnavailableError(AlphacutError):
    status = 503
    code = "device_unavailable"


@dataclass(frozen=True)
class LoadedModel:
    """A ready session and the names of the tensors alphacut feeds and reads."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    input_name: str
    output_name: str
    providers: tuple[str, ...]

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        outputs = self.session.run([self.output_name], {self.input_name: tensor})
        return np.asarray(outputs[0], dtype=np.float32)


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def _providers(device: Device) -> list[str]:
    if device == "cpu":
        return [_CPU]
    if _CUDA in available_providers():
        return [_CUDA, _CPU]
    if device == "cuda":
        raise DeviceUnavailableError(
            "device 'cuda' was asked for, but onnxruntime has no CUDA provider; install the "
            "gpu extra (onnxruntime-gpu) on a machine with an NVIDIA driver"
        )
    return [_CPU]


class SessionCache:
    """Sessions keyed by (model file, device, threads); each built once, under its own lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._models: dict[tuple[str, str, int], LoadedModel] = {}

    def get(self, path: Path, *, output: str | None, device: Device, threads: int) -> LoadedModel:
        key = (str(path), device, threads)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            loaded = self._models.get(key)
            if loaded is None:
                loaded = _load(path, output=output, device=device, threads=threads)
                self._models[key] = loaded
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def _load(path: Path, *, output: str | None, device: Device, threads: int) -> LoadedModel:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the CUDA probe is noisy on CPU hosts
    wanted = _providers(device)
    session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    active = tuple(session.get_providers())
    if _CUDA in wanted and _CUDA not in active:
        if device == "cuda":
            raise DeviceUnavailableError(
                "device 'cuda' was asked for, but onnxruntime could not start its CUDA "
                "provider (missing CUDA/cuDNN libraries or no GPU)"
            )
        log.warning("CUDA provider failed to start; %s runs on the CPU", path.name)
    return LoadedModel(
        session=session,
        input_name=session.get_inputs()[0].name,
        output_name=output or session.get_outputs()[0].name,
        providers=active,
    )


SESSIONS = SessionCache()
"""The process-wide cache every :class:`~alphacut.Remover` draws from."""
