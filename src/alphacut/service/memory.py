"""How much memory image work may take, and what each job is expected to need.

Every job is costed before it runs, from pixel counts that are known before anything is
decoded (the stored image's size, or the header of an upload): its peak memory (bytes) and
its time. A job whose peak alone exceeds the process's budget is refused at once (413: it
could never run); one that does not fit beside the jobs running now waits a little for them,
then is refused with 503 + Retry-After. A job whose time estimate exceeds the request time
limit is refused before it starts (413), because a thread cannot be interrupted and would
keep working after its client has gone.

The coefficients are measured peaks per pixel (address space, which is what RLIMIT_AS
counts, and at least the resident size), with a margin, on a 2-core x86_64 VM:
``bench/memory.py`` prints them. Times are that machine's; faster machines only make the
time check more conservative.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alphacut.errors import ImageTooLargeError, ServiceBusyError
from alphacut.service import metrics

if TYPE_CHECKING:
    from alphacut.models.registry import ModelSpec

log = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass(frozen=True)
class Cost:
    """Expected peak memory and time of one job."""

    bytes: int
    seconds: float

    def __add__(self, other: Cost) -> Cost:
        return Cost(max(self.bytes, other.bytes), self.seconds + other.seconds)


# Per input pixel (decoding, the source kept for the operation) and per output pixel (the
# operation's own buffers and the encoder's), bytes and nanoseconds. Measured peaks at 50 MP
# (bench/memory.py) were at most 8 B/px to decode, 10-14 to encode, 15-28 for the operations
# with their output; these round them up.
DECODE_BYTES_PER_PX = 12
OUTPUT_BYTES_PER_PX = 18
DECODE_NS_PER_PX = 40
OUTPUT_NS_PER_PX = 120
# Operations whose own work dominates (ns per output pixel on top of the above).
# background: measured at 12 MP, 44 ns/px for a shadow and 107 for a photo blurred (any radius).
OPERATION_NS_PER_PX = {
    "rotate": 250, "blur": 80, "watermark": 60, "modulate": 60, "resize": 80, "background": 110,
}  # fmt: skip
# Background removal, per input pixel, by (model, refinement): measured peaks at 50 MP were
# 50 (u2netp, edges) and 82 (isnet-general-use, consensus) bytes per pixel including the
# model's session. Other models use the figures of the packaged model of their input size.
REMOVAL_BYTES_PER_PX = {
    ("u2netp", "none"): 32,
    ("u2netp", "edges"): 56,
    ("u2netp", "zoom"): 60,
    ("isnet-general-use", "none"): 64,
    ("isnet-general-use", "edges"): 72,
    ("isnet-general-use", "zoom"): 76,
    ("isnet-general-use", "consensus"): 90,
}
REMOVAL_NS_PER_PX = {"u2netp": 250, "isnet-general-use": 500}


def operation_cost(operation: str, in_pixels: int, out_pixels: int, extra_bytes: int = 0) -> Cost:
    """A decode -> operation -> encode job on a source of ``in_pixels`` making ``out_pixels``;
    ``extra_bytes``: buffers of the operation beyond its output (watermark overlays...)."""
    ns = (
        DECODE_NS_PER_PX * in_pixels
        + (OUTPUT_NS_PER_PX + OPERATION_NS_PER_PX.get(operation, 0)) * out_pixels
    )
    peak = DECODE_BYTES_PER_PX * in_pixels + OUTPUT_BYTES_PER_PX * out_pixels + extra_bytes
    return Cost(peak, ns / 1e9)


def session_bytes(spec: ModelSpec) -> int:
    """What a loaded session of ``spec`` takes with its buffers for one call (the registry's
    figure: measured for the packaged models, estimated for the others)."""
    return spec.memory_mb * MB


def removal_cost(spec: ModelSpec, refine: str, pixels: int, checker: ModelSpec | None) -> Cost:
    """One background removal with ``spec`` and ``refine`` on ``pixels`` (``checker``: the
    second model that ``consensus`` runs)."""
    like = (
        spec.name
        if spec.name in REMOVAL_NS_PER_PX
        else ("u2netp" if spec.recipe.size <= 512 else "isnet-general-use")
    )
    per_px = REMOVAL_BYTES_PER_PX.get((like, refine), max(REMOVAL_BYTES_PER_PX.values()))
    fixed = session_bytes(spec) + (session_bytes(checker) if checker is not None else 0)
    seconds = spec.seconds + (checker.seconds if checker is not None else 0.0)
    ns = REMOVAL_NS_PER_PX[like] * pixels
    return Cost(per_px * pixels + fixed, seconds + ns / 1e9)


class MemoryBudget:
    """Bytes that running jobs may hold at once. :meth:`reserve` before a job runs,
    :meth:`release` after it, whatever happened."""

    def __init__(self, total: int, wait_seconds: float, retry_after: int) -> None:
        self.total = total
        self.wait_seconds = wait_seconds
        self.retry_after = retry_after
        self._held = 0
        self._freed = threading.Condition()
        metrics.memory(0, total)

    @property
    def held(self) -> int:
        return self._held

    def check(self, nbytes: int) -> None:
        """413 at once for a job that could never fit."""
        if nbytes > self.total:
            raise ImageTooLargeError(
                f"this image needs about {nbytes / MB:,.0f} MB to process and this server "
                f"allows {self.total / MB:,.0f} MB per job: send a smaller image"
            )

    def reserve(self, nbytes: int) -> None:
        self.check(nbytes)
        with self._freed:
            if not self._freed.wait_for(
                lambda: self._held + nbytes <= self.total, timeout=self.wait_seconds
            ):
                metrics.refused("memory")
                raise ServiceBusyError(
                    "the server's memory is taken by other images now; "
                    f"retry in {self.retry_after} s",
                    self.retry_after,
                )
            self._held += nbytes
            metrics.memory(self._held, self.total)

    def release(self, nbytes: int) -> None:
        with self._freed:
            self._held -= nbytes
            metrics.memory(self._held, self.total)
            self._freed.notify_all()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """:meth:`reserve` for the duration of a ``with`` block."""
        self.reserve(nbytes)
        try:
            yield
        finally:
            self.release(nbytes)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:
            return int(value)
    return None


def held(budget: MemoryBudget | None, nbytes: int) -> AbstractContextManager[None]:
    """``budget.hold(nbytes)``, or nothing to hold when there is no budget."""
    return budget.hold(nbytes) if budget is not None else nullcontext()


def default_budget_bytes(share: float = 0.7, reserved: int = 0) -> int:
    """``share`` of what this process may still take, less ``reserved`` bytes it will take
    anyway (models it loads at start-up): the smallest of the room left under RLIMIT_AS
    (measured against the address space in use), under a cgroup memory limit and in
    physical memory (both measured against the resident size)."""
    room: list[int] = []
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    vm_size = _status_kib("VmSize") or 0
    rss = _status_kib("VmRSS") or 0
    if soft != resource.RLIM_INFINITY:
        room.append(soft - vm_size)
    cgroup = _cgroup_limit()
    if cgroup is not None:
        room.append(cgroup - rss)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        room.append(physical - rss)
    except (ValueError, OSError):
        pass
    return max(64 * MB, int(share * (min(room) - reserved))) if room else 8 * 1024 * MB


_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc() -> None:
    """glibc only: large buffers always come from mmap and go back to the system when freed
    (a fixed threshold; by default it grows after each large free, so a 200 MB image buffer
    stays in the heap for good), and at most two arenas (each reserves 64 MB of address
    space per thread otherwise). Both matter to a service whose requests allocate and free
    images of hundreds of MB, and under an address-space limit."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 * MB)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc
        log.debug("mallopt is not available")
