"""The per-key limit on model loads (ALPHACUT_MODEL_LOADS_PER_KEY_PER_HOUR)."""

from __future__ import annotations

import pytest

from alphacut.errors import RateLimitedError
from alphacut.service.model_loads import LoadLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_past_its_loads_waits_for_the_oldest_to_age() -> None:
    clock = Clock()
    limiter = LoadLimiter(2, window=3600, clock=clock)
    limiter.charge("a")
    clock.now += 100
    limiter.charge("a")
    with pytest.raises(RateLimitedError) as refused:
        limiter.charge("a")
    assert refused.value.status == 429 and refused.value.retry_after == 3500
    limiter.charge("b")  # another key is not held back
    clock.now += 3500
    limiter.charge("a")  # the first load is an hour old


def test_the_keys_tracked_are_bounded() -> None:
    limiter = LoadLimiter(1, max_keys=3, clock=Clock())
    for key in "abcdef":
        limiter.charge(key)
    assert len(limiter._loads) == 3
