"""Choosing the model per request, in all three APIs: fast, precise, or any installed catalogue
model by name; a catalogue model this server has not installed is the client's 400 (with the
names it can choose), an unknown name a 400 too. The chosen model must be the one that ran:
the same model named two ways gives the same bytes, another model other bytes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server

NOT_INSTALLED = "birefnet-general"  # in the catalogue, never installed on a test machine


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.new_key()) as api:
        yield api


def _ximilar(server: Server, path_model: str, body: dict[str, Any]) -> httpx.Response:
    key = server.new_key()
    return httpx.post(
        f"{server.url}/removebg/{path_model}/removebg",
        json=body,
        headers={"Authorization": f"Token {key}"},
        timeout=300,
    )


def _ximilar_mask(server: Server, path_model: str, photo: Path, **extra: Any) -> bytes:
    record = {"_base64": base64.b64encode(photo.read_bytes()).decode()}
    body = {"records": [record], "binary_mask": True, "image_format": "png", **extra}
    response = _ximilar(server, path_model, body)
    assert response.status_code == 200, response.text
    answered = response.json()["records"][0]
    assert answered["_status"]["code"] == 200, answered["_status"]
    mask = httpx.get(answered["_output_url_mask"], timeout=60)
    assert mask.status_code == 200
    return mask.content


def test_ximilar_body_model_overrides_the_path(server: Server, photo: Path) -> None:
    fast = _ximilar_mask(server, "fast", photo)
    by_name = _ximilar_mask(server, "precise", photo, model="u2netp")  # fast's target, by name
    assert by_name == fast
    assert _ximilar_mask(server, "precise", photo) != fast


def test_ximilar_unknown_and_uninstalled_models(server: Server, photo: Path) -> None:
    record = {"_base64": base64.b64encode(photo.read_bytes()).decode()}
    unknown = _ximilar(server, "fast", {"records": [record], "model": "nope"})
    assert unknown.status_code == 400
    assert "unknown model" in unknown.json()["status"]["error_description"]
    missing = _ximilar(server, "fast", {"records": [record], "model": NOT_INSTALLED})
    assert missing.status_code == 200  # per record, as Ximilar reports record errors
    status = missing.json()["records"][0]["_status"]
    assert status["code"] == 400
    assert f"{NOT_INSTALLED} is not installed" in status["error_description"]
    assert "u2netp" in status["error_description"]  # what it can choose


def test_images_api_model_by_name(client: httpx.Client, photo: Path) -> None:
    image = client.post(
        "/v1/images/upload", data={"name": "car"}, files={"image": ("car.jpg", photo.read_bytes())}
    ).json()
    path = f"/v1/images/{image['id']}/remove-background"
    by_alias = client.post(path, json={"model": "fast"})
    by_name = client.post(path, json={"model": "u2netp"})
    assert by_alias.status_code == by_name.status_code == 201, by_name.text
    first = client.get(f"/v1/images/{by_alias.json()['id']}/download").content
    second = client.get(f"/v1/images/{by_name.json()['id']}/download").content
    assert first == second
    missing = client.post(path, json={"model": NOT_INSTALLED})
    assert missing.status_code == 400
    assert missing.json()["code"] == "model_unavailable"
    assert "not installed on this server" in missing.json()["message"]
    for bad in ("../../etc/passwd", "x" * 65, "Fast"):
        assert client.post(path, json={"model": bad}).status_code == 400


def test_removebg_api_model_by_name(server: Server, photo: Path) -> None:
    key = server.new_key()
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": key}, timeout=120) as rb:

        def post(model: str) -> httpx.Response:
            return rb.post(
                "/v1.0/removebg",
                files={"image_file": ("p.jpg", photo.read_bytes())},
                data={"model": model, "channels": "alpha", "format": "png"},
            )

        assert post("u2netp").content == post("fast").content
        missing = post(NOT_INSTALLED)
        assert missing.status_code == 400
        assert "not installed" in missing.json()["errors"][0]["detail"]
        unknown = post("nope")
        assert unknown.status_code == 400
        assert "model" in unknown.json()["errors"][0]["detail"]


def test_a_model_larger_than_the_memory_budget_is_refused_as_such(
    make_server: Any, photo: Path
) -> None:
    small = make_server(memory_budget_bytes=600 * 2**20, load_models=["fast"])
    key = small.new_key()
    with httpx.Client(base_url=small.url, headers={"X-Api-Key": key}, timeout=120) as rb:

        def post(model: str) -> httpx.Response:
            files = {"image_file": ("p.jpg", photo.read_bytes())}
            return rb.post("/v1.0/removebg", files=files, data={"model": model})

        refused = post("precise")  # IS-Net with its consensus check: about 1,100 MB
        assert refused.status_code == 400
        detail = refused.json()["errors"][0]["detail"]
        assert "needs about 1,100 MB" in detail and "allows 600 MB per job" in detail
        assert post("fast").status_code == 200


def _two_chosen_models(make_server: Any, **overrides: Any) -> Server:
    """A server whose configured models are not installed and none loaded, so that u2netp and
    isnet-general-use are both models chosen per request, with one session slot."""
    return make_server(  # type: ignore[no-any-return]
        fast_model=NOT_INSTALLED,
        precise_model=NOT_INSTALLED,
        default_model="fast",
        load_models=[],
        refine="none",
        max_loaded_models=1,
        **overrides,
    )


def _removebg(server: Server, key: str, photo: Path, model: str) -> httpx.Response:
    files = {"image_file": ("p.jpg", photo.read_bytes())}
    return httpx.post(
        f"{server.url}/v1.0/removebg",
        files=files,
        data={"model": model, "channels": "alpha", "format": "png"},
        headers={"X-Api-Key": key},
        timeout=120,
    )


def test_alternating_chosen_models_do_not_reload_per_request(
    make_server: Any, photo: Path, fresh_sessions: None
) -> None:
    """Issue 22, item 3: before, each request alternating u2netp and isnet-general-use with one
    slot unloaded the other model and loaded its own; now the loaded one stays for its
    residency and the other is answered 503 + Retry-After, loading nothing."""
    from alphacut.engine.sessions import SESSIONS

    server = _two_chosen_models(make_server, model_min_residency_seconds=600)
    key = server.new_key()
    before = SESSIONS.loads
    for _ in range(3):
        assert _removebg(server, key, photo, "u2netp").status_code == 200
        busy = _removebg(server, key, photo, "isnet-general-use")
        assert busy.status_code == 503, busy.text
        assert 1 <= int(busy.headers["Retry-After"]) <= 600
    assert SESSIONS.loads - before == 1


def test_a_key_past_its_model_loads_gets_429(
    make_server: Any, photo: Path, fresh_sessions: None
) -> None:
    server = _two_chosen_models(
        make_server, model_min_residency_seconds=0, model_loads_per_key_per_hour=1
    )
    key = server.new_key()
    assert _removebg(server, key, photo, "u2netp").status_code == 200  # its one load
    refused = _removebg(server, key, photo, "isnet-general-use")
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert _removebg(server, key, photo, "u2netp").status_code == 200  # loaded: no charge
