"""rembg's HTTP server API (``GET /api/remove?url=...``, ``POST /api/remove``) over real HTTP:
the requests rembg's README shows, each option and how it maps, the keys, and the 4xx.

rembg ships no HTTP client of its own (its Python API runs the model in-process, and its
Gradio UI calls that API directly, not the server), so the client code paths here are its
README's: the two curl commands, run by curl itself with the one header alphacut adds, and the
same requests from Python.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from alphacut import Remover
from alphacut.config import Settings
from servers import Server, file_origin

URL = "/api/remove"
SIZE = (480, 360)  # the car photo's
UPLOAD_LIMIT = 200_000  # the car photo (60 kB) fits, the portrait (216 kB) does not


@pytest.fixture(scope="module")
def origin(photo: Path) -> Iterator[str]:
    with file_origin({"/car.jpg": photo.read_bytes()}) as served:
        yield served


@pytest.fixture(scope="module")
def rserver(make_server: Any, origin: str) -> Server:
    """The fast model by default, one plain pass (so that each refinement shows), and a small
    upload limit."""
    server: Server = make_server(
        fetch_trusted_origins=[origin],
        default_model="fast",
        load_models=["fast"],
        refine="none",
        max_upload_bytes=UPLOAD_LIMIT,
    )
    return server


@pytest.fixture
def rkey(rserver: Server) -> str:
    return rserver.new_key()


@pytest.fixture
def rb(rserver: Server, rkey: str) -> Iterator[httpx.Client]:
    with rserver.client(rkey) as client:
        yield client


def _post(client: httpx.Client, photo: Path, query: str = "", **fields: str) -> httpx.Response:
    return client.post(URL + query, files={"file": ("p.jpg", photo.read_bytes())}, data=fields)


def _png(response: httpx.Response) -> Image.Image:
    """The answer, which must be a PNG of the photo's size."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert (image.format, image.size) == ("PNG", SIZE)
    return image


def _pixels(response: httpx.Response) -> npt.NDArray[np.int16]:
    return np.asarray(_png(response), dtype=np.int16)


def _error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    return str(body["message"])


def _check_cutout(image: Image.Image) -> None:
    """A cut-out of the car: its body opaque, the corners transparent."""
    assert image.mode == "RGBA"
    alpha = np.asarray(image.getchannel("A"))
    assert alpha[190:270, 60:340].mean() > 200
    assert max(alpha[0, 0], alpha[0, -1], alpha[-1, 0], alpha[-1, -1]) < 16


# The README's requests -------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_commands_work_with_the_key_header_added(
    rserver: Server, rkey: str, origin: str, photo: Path, tmp_path: Path
) -> None:
    base = rserver.url  # the README's http://localhost:7000
    header = ["-H", f"x-api-key: {rkey}"]  # the one line a rembg client adds
    by_url, by_file = tmp_path / "url.png", tmp_path / "file.png"
    commands = [
        # curl -s "http://localhost:7000/api/remove?url=http://input.png" -o output.png
        ["curl", "-s", *header, f"{base}/api/remove?url=http://{origin}/car.jpg", "-o", by_url],
        # curl -s -F file=@/path/to/input.jpg "http://localhost:7000/api/remove" -o output.png
        ["curl", "-s", *header, "-F", f"file=@{photo}", f"{base}/api/remove", "-o", by_file],
    ]
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, timeout=120)
    for output in (by_url, by_file):
        with Image.open(output) as image:
            assert (image.format, image.size) == ("PNG", SIZE)
            _check_cutout(image)


def test_get_with_a_url_and_post_with_a_file_answer_the_same_png_cutout(
    rb: httpx.Client, origin: str, photo: Path
) -> None:
    by_url = rb.get(URL, params={"url": f"http://{origin}/car.jpg"})
    by_file = _post(rb, photo)
    _check_cutout(_png(by_url))
    assert np.array_equal(_pixels(by_url), _pixels(by_file))


# Each option -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(photo: Path) -> dict[str, npt.NDArray[np.int16]]:
    """alphacut's own library's cut-out of the photo with the fast model, per refinement."""
    return {
        refine: np.asarray(
            Remover("fast", refine=refine, settings=Settings()).remove(photo.read_bytes()).array,
            dtype=np.int16,
        )
        for refine in ("none", "edges", "zoom")
    }


@pytest.mark.parametrize(
    ("fields", "refine"),
    [
        ({}, "none"),  # the server's ALPHACUT_REFINE
        ({"a": "false", "dc": "false", "vm": "false"}, "none"),
        ({"a": "true"}, "edges"),
        ({"dc": "true"}, "edges"),
        ({"a": "True", "af": "0", "ab": "255", "ae": "40"}, "edges"),  # af/ab/ae: no effect
        ({"vm": "true"}, "zoom"),
        ({"vm": "1", "a": "1"}, "zoom"),  # ViTMatte wins over alpha matting, as in rembg
    ],
)
def test_a_dc_and_vm_choose_alphacuts_refinement_and_af_ab_ae_change_nothing(
    rb: httpx.Client,
    photo: Path,
    engine: dict[str, npt.NDArray[np.int16]],
    fields: dict[str, str],
    refine: str,
) -> None:
    got = _pixels(_post(rb, photo, **fields))
    errors = {name: float(np.abs(got - want).mean()) for name, want in engine.items()}
    assert errors[refine] < 0.05, errors
    assert all(error > 0.5 for name, error in errors.items() if name != refine), errors


def test_the_options_work_in_the_query_string_of_a_get(
    rb: httpx.Client, origin: str, photo: Path
) -> None:
    url = f"http://{origin}/car.jpg"
    by_get = rb.get(URL, params={"url": url, "a": "true", "om": "true", "model": "u2netp"})
    by_post = _post(rb, photo, a="true", om="true", model="u2netp")
    assert np.array_equal(_pixels(by_get), _pixels(by_post))


def test_only_mask_and_post_process_mask(rb: httpx.Client, photo: Path) -> None:
    cutout = _png(_post(rb, photo))
    mask = _png(_post(rb, photo, om="true"))
    assert mask.mode == "L"
    assert np.array_equal(np.asarray(mask), np.asarray(cutout.getchannel("A")))
    assert len(np.unique(np.asarray(mask))) > 2  # soft

    binary = np.asarray(_png(_post(rb, photo, om="true", ppm="true")))
    assert set(np.unique(binary)) == {0, 255}
    assert np.array_equal(binary, np.where(np.asarray(mask) >= 128, 255, 0))

    firm = _png(_post(rb, photo, ppm="true"))  # a cut-out without soft pixels
    assert firm.mode == "RGBA"
    assert np.array_equal(np.asarray(firm.getchannel("A")), binary)

    with_bgc = _png(_post(rb, photo, "?bgc=255,0,0,255", om="true"))  # rembg ignores bgc
    assert np.array_equal(np.asarray(with_bgc), np.asarray(mask))


@pytest.mark.parametrize(
    ("bgc", "corner"),
    [
        ("255,0,0,255", (255, 0, 0, 255)),
        ("0,0,255", (0, 0, 255, 255)),  # alpha left out: opaque
        ("0,255,0,128", (0, 255, 0, 128)),  # a see-through background stays see-through
        ("", (0, 0, 0, 0)),  # empty: none, as in rembg
    ],
)
def test_bgc_puts_the_cutout_on_a_colour(
    rb: httpx.Client, photo: Path, bgc: str, corner: tuple[int, ...]
) -> None:
    # rembg reads bgc from the query string, also for a POST; alphacut also from the form
    for response in (_post(rb, photo, f"?bgc={bgc}"), _post(rb, photo, bgc=bgc)):
        image = _png(response)
        assert image.mode == "RGBA"
        assert np.asarray(image)[0, 0].tolist() == list(corner)
        assert np.asarray(image)[230, 200, 3] > 250  # the car, on top


def test_extras_that_ask_nothing_are_accepted(rb: httpx.Client, photo: Path) -> None:
    plain = _pixels(_post(rb, photo))
    for extras in ("{}", " { } ", ""):
        assert np.array_equal(_pixels(_post(rb, photo, "", extras=extras)), plain)
    assert np.array_equal(_pixels(_post(rb, photo, "?extras=%7B%7D")), plain)


def test_model_takes_rembgs_names_and_alphacuts_aliases(
    rb: httpx.Client, photo: Path, origin: str
) -> None:
    by_alias = _pixels(_post(rb, photo, model="fast"))
    assert np.array_equal(_pixels(_post(rb, photo, model="u2netp")), by_alias)
    query = {"url": f"http://{origin}/car.jpg", "model": "u2netp"}
    assert np.array_equal(_pixels(rb.get(URL, params=query)), by_alias)


@pytest.mark.parametrize(
    ("model", "named"),
    [
        ("u2net", "model u2net is not installed"),  # rembg's name, not installed here
        ("bria-rmbg", "model bria-rmbg-2.0 is not installed"),  # rembg's default
    ],
)
def test_a_model_this_server_has_not_installed_is_a_400(
    rb: httpx.Client, photo: Path, model: str, named: str
) -> None:
    response = _post(rb, photo, model=model)
    assert named in _error(response)
    assert response.json()["code"] == "model_unavailable"


@pytest.mark.parametrize(
    ("query", "fields", "says"),
    [
        ("?bgc=255,0,0,256", {}, "invalid value for bgc: '255,0,0,256'; r,g,b,a"),
        ("?bgc=1,2", {}, "invalid value for bgc"),
        ("?bgc=1,2,3,4,5", {}, "invalid value for bgc"),
        ("?bgc=-1,0,0,0", {}, "invalid value for bgc"),
        ("?bgc=red", {}, "invalid value for bgc"),
        ("", {"af": "256"}, "invalid value for af: '256'; an integer from 0 to 255"),
        ("", {"af": "-1"}, "invalid value for af"),
        ("", {"af": "1.5"}, "invalid value for af"),
        ("", {"ab": "abc"}, "invalid value for ab"),
        ("", {"ae": "-1"}, "invalid value for ae: '-1'; an integer from 0 to 999999999"),
        ("", {"a": "maybe"}, "invalid value for a: 'maybe'; true or false"),
        ("", {"om": ""}, "invalid value for om"),
        ("", {"ppm": "2"}, "invalid value for ppm"),
        ("", {"dc": "x" * 100}, "invalid value for dc"),
        ("", {"vm": "yess"}, "invalid value for vm"),
        ("", {"model": "sam"}, "invalid value for model: 'sam'; one of auto, fast, precise"),
        ("", {"model": ""}, "invalid value for model"),
        ("?extras=not-json", {}, "invalid value for extras: 'not-json'; not JSON"),
        ("?extras=[]", {}, "invalid value for extras: '[]'; a JSON object"),
        ('?extras={"sam_prompt": {}}', {}, "invalid value for extras: {}; sam_prompt is a list"),
        ('?extras={"sam_prompt": [{"type": "mask", "data": [1]}]}', {}, "sam_prompt is a list"),
        ('?extras={"sam_prompt": [], "x": 1}', {}, "alphacut cannot honour extras (sam_prompt, x)"),
        ('?extras={"model_path": "/x"}', {}, "alphacut cannot honour extras (model_path)"),
        ("?extras=" + "{}" * 2049, {}, "; at most 4096 characters"),
        ("?a=true&a=false", {}, "a is given more than once"),
    ],
)
def test_invalid_options_are_a_400_naming_the_option(
    rb: httpx.Client, photo: Path, query: str, fields: dict[str, str], says: str
) -> None:
    assert says in _error(_post(rb, photo, query, **fields))


def test_get_validates_its_options_too(rb: httpx.Client, origin: str) -> None:
    url = f"http://{origin}/car.jpg"
    assert "invalid value for bgc" in _error(rb.get(URL, params={"url": url, "bgc": "1,2"}))
    extras = rb.get(URL, params={"url": url, "extras": '{"model_path": "/x"}'})
    assert "cannot honour extras" in _error(extras)


# Keys ------------------------------------------------------------------------------------


def test_a_key_is_needed_as_x_api_key_or_a_bearer_token(
    rserver: Server, rkey: str, photo: Path
) -> None:
    with httpx.Client(base_url=rserver.url, timeout=120) as anonymous:
        message = _error(_post(anonymous, photo), 401)
        assert "x-api-key" in message and "Bearer" in message
        assert _error(anonymous.get(URL, params={"url": "http://example.com/a.jpg"}), 401)
        wrong = {"x-api-key": "test_wrong"}
        assert _error(anonymous.post(URL, files={"file": b"x"}, headers=wrong), 401)
        token = {"Authorization": f"Token {rkey}"}  # Ximilar's scheme: not rembg's
        assert _error(anonymous.post(URL, files={"file": b"x"}, headers=token), 401)
        bearer = {"Authorization": f"Bearer {rkey}"}
        response = anonymous.post(URL, files={"file": photo.read_bytes()}, headers=bearer)
        _check_cutout(_png(response))


def test_each_answered_removal_is_counted_to_the_key(
    rserver: Server, rb: httpx.Client, rkey: str, photo: Path
) -> None:
    key = rserver.keys.authenticate(rkey)
    assert key is not None
    _png(_post(rb, photo))
    _error(_post(rb, photo, a="maybe"))
    requests, images = rserver.keys.key_usage(key.id, 1)
    assert (requests, images) == (2, 1)


# Inputs ----------------------------------------------------------------------------------


def test_bad_inputs_are_a_clear_4xx(
    rb: httpx.Client, rserver: Server, origin: str, photo: Path, portrait: Path, fixtures: Path
) -> None:
    assert "file part named file" in _error(rb.post(URL, data={"a": "true"}))
    assert "file part named file" in _error(rb.post(URL, json={"file": "x"}))
    as_text = rb.post(URL, data={"file": "photo.jpg"}, files={"other": ("o", b"")})
    assert "file must be a file part" in _error(as_text)
    assert "file is empty" in _error(rb.post(URL, files={"file": ("p.jpg", b"")}))
    assert _error(rb.post(URL, files={"file": ("p.jpg", b"not an image")}), 415)
    # over the upload limit: read and refused (413), or refused before it is read
    assert _error(_post(rb, portrait), 413)
    assert _error(_post(rb, fixtures / "plants-1.jpg"), 413)

    assert "GET /api/remove?url=" in _error(rb.get(URL))
    assert "GET /api/remove?url=" in _error(rb.get(URL, params={"url": " "}))
    too_long = f"http://{origin}/car.jpg?" + "x" * 4096
    assert "at most 4096 characters" in _error(rb.get(URL, params={"url": too_long}))
    missing = rb.get(URL, params={"url": f"http://{origin}/missing.jpg"})
    assert "HTTP 404" in _error(missing)
    port = origin.rsplit(":", 1)[1]
    internal = rb.get(URL, params={"url": f"http://localhost:{port}/car.jpg"})  # not trusted
    _error(internal)
    assert internal.json()["code"] == "url_not_allowed"
