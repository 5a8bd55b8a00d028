"""Prometheus metrics: what the service and its workers measure, and who may read them.

The numbers are recorded where they are produced (the bounded queues, the memory budget,
the model sessions, the inference port, billing, the HTTP middleware of ``api/metrics.py``)
through the small functions below, and read by Prometheus from ``/metrics`` on each API
process and from a port of each ``alphacut worker`` node (:func:`serve_worker_metrics`).

Several processes: ``alphacut serve --workers N`` and a worker node's pool each record
into files of one directory (prometheus-client's multiprocess mode, :func:`multiprocess_dir`),
and whichever process answers a scrape adds them up. The metric objects are therefore made
on first use, never at import, so that a process that switches to multiprocess mode before
it forks has made none yet.

Labels are bounded by code, never by a request: a route is its template (``/v1/images/
{image_id}``), a queue, stage, reason or outcome one of a fixed set, a model a file of the
model store; no key, id, path, address or message is ever a label.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from socketserver import BaseServer
from typing import TYPE_CHECKING, Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from alphacut.errors import AlphacutError

if TYPE_CHECKING:
    from alphacut.config import Settings
    from alphacut.engine.sessions import SessionEvent
    from alphacut.service.inference.port import FleetState

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
Mode = Literal["off", "loopback", "token"]

# Seconds: a request or a stage takes from a millisecond (a small PNG's encode) to the
# request limit (120 s by default); a model load from a fraction of a second to a minute.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_LOAD_SECONDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    request_seconds: Histogram
    stage_seconds: Histogram
    queue_wait_seconds: Histogram
    queue_jobs: Gauge
    queue_capacity: Gauge
    refusals: Counter
    memory_held: Gauge
    memory_total: Gauge
    model_loads: Counter
    model_unloads: Counter
    model_load_seconds: Histogram
    models_loaded: Gauge
    billed_images: Counter
    worker_jobs: Counter
    worker_processes: Gauge


@cache
def _metrics() -> _Metrics:
    """The metric objects, made once per process on first use (see the module docstring)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series
    return _Metrics(
        requests=Counter(
            "alphacut_http_requests",
            "HTTP requests answered, by API dialect, route template, method and status.",
            ["dialect", "route", "method", "status"],
        ),
        request_seconds=Histogram(
            "alphacut_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer.",
            ["dialect", "route"],
            buckets=_SECONDS,
        ),
        stage_seconds=Histogram(
            "alphacut_stage_duration_seconds",
            "Time of one stage of a cut-out where it runs (decode, preprocess, inference "
            "(the model pass, with its wait for a model slot), postprocess, refine, effects, "
            "encode, storage...).",
            ["stage"],
            buckets=_SECONDS,
        ),
        queue_wait_seconds=Histogram(
            "alphacut_queue_wait_seconds",
            "Time a job waited in a bounded queue for a worker thread.",
            ["queue"],
            buckets=_SECONDS,
        ),
        queue_jobs=Gauge(
            "alphacut_queue_jobs",
            "Jobs running or waiting in a bounded queue.",
            ["queue"],
            multiprocess_mode="livesum",
        ),
        queue_capacity=Gauge(
            "alphacut_queue_capacity",
            "Jobs a bounded queue holds (workers + waiting) before it refuses (503).",
            ["queue"],
            multiprocess_mode="livesum",
        ),
        refusals=Counter(
            "alphacut_refusals",
            "Work refused for want of capacity (503) or past a limit (429), by reason.",
            ["reason"],
        ),
        memory_held=Gauge(
            "alphacut_memory_budget_held_bytes",
            "Bytes of the memory budget that running jobs hold.",
            multiprocess_mode="livesum",
        ),
        memory_total=Gauge(
            "alphacut_memory_budget_bytes",
            "The memory budget of image work (ALPHACUT_MEMORY_BUDGET_BYTES or measured).",
            multiprocess_mode="livesum",
        ),
        model_loads=Counter(
            "alphacut_model_loads", "Model sessions loaded, by model file.", ["model"]
        ),
        model_unloads=Counter(
            "alphacut_model_evictions",
            "Model sessions unloaded to make room for another (least recently used).",
            ["model"],
        ),
        model_load_seconds=Histogram(
            "alphacut_model_load_duration_seconds",
            "Time to load (and compile) a model session.",
            ["model"],
            buckets=_LOAD_SECONDS,
        ),
        models_loaded=Gauge(
            "alphacut_models_loaded",
            "Model sessions loaded now, by model file (summed over processes).",
            ["model"],
            multiprocess_mode="livesum",
        ),
        billed_images=Counter("alphacut_billed_images", "Images billed to API keys (usage units)."),
        worker_jobs=Counter(
            "alphacut_worker_jobs",
            "Jobs an `alphacut worker` process ran, by outcome (ok, or the error's code).",
            ["outcome"],
        ),
        worker_processes=Gauge(
            "alphacut_worker_processes",
            "Pool processes of this worker node that have loaded their models.",
            multiprocess_mode="livesum",
        ),
    )


# Recording -------------------------------------------------------------------------------


def request_done(dialect: str, route: str, method: str, status: int, seconds: float) -> None:
    m = _metrics()
    m.requests.labels(dialect, route, method, str(status)).inc()
    m.request_seconds.labels(dialect, route).observe(seconds)


def stage(name: str, seconds: float) -> None:
    _metrics().stage_seconds.labels(name).observe(seconds)


def stages(timings: Mapping[str, float]) -> None:
    """Each stage of a cut-out's ``timings`` (the engine's names: a fixed set)."""
    histogram = _metrics().stage_seconds
    for name, seconds in timings.items():
        histogram.labels(name).observe(seconds)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Observe the ``with`` block's time as stage ``name``, whether or not it raised."""
    started = time.perf_counter()
    try:
        yield
    finally:
        stage(name, time.perf_counter() - started)


def queue_size(queue: str, pending: int, capacity: int) -> None:
    m = _metrics()
    m.queue_jobs.labels(queue).set(pending)
    m.queue_capacity.labels(queue).set(capacity)


def queue_waited(queue: str, seconds: float) -> None:
    _metrics().queue_wait_seconds.labels(queue).observe(seconds)


def refused(reason: str) -> None:
    """A refusal for capacity or a limit: ``<queue>_queue``, ``memory``, ``out_of_memory``,
    ``inference_busy``, ``fleet``, ``model_loads``, ``rate_limit``."""
    _metrics().refusals.labels(reason).inc()


def memory(held: int, total: int) -> None:
    m = _metrics()
    m.memory_held.set(held)
    m.memory_total.set(total)


def session_event(event: SessionEvent) -> None:
    """A model session loaded or unloaded (``SESSIONS.watch(session_event)``)."""
    m = _metrics()
    if event.kind == "load":
        m.model_loads.labels(event.model).inc()
        m.model_load_seconds.labels(event.model).observe(event.seconds)
        m.models_loaded.labels(event.model).inc()
    else:
        m.model_unloads.labels(event.model).inc()
        m.models_loaded.labels(event.model).dec()


def billed(images: int) -> None:
    _metrics().billed_images.inc(images)


def worker_job(outcome: str) -> None:
    _metrics().worker_jobs.labels(outcome).inc()


def worker_process_ready() -> None:
    _metrics().worker_processes.inc()


# Several processes -----------------------------------------------------------------------

# The files prometheus-client writes in a multiprocess directory: its own, by their names.
_OURS = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")
_LIVE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


@contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """Multiprocess mode for this process and the ones it starts from now on (they inherit
    ``PROMETHEUS_MULTIPROC_DIR``). The operator's ``PROMETHEUS_MULTIPROC_DIR`` when set
    (created private if missing; refused if others may write to it), cleared at start of the
    files prometheus-client wrote there in an earlier run, and nothing else; else a private
    temporary directory, removed at the end. Call it before this process records anything
    and before it forks or spawns the processes that do."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(path)
        _clear(path)
    else:
        path = Path(tempfile.mkdtemp(prefix="alphacut-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
    if _metrics.cache_info().currsize:
        raise RuntimeError("metrics were recorded before multiprocess mode was set up")
    # prometheus-client picks its value class when it is imported, which here may have been
    # before the variable was set (a worker node imports it, then forks its pool).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        yield path
    finally:
        if not given:
            _clear(path)
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def processes(settings: Settings, *, several: bool) -> AbstractContextManager[object]:
    """:func:`multiprocess_dir` where metrics are on and ``several`` processes serve them
    (or the operator named the directory), else nothing to set up."""
    if settings.metrics != "off" and (several or os.environ.get(MULTIPROC_ENV)):
        return multiprocess_dir()
    return nullcontext()


def _check_private(path: Path) -> None:
    """Files anyone else could write there would be read as our metrics."""
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AlphacutError(
            f"{MULTIPROC_ENV} must be a directory of this user's that no one else may write "
            "to (chmod 700)"
        )


def _clear(path: Path) -> None:
    for entry in path.iterdir():
        if _OURS.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)


def process_exit() -> None:
    """This process stops serving: its live gauges (queue depths, memory) leave the sums."""
    if multiprocess():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _prune_dead(path: Path) -> None:
    """The live gauges of processes that died without :func:`process_exit` (killed): their
    queue depths and memory would be counted for ever."""
    for entry in path.iterdir():
        match = _LIVE.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's
            continue


# Exposition ------------------------------------------------------------------------------


class FleetCollector(Collector):
    """The fleet's queue length and live workers, asked of the broker at each scrape (one
    value for the whole fleet: every replica reports the same, so take ``max``)."""

    def __init__(self, state: Callable[[], FleetState | None]) -> None:
        self._state = state

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        state = self._state()
        if state is None:
            return []
        return [
            GaugeMetricFamily(
                "alphacut_fleet_queue_jobs",
                "Jobs waiting in the fleet's queue (the broker's list).",
                value=state.waiting,
            ),
            GaugeMetricFamily(
                "alphacut_fleet_workers_alive",
                "Worker nodes whose liveness key is current in the broker.",
                value=state.workers,
            ),
        ]


class _ThisProcess(Collector):
    """The process-wide registry (this process's metrics, and its process_* and python_*
    collectors), for a single-process exposition."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def exposition(accept: str = "", extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The metrics text (format chosen from the ``Accept`` header, as prometheus-client
    chooses it) and its content type: every process's metrics in multiprocess mode, else
    this process's; then ``extra`` collectors (asked now, in this process)."""
    registry = CollectorRegistry()
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        _prune_dead(Path(path))
        MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    else:
        _metrics()  # the families exist (at zero) before anything is recorded
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


# Who may read them -----------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    headers: Mapping[str, str]


_PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


def refusal(
    mode: Mode,
    token: str | None,
    peer: str | None,
    headers: Mapping[str, str],
) -> Refusal | None:
    """Why a scrape from ``peer`` (the TCP peer's address) with ``headers`` (lower-case
    names) is refused, or None when it may read the metrics.

    ``off``: 404. ``loopback``: only from this machine, and not through a proxy on it (a
    request carrying X-Forwarded-For, X-Real-IP or Forwarded came through one, from
    anywhere). ``token``: ``Authorization: Bearer <ALPHACUT_METRICS_TOKEN>`` from anywhere;
    none sent 401, another 403; compared in constant time."""
    if mode == "off":
        return Refusal(404, "metrics are off (ALPHACUT_METRICS)", {})
    if mode == "loopback":
        if not _is_loopback(peer):
            return Refusal(403, "metrics are served to this machine only", {})
        if any(name in headers for name in _PROXY_HEADERS):
            return Refusal(403, "metrics are not served through a proxy in loopback mode", {})
        return None
    scheme, _, sent = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return Refusal(401, "send the metrics token as Authorization: Bearer <token>", _CHALLENGE)
    expected = (token or "").encode()
    if not expected or not hmac.compare_digest(sent.strip().encode(), expected):
        return Refusal(403, "the metrics token is not valid", {})
    return None


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def _is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# A worker node's port --------------------------------------------------------------------

_MAX_SCRAPES = 4  # connections served at once; more are closed at once
_SCRAPE_TIMEOUT_S = 10.0  # for a client to send its request


class _Handler(WSGIRequestHandler):
    timeout = _SCRAPE_TIMEOUT_S  # a client that sends nothing cannot hold a thread

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: Prometheus scrapes every few seconds."""


class _BoundedServer(ThreadingWSGIServer):
    """prometheus-client's threaded WSGI server, with a bound on threads at once."""

    address_family = socket.AF_INET

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(_MAX_SCRAPES)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def metrics_app(settings: Settings) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving ``/metrics`` under the settings' access rule."""
    mode: Mode = settings.metrics
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        refused = refusal(mode, token, environ.get("REMOTE_ADDR"), headers)
        if refused is not None:
            reason = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}[refused.status]
            start_response(
                f"{refused.status} {reason}",
                [("Content-Type", "text/plain; charset=utf-8"), *refused.headers.items()],
            )
            return [refused.message.encode() + b"\n"]
        body, content_type = exposition(headers.get("accept", ""))
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    return app


@dataclass
class MetricsServer:
    """A worker node's metrics port, served from a thread until :meth:`close`."""

    server: BaseServer
    port: int

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_worker_metrics(settings: Settings) -> MetricsServer | None:
    """Serve a worker node's metrics (all its pool processes') on
    ``ALPHACUT_WORKER_METRICS_HOST:PORT`` from a thread of the node's main process; None
    when metrics are off. Raises :class:`AlphacutError` when the port cannot be bound, so
    that a node asked to export metrics does not run blind."""
    if settings.metrics == "off":
        return None
    host, port = settings.worker_metrics_host, settings.worker_metrics_port

    class Server(_BoundedServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = make_server(host, port, metrics_app(settings), Server, handler_class=_Handler)
    except OSError as exc:
        raise AlphacutError(
            f"worker metrics cannot listen on {host}:{port} (ALPHACUT_WORKER_METRICS_HOST/"
            f"_PORT): {exc.strerror or exc}"
        ) from None
    thread = threading.Thread(target=server.serve_forever, name="alphacut-metrics", daemon=True)
    thread.start()
    bound = int(server.socket.getsockname()[1])
    log.info("worker metrics on http://%s:%d/metrics (%s)", host, bound, settings.metrics)
    return MetricsServer(server, bound)
