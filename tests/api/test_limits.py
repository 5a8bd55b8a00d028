"""Limits: body size while streaming, per-key rate limits, and bounded work queues."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from alphacut.engine.sessions import OnnxModel, OpenVinoModel
from servers import Server


def test_declared_oversize_body_is_refused_before_reading(
    api: httpx.Client, server: Server
) -> None:
    body = b'{"name": "' + b"x" * (server.settings.max_json_bytes + 10) + b'"}'
    response = api.post("/v1/images", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_streamed_oversize_body_is_cut_off(api: httpx.Client, server: Server) -> None:
    chunk = b"x" * 65536
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        while sent < server.settings.max_json_bytes * 4:
            sent += len(chunk)
            yield chunk

    response = api.post(
        "/v1/images", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_rate_limit_per_key(make_server: Any, photo: Path) -> None:
    limited: Server = make_server(rate_limit_per_minute=3)
    with limited.client(limited.new_key()) as api, limited.client(limited.new_key()) as other:
        assert [api.get("/v1/images").status_code for _ in range(3)] == [200, 200, 200]
        refused = api.get("/v1/images")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["code"] == "rate_limited"
        assert other.get("/v1/images").status_code == 200, "limits are per key"


def test_full_inference_queue_answers_503_at_once(
    make_server: Any, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy: Server = make_server(inference_workers=1, inference_queue=0, retry_after_seconds=3)
    release = threading.Event()
    entered = threading.Event()
    # The model's pass is what holds the one slot: hold it there.
    for kind in (OnnxModel, OpenVinoModel):
        real_run = kind.run

        def held_run(self: Any, tensor: Any, _real: Any = real_run) -> Any:
            entered.set()
            release.wait(30)
            return _real(self, tensor)

        monkeypatch.setattr(kind, "run", held_run)
    with busy.client(busy.new_key()) as api:
        image = api.post(
            "/v1/images/upload", data={"name": "a"}, files={"image": ("a", photo.read_bytes())}
        ).json()
        path = f"/v1/images/{image['id']}/remove-background"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(api.post, path, json={"model": "fast"})
            assert entered.wait(30)
            refused = api.post(path, json={"model": "fast"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "3"
            assert refused.json()["code"] == "server_busy"
            assert api.get("/v1/images").status_code == 200, "other routes still answer"
            release.set()
            assert first.result().status_code == 201


def test_unexpected_errors_are_a_generic_500_without_details(
    api: httpx.Client, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alphacut.engine import operations

    def broken(*_args: Any) -> None:
        raise RuntimeError("secret internal detail /etc/alphacut")

    monkeypatch.setattr(operations, "mirror", broken)
    image = api.post(
        "/v1/images/upload", data={"name": "a"}, files={"image": ("a", photo.read_bytes())}
    ).json()
    response = api.post(f"/v1/images/{image['id']}/mirror", json={"mode": "both"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and body["status"] == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert len(api.get("/v1/images").json()["data"]) == 1, "no half-made image"
