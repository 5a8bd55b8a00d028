"""Property tests on request parsing: whatever JSON arrives, the Ximilar request checks, its
option parser and the inline (base64) image decoder end in a value or a typed 4xx error,
never another exception (which would be a 500). The HTTP-level counterpart is
tests/api/test_contract.py."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alphacut.api.inline import decode_inline_image
from alphacut.api.ximilar import OPTION_NAMES, Options, check_request
from alphacut.errors import AlphacutError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
OPTION_VALUES = st.one_of(
    JSON, st.sampled_from(["png", "PNG", "jpg", "jpeg", "webp", "auto", "gif", ""]),
    st.integers(-5, 105),
)  # fmt: skip
OPTIONS = st.dictionaries(st.sampled_from([*OPTION_NAMES, "_url", "_id"]), OPTION_VALUES)


def _client_error(exc: AlphacutError) -> None:
    assert 400 <= exc.status < 500, exc
    assert exc.message


@settings(max_examples=400, deadline=None)
@given(
    body=st.one_of(
        JSON,
        st.fixed_dictionaries({"records": JSON}, optional={"x": JSON}),
        st.fixed_dictionaries({"records": st.lists(OPTIONS, max_size=5)}),
    )
)
def test_request_checks_end_in_records_or_a_4xx(body: Any) -> None:
    try:
        records, options = check_request(body, 3)
    except AlphacutError as exc:
        _client_error(exc)
        return
    assert 1 <= len(records) <= 3 and all(isinstance(record, dict) for record in records)
    assert isinstance(options, Options)


@settings(max_examples=400, deadline=None)
@given(top=OPTIONS, record=OPTIONS)
def test_options_parse_to_valid_values_or_a_4xx(
    top: dict[str, Any], record: dict[str, Any]
) -> None:
    try:
        options = Options.parse(record, Options.parse(top))
    except AlphacutError as exc:
        _client_error(exc)
        return
    assert isinstance(options.binary_mask, bool) and isinstance(options.white_background, bool)
    assert 1 <= options.image_quality <= 100 and not isinstance(options.image_quality, bool)
    if record.get("image_quality") is not None:
        assert options.image_quality == record["image_quality"], "the record's own option wins"


@settings(max_examples=400, deadline=None)
@given(
    value=st.one_of(
        JSON,
        st.binary(max_size=300).map(lambda data: base64.b64encode(data).decode()),
        st.binary(max_size=300).map(
            lambda data: "data:image/png;base64," + base64.b64encode(data).decode()
        ),
        st.text(alphabet="ABCDabcd0123+/=\n \t-_", max_size=300),
    )
)
def test_base64_decodes_exactly_or_fails_with_a_4xx(value: Any) -> None:
    try:
        data = decode_inline_image("_base64", value, 200)
    except AlphacutError as exc:
        _client_error(exc)
        return
    assert isinstance(data, bytes) and len(data) <= 200
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    assert base64.b64encode(data) == base64.b64encode(base64.b64decode("".join(payload.split())))
