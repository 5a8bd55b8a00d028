"""Names in downloads, publishing under concurrency, and what revoking a key ends."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import update

from alphacut.storage.database import Database, utcnow
from alphacut.storage.models import ApiKeyRow
from servers import Server

Upload = Any
EXE = str(Path(sys.executable).with_name("alphacut"))


def _filename(response: httpx.Response) -> str:
    """The file name a client reads from Content-Disposition (RFC 6266: ``filename*`` wins)."""
    header = response.headers["content-disposition"]
    header.encode("ascii")  # only ASCII goes on the wire
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)", header, re.IGNORECASE)
    if extended:
        return unquote(extended.group(1), encoding="utf-8", errors="strict")
    plain = re.search(r'filename="([^"\\]*)"', header)
    assert plain, header
    return plain.group(1)


# Names and Content-Disposition ---------------------------------------------------------------

ACCEPTED = [
    "中文",
    "Ωmega",
    "שלום עולם",
    "\u202egnp.exe",  # right-to-left override
    "smile 😀🎉",
    'say "cheese"',
    "back\\slash",
    "semi;colon=x",
    "percent%20",
    "../x",
    "..",
    "a/b",
    "x" * 30,
    "é" * 30,
]
REFUSED = ["nul\x00byte", "line\nfeed", "carriage\rreturn", "a\r\nSet-Cookie: x=1", "tab\t", "\x7f"]


@pytest.mark.parametrize("name", ACCEPTED)
def test_any_name_downloads_and_publishes(upload: Upload, api: httpx.Client, name: str) -> None:
    image = upload(name=name)
    assert image["name"] == name
    download = api.get(f"/v1/images/{image['id']}/download")
    assert download.status_code == 200, download.text
    assert _filename(download) == f"{name}.jpg"
    fallback = re.search(r'filename="([^"]*)"', download.headers["content-disposition"])
    assert fallback and re.fullmatch(r"[A-Za-z0-9._-]+", fallback.group(1)), fallback
    assert not fallback.group(1).startswith(".")
    url = api.post(f"/v1/images/{image['id']}/publish").json()["url"]
    public = httpx.get(url)
    assert public.status_code == 200, public.text
    assert _filename(public) == f"{name}.jpg"
    # A derived image inherits the name.
    derived = api.post(f"/v1/images/{image['id']}/convert", json={"format": "png"})
    assert derived.status_code == 201 and derived.json()["name"] == name
    assert _filename(api.get(f"/v1/images/{derived.json()['id']}/download")) == f"{name}.png"


@pytest.mark.parametrize("name", REFUSED)
def test_names_with_control_characters_are_refused(
    api: httpx.Client, photo: Path, upload: Upload, name: str
) -> None:
    response = api.post(
        "/v1/images/upload", data={"name": name}, files={"image": ("x", photo.read_bytes())}
    )
    assert response.status_code == 400, response.text
    assert "control characters" in response.json()["message"]
    image = upload()
    operation = api.post(f"/v1/images/{image['id']}/convert", json={"format": "png", "name": name})
    assert operation.status_code == 400, operation.text
    assert api.get("/v1/images").json()["data"] == [image], "nothing else was stored"


# Publishing -----------------------------------------------------------------------------------


def test_concurrent_publishes_all_answer_the_one_live_url(
    upload: Upload, api: httpx.Client
) -> None:
    threads = 16
    for _ in range(4):
        image = upload()
        barrier = threading.Barrier(threads)

        def publish(
            _: int, image_id: str = image["id"], barrier: threading.Barrier = barrier
        ) -> httpx.Response:
            barrier.wait(timeout=30)
            return api.post(f"/v1/images/{image_id}/publish")

        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(publish, range(threads)))
        assert {answer.status_code for answer in answers} == {200}
        urls = {answer.json()["url"] for answer in answers}
        assert len(urls) == 1, urls
        assert httpx.get(urls.pop()).status_code == 200
    # Unpublishing at the same time as publishing leaves one consistent state.
    image = upload()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: api.post(f"/v1/images/{image['id']}/{('publish', 'unpublish')[i % 2]}"),
                range(32),
            )
        )
    final = api.get(f"/v1/images/{image['id']}").json()["url"]
    if final is not None:
        assert httpx.get(final).status_code == 200


# Revoking a key ends its public addresses -----------------------------------------------------


def _published_and_result(server: Server, secret: str, photo: Path) -> tuple[str, str, str]:
    """Publishes an upload and makes a Ximilar result: (image id, /p/ URL, /results/ URL)."""
    with server.client(secret) as client:
        image = client.post(
            "/v1/images/upload", data={"name": "p"}, files={"image": ("x", photo.read_bytes())}
        ).json()
        url = client.post(f"/v1/images/{image['id']}/publish").json()["url"]
        record = {"_base64": base64.b64encode(photo.read_bytes()).decode()}
        answer = client.post("/removebg/fast/removebg", json={"records": [record]})
        result = answer.json()["records"][0]["_output_url"]
    assert httpx.get(url).status_code == 200 and httpx.get(result).status_code == 200
    return image["id"], url, result


def test_revoking_a_key_unpublishes_its_images_and_ends_its_results(
    server: Server, photo: Path
) -> None:
    secret, key = server.keys.create("revoked", "test")
    image_id, url, result = _published_and_result(server, secret, photo)
    server.keys.revoke(key.id)
    assert httpx.get(url).status_code == 404
    assert httpx.get(result).status_code == 404
    record = server.keys.db.image(key.id, image_id)
    assert record is not None and record.public_token is None, "unpublished with the revoke"


def test_revoking_from_the_command_line(server: Server, photo: Path) -> None:
    secret, key = server.keys.create("cli", "test")
    _image_id, url, result = _published_and_result(server, secret, photo)
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(server.settings.data_dir)}
    revoked = subprocess.run(
        [EXE, "keys", "revoke", key.id], capture_output=True, text=True, env=env, timeout=120
    )
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(url).status_code == 404
    assert httpx.get(result).status_code == 404


def test_a_revoked_keys_images_are_never_served_even_if_still_marked_published(
    server: Server, photo: Path
) -> None:
    """Defence in depth: a key revoked by hand in the database (no unpublish) serves nothing."""
    secret, key = server.keys.create("by hand", "test")
    _image_id, url, result = _published_and_result(server, secret, photo)
    db = Database(server.settings.resolved_database_url)
    with db.engine.begin() as connection:
        connection.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(revoked_at=utcnow())
        )
    db.close()
    assert httpx.get(url).status_code == 404
    assert httpx.get(result).status_code == 404
