"""The fleet `scripts/fleet up` starts (`make test-fleet`): its two API replicas share one
database, one bucket and one broker, and removals run on its workers."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server

pytestmark = pytest.mark.skipif(
    "ALPHACUT_TEST_FLEET" not in __import__("os").environ,
    reason="needs a fleet from scripts/fleet up (make test-fleet)",
)


def test_the_replicas_share_one_store_and_one_engine(
    fleet: Any, server: Server, photo: Path
) -> None:
    first, second = fleet.replicas
    key = server.new_key()  # the fleet's database: every replica knows it
    one = httpx.Client(base_url=first, headers={"x-api-key": key}, timeout=120)
    two = httpx.Client(base_url=second, headers={"x-api-key": key}, timeout=120)
    with one, two:
        for replica in (one, two):
            ready = replica.get("/readyz")
            assert ready.status_code == 200, ready.text
        image = one.post(
            "/v1/images/upload", data={"name": "car"}, files={"image": photo.read_bytes()}
        ).json()
        assert two.get(f"/v1/images/{image['id']}").json() == image
        cut = two.post(f"/v1/images/{image['id']}/remove-background", json={"model": "fast"})
        assert cut.status_code == 201, cut.text
        assert (
            one.get(f"/v1/images/{cut.json()['id']}/download").content[:8] == b"\x89PNG\r\n\x1a\n"
        )
        record = {"_base64": base64.b64encode(photo.read_bytes()).decode(), "binary_mask": True}
        batch = one.post(
            "/removebg/fast/removebg",
            headers={"Authorization": f"Token {key}"},
            json={"records": [record]},
        ).json()
        assert batch["records"][0]["_status"]["code"] == 200
        assert httpx.get(batch["records"][0]["_output_url_mask"]).status_code == 200
        assert two.delete(f"/v1/images/{image['id']}").status_code == 204
        assert one.get(f"/v1/images/{image['id']}").status_code == 404
