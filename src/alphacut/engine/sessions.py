"""One shared model session per model file, created on first use under a lock.

Two runtimes read the same ONNX files (``runtime`` setting, see :func:`resolve_runtime`):

- onnxruntime: ``InferenceSession.run`` is thread-safe, so every caller in the process shares
  one session (and one copy of the weights). The CUDA execution provider is used when
  onnxruntime-gpu and a GPU are present, with the CPU as fallback; ``device="cpu"`` or
  ``"cuda"`` forces a choice.
- OpenVINO (CPU): one compiled model, and a pool of infer requests (cheap: they share the
  compiled weights) so that concurrent callers never share one. In bf16 where the CPU does
  bf16 natively (AVX512_BF16 or AMX) and the model keeps its masks in bf16
  (``ModelSpec.bf16``, set by bench/runtime.py on davis345). bf16 is about 3x faster, but
  neither model passes the rule today: U2-Netp's masks change (its full-resolution side
  outputs drift), IS-Net's small subjects move by about a pixel (docs/performance.md).

``runtime="auto"`` (the default) picks onnxruntime where CUDA is used, else OpenVINO: bf16
where the CPU has native bf16 and the model allows it, fp32 elsewhere (OpenVINO's fp32 measured
as fast as onnxruntime's for both models on this project's machine, with less memory:
docs/performance.md).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import queue
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from alphacut.config import Device, Runtime
from alphacut.errors import AlphacutError, ModelUnavailableError, RetryLaterError

log = logging.getLogger(__name__)

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


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


@dataclass(frozen=True)
class LoadPolicy:
    """How a caller may load a model that is not configured (not ``pinned``):
    ``min_residency``: seconds a session loaded for such a model stays before it can be
    unloaded for another (``ALPHACUT_MODEL_MIN_RESIDENCY_SECONDS``); ``charge``: called just
    before such a load, it raises to refuse it (the service's per-key load limit)."""

    min_residency: float = 0.0
    charge: Callable[[], None] | None = None


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


_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 math


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime runs the models, in which precision, on what, and why."""

    runtime: Literal["onnxruntime", "openvino"]
    precision: Literal["fp32", "bf16"]
    device: Literal["cpu", "cuda"]
    reason: str

    def describe(self) -> str:
        return f"{self.runtime} {self.precision} on {self.device.upper()} ({self.reason})"


class LoadedModel(Protocol):
    """A model ready to run, whatever the runtime: ``run`` is safe from any thread."""

    @property
    def choice(self) -> RuntimeChoice: ...

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


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


class OpenVinoModel:
    """A model compiled by OpenVINO for the CPU. Each call takes an idle infer request from a
    pool (or makes one: cheap, the weights are the compiled model's) and gives it back, so
    concurrent callers never share a request and none waits for another's request."""

    def __init__(self, compiled: Any, output: Any, choice: RuntimeChoice) -> None:
        self.compiled = compiled  # openvino.CompiledModel
        self._output = output  # the output port alphacut reads
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.choice = choice

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            # share_outputs=False (the default): the result is a copy, not the request's buffer
            result = request.infer({0: tensor})
            return np.asarray(result[self._output], dtype=np.float32)
        finally:
            self._idle.put(request)


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
    core = _openvino_core()
    if core is not None and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "BF16 in OpenVINO's CPU capabilities"
    return None


_core_lock = threading.Lock()
_core: list[Any] = []


def _openvino_core() -> Any | None:
    """The process's one ``openvino.Core`` (imported on first use), or None without OpenVINO."""
    with _core_lock:
        if not _core:
            try:
                import openvino  # here: ~0.3 s of import, only where it is used
            except ImportError:
                return None
            _core.append(openvino.Core())
        return _core[0]


def resolve_runtime(
    runtime: Runtime, device: Device, *, bf16: bool = False, flags: Iterable[str] | None = None
) -> RuntimeChoice:
    """What ``runtime`` and ``device`` mean on this machine for a model (``bf16``: whether
    bf16 keeps the model's masks; ``flags``: the CPU's, for tests).

    - ``auto``: a GPU (``device`` cuda, or auto with onnxruntime's CUDA provider present) runs
      through onnxruntime; else OpenVINO, in bf16 where the CPU has native bf16 and bf16
      keeps the model's masks (about 3x faster), else in fp32 (as fast as onnxruntime's fp32
      for both models with bf16 disabled, less memory: docs/performance.md);
    - ``onnxruntime``: today's behaviour, fp32, CUDA or CPU as ``device`` says;
    - ``openvino``: the CPU, precision as for ``auto``; ``device="cuda"`` is an error.
    """
    cuda = device == "cuda" or (device == "auto" and _CUDA in available_providers())
    if runtime == "onnxruntime":
        return RuntimeChoice("onnxruntime", "fp32", "cuda" if cuda else "cpu", "asked for")
    if runtime == "auto" and cuda:
        return RuntimeChoice("onnxruntime", "fp32", "cuda", "auto: a GPU runs on CUDA")
    if runtime == "openvino" and device == "cuda":
        raise DeviceUnavailableError(
            "device 'cuda' needs runtime onnxruntime (or auto): alphacut runs OpenVINO on the "
            "CPU only"
        )
    if flags is None and _openvino_core() is None:
        if runtime == "openvino":
            raise DeviceUnavailableError(
                "runtime 'openvino' was asked for, but the openvino package is not installed"
            )
        return RuntimeChoice("onnxruntime", "fp32", "cpu", "auto: openvino is not installed")
    how = "asked for" if runtime == "openvino" else "auto"
    native = native_bf16(flags)
    if native is not None and bf16:
        return RuntimeChoice("openvino", "bf16", "cpu", f"{how}: the CPU has native bf16, {native}")
    if native is not None:
        return RuntimeChoice(
            "openvino",
            "fp32",
            "cpu",
            f"{how}: bf16 is not proven to keep this model's masks (docs/performance.md)",
        )
    return RuntimeChoice("openvino", "fp32", "cpu", f"{how}: the CPU has no native bf16")


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


def resident_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 where there is none)."""
    try:
        return int(Path("/proc/self/statm").read_text("ascii").split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_Key = tuple[str, str, str, int, bool]


class SessionCache:
    """Sessions keyed by (model file, runtime, device, threads, bf16 allowed), each built
    once. With ``max_loaded``, at most that many are kept: loading one more first unloads the
    least recently used that is not ``pinned`` (the models the configuration names: never
    unloaded); a call running on an unloaded session keeps it alive until it returns. Loads
    run one at a time (they are seconds of CPU-bound compilation each), so concurrent requests
    for different models cannot overshoot the limit.

    A model chosen per request may unload only a session older than the policy's
    ``min_residency`` (:class:`LoadPolicy`); where none is, it is refused
    (:class:`ModelsBusyError`) rather than loaded: clients alternating models can then cause
    at most one load per slot per residency, not one per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _models, _loaded_at, _pinned and loads
        self._load_lock = threading.Lock()  # one load (with its evictions) at a time
        self._models: OrderedDict[_Key, LoadedModel] = OrderedDict()
        self._loaded_at: dict[_Key, float] = {}  # time.monotonic() of each session's load
        self._pinned: set[_Key] = set()
        self.costs: dict[str, int] = {}  # model file name -> resident bytes its load added
        self.loads = 0  # sessions loaded since this cache was made

    def get(
        self,
        path: Path,
        *,
        output: str | None,
        device: Device,
        threads: int,
        runtime: Runtime,
        bf16: bool = False,
        max_loaded: int | None = None,
        pinned: bool = False,
        cache_dir: Path | None = None,
        policy: LoadPolicy | None = None,
    ) -> LoadedModel:
        """The model at ``path``, loaded once; ``bf16``: whether bf16 keeps this model's masks
        (else it runs in fp32 wherever it runs); ``cache_dir``: where OpenVINO may keep what it
        compiled (:func:`compile_cache`); ``policy``: how an unpinned model may load (default:
        the context's, :func:`load_policy`)."""
        key = (str(path), runtime, device, threads, bf16)
        loaded = self._hit(key, pinned)
        if loaded is not None:
            return loaded
        policy = policy or _policy.get() or _NO_POLICY
        with self._load_lock:
            loaded = self._hit(key, pinned)
            if loaded is not None:
                return loaded
            victims = (
                self._victims(max_loaded, path.name, pinned, policy.min_residency)
                if max_loaded is not None
                else []
            )
            if not pinned and policy.charge is not None:
                policy.charge()  # refused here, nothing was unloaded
            self._evict(victims)
            loaded = self._load(path, output, device, threads, runtime, bf16, cache_dir)
            with self._lock:
                self._models[key] = loaded
                self._loaded_at[key] = time.monotonic()
                self.loads += 1
                if pinned:
                    self._pinned.add(key)
            return loaded

    def _hit(self, key: _Key, pinned: bool) -> LoadedModel | None:
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
                if pinned:
                    self._pinned.add(key)
            return loaded

    def _victims(self, max_loaded: int, name: str, pinned: bool, residency: float) -> list[_Key]:
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

    def _evict(self, victims: list[_Key]) -> None:
        with self._lock:
            for key in victims:
                self._models.pop(key, None)
                self._loaded_at.pop(key, None)
                log.info("model %s unloaded (least recently used; max_loaded_models)", key[0])
        if victims:
            gc.collect()  # the unloaded sessions' memory goes back now, not at a later one

    def _load(
        self,
        path: Path,
        output: str | None,
        device: Device,
        threads: int,
        runtime: Runtime,
        bf16: bool,
        cache_dir: Path | None,
    ) -> LoadedModel:
        started, before = time.perf_counter(), resident_bytes()
        choice = resolve_runtime(runtime, device, bf16=bf16)
        try:
            if choice.runtime == "openvino":
                loaded: LoadedModel = _load_openvino(
                    path, output=output, threads=threads, choice=choice, cache_dir=cache_dir
                )
            else:
                loaded = _load(path, output=output, device=device, threads=threads, choice=choice)
        except AlphacutError:
            raise
        except Exception as exc:  # a file the runtime cannot read, memory: the server's problem
            log.exception("model %s could not be loaded", path.name)
            raise ModelLoadError(
                f"model {path.name} could not be loaded ({type(exc).__name__})"
            ) from exc
        added = max(0, resident_bytes() - before)
        self.costs[path.name] = added
        log.info(
            "model %s: %s, %d threads; loaded in %.2f s, +%d MB resident",
            path.name,
            loaded.choice.describe(),
            threads,
            time.perf_counter() - started,
            added // 2**20,
        )
        return loaded

    def loaded(self) -> list[str]:
        """The model files loaded now, least recently used first."""
        with self._lock:
            return [Path(key[0]).name for key in self._models]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._loaded_at.clear()
            self._pinned.clear()


def _load(
    path: Path,
    *,
    output: str | None,
    device: Device,
    threads: int,
    choice: RuntimeChoice | None = None,
) -> OnnxModel:
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
    choice = choice or RuntimeChoice("onnxruntime", "fp32", "cpu", "asked for")
    if choice.device == "cuda" and _CUDA not in active:
        choice = RuntimeChoice("onnxruntime", "fp32", "cpu", "CUDA failed to start")
    return OnnxModel(
        session=session,
        input_name=session.get_inputs()[0].name,
        output_name=output or session.get_outputs()[0].name,
        providers=active,
        choice=choice,
    )


def compile_cache(directory: Path | None) -> Path | None:
    """``directory`` made ready to hold OpenVINO's compiled models, or None where it must not
    be used. What is there is loaded as compiled code for this process, so the directory must
    be private: created 0700, refused (with a warning; the model is then compiled as if there
    were no cache) when another user owns it or others can write to it, when any folder above
    it is unsafe (:func:`_unsafe_parent`), or when any compiled entry in it is not a regular
    file of this user's that only this user can write (:func:`_unsafe_blob`): the whole cache
    is refused then, nothing is deleted. Checking once here is enough: no one else can change
    a folder that passed, so no one else can put an entry in it later. OpenVINO keys each
    entry by the model file's path, size and modification time, the compile options and its
    own version; callers give each verified model file a folder of its own, named by its
    checksum (``Remover.load``), so a different file at the same path never loads another's
    compiled code."""
    if directory is None:
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        log.warning("compile cache %s not used: %s", directory, exc)
        return None
    owner = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner or info.st_mode & 0o022:
        log.warning(
            "compile cache %s not used: it must be a directory of this user's that no one "
            "else can write to (chmod 700)",
            directory,
        )
        return None
    problem = _unsafe_parent(directory, owner) or _unsafe_blob(directory, owner)
    if problem is not None:
        log.warning("compile cache %s not used: %s", directory, problem)
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        log.warning("compile cache %s not used: not writable", directory)
        return None
    _sweep(directory)
    return directory


MAX_CACHE_ENTRIES = 1000  # more files than this in one model's folder: not alphacut's cache


def _unsafe_parent(directory: Path, owner: int) -> str | None:
    """Why a folder above ``directory`` (up to ``/``, in the path as given and as resolved)
    lets another user replace it, or None. As OpenSSH's ``safe_path`` checks the folders
    above a key file: each must be owned by root or ``owner`` and not writable by group or
    others, except that a group- or world-writable folder with the sticky bit (``/tmp``) is
    accepted: there only an entry's owner can rename or delete it, and the entry below it is
    checked in turn (ours or root's). A symbolic link on the way must be owned by root or
    ``owner`` too (its target is checked in the resolved path)."""
    try:
        resolved = directory.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        return f"cannot resolve it ({exc})"
    given = directory if directory.is_absolute() else Path.cwd() / directory
    for path in (*given.parents, *resolved.parents):
        try:
            info = path.lstat()
        except OSError as exc:
            return f"cannot check {path} ({exc})"
        if info.st_uid not in (0, owner):
            return f"{path} belongs to another user (uid {info.st_uid})"
        if stat.S_ISLNK(info.st_mode):
            continue
        if not stat.S_ISDIR(info.st_mode):
            return f"{path} is not a directory"
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return f"{path} can be written by others and has no sticky bit (chmod go-w or +t)"
    return None


def _unsafe_blob(directory: Path, owner: int) -> str | None:
    """Why a compiled entry (``*.blob``) in ``directory`` must not be loaded, or None: each
    must be a regular file (not a link) of ``owner``'s that no one else can write."""
    try:
        with os.scandir(directory) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_CACHE_ENTRIES:
                    return f"more than {MAX_CACHE_ENTRIES} entries"
                if not entry.name.endswith(".blob"):
                    continue
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    return f"{entry.name} is not a regular file"
                if info.st_uid != owner:
                    return f"{entry.name} belongs to another user (uid {info.st_uid})"
                if info.st_mode & 0o022:
                    return f"{entry.name} can be written by others"
    except OSError as exc:
        return f"cannot list it ({exc})"
    return None


KEPT_COMPILES = 4
"""Compiled entries kept per model folder (one per thread count, precision and OpenVINO
version: IS-Net's are 177 MB each), newest first; an older configuration that comes back is
compiled again."""


def _sweep(directory: Path) -> None:
    """Delete all but the ``KEPT_COMPILES`` newest compiled entries in ``directory`` (a file
    another process still reads stays readable to it until closed)."""
    entries = []
    for entry in directory.glob("*.blob"):
        with contextlib.suppress(OSError):
            entries.append((entry.stat().st_mtime, entry))
    entries.sort(reverse=True)
    for _, old in entries[KEPT_COMPILES:]:
        try:
            old.unlink()
        except OSError as exc:
            log.warning("compile cache: could not delete %s: %s", old, exc)
        else:
            log.info("compile cache: deleted %s (older than the %d kept)", old, KEPT_COMPILES)


def _load_openvino(
    path: Path,
    *,
    output: str | None,
    threads: int,
    choice: RuntimeChoice,
    cache_dir: Path | None = None,
) -> OpenVinoModel:
    """The ONNX file compiled by OpenVINO for the CPU, in ``choice.precision``. The precision
    is always set: on a CPU with native bf16 OpenVINO's own default is bf16. With a usable
    ``cache_dir`` (:func:`compile_cache`) a model compiled before is loaded from there: the
    file's path is given to OpenVINO, which then skips reading the ONNX graph altogether."""
    core = _openvino_core()
    if core is None:  # resolve_runtime chose OpenVINO, so it was importable
        raise DeviceUnavailableError("the openvino package is not installed")
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if choice.precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",  # one stream: one call at a time uses every thread
    }
    cache = compile_cache(cache_dir)
    if cache is not None:
        config["CACHE_DIR"] = str(cache)
    compiled = core.compile_model(str(path), "CPU", config)
    port = compiled.output(output) if output else compiled.output(0)
    return OpenVinoModel(compiled, port, choice)


SESSIONS = SessionCache()
"""The process-wide cache every :class:`~alphacut.Remover` draws from."""
