"""`alphacut serve --workers 2` with metrics on: every process records into one directory
(prometheus-client's multiprocess mode), whichever process answers a scrape adds them up,
and the directory is ours: cleared of our stale files at start, a temporary one removed
at the end."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alphacut.config import Settings
from cli.test_serve import children, serving

ENV = {"ALPHACUT_METRICS": "loopback", "ALPHACUT_LOAD_MODELS": "[]"}


def healthz_count(base: str) -> float:
    response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if (
                sample.name == "alphacut_http_requests_total"
                and sample.labels.get("route") == "/healthz"
            ):
                return sample.value
    return 0.0


def capacity(base: str, queue: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "alphacut_queue_capacity" and sample.labels["queue"] == queue:
                return sample.value
    raise AssertionError(f"no capacity for {queue}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds worker processes through /proc")
def test_every_worker_process_is_counted_in_every_scrape(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir(mode=0o700)
    (shared / "counter_1.db").write_bytes(b"stale, from an earlier run: not a metrics file")
    (shared / "notes.txt").write_text("not ours: stays")
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with serving(tmp_path / "data", "--workers", "2", **env) as (process, base, _key):
        assert len(children(process.pid)) >= 2
        for _ in range(20):  # a new connection each: the workers take them in turn
            assert httpx.get(f"{base}/healthz").status_code == 200
        counts = {healthz_count(base) for _ in range(6)}
        assert counts == {20.0}, counts
        pids = {
            int(match.group(1))
            for entry in shared.iterdir()
            if (match := re.fullmatch(r"gauge_livesum_(\d+)\.db", entry.name))
        }
        assert len(pids) >= 2, sorted(entry.name for entry in shared.iterdir())
        # Live gauges are summed over the processes: two workers, twice one's queue.
        one = Settings(load_models=[])
        assert capacity(base, "inference") == 2 * (one.inference_slots + one.inference_queue)
    assert (shared / "notes.txt").read_text() == "not ours: stays"
    assert not (shared / "counter_1.db").exists()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds worker processes through /proc")
def test_a_temporary_directory_goes_with_the_server(tmp_path: Path) -> None:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        pytest.skip("this environment names its own directory")
    with serving(tmp_path / "data", "--workers", "2", **ENV) as (process, base, _key):
        worker = children(process.pid)[0]
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        given = [item for item in environ if item.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
        assert given, "the workers were not told where to record"
        directory = Path(given[0].split(b"=", 1)[1].decode())
        assert directory.is_dir() and oct(directory.stat().st_mode & 0o777) == "0o700"
        assert healthz_count(base) >= 0
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not directory.exists()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds worker processes through /proc")
def test_metrics_off_needs_no_directory(tmp_path: Path) -> None:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        pytest.skip("this environment names its own directory")
    data = tmp_path / "data"
    with serving(data, "--workers", "2", ALPHACUT_LOAD_MODELS="[]") as (process, base, _key):
        assert httpx.get(f"{base}/metrics").status_code == 404
        for worker in children(process.pid):
            environ = Path(f"/proc/{worker}/environ").read_bytes()
            assert b"PROMETHEUS_MULTIPROC_DIR=" not in environ
