"""``POST /v1/images/{id}/background`` (alphacut extension, issue 26): a colour, a photo (maybe
blurred) or a drop shadow under a stored cut-out, by the remove.bg dialect's own engine code,
over real HTTP."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from alphacut.config import Settings
from servers import Server, start_server

Upload = Callable[..., dict[str, Any]]
SIZE = (120, 80)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _cutout() -> Image.Image:
    """A red square (20..60 x 20..60) on nothing: a cut-out as the editor uploads one."""
    image = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    image.paste((200, 30, 30, 255), (20, 20, 60, 60))
    return image


def _stripes() -> Image.Image:
    """Black and white columns 4 px wide, 240 x 160: detail that a blur melts."""
    columns = (np.arange(240) // 4) % 2 * 255
    return Image.fromarray(np.tile(columns.astype(np.uint8), (160, 1))).convert("RGB")


def _apply(api: httpx.Client, image_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/v1/images/{image_id}/background", json=body)


def _made(api: httpx.Client, response: httpx.Response) -> tuple[dict[str, Any], Image.Image]:
    assert response.status_code == 201, response.text
    body = response.json()
    image = Image.open(io.BytesIO(api.get(f"/v1/images/{body['id']}/download").content))
    image.load()
    assert (body["width"], body["height"]) == image.size
    assert body["format"] == str(image.format).lower()
    return body, image


def _error(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and words in body["message"], body
    assert "Traceback" not in response.text


def _rgb(image: Image.Image) -> npt.NDArray[np.int16]:
    return np.asarray(image.convert("RGB")).astype(np.int16)


@pytest.fixture
def cutout(upload: Upload) -> dict[str, Any]:
    return upload(data=_png(_cutout()), name="square")


def test_colour_fills_what_was_transparent(api: httpx.Client, cutout: dict[str, Any]) -> None:
    response = _apply(api, cutout["id"], {"color": "#00ff00", "format": "png"})
    assert response.headers["x-image-processing-usage"] == "1"
    body, image = _made(api, response)
    assert (body["format"], body["name"], image.size) == ("png", "square", SIZE)
    pixels = _rgb(image)
    assert tuple(pixels[5, 5]) == (0, 255, 0), "the background is the colour"
    assert tuple(pixels[40, 40]) == (200, 30, 30), "the subject is untouched"
    # auto: an opaque result is a JPEG; the colour there within JPEG's error
    named = _apply(api, cutout["id"], {"color": "green", "name": "on green"})
    body, image = _made(api, named)
    assert (body["format"], body["name"]) == ("jpeg", "on green")
    assert np.abs(_rgb(image)[5, 5] - (0, 128, 0)).max() <= 3
    # a colour with alpha keeps transparency: auto answers a PNG
    body, image = _made(api, _apply(api, cutout["id"], {"color": "0000ff80"}))
    assert body["format"] == "png"
    assert tuple(np.asarray(image)[5, 5]) == (0, 0, 255, 128)


def test_a_photo_covers_the_canvas(
    api: httpx.Client, upload: Upload, cutout: dict[str, Any]
) -> None:
    halves = Image.new("RGB", (60, 20), (0, 0, 255))
    halves.paste((255, 255, 0), (30, 0, 60, 20))  # left blue, right yellow
    photo = upload(data=_png(halves), name="halves")
    _body, image = _made(
        api, _apply(api, cutout["id"], {"background_image_id": photo["id"], "format": "png"})
    )
    assert image.size == SIZE and image.mode == "RGB"
    pixels = _rgb(image)
    # 60x20 covering 120x80 scales by 4 and keeps the middle 120 px of 240
    assert np.abs(pixels[70, 2] - (0, 0, 255)).max() <= 2, "blue on the left"
    assert np.abs(pixels[70, 117] - (255, 255, 0)).max() <= 2, "yellow on the right"
    assert tuple(pixels[40, 40]) == (200, 30, 30)
    assert api.get(f"/v1/images/{photo['id']}").status_code == 200, "the photo is kept"


def test_blur_melts_the_background_photo(
    api: httpx.Client, upload: Upload, cutout: dict[str, Any]
) -> None:
    photo = upload(data=_png(_stripes()), name="stripes")
    sharp = _rgb(_made(api, _apply(api, cutout["id"], {"background_image_id": photo["id"]}))[1])
    soft = _rgb(
        _made(api, _apply(api, cutout["id"], {"background_image_id": photo["id"], "blur": 6}))[1]
    )
    background = np.ones(SIZE[::-1], bool)
    background[15:65, 15:65] = False
    assert sharp[background].std() > 100, "stripes, black and white"
    assert soft[background].std() < 25, "blurred to grey"
    assert np.abs(soft[40, 40] - (200, 30, 30)).max() <= 3, "the subject stays sharp"


def test_shadow_alone_stays_transparent(api: httpx.Client, cutout: dict[str, Any]) -> None:
    body, image = _made(api, _apply(api, cutout["id"], {"shadow": True}))
    assert (body["format"], image.mode) == ("png", "RGBA")
    alpha = np.asarray(image.getchannel("A"))
    assert alpha[61, 40] > 0, "a shadow just below the square"
    assert alpha[5, 5] == 0 and alpha[40, 40] == 255
    faint = np.asarray(
        _made(api, _apply(api, cutout["id"], {"shadow": True, "shadow_opacity": 10}))[1]
    )
    assert 0 < faint[61, 40, 3] < alpha[61, 40]


def test_the_same_pixels_as_remove_bg(
    api: httpx.Client, upload: Upload, key: str, server: Server, photo: Path
) -> None:
    """One engine function: remove.bg's bg_color + add_shadow on a photo, and this operation on
    the images API's cut-out of that photo, agree pixel for pixel."""
    image = upload()
    cut = api.post(f"/v1/images/{image['id']}/remove-background", json={"model": "fast"})
    assert cut.status_code == 201, cut.text
    ours = _made(
        api,
        _apply(api, cut.json()["id"], {"color": "#3366cc", "shadow": True, "format": "png"}),
    )[1]
    with server.client() as client:
        theirs = client.post(
            "/v1.0/removebg",
            headers={"X-Api-Key": key},
            data={"model": "fast", "bg_color": "3366cc", "add_shadow": "true", "format": "png"},
            files={"image_file": ("car.jpg", photo.read_bytes())},
        )
    assert theirs.status_code == 200, theirs.text
    reference = Image.open(io.BytesIO(theirs.content))
    assert np.array_equal(_rgb(ours), _rgb(reference))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"color": "notacolour"}, "colour"),
        ({"color": "#12"}, "colour"),
        ({"blur": 1000, "background_image_id": "image_x"}, "blur"),
        ({"blur": -1, "background_image_id": "image_x"}, "blur"),
        ({"blur": 5}, "background_image_id"),
        ({}, "give a color"),
        ({"shadow": "yes"}, "shadow"),
        ({"shadow": True, "shadow_opacity": 101}, "shadow_opacity"),
        ({"color": "red", "shadow_opacity": 30}, "send shadow: true"),
        ({"color": "red", "format": "tiff"}, "auto, "),
        ({"color": "red", "format": "gif"}, "format"),
        ({"color": "red", "name": ""}, "name"),
        ({"color": "red", "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_400(
    api: httpx.Client, cutout: dict[str, Any], body: dict[str, Any], words: str
) -> None:
    _error(_apply(api, cutout["id"], body), 400, words)


def test_both_a_colour_and_a_photo_is_400(
    api: httpx.Client, upload: Upload, cutout: dict[str, Any]
) -> None:
    photo = upload(data=_png(_stripes()))
    both = {"color": "red", "background_image_id": photo["id"]}
    _error(_apply(api, cutout["id"], both), 400, "at most one background")


def test_only_a_cut_out_of_ones_own(
    api: httpx.Client, upload: Upload, server: Server, cutout: dict[str, Any]
) -> None:
    jpeg = upload()  # the car photo
    _error(_apply(api, jpeg["id"], {"color": "red"}), 400, "not a cut-out")
    opaque = upload(data=_png(Image.new("RGBA", (10, 10), (1, 2, 3, 255))))
    _error(_apply(api, opaque["id"], {"color": "red"}), 400, "not a cut-out")
    _error(_apply(api, "image_" + "a" * 24, {"color": "red"}), 404, "not found")
    missing = {"background_image_id": "image_" + "b" * 24}
    _error(_apply(api, cutout["id"], missing), 404, "background image")
    with server.client(server.new_key()) as other:
        theirs = other.post(
            "/v1/images/upload",
            data={"name": "theirs"},
            files={"image": ("x", _png(_cutout()))},
        ).json()
        _error(_apply(other, cutout["id"], {"color": "red"}), 404, "not found")
    _error(_apply(api, theirs["id"], {"color": "red"}), 404, "not found")
    foreign = {"background_image_id": theirs["id"]}
    _error(_apply(api, cutout["id"], foreign), 404, "background image")


def test_a_background_photo_over_the_pixel_limit_is_413(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A photo stored while the limit was higher is refused once it is lower, before any
    work (the limit on photos holds for backgrounds too)."""
    data_dir = tmp_path_factory.mktemp("limit")
    before = start_server(Settings(data_dir=data_dir), wait_for_models=False)
    try:
        secret = before.new_key()
        with before.client(secret) as api:
            ids = [
                api.post(
                    "/v1/images/upload", data={"name": name}, files={"image": ("x", data)}
                ).json()["id"]
                for name, data in (("cut", _png(_cutout())), ("big", _png(_stripes())))
            ]
    finally:
        before.stop()
    after = start_server(
        Settings(data_dir=data_dir, max_input_pixels=20_000), wait_for_models=False
    )
    try:
        with after.client(secret) as api:
            response = _apply(api, ids[0], {"background_image_id": ids[1]})
            _error(response, 413, "the limit is 0.02 MP")
            assert _apply(api, ids[0], {"color": "red"}).status_code == 201
    finally:
        after.stop()
