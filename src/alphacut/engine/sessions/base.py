"""What the session cache and each runtime's module share: what to load (:class:`LoadSpec`),
what comes back (:class:`LoadedModel`), the runtime chosen for it and the errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from alphacut.engine.config import Device, Precision, Runtime
from alphacut.errors import AlphacutError, RetryLaterError


class DeviceUnavailableError(AlphacutError):
    status = 503
    code = "device_unavailable"


class ModelLoadError(AlphacutError):
    """An installed, verified model file that the runtime could not load."""

    status = 503
    code = "model_load_failed"


class ModelsBusyError(RetryLaterError):
    """No session can be unloaded for the model a request chose: every one that could be is
    younger than its minimum residency. 503 + ``Retry-After`` (the seconds until the first
    becomes unloadable), as a full queue is: the server's capacity, not the caller's fault."""

    status = 503
    code = "models_busy"


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """What to load: a model file and how to run it. Its equality and hash are the session
    cache's key, so two specs that load the same thing share one session.

    In the key: ``path`` (which weights), ``output`` (which tensor ``run`` returns: a session
    is built for one), ``runtime`` and ``device`` as asked for (resolved on this machine by
    the loader), ``threads`` and ``streams`` (passes at once, sharing the threads),
    ``precision`` (as asked for: the settings' ``precision_for``) and ``bf16_proven``
    (whether bf16 was measured to keep this model's masks: with ``precision``, what the
    loader runs in). Not in it: ``cache_dir``, only where OpenVINO may keep what it
    compiled; a model loaded with or without it computes the same, so a second caller naming
    another folder shares the session rather than holding the weights twice."""

    path: Path
    output: str | None = None
    runtime: Runtime = "auto"
    device: Device = "auto"
    threads: int
    streams: int = 1
    precision: Precision = "auto"
    bf16_proven: bool = False
    cache_dir: Path | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime runs the models, in which precision, on what, and why."""

    runtime: Literal["onnxruntime", "openvino"]
    precision: Literal["fp32", "bf16"]
    device: Literal["cpu", "cuda"]
    reason: str
    # What the loaded session itself says it runs on, asked once it is loaded (onnxruntime's
    # execution providers, OpenVINO's execution devices); empty before a load.
    providers: tuple[str, ...] = ()

    def describe(self) -> str:
        via = f" [{', '.join(self.providers)}]" if self.providers else ""
        return f"{self.runtime} {self.precision} on {self.device.upper()}{via} ({self.reason})"

    def short(self) -> str:
        """``openvino fp32 cpu [CPU]``: what /readyz and a fleet's reports say."""
        via = f" [{', '.join(self.providers)}]" if self.providers else ""
        return f"{self.runtime} {self.precision} {self.device}{via}"


class LoadedModel(Protocol):
    """A model ready to run, whatever the runtime: ``run`` is safe from any thread."""

    @property
    def choice(self) -> RuntimeChoice: ...

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
