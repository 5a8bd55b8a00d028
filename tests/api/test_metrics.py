"""``/metrics`` on a real server: scraped over HTTP, parsed with prometheus-client's own
parser, counters that move with real requests, and the three access modes."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from alphacut.api import create_app
from alphacut.api.server import ServerConfig
from alphacut.config import Settings
from servers import Server, free_port

TOKEN = secrets.token_urlsafe(24)


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``url``/metrics: (name, labels) -> value."""
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def mserver(make_server: Any) -> Server:
    """Metrics for this machine; the fast model, one plain pass (a quick cut-out)."""
    server: Server = make_server(
        metrics="loopback",
        default_model="fast",
        load_models=["fast"],
        refine="none",
        rate_limit_per_minute=3,
    )
    return server


def test_counters_move_with_real_requests(mserver: Server, photo: Path) -> None:
    key = mserver.new_key()
    before = scrape(mserver.url)
    with mserver.client(key) as client:
        cut = client.post(
            "/v1.0/removebg",
            headers={"X-Api-Key": key},
            files={"image_file": ("car.jpg", photo.read_bytes())},
        )
        assert cut.status_code == 200, cut.text
        image_id = secrets.token_hex(8)
        missing = client.get(f"/v1/images/{image_id}")
        assert missing.status_code == 404
    after = scrape(mserver.url)
    text = httpx.get(f"{mserver.url}/metrics").text

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"dialect": "removebg", "route": "/v1.0/removebg", "method": "POST"}
    assert moved("alphacut_http_requests_total", **route, status="200") == 1
    assert (
        moved(
            "alphacut_http_request_duration_seconds_count",
            dialect="removebg",
            route="/v1.0/removebg",
        )
        == 1
    )
    # The route's template, never the path: the id is in no label.
    assert (
        moved(
            "alphacut_http_requests_total",
            dialect="images",
            route="/v1/images/{image_id}",
            method="GET",
            status="404",
        )
        == 1
    )
    assert image_id not in text
    assert key not in text and key[:9] not in text
    assert moved("alphacut_billed_images_total") == 1
    for stage in ("decode", "inference", "encode"):
        assert moved("alphacut_stage_duration_seconds_count", stage=stage) == 1, stage
    assert moved("alphacut_queue_wait_seconds_count", queue="inference") >= 1
    assert value(after, "alphacut_memory_budget_bytes") > 0
    assert value(after, "alphacut_queue_capacity", queue="inference") > 0
    assert value(after, "alphacut_models_loaded", model="u2netp.onnx") >= 1


def test_refusals_are_counted_by_reason_and_status(mserver: Server) -> None:
    key = mserver.new_key()
    before = scrape(mserver.url)
    with mserver.client(key) as client:
        statuses = [client.get("/v1/images").status_code for _ in range(5)]
    assert statuses.count(429) == 2, statuses
    after = scrape(mserver.url)
    refused = value(after, "alphacut_refusals_total", reason="rate_limit") - value(
        before, "alphacut_refusals_total", reason="rate_limit"
    )
    assert refused == 2
    labels = {"dialect": "images", "route": "/v1/images", "method": "GET", "status": "429"}
    assert (
        value(after, "alphacut_http_requests_total", **labels)
        - value(before, "alphacut_http_requests_total", **labels)
        == 2
    )


def test_a_body_refused_before_routing_keeps_its_dialect(mserver: Server) -> None:
    before = scrape(mserver.url)
    host, port = mserver.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /v1.0/removebg HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        status = conn.recv(64).split(b" ")[1].decode()
    assert status == "400"  # remove.bg's status for a file too large
    after = scrape(mserver.url)
    labels = {"dialect": "removebg", "route": "unmatched", "method": "POST", "status": status}
    assert (
        value(after, "alphacut_http_requests_total", **labels)
        - value(before, "alphacut_http_requests_total", **labels)
        == 1
    )


def test_unmatched_paths_share_one_label(mserver: Server) -> None:
    probe = "/" + secrets.token_hex(6)
    assert httpx.get(mserver.url + probe).status_code == 404
    assert probe not in httpx.get(f"{mserver.url}/metrics").text


def test_loopback_mode_refuses_a_request_that_came_through_a_proxy(mserver: Server) -> None:
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        response = httpx.get(f"{mserver.url}/metrics", headers={header: "203.0.113.9"})
        assert response.status_code == 403, header
        assert "alphacut_" not in response.text


def test_off_by_default(server: Server) -> None:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 404
    assert "alphacut_" not in response.text


@pytest.fixture(scope="module")
def tserver(make_server: Any) -> Server:
    server: Server = make_server(metrics="token", metrics_token=TOKEN, load_models=[])
    return server


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        (f"Basic {TOKEN}", 401),
        (f"Token {TOKEN}", 401),
        ("Bearer wrong-token-of-some-length", 403),
        (f"Bearer {TOKEN[:-1]}", 403),
        (f"Bearer {TOKEN}x", 403),
        (f"Bearer {TOKEN.upper()}", 403),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
    ],
)
def test_token_mode(tserver: Server, authorization: str | None, status: int) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{tserver.url}/metrics", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if status != 200:
        assert "alphacut_" not in response.text
        assert TOKEN not in response.text
    else:
        assert scrape(tserver.url, Authorization=authorization or "")


def test_token_mode_serves_through_a_proxy(tserver: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.9"}
    assert httpx.get(f"{tserver.url}/metrics", headers=headers).status_code == 200


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_loopback_mode_refuses_another_machine(tmp_path: Path) -> None:
    """The server listening on every interface, asked through this machine's outward
    address: the peer is not loopback, so 403; through 127.0.0.1 the same server answers."""
    address = _outward_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    port = free_port()
    settings = Settings(data_dir=tmp_path, metrics="loopback", load_models=[])
    config = ServerConfig(create_app(settings), settings, host="0.0.0.0", port=port)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        outside = httpx.get(f"http://{address}:{port}/metrics")
        assert outside.status_code == 403, outside.text
        assert "alphacut_" not in outside.text
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)
