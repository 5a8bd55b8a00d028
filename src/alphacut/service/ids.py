"""Identifiers and secrets. All server-generated, from the operating system's CSPRNG."""

from __future__ import annotations

import secrets
import string

_LOWER_ALNUM = string.ascii_lowercase + string.digits
_BASE62 = string.ascii_letters + string.digits


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_image_id() -> str:
    """``image_`` + 24 lowercase alphanumerics, as the IMG Processing API's ids are."""
    return "image_" + _random(_LOWER_ALNUM, 24)


def new_key_id() -> str:
    return "key_" + _random(_LOWER_ALNUM, 12)


def new_key_secret(stage: str) -> str:
    """``test_`` or ``live_`` + 40 base62 characters (about 238 bits)."""
    return f"{stage}_" + _random(_BASE62, 40)


def new_public_token() -> str:
    """An unguessable path segment for a published image (256 bits)."""
    return secrets.token_urlsafe(32)
