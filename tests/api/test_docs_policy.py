"""The documentation pages' Content-Security-Policy header (issue 22, item 7; the pages
themselves are driven in Chromium in tests/web/test_docs.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import httpx
import pytest

from servers import Server


@pytest.fixture(scope="module")
def bare(make_server: Callable[..., Server]) -> Server:
    return make_server(load_models=[], wait_for_models=False)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_have_a_strict_policy(bare: Server, path: str) -> None:
    response = httpx.get(bare.url + path)
    assert response.status_code == 200
    policy = {
        part.split()[0]: part.split()[1:]
        for part in response.headers["content-security-policy"].split(";")
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert not [
        source
        for source in (s for sources in policy.values() for s in sources)
        if "://" in source or source == "*"
    ]
    # Each inline script is allowed by its own hash, and nothing else inline.
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
        for text in inline
    }
    assert set(scripts) == {"'self'", *hashes}
    # The assets are this server's (fastapi-offline), never a CDN's.
    assert not re.search(r"(src|href)=\"https?://", response.text)


def test_the_page_keeps_its_own_policy_and_the_api_has_none_added(bare: Server) -> None:
    assert "script-src 'self';" in httpx.get(bare.url + "/").headers["content-security-policy"]
    assert "content-security-policy" not in httpx.get(bare.url + "/healthz").headers
