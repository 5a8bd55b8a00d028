"""Issue 26 in every dialect, over real HTTP: a box and clicks that correct a cut-out (the
IMG Processing remove-background body, with ``cutout_id`` to correct a cut-out already made
without a model pass; remove.bg's ``points``; Ximilar's ``_box`` / ``_points``; rembg's SAM
prompts in ``extras``), and bad hints answered with a 4xx that says what is wrong."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from servers import Server

CAR = (480, 360)  # the car photo's size
CORNER = (5, 5)  # background in the car photo: a subject click there must make it subject
CAR_BODY = (240, 200)  # the car: a background click there must make it background


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(server.new_key()) as client:
        yield client


def _alpha(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"))[..., 3].copy()


def _upload(client: httpx.Client, data: bytes) -> str:
    answer = client.post("/v1/images/upload", data={"name": "p"}, files={"image": ("p", data)})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _cut(client: httpx.Client, image_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1/images/{image_id}/remove-background", json=body)


def _download(client: httpx.Client, image_id: str) -> bytes:
    answer = client.get(f"/v1/images/{image_id}/download")
    assert answer.status_code == 200
    return answer.content


# IMG Processing ------------------------------------------------------------------------------


def test_clicks_correct_a_cut_out_already_made_without_a_model_pass(
    api: httpx.Client, photo: Path
) -> None:
    source = _upload(api, photo.read_bytes())
    first = _cut(api, source, model="fast")
    assert first.status_code == 201, first.text
    automatic = _alpha(_download(api, first.json()["id"]))
    assert automatic[CORNER[1], CORNER[0]] < 128 and automatic[CAR_BODY[1], CAR_BODY[0]] >= 128
    points = [
        {"x": CORNER[0], "y": CORNER[1]},
        {"x": CAR_BODY[0], "y": CAR_BODY[1], "label": "background"},
    ]
    usage = api.get("/v1/usage").json() if api.get("/v1/usage").status_code == 200 else None
    fixed = _cut(api, source, points=points, cutout_id=first.json()["id"])
    assert fixed.status_code == 201, fixed.text
    body = fixed.json()
    assert (body["width"], body["height"]) == CAR
    assert "confidence" not in body  # a person's correction: no model's estimate of it
    corrected = _alpha(_download(api, body["id"]))
    assert corrected[CORNER[1], CORNER[0]] == 255
    assert corrected[CAR_BODY[1], CAR_BODY[0]] == 0
    assert 0 < np.count_nonzero(corrected != automatic) < corrected.size // 2  # local edits
    # The same clicks with the model run again (no cutout_id) give the same mask.
    again = _cut(api, source, model="fast", points=points)
    assert again.status_code == 201, again.text
    assert np.array_equal(_alpha(_download(api, again.json()["id"])), corrected)
    if usage is not None:  # a correction counts one image, a removal two
        assert api.get("/v1/usage").json() != usage


def test_a_box_keeps_nothing_outside_it(api: httpx.Client, photo: Path) -> None:
    source = _upload(api, photo.read_bytes())
    answer = _cut(api, source, model="fast", box={"x1": 100, "y1": 80, "x2": 380, "y2": 330})
    assert answer.status_code == 201, answer.text
    alpha = _alpha(_download(api, answer.json()["id"]))
    outside = np.ones(alpha.shape, bool)
    outside[80:330, 100:380] = False
    assert not alpha[outside].any() and (alpha >= 128).any()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"points": [{"x": 480, "y": 0}]}, 400, "outside the photo"),
        ({"points": [{"x": 0, "y": 360}]}, 400, "outside the photo"),
        ({"points": [{"x": -1, "y": 0}]}, 400, "greater than or equal to 0"),
        ({"points": [{"x": 1.5, "y": 0}]}, 400, "x"),
        ({"points": [{"x": "1", "y": 0}]}, 400, "x"),
        ({"points": [{"x": 1, "y": 0, "label": "maybe"}]}, 400, "label"),
        ({"points": [{"x": 1, "y": 0, "z": 1}]}, 400, "z"),
        ({"points": [{"x": 1, "y": 1}] * 101}, 400, "at most 100"),
        ({"points": {"x": 1, "y": 1}}, 400, "points"),
        ({"box": {"x1": 10, "y1": 10, "x2": 10, "y2": 50}}, 400, "right of and below"),
        ({"box": {"x1": 0, "y1": 0, "x2": 481, "y2": 50}}, 400, "inside the photo"),
        ({"box": [0, 0, 10, 10]}, 400, "box"),
        ({"cutout_id": "image_nope", "points": [{"x": 1, "y": 1}]}, 404, ""),
        ({"cutout_id": "SELF"}, 400, "give a box or points"),
    ],
)
def test_bad_hints_are_a_clear_4xx(
    api: httpx.Client, photo: Path, body: dict[str, Any], status: int, says: str
) -> None:
    source = _upload(api, photo.read_bytes())
    if body.get("cutout_id") == "SELF":
        body = {"cutout_id": source}
    answer = _cut(api, source, **body)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_json_nan_and_infinity_are_refused(api: httpx.Client, photo: Path) -> None:
    source = _upload(api, photo.read_bytes())
    for literal in ("NaN", "Infinity", "1e400"):
        raw = '{"points": [{"x": ' + literal + ', "y": 1}]}'
        answer = api.post(
            f"/v1/images/{source}/remove-background",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= answer.status_code < 500, (literal, answer.text)


def test_a_cut_out_of_another_size_cannot_be_corrected(api: httpx.Client, photo: Path) -> None:
    source = _upload(api, photo.read_bytes())
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 48)).save(buffer, "PNG")
    other = _upload(api, buffer.getvalue())
    answer = _cut(api, source, cutout_id=other, points=[{"x": 1, "y": 1}])
    assert answer.status_code == 400
    assert "must be a cut-out of this photo" in answer.json()["message"]


def test_another_keys_cut_out_is_not_found(server: Server, photo: Path) -> None:
    with server.client(server.new_key()) as owner, server.client(server.new_key()) as other:
        theirs = _cut(owner, _upload(owner, photo.read_bytes()), model="fast").json()["id"]
        mine = _upload(other, photo.read_bytes())
        answer = _cut(other, mine, cutout_id=theirs, points=[{"x": 1, "y": 1}])
        assert answer.status_code == 404


def test_the_openapi_document_describes_the_hints(api: httpx.Client) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    fields = schemas["RemoveBackground"]["properties"]
    assert {"box", "points", "cutout_id"} <= set(fields)
    assert fields["points"]["maxItems"] == 100
    assert schemas["HintPoint"]["properties"]["label"]["enum"] == ["subject", "background"]


# remove.bg -----------------------------------------------------------------------------------


def test_removebg_takes_points_as_text_or_json(api: httpx.Client, photo: Path) -> None:
    form = api.post(
        "/v1.0/removebg",
        files={"image_file": ("p", photo.read_bytes())},
        data={"model": "fast", "points": f"{CORNER[0]},{CORNER[1]} 240,200:bg"},
    )
    assert form.status_code == 200, form.text
    alpha = _alpha(form.content)
    assert alpha[CORNER[1], CORNER[0]] == 255 and alpha[200, 240] == 0
    as_json = api.post(
        "/v1.0/removebg",
        json={
            "image_file_b64": base64.b64encode(photo.read_bytes()).decode(),
            "model": "fast",
            "points": [
                {"x": CORNER[0], "y": CORNER[1]},
                {"x": 240, "y": 200, "label": "background"},
            ],
        },
    )
    assert as_json.status_code == 200, as_json.text
    assert np.array_equal(_alpha(as_json.content), alpha)


def test_removebg_points_follow_a_smaller_size(api: httpx.Client, photo: Path) -> None:
    # size=preview shrinks a photo over 0.25 MP; this one is 0.17 MP: unchanged, so use a
    # bigger one made from it.
    big = io.BytesIO()
    with Image.open(photo) as image:
        image.resize((1200, 900)).save(big, "JPEG")
    answer = api.post(
        "/v1.0/removebg",
        files={"image_file": ("p", big.getvalue())},
        data={"model": "fast", "size": "preview", "points": "12,12"},
    )
    assert answer.status_code == 200, answer.text
    alpha = _alpha(answer.content)
    assert alpha.shape[1] < 1200 and alpha[3, 3] == 255  # the click, scaled with the photo


@pytest.mark.parametrize(
    ("points", "says"),
    [
        ("480,0", "outside the photo"),
        ("1,2,3", "a point is x,y"),
        ("a,b", "whole pixels"),
        ("1,2:sideways", "unknown point label"),
        (" ".join(["1,1"] * 101), "at most 100"),
    ],
)
def test_removebg_bad_points_are_a_400(
    api: httpx.Client, photo: Path, points: str, says: str
) -> None:
    answer = api.post(
        "/v1.0/removebg",
        files={"image_file": ("p", photo.read_bytes())},
        data={"model": "fast", "points": points},
    )
    assert answer.status_code == 400, answer.text
    assert says in answer.text


# Ximilar and rembg -----------------------------------------------------------------------------


def test_ximilar_records_take_a_box_and_points(server: Server, photo: Path) -> None:
    photo_b64 = base64.b64encode(photo.read_bytes()).decode()
    records = [
        {"_id": "clicked", "_base64": photo_b64, "_points": [{"x": CORNER[0], "y": CORNER[1]}]},
        {"_id": "boxed", "_base64": photo_b64, "_box": [100, 80, 380, 330]},
        {"_id": "outside", "_base64": photo_b64, "_points": [{"x": 9999, "y": 1}]},
        {"_id": "nan", "_base64": photo_b64, "_box": [0, 0, "x", 4]},
    ]
    answer = httpx.post(
        f"{server.url}/removebg/fast/removebg",
        json={"records": records},
        headers={"Authorization": f"Token {server.new_key()}"},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    clicked, boxed, outside, nan = answer.json()["records"]
    assert clicked["_status"]["code"] == 200 and boxed["_status"]["code"] == 200
    alpha = _alpha(httpx.get(clicked["_output_url"]).content)
    assert alpha[CORNER[1], CORNER[0]] == 255
    boxed_alpha = _alpha(httpx.get(boxed["_output_url"]).content)
    assert not boxed_alpha[:80].any() and not boxed_alpha[:, 380:].any()
    assert outside["_status"]["code"] == 400
    assert "outside the photo" in outside["_status"]["error_description"]
    assert nan["_status"]["code"] == 400


def test_rembg_takes_sams_prompts_from_extras(server: Server, photo: Path) -> None:
    prompt = {
        "sam_prompt": [
            {"type": "point", "data": list(CORNER), "label": 1},
            {"type": "point", "data": [240, 200], "label": 0},
        ]
    }
    with server.client(server.new_key()) as client:
        answer = client.post(
            "/api/remove",
            params={"model": "u2netp", "extras": json.dumps(prompt)},
            files={"file": ("p.jpg", photo.read_bytes())},
        )
        assert answer.status_code == 200, answer.text
        alpha = _alpha(answer.content)
        assert alpha[CORNER[1], CORNER[0]] == 255 and alpha[200, 240] == 0
        bad = {"sam_prompt": [{"type": "point", "data": [1, 2], "label": 7}]}
        refused = client.post(
            "/api/remove",
            params={"extras": json.dumps(bad)},
            files={"file": ("p.jpg", photo.read_bytes())},
        )
        assert refused.status_code == 400 and "label is 1" in refused.text
