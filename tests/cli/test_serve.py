"""Running the service for real: worker processes, SIGTERM, SIGKILL and `alphacut doctor`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from alphacut.service.doctor import examine
from alphacut.storage.blobs import LocalBlobStore
from alphacut.storage.database import Database
from servers import free_port

EXE = str(Path(sys.executable).with_name("alphacut"))


@contextmanager
def serving(
    data_dir: Path, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """`alphacut serve` in a subprocess; yields (process, base URL, API key)."""
    port = free_port()
    environment = {**os.environ, "ALPHACUT_DATA_DIR": str(data_dir), **env}
    process = subprocess.Popen(
        [EXE, "serve", "--port", str(port), *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=environment,
        start_new_session=True,  # its own process group: worker processes die with it
    )
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 90
    wanted = 2 if "--workers" in args else 1  # one "startup complete" per worker
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        started = sum("Application startup complete" in s for s in seen)
        if not line or started >= wanted:
            break
    key = re.search(r"(test_[A-Za-z0-9]{40})", "".join(seen))
    assert key, "".join(seen)
    drain = threading.Thread(target=process.stderr.read, daemon=True)  # keep the pipe flowing
    drain.start()
    try:
        yield process, f"http://127.0.0.1:{port}", key.group(1)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers too, if the parent is gone
        process.wait(timeout=30)
        drain.join(timeout=30)
        process.stderr.close()


def upload(base: str, key: str, photo: Path) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/images/upload",
        headers={"x-api-key": key},
        data={"name": "p"},
        files={"image": ("p.jpg", photo.read_bytes())},
        timeout=120,
    )


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if int(parent) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts worker processes through /proc")
def test_workers_are_separate_processes(tmp_path: Path, photo: Path) -> None:
    with serving(tmp_path, "--workers", "2") as (process, base, key):
        workers = children(process.pid)
        assert len(workers) >= 2, workers
        responses = [upload(base, key, photo) for _ in range(4)]
        assert [r.status_code for r in responses] == [201] * 4
        listed = httpx.get(f"{base}/v1/images", headers={"x-api-key": key}).json()["data"]
        assert len(listed) == 4, "all workers share one store"


def test_sigterm_lets_requests_in_flight_finish(tmp_path: Path, photo: Path) -> None:
    with serving(tmp_path) as (process, base, key):
        image = upload(base, key, photo).json()
        result: dict[str, httpx.Response] = {}

        def slow_request() -> None:
            result["response"] = httpx.post(
                f"{base}/v1/images/{image['id']}/remove-background",
                headers={"x-api-key": key},
                json={"model": "precise"},
                timeout=120,
            )

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.8)  # the removal (seconds on the precise model) is now running
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=120)
        assert result["response"].status_code == 201, result["response"].text
        # uvicorn re-raises the signal once shut down, so a clean exit reads as -SIGTERM.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5)
    db = Database(f"sqlite:///{tmp_path / 'alphacut.db'}")
    report = examine(db, LocalBlobStore(tmp_path / "blobs"), repair=False, grace_seconds=0)
    assert report.healthy, report


def test_sigkill_during_writes_then_doctor_repairs(tmp_path: Path, photo: Path) -> None:
    stop = threading.Event()

    def hammer(base: str, key: str) -> None:
        while not stop.is_set():
            try:
                response = upload(base, key, photo)
                if response.status_code == 201:
                    httpx.post(
                        f"{base}/v1/images/{response.json()['id']}/remove-background",
                        headers={"x-api-key": key},
                        json={"model": "fast"},
                        timeout=30,
                    )
            except httpx.HTTPError:
                return

    with serving(tmp_path) as (process, base, key):
        threads = [threading.Thread(target=hammer, args=(base, key)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(4)
        process.send_signal(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    # Simulate the worst a crash can leave as well: a half-written file and an orphan.
    blobs = tmp_path / "blobs" / "images" / "zz"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / ".image_zz.png.deadbeef.part").write_bytes(b"half")
    (blobs / "image_zzorphan000000000000000.png").write_bytes(b"\x89PNG")

    env = {**os.environ, "ALPHACUT_DATA_DIR": str(tmp_path)}
    check = subprocess.run([EXE, "doctor", "--grace", "0"], capture_output=True, text=True, env=env)
    assert check.returncode == 1, check.stderr
    assert "file without a row" in check.stderr and "temp file" in check.stderr
    fix = subprocess.run(
        [EXE, "doctor", "--repair", "--grace", "0"], capture_output=True, text=True, env=env
    )
    assert fix.returncode == 0, fix.stderr
    again = subprocess.run([EXE, "doctor", "--grace", "0"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "consistent" in again.stderr, again.stderr
    db = Database(f"sqlite:///{tmp_path / 'alphacut.db'}")
    store = LocalBlobStore(tmp_path / "blobs")
    rows = db.blob_keys("image") | db.blob_keys("result")
    files = set(store.stored_keys())
    assert rows == files, "every row has its file and every file its row"
    assert rows, "work that finished before the kill is kept"
    assert not list((tmp_path / "blobs").rglob("*.part"))


def test_doctor_reports_and_removes_rows_whose_file_vanished(tmp_path: Path, photo: Path) -> None:
    with serving(tmp_path) as (process, base, key):
        image = upload(base, key, photo).json()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    next((tmp_path / "blobs").rglob(f"{image['id']}.*")).unlink()
    db = Database(f"sqlite:///{tmp_path / 'alphacut.db'}")
    store = LocalBlobStore(tmp_path / "blobs")
    report = examine(db, store, repair=False, grace_seconds=0)
    assert report.rows_without_file == [f"image {image['id']}"]
    examine(db, store, repair=True, grace_seconds=0)
    assert db.blob_keys("image") == set()
    assert examine(db, store, repair=False, grace_seconds=0).healthy


def test_young_orphans_are_left_alone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.migrate()
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("images/ab/image_abyoung00000000000000000.png", b"x")
    report = examine(db, store, repair=True, grace_seconds=600)
    assert report.recent_files_skipped == 1 and report.healthy
    assert list(store.stored_keys()) == ["images/ab/image_abyoung00000000000000000.png"]
