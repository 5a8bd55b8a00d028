"""The web page: one HTML file, a stylesheet and a script, all served from this package.

A service bound to a loopback address may hand the page a key of its own, so that it works
right after ``make serve``: the key is created at start-up (the previous one revoked) and
given only to requests that come from a loopback address *and* name a loopback host (a
foreign site rebinding its DNS name to 127.0.0.1 sends its own name in Host and gets
nothing). A service on any other address never offers one.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from alphacut.errors import NotFoundError
from alphacut.service.keys import KeyService

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
LOCAL_KEY_NAME = "local web page"
LOCAL_KEY_ENV = "ALPHACUT_LOCAL_WEB_KEY"  # from `alphacut serve` to its worker processes
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

router = APIRouter(include_in_schema=False)


def make_local_key(keys: KeyService) -> str:
    """A fresh key for the local web page; the previous start's one is revoked."""
    for key in keys.all():
        if key.name == LOCAL_KEY_NAME and key.revoked_at is None:
            keys.revoke(key.id)
    secret, _key = keys.create(LOCAL_KEY_NAME, "test")
    return secret


static_files = StaticFiles(directory=WEB_DIR)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(
        WEB_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
    )


def is_loopback_request(request: Request) -> bool:
    client = request.client.host if request.client else ""
    try:
        from_loopback = ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False
    host = request.headers.get("host", "").lower()
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return from_loopback and hostname in _LOOPBACK_HOSTS


@router.get("/web/local-key")
def local_key(request: Request) -> JSONResponse:
    offered: str | None = getattr(request.app.state, "local_key", None)
    if not offered or not is_loopback_request(request):
        raise NotFoundError("not found")
    return JSONResponse({"key": offered}, headers={"Cache-Control": "no-store"})
