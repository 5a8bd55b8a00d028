"""``GET /v1.0/account`` (issue 22, item 6): usage over the documented 30 days only, and only
the caller's, read without a group-by over every key's usage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from alphacut.storage.database import Database
from servers import Server


@pytest.fixture(scope="module")
def bare(make_server: Callable[..., Server]) -> Server:
    return make_server(load_models=[], wait_for_models=False)


def test_account_counts_this_keys_last_30_days_only(
    bare: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, key = bare.keys.create("mine", "test")
    _other_secret, other = bare.keys.create("theirs", "test")
    today = datetime.now(UTC).date()
    db = bare.keys.db
    db.record_usage(key.id, today - timedelta(days=400), requests=1000, images=1000)
    db.record_usage(key.id, today - timedelta(days=30), requests=100, images=100)  # day 31
    db.record_usage(key.id, today - timedelta(days=29), requests=5, images=3)  # day 30
    db.record_usage(other.id, today, requests=50, images=50)

    def no_group_by(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the account read every key's usage")

    monkeypatch.setattr(Database, "usage", no_group_by)
    response = httpx.get(bare.url + "/v1.0/account", headers={"X-Api-Key": secret})
    assert response.status_code == 200, response.text
    # This request itself is counted today (requests +1) before the answer is made.
    assert response.json()["data"]["attributes"]["usage"] == {"requests": 6, "images": 3}
