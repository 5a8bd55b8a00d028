"""A database or a file store that stops answering (SIGSTOP: the process is frozen, its
kernel still takes connections and ACKs every packet, as with a frozen VM or a stuck disk)
costs a request a 503 + Retry-After within the configured waits, never a hang: /healthz
answers at once under load, /readyz says not ready within its own bound, and everything
works again once the server resumes.

The timeouts here are small (a second or two) so that each test takes seconds; the bounds
asserted are generous (three times the configured worst case), not measurements.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from alphacut.config import Settings
from alphacut.errors import BackendUnavailableError
from alphacut.storage.database import Database
from alphacut.storage.factory import open_database
from fleetservers import S3, Postgres
from servers import Server, start_server

# Every wait for a backend, small: one database call gives up within pool + connect + read
# (5 s), one S3 call within attempts x (connect + read) (4 s), plus botocore's backoff.
WAITS: dict[str, Any] = {
    "database_connect_timeout_seconds": 2,
    "database_statement_timeout_seconds": 1.0,
    "database_read_timeout_seconds": 2.0,
    "database_pool_timeout_seconds": 1.0,
    "blob_connect_timeout_seconds": 1.0,
    "blob_read_timeout_seconds": 1.0,
    "blob_max_attempts": 2,
    "readiness_timeout_seconds": 1.0,
    "retry_after_seconds": 3,
}
DATABASE_BOUND = 3 * (1.0 + 2 + 2.0)
STORE_BOUND = 3 * (2 * (1.0 + 1.0) + 2)
NOT_ANSWERING = "error: "  # a timeout, or the check's own error: either way, not ready
CONCURRENT = 45  # more than Starlette's 40 worker threads: the review's load


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent pid..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parent(pid: int) -> int:
    return int(_stat(pid)[1])


def _processes() -> Iterator[tuple[int, int, list[bytes]]]:
    """(pid, parent pid, command line) of every process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):  # gone meanwhile
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                yield int(entry.name), _parent(int(entry.name)), argv


@contextmanager
def stopped(main: int) -> Iterator[None]:
    """``main`` and its children frozen (SIGSTOP) until the block ends (SIGCONT)."""
    os.kill(main, signal.SIGSTOP)  # first, so that it forks no child while we look
    frozen = [main] + [pid for pid, parent, _ in _processes() if parent == main]
    for pid in frozen[1:]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in frozen:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        # runuser (PostgreSQL's parent when the tests run as root) stops itself when its
        # child stops, as su does for a shell's job control: wake it too.
        with suppress(OSError):
            if _stat(_parent(main))[0] == "T":
                os.kill(_parent(main), signal.SIGCONT)


def _postmaster(database_url: str) -> int:
    """The PostgreSQL server's main process: the parent of a session's backend."""
    db = Database(database_url)
    try:
        with db.session() as session:
            backend = int(session.scalar(text("select pg_backend_pid()")) or 0)
    finally:
        db.close()
    return _parent(backend)


def _moto(s3: S3) -> int:
    port = s3.endpoint.rsplit(":", 1)[1].encode()
    for pid, _, argv in _processes():
        if any(arg.endswith(b"moto_server") for arg in argv) and port in argv:
            return pid
    raise AssertionError(f"no moto_server process on port {port!r}")


@pytest.fixture
def replica(postgres: Postgres, s3: S3, tmp_path: Path) -> Iterator[Server]:
    """A server on PostgreSQL + S3 with small waits for both."""
    url = postgres.new_database()
    db = Database(url)
    db.migrate()
    db.close()
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        blob_url=f"s3://{s3.new_bucket()}/stalls",
        load_models=[],
        **WAITS,
    )
    server = start_server(settings)
    yield server
    server.stop()


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def _while_stalled(
    requests: list[Callable[[], httpx.Response]], url: str
) -> tuple[list[tuple[httpx.Response, float]], list[float], tuple[httpx.Response, float]]:
    """Send ``requests`` at once; meanwhile time /healthz (every 0.2 s while they run) and
    one /readyz. Their answers with times, the /healthz times, /readyz's answer and time."""
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.wait(0.2):
            try:
                answer, seconds = _timed(lambda: httpx.get(f"{url}/healthz", timeout=30))
            except httpx.TimeoutException:
                seconds = math.inf
            else:
                assert answer.status_code == 200
            health.append(seconds)

    prober = threading.Thread(target=probe)
    with ThreadPoolExecutor(len(requests)) as pool:
        running = [pool.submit(_timed, request) for request in requests]
        prober.start()
        time.sleep(0.5)  # the requests have taken every thread and connection by now
        ready = _timed(lambda: httpx.get(f"{url}/readyz", timeout=30))
        answers = [future.result() for future in running]
    done.set()
    prober.join()
    return answers, health, ready


def _assert_unavailable(answer: httpx.Response, seconds: float, bound: float) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "3"
    assert seconds < bound, f"answered after {seconds:.1f} s"


def test_a_stopped_postgres_answers_503_within_the_bound(replica: Server, photo: Path) -> None:
    secret = replica.new_key()
    with replica.client(secret) as api:
        image = api.post(
            "/v1/images/upload", data={"name": "car"}, files={"image": ("x", photo.read_bytes())}
        ).json()
    headers = {"x-api-key": secret}
    # Each request's own time limit is the test's bound: a hang fails it, never blocks it.
    client = httpx.Client(base_url=replica.url, timeout=DATABASE_BOUND)
    requests: list[Callable[[], httpx.Response]] = [
        lambda: client.get(f"/v1/images/{image['id']}", headers=headers)
    ] * (CONCURRENT - 2)
    requests.append(lambda: client.get("/v1.0/account", headers={"X-Api-Key": secret}))
    requests.append(
        lambda: client.post(
            "/removebg/fast/removebg",
            json={"records": [{"_url": "http://127.0.0.1:9/x.jpg"}]},
            headers={"Authorization": f"Token {secret}"},
        )
    )
    try:
        with stopped(_postmaster(replica.settings.resolved_database_url)):
            answers, health, (ready, ready_seconds) = _while_stalled(requests, replica.url)
    finally:
        client.close()
    for answer, seconds in answers:
        _assert_unavailable(answer, seconds, DATABASE_BOUND)
    images, removebg, ximilar = answers[0][0], answers[-2][0], answers[-1][0]
    assert images.json()["code"] == "backend_unavailable"
    assert removebg.json()["errors"][0]["code"] == "backend_unavailable"
    assert ximilar.json()["status"]["code"] == 503
    assert health and max(health) < 2, f"/healthz took up to {max(health):.1f} s"
    # Not ready within its bound: its check timed out, or found the pool taken past its wait.
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["database"].startswith(NOT_ANSWERING)
    assert ready_seconds < 3 * 1.0
    # Resumed: everything works again (the dropped connections are replaced).
    with replica.client(secret) as api:
        assert api.get(f"/v1/images/{image['id']}").status_code == 200
    assert httpx.get(f"{replica.url}/readyz").json()["checks"]["database"] == "ok"


def test_a_stopped_s3_store_answers_503_within_the_bound(
    replica: Server, s3: S3, photo: Path
) -> None:
    secret = replica.new_key()
    with replica.client(secret) as api:
        image = api.post(
            "/v1/images/upload", data={"name": "car"}, files={"image": ("x", photo.read_bytes())}
        ).json()
        stored = api.get(f"/v1/images/{image['id']}/download").content
    client = httpx.Client(base_url=replica.url, timeout=STORE_BOUND)
    download: Callable[[], httpx.Response] = lambda: client.get(  # noqa: E731
        f"/v1/images/{image['id']}/download", headers={"x-api-key": secret}
    )
    try:
        with stopped(_moto(s3)):
            answers, health, (ready, ready_seconds) = _while_stalled(
                [download] * CONCURRENT, replica.url
            )
    finally:
        client.close()
    for answer, seconds in answers:
        _assert_unavailable(answer, seconds, STORE_BOUND)
    assert answers[0][0].json()["code"] == "backend_unavailable"
    assert health and max(health) < 2, f"/healthz took up to {max(health):.1f} s"
    assert ready.status_code == 503 and ready.json()["checks"]["storage"].startswith(NOT_ANSWERING)
    assert ready_seconds < 3 * 1.0
    with replica.client(secret) as api:
        assert api.get(f"/v1/images/{image['id']}/download").content == stored
    assert httpx.get(f"{replica.url}/readyz").json()["checks"]["storage"] == "ok"


def test_the_server_cancels_a_slow_statement_and_the_connection_lives_on(
    postgres: Postgres, tmp_path: Path
) -> None:
    """A live server enforces statement_timeout itself: 503, and the pool stays usable."""
    settings = Settings(data_dir=tmp_path, database_url=postgres.new_database(), **WAITS)
    db = open_database(settings)
    try:
        with db.session() as session:
            assert session.scalar(text("show statement_timeout")) == "1s"
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as raised, db.session() as session:
            session.execute(text("select pg_sleep(30)"))
        assert time.monotonic() - started < 3 * 1.0
        assert raised.value.retry_after == 3
        db.ping()
    finally:
        db.close()
