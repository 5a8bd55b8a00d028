"""The inference port: a data-only job goes in, encoded outputs come out.

Every API dialect reaches the engine through :class:`Inference` and nothing else, so that
inference can run in this process (:mod:`.local`) or on a fleet of workers (:mod:`.celery`):
a job names its input by blob key (or carries its bytes, for a request that brings an image
inline), says how to finish the cut-out (:class:`~alphacut.engine.effects.Effects`) and which
outputs it wants; it holds no object, callback or open file, so it can be serialised as it is
(:mod:`.wire`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from alphacut.engine.compose import Box
from alphacut.engine.effects import Effects
from alphacut.engine.hints import Hints
from alphacut.engine.outputs import Encoded, OutputSpec
from alphacut.errors import AlphacutError


@dataclass(frozen=True)
class InferenceJob:
    """What to cut out, with which model, how to finish it and which outputs to send back.
    Exactly one of ``blob_key`` (an image in the blob store) and ``data`` (its bytes)."""

    model: str
    outputs: tuple[OutputSpec, ...] = (OutputSpec(),)
    blob_key: str | None = None
    data: bytes | None = field(default=None, repr=False)
    refine: str | None = None  # None: ALPHACUT_REFINE
    effects: Effects = field(default_factory=Effects)
    # Downscale the input to at most this many pixels before removal (never upscales): the
    # remove.bg API's ``size``; None: the input's own size.
    max_pixels: int | None = None
    queue_wait: float | None = None  # may wait this long for a worker; None: 503 at once
    pixels: int | None = None  # the input's size if known (a stored image's), to cost the job
    timeout: float | None = None  # seconds it may take; None: ALPHACUT_REQUEST_TIMEOUT_SECONDS
    key_id: str | None = None  # the API key asking: the loads of models it chooses count to it
    hints: Hints = field(default_factory=Hints)  # a box and clicks, in the input's pixels
    # A stored cut-out of the same photo (its blob key) that the hints correct: no model pass.
    base_blob_key: str | None = None
    # The request's id (alphacut.logs), so that a fleet's worker logs the job under it.
    request_id: str | None = None


@dataclass(frozen=True)
class InferenceResult:
    outputs: tuple[Encoded, ...]  # in the order the job asked for them
    width: int
    height: int
    model: str
    refine: str
    subject: Box | None = None  # where the subject is in the result (before any background)
    timings: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None  # the cut-out's estimated IoU (alphacut.engine.confidence)


@dataclass(frozen=True)
class FleetState:
    """What a fleet's broker holds now: jobs waiting, worker nodes alive."""

    waiting: int
    workers: int


class InferenceUrlError(AlphacutError):
    """``ALPHACUT_INFERENCE_URL`` names no engine alphacut can use."""


def check_broker_url(url: str) -> None:
    """Refuse a broker URL alphacut does not speak, without repeating it (it may hold a
    password)."""
    if url.split("://", 1)[0].lower() not in ("redis", "rediss"):
        raise InferenceUrlError(
            "ALPHACUT_INFERENCE_URL must be redis://[:password@]host:port/db (rediss:// for TLS)"
        )


class Inference(Protocol):
    def submit(self, job: InferenceJob) -> InferenceResult:
        """Run ``job``; raises the service's errors (``ServiceBusyError`` when the queue is
        full, ``ProcessingTimeoutError`` past the request limit, ``ImageTooLargeError``,
        ``NotFoundError`` for a blob that is gone, decoding errors...)."""

    def busy(self) -> bool:
        """Whether a job submitted now would be refused at once (503)."""

    def start(self) -> None:
        """Begin loading the models the settings name (returns at once)."""

    def readiness(self) -> str:
        """``ok`` once the models named in the settings are loaded, else why not."""

    def runtimes(self) -> dict[str, str]:
        """Each model file loaded where the models run (this process, or a fleet's workers
        as they report it): its runtime, precision, device and execution provider."""

    def installed(self) -> set[str] | None:
        """The catalogue models installed (and verified) where the models run: on a fleet,
        on every live worker (any may take a job); None where that is not known (no worker
        has reported)."""

    def fleet(self) -> FleetState | None:
        """The fleet's queue length and live worker nodes, asked of its broker now (None in
        this process, or when the broker does not answer)."""

    def shutdown(self) -> None: ...
