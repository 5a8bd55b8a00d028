"""One shared model session per :class:`LoadSpec`, created on first use under a lock.

Two runtimes read the same ONNX files (``runtime`` setting, see :func:`resolve_runtime`), one
module each:

- :mod:`.onnx`, onnxruntime: ``InferenceSession.run`` is thread-safe, so every caller in the
  process shares one session (and one copy of the weights). The CUDA execution provider is
  used when onnxruntime-gpu and a GPU are present, with the CPU as fallback; ``device="cpu"``
  or ``"cuda"`` forces a choice.
- :mod:`.openvino`, OpenVINO (CPU): one compiled model, and a pool of infer requests (cheap:
  they share the compiled weights) so that concurrent callers never share one. In bf16 where
  the CPU does bf16 natively (AVX512_BF16 or AMX) and the model keeps its masks in bf16
  (``ModelSpec.bf16``, set by bench/runtime.py on davis345). bf16 is about 3x faster, but
  neither model passes the rule today: U2-Netp's masks change (its full-resolution side
  outputs drift), IS-Net's small subjects move by about a pixel (docs/performance.md). What
  it compiled is kept in a private folder (:mod:`.compile_cache`).

``runtime="auto"`` (the default) picks onnxruntime where CUDA is used, else OpenVINO: bf16
where the CPU has native bf16 and the model allows it, fp32 elsewhere (OpenVINO's fp32 measured
as fast as onnxruntime's for both models on this project's machine, with less memory:
docs/performance.md).

:class:`SessionCache` takes its loader (``LoadSpec -> LoadedModel``) as an argument: by
default :func:`load`, which resolves the runtime on this machine and loads through it;
bench/runtime.py passes one that forces a runtime and precision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alphacut.engine.config import Device, Precision, Runtime
from alphacut.engine.sessions import onnx, openvino
from alphacut.engine.sessions.base import (
    DeviceUnavailableError,
    LoadedModel,
    LoadSpec,
    ModelLoadError,
    ModelsBusyError,
    RuntimeChoice,
)
from alphacut.engine.sessions.onnx import OnnxModel
from alphacut.engine.sessions.openvino import OpenVinoModel
from alphacut.errors import AlphacutError, ModelUnavailableError

__all__ = [
    "RUNTIME_NAMES",
    "SESSIONS",
    "DeviceUnavailableError",
    "LoadPolicy",
    "LoadSpec",
    "LoadedModel",
    "Loader",
    "ModelLoadError",
    "ModelsBusyError",
    "OnnxModel",
    "OpenVinoModel",
    "RuntimeChoice",
    "SessionCache",
    "SessionEvent",
    "fixed_loader",
    "load",
    "load_policy",
    "resolve_runtime",
]

log = logging.getLogger(__name__)

Loader = Callable[[LoadSpec], LoadedModel]
"""Builds the model a spec names; :class:`SessionCache` calls it at most once per spec."""


@dataclass(frozen=True)
class LoadPolicy:
    """How a caller may load a model that is not configured (not ``pinned``):
    ``min_residency``: seconds a session loaded for such a model stays before it can be
    unloaded for another (``ALPHACUT_MODEL_MIN_RESIDENCY_SECONDS``); ``charge``: called just
    before such a load, it raises to refuse it (the service's per-key load limit)."""

    min_residency: float = 0.0
    charge: Callable[[], None] | None = None


@dataclass(frozen=True)
class SessionEvent:
    """A session loaded or unloaded, told to whoever watches the cache (the service counts
    them in its metrics; the engine records nothing of its own)."""

    kind: Literal["load", "unload"]
    model: str  # the model file's name
    seconds: float = 0.0  # how long a load took


Watcher = Callable[[SessionEvent], None]

_NO_POLICY = LoadPolicy()
_policy: ContextVar[LoadPolicy | None] = ContextVar("alphacut_load_policy", default=None)


@contextlib.contextmanager
def load_policy(policy: LoadPolicy) -> Iterator[None]:
    """Loads made in this context (this thread, by :meth:`SessionCache.get` through
    ``Remover.load``) follow ``policy``; the library's own default is none (no residency, no
    charge), so only the service, which sets one per request, refuses loads."""
    token = _policy.set(policy)
    try:
        yield
    finally:
        _policy.reset(token)


def resolve_runtime(
    runtime: Runtime,
    device: Device,
    *,
    precision: Precision = "auto",
    bf16_proven: bool = False,
    flags: Iterable[str] | None = None,
) -> RuntimeChoice:
    """What ``runtime`` and ``device`` mean on this machine for a model (``precision``: as the
    settings ask for it; ``bf16_proven``: whether bf16 was measured to keep the model's masks;
    ``flags``: the CPU's, for tests).

    - ``auto``: a GPU (``device`` cuda, or auto with onnxruntime's CUDA provider present) runs
      through onnxruntime; else OpenVINO, in bf16 where the CPU has native bf16 and either bf16
      keeps the model's masks (``precision`` auto) or the operator asks for it (``bf16``),
      else in fp32 (as fast as onnxruntime's fp32, less memory: docs/performance.md);
    - ``onnxruntime``: fp32, CUDA or CPU as ``device`` says;
    - ``openvino``: the CPU, precision as for ``auto``; ``device="cuda"`` is an error.

    bf16 is never emulated: on a CPU without native bf16 it is slower than fp32.
    """
    cuda = device == "cuda" or (device == "auto" and onnx.CUDA in onnx.available_providers())
    if runtime == "onnxruntime":
        return RuntimeChoice("onnxruntime", "fp32", "cuda" if cuda else "cpu", "asked for")
    if runtime == "auto" and cuda:
        return RuntimeChoice("onnxruntime", "fp32", "cuda", "auto: a GPU runs on CUDA")
    if runtime == "openvino" and device == "cuda":
        raise DeviceUnavailableError(
            "device 'cuda' needs runtime onnxruntime (or auto): alphacut runs OpenVINO on the "
            "CPU only"
        )
    if flags is None and openvino.core() is None:
        if runtime == "openvino":
            raise DeviceUnavailableError(
                "runtime 'openvino' was asked for, but the openvino package is not installed"
            )
        return RuntimeChoice("onnxruntime", "fp32", "cpu", "auto: openvino is not installed")
    how = "asked for" if runtime == "openvino" else "auto"
    native = openvino.native_bf16(flags)
    if precision == "fp32":
        return RuntimeChoice("openvino", "fp32", "cpu", f"{how}: fp32 asked for (precision)")
    if native is None:
        return RuntimeChoice("openvino", "fp32", "cpu", f"{how}: the CPU has no native bf16")
    if bf16_proven:
        return RuntimeChoice(
            "openvino",
            "bf16",
            "cpu",
            f"{how}: the CPU has native bf16 ({native}) and bf16 keeps this model's masks "
            "(davis345, docs/performance.md)",
        )
    if precision == "bf16":
        return RuntimeChoice(
            "openvino",
            "bf16",
            "cpu",
            f"{how}: bf16 asked for (model_precision) on native bf16 ({native}); NOT measured "
            "to keep this model's masks",
        )
    return RuntimeChoice(
        "openvino",
        "fp32",
        "cpu",
        f"{how}: bf16 is not proven to keep this model's masks (docs/performance.md)",
    )


def load(spec: LoadSpec) -> LoadedModel:
    """The model ``spec`` names, through the runtime :func:`resolve_runtime` picks for it."""
    choice = resolve_runtime(
        spec.runtime, spec.device, precision=spec.precision, bf16_proven=spec.bf16_proven
    )
    if choice.runtime == "openvino":
        return openvino.compile_model(spec, choice)
    return onnx.load(spec, choice)


RUNTIME_NAMES = ("openvino-fp32", "openvino-bf16", "onnxruntime-fp32")
"""The runtimes :func:`fixed_loader` builds: what ``alphacut eval --runtime`` compares."""


def fixed_loader(name: str) -> Loader:
    """A loader that builds runtime ``name`` (one of :data:`RUNTIME_NAMES`) whatever the
    settings' runtime and precision say, to compare runtimes on the same photos:
    ``openvino-*`` on the CPU, ``onnxruntime-fp32`` on the device the settings name. bf16
    where OpenVINO cannot run it (no AVX-512) is an error, never fp32 under bf16's name."""
    if name not in RUNTIME_NAMES:
        raise ValueError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIME_NAMES)}")
    runtime, precision = name.split("-")

    def build(spec: LoadSpec) -> LoadedModel:
        if runtime == "onnxruntime":
            return onnx.load(spec, resolve_runtime("onnxruntime", spec.device))
        if openvino.core() is None:
            raise DeviceUnavailableError(f"{name}: the openvino package is not installed")
        choice = RuntimeChoice("openvino", "bf16" if precision == "bf16" else "fp32", "cpu", name)
        model = openvino.compile_model(dataclasses.replace(spec, device="cpu"), choice)
        ran = str(model.compiled.get_property("INFERENCE_PRECISION_HINT"))
        if precision == "bf16" and "bf16" not in ran:  # OpenVINO runs f32 without bf16 support
            raise DeviceUnavailableError(
                f"{name}: this CPU cannot run bf16 (OpenVINO runs {ran} here), so it cannot be "
                "measured here: compare on a CPU with AVX512_BF16 or AMX"
            )
        return model

    return build


def resident_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 where there is none)."""
    try:
        return int(Path("/proc/self/statm").read_text("ascii").split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class SessionCache:
    """Sessions keyed by their :class:`LoadSpec`, each built once by ``loader`` (default:
    :func:`load`). With ``max_loaded``, at most that many are kept: loading one more first
    unloads the least recently used that is not ``pinned`` (the models the configuration
    names: never unloaded); a call running on an unloaded session keeps it alive until it
    returns. Loads run one at a time (they are seconds of CPU-bound compilation each), so
    concurrent requests for different models cannot overshoot the limit.

    A model chosen per request may unload only a session older than the policy's
    ``min_residency`` (:class:`LoadPolicy`); where none is, it is refused
    (:class:`ModelsBusyError`) rather than loaded: clients alternating models can then cause
    at most one load per slot per residency, not one per request."""

    def __init__(self, loader: Loader = load) -> None:
        self._loader = loader
        self._lock = threading.Lock()  # guards _models, _loaded_at, _pinned and loads
        self._load_lock = threading.Lock()  # one load (with its evictions) at a time
        self._models: OrderedDict[LoadSpec, LoadedModel] = OrderedDict()
        self._loaded_at: dict[LoadSpec, float] = {}  # time.monotonic() of each session's load
        self._pinned: set[LoadSpec] = set()
        self.costs: dict[str, int] = {}  # model file name -> resident bytes its load added
        self.loads = 0  # sessions loaded since this cache was made
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        """Call ``watcher`` after each load and unload (once, however often it is given)."""
        with self._lock:
            if watcher not in self._watchers:
                self._watchers.append(watcher)

    def _tell(self, event: SessionEvent) -> None:
        for watcher in list(self._watchers):
            watcher(event)

    def get(
        self,
        spec: LoadSpec,
        *,
        max_loaded: int | None = None,
        pinned: bool = False,
        policy: LoadPolicy | None = None,
    ) -> LoadedModel:
        """The model ``spec`` names, loaded once; ``max_loaded``: the most sessions kept;
        ``pinned``: a model the configuration names (never unloaded); ``policy``: how an
        unpinned model may load (default: the context's, :func:`load_policy`)."""
        loaded = self._hit(spec, pinned)
        if loaded is not None:
            return loaded
        policy = policy or _policy.get() or _NO_POLICY
        with self._load_lock:
            loaded = self._hit(spec, pinned)
            if loaded is not None:
                return loaded
            victims = (
                self._victims(max_loaded, spec.path.name, pinned, policy.min_residency)
                if max_loaded is not None
                else []
            )
            if not pinned and policy.charge is not None:
                policy.charge()  # refused here, nothing was unloaded
            self._evict(victims)
            loaded = self._load(spec)
            with self._lock:
                self._models[spec] = loaded
                self._loaded_at[spec] = time.monotonic()
                self.loads += 1
                if pinned:
                    self._pinned.add(spec)
            return loaded

    def _hit(self, key: LoadSpec, pinned: bool) -> LoadedModel | None:
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
                if pinned:
                    self._pinned.add(key)
            return loaded

    def _victims(
        self, max_loaded: int, name: str, pinned: bool, residency: float
    ) -> list[LoadSpec]:
        """The sessions to unload, least recently used first, for one more to fit. A model the
        configuration names always loads (unloading any unpinned one: there are only so many
        configured models, so this cannot thrash); another finds no room where pinned ones
        fill it (400), and must wait (503) where the sessions it could unload are all younger
        than ``residency`` seconds."""
        with self._lock:
            excess = len(self._models) + 1 - max_loaded
            if excess <= 0:
                return []
            unpinned = [key for key in self._models if key not in self._pinned]
            if pinned:
                return unpinned[:excess]
            if len(unpinned) < excess:
                raise ModelUnavailableError(
                    f"model {name} cannot be loaded: the {max_loaded} model sessions this "
                    "server keeps (ALPHACUT_MAX_LOADED_MODELS) are taken by the models it is "
                    "configured with; choose one of those"
                )
            now = time.monotonic()
            free_at = {key: self._loaded_at.get(key, -math.inf) + residency for key in unpinned}
            ready = [key for key in unpinned if free_at[key] <= now]
            if len(ready) >= excess:
                return ready[:excess]
            waits = sorted(free_at[key] - now for key in unpinned if free_at[key] > now)
            retry = max(1, math.ceil(waits[excess - len(ready) - 1]))
        raise ModelsBusyError(
            f"model {name} cannot be loaded now: the {max_loaded} model sessions this server "
            "keeps (ALPHACUT_MAX_LOADED_MODELS) hold models loaded less than "
            f"{residency:g} s ago (ALPHACUT_MODEL_MIN_RESIDENCY_SECONDS); retry in {retry} s "
            "or choose a model that is loaded",
            retry,
        )

    def _evict(self, victims: list[LoadSpec]) -> None:
        with self._lock:
            for key in victims:
                self._models.pop(key, None)
                self._loaded_at.pop(key, None)
                log.info("model %s unloaded (least recently used; max_loaded_models)", key.path)
        for key in victims:
            self._tell(SessionEvent("unload", key.path.name))
        if victims:
            gc.collect()  # the unloaded sessions' memory goes back now, not at a later one

    def _load(self, spec: LoadSpec) -> LoadedModel:
        path = spec.path
        started, before = time.perf_counter(), resident_bytes()
        try:
            loaded = self._loader(spec)
        except AlphacutError:
            raise
        except Exception as exc:  # a file the runtime cannot read, memory: the server's problem
            log.exception("model %s could not be loaded", path.name)
            raise ModelLoadError(
                f"model {path.name} could not be loaded ({type(exc).__name__})"
            ) from exc
        seconds = time.perf_counter() - started
        added = max(0, resident_bytes() - before)
        self.costs[path.name] = added
        log.info(
            "model %s: %s, %d threads; loaded in %.2f s, +%d MB resident",
            path.name,
            loaded.choice.describe(),
            spec.threads,
            seconds,
            added // 2**20,
        )
        self._tell(SessionEvent("load", path.name, seconds))
        return loaded

    def runtimes(self) -> dict[str, str]:
        """Each loaded model file's runtime, precision, device and what the session says it
        runs on (``openvino bf16 cpu [CPU]``, ``onnxruntime fp32 cuda [CUDAExecutionProvider,
        CPUExecutionProvider]``)."""
        with self._lock:
            models = list(self._models.items())
        return {spec.path.name: m.choice.short() for spec, m in models}

    def loaded(self) -> list[str]:
        """The model files loaded now, least recently used first."""
        with self._lock:
            return [key.path.name for key in self._models]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._loaded_at.clear()
            self._pinned.clear()


SESSIONS = SessionCache()
"""The process-wide cache every :class:`~alphacut.Remover` draws from."""
