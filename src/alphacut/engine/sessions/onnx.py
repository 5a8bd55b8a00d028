"""onnxruntime: ``InferenceSession.run`` is thread-safe, so every caller in the process shares
one session (and one copy of the weights). The CUDA execution provider is used when
onnxruntime-gpu and a GPU are present, with the CPU as fallback; ``device="cpu"`` or
``"cuda"`` forces a choice."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime

from alphacut.engine.config import Device
from alphacut.engine.sessions.base import DeviceUnavailableError, LoadSpec, RuntimeChoice

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class OnnxModel:
    """A ready onnxruntime session and the names of the tensors alphacut feeds and reads."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    input_name: str
    output_name: str
    providers: tuple[str, ...]
    choice: RuntimeChoice

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        outputs = self.session.run([self.output_name], {self.input_name: tensor})
        return np.asarray(outputs[0], dtype=np.float32)


def available_providers() -> list[str]:
    return list(onnxruntime.get_available_providers())


# What onnxruntime-gpu's CUDA provider loads (CUDA 12 builds): the driver, the CUDA runtime
# and maths libraries, cuDNN 9. Asked of the dynamic loader when CUDA fails to start, so that
# the error names what is missing rather than only that something is.
CUDA_LIBRARIES = (
    "libcuda.so.1",
    "libcudart.so.12",
    "libcublas.so.12",
    "libcublasLt.so.12",
    "libcufft.so.11",
    "libcurand.so.10",
    "libcudnn.so.9",
)


def missing_cuda_libraries(names: tuple[str, ...] = CUDA_LIBRARIES) -> list[str]:
    """The libraries of ``names`` the dynamic loader cannot load: not on its path and not
    loaded already (pip's nvidia-* packages count once ``onnxruntime.preload_dlls()`` or
    ``LD_LIBRARY_PATH`` made them so)."""
    missing = []
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def _why_cuda_failed() -> str:
    missing = missing_cuda_libraries()
    if missing:
        return f"libraries not found: {', '.join(missing)}"
    return "no usable GPU, or a CUDA/cuDNN version onnxruntime was not built for"


def providers(device: Device) -> list[str]:
    """The execution providers to ask for, best first."""
    if device == "cpu":
        return [CPU]
    if CUDA in available_providers():
        return [CUDA, CPU]
    if device == "cuda":
        raise DeviceUnavailableError(
            "device 'cuda' was asked for, but onnxruntime has no CUDA provider (onnxruntime "
            f"{onnxruntime.__version__} here offers {', '.join(available_providers())}): "
            "install the gpu extra (onnxruntime-gpu) on a machine with an NVIDIA driver"
        )
    return [CPU]


@functools.lru_cache(maxsize=4)
def check_cuda(path: Path) -> None:
    """Raise :class:`DeviceUnavailableError` unless onnxruntime's CUDA provider really starts
    here: a session of the model at ``path`` on CUDA (onnxruntime-gpu lists the provider even
    on a machine without a GPU or driver, and then runs on the CPU). Checked once per file."""
    providers("cuda")  # the provider at all
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=[CUDA])
        active = session.get_providers()
    except Exception as exc:  # a missing libcudnn, no GPU: any failure says so
        raise DeviceUnavailableError(
            f"device 'cuda' was asked for, but onnxruntime's CUDA provider failed to start "
            f"({_why_cuda_failed()}; {type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    if CUDA not in active:
        raise DeviceUnavailableError(
            "device 'cuda' was asked for, but onnxruntime's CUDA provider did not start "
            f"({_why_cuda_failed()}): it would run on the CPU"
        )


def load(spec: LoadSpec, choice: RuntimeChoice) -> OnnxModel:
    """``spec``'s file as an onnxruntime session on ``spec.device``; ``choice`` (what
    :func:`~alphacut.engine.sessions.resolve_runtime` chose) is what the model reports, made
    the CPU's where CUDA was hoped for and failed to start."""
    options = onnxruntime.SessionOptions()
    # concurrent calls (streams) share the threads: each call gets its part
    options.intra_op_num_threads = max(1, spec.threads // spec.streams)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the CUDA probe is noisy on CPU hosts
    wanted = providers(spec.device)
    session = onnxruntime.InferenceSession(str(spec.path), sess_options=options, providers=wanted)
    active = tuple(session.get_providers())
    if CUDA in wanted and CUDA not in active:
        if spec.device == "cuda":
            raise DeviceUnavailableError(
                "device 'cuda' was asked for, but onnxruntime could not start its CUDA "
                f"provider ({_why_cuda_failed()})"
            )
        log.warning("CUDA provider failed to start; %s runs on the CPU", spec.path.name)
    if choice.device == "cuda" and CUDA not in active:
        choice = RuntimeChoice("onnxruntime", "fp32", "cpu", "CUDA failed to start")
    # What the session really runs on, as onnxruntime says (not what was asked for).
    device: Literal["cpu", "cuda"] = "cuda" if active and active[0] == CUDA else "cpu"
    choice = dataclasses.replace(choice, device=device, providers=active)
    return OnnxModel(
        session=session,
        input_name=session.get_inputs()[0].name,
        output_name=spec.output or session.get_outputs()[0].name,
        providers=active,
        choice=choice,
    )
