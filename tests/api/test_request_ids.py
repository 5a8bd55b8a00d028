"""Request ids over real HTTP: every answer carries one, a well-formed one from the caller is
kept, the request's log line says what happened under it, and Ximilar's ``request_id`` is
the same id."""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alphacut.logs import JsonFormatter, RequestFields
from servers import Server

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """The JSON lines the server has logged (alphacut's loggers) since the test began."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestFields())
    logger = logging.getLogger("alphacut")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


def _request_line(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    (line,) = [
        x for x in lines if x["logger"] == "alphacut.request" and x["request_id"] == request_id
    ]
    return line


def _is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/v1/images", 401),
        ("GET", "/v1.0/account", 403),
        ("GET", "/no/such/route", 404),
        ("POST", "/v1/images/search", 413),
    ],
)
def test_every_answer_carries_a_request_id(
    server: Server, method: str, path: str, status: int
) -> None:
    content = b"{" + b" " * (server.settings.max_json_bytes + 10) + b"}" if status == 413 else None
    answer = httpx.request(method, server.url + path, content=content, timeout=30)
    assert answer.status_code == status, answer.text
    assert _is_uuid(answer.headers["x-request-id"])
    again = httpx.request(method, server.url + path, content=content, timeout=30)
    assert again.headers["x-request-id"] != answer.headers["x-request-id"]


@pytest.mark.parametrize(
    "sent",
    ["two words", "x" * 129, 'quote"d', "{json}", "caf\xe9", "semi;colon", ""],
    ids=repr,
)
def test_a_malformed_id_is_replaced(server: Server, sent: str) -> None:
    answer = httpx.get(f"{server.url}/healthz", headers=[(b"X-Request-ID", sent.encode("latin-1"))])
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] != sent
    assert _is_uuid(answer.headers["x-request-id"])


def test_two_ids_are_none(server: Server) -> None:
    answer = httpx.get(
        f"{server.url}/healthz", headers=[("X-Request-ID", "one"), ("X-Request-ID", "two")]
    )
    assert _is_uuid(answer.headers["x-request-id"])


def test_a_removal_is_logged_under_the_callers_id(
    server: Server, photo: Path, lines: Lines
) -> None:
    secret, key = server.keys.create("request ids", "test")
    upload_id, removal_id = f"upload-{uuid.uuid4().hex}", f"cut.{uuid.uuid4().hex}"
    with server.client(secret) as api:
        image = api.post(
            "/v1/images/upload",
            data={"name": "car"},
            files={"image": photo.read_bytes()},
            headers={"X-Request-ID": upload_id},
        )
        assert image.headers["x-request-id"] == upload_id
        cut = api.post(
            f"/v1/images/{image.json()['id']}/remove-background",
            json={"model": "fast"},
            headers={"X-Request-ID": removal_id},
        )
        assert cut.status_code == 201, cut.text
        assert cut.headers["x-request-id"] == removal_id
        missing = api.get(
            "/v1/images/image_000000000000000000000000", headers={"X-Request-ID": "gone-1"}
        )
        assert missing.status_code == 404 and missing.headers["x-request-id"] == "gone-1"
    logged = lines()
    line = _request_line(logged, removal_id)
    assert line["route"] == "/v1/images/{image_id}/remove-background"
    assert line["method"] == "POST" and line["status"] == 201 and line["level"] == "INFO"
    assert line["key_id"] == key.id
    assert line["duration_ms"] > 0
    assert {"decode", "inference", "encode"} <= set(line["stages_ms"]), line  # its stages
    assert _request_line(logged, upload_id)["route"] == "/v1/images/upload"
    gone = _request_line(logged, "gone-1")
    assert gone["route"] == "/v1/images/{image_id}" and gone["status"] == 404
    everything = json.dumps(logged)
    assert secret not in everything and "image_000000000000000000000000" not in everything


def test_ximilar_request_id_is_the_request_id(server: Server, photo: Path) -> None:
    secret = server.new_key()
    record = {"_base64": base64.b64encode(photo.read_bytes()).decode(), "binary_mask": True}
    sent = f"ximilar-{uuid.uuid4().hex}"
    answer = httpx.post(
        f"{server.url}/removebg/fast/removebg",
        json={"records": [record, {"_url": "not a url"}]},
        headers={"Authorization": f"Token {secret}", "X-Request-ID": sent},
        timeout=300,
    )
    body = answer.json()
    assert answer.status_code == 200, body
    assert answer.headers["x-request-id"] == sent
    assert body["status"]["request_id"] == sent
    ok, failed = body["records"]
    assert ok["_status"]["code"] == 200 and failed["_status"]["code"] != 200
    assert ok["_status"]["request_id"] == failed["_status"]["request_id"] == sent
    made = httpx.post(
        f"{server.url}/removebg/fast/removebg",
        json={"records": [record]},
        headers={"Authorization": f"Token {secret}"},
        timeout=300,
    )
    assert made.json()["status"]["request_id"] == made.headers["x-request-id"]
    assert _is_uuid(made.headers["x-request-id"])
