"""The IMG Processing-compatible images API over real HTTP: shapes, flows, isolation, errors."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from alphacut.storage.factory import open_blob_store
from servers import Server

Upload = Callable[..., dict[str, Any]]
ID = re.compile(r"image_[a-z0-9]{24}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _check_image_object(body: dict[str, Any], *, cut_out: bool = False) -> None:
    """The IMG Processing API's exact fields; a cut-out adds alphacut's two (issue 25)."""
    fields = {"id", "name", "url", "width", "height", "format", "size", "created_at"}
    assert set(body) == (fields | {"confidence", "doubtful"} if cut_out else fields)
    assert ID.fullmatch(body["id"])
    assert STAMP.fullmatch(body["created_at"])
    created = datetime.strptime(body["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)
    assert body["format"] in ("png", "jpeg", "webp")
    assert isinstance(body["width"], int) and isinstance(body["height"], int)
    assert isinstance(body["size"], int) and body["size"] > 0


def _error(response: httpx.Response, status: int, words: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert {"type", "error", "status", "message"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in response.text
    assert words in body["message"], body["message"]
    return body  # type: ignore[no-any-return]


def _operation(api: httpx.Client, image_id: str, name: str, body: Any) -> httpx.Response:
    return api.post(f"/v1/images/{image_id}/{name}", json=body)


# Creation and the Image object -------------------------------------------------------------


def test_upload_returns_the_exact_image_object(api: httpx.Client, photo: Path) -> None:
    data = photo.read_bytes()
    response = api.post(
        "/v1/images/upload", data={"name": "my car"}, files={"image": ("car.jpg", data)}
    )
    assert response.status_code == 201
    assert response.headers["x-image-processing-usage"] == "1"
    body = response.json()
    _check_image_object(body)
    assert body["name"] == "my car"
    assert body["url"] is None
    assert (body["width"], body["height"], body["format"]) == (480, 360, "jpeg")
    assert body["size"] == len(data)
    assert api.get(f"/v1/images/{body['id']}").json() == body
    download = api.get(f"/v1/images/{body['id']}/download")
    assert download.content == data
    assert download.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("fmt", "pil_format", "media"),
    [("png", "PNG", "image/png"), ("webp", "WEBP", "image/webp")],
)
def test_upload_png_and_webp(
    upload: Upload, api: httpx.Client, photo: Path, fmt: str, pil_format: str, media: str
) -> None:
    buffer = io.BytesIO()
    Image.open(photo).save(buffer, pil_format)
    body = upload(data=buffer.getvalue())
    assert body["format"] == fmt
    assert api.get(f"/v1/images/{body['id']}/download").headers["content-type"] == media


@pytest.mark.parametrize(
    ("form", "files", "status", "words"),
    [
        ({}, {"image": ("a", b"x")}, 400, "name"),
        ({"name": ""}, {"image": ("a", b"x")}, 400, "name"),
        ({"name": "x" * 31}, {"image": ("a", b"x")}, 400, "name"),
        ({"name": "ok"}, None, 400, "image"),
        (
            {"name": "ok"},
            {"image": ("a.png", b"not an image at all")},
            415,
            "JPEG, PNG, WebP, HEIC/HEIF and AVIF",
        ),
        ({"name": "ok"}, {"image": ("a.gif", b"GIF89a" + b"\0" * 50)}, 415, "GIF"),
        ({"name": "ok"}, {"image": ("a.jpg", b"\xff\xd8\xff" + b"\0" * 80)}, 422, "truncated"),
        ({"name": "ok"}, {"image": ("a", b"")}, 415, "empty"),
    ],
)
def test_bad_uploads(
    api: httpx.Client, form: dict[str, str], files: Any, status: int, words: str
) -> None:
    response = api.post("/v1/images/upload", data=form, files=files)
    body = _error(response, status, words if status != 400 else "")
    if status == 400:
        assert any(words in line for line in body["errors"])


def test_upload_over_the_limit_is_413(api: httpx.Client, server: Server) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * (server.settings.max_upload_bytes + 10)
    response = api.post("/v1/images/upload", data={"name": "big"}, files={"image": ("b", data)})
    assert response.status_code == 413


def test_names_default_to_the_source_and_can_be_overridden(
    upload: Upload, api: httpx.Client
) -> None:
    source = upload(name="original")
    same = _operation(api, source["id"], "mirror", {"mode": "horizontal"}).json()
    other = _operation(api, source["id"], "mirror", {"mode": "vertical", "name": "renamed"})
    assert same["name"] == "original"
    assert other.json()["name"] == "renamed"
    assert same["id"] != source["id"]


# Listing ------------------------------------------------------------------------------------


def test_pagination_newest_first_with_links(upload: Upload, api: httpx.Client) -> None:
    ids = [upload(name=f"n{i}")["id"] for i in range(5)]
    newest_first = ids[::-1]
    first = api.get("/v1/images", params={"take": 2}).json()
    assert [image["id"] for image in first["data"]] == newest_first[:2]
    assert first["links"]["previous"] is None
    second = httpx.get(first["links"]["next"], headers=api.headers).json()
    assert [image["id"] for image in second["data"]] == newest_first[2:4]
    third = httpx.get(second["links"]["next"], headers=api.headers).json()
    assert [image["id"] for image in third["data"]] == newest_first[4:]
    assert third["links"]["next"] is None
    back = httpx.get(third["links"]["previous"], headers=api.headers).json()
    assert [image["id"] for image in back["data"]] == newest_first[2:4]
    default = api.get("/v1/images").json()
    assert len(default["data"]) == 5
    for item in default["data"]:
        _check_image_object(item)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"take": 0}, "take"),
        ({"take": 101}, "take"),
        ({"take": "x"}, "take"),
        ({"from": "nope"}, "from"),
    ],
)
def test_bad_list_parameters(api: httpx.Client, params: dict[str, Any], words: str) -> None:
    _error(api.get("/v1/images", params=params), 400, words)


# Isolation and auth -------------------------------------------------------------------------


def test_another_keys_images_are_invisible(server: Server, upload: Upload) -> None:
    mine = upload()
    with server.client(server.new_key()) as other:
        for method, path in [
            ("GET", f"/v1/images/{mine['id']}"),
            ("GET", f"/v1/images/{mine['id']}/download"),
            ("DELETE", f"/v1/images/{mine['id']}"),
            ("POST", f"/v1/images/{mine['id']}/publish"),
        ]:
            response = other.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.json() == other.get(
                "/v1/images/image_doesnotexist000000000000"
            ).json() | {"message": response.json()["message"]}
        assert _operation(other, mine["id"], "mirror", {"mode": "both"}).status_code == 404
        assert other.get("/v1/images").json()["data"] == []
        assert _error(other.get("/v1/images", params={"from": mine["id"]}), 400, "from")


@pytest.mark.parametrize("headers", [{}, {"x-api-key": ""}, {"x-api-key": "test_wrong"}])
def test_missing_or_bad_key_is_401(server: Server, headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.url}/v1/images", headers=headers)
    _error(response, 401, "key")


def test_revoked_key_is_401(server: Server) -> None:
    secret = server.new_key()
    key = server.keys.authenticate(secret)
    assert key is not None
    with server.client(secret) as client:
        assert client.get("/v1/images").status_code == 200
        server.keys.revoke(key.id)
        _error(client.get("/v1/images"), 401, "revoked")


# Delete, download, publish ------------------------------------------------------------------


def test_delete_removes_row_file_and_public_url(
    upload: Upload, api: httpx.Client, server: Server
) -> None:
    image = upload()
    url = api.post(f"/v1/images/{image['id']}/publish").json()["url"]
    assert httpx.get(url).status_code == 200
    store = open_blob_store(server.settings)  # local files, or a bucket on a fleet
    files_before = [key for key in store.stored_keys() if image["id"] in key]
    assert len(files_before) == 1
    assert api.delete(f"/v1/images/{image['id']}").status_code == 204
    assert not any(store.exists(key) for key in files_before)
    _error(api.get(f"/v1/images/{image['id']}"), 404)
    _error(api.delete(f"/v1/images/{image['id']}"), 404)
    assert httpx.get(url).status_code == 404


def test_publish_and_unpublish(upload: Upload, api: httpx.Client, photo: Path) -> None:
    image = upload()
    published = api.post(f"/v1/images/{image['id']}/publish")
    assert published.status_code == 200
    assert "x-image-processing-usage" not in published.headers
    url = published.json()["url"]
    assert url.startswith(api.base_url.join("/p/").__str__())
    assert len(url.rsplit("/", 1)[1]) >= 40, "the public token must be unguessable"
    public = httpx.get(url)  # no key
    assert public.status_code == 200
    assert public.content == photo.read_bytes()
    assert public.headers["content-type"] == "image/jpeg"
    assert "public" in public.headers["cache-control"]
    assert api.post(f"/v1/images/{image['id']}/publish").json()["url"] == url  # idempotent
    assert api.get(f"/v1/images/{image['id']}").json()["url"] == url
    unpublished = api.post(f"/v1/images/{image['id']}/unpublish").json()
    assert unpublished["url"] is None
    _error(httpx.get(url), 404)
    assert api.get(f"/v1/images/{image['id']}/download").status_code == 200


def test_a_404_quotes_at_most_64_characters_of_the_id(api: httpx.Client) -> None:
    long_id = "image_" + "z" * 2000
    body = _error(api.get(f"/v1/images/{long_id}"), 404, "not found")
    assert "z" * 58 + "..." in body["message"] and "z" * 59 not in body["message"], body
    body = _error(api.post(f"/v1/images/{long_id}/publish"), 404, "not found")
    assert len(body["message"]) < 100, body


def test_unknown_public_tokens(server: Server) -> None:
    _error(httpx.get(f"{server.url}/p/{'a' * 43}"), 404)
    _error(httpx.get(f"{server.url}/p/{'a' * 100}"), 404)


# Operations -------------------------------------------------------------------------------


def _pixels(api: httpx.Client, image: dict[str, Any]) -> np.ndarray:
    return np.asarray(_image(api.get(f"/v1/images/{image['id']}/download").content))


@pytest.mark.parametrize(
    ("body", "size"),
    [
        ({"width": 240, "height": 100}, (240, 100)),
        ({"width": 240}, (240, 180)),
        ({"height": 90}, (120, 90)),
        ({"width": 200, "height": 200, "fit": "contain"}, (200, 200)),
        ({"width": 200, "height": 200, "fit": "cover", "position": "top-left"}, (200, 200)),
    ],
)
def test_resize(
    upload: Upload, api: httpx.Client, body: dict[str, Any], size: tuple[int, int]
) -> None:
    response = _operation(api, upload()["id"], "resize", body)
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["width"], result["height"]) == size
    assert _image(api.get(f"/v1/images/{result['id']}/download").content).size == size


def test_resize_contain_letterbox(upload: Upload, api: httpx.Client) -> None:
    jpeg = upload()
    boxed = _operation(
        api, jpeg["id"], "resize",
        {"width": 200, "height": 200, "fit": "contain", "letterbox_color": "#ff0000"},
    ).json()  # fmt: skip
    pixels = _pixels(api, boxed)
    assert pixels[2, 100, 0] > 200 and pixels[2, 100, 1] < 40  # top band is red
    png = _operation(api, jpeg["id"], "convert", {"format": "png"}).json()
    clear = _operation(api, png["id"], "resize", {"width": 200, "height": 200, "fit": "contain"})
    assert _pixels(api, clear.json())[2, 100, 3] == 0  # transparent by default for PNG


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "width, a height or both"),
        ({"width": 0}, "width"),
        ({"width": 10000}, "width"),
        ({"width": 10, "fit": "stretch"}, "fit"),
        ({"width": 10, "position": "middle"}, "position"),
        ({"width": 10, "fit": "contain", "letterbox_color": "nope"}, "colour"),
        ({"width": 10, "extra": 1}, "extra"),
    ],
)
def test_bad_resize(upload: Upload, api: httpx.Client, body: dict[str, Any], words: str) -> None:
    _error(_operation(api, upload()["id"], "resize", body), 400, words)


def test_resize_result_over_the_pixel_limit(upload: Upload, api: httpx.Client) -> None:
    _error(_operation(api, upload()["id"], "resize", {"width": 9999, "height": 9999}), 413, "MP")


def test_crop(upload: Upload, api: httpx.Client, photo: Path) -> None:
    image = upload()
    result = _operation(api, image["id"], "crop", {"x1": 10, "y1": 20, "x2": 110, "y2": 70}).json()
    assert (result["width"], result["height"]) == (100, 50)
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=int)
    assert np.abs(_pixels(api, result).astype(int) - original[20:70, 10:110]).mean() < 6
    _error(_operation(api, image["id"], "crop", {"x1": 10, "y1": 0, "x2": 5, "y2": 10}), 400, "x1")
    _error(
        _operation(api, image["id"], "crop", {"x1": 0, "y1": 0, "x2": 481, "y2": 10}), 400, "480"
    )
    _error(_operation(api, image["id"], "crop", {"x1": 0, "y1": 0, "x2": 10}), 400, "y2")


def test_rotate(upload: Upload, api: httpx.Client) -> None:
    image = upload()
    quarter = _operation(api, image["id"], "rotate", {"angle": 90}).json()
    assert (quarter["width"], quarter["height"]) == (360, 480)
    radians = _operation(
        api, image["id"], "rotate", {"angle": 1.5707963267948966, "unit": "radians"}
    )
    assert (radians.json()["width"], radians.json()["height"]) == (360, 480)
    png = _operation(api, image["id"], "convert", {"format": "png"}).json()
    tilted = _operation(api, png["id"], "rotate", {"angle": 30}).json()
    assert tilted["width"] > 480 and tilted["height"] > 360
    assert _pixels(api, tilted)[0, 0, 3] == 0  # uncovered corner is transparent


def test_rotate_turns_clockwise(api: httpx.Client, upload: Upload) -> None:
    marked = np.zeros((20, 40, 3), dtype=np.uint8)
    marked[:, :5] = 255  # a white band on the left edge
    buffer = io.BytesIO()
    Image.fromarray(marked).save(buffer, "PNG")
    image = upload(data=buffer.getvalue())
    turned = _pixels(api, _operation(api, image["id"], "rotate", {"angle": 90}).json())
    assert turned[:5].mean() > 250, "clockwise: the left edge ends on top"


@pytest.mark.parametrize(
    ("mode", "transform"),
    [
        ("horizontal", lambda a: a[:, ::-1]),
        ("vertical", lambda a: a[::-1]),
        ("both", lambda a: a[::-1, ::-1]),
    ],
)
def test_mirror(
    upload: Upload, api: httpx.Client, mode: str, transform: Callable[[np.ndarray], np.ndarray]
) -> None:
    png = _operation(api, upload()["id"], "convert", {"format": "png"}).json()
    result = _operation(api, png["id"], "mirror", {"mode": mode}).json()
    np.testing.assert_array_equal(_pixels(api, result), transform(_pixels(api, png)))


def test_blur_and_modulate(upload: Upload, api: httpx.Client) -> None:
    png = _operation(api, upload()["id"], "convert", {"format": "png"}).json()
    original = _pixels(api, png).astype(float)
    blurred = _pixels(api, _operation(api, png["id"], "blur", {"sigma": 5}).json()).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(original, axis=1)).mean() / 2
    default = api.post(f"/v1/images/{png['id']}/blur")  # no body: all defaults
    assert default.status_code == 201
    _error(_operation(api, png["id"], "blur", {"sigma": 0.1}), 400, "sigma")
    brighter = _operation(api, png["id"], "modulate", {"brightness": 40}).json()
    assert _pixels(api, brighter).mean() > original.mean() + 10
    grey = _pixels(api, _operation(api, png["id"], "modulate", {"saturation": 0}).json())
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() <= 2
    exposed = _operation(api, png["id"], "modulate", {"exposure": 2.0}).json()
    assert _pixels(api, exposed).mean() > original.mean()
    _error(_operation(api, png["id"], "modulate", {"brightness": 101}), 400, "brightness")


def test_watermark(upload: Upload, api: httpx.Client, server: Server) -> None:
    base = _operation(api, upload()["id"], "convert", {"format": "png"}).json()
    mark_png = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 255)).save(mark_png, "PNG")
    mark = upload(data=mark_png.getvalue())
    once = _operation(
        api, base["id"], "watermark", {"watermarks": [{"id": mark["id"], "left": 5, "top": 7}]}
    )
    assert once.status_code == 201, once.text
    pixels = _pixels(api, once.json())
    assert tuple(pixels[7, 5][:3]) == (255, 0, 0) and tuple(pixels[17, 15][:3]) != (255, 0, 0)
    strip = {"id": mark["id"], "width": 4, "height": 4, "repetition_mode": "repeat_x"}
    tiled = _operation(api, base["id"], "watermark", {"watermarks": [strip]}).json()
    row = _pixels(api, tiled)[1]
    assert (row[:, 0] == 255).all() and (row[:, 1] == 0).all(), "red across the whole top row"
    with server.client(server.new_key()) as other:
        foreign = other.post(
            "/v1/images/upload", data={"name": "x"}, files={"image": ("x", mark_png.getvalue())}
        ).json()
    missing = _operation(api, base["id"], "watermark", {"watermarks": [{"id": foreign["id"]}]})
    _error(missing, 404, "watermark")
    _error(_operation(api, base["id"], "watermark", {"watermarks": []}), 400, "watermarks")
    six = {"watermarks": [{"id": mark["id"]}] * 6}
    _error(_operation(api, base["id"], "watermark", six), 400, "watermarks")


@pytest.mark.parametrize(
    ("fmt", "expected"), [("png", "png"), ("jpg", "jpeg"), ("jpeg", "jpeg"), ("webp", "webp")]
)
def test_convert(upload: Upload, api: httpx.Client, fmt: str, expected: str) -> None:
    result = _operation(api, upload()["id"], "convert", {"format": fmt, "quality": 80}).json()
    assert result["format"] == expected
    decoded = _image(api.get(f"/v1/images/{result['id']}/download").content)
    assert str(decoded.format).lower() == expected


def test_convert_quality_changes_size(upload: Upload, api: httpx.Client) -> None:
    image = upload()
    low = _operation(api, image["id"], "convert", {"format": "jpeg", "quality": 10}).json()
    high = _operation(api, image["id"], "convert", {"format": "jpeg", "quality": 95}).json()
    assert low["size"] < high["size"] / 2
    _error(_operation(api, image["id"], "convert", {"format": "gif"}), 400, "format")
    _error(_operation(api, image["id"], "convert", {"format": "png", "quality": 0}), 400, "quality")


def test_remove_background(upload: Upload, api: httpx.Client, server: Server) -> None:
    image = upload(name="car")
    response = _operation(api, image["id"], "remove-background", {"model": "fast"})
    assert response.status_code == 201, response.text
    assert response.headers["x-image-processing-usage"] == "2"
    result = response.json()
    _check_image_object(result, cut_out=True)
    assert (result["format"], result["width"], result["height"], result["name"]) == (
        "png",
        480,
        360,
        "car",
    )
    cut = _image(api.get(f"/v1/images/{result['id']}/download").content)
    assert cut.mode == "RGBA"
    alpha = np.asarray(cut.getchannel("A"))
    assert (alpha == 0).mean() > 0.2 and (alpha > 200).mean() > 0.1
    assert api.get(f"/v1/images/{image['id']}").json() == image, "the source is unchanged"
    named = _operation(api, image["id"], "remove-background", {"name": "cut", "model": "fast"})
    assert named.json()["name"] == "cut"
    _error(_operation(api, image["id"], "remove-background", {"model": "huge"}), 400, "model")


def test_remove_background_default_model_is_precise(upload: Upload, api: httpx.Client) -> None:
    response = api.post(f"/v1/images/{upload()['id']}/remove-background", json={})
    assert response.status_code == 201
    assert response.json()["format"] == "png"


# Request bodies ---------------------------------------------------------------------------


def test_json_content_type_with_empty_body_is_400(upload: Upload, api: httpx.Client) -> None:
    image = upload()
    response = api.post(
        f"/v1/images/{image['id']}/remove-background",
        headers={"content-type": "application/json"},
        content=b"",
    )
    body = _error(response, 400, "empty body")
    assert body["code"] == "empty_body"


def test_non_json_and_malformed_bodies(upload: Upload, api: httpx.Client) -> None:
    image = upload()
    path = f"/v1/images/{image['id']}/mirror"
    _error(
        api.post(path, content=b"mode=both", headers={"content-type": "text/plain"}), 415, "JSON"
    )
    _error(api.post(path, content=b"{not json", headers={"content-type": "application/json"}), 400)
    _error(api.post(path, json={"mode": "sideways"}), 400, "mode")
    _error(api.post(path, json=["mode", "both"]), 400)


def test_create_from_url_validation(api: httpx.Client) -> None:
    _error(api.post("/v1/images", json={"name": "x"}), 400, "url")
    _error(api.post("/v1/images", json={"url": "https://example.com/a.jpg"}), 400, "name")
    _error(api.post("/v1/images", json={"name": "x", "url": "file:///etc/passwd"}), 400, "http")


# Usage, not-offered endpoints, docs, health ------------------------------------------------


def test_usage_is_counted_per_key(server: Server, photo: Path) -> None:
    secret = server.new_key()
    key = server.keys.authenticate(secret)
    assert key is not None
    with server.client(secret) as client:
        image = client.post(
            "/v1/images/upload", data={"name": "a"}, files={"image": ("a", photo.read_bytes())}
        ).json()
        client.post(f"/v1/images/{image['id']}/mirror", json={"mode": "both"})
        client.post(f"/v1/images/{image['id']}/remove-background", json={"model": "fast"})
        client.get("/v1/images")
    totals = {total.key_id: total for total in server.keys.usage()}
    assert totals[key.id].images == 1 + 1 + 2
    assert totals[key.id].requests == 4


@pytest.mark.parametrize("path", ["classify", "extract-formatted-text", "visualize"])
def test_ai_endpoints_other_than_background_removal_are_501(
    upload: Upload, api: httpx.Client, path: str
) -> None:
    _error(api.post(f"/v1/images/{upload()['id']}/{path}", json={}), 501, "not offered")


def test_imagine_is_501(api: httpx.Client) -> None:
    _error(
        api.post("/v1/images/imagine", json={"name": "x", "prompt": "a cat"}), 501, "not offered"
    )


def test_openapi_docs_and_health(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/images/{image_id}/remove-background" in spec["paths"]
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200
    assert "cdn" not in docs.text.lower() and "swagger-ui-bundle.js" in docs.text
    bundle = re.search(r'src="([^"]*swagger-ui-bundle\.js)"', docs.text)
    assert bundle and httpx.get(f"{server.url}{bundle.group(1)}").status_code == 200
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{server.url}/readyz")
    for _ in range(600):  # the models load at start-up; until then "model": "loading", 503
        if ready.status_code == 200 or ready.json()["checks"]["model"] != "loading":
            break
        time.sleep(0.1)
        ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
        "disk": "ok",
        "model": "ok",
    }
    # each loaded model file with its runtime, precision and device (issue 24) and what its
    # session says it runs on (issue 27); on a fleet, as the workers report theirs
    models = ready.json()["models"]
    assert models and all(
        re.fullmatch(
            r"(openvino (fp32|bf16) cpu \[CPU\]|onnxruntime fp32 cpu \[CPUExecutionProvider\]"
            r"|onnxruntime fp32 cuda \[CUDAExecutionProvider, CPUExecutionProvider\])",
            value,
        )
        for value in models.values()
    ), models
    assert all(name.endswith(".onnx") for name in models)


def test_security_headers_and_unknown_routes(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/nothing-here")
    _error(response, 404)
    assert response.headers["x-content-type-options"] == "nosniff"
    _error(httpx.put(f"{server.url}/v1/images"), 405)


def test_docs_say_which_routes_alphacut_does_not_offer(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    unavailable = {
        path
        for path, item in spec["paths"].items()
        for operation in item.values()
        if operation.get("deprecated") and operation["summary"].startswith("Not available")
    }
    assert unavailable == {
        "/v1/images/imagine",
        "/v1/images/{image_id}/classify",
        "/v1/images/{image_id}/extract-formatted-text",
        "/v1/images/{image_id}/visualize",
    }
    names = set(spec["components"]["schemas"])
    assert "UploadForm" in names and not any(name.startswith("Body_") for name in names)
    assert "#/components/schemas/Body_" not in httpx.get(f"{server.url}/openapi.json").text
