"""How each dialect refuses, over real HTTP: its 429 and 503 with ``Retry-After`` (and
remove.bg's ``X-RateLimit-*`` on its answers), a photo too large in words people read, and
a request without a key told how to send one."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alphacut.engine.sessions import ModelLoadError
from alphacut.service.health import Readiness
from alphacut.service.inference.local import LocalInference
from servers import Server

# One request per dialect that needs nothing but a key: (method, path, what to send).
Send = Callable[[Server, dict[str, str]], httpx.Response]


def _img(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(server.url + "/v1/images", headers=headers)


def _removebg(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(server.url + "/v1.0/account", headers=headers)


def _ximilar(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + "/removebg/fast/removebg", headers=headers, json={})


def _rembg(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(server.url + "/api/remove", headers=headers)


DIALECTS: dict[str, tuple[Send, Callable[[str], dict[str, str]]]] = {
    "img-processing": (_img, lambda key: {"x-api-key": key}),
    "removebg": (_removebg, lambda key: {"X-Api-Key": key}),
    "ximilar": (_ximilar, lambda key: {"Authorization": f"Token {key}"}),
    "rembg": (_rembg, lambda key: {"Authorization": f"Bearer {key}"}),
}


def _message(dialect: str, response: httpx.Response) -> str:
    body = response.json()
    if dialect == "removebg":
        error = body["errors"][0]
        return f"{error['title']} / {error['detail']}"
    if dialect == "ximilar":
        return str(body["status"]["error_description"])
    return str(body["message"])


@pytest.fixture(scope="module")
def limited(make_server: Any) -> Server:
    return make_server(rate_limit_per_minute=3, load_models=[], wait_for_models=False)  # type: ignore[no-any-return]


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialects_429_says_when_to_retry(limited: Server, dialect: str) -> None:
    send, auth = DIALECTS[dialect]
    headers = auth(limited.new_key())
    first_at = time.time()
    for _ in range(3):
        assert send(limited, headers).status_code != 429
    refused = send(limited, headers)
    assert refused.status_code == 429, refused.text
    wait = int(refused.headers["retry-after"])
    # The oldest of the three leaves the minute's window then: no sooner, no later.
    assert math.ceil(first_at + 60 - time.time()) - 2 <= wait <= 60
    assert "rate limit of 3 requests per minute" in _message(dialect, refused)
    has_rate_headers = "x-ratelimit-limit" in refused.headers
    assert has_rate_headers == (dialect == "removebg"), "remove.bg's headers, on its dialect"


def test_remove_bgs_rate_limit_headers_count_what_the_limiter_enforces(limited: Server) -> None:
    headers = {"X-Api-Key": limited.new_key()}
    started = time.time()
    seen = []
    for _ in range(4):
        response = _removebg(limited, headers)
        seen.append(response)
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-limit"] for r in seen] == ["3"] * 4
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    resets = {int(r.headers["x-ratelimit-reset"]) for r in seen}
    assert len(resets) == 1, "one window: it resets when its first request leaves it"
    (reset,) = resets
    assert started + 60 <= reset <= time.time() + 61
    assert "retry-after" not in seen[0].headers, "Retry-After only once the limit is reached"
    assert int(seen[3].headers["retry-after"]) == pytest.approx(reset - time.time(), abs=2)

    # Its errors carry them too (remove.bg sends them with every answer to a known key).
    other = {"X-Api-Key": limited.new_key()}
    invalid = httpx.post(limited.url + "/v1.0/removebg", headers=other, json={"size": "huge"})
    assert invalid.status_code == 400
    assert invalid.headers["x-ratelimit-remaining"] == "2"
    assert "x-ratelimit-limit" not in _img(limited, {"x-api-key": limited.new_key()}).headers


def test_without_a_rate_limit_remove_bg_sends_no_rate_limit_headers(make_server: Any) -> None:
    server: Server = make_server(load_models=[], wait_for_models=False)
    response = _removebg(server, {"X-Api-Key": server.new_key()})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("x-ratelimit")]


@pytest.fixture
def busy(make_server: Any, monkeypatch: pytest.MonkeyPatch) -> Server:
    """A server whose inference is full: every cut-out is refused at its admission."""
    server: Server = make_server(load_models=[], wait_for_models=False, retry_after_seconds=7)
    monkeypatch.setattr(LocalInference, "busy", lambda _self: True)
    return server


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialects_503_says_when_to_retry(busy: Server, photo: Path, dialect: str) -> None:
    key = busy.new_key()
    data = photo.read_bytes()
    if dialect == "img-processing":
        with busy.client(key) as api:
            image = api.post(
                "/v1/images/upload", data={"name": "a"}, files={"image": ("a.jpg", data)}
            ).json()
            refused = api.post(f"/v1/images/{image['id']}/remove-background", json={})
    elif dialect == "removebg":
        refused = httpx.post(
            busy.url + "/v1.0/removebg",
            headers={"X-Api-Key": key},
            files={"image_file": ("a.jpg", data)},
        )
    elif dialect == "ximilar":
        record = {"_base64": base64.b64encode(data).decode()}
        refused = httpx.post(
            busy.url + "/removebg/fast/removebg",
            headers={"Authorization": f"Token {key}"},
            json={"records": [record]},
        )
    else:
        refused = httpx.post(
            busy.url + "/api/remove",
            headers={"x-api-key": key},
            files={"file": ("a.jpg", data)},
        )
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "7"


def test_a_503_without_a_time_of_its_own_gets_the_configured_one(
    busy: Server, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that fails to load is a 503 with no time of its own: the server's
    ALPHACUT_RETRY_AFTER_SECONDS, in every dialect."""
    monkeypatch.setattr(LocalInference, "busy", lambda _self: False)

    def broken(_self: Any, _job: Any) -> Any:
        raise ModelLoadError("the model could not be loaded")

    monkeypatch.setattr(LocalInference, "submit", broken)
    response = httpx.post(
        busy.url + "/api/remove",
        headers={"x-api-key": busy.new_key()},
        files={"file": ("a.jpg", photo.read_bytes())},
    )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "7"
    removebg = httpx.post(
        busy.url + "/v1.0/removebg",
        headers={"X-Api-Key": busy.new_key()},
        files={"image_file": ("a.jpg", photo.read_bytes())},
    )
    assert (removebg.status_code, removebg.headers["retry-after"]) == (503, "7")


def test_readyz_503_says_when_to_ask_again(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Readiness, "_database", lambda _self: "error: down for the test")
    server: Server = make_server(load_models=[], wait_for_models=False, retry_after_seconds=9)
    response = httpx.get(server.url + "/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "9"


# A photo too large ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(make_server: Any) -> Server:
    """Photos up to 1 MB (uploads) and 1.5 MB (inline and in batches)."""
    return make_server(  # type: ignore[no-any-return]
        max_upload_bytes=1 << 20,
        max_input_bytes=3 << 19,
        load_models=[],
        wait_for_models=False,
    )


MB = 1 << 20


def _multipart(field: str, size: int) -> dict[str, Any]:
    return {"files": {field: ("big.jpg", b"\xff\xd8\xff" + b"\0" * (size - 3))}}


@pytest.mark.parametrize(
    ("dialect", "path", "field"),
    [
        ("img-processing", "/v1/images/upload", "image"),
        ("rembg", "/api/remove", "file"),
    ],
)
def test_a_photo_too_large_is_said_in_megabytes(
    small: Server, dialect: str, path: str, field: str
) -> None:
    key = small.new_key()
    response = httpx.post(
        small.url + path, headers={"x-api-key": key}, **_multipart(field, int(2.7 * MB))
    )
    assert response.status_code == 413, response.text
    # The body's size: the photo and a few hundred bytes of multipart framing.
    assert _message(dialect, response) == "photo too large: 2.7 MB, the limit is 1 MB"


def test_a_photo_just_over_the_limit_is_said_in_bytes(small: Server) -> None:
    """1 MB and 10 bytes is "1 MB" too: the refusal then names the bytes. The body passes the
    body limit (its framing allowance), the route refuses the file itself."""
    with small.client(small.new_key()) as api:
        response = api.post("/v1/images/upload", data={"name": "a"}, **_multipart("image", MB + 10))
    assert response.status_code == 413, response.text
    assert response.json()["message"] == (
        "photo too large: 1,048,586 bytes, the limit is 1,048,576 bytes (1 MB)"
    )


def test_remove_bg_says_the_photo_size_in_its_400(small: Server) -> None:
    headers = {"X-Api-Key": small.new_key()}
    # In a form: the route reads the file itself (the body limit holds a background too).
    form = httpx.post(
        small.url + "/v1.0/removebg", headers=headers, **_multipart("image_file", int(1.5 * MB))
    )
    assert form.status_code == 400, form.text
    error = form.json()["errors"][0]
    assert error["code"] == "file_too_large"
    assert error["detail"] == "image_file too large: 1.5 MB, the limit is 1 MB"
    # As base64 in JSON: the photo's size, and the base64 text's.
    b64 = base64.b64encode(b"\xff" * (3 * MB)).decode()
    inline = httpx.post(small.url + "/v1.0/removebg", headers=headers, json={"image_file_b64": b64})
    assert inline.status_code == 400, inline.text
    assert inline.json()["errors"][0]["detail"] == (
        "photo too large: 3 MB (4 MB as base64), the limit is 1.5 MB"
    )


def test_ximilar_says_the_batch_and_photo_limits(small: Server) -> None:
    big = base64.b64encode(b"\xff" * (24 * MB)).decode()
    response = httpx.post(
        small.url + "/removebg/fast/removebg",
        headers={"Authorization": f"Token {small.new_key()}"},
        content=b'{"records": [{"_base64": "' + big.encode() + b'"}]}',
        timeout=120,
    )
    assert response.status_code == 413, response.text
    # 10 records of 1.5 MB as base64 (2 MB) and their JSON (64 KB each) at most
    assert response.json()["status"]["error_description"] == (
        "request too large: 32 MB, the limit is 20.6 MB; each photo may be up to 1.5 MB"
    )


def test_a_streamed_body_too_large_names_the_limit(small: Server) -> None:
    """Chunked: no size up front, so the refusal says the photo is over the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        yield b"\xff\xd8\xff"
        for _ in range(64):
            yield b"\0" * 65536

    response = httpx.post(
        small.url + "/api/remove",
        headers={"x-api-key": small.new_key(), "content-type": "multipart/form-data; boundary=x"},
        content=chunks(),
    )
    assert response.status_code == 413, response.text
    assert response.json()["message"] == "photo too large: more than 1 MB, the limit is 1 MB"


def test_a_json_body_too_large_is_no_photo(small: Server) -> None:
    body = b'{"name": "' + b"x" * (2 * MB) + b'"}'
    response = httpx.post(
        small.url + "/v1/images",
        headers={"x-api-key": small.new_key(), "content-type": "application/json"},
        content=body,
    )
    assert response.status_code == 413
    assert response.json()["message"] == "request body too large: 2 MB, the limit is 1 MB"


# No key sent -----------------------------------------------------------------------------

HOW_TO_SEND = {
    "img-processing": "send it in the x-api-key header",
    "removebg": "send it in the X-Api-Key header",
    "ximilar": "send it as Authorization: Token <key>",
    "rembg": "send it as x-api-key: <key> or Authorization: Bearer <key>",
}
# remove.bg answers an unknown or missing key with 403 (its documented auth_failed); the
# others with 401.
NO_KEY_STATUS = {"img-processing": 401, "removebg": 403, "ximilar": 401, "rembg": 401}


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_no_key_says_none_was_sent_and_how_to_send_one(limited: Server, dialect: str) -> None:
    send, auth = DIALECTS[dialect]
    missing = send(limited, {})
    assert missing.status_code == NO_KEY_STATUS[dialect], missing.text
    text = _message(dialect, missing)
    assert "no API key was sent" in text and HOW_TO_SEND[dialect] in text, text
    if dialect == "removebg":
        assert missing.json()["errors"][0]["title"] == "Missing API key"
        assert missing.json()["errors"][0]["code"] == "auth_failed"

    # A wrong key and a revoked one hear the same refusal: nothing about which keys exist.
    secret = limited.new_key()
    key = limited.keys.authenticate(secret)
    assert key is not None
    limited.keys.revoke(key.id)
    answers = [send(limited, auth(wrong)) for wrong in ("live_" + "x" * 40, secret)]
    assert answers[0].status_code == answers[1].status_code == missing.status_code
    texts = {_message(dialect, answer) for answer in answers}
    assert len(texts) == 1, texts
    (refused,) = texts
    assert "no API key was sent" not in refused and "invalid or revoked API key" in refused
