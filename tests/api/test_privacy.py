"""Uploads are stored without their metadata (GPS, serial numbers, comments, XMP, IPTC, text
chunks), pixels, ICC profile and orientation untouched; ``ALPHACUT_KEEP_METADATA=true``
stores them byte for byte. Derived images never carry their source's metadata."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from alphacut.engine.decode import Limits, decode
from metadatafiles import BUILDERS, PLANTED, SECRETS, assert_no_metadata
from servers import Server

LIMITS = Limits(max_bytes=25 * 1024 * 1024, max_pixels=50_000_000)


@pytest.fixture(scope="module")
def original(photo: Path) -> Image.Image:
    with Image.open(photo) as opened:
        return opened.convert("RGB").resize((240, 180))


@pytest.fixture(scope="module")
def keeping_server(make_server: Callable[..., Server]) -> Server:
    return make_server(keep_metadata=True)


def _upload(api: httpx.Client, data: bytes) -> dict[str, Any]:
    response = api.post("/v1/images/upload", data={"name": "p"}, files={"image": ("p", data)})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(decode(data, LIMITS).image)


@pytest.mark.parametrize("fmt", BUILDERS)
def test_published_originals_carry_no_metadata(
    server: Server, original: Image.Image, fmt: str
) -> None:
    data = BUILDERS[fmt](original)  # orientation 6: stored sideways, shown upright
    assert all(secret in data for secret in PLANTED[fmt])
    with server.client(server.new_key()) as api:
        image = _upload(api, data)
        stored = api.get(f"/v1/images/{image['id']}/download").content
        public = httpx.get(api.post(f"/v1/images/{image['id']}/publish").json()["url"]).content
    assert public == stored
    assert image["size"] == len(stored) < len(data)
    assert (image["width"], image["height"]) == (180, 240)
    assert_no_metadata(stored, orientation=6)
    assert np.array_equal(_pixels(stored), _pixels(data))  # same pixels, same way up


@pytest.mark.parametrize("fmt", BUILDERS)
def test_keep_metadata_stores_uploads_byte_for_byte(
    keeping_server: Server, original: Image.Image, fmt: str
) -> None:
    data = BUILDERS[fmt](original)
    with keeping_server.client(keeping_server.new_key()) as api:
        image = _upload(api, data)
        assert api.get(f"/v1/images/{image['id']}/download").content == data
        assert image["size"] == len(data)


@pytest.mark.parametrize(
    ("fmt", "path", "body"),
    [
        ("jpeg", "convert", {"format": "jpg"}),
        ("png", "convert", {"format": "jpeg"}),
        ("jpeg", "resize", {"width": 100}),
        ("webp", "convert", {"format": "webp", "quality": 80}),
    ],
)
def test_derived_images_carry_no_metadata_of_their_source(
    keeping_server: Server, original: Image.Image, fmt: str, path: str, body: dict[str, Any]
) -> None:
    """On the server that keeps originals verbatim, so the source still has it all."""
    with keeping_server.client(keeping_server.new_key()) as api:
        source = _upload(api, BUILDERS[fmt](original))
        made = api.post(f"/v1/images/{source['id']}/{path}", json=body)
        assert made.status_code == 201, made.text
        derived = api.get(f"/v1/images/{made.json()['id']}/download").content
    for secret in SECRETS:
        assert secret not in derived, secret
    with Image.open(io.BytesIO(derived)) as opened:
        assert "comment" not in opened.info and not opened.getexif()
        assert opened.height > opened.width  # turned upright once, not left to EXIF
