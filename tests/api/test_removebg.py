"""The remove.bg-compatible API (``POST /v1.0/removebg``, ``GET /v1.0/account``) over real
HTTP: each parameter, the headers, the JSON form, and remove.bg's errors."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from servers import Server, file_origin

URL = "/v1.0/removebg"


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def origin(photo: Path) -> Iterator[str]:
    with file_origin({"/car.jpg": photo.read_bytes(), "/green.png": _png((0, 200, 0))}) as served:
        yield served


@pytest.fixture(scope="module")
def rserver(make_server: Any, origin: str) -> Server:
    return make_server(fetch_trusted_origins=[origin], default_model="fast")  # type: ignore[no-any-return]


@pytest.fixture
def rb(rserver: Server) -> Iterator[httpx.Client]:
    key = rserver.new_key()
    with httpx.Client(base_url=rserver.url, headers={"X-Api-Key": key}, timeout=120) as client:
        yield client


def _image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def _post(client: httpx.Client, photo: Path, **fields: str) -> httpx.Response:
    return client.post(URL, files={"image_file": ("p.jpg", photo.read_bytes())}, data=fields)


def test_a_multipart_upload_answers_a_cutout_with_remove_bgs_headers(
    rb: httpx.Client, photo: Path
) -> None:
    response = _post(rb, photo)
    image = _image(response)
    assert response.headers["content-type"] == "image/png"  # auto: transparency -> PNG
    assert image.mode == "RGBA" and image.size == (480, 360)
    headers = response.headers
    assert (headers["x-width"], headers["x-height"]) == ("480", "360")
    assert headers["x-credits-charged"] == "0"
    assert headers["x-type"] == "other"
    left, top = int(headers["x-foreground-left"]), int(headers["x-foreground-top"])
    width, height = int(headers["x-foreground-width"]), int(headers["x-foreground-height"])
    alpha = np.asarray(image.getchannel("A"))
    assert 0 < width <= 480 and 0 < height <= 360
    assert alpha[top : top + height, left : left + width].max() > 200
    assert alpha[:, : max(0, left - 1)].max(initial=0) <= 8  # nothing left of the subject


def test_json_and_urlencoded_bodies_and_the_json_answer(
    rb: httpx.Client, photo: Path, origin: str
) -> None:
    b64 = base64.b64encode(photo.read_bytes()).decode()
    by_json = rb.post(URL, json={"image_file_b64": b64, "type": "car"})
    assert _image(by_json).size == (480, 360)
    assert by_json.headers["x-type"] == "car"
    by_form = rb.post(URL, data={"image_url": f"http://{origin}/car.jpg"})
    assert _image(by_form).size == (480, 360)
    as_json = rb.post(URL, json={"image_file_b64": b64}, headers={"Accept": "application/json"})
    assert as_json.status_code == 200, as_json.text
    data = as_json.json()["data"]
    result = Image.open(io.BytesIO(base64.b64decode(data["result_b64"])))
    assert result.size == (480, 360)
    assert data["foreground_width"] == int(as_json.headers["x-foreground-width"]) > 0
    assert {"foreground_top", "foreground_left", "foreground_height"} <= set(data)


@pytest.mark.parametrize(
    ("size", "max_pixels"),
    [("preview", 250_000), ("small", 250_000), ("regular", 250_000), ("medium", 1_500_000)],
)
def test_size_shrinks_the_input_and_never_enlarges(
    rb: httpx.Client, portrait: Path, size: str, max_pixels: int
) -> None:
    response = _post(rb, portrait, size=size, format="jpg")
    image = _image(response)
    width, height = image.size
    assert width * height <= max_pixels
    assert width * height == min(739 * 1134, max_pixels) or max_pixels - width * height < 3000
    assert abs(width / height - 739 / 1134) < 0.01


def test_format_zip_holds_a_colour_jpeg_and_an_alpha_png(rb: httpx.Client, photo: Path) -> None:
    response = _post(rb, photo, format="zip")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        color = Image.open(io.BytesIO(archive.read("color.jpg")))
        alpha = Image.open(io.BytesIO(archive.read("alpha.png")))
        assert (color.format, color.mode, color.size) == ("JPEG", "RGB", (480, 360))
        assert (alpha.format, alpha.mode, alpha.size) == ("PNG", "L", (480, 360))


@pytest.mark.parametrize(
    ("fields", "media", "mode"),
    [
        ({"format": "png"}, "image/png", "RGBA"),
        ({"format": "jpg"}, "image/jpeg", "RGB"),
        ({"format": "webp"}, "image/webp", "RGBA"),
        ({"channels": "alpha"}, "image/png", "L"),
        ({"bg_color": "81d4fa"}, "image/jpeg", "RGB"),  # auto: opaque result -> JPEG
    ],
)
def test_formats_channels_and_bg_color(
    rb: httpx.Client, photo: Path, fields: dict[str, str], media: str, mode: str
) -> None:
    response = _post(rb, photo, **fields)
    image = _image(response)
    assert response.headers["content-type"] == media
    assert image.mode == mode
    if "bg_color" in fields:
        corner = image.getpixel((0, 0))
        assert isinstance(corner, tuple)
        assert all(abs(a - b) < 12 for a, b in zip(corner, (0x81, 0xD4, 0xFA), strict=True))


def test_bg_image_url_and_file_fill_the_background(
    rb: httpx.Client, photo: Path, origin: str
) -> None:
    by_url = _post(rb, photo, bg_image_url=f"http://{origin}/green.png", format="png")
    by_file = rb.post(
        URL,
        files={
            "image_file": ("p.jpg", photo.read_bytes()),
            "bg_image_file": ("bg.png", _png((0, 200, 0), (30, 30))),
        },
        data={"format": "png"},
    )
    for response in (by_url, by_file):
        image = _image(response).convert("RGBA")
        assert image.size == (480, 360)
        r, g, b, a = image.getpixel((0, 0))  # type: ignore[misc]
        assert (a, r < 20, g > 180, b < 20) == (255, True, True, True)


def test_crop_crops_to_the_subject_with_its_margin(rb: httpx.Client, photo: Path) -> None:
    whole = _post(rb, photo)
    width = int(whole.headers["x-foreground-width"])
    height = int(whole.headers["x-foreground-height"])
    cropped = _image(_post(rb, photo, crop="true"))
    assert cropped.size == (width, height)
    margin = _image(_post(rb, photo, crop="true", crop_margin="10px"))
    assert margin.size == (width + 20, height + 20)
    two = _image(_post(rb, photo, crop="true", crop_margin="0px 10%"))
    assert two.size == (width + 2 * round(width * 0.1), height)


def test_roi_keeps_only_the_subject_inside(rb: httpx.Client, photo: Path) -> None:
    response = _post(rb, photo, roi="0% 0% 50% 100%")
    alpha = np.asarray(_image(response).getchannel("A"))
    assert alpha[:, 240:].max() == 0
    assert alpha[:, :240].max() > 200
    assert (
        int(response.headers["x-foreground-left"]) + int(response.headers["x-foreground-width"])
        <= 240
    )


def test_scale_and_position_place_the_subject(rb: httpx.Client, photo: Path) -> None:
    response = _post(rb, photo, scale="50%", position="0% 100%")
    image = _image(response)
    assert image.size == (480, 360)
    width, height = (
        int(response.headers["x-foreground-width"]),
        int(response.headers["x-foreground-height"]),
    )
    assert max(width / 480, height / 360) == pytest.approx(0.5, abs=0.03)
    assert int(response.headers["x-foreground-left"]) <= 2
    assert int(response.headers["x-foreground-top"]) + height >= 358


def test_semitransparency_false_gives_a_binary_alpha_and_add_shadow_a_shadow(
    rb: httpx.Client, photo: Path
) -> None:
    hard = np.asarray(_image(_post(rb, photo, semitransparency="false")).getchannel("A"))
    assert set(np.unique(hard).tolist()) <= {0, 255}
    plain = _post(rb, photo, semitransparency="false")
    shadow = _post(rb, photo, semitransparency="false", add_shadow="true", shadow_type="drop")
    plain_alpha = np.asarray(_image(plain).getchannel("A")).astype(int)
    shadow_alpha = np.asarray(_image(shadow).getchannel("A")).astype(int)
    added = (shadow_alpha > plain_alpha) & (plain_alpha == 0)
    assert added.sum() > 500  # a soft shadow where there was nothing
    assert 0 < shadow_alpha[added].max() < 200


@pytest.mark.parametrize(
    "fields",
    [
        {"size": "huge"},
        {"type": "robot"},
        {"type_level": "3"},
        {"format": "gif"},
        {"channels": "rgb"},
        {"crop": "maybe"},
        {"crop_margin": "10 px px"},
        {"scale": "5%"},
        {"position": "left"},
        {"roi": "0 0 100%"},
        {"bg_color": "notacolour"},
        {"shadow_type": "hard"},
        {"shadow_opacity": "101"},
        {"semitransparency": "yes"},
        {"model": "slow"},
        {"refine": "magic"},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_unknown_values_answer_remove_bgs_400(
    rb: httpx.Client, photo: Path, fields: dict[str, str]
) -> None:
    response = _post(rb, photo, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_parameters"
    assert next(iter(fields)) in error["detail"]
    assert error["title"]


@pytest.mark.parametrize(
    ("request_kwargs", "expected"),
    [
        ({"data": {"size": "auto"}}, "got none"),
        ({"json": {}}, "got none"),
        ({"json": {"image_url": "http://x.test/a.jpg", "image_file_b64": "AAAA"}}, "and"),
        ({"json": {"image_file_b64": "not base64!"}}, "base64"),
        ({"json": {"image_file_b64": base64.b64encode(b"hello").decode()}}, ""),
        ({"json": {"image_url": "http://127.0.0.1:1/a.jpg"}}, ""),  # SSRF: loopback refused
        ({"json": {"image_url": "http://169.254.169.254/latest/meta-data"}}, ""),
        ({"json": {"image_file_b64": "AAAA", "crop": "true"}}, "crop"),  # JSON wants a boolean
        ({"content": b"raw", "headers": {"Content-Type": "text/plain"}}, "multipart"),
    ],
    ids=[
        "no-input",
        "empty-json",
        "two-inputs",
        "bad-b64",
        "not-image",
        "ssrf",
        "metadata",
        "json-bool",
        "content-type",
    ],
)
def test_bad_inputs_answer_400(
    rb: httpx.Client, request_kwargs: dict[str, Any], expected: str
) -> None:
    response = rb.post(URL, **request_kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert {"title", "code", "detail"} <= set(error)
    assert expected in error["detail"]


@pytest.mark.parametrize("key", [None, "live_wrong"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_key_is_403(rserver: Server, photo: Path, key: str | None) -> None:
    headers = {"X-Api-Key": key} if key else {}
    for method, path in (("POST", URL), ("GET", "/v1.0/account")):
        response = httpx.request(method, rserver.url + path, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["code"] == "auth_failed"


def test_account_has_remove_bgs_shape_and_this_keys_usage(rb: httpx.Client, photo: Path) -> None:
    assert _post(rb, photo, size="preview").status_code == 200
    response = rb.get("/v1.0/account")
    assert response.status_code == 200, response.text
    attributes = response.json()["data"]["attributes"]
    assert attributes["credits"] == {"total": 0, "subscription": 0, "payg": 0, "enterprise": 0}
    assert attributes["api"]["sizes"] == "all"
    assert attributes["usage"]["images"] == 1
    assert attributes["usage"]["requests"] == 2


def test_rate_limit_is_429_with_retry_after(make_server: Any, photo: Path) -> None:
    limited: Server = make_server(rate_limit_per_minute=1, load_models=[])
    key = limited.new_key()
    headers = {"X-Api-Key": key}
    first = httpx.get(limited.url + "/v1.0/account", headers=headers)
    assert first.status_code == 200
    second = httpx.get(limited.url + "/v1.0/account", headers=headers)
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) > 0
    assert second.json()["errors"][0]["code"] == "rate_limit_exceeded"


def test_a_body_over_the_limit_is_remove_bgs_400(make_server: Any) -> None:
    small: Server = make_server(max_upload_bytes=10_000, load_models=[])
    key = small.new_key()
    response = httpx.post(
        small.url + URL,
        headers={"X-Api-Key": key},
        files={"image_file": ("big.jpg", b"\xff" * 200_000)},
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "file_too_large"


def test_a_background_of_extreme_shape_is_not_scaled_whole(
    rb: httpx.Client, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 x 100,000 px background covering a 480x360 photo: scaled whole first, it would be
    480 x 48,000,000 px (92 GB); only the part that shows is scaled (as `resize`'s cover)."""
    largest = [0]
    original = Image.Image.resize

    def resize(self: Image.Image, size: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        largest[0] = max(largest[0], size[0] * size[1])
        if size[0] * size[1] > 50_000_000:
            raise AssertionError(f"a resize to {size}")
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    response = rb.post(
        URL,
        files={
            "image_file": ("p.jpg", photo.read_bytes()),
            "bg_image_file": ("bg.png", _png((0, 200, 0), (1, 100_000))),
        },
        data={"format": "png"},
    )
    assert response.status_code == 200, response.text
    assert _image(response).size == (480, 360)
    assert largest[0] <= 480 * 360 * 4
