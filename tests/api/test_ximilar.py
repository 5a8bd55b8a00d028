"""The Ximilar-compatible remove-background API over real HTTP, and its official client."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from servers import Server, file_origin

Json = dict[str, Any]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _get_image(url: str) -> Image.Image:
    response = httpx.get(url)  # no key: output URLs are capabilities
    assert response.status_code == 200, (url, response.text)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.fixture(scope="module")
def origin(photo: Path, portrait: Path) -> Iterator[str]:
    with file_origin(
        {"/car.jpg": photo.read_bytes(), "/person.jpg": portrait.read_bytes()}
    ) as served:
        yield served


@pytest.fixture(scope="module")
def xserver(make_server: Any, origin: str) -> Server:
    return make_server(fetch_trusted_origins=[origin])  # type: ignore[no-any-return]


@pytest.fixture
def token(xserver: Server) -> str:
    return xserver.new_key()


def post(server: Server, token: str, model: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/removebg/{model}/removebg",
        json=body,
        headers={"Authorization": f"Token {token}", **headers},
        timeout=300,
    )


def _ok(record: Json) -> None:
    assert record["_status"]["code"] == 200, record["_status"]
    assert record["_status"]["text"] == "OK"


@pytest.mark.parametrize("model", ["fast", "precise"])
def test_both_models_return_the_documented_shape(
    xserver: Server, token: str, photo: Path, model: str
) -> None:
    response = post(xserver, token, model, {"records": [{"_base64": _b64(photo), "mine": [1, 2]}]})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"records", "status", "statistics"}
    assert body["status"]["code"] == 200 and body["status"]["text"] == "OK"
    uuid.UUID(body["status"]["request_id"])
    uuid.UUID(body["status"]["proc_id"])
    assert isinstance(body["statistics"]["processing time"], float)
    (record,) = body["records"]
    _ok(record)
    assert record["_status"]["request_id"] == body["status"]["request_id"]
    uuid.UUID(record["_id"])
    assert record["mine"] == [1, 2], "other fields come back unchanged"
    assert "_base64" not in record
    assert (record["_width"], record["_height"]) == (480, 360)
    assert "_output_url_mask" not in record and "_output_url_whitebg" not in record
    assert record["_output_url"].startswith(f"{xserver.url}/results/")
    cutout = _get_image(record["_output_url"])
    assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", (480, 360))


def test_data_uri_and_url_records_and_own_ids(
    xserver: Server, token: str, photo: Path, origin: str
) -> None:
    records = [
        {"_base64": "data:image/jpeg;base64," + _b64(photo), "_id": "first"},
        {"_url": f"http://{origin}/car.jpg", "_id": "second"},
    ]
    body = post(xserver, token, "fast", {"records": records}).json()
    assert [record["_id"] for record in body["records"]] == ["first", "second"]
    for record in body["records"]:
        _ok(record)
    assert body["records"][1]["_url"] == f"http://{origin}/car.jpg"
    first = np.asarray(_get_image(body["records"][0]["_output_url"]))
    second = np.asarray(_get_image(body["records"][1]["_output_url"]))
    np.testing.assert_array_equal(first, second)


def test_every_option_alone_and_combined(xserver: Server, token: str, photo: Path) -> None:
    image = _b64(photo)
    mask_only = post(xserver, token, "fast", {"records": [{"_base64": image}], "binary_mask": True})
    (record,) = mask_only.json()["records"]
    mask = _get_image(record["_output_url_mask"])
    assert mask.format == "JPEG" and mask.mode == "L" and mask.size == (480, 360)
    values = np.asarray(mask)
    assert ((values < 30) | (values > 225)).mean() > 0.97, "a binary mask (JPEG-rounded)"
    assert "_output_url_whitebg" not in record

    white_only = post(
        xserver, token, "fast", {"records": [{"_base64": image}], "white_background": True}
    )
    (record,) = white_only.json()["records"]
    white = _get_image(record["_output_url_whitebg"])
    assert white.format == "JPEG" and white.mode == "RGB"
    cut = np.asarray(_get_image(record["_output_url"]))
    assert np.asarray(white)[cut[..., 3] == 0].mean() > 245, "the background is white"

    for fmt, pil_format in [("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")]:
        body = {"records": [{"_base64": image}], "image_format": fmt, "binary_mask": True,
                "white_background": True}  # fmt: skip
        (record,) = post(xserver, token, "fast", body).json()["records"]
        for name in ("_output_url", "_output_url_mask", "_output_url_whitebg"):
            assert _get_image(record[name]).format == pil_format, (fmt, name)
            assert record[name].endswith({"jpg": ".jpg", "webp": ".webp", "png": ".png"}[fmt])

    sizes = []
    for quality in (10, 95):
        body = {"records": [{"_base64": image}], "image_format": "jpg", "image_quality": quality}
        (record,) = post(xserver, token, "fast", body).json()["records"]
        sizes.append(len(httpx.get(record["_output_url"]).content))
    assert sizes[0] < sizes[1] / 2


def test_record_options_win_over_the_top_level(xserver: Server, token: str, photo: Path) -> None:
    body = {
        "records": [
            {"_base64": _b64(photo), "binary_mask": False, "image_format": "webp"},
            {"_base64": _b64(photo)},
        ],
        "binary_mask": True,
        "image_format": "jpg",
    }
    first, second = post(xserver, token, "fast", body).json()["records"]
    assert "_output_url_mask" not in first and first["_output_url"].endswith(".webp")
    assert "_output_url_mask" in second and second["_output_url"].endswith(".jpg")


def test_good_and_bad_records_side_by_side(
    xserver: Server, token: str, photo: Path, origin: str
) -> None:
    port = origin.rsplit(":", 1)[1]
    records = [
        {"_base64": _b64(photo), "_id": "good"},
        {"_base64": "%%% not base64 %%%", "_id": "bad-base64"},
        {"_base64": base64.b64encode(b"plain text, not an image").decode(), "_id": "not-image"},
        {"_url": f"http://localhost:{port}/car.jpg", "_id": "internal-url"},
        {"_url": f"http://{origin}/missing.jpg", "_id": "missing-url"},
        {"_id": "no-image"},
        {"_base64": _b64(photo), "image_quality": 500, "_id": "bad-option"},
        # fields the answer writes, sent by the client: never given back as if alphacut's
        {
            "_id": "forged",
            "_output_url": "https://elsewhere.example/x.png",
            "_output_url_whitebg": [-2.1e-207],
            "_width": "wide",
            "_status": {"code": 200},
        },
        {
            "_base64": _b64(photo),
            "_id": "good-forged",
            "_output_url_mask": "https://x.example/",
            "_height": -1,
            "note": "kept",
        },
    ]
    response = post(xserver, token, "fast", {"records": records})
    assert response.status_code == 200
    by_id = {record["_id"]: record for record in response.json()["records"]}
    _ok(by_id["good"])
    expected = {
        "bad-base64": (400, "base64"),
        "not-image": (415, "JPEG, PNG, WebP, HEIC/HEIF and AVIF"),
        "internal-url": (400, "internal address"),
        "missing-url": (400, "404"),
        "no-image": (400, "_url or _base64"),
        "bad-option": (400, "image_quality"),
    }
    for record_id, (code, words) in expected.items():
        status = by_id[record_id]["_status"]
        assert status["code"] == code, (record_id, status)
        assert words in status["error_description"], (record_id, status)
        assert "_output_url" not in by_id[record_id]
    forged = by_id["forged"]
    assert (
        forged["_status"]["code"] == 400
        and "_url or _base64" in (forged["_status"]["error_description"])
    )
    assert not {"_output_url", "_output_url_whitebg", "_width"} & set(forged)
    kept = by_id["good-forged"]
    _ok(kept)
    assert "_output_url_mask" not in kept and kept["_height"] == 360 and kept["note"] == "kept"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "records"),
        ({"records": []}, "records"),
        ({"records": "abc"}, "records"),
        ({"records": [1, 2]}, "object"),
        ([{"_url": "x"}], "JSON object"),
        ({"records": [{"_url": "x"}] * 11}, "too many records"),
        ({"records": [{"_url": "x"}], "image_format": "gif"}, "image_format"),
        ({"records": [{"_url": "x"}], "binary_mask": "yes"}, "binary_mask"),
    ],
)
def test_malformed_requests_are_4xx_with_a_status(
    xserver: Server, token: str, body: Any, words: str
) -> None:
    response = post(xserver, token, "fast", body)
    assert response.status_code == 400
    status = response.json()["status"]
    assert status["code"] == 400 and status["text"] == "Bad Request"
    assert words in status["error_description"]


def test_unknown_model_and_non_json(xserver: Server, token: str) -> None:
    response = post(xserver, token, "huge", {"records": [{"_url": "x"}]})
    assert response.status_code == 400 and "model" in response.json()["status"]["error_description"]
    raw = httpx.post(
        f"{xserver.url}/removebg/fast/removebg",
        content=b"{broken",
        headers={"Authorization": f"Token {token}", "content-type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["status"]["code"] == 400


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Token nope"}, {"Authorization": "Basic abc"}, {"x-api-key": "nope"}],
)
def test_auth_failures_are_401_in_ximilar_shape(xserver: Server, headers: dict[str, str]) -> None:
    response = httpx.post(
        f"{xserver.url}/removebg/fast/removebg", json={"records": [{"_url": "x"}]}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["status"]["code"] == 401


def test_x_api_key_works_too_and_usage_is_counted(xserver: Server, photo: Path) -> None:
    secret = xserver.new_key()
    key = xserver.keys.authenticate(secret)
    assert key is not None
    body = {"records": [{"_base64": _b64(photo)}, {"_base64": "bad"}]}
    response = httpx.post(
        f"{xserver.url}/removebg/fast/removebg",
        json=body,
        headers={"x-api-key": secret},
        timeout=300,
    )
    assert response.status_code == 200
    totals = {total.key_id: total for total in xserver.keys.usage()}
    assert (totals[key.id].requests, totals[key.id].images) == (1, 1)


def test_results_are_not_listed_or_reachable_through_the_images_api(
    xserver: Server, token: str, photo: Path
) -> None:
    (record,) = post(xserver, token, "fast", {"records": [{"_base64": _b64(photo)}]}).json()[
        "records"
    ]
    with xserver.client(token) as api:
        assert api.get("/v1/images").json()["data"] == []
    result_token = record["_output_url"].rsplit("/", 1)[1].split(".")[0]
    assert len(result_token) == 48
    assert httpx.get(f"{xserver.url}/results/").status_code == 404
    assert httpx.get(record["_output_url"].replace(".png", ".jpg")).status_code == 404
    assert httpx.get(f"{xserver.url}/results/{'0' * 48}.png").status_code == 404
    served = httpx.get(record["_output_url"])
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"].startswith("private, max-age=")
    assert int(served.headers["cache-control"].rsplit("=", 1)[1]) <= 24 * 3600


def test_outputs_expire_and_their_files_are_deleted(make_server: Any, photo: Path) -> None:
    short: Server = make_server(result_ttl_seconds=1, sweep_interval_seconds=0.2)
    token = short.new_key()
    (record,) = post(short, token, "fast", {"records": [{"_base64": _b64(photo)}]}).json()[
        "records"
    ]
    assert httpx.get(record["_output_url"]).status_code == 200
    files = list((short.settings.data_dir / "blobs" / "results").rglob("*.png"))
    assert len(files) == 1
    time.sleep(1.2)
    assert httpx.get(record["_output_url"]).status_code == 404, "expired means gone at once"
    deadline = time.monotonic() + 10
    while files[0].exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not files[0].exists(), "the sweeper deleted the file"


def test_full_engine_answers_503(
    make_server: Any, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alphacut.service.work import WorkQueue

    busy: Server = make_server(inference_workers=1, inference_queue=0, retry_after_seconds=4)
    monkeypatch.setattr(WorkQueue, "pending", property(lambda self: self.capacity))
    response = post(busy, busy.new_key(), "fast", {"records": [{"_base64": _b64(photo)}]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "4"
    assert response.json()["status"]["code"] == 503


# The official client -------------------------------------------------------------------------


def test_official_ximilar_client_works_unchanged(
    xserver: Server, token: str, photo: Path, portrait: Path, origin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`RemoveBGClient(token, endpoint="http://127.0.0.1:PORT/")`, the code as published.

    At construction the client checks the token at a fixed Ximilar host (it skips the check
    only for endpoints containing "localhost"); alphacut answers that check too, so the
    module's fixed host is pointed at this server, as a user would with a DNS entry."""
    import ximilar.client.client as ximilar_rest
    from ximilar.client import RemoveBGClient

    monkeypatch.setattr(ximilar_rest, "ENDPOINT", f"{xserver.url}/")
    client = RemoveBGClient(token, endpoint=f"{xserver.url}/")
    records = [
        {"_file": str(portrait)},  # the client reads, resizes and sends it as a data: URI
        {"_url": f"http://{origin}/car.jpg"},
        {"_base64": _b64(photo), "noresize": True},
    ]
    fast = client.removebg_fast(records)
    assert fast["status"]["code"] == 200
    assert [record["_status"]["code"] for record in fast["records"]] == [200, 200, 200]
    assert fast["records"][0]["_file"] == str(portrait)
    assert _get_image(fast["records"][2]["_output_url"]).size == (480, 360)
    precise = client.removebg_precise([{"_url": f"http://{origin}/car.jpg"}])
    (record,) = precise["records"]
    assert record["_status"]["code"] == 200
    assert _get_image(record["_output_url"]).mode == "RGBA"
    with pytest.raises(Exception, match="Invalid token"):
        RemoveBGClient("test_not_a_key", endpoint=f"{xserver.url}/")
