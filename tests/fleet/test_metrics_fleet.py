"""A fleet's metrics: a worker node serves its pool's on its own port (token mode here),
the API replica reports the fleet's queue and live workers; both scraped over HTTP and
parsed with prometheus-client's parser, around a real cut-out that ran on the worker."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferencefleet import Fleet, inference_fleet
from servers import Server, free_port, start_server

TOKEN = secrets.token_urlsafe(24)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, str]]:
    """One worker node exporting its metrics on a port of its own (token mode), with the
    fast model only; yields the fleet and the node's metrics URL."""
    port = free_port()
    env = {
        "ALPHACUT_METRICS": "token",
        "ALPHACUT_METRICS_TOKEN": TOKEN,
        "ALPHACUT_WORKER_METRICS_PORT": str(port),
        "ALPHACUT_LOAD_MODELS": '["fast"]',
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, setting in env.items():
            patch.setenv(name, setting)
        data_dir = tmp_path_factory.mktemp("metrics-fleet-data")
        logs = tmp_path_factory.mktemp("metrics-fleet-logs")
        with inference_fleet(data_dir, logs, workers=1) as fleet:
            patch.delenv("ALPHACUT_METRICS_TOKEN")  # the replica's own settings: loopback
            patch.setenv("ALPHACUT_METRICS", "loopback")
            yield fleet, f"http://127.0.0.1:{port}/metrics"


@pytest.fixture(scope="module")
def replica(metered: tuple[Fleet, str]) -> Iterator[Server]:
    fleet, _url = metered
    server = start_server(
        fleet.settings(
            metrics="loopback", default_model="fast", load_models=["fast"], refine="none"
        )
    )
    yield server
    server.stop()


def worker_samples(url: str) -> Samples:
    response = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def test_the_worker_port_asks_for_the_token(metered: tuple[Fleet, str]) -> None:
    _fleet, url = metered
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert httpx.get(url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert httpx.get(url.removesuffix("/metrics") + "/other").status_code == 404
    for response in (missing,):
        assert "alphacut_" not in response.text


def test_a_cut_out_on_the_fleet_shows_on_both_sides(
    metered: tuple[Fleet, str], replica: Server, photo: Path
) -> None:
    _fleet, url = metered
    deadline = time.monotonic() + 120
    while value(worker_samples(url), "alphacut_worker_processes") < 1:  # models loaded
        assert time.monotonic() < deadline, "the worker's pool process never became ready"
        time.sleep(0.2)
    before = worker_samples(url)
    # The replica runs in this test process, whose metrics other tests' servers share.
    replica_before = parse(httpx.get(f"{replica.url}/metrics").text)
    key = replica.new_key()
    with replica.client(key) as client:
        cut = client.post(
            "/v1.0/removebg",
            headers={"X-Api-Key": key},
            files={"image_file": ("car.jpg", photo.read_bytes())},
        )
    assert cut.status_code == 200, cut.text
    after = worker_samples(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # On the worker, where the job ran: its outcome, its stages, its storage writes.
    assert moved("alphacut_worker_jobs_total", outcome="ok") == 1
    for stage in ("decode", "inference", "encode", "storage"):
        assert moved("alphacut_stage_duration_seconds_count", stage=stage) >= 1, stage
    assert value(after, "alphacut_model_loads_total", model="u2netp.onnx") >= 1
    assert value(after, "alphacut_models_loaded", model="u2netp.onnx") == 1
    assert value(after, "alphacut_worker_processes") == 1
    assert value(after, "alphacut_queue_capacity", queue="inference") > 0
    assert value(after, "alphacut_memory_budget_bytes") > 0
    # On the replica: the request, and the fleet as its broker sees it.
    replica_side = parse(httpx.get(f"{replica.url}/metrics").text)
    labels: dict[str, Any] = {
        "dialect": "removebg",
        "route": "/v1.0/removebg",
        "method": "POST",
        "status": "200",
    }
    requests = value(replica_side, "alphacut_http_requests_total", **labels)
    assert requests - value(replica_before, "alphacut_http_requests_total", **labels) == 1
    assert value(replica_side, "alphacut_fleet_workers_alive") == 1
    assert value(replica_side, "alphacut_fleet_queue_jobs") == 0
    assert value(replica_side, "alphacut_billed_images_total") >= 1
    assert TOKEN not in httpx.get(f"{replica.url}/metrics").text


def test_a_node_whose_metrics_port_is_taken_does_not_start(
    metered: tuple[Fleet, str], tmp_path: Path
) -> None:
    fleet, url = metered
    port = url.removeprefix("http://127.0.0.1:").removesuffix("/metrics")
    env = {
        **os.environ,
        "ALPHACUT_INFERENCE_URL": fleet.url,
        "ALPHACUT_DATA_DIR": str(tmp_path),
        "ALPHACUT_METRICS": "loopback",
        "ALPHACUT_WORKER_METRICS_PORT": port,
    }
    exe = Path(sys.executable).with_name("alphacut")
    second = subprocess.run(
        [str(exe), "worker", "--concurrency", "1", "--name", "second@metrics-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2, second.stderr[-2000:]
    assert "ALPHACUT_WORKER_METRICS_HOST" in second.stderr
