"""A corpus of hostile files, each refused with a clear 4xx and nothing stored; and the
awkward-but-valid files, each accepted and cut out."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from imagetools import png16, png_chunk, png_header
from servers import Server


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_with_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + png_chunk(kind, body) + png[iend:]


def _mpo(image: Image.Image) -> bytes:
    """A phone-style JPEG: the primary image, its MPF index, the second image it lists."""
    return _encoded(image, "MPO", save_all=True, append_images=[image.rotate(90)])


def _mpo_misreporting(image: Image.Image) -> bytes:
    """An MPF JPEG whose index lists the second image one byte shorter than it is."""
    mpo = bytearray(_mpo(image))
    second = mpo.index(b"\xff\xd9\xff\xd8") + 2
    entry = mpo.index(struct.pack("<LL", len(mpo) - second, second - mpo.index(b"MPF\0") - 4))
    mpo[entry : entry + 4] = struct.pack("<L", len(mpo) - second - 1)
    return bytes(mpo)


def _zero_bomb(width: int, height: int) -> bytes:
    """A greyscale PNG of zeros: a few hundred kB that would inflate to width x height."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return png_header(width, height, 8, 0) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def _corpus(photo: Path) -> dict[str, tuple[bytes, int, str]]:
    with Image.open(photo) as opened:
        image = opened.convert("RGB")
    jpeg, png, webp = photo.read_bytes(), _png(image), _encoded(image, "WEBP")
    zip_file = b"PK\x03\x04" + b"\x14\x00" * 10 + b"secret.txt" + b"PK\x05\x06" + b"\x00" * 18
    return {
        "zero bytes": (b"", 415, "empty"),
        "random bytes": (os.urandom(8192), 415, "not a recognised image"),
        "truncated JPEG": (jpeg[: len(jpeg) // 2], 422, "truncated"),
        "truncated PNG": (png[: len(png) // 2], 422, "truncated"),
        "truncated WebP": (webp[: len(webp) // 2], 422, "truncated"),
        "PNG header 100000x100000": (png_header(100_000, 100_000) + b"\0" * 64, 413, "MP"),
        "JPEG header 65535x65535": (_jpeg_claiming(jpeg, 65_535, 65_535), 413, "MP"),
        "PNG that inflates to 400 MP": (_zero_bomb(20_000, 20_000), 413, "MP"),
        "zTXt chunk bomb": (
            _png_with_chunk(png, b"zTXt", b"k\x00\x00" + zlib.compress(b"\0" * 50_000_000, 9)),
            422,
            "",
        ),
        "EXIF bomb": (_png_with_chunk(png, b"eXIf", b"MM\x00*" + b"\x00" * 3_000_000), 422, "EXIF"),
        "SVG": (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            415,
            "SVG",
        ),
        "XML": (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>', 415, "SVG/XML"),
        "HTML": (b"<!DOCTYPE html><html><script>alert(1)</script></html>", 415, "HTML"),
        "GIF": (_encoded(image, "GIF"), 415, "GIF"),
        "BMP": (_encoded(image, "BMP"), 415, "BMP"),
        # Read by the command line and library, not the HTTP APIs (docs/cli.md).
        "BMP: the accepted formats named": (
            _encoded(image, "BMP"),
            415,
            "accepted here: JPEG, PNG, WebP, HEIC/HEIF and AVIF; BMP and TIFF are read by",
        ),
        "TIFF": (_encoded(image, "TIFF"), 415, "TIFF"),
        "AVIF brand without an image": (
            b"\x00\x00\x00\x1cftypavif" + b"\x00" * 64,
            422,
            "could not read the AVIF image",
        ),
        "MP4": (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, 415, "ISO media file of brand isom"),
        "PDF": (b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", 415, "PDF"),
        "ZIP": (zip_file, 415, "ZIP"),
        "JPEG that is also a ZIP": (jpeg + zip_file, 415, "two formats"),
        "JPEG, FF D8 FF, then a ZIP": (jpeg + b"\xff\xd8\xff" + zip_file, 415, "two formats"),
        "MPF JPEG followed by a ZIP": (_mpo(image) + zip_file, 415, "two formats"),
        "MPF JPEG whose index lists a wrong size": (_mpo_misreporting(image), 415, "two formats"),
        "PNG followed by HTML": (
            png + b"<html><script>alert(1)</script></html>",
            415,
            "two formats",
        ),
        "WebP followed by a script": (webp + b"<script>x</script>", 415, "two formats"),
    }


@pytest.fixture(scope="module")
def hostile_server(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture(scope="module")
def lenient_server(make_server: Callable[..., Server]) -> Server:
    """One that never refuses a photo as having no subject: for the tests of limits that
    send plain colours."""
    return make_server(no_subject_share=0.0)


def _stored_files(server: Server) -> list[Path]:
    return [p for p in (server.settings.data_dir / "blobs").rglob("*") if p.is_file()]


def test_hostile_uploads_are_refused_and_nothing_is_stored(
    hostile_server: Server, photo: Path
) -> None:
    corpus = _corpus(photo)
    with hostile_server.client(hostile_server.new_key()) as api:
        for name, (data, status, words) in corpus.items():
            for filename, content_type in [("photo.jpg", "image/jpeg"), ("x.png", "image/png")]:
                response = api.post(
                    "/v1/images/upload",
                    data={"name": "hostile"},
                    files={"image": (filename, data, content_type)},
                )
                assert response.status_code == status, (name, response.text)
                body = response.json()
                assert words in body["message"], (name, body["message"])
                assert "Traceback" not in response.text
        assert api.get("/v1/images").json()["data"] == []
    assert _stored_files(hostile_server) == []


def test_hostile_records_fail_alone_in_the_batch_api(hostile_server: Server, photo: Path) -> None:
    corpus = _corpus(photo)
    records = [
        {"_id": name, "_base64": base64.b64encode(data).decode()}
        for name, (data, _status, _words) in corpus.items()
    ]
    good = {"_id": "good", "_base64": base64.b64encode(photo.read_bytes()).decode()}
    records = [*records[:9], good]
    response = httpx.post(
        f"{hostile_server.url}/removebg/fast/removebg",
        json={"records": records},
        headers={"Authorization": f"Token {hostile_server.new_key()}"},
        timeout=300,
    )
    assert response.status_code == 200
    by_id = {record["_id"]: record["_status"] for record in response.json()["records"]}
    assert by_id.pop("good")["code"] == 200
    for name, status in by_id.items():
        assert status["code"] == corpus[name][1], (name, status)


def _valid_cases() -> dict[str, Callable[[Image.Image], bytes]]:
    def panorama(image: Image.Image) -> bytes:
        return _encoded(image.resize((10_000, 50)), "JPEG", quality=90)

    def transparent(image: Image.Image) -> bytes:
        return _png(Image.new("RGBA", (64, 48), (0, 0, 0, 0)))

    return {
        "16-bit PNG": lambda im: png16(np.asarray(im).astype(np.uint16) * 257),
        "CMYK JPEG": lambda im: _encoded(im.convert("CMYK"), "JPEG"),
        "1x1 pixel": lambda im: _png(Image.new("RGB", (1, 1), (200, 10, 10))),
        "10000x50 panorama": panorama,
        "fully transparent PNG": transparent,
        "real PNG named .jpg": _png,
        "JPEG with MPF second image": lambda im: _encoded(
            im, "MPO", save_all=True, append_images=[im.rotate(90)]
        ),
    }


# Valid images with nothing to cut out: refused as having no subject (issue 25), cleanly.
_NO_SUBJECT = {"1x1 pixel", "fully transparent PNG"}


@pytest.mark.parametrize("case", list(_valid_cases()))
def test_awkward_but_valid_images_succeed(hostile_server: Server, photo: Path, case: str) -> None:
    with Image.open(photo) as opened:
        data = _valid_cases()[case](opened.convert("RGB"))
    with hostile_server.client(hostile_server.new_key()) as api:
        upload = api.post(
            "/v1/images/upload",
            data={"name": "edge"},
            files={"image": ("x.jpg", data, "image/gif")},
        )
        assert upload.status_code == 201, (case, upload.text)
        image = upload.json()
        cut = api.post(f"/v1/images/{image['id']}/remove-background", json={"model": "fast"})
        if case in _NO_SUBJECT:
            assert cut.status_code == 422 and cut.json()["code"] == "unknown_foreground", cut.text
            return
        assert cut.status_code == 201, (case, cut.text)
        result = cut.json()
        assert (result["width"], result["height"]) == (image["width"], image["height"])


def test_json_bombs(hostile_server: Server) -> None:
    key = hostile_server.new_key()
    deep = b"[" * 200_000 + b"]" * 200_000
    for path in ("/v1/images", "/removebg/fast/removebg"):
        response = httpx.post(
            f"{hostile_server.url}{path}",
            content=deep,
            headers={"x-api-key": key, "content-type": "application/json"},
        )
        assert response.status_code in (400, 413), (path, response.text)
    huge = b'{"name": "x", "url": "' + b"a" * 2_000_000 + b'"}'
    response = httpx.post(
        f"{hostile_server.url}/v1/images",
        content=huge,
        headers={"x-api-key": key, "content-type": "application/json"},
    )
    assert response.status_code == 413


def test_base64_over_the_limit_fails_its_record(
    make_server: Callable[..., Server], photo: Path
) -> None:
    small = make_server(max_input_bytes=50_000)
    big = base64.b64encode(b"\xff\xd8\xff" + b"\0" * 100_000).decode()
    response = httpx.post(
        f"{small.url}/removebg/fast/removebg",
        json={
            "records": [
                {"_base64": big},
                {"_base64": base64.b64encode(photo.read_bytes()).decode()},
            ]
        },
        headers={"Authorization": f"Token {small.new_key()}"},
        timeout=300,
    )
    codes = [record["_status"]["code"] for record in response.json()["records"]]
    assert codes == [413, 413], "the photo (60 kB) is also over this server's 50 kB limit"


@pytest.mark.parametrize(
    ("case", "data", "files"),
    [
        ("two files", {"name": "x"}, [("image", b"a"), ("image", b"b")]),
        ("a thousand fields", {f"f{i}": "v" for i in range(1000)} | {"name": "x"}, []),
        ("a 1 MB text part", {"name": "x", "note": "n" * 1_000_000}, []),
    ],
)
def test_multipart_forms_over_the_part_limits_are_refused(
    hostile_server: Server, photo: Path, case: str, data: dict[str, str], files: list[Any]
) -> None:
    parts = files or [("image", photo.read_bytes())]
    before = _stored_files(hostile_server)
    with hostile_server.client(hostile_server.new_key()) as api:
        response = api.post(
            "/v1/images/upload",
            data=data,
            files=[(field, ("p.jpg", body, "image/jpeg")) for field, body in parts],
        )
        assert response.status_code == 400, (case, response.text)
        body = response.json()
        assert body["code"] == "bad_request" and "maximum" in body["message"].lower(), (case, body)
        assert api.get("/v1/images").json()["data"] == []
    assert _stored_files(hostile_server) == before


def test_results_larger_than_their_format_holds_are_a_clear_422(hostile_server: Server) -> None:
    """WebP holds 16,383 pixels on a side: a 20,000 px wide result is refused before encoding
    (not a 500 from the encoder), with the formats that would work."""
    wide = _png(Image.new("RGB", (20_000, 2), (200, 10, 10)))
    with hostile_server.client(hostile_server.new_key()) as api:
        source = api.post("/v1/images/upload", data={"name": "w"}, files={"image": ("w", wide)})
        assert source.status_code == 201, source.text
        convert = f"/v1/images/{source.json()['id']}/convert"
        refused = api.post(convert, json={"format": "webp"})
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] == "format_limit_exceeded"
        assert "20000x2" in body["message"] and "16,383" in body["message"]
        assert "png or jpg" in body["message"]
        assert api.post(convert, json={"format": "jpg"}).status_code == 201
        assert len(api.get("/v1/images").json()["data"]) == 2  # nothing stored for the 422


def test_a_ximilar_record_too_large_for_webp_fails_alone(
    lenient_server: Server, photo: Path
) -> None:
    hostile_server = lenient_server  # a plain strip: no subject, which is not what is tested
    wide = _png(Image.new("RGB", (16_400, 8), (200, 10, 10)))
    records = [
        {"_id": "wide", "_base64": base64.b64encode(wide).decode()},
        {"_id": "photo", "_base64": base64.b64encode(photo.read_bytes()).decode()},
    ]
    response = httpx.post(
        f"{hostile_server.url}/removebg/fast/removebg",
        json={"records": records, "image_format": "webp"},
        headers={"Authorization": f"Token {hostile_server.new_key()}"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    by_id = {record["_id"]: record for record in response.json()["records"]}
    assert by_id["photo"]["_status"]["code"] == 200
    assert by_id["photo"]["_output_url"].endswith(".webp")
    status = by_id["wide"]["_status"]
    assert status["code"] == 422, status
    assert "16,383" in status["error_description"] and "_output_url" not in by_id["wide"]
