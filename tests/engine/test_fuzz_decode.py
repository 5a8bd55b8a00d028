"""Property tests: whatever bytes arrive, decoding ends in an image or a typed error.

Never another exception (a 500), never a hang: random bytes, and valid JPEG/PNG/WebP files
with bytes flipped, cut, repeated or spliced in."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from alphacut.engine.decode import Limits, decode, sniff
from alphacut.errors import AlphacutError

LIMITS = Limits(max_bytes=2_000_000, max_pixels=4_000_000)
PHOTO = Path(__file__).resolve().parents[1] / "fixtures" / "rembg" / "car-1.jpg"


@cache
def seeds() -> dict[str, bytes]:
    with Image.open(PHOTO) as opened:
        image = opened.convert("RGB").resize((96, 72))
    out = {}
    for fmt, options in [("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}),
                         ("WEBP", {}), ("WEBP", {"lossless": True})]:  # fmt: skip
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        out[f"{fmt}{options}"] = buffer.getvalue()
    rgba = image.convert("RGBA")
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    out["PNG rgba"] = buffer.getvalue()
    return out


def _decodes_or_refuses(data: bytes) -> None:
    refusal: AlphacutError | None = None
    try:
        decoded = decode(data, LIMITS)
    except AlphacutError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.message
        assert 400 <= refusal.status < 500
        return
    assert decoded.image.mode in ("RGB", "RGBA")
    assert decoded.image.width * decoded.image.height <= LIMITS.max_pixels


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _decodes_or_refuses(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["\xff\xd8\xff", "\x89PNG\r\n\x1a\n", "RIFF\0\0\0\0WEBPVP8 "]),
       st.binary(max_size=2048))  # fmt: skip
def test_right_magic_then_garbage(magic: str, tail: bytes) -> None:
    data = magic.encode("latin-1") + tail
    sniff(data)
    _decodes_or_refuses(data)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("repeat"), st.integers(0, 10**6), st.integers(1, 64)),
)


@pytest.mark.parametrize("seed", list(seeds()))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=6))
def test_mutated_valid_images(seed: str, mutations: list[tuple[str, int, int]]) -> None:
    data = bytearray(seeds()[seed])
    for kind, where, value in mutations:
        at = where % max(len(data), 1)
        if kind == "flip" and data:
            data[at] ^= value
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes([value]) * 16
        elif kind == "repeat":
            data[at:at] = data[at : at + value] * 8
    _decodes_or_refuses(bytes(data))
