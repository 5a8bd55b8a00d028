"""Images sent inside a request as base64 text: plain, or a ``data:image/...;base64,`` URI.

Every dialect that takes one (remove.bg's ``image_file_b64``, a Ximilar record's ``_base64``)
decodes it here: the text is refused before decoding when it could only make an image over
the byte limit, whitespace is ignored (as line-wrapped base64 has it), anything else that is
not base64 is a 400 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import re

from alphacut.errors import ImageTooLargeError, InvalidInputError, size_text

_DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def decode_inline_image(field: str, value: object, max_bytes: int) -> bytes:
    """The image bytes of ``value`` (the text of the request's ``field``)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string of base64 text")
    if len(value) > (max_bytes * 4) // 3 + 200:
        note = f" ({size_text(len(value))} as base64)"
        raise ImageTooLargeError.over_bytes(len(value) * 3 // 4, max_bytes, note=note)
    payload = _WHITESPACE.sub("", _DATA_URI.sub("", value.strip(), count=1))
    try:
        data = base64.b64decode(payload.encode("ascii", "replace"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{field} is not valid base64 data") from None
    if len(data) > max_bytes:
        raise ImageTooLargeError.over_bytes(len(data), max_bytes)
    return data
