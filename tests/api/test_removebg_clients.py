"""remove.bg's own client libraries against a live alphacut, changing only their base URL:
PyPI ``removebg`` (its module constant ``API_ENDPOINT``) and npm ``remove.bg`` (its constant
``API_ENDPOINT``, rewritten when the module loads by tests/clients/removebg-node/drive.js, as
a DNS entry would point it in production)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import removebg.removebg as removebg_module
import requests
from PIL import Image
from removebg import RemoveBg

from servers import Server

NODE_CLIENT = Path(__file__).parent.parent / "clients" / "removebg-node"


@pytest.fixture(scope="module")
def cserver(make_server: Any) -> Server:
    return make_server(default_model="fast")  # type: ignore[no-any-return]


def _cutout(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def test_the_pypi_client_removes_backgrounds(
    cserver: Server, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(removebg_module, "API_ENDPOINT", cserver.url + "/v1.0/removebg")
    client = RemoveBg(cserver.new_key(), str(tmp_path / "errors.log"))
    source = tmp_path / "car.jpg"
    shutil.copy(photo, source)
    client.remove_background_from_img_file(str(source), size="preview")
    cut = _cutout(tmp_path / "car.jpg_no_bg.png")
    assert (cut.mode, cut.size) == ("RGBA", (480, 360))

    target = tmp_path / "b64.png"
    b64 = base64.b64encode(photo.read_bytes()).decode()
    client.remove_background_from_base64_img(b64, size="regular", new_file_name=str(target))
    assert _cutout(target).size == (480, 360)

    coloured = tmp_path / "white.png"
    client.remove_background_from_base64_img(b64, new_file_name=str(coloured), bg_color="white")
    assert _cutout(coloured).getpixel((0, 0))[:3] == (255, 255, 255)  # type: ignore[index]

    # Its errors: remove.bg's body, which it reads as errors[0].title.
    wrong = RemoveBg("live_wrong", str(tmp_path / "errors.log"))
    with pytest.raises(Exception, match="403"):
        wrong.remove_background_from_base64_img(b64, new_file_name=str(tmp_path / "x.png"))


def _node(server: Server, key: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "ALPHACUT_URL": server.url, "ALPHACUT_KEY": key}
    done = subprocess.run(
        ["node", str(NODE_CLIENT / "drive.js"), *args],  # noqa: S607
        cwd=NODE_CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(
    (not (NODE_CLIENT / "node_modules" / "remove.bg").is_dir() or shutil.which("node") is None)
    and os.environ.get("CI") != "true",  # in CI (make test installs it), missing is a failure
    reason="remove.bg's npm client is not installed: run make clients",
)
def test_the_npm_client_removes_backgrounds(cserver: Server, photo: Path, tmp_path: Path) -> None:
    key = cserver.new_key()
    for mode in ("file", "base64"):
        out = tmp_path / f"{mode}.png"
        answer = _node(cserver, key, mode, str(photo), str(out), '{"size": "preview"}')
        assert answer["ok"], answer
        result = answer["result"]
        assert (result["resultWidth"], result["resultHeight"]) == ("480", "360")
        assert result["creditsCharged"] == "0"
        assert result["detectedType"] == "other"
        assert _cutout(out).size == (480, 360)

    cropped = tmp_path / "crop.png"
    options = '{"crop": true, "bg_color": "81d4fa", "type": "car"}'
    answer = _node(cserver, key, "base64", str(photo), str(cropped), options)
    assert answer["ok"], answer
    assert answer["result"]["detectedType"] == "car"
    image = _cutout(cropped)
    assert image.size[0] < 480 or image.size[1] < 360

    # An URL the server refuses to fetch (loopback): the client rejects with remove.bg's errors.
    refused = _node(cserver, key, "url", "http://127.0.0.1:9/a.jpg", str(tmp_path / "u.png"))
    assert not refused["ok"]
    assert refused["errors"][0]["code"]
    assert {"title", "code", "detail"} <= set(refused["errors"][0])

    wrong = _node(cserver, "live_wrong", "base64", str(photo), str(tmp_path / "w.png"))
    assert not wrong["ok"]
    assert wrong["errors"][0]["code"] == "auth_failed"


def test_the_node_client_wrapper_points_at_the_constant_the_client_has() -> None:
    """drive.js refuses to run if the client stopped naming remove.bg's endpoint: a newer
    client would otherwise silently call the real service."""
    source = (NODE_CLIENT / "drive.js").read_text()
    assert 'const REMOTE = "https://api.remove.bg/v1.0/removebg";' in source
    assert removebg_module.API_ENDPOINT == "https://api.remove.bg/v1.0/removebg"


@pytest.fixture(scope="module")
def limited(make_server: Any) -> Server:
    return make_server(default_model="fast", rate_limit_per_minute=2)  # type: ignore[no-any-return]


@pytest.mark.skipif(
    (not (NODE_CLIENT / "node_modules" / "remove.bg").is_dir() or shutil.which("node") is None)
    and os.environ.get("CI") != "true",
    reason="remove.bg's npm client is not installed: run make clients",
)
def test_the_npm_client_reads_the_rate_limit_headers(
    limited: Server, photo: Path, tmp_path: Path
) -> None:
    """The client hands X-RateLimit-* back with each result (rateLimit, rateLimitRemaining,
    rateLimitReset); past the limit it rejects with remove.bg's errors and does not retry."""
    key = limited.new_key()
    results = []
    for n in range(2):
        answer = _node(limited, key, "base64", str(photo), str(tmp_path / f"{n}.png"))
        assert answer["ok"], answer
        results.append(answer["result"])
    assert [r["rateLimit"] for r in results] == ["2", "2"]
    assert [r["rateLimitRemaining"] for r in results] == ["1", "0"]
    reset = int(results[0]["rateLimitReset"])
    assert reset == int(results[1]["rateLimitReset"])
    assert time.time() < reset <= time.time() + 61
    assert "retryAfter" not in results[0], "Retry-After only on a 429"
    refused = _node(limited, key, "base64", str(photo), str(tmp_path / "refused.png"))
    assert not refused["ok"]
    assert refused["errors"][0]["code"] == "rate_limit_exceeded"


def test_the_pypi_client_raises_on_a_429_that_says_when_to_retry(
    limited: Server, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PyPI client raises requests' HTTPError for any status but 200 (it reads no rate
    headers); the response it carries says when to retry and where the key stands."""
    monkeypatch.setattr(removebg_module, "API_ENDPOINT", limited.url + "/v1.0/removebg")
    client = RemoveBg(limited.new_key(), str(tmp_path / "errors.log"))
    b64 = base64.b64encode(photo.read_bytes()).decode()
    for n in range(2):
        client.remove_background_from_base64_img(b64, new_file_name=str(tmp_path / f"{n}.png"))
    with pytest.raises(requests.HTTPError) as caught:
        client.remove_background_from_base64_img(b64, new_file_name=str(tmp_path / "x.png"))
    response = caught.value.response
    assert response is not None
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == "2"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) == pytest.approx(
        time.time() + int(response.headers["Retry-After"]), abs=2
    )
