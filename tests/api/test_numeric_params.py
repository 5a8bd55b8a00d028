"""Every numeric parameter of the three APIs, sent non-finite or far out of range, is a 400
naming it, before any work (issue 22, item 4: a 400-digit ``roi`` was a 500 after the whole
removal had run). The photo sent is not an image: a refusal that names the parameter came
before the image was even looked at."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from servers import Server

HUGE = "1" * 400
NOT_AN_IMAGE = base64.b64encode(b"hello, not an image").decode()


@pytest.fixture(scope="module")
def bare(make_server: Callable[..., Server]) -> Server:
    return make_server(load_models=[], wait_for_models=False)


REMOVEBG_FORM = [
    ("roi", f"0px 0px {HUGE}px 10px"),
    ("roi", f"0 0 {HUGE} 10"),
    ("roi", "0px 0px 1e400px 10px"),
    ("roi", "0px 0px inf 10px"),
    ("roi", "0px 0px nan 10px"),
    ("roi", "0px 0px 3000000000px 10px"),  # past 2**31 - 1
    ("roi", "10px 10px 5px 20px"),  # x2 left of x1: known before any work
    ("roi", "0% 0% 101% 50%"),
    ("crop_margin", f"{HUGE}px"),
    ("crop_margin", "1e400px"),
    ("crop_margin", "-5px"),
    ("scale", f"{HUGE}%"),
    ("scale", "nan%"),
    ("scale", "5%"),
    ("position", f"{HUGE}%"),
    ("position", "inf%"),
    ("position", "10% 20% 30%"),
    ("position", "50% " * 10_000),
    ("shadow_opacity", HUGE),
    ("shadow_opacity", "1" * 5000),  # past Python's 4,300-digit int limit
    ("shadow_opacity", "nan"),
    ("shadow_opacity", "101"),
    ("shadow_opacity", "-1"),
]


@pytest.mark.parametrize(("name", "value"), REMOVEBG_FORM, ids=lambda v: str(v)[:24])
def test_removebg_form_numbers_out_of_range_are_400(bare: Server, name: str, value: str) -> None:
    response = httpx.post(
        bare.url + "/v1.0/removebg",
        headers={"X-Api-Key": bare.new_key()},
        data={"image_file_b64": NOT_AN_IMAGE, name: value},
    )
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_parameters"
    assert name in error["detail"]
    assert len(error["detail"]) < 400, "the value is not echoed whole"


REMOVEBG_JSON: list[tuple[str, Any, str]] = [
    ("roi", 1e308, "roi"),  # a number is no roi
    ("shadow_opacity", 1.5, "shadow_opacity"),
    ("shadow_opacity", 10**400, "shadow_opacity"),
    ("shadow_opacity", "NaN", "non-finite"),  # the bare NaN literal, below
    ("shadow_opacity", "Infinity", "non-finite"),
    ("scale", "1e400", "non-finite"),
]


@pytest.mark.parametrize(("name", "value", "detail"), REMOVEBG_JSON, ids=str)
def test_removebg_json_numbers_out_of_range_are_400(
    bare: Server, name: str, value: Any, detail: str
) -> None:
    literal = value if isinstance(value, str) else repr(value)
    body = f'{{"image_file_b64": "{NOT_AN_IMAGE}", "{name}": {literal}}}'
    response = httpx.post(
        bare.url + "/v1.0/removebg",
        headers={"X-Api-Key": bare.new_key(), "content-type": "application/json"},
        content=body.encode(),
    )
    assert response.status_code == 400, response.text
    assert detail in response.json()["errors"][0]["detail"]


XIMILAR: list[tuple[str, str]] = [
    ('"image_quality": 1e400', "non-finite"),
    ('"image_quality": NaN', "non-finite"),
    ('"image_quality": Infinity', "non-finite"),
    (f'"image_quality": {HUGE}', "image_quality"),
    ('"image_quality": 0', "image_quality"),
    ('"image_quality": 101', "image_quality"),
    ('"image_quality": 50.5', "image_quality"),
]


@pytest.mark.parametrize(("field", "detail"), XIMILAR, ids=lambda v: str(v)[:24])
def test_ximilar_numbers_out_of_range_are_400(bare: Server, field: str, detail: str) -> None:
    body = f'{{"records": [{{"_base64": "{NOT_AN_IMAGE}"}}], {field}}}'
    response = httpx.post(
        bare.url + "/removebg/fast/removebg",
        headers={"Authorization": f"Token {bare.new_key()}", "content-type": "application/json"},
        content=body.encode(),
    )
    assert response.status_code == 400, response.text
    assert detail in response.json()["status"]["error_description"]


IMAGES: list[tuple[str, str]] = [
    ("rotate", '{"angle": NaN}'),
    ("rotate", '{"angle": Infinity}'),
    ("rotate", '{"angle": 1e400}'),
    ("rotate", '{"angle": 1e7}'),
    ("blur", '{"sigma": NaN}'),
    ("blur", '{"sigma": -Infinity}'),
    ("blur", '{"sigma": 1e9}'),
    ("modulate", '{"brightness": NaN}'),
    ("modulate", '{"hue": Infinity}'),
    ("modulate", '{"exposure": 1e400}'),
    ("crop", f'{{"x1": 0, "y1": 0, "x2": {HUGE}, "y2": 5}}'),
    ("crop", '{"x1": 0, "y1": 0, "x2": NaN, "y2": 5}'),
    ("resize", f'{{"width": {HUGE}}}'),
    ("resize", '{"width": Infinity}'),
    ("convert", '{"format": "png", "quality": NaN}'),
    ("convert", f'{{"format": "png", "quality": {HUGE}}}'),
    ("watermark", f'{{"watermarks": [{{"id": "image_x", "left": {HUGE}}}]}}'),
    ("watermark", '{"watermarks": [{"id": "image_x", "width": NaN}]}'),
]


@pytest.mark.parametrize(("operation", "body"), IMAGES, ids=lambda v: str(v)[:24])
def test_images_api_numbers_out_of_range_are_400(bare: Server, operation: str, body: str) -> None:
    """Refused before the image is looked up: the id names no image."""
    response = httpx.post(
        f"{bare.url}/v1/images/image_000000000000000000000000/{operation}",
        headers={"x-api-key": bare.new_key(), "content-type": "application/json"},
        content=body.encode(),
    )
    assert response.status_code == 400, response.text
