"""The JSON body scan (``alphacut.api.limits.json_shape`` / ``parse_json``): exact depth and
value counts whatever the strings hold, across chunk boundaries, and the refusals."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphacut.api import limits
from alphacut.api.limits import json_shape, parse_json
from alphacut.errors import InvalidInputError

# Strings built to fool a scanner: quotes, runs of backslashes, brackets and commas inside.
TRICKY = st.text(alphabet='"\\[]{},: aé\n/', max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=30,
)


def reference(value: Any) -> tuple[int, int]:
    """(depth, values) as the scan defines them: a container counts its opening and one per
    comma between its items."""
    if isinstance(value, list | dict):
        items = list(value.values()) if isinstance(value, dict) else value
        inner = [reference(item) for item in items]
        depth = 1 + max((d for d, _ in inner), default=0)
        return depth, 1 + max(0, len(items) - 1) + sum(n for _, n in inner)
    return 0, 0


@settings(max_examples=300, deadline=None)
@given(value=JSON, chunk=st.sampled_from([1, 2, 3, 7, 1 << 20]))
def test_the_scan_counts_exactly_as_json_parses(value: Any, chunk: int) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    original = limits._SCAN_CHUNK
    limits._SCAN_CHUNK = chunk  # every chunk boundary: inside strings, escapes, brackets
    try:
        assert json_shape(body, 10_000, 10_000_000) == reference(value)
    finally:
        limits._SCAN_CHUNK = original


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64"),
        (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, "nested deeper than 64"),
        (b"[" + b"[]," * 200_000 + b"[]]", "more than 100,000 values"),
        (b"[" + b"0," * 200_000 + b"0]", "more than 100,000 values"),
        (b'{"x": NaN}', "non-finite"),
        (b'{"x": Infinity}', "non-finite"),
        (b'{"x": -Infinity}', "non-finite"),
        (b'{"x": 1e400}', "non-finite"),
        (b'{"x": "\xff"}', "UTF-8"),
        (b"\xff\xfe[\x00]\x00", "UTF-8"),  # UTF-16: json.loads would take it, the scan not
        (b'{"x": ', "not valid"),
    ],
    ids=lambda value: value[:12] if isinstance(value, bytes) else value,
)
def test_bodies_past_the_bounds_are_400(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_json(body, 64, 100_000)


def test_nesting_inside_strings_is_not_structure() -> None:
    text = "[" * 1000 + '\\"' + "{" * 1000
    assert parse_json(json.dumps({"note": text}).encode(), 64, 100_000) == {"note": text}
    assert parse_json(b"[" * 64 + b"]" * 64, 64, 100_000) is not None


def test_a_63_mb_body_is_scanned_in_well_under_a_second_per_kind() -> None:
    """Each kind of 63 MB body is scanned (and refused, or parsed) in bounded time: today's
    figures are ~0.1 s for the list bomb and ~1 s for a string of escapes (json.loads alone
    took 7 s on the bomb, and a regex over the escapes 5 s)."""
    bodies = [
        b"[" + b"[]," * 21_000_000 + b"[]]",
        b"[" + b'"a",' * 15_700_000 + b'"a"]',
        b'{"x":"' + b'\\"' * 31_000_000 + b'"}',
    ]
    for body in bodies:
        started = time.monotonic()
        with contextlib.suppress(InvalidInputError):
            parse_json(body, 64, 100_000)
        assert time.monotonic() - started < 10
