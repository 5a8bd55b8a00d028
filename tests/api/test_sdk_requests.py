"""The requests the official IMG Processing client (GitHub img-processing/node-sdk,
``src/api-client.ts``: ky with ``prefixUrl`` and ``searchParams``/``json``) sends, exactly,
and what it expects back."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from servers import Server


def _png(colour: tuple[int, ...], size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if len(colour) == 4 else "RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _pixels(api: httpx.Client, image_id: str) -> np.ndarray:
    data = api.get(f"/v1/images/{image_id}/download").content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(int)


# listImages(): `searchParams: {take: take?.toString(), from}` sends omitted ones as text.
@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("take=undefined&from=undefined", 4),  # listImages()
        ("take=3&from=undefined", 3),  # listImages({take: 3})
        ("take=null&from=null", 4),
        ("take=&from=", 4),
    ],
)
def test_list_images_as_the_sdk_asks(
    api: httpx.Client, upload: Callable[..., dict[str, Any]], query: str, count: int
) -> None:
    for _ in range(4):
        upload()
    response = api.get(f"/v1/images?{query}")
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == count


@pytest.mark.parametrize("query", ["take=abc", "take=0", "take=101", "from=image_unknown"])
def test_real_garbage_in_the_query_is_still_refused(api: httpx.Client, query: str) -> None:
    assert api.get(f"/v1/images?{query}").status_code == 400


def test_modulate_takes_the_sdks_hue_and_lightness(api: httpx.Client) -> None:
    uploaded = api.post(
        "/v1/images/upload", data={"name": "red"}, files={"image": ("r.png", _png((200, 30, 30)))}
    ).json()
    # modulate({image_id, brightness, saturation, hue, lightness, name}) -> json body
    turned = api.post(f"/v1/images/{uploaded['id']}/modulate", json={"hue": 180, "name": "cyan"})
    assert turned.status_code == 201, turned.text
    r, g, b, _a = _pixels(api, turned.json()["id"])[5, 5]
    assert g > r and b > r, "red turned half way round the colour wheel is cyan"
    lighter = api.post(
        f"/v1/images/{uploaded['id']}/modulate",
        json={"brightness": 1.2, "saturation": 1.5, "hue": 0, "lightness": 20},
    )
    assert lighter.status_code == 201, lighter.text
    before = _pixels(api, uploaded["id"])[..., :3].mean()
    assert _pixels(api, lighter.json()["id"])[..., :3].mean() > before + 20
    refused = api.post(f"/v1/images/{uploaded['id']}/modulate", json={"hue": "red"})
    assert refused.status_code == 400


@pytest.mark.parametrize(("fmt", "alpha"), [("png", 255), ("jpeg", 255)])
def test_rotate_fills_the_corners_with_the_background_color(
    api: httpx.Client, fmt: str, alpha: int
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), (0, 0, 255)).save(buffer, "PNG" if fmt == "png" else "JPEG")
    image = api.post(
        "/v1/images/upload", data={"name": "blue"}, files={"image": ("b", buffer.getvalue())}
    ).json()
    rotated = api.post(
        f"/v1/images/{image['id']}/rotate", json={"angle": 30, "background_color": "#ff0000"}
    )
    assert rotated.status_code == 201, rotated.text
    corner = _pixels(api, rotated.json()["id"])[0, 0]
    assert corner[0] > 200 and corner[2] < 60 and corner[3] == alpha
    bad = api.post(f"/v1/images/{image['id']}/rotate", json={"angle": 30, "background_color": "x"})
    assert bad.status_code == 400


def test_errors_name_their_kind_as_the_hosted_api_does(api: httpx.Client) -> None:
    """IMGProcessingAPIError {type: 'https://docs.img-processing.com/errors/not-found',
    error: 'Not Found', status: 404, message}: the SDK's README."""
    missing = api.get("/v1/images/image_exampleid").json()
    assert missing["type"] == "https://docs.img-processing.com/errors/not-found"
    assert (missing["error"], missing["status"], missing["code"]) == ("Not Found", 404, "not_found")
    invalid = api.post("/v1/images", json={"url": "https://example.com/x.jpg"}).json()
    assert invalid["type"] == "https://docs.img-processing.com/errors/validation-error"
    assert invalid["errors"], "one line per invalid field"


def test_pagination_links_behind_a_proxy(make_server: Callable[..., Server]) -> None:
    forwarded = {"X-Forwarded-Host": "api.img-processing.com", "X-Forwarded-Proto": "https"}
    trusting = make_server(trust_forwarded_headers=True)
    with trusting.client(trusting.new_key()) as api:
        for name in ("a", "b", "c"):
            api.post("/v1/images/upload", data={"name": name}, files={"image": _png((1, 2, 3))})
        links = api.get("/v1/images?take=1", headers=forwarded).json()["links"]
        # goToPage() strips exactly this prefix before asking for the next page.
        assert links["next"].startswith("https://api.img-processing.com/v1/images?take=1&from=")
        assert api.get(links["next"].removeprefix("https://api.img-processing.com")).is_success
        spoofed = api.get("/v1/images?take=1", headers={"X-Forwarded-Host": "evil.example/x"})
        assert spoofed.json()["links"]["next"].startswith(trusting.url)
    # Not trusted (the default): a client's own X-Forwarded-* change nothing.
    plain = make_server()
    with plain.client(plain.new_key()) as api:
        for name in ("a", "b"):
            api.post("/v1/images/upload", data={"name": name}, files={"image": _png((1, 2, 3))})
        links = api.get("/v1/images?take=1", headers=forwarded).json()["links"]
        assert links["next"].startswith(plain.url + "/v1/images?take=1&from=")


def test_an_answer_nobody_receives_is_not_billed(
    make_server: Callable[..., Server], photo: Path
) -> None:
    """The SDK gives up after 10 s (ky's timeout). A removal whose client has gone still
    completes and is stored, but its 2 units are not counted."""
    server = make_server(image_workers=1)
    services = cast(FastAPI, server._server.config.app).state.services
    secret = server.new_key()
    key_id = next(k.id for k in server.keys.all() if k.revoked_at is None and k.name == "test")
    with server.client(secret) as api:
        image = api.post(
            "/v1/images/upload", data={"name": "p"}, files={"image": photo.read_bytes()}
        ).json()
        release, running = threading.Event(), threading.Event()

        def block() -> None:
            running.set()
            release.wait(60)

        blocker = threading.Thread(target=lambda: services.images.image_queue.run(block))
        blocker.start()
        assert running.wait(30)
        with pytest.raises(httpx.TimeoutException):
            api.post(
                f"/v1/images/{image['id']}/remove-background", json={"model": "fast"}, timeout=1
            )
        release.set()
        blocker.join(30)
        for _ in range(600):  # the removal finishes after its client left
            if len(api.get("/v1/images").json()["data"]) == 2:
                break
            time.sleep(0.1)
        assert len(api.get("/v1/images").json()["data"]) == 2, "the result is stored"
    counted = {u.key_id: u.images for u in server.keys.usage()}
    assert counted.get(key_id) == 1, "only the upload counts, not the unanswered removal"
