"""HEIC and AVIF, the formats phones save photos in, through every HTTP API: read with the
same header-first limits as the web formats, converted where the images API stores them,
and refused in words that name what was sent and what is taken."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pillow_heif
import pytest
from PIL import Image

from alphacut.engine.decode import pixels as decode_module
from servers import Server


def _heic(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(image).save(buffer, quality=90)
    return buffer.getvalue()


def _avif(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "AVIF", quality=90)
    return buffer.getvalue()


ENCODERS = {"HEIC": _heic, "AVIF": _avif}


def _claiming(data: bytes, width: int, height: int) -> bytes:
    """``data`` with every ``ispe`` (image size) box saying width x height."""
    patched = bytearray(data)
    at = patched.find(b"ispe")
    while at != -1:
        patched[at + 8 : at + 16] = struct.pack(">II", width, height)
        at = patched.find(b"ispe", at + 4)
    return bytes(patched)


def _mae(a: Image.Image, b: Image.Image) -> float:
    first = np.asarray(a.convert("RGB"), np.float32)
    second = np.asarray(b.convert("RGB"), np.float32)
    return float(np.abs(first - second).mean())


@pytest.fixture(scope="module")
def pserver(make_server: Any) -> Server:
    return make_server(default_model="fast")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def car(photo: Path) -> Image.Image:
    image = Image.open(photo)
    image.load()
    return image


@pytest.mark.parametrize("name", ENCODERS)
def test_the_images_api_stores_a_phone_photo_as_jpeg(
    pserver: Server, car: Image.Image, name: str
) -> None:
    data = ENCODERS[name](car)
    with pserver.client(pserver.new_key()) as api:
        response = api.post(
            "/v1/images/upload", data={"name": "phone"}, files={"image": ("a.heic", data)}
        )
        assert response.status_code == 201, response.text
        image = response.json()
        assert (image["format"], image["width"], image["height"]) == ("jpeg", 480, 360)
        stored = api.get(f"/v1/images/{image['id']}/download")
        assert stored.status_code == 200
        assert stored.headers["content-type"] == "image/jpeg"
        kept = Image.open(io.BytesIO(stored.content))
        assert kept.format == "JPEG" and kept.size == (480, 360)
        assert _mae(kept, car) < 6, "the pixels, not some other picture"
        # And it is cut out like any other stored photo.
        cut = api.post(f"/v1/images/{image['id']}/remove-background", json={})
        assert cut.status_code == 201, cut.text


def test_a_transparent_avif_is_stored_as_png(pserver: Server, car: Image.Image) -> None:
    rgba = car.convert("RGBA")
    alpha = np.full((360, 480), 255, np.uint8)
    alpha[:, :100] = 0
    rgba.putalpha(Image.fromarray(alpha, "L"))
    with pserver.client(pserver.new_key()) as api:
        response = api.post(
            "/v1/images/upload", data={"name": "a"}, files={"image": ("a", _avif(rgba))}
        )
        assert response.status_code == 201, response.text
        assert response.json()["format"] == "png"
        stored = api.get(f"/v1/images/{response.json()['id']}/download")
        kept = Image.open(io.BytesIO(stored.content))
        assert kept.mode == "RGBA"
        assert kept.getpixel((10, 10))[3] == 0 and kept.getpixel((300, 10))[3] == 255  # type: ignore[index]


@pytest.mark.parametrize("name", ENCODERS)
def test_every_cut_out_dialect_reads_heic_and_avif(
    pserver: Server, car: Image.Image, name: str
) -> None:
    data = ENCODERS[name](car)
    key = pserver.new_key()
    removebg = httpx.post(
        pserver.url + "/v1.0/removebg",
        headers={"X-Api-Key": key},
        files={"image_file": ("a", data)},
        data={"size": "preview"},
        timeout=120,
    )
    assert removebg.status_code == 200, removebg.text
    assert Image.open(io.BytesIO(removebg.content)).size == (480, 360)

    rembg = httpx.post(
        pserver.url + "/api/remove", headers={"x-api-key": key}, files={"file": ("a", data)}
    )
    assert rembg.status_code == 200, rembg.text
    assert Image.open(io.BytesIO(rembg.content)).mode == "RGBA"

    ximilar = httpx.post(
        pserver.url + "/removebg/fast/removebg",
        headers={"Authorization": f"Token {key}"},
        json={"records": [{"_base64": base64.b64encode(data).decode()}]},
        timeout=120,
    )
    assert ximilar.status_code == 200, ximilar.text
    assert ximilar.json()["records"][0]["_status"]["code"] == 200


@pytest.mark.parametrize("name", ENCODERS)
def test_a_phone_photo_over_the_pixel_limit_is_refused_from_its_header(
    pserver: Server, car: Image.Image, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 x 100,000 in its ispe box: 413 naming the limit, before libheif or libavif
    parse anything, in every dialect."""
    bomb = _claiming(ENCODERS[name](car.resize((32, 24))), 100_000, 100_000)

    def no_parser(*_args: object) -> Image.Image:
        raise AssertionError("the decoder's parser was reached")

    monkeypatch.setattr(decode_module, "_open", no_parser)
    key = pserver.new_key()
    upload = httpx.post(
        pserver.url + "/v1/images/upload",
        headers={"x-api-key": key},
        data={"name": "bomb"},
        files={"image": ("a", bomb)},
    )
    assert upload.status_code == 413, upload.text
    assert "50 MP" in upload.json()["message"]
    removebg = httpx.post(
        pserver.url + "/v1.0/removebg", headers={"X-Api-Key": key}, files={"image_file": bomb}
    )
    assert removebg.status_code == 400, removebg.text
    assert removebg.json()["errors"][0]["code"] == "file_too_large"
    rembg = httpx.post(
        pserver.url + "/api/remove", headers={"x-api-key": key}, files={"file": bomb}
    )
    assert rembg.status_code == 413, rembg.text


@pytest.mark.parametrize(("fmt", "named"), [("BMP", "BMP"), ("TIFF", "TIFF"), ("GIF", "GIF")])
def test_a_format_the_apis_do_not_take_is_named_plainly(
    pserver: Server, car: Image.Image, fmt: str, named: str
) -> None:
    buffer = io.BytesIO()
    car.save(buffer, fmt)
    with pserver.client(pserver.new_key()) as api:
        response = api.post(
            "/v1/images/upload", data={"name": "a"}, files={"image": ("a", buffer.getvalue())}
        )
    assert response.status_code == 415
    message = response.json()["message"]
    assert message.startswith(f"unsupported image format (the data is {named}); ")
    assert message.count("(") == message.count(")") == 1, "nothing nested in the parentheses"
    assert "JPEG, PNG, WebP, HEIC/HEIF and AVIF" in message
