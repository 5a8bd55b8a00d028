"""Rate limits hold across replicas when their counters are shared (Redis), and are per
process with the default memory:// storage."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from alphacut.api.limits import RateLimiter
from alphacut.config import Settings
from alphacut.errors import RateLimitedError
from servers import Server, start_server


def _replicas(data_dir: Path, storage: str) -> list[Server]:
    """Two servers on one data directory (one database: the same keys)."""
    settings = Settings(data_dir=data_dir, rate_limit_per_minute=4, rate_limit_storage=storage)
    return [start_server(settings) for _ in range(2)]


@pytest.mark.parametrize("storage", ["redis", "memory"])
def test_the_limit_holds_across_two_replicas_only_with_shared_storage(
    storage: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("redis_url") if storage == "redis" else "memory://"
    replicas = _replicas(tmp_path, url)
    try:
        secret = replicas[0].new_key()
        clients = [replica.client(secret) for replica in replicas]
        answers = [clients[n % 2].get("/v1/images") for n in range(8)]  # alternating
        codes = [answer.status_code for answer in answers]
        if storage == "redis":
            assert codes == [200] * 4 + [429] * 4, "4 a minute in all, whichever replica"
            refused = answers[4]
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert refused.json()["code"] == "rate_limited"
            assert "rate limit of 4 requests per minute exceeded" in refused.json()["message"]
            other = replicas[1].client(replicas[1].new_key())
            assert other.get("/v1/images").status_code == 200, "limits are per key"
            other.close()
        else:
            assert codes == [200] * 8, "memory:// counts per process: 4 on each replica"
        for client in clients:
            client.close()
    finally:
        for replica in replicas:
            replica.stop()


def test_unreachable_shared_storage_lets_requests_through() -> None:
    limiter = RateLimiter(1, "redis://127.0.0.1:1")  # nothing listens on port 1
    assert limiter.check("key_a") is None, "no count to report: no X-RateLimit-* headers"
    limiter.check("key_a")  # would be refused if the counter could be reached


def test_memory_limiter_refuses_with_retry_after() -> None:
    limiter = RateLimiter(2)
    first = limiter.check("key_a")
    assert first is not None and (first.limit, first.remaining) == (2, 1)
    limiter.check("key_a")
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("key_a")
    assert 1 <= refused.value.retry_after <= 60
    limiter.check("key_b")


def test_remove_bgs_rate_limit_headers_count_the_whole_fleet(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """X-RateLimit-Remaining is read from the shared counter: requests to either replica
    count down one window, which resets when its first request leaves it."""
    settings = Settings(
        data_dir=tmp_path,
        rate_limit_per_minute=4,
        rate_limit_storage=request.getfixturevalue("redis_url"),
        load_models=[],
    )
    replicas = [start_server(settings, wait_for_models=False) for _ in range(2)]
    try:
        secret = replicas[0].new_key()
        answers = [
            httpx.get(replicas[n % 2].url + "/v1.0/account", headers={"X-Api-Key": secret})
            for n in range(5)
        ]
        assert [a.status_code for a in answers] == [200] * 4 + [429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["3", "2", "1", "0", "0"]
        assert {a.headers["x-ratelimit-limit"] for a in answers} == {"4"}
        assert len({a.headers["x-ratelimit-reset"] for a in answers}) == 1
    finally:
        for replica in replicas:
            replica.stop()
