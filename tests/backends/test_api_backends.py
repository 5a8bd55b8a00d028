"""A slice of the API tests on servers whose state is in PostgreSQL + S3: two replicas
sharing one database and one bucket, one serving files through itself, the other by
redirecting to presigned URLs of the store."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from alphacut.storage.database import Database
from alphacut.storage.s3 import S3BlobStore
from fleetservers import S3, Postgres
from servers import Server, start_server


@dataclass
class Fleet:
    plain: Server  # serves files itself
    presigned: Server  # redirects to presigned URLs
    db: Database
    blobs: S3BlobStore
    s3: S3


@pytest.fixture(scope="module")
def fleet(postgres: Postgres, s3: S3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    from alphacut.config import Settings

    url, bucket = postgres.new_database(), s3.new_bucket()
    db = Database(url)
    db.migrate()  # what `alphacut db upgrade` does, once, before the replicas start
    servers = [
        start_server(
            Settings(
                data_dir=tmp_path_factory.mktemp("replica"),
                database_url=url,
                blob_url=f"s3://{bucket}/fleet",
                blob_presigned_urls=presigned,
            )
        )
        for presigned in (False, True)
    ]
    yield Fleet(servers[0], servers[1], db, S3BlobStore(bucket, "fleet"), s3)
    for server in servers:
        server.stop()
        server.keys.db.close()  # psycopg warns about connections left to the GC
    db.close()


def test_images_api_keeps_its_state_in_postgres_and_s3(fleet: Fleet, photo: Path) -> None:
    secret = fleet.plain.new_key()
    with fleet.plain.client(secret) as api, fleet.presigned.client(secret) as other:
        created = api.post(
            "/v1/images/upload", data={"name": "car"}, files={"image": ("x", photo.read_bytes())}
        )
        assert created.status_code == 201, created.text
        image = created.json()
        page = fleet.db.page(_key_id(fleet, secret), 10, None)
        assert page is not None
        (row,) = page.items
        assert row.id == image["id"]
        stored = fleet.blobs.get(row.blob_key)  # the file is an object in the bucket
        assert api.get(f"/v1/images/{image['id']}").json() == image
        assert other.get(f"/v1/images/{image['id']}").json() == image, "one shared store"
        download = api.get(f"/v1/images/{image['id']}/download")
        assert download.status_code == 200 and download.content == stored
        assert download.headers["content-type"] == "image/jpeg"
        url = api.post(f"/v1/images/{image['id']}/publish").json()["url"]
        public = httpx.get(url)
        assert public.status_code == 200 and public.content == stored
        assert api.delete(f"/v1/images/{image['id']}").status_code in (200, 204)
        assert not fleet.blobs.exists(row.blob_key), "the object is deleted with the image"
        assert api.get(f"/v1/images/{image['id']}").status_code == 404
        assert httpx.get(url).status_code == 404


def _key_id(fleet: Fleet, secret: str) -> str:
    key = fleet.plain.keys.authenticate(secret)
    assert key is not None
    return key.id


def _result_url(server: Server, secret: str, photo: Path) -> str:
    record = {"_base64": base64.b64encode(photo.read_bytes()).decode()}
    answer = httpx.post(
        f"{server.url}/removebg/fast/removebg",
        json={"records": [record]},
        headers={"Authorization": f"Token {secret}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["records"]
    assert result["_status"]["code"] == 200, result
    return str(result["_output_url"])


def test_ximilar_result_urls_are_served_from_s3(fleet: Fleet, photo: Path) -> None:
    url = _result_url(fleet.plain, fleet.plain.new_key(), photo)
    result = httpx.get(url)
    assert result.status_code == 200 and result.content.startswith(b"\x89PNG")
    token = url.rsplit("/", 1)[1].split(".")[0]
    assert fleet.blobs.get(f"results/{token[:2]}/{token}.png") == result.content


def test_presigned_urls_redirect_to_the_store(fleet: Fleet, photo: Path) -> None:
    secret = fleet.presigned.new_key()
    with fleet.presigned.client(secret) as api:
        image = api.post(
            "/v1/images/upload", data={"name": "car"}, files={"image": ("x", photo.read_bytes())}
        ).json()
        stored = api.get(f"/v1/images/{image['id']}/download").content
        url = api.post(f"/v1/images/{image['id']}/publish").json()["url"]
    redirect = httpx.get(url)
    assert redirect.status_code == 307 and redirect.headers["cache-control"] == "no-store"
    location = redirect.headers["location"]
    assert location.startswith(f"{fleet.s3.endpoint}/") and "X-Amz-Expires=60" in location
    direct = httpx.get(location)  # the store serves it, with alphacut's headers
    assert direct.status_code == 200 and direct.content == stored
    assert direct.headers["content-type"] == "image/jpeg"
    assert direct.headers["content-disposition"] == 'inline; filename="car.jpg"'

    result = httpx.get(_result_url(fleet.presigned, secret, photo))
    assert result.status_code == 307
    png = httpx.get(result.headers["location"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")

    with fleet.presigned.client(secret) as api:
        api.delete(f"/v1/images/{image['id']}")
    assert httpx.get(url).status_code == 404, "no redirect for what is gone"


def test_presigned_urls_can_name_a_public_endpoint(
    fleet: Fleet, photo: Path, tmp_path: Path
) -> None:
    """``localhost`` stands for a public name of the store (a proxy or CDN that passes the
    Host on): the redirect names it, never the endpoint alphacut itself uses, and works."""
    public = fleet.s3.endpoint.replace("127.0.0.1", "localhost")
    server = start_server(
        fleet.plain.settings.model_copy(
            update={
                "data_dir": tmp_path,
                "blob_presigned_urls": True,
                "blob_presigned_endpoint_url": public,
                "load_models": [],
            }
        )
    )
    try:
        secret = server.new_key()
        with server.client(secret) as api:
            image = api.post(
                "/v1/images/upload",
                data={"name": "car"},
                files={"image": ("x", photo.read_bytes())},
            ).json()
            stored = api.get(f"/v1/images/{image['id']}/download").content
            url = api.post(f"/v1/images/{image['id']}/publish").json()["url"]
        location = httpx.get(url).headers["location"]
        assert location.startswith(f"{public}/") and "127.0.0.1" not in location
        direct = httpx.get(location)
        assert direct.status_code == 200 and direct.content == stored
    finally:
        server.stop()


def test_readyz_asks_the_bucket_and_the_database(fleet: Fleet) -> None:
    checks = httpx.get(f"{fleet.plain.url}/readyz").json()["checks"]
    assert checks["database"] == "ok" and checks["storage"] == "ok" and checks["disk"] == "ok"
