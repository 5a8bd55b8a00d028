"""The inference port in this process (see :mod:`.port`); what an ``alphacut worker`` runs too.

:class:`LocalInference` runs a job on the image queue (decoding; the mask's image work:
resizing to and from the model's size, refinements; composing, the effects and encoding),
and each pass of
a model, alone, on the inference queue: a model slot is held only while a model runs, never by
a resize, a refinement or a PNG encoder, so the next job's model pass starts as soon as this
one's ends (12 MP: the slot's share of a job fell from about 0.5 s to the model's 0.18 s).
The whole job is costed and holds its share of the memory budget from the first hop to the
last. Its :class:`~alphacut.engine.pipeline.Remover` objects are made once per (model,
refinement) and kept; the models named in ``ALPHACUT_LOAD_MODELS`` are loaded at start-up, and
:meth:`LocalInference.readiness` says ``loading`` until they are (``/readyz`` answers 503
meanwhile).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.config import Settings
from alphacut.engine.decode import PHOTO_FORMATS, DecodedImage, Limits, decode, probe_pixels
from alphacut.engine.effects import BYTES_PER_PX, finish
from alphacut.engine.hints import Hints
from alphacut.engine.outputs import encode_outputs
from alphacut.engine.pipeline import Prediction, Remover
from alphacut.engine.resize import resize
from alphacut.engine.sessions import SESSIONS, LoadedModel, LoadPolicy, load_policy
from alphacut.errors import AlphacutError, ModelUnavailableError, NotFoundError
from alphacut.models.store import ModelStore
from alphacut.service import metrics
from alphacut.service.inference.port import InferenceJob, InferenceResult
from alphacut.service.memory import DECODE_BYTES_PER_PX, MB, Cost, MemoryBudget, held, removal_cost
from alphacut.service.model_loads import LoadLimiter
from alphacut.service.work import WorkQueue, checkpoint
from alphacut.storage.blobs import BlobNotFoundError, BlobStore

log = logging.getLogger(__name__)
T = TypeVar("T")
Tensor = npt.NDArray[np.float32]


class LocalInference:
    """Inference in this process, on its bounded queues (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        blobs: BlobStore,
        image_queue: WorkQueue,
        inference_queue: WorkQueue,
        budget: MemoryBudget | None = None,
        store: ModelStore | None = None,
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.image_queue = image_queue
        self.inference_queue = inference_queue
        self.budget = budget
        # What the HTTP APIs send: the web formats, HEIC and AVIF (engine.decode.PHOTO_FORMATS).
        self.limits = Limits(settings.max_input_bytes, settings.max_input_pixels, PHOTO_FORMATS)
        self._removers: dict[tuple[str, str | None], Remover] = {}
        self._store = store or settings.model_store()
        self._lock = threading.Lock()
        self._state = "loading" if settings.load_models else "ok"
        self._loader: threading.Thread | None = None
        self._loads = LoadLimiter(settings.model_loads_per_key_per_hour)
        SESSIONS.watch(metrics.session_event)  # the process's sessions, counted once

    # Models ------------------------------------------------------------------------------

    def remover(self, model: str, refine: str | None = None) -> Remover:
        """The ready :class:`Remover` for ``model`` and ``refine`` (made once; raises for an
        unknown model or a refinement the model cannot do)."""
        with self._lock:
            remover = self._removers.get((model, refine))
            if remover is None:
                remover = Remover(model, refine=refine, settings=self.settings, store=self._store)
                self._removers[model, refine] = remover
        if remover.spec.name not in self.settings.configured_models and not remover.installed():
            # The server's own models missing is its problem (503 at load); a catalogue model
            # it never installed is the request's: 400, naming what it can choose.
            raise ModelUnavailableError(
                f"model {remover.spec.name} is not installed on this server; choose fast, "
                f"precise or an installed model ({', '.join(self._installed_names())})"
            )
        return remover

    def _check_model_fits(self, remover: Remover) -> None:
        """A model whose own memory is over the whole budget could never run here: the
        request's 400, saying so, rather than a 413 about the image's size."""
        if self.budget is None:
            return
        model = removal_cost(remover.spec, remover.refine, 0, remover.checker_spec).bytes
        if model > self.budget.total:
            raise ModelUnavailableError(
                f"model {remover.spec.name} needs about {model // MB:,} MB of memory and this "
                f"server allows {self.budget.total // MB:,} MB per job "
                "(ALPHACUT_MEMORY_BUDGET_BYTES); choose a smaller model"
            )

    def _installed_names(self) -> list[str]:
        return [spec.name for spec in self._store.installed()]

    def start(self) -> None:
        if self._loader is None and self.settings.load_models:
            self._loader = threading.Thread(
                target=self._load, name="alphacut-load-models", daemon=True
            )
            self._loader.start()

    def load(self) -> None:
        """Load the models the settings name now, in the caller's thread (a worker process
        does, before it takes a job); :meth:`readiness` says how it went."""
        self._load()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            for model in self.settings.load_models:
                self.remover(model).load()
        except AlphacutError as exc:
            self._state = f"error: {exc.message}"
            log.error("models could not be loaded: %s", exc.message)
            return
        except Exception as exc:  # a broken file, onnxruntime failing: say so, keep serving
            self._state = f"error: {type(exc).__name__}"
            log.exception("models could not be loaded")
            return
        self._state = "ok"
        names = ", ".join(self.settings.load_models)
        log.info("models loaded (%s) in %.1f s", names, time.perf_counter() - started)

    def readiness(self) -> str:
        return self._state

    def runtimes(self) -> dict[str, str]:
        return SESSIONS.runtimes()

    def installed(self) -> set[str] | None:
        return set(self._installed_names())

    def busy(self) -> bool:
        queue = self.inference_queue
        return bool(queue.pending >= queue.capacity)

    def fleet(self) -> None:
        return None  # no fleet: this process's own queues are in its metrics

    def shutdown(self) -> None:
        """Wait for a model still loading (a process must not exit in the middle of
        onnxruntime's start-up); the queues belong to the runtime, which shuts them down."""
        if self._loader is not None:
            self._loader.join(timeout=120)

    # Jobs --------------------------------------------------------------------------------

    def submit(self, job: InferenceJob) -> InferenceResult:
        if (job.data is None) == (job.blob_key is None):
            raise ValueError("an inference job needs exactly one of data and blob_key")
        limit = self.inference_queue.timeout_or_forever
        deadline = time.monotonic() + (limit if job.timeout is None else min(job.timeout, limit))
        remover = self.remover(job.model, job.refine)
        pixels = job.pixels if job.data is None else probe_pixels(job.data)
        cost = None
        if pixels is not None and 0 < pixels <= self.limits.max_pixels:
            cost = _job_cost(remover, job, pixels)
            self._check_model_fits(remover)
            self.inference_queue.admit(cost)
        timings: dict[str, float] = {}
        # A model the configuration does not name loads under the request's policy: it may
        # not unload a session younger than the minimum residency (503) and counts to the
        # key's loads (429); both refuse before any decoding.
        policy = LoadPolicy(
            self.settings.model_min_residency_seconds,
            charge=lambda: self._loads.charge(job.key_id),
        )
        with ExitStack() as holding:
            holding.enter_context(held(self.budget, cost.bytes if cost is not None else 0))

            def load() -> DecodedImage:
                with load_policy(policy):
                    remover.load()
                # A stored image is read here, once the job has a worker: deleted while the
                # job waited, it is a 404.
                data = self._input(job)
                decoded = _timed(timings, "decode", lambda: decode(data, self.limits))
                sizes.append(decoded.image.size)
                return downscaled(decoded, job.max_pixels, self.settings.image_threads)

            sizes: list[tuple[int, int]] = []
            decoded = self.image_queue.run(load, wait=job.queue_wait, deadline=deadline)
            hints = _hints_on(job.hints, sizes[0], decoded.image.size)
            # What the header said (or a job's payload claimed) is checked against what was
            # decoded: a size the header hid, or understated, is costed now, before the model.
            width, height = decoded.image.size
            actual = _job_cost(remover, job, width * height)
            if cost is None or actual.bytes > cost.bytes:
                self._check_model_fits(remover)
                self.inference_queue.admit(actual)
                extra = actual.bytes - (cost.bytes if cost is not None else 0)
                holding.enter_context(held(self.budget, extra))
            passes = 0

            def in_slot(loaded: LoadedModel, tensor: Tensor) -> Tensor:
                # The first pass may be refused (503) like any new work; a later one (zoom's
                # second pass, consensus's checker) belongs to admitted work: it waits.
                nonlocal passes
                passes += 1
                wait = job.queue_wait if passes == 1 else max(0.0, deadline - time.monotonic())
                return self.inference_queue.run(
                    lambda: loaded.run(tensor), wait=wait, deadline=deadline
                )

            def predict() -> Prediction:
                if job.base_blob_key is not None:  # a correction: no model pass at all
                    base = decode(self._blob(job.base_blob_key), self.limits).image
                    return remover.correct(decoded, base, hints, timings, run=in_slot)
                with load_policy(policy):  # unloaded meanwhile (residency 0): the same rules
                    return remover.predict(decoded, timings, run=in_slot, hints=hints)

            found = self.image_queue.run(
                predict,
                wait=max(0.0, deadline - time.monotonic()),
                deadline=deadline,
            )

            def finishing() -> InferenceResult:
                composed = remover.compose(decoded, found, timings)
                cut, subject = _timed(
                    timings, "effects", lambda: finish(composed, job.effects, self.limits)
                )
                outputs = _timed(
                    timings, "encode", lambda: encode_outputs(cut, job.outputs, checkpoint)
                )
                return InferenceResult(
                    outputs,
                    cut.width,
                    cut.height,
                    remover.model,
                    remover.refine,
                    subject,
                    timings,
                    confidence=None if found.assessment is None else found.assessment.confidence,
                )

            # Admitted work: it waits for an image worker rather than being refused now.
            result = self.image_queue.run(
                finishing, wait=max(0.0, deadline - time.monotonic()), deadline=deadline
            )
        metrics.stages(result.timings)  # where the work ran: a fleet's worker reports its own
        return result

    def _input(self, job: InferenceJob) -> bytes:
        if job.data is not None:
            return job.data
        assert job.blob_key is not None  # noqa: S101 - submit checked it, for the type checker
        return self._blob(job.blob_key)

    def _blob(self, key: str) -> bytes:
        try:
            with metrics.timed("storage"):
                data: bytes = self.blobs.get(key)
            return data
        except BlobNotFoundError:
            raise NotFoundError("the image was deleted before it could be processed") from None


def _hints_on(hints: Hints, given: tuple[int, int], size: tuple[int, int]) -> Hints:
    """A job's hints on the image it works on: given in the input's pixels (``given``),
    scaled where the job shrank the input to ``size`` (``max_pixels``)."""
    if not hints or given == size:
        return hints
    hints.check(*given)
    return hints.scaled(size[0] / given[0], size[1] / given[1], *size)


def downscaled(decoded: DecodedImage, max_pixels: int | None, threads: int = 1) -> DecodedImage:
    """``decoded`` shrunk (Lanczos, aspect kept) to at most ``max_pixels``; never enlarged."""
    width, height = decoded.image.size
    if not max_pixels or width * height <= max_pixels:
        return decoded
    factor = math.sqrt(max_pixels / (width * height))
    size = (max(1, math.floor(width * factor)), max(1, math.floor(height * factor)))
    image = resize(decoded.image, size, Image.Resampling.LANCZOS, threads=threads)
    return replace(decoded, image=image)


def _job_cost(remover: Remover, job: InferenceJob, pixels: int) -> Cost:
    """The removal of ``pixels`` with ``remover`` and the job's effects: peak bytes, seconds."""
    cost = removal_cost(remover.spec, remover.refine, pixels, remover.checker_spec)
    return Cost(cost.bytes + _effects_bytes(job, pixels), cost.seconds)


def _effects_bytes(job: InferenceJob, pixels: int) -> int:
    """What the effects add to a job's memory: a few RGBA copies of the (maybe downscaled)
    result, and a background image decoded beside it (decoded, then made RGBA)."""
    if not job.effects.any:
        return 0
    result = min(pixels, job.max_pixels or pixels)
    background = job.effects.background_image
    background_pixels = (probe_pixels(background) if background else None) or 0
    return BYTES_PER_PX * result + (DECODE_BYTES_PER_PX + 4) * background_pixels


def _timed(timings: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        return fn()
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started
