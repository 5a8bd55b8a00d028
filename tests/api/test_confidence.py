"""Issue 25 in every dialect, over real HTTP: each cut-out's confidence (remove.bg's answers:
``X-Confidence`` / ``X-Doubtful`` and JSON fields; Ximilar's records: ``_confidence`` /
``_doubtful``; the IMG Processing Image object: ``confidence`` / ``doubtful``; rembg's answers:
the headers), ``model=auto`` accepted everywhere, and a photo without a subject refused as
each API refuses an image it cannot carry out: never an empty cut-out billed as a success."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from servers import Server


def _png(
    color: tuple[int, int, int] = (200, 190, 180), size: tuple[int, int] = (480, 360)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


WALL = _png()  # a plain beige wall: no subject


@pytest.fixture(scope="module")
def wary(make_server: Any) -> Server:
    """A server that calls every cut-out doubtful (ALPHACUT_DOUBTFUL_BELOW=1)."""
    return make_server(doubtful_below=1.0)  # type: ignore[no-any-return]


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.new_key()) as client:
        yield client


def _removebg(client: httpx.Client, data: bytes, **fields: str) -> httpx.Response:
    return client.post("/v1.0/removebg", files={"image_file": ("p", data)}, data=fields)


def _confidence(value: str | float) -> float:
    number = float(value)
    assert 0.0 <= number <= 1.0
    return number


# remove.bg ---------------------------------------------------------------------------------


def test_removebg_answers_carry_the_confidence(api: httpx.Client, photo: Path) -> None:
    image = _removebg(api, photo.read_bytes())
    assert image.status_code == 200, image.text
    score = _confidence(image.headers["X-Confidence"])
    assert score > 0.7 and image.headers["X-Doubtful"] == "false"  # a clear car photo
    as_json = api.post(
        "/v1.0/removebg",
        files={"image_file": ("p", photo.read_bytes())},
        headers={"Accept": "application/json"},
    )
    data = as_json.json()["data"]
    assert data["confidence"] == pytest.approx(score, abs=1e-4) and data["doubtful"] is False
    assert as_json.headers["X-Confidence"] == image.headers["X-Confidence"]


def test_the_threshold_is_the_servers_setting(wary: Server, photo: Path) -> None:
    with wary.client(wary.new_key()) as client:
        answer = _removebg(client, photo.read_bytes())
    assert answer.status_code == 200 and answer.headers["X-Doubtful"] == "true"


def test_removebg_refuses_a_photo_without_a_subject_as_remove_bg_does(
    api: httpx.Client,
) -> None:
    before = api.get("/v1.0/account").json()["data"]["attributes"]["usage"]["images"]
    answer = _removebg(api, WALL)
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["code"] == "unknown_foreground"
    assert error["title"].startswith("Could not identify foreground in image")
    assert "no subject" in error["detail"]
    after = api.get("/v1.0/account").json()["data"]["attributes"]["usage"]["images"]
    assert after == before  # not billed


def test_removebg_takes_model_auto(api: httpx.Client, photo: Path) -> None:
    answer = _removebg(api, photo.read_bytes(), model="auto")
    assert answer.status_code == 200, answer.text
    _confidence(answer.headers["X-Confidence"])


# Ximilar -----------------------------------------------------------------------------------


def _ximilar(server: Server, body: dict[str, Any], path_model: str = "precise") -> Any:
    answer = httpx.post(
        f"{server.url}/removebg/{path_model}/removebg",
        json=body,
        headers={"Authorization": f"Token {server.new_key()}"},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_ximilar_records_carry_the_confidence_and_a_wall_gets_its_own_422(
    server: Server, photo: Path
) -> None:
    photo_b64 = base64.b64encode(photo.read_bytes()).decode()
    records = [
        # a client's own _confidence must never read as alphacut's answer
        {"_id": "car", "_base64": photo_b64, "_confidence": 0.01, "_doubtful": True},
        {"_id": "wall", "_base64": base64.b64encode(WALL).decode(), "_confidence": 0.99},
    ]
    car, wall = _ximilar(server, {"records": records})["records"]
    assert car["_status"]["code"] == 200
    assert _confidence(car["_confidence"]) > 0.7 and car["_doubtful"] is False
    assert wall["_status"]["code"] == 422
    assert "no subject" in wall["_status"]["error_description"]
    assert "_confidence" not in wall and "_doubtful" not in wall
    assert "_output_url" not in wall


def test_ximilar_takes_model_auto_in_the_body(server: Server, photo: Path) -> None:
    record = {"_base64": base64.b64encode(photo.read_bytes()).decode()}
    (answered,) = _ximilar(server, {"records": [record], "model": "auto"}, "fast")["records"]
    assert answered["_status"]["code"] == 200, answered["_status"]
    _confidence(answered["_confidence"])


# IMG Processing ------------------------------------------------------------------------------


def _upload(client: httpx.Client, data: bytes) -> dict[str, Any]:
    answer = client.post("/v1/images/upload", data={"name": "p"}, files={"image": ("p", data)})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_the_image_remove_background_makes_keeps_its_confidence(
    api: httpx.Client, photo: Path
) -> None:
    source = _upload(api, photo.read_bytes())
    assert "confidence" not in source and "doubtful" not in source  # not a cut-out: exact
    made = api.post(f"/v1/images/{source['id']}/remove-background", json={"model": "auto"})
    assert made.status_code == 201, made.text
    image = made.json()
    score = _confidence(image["confidence"])
    assert image["doubtful"] is False
    again = api.get(f"/v1/images/{image['id']}").json()
    assert again["confidence"] == score and again["doubtful"] is False
    listed = {item["id"]: item for item in api.get("/v1/images?take=100").json()["data"]}
    assert listed[image["id"]]["confidence"] == score
    converted = api.post(f"/v1/images/{image['id']}/convert", json={"format": "jpeg"})
    assert converted.status_code == 201 and "confidence" not in converted.json()


def test_the_image_remove_background_refuses_a_wall_with_422(api: httpx.Client) -> None:
    source = _upload(api, WALL)
    answer = api.post(f"/v1/images/{source['id']}/remove-background", json={})
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "unknown_foreground" and "no subject" in body["message"]
    assert body["type"].endswith("/unknown-foreground")
    names = [item["id"] for item in api.get("/v1/images?take=100").json()["data"]]
    assert names == [source["id"]]  # no empty cut-out stored


# rembg ---------------------------------------------------------------------------------------


def test_rembg_answers_carry_the_confidence_headers(api: httpx.Client, photo: Path) -> None:
    answer = api.post("/api/remove", files={"file": ("p.jpg", photo.read_bytes())})
    assert answer.status_code == 200, answer.text
    _confidence(answer.headers["X-Confidence"])
    wall = api.post("/api/remove", files={"file": ("p.png", WALL)})
    assert wall.status_code == 422 and "no subject" in wall.text
