"""A full disk and storage quotas over real HTTP.

With the data directory's filesystem full to the last byte (a real tmpfs), reads and deletes
answer as usual, writes answer 507, /readyz says why it is not ready, and once a delete has
freed space uploads work again. A per-key quota answers 403. Every writing route documents
both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from alphacut.config import Settings
from disks import fill, small_disk
from servers import Server, start_server


@pytest.fixture
def full_disk_server(tmp_path: Path) -> Iterator[Server]:
    with small_disk(tmp_path) as disk:
        server = start_server(Settings(data_dir=disk, min_free_bytes=1 << 20))
        try:
            yield server
        finally:
            server.stop()


def _upload(api: httpx.Client, photo: Path) -> httpx.Response:
    return api.post(
        "/v1/images/upload", data={"name": "p"}, files={"image": ("p.jpg", photo.read_bytes())}
    )


def test_a_full_disk_keeps_reads_and_deletes_working(full_disk_server: Server, photo: Path) -> None:
    server = full_disk_server
    secret, key = server.keys.create("full", "test")
    sent: list[httpx.Request] = []
    with httpx.Client(
        base_url=server.url,
        headers={"x-api-key": secret},
        event_hooks={"request": [sent.append]},
        timeout=60,
    ) as api:
        first, second = (_upload(api, photo).json() for _ in range(2))
        url = api.post(f"/v1/images/{first['id']}/publish").json()["url"]
        assert httpx.get(f"{server.url}/readyz").status_code == 200

        fill(server.settings.data_dir)
        listing = api.get("/v1/images")
        assert listing.status_code == 200, listing.text
        assert [image["id"] for image in listing.json()["data"]] == [second["id"], first["id"]]
        assert api.get(f"/v1/images/{first['id']}").status_code == 200
        assert api.get(f"/v1/images/{first['id']}/download").content == photo.read_bytes()
        assert httpx.get(url).status_code == 200
        for refused in (
            _upload(api, photo),
            api.post(f"/v1/images/{first['id']}/convert", json={"format": "png"}),
        ):
            assert refused.status_code == 507, refused.text
            assert refused.json()["code"] == "insufficient_storage"
            assert "disk space" in refused.json()["message"]
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["disk"].startswith("error: low free space")

        assert api.delete(f"/v1/images/{second['id']}").status_code == 204
        assert api.get("/v1/images").json()["data"] == [api.get(f"/v1/images/{first['id']}").json()]
        again = _upload(api, photo)
        assert again.status_code == 201, again.text
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    (usage,) = [total for total in server.keys.db.usage(date(2000, 1, 1)) if total.key_id == key.id]
    assert usage.requests == len(sent), "no request went uncounted, full disk or not"
    assert usage.images == 3


def test_the_storage_quota_per_key(make_server: Callable[..., Server], photo: Path) -> None:
    size = len(photo.read_bytes())
    server = make_server(max_stored_bytes_per_key=2 * size + 100)
    with server.client(server.new_key()) as api, server.client(server.new_key()) as other:
        first = _upload(api, photo).json()
        _upload(api, photo)
        refused = _upload(api, photo)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "quota_exceeded"
        assert "quota" in refused.json()["message"]
        derived = api.post(f"/v1/images/{first['id']}/convert", json={"format": "png"})
        assert derived.status_code == 403, derived.text
        assert _upload(other, photo).status_code == 201, "another key has its own quota"
        assert len(api.get("/v1/images").json()["data"]) == 2
        assert api.delete(f"/v1/images/{first['id']}").status_code == 204
        assert _upload(api, photo).status_code == 201


WRITES = {"upload", "remove-background", "convert", "resize", "crop", "rotate", "mirror",
          "blur", "modulate", "watermark"}  # fmt: skip


def test_every_writing_route_documents_507_and_the_quota(server: Server) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    checked = 0
    for path, item in document["paths"].items():
        last = path.rstrip("/").rsplit("/", 1)[-1]
        for method, operation in item.items():
            responses = set(operation["responses"])
            if (path == "/v1/images" and method == "post") or last in WRITES:
                assert {"403", "507"} <= responses, (method, path)
                checked += 1
            elif last in ("publish", "unpublish") or method == "delete":
                assert "507" in responses, (method, path)
                checked += 1
    assert checked == len(WRITES) + 4
