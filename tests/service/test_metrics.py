"""The metrics' access rule, the multiprocess directory's care, and the counts of model
sessions (the HTTP side and real scrapes: tests/api/test_metrics.py; the fleet's worker
port: tests/fleet/test_metrics_fleet.py; several processes: tests/cli/test_serve_metrics.py)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alphacut.config import Settings
from alphacut.engine.sessions import LoadSpec, RuntimeChoice, SessionCache
from alphacut.errors import AlphacutError
from alphacut.service import metrics
from alphacut.service.metrics import Mode, refusal

TOKEN = secrets.token_urlsafe(24)
BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("mode", "peer", "headers", "status"),
    [
        ("off", "127.0.0.1", {}, 404),
        ("off", "127.0.0.1", BEARER, 404),
        ("loopback", "127.0.0.1", {}, None),
        ("loopback", "127.8.9.10", {}, None),
        ("loopback", "::1", {}, None),
        ("loopback", "::ffff:127.0.0.1", {}, None),
        ("loopback", "10.0.0.1", {}, 403),
        ("loopback", "192.168.1.2", BEARER, 403),  # a token does not open loopback mode
        ("loopback", "::ffff:10.0.0.1", {}, 403),
        ("loopback", "fe80::1", {}, 403),
        ("loopback", "0.0.0.0", {}, 403),
        ("loopback", "localhost", {}, 403),  # a name is no address
        ("loopback", "", {}, 403),
        ("loopback", None, {}, 403),
        ("loopback", "127.0.0.1", {"x-forwarded-for": "127.0.0.1"}, 403),
        ("loopback", "127.0.0.1", {"x-real-ip": "203.0.113.1"}, 403),
        ("loopback", "127.0.0.1", {"forwarded": "for=203.0.113.1"}, 403),
        ("token", "203.0.113.1", BEARER, None),
        ("token", "203.0.113.1", {"authorization": f"bearer   {TOKEN}  "}, None),
        ("token", "127.0.0.1", {}, 401),
        ("token", "127.0.0.1", {"authorization": ""}, 401),
        ("token", "127.0.0.1", {"authorization": TOKEN}, 401),
        ("token", "127.0.0.1", {"authorization": f"Basic {TOKEN}"}, 401),
        ("token", "127.0.0.1", {"authorization": "Bearer"}, 401),
        ("token", "127.0.0.1", {"authorization": "Bearer x"}, 403),
        ("token", "127.0.0.1", {"authorization": f"Bearer {TOKEN[:-1]}"}, 403),
        ("token", "127.0.0.1", {"authorization": f"Bearer {TOKEN}{TOKEN}"}, 403),
        ("token", "127.0.0.1", {"authorization": "Bearer é"}, 403),
    ],
)
def test_who_may_read_the_metrics(
    mode: Mode, peer: str | None, headers: dict[str, str], status: int | None
) -> None:
    refused = refusal(mode, TOKEN, peer, headers)
    assert (refused.status if refused else None) == status
    if refused is not None:
        assert TOKEN not in refused.message
        assert ("WWW-Authenticate" in refused.headers) == (status == 401)


def test_token_mode_without_a_token_lets_no_one_in() -> None:
    refused = refusal("token", None, "127.0.0.1", {"authorization": "Bearer "})
    assert refused is not None and refused.status == 401
    refused = refusal("token", "", "127.0.0.1", {"authorization": "Bearer anything"})
    assert refused is not None and refused.status == 403


def test_settings_demand_a_token_in_token_mode() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="ALPHACUT_METRICS_TOKEN"):
        Settings(metrics="token")
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics="token", metrics_token=TOKEN[:15])
    with pytest.raises(ValidationError, match="metrics"):
        Settings(metrics="open")
    settings = Settings(metrics="token", metrics_token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


def test_the_directory_is_cleared_of_our_files_only(tmp_path: Path) -> None:
    ours = ["counter_12.db", "histogram_3.db", "gauge_livesum_77.db", "gauge_all_5.db"]
    theirs = ["notes.txt", "counter_12.db.bak", "counter_x.db", "other.db"]
    for name in ours + theirs:
        (tmp_path / name).write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "precious"
    target.write_bytes(b"keep")
    (tmp_path / "counter_99.db").symlink_to(target)
    (tmp_path / "histogram_4.db").mkdir()
    metrics._clear(tmp_path)
    left = sorted(entry.name for entry in tmp_path.iterdir())
    assert left == sorted([*theirs, "counter_99.db", "histogram_4.db", "elsewhere"])
    assert target.read_bytes() == b"keep"


def test_a_directory_others_may_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    metrics._check_private(shared)
    for mode in (0o770, 0o707, 0o777):
        shared.chmod(mode)
        with pytest.raises(AlphacutError, match="no one else may write"):
            metrics._check_private(shared)


def test_live_gauges_of_dead_processes_are_dropped(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = os.getpid()
    for name in (
        f"gauge_livesum_{dead.pid}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{dead.pid}.db",  # a dead process's counts stay: they happened
        f"gauge_all_{dead.pid}.db",
    ):
        (tmp_path / name).write_bytes(b"")
    metrics._prune_dead(tmp_path)
    left = {entry.name for entry in tmp_path.iterdir()}
    assert left == {
        f"gauge_livesum_{alive}.db",
        f"counter_{dead.pid}.db",
        f"gauge_all_{dead.pid}.db",
    }


class _StandIn:
    choice = RuntimeChoice("onnxruntime", "fp32", "cpu", "a test's stand-in")

    def run(self, tensor: object) -> object:
        raise AssertionError("never run")


def _samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _type = metrics.exposition()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_model_loads_and_evictions_are_counted_per_model() -> None:
    cache = SessionCache(loader=lambda _spec: _StandIn())  # type: ignore[arg-type, return-value]
    cache.watch(metrics.session_event)
    names = ("metrics-a", "metrics-b")

    def count(name: str, model: str) -> float:
        return _samples().get((name, frozenset({("model", model)})), 0.0)

    before = {
        (name, model): count(name, model)
        for name in (
            "alphacut_model_loads_total",
            "alphacut_model_evictions_total",
            "alphacut_model_load_duration_seconds_count",
            "alphacut_models_loaded",
        )
        for model in (f"{n}.onnx" for n in names)
    }
    for name in (*names, names[0]):
        cache.get(
            LoadSpec(path=Path(f"/models/{name}.onnx"), device="cpu", threads=1), max_loaded=1
        )
    moved = {key: count(*key) - was for key, was in before.items()}
    a, b = (f"{n}.onnx" for n in names)
    assert moved[("alphacut_model_loads_total", a)] == 2
    assert moved[("alphacut_model_loads_total", b)] == 1
    assert moved[("alphacut_model_evictions_total", a)] == 1
    assert moved[("alphacut_model_evictions_total", b)] == 1
    assert moved[("alphacut_model_load_duration_seconds_count", a)] == 2
    assert moved[("alphacut_models_loaded", a)] == 1
    assert moved[("alphacut_models_loaded", b)] == 0


def _worker_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"metrics": "loopback", "worker_metrics_port": 0, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def test_a_worker_node_serves_its_metrics_on_a_port() -> None:
    assert metrics.serve_worker_metrics(_worker_settings(metrics="off")) is None
    server = metrics.serve_worker_metrics(_worker_settings())
    assert server is not None
    try:
        port = server.port
        response = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert "alphacut_worker_jobs" in names
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 404
        proxied = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"X-Real-IP": "1.2.3.4"})
        assert proxied.status_code == 403
    finally:
        server.close()


def test_a_worker_port_serves_few_connections_at_once() -> None:
    """Connections past the bound are closed at once: clients that send nothing cannot
    take a thread each."""
    server = metrics.serve_worker_metrics(_worker_settings())
    assert server is not None
    port = server.port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(metrics._MAX_SCRAPES)]
    try:
        time.sleep(0.3)  # each taken by a thread of the server
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert extra.recv(100) == b""  # closed, unanswered
    finally:
        for conn in idle:
            conn.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.1)
    server.close()


def test_a_worker_port_on_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = metrics.serve_worker_metrics(_worker_settings(worker_metrics_host="::1"))
    except AlphacutError:
        pytest.skip("::1 is not configured here")
    assert server is not None
    try:
        port = server.port
        assert httpx.get(f"http://[::1]:{port}/metrics").status_code == 200
    finally:
        server.close()


def test_a_taken_worker_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AlphacutError, match="ALPHACUT_WORKER_METRICS_HOST"):
            metrics.serve_worker_metrics(_worker_settings(worker_metrics_port=port))
