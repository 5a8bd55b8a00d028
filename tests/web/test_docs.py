"""/docs, /redoc and Swagger UI's OAuth2 redirect under their Content-Security-Policy, in
real headless Chromium (issue 22, item 7): they render offline, from this server only, and
the policy blocks nothing of theirs (ReDoc's one outside image, its logo from
cdn.redoc.ly, is blocked: the page hides it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from servers import Server
from web.test_page import CHROMIUM_ARGS, chromium_path

# Records every violation the page sees, before any of its own scripts run.
_WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
    {directive: e.effectiveDirective, blocked: e.blockedURI}));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def docs_server(make_server: Callable[..., Server]) -> Server:
    return make_server(load_models=[], wait_for_models=False)


def _open(browser: Browser, server: Server, path: str) -> tuple[Page, list[str], list[str]]:
    page = browser.new_page()
    console: list[str] = []
    outside: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((server.url, "data:", "blob:"))
            else outside.append(request.url)
        ),
    )
    page.add_init_script(_WATCH)
    response = page.goto(server.url + path)
    assert response is not None and response.status == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    return page, console, outside


def test_swagger_ui_renders_its_operations_under_the_policy(
    browser: Browser, docs_server: Server
) -> None:
    page, console, outside = _open(browser, docs_server, "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 20
    page.locator(".opblock-summary").first.click()  # expand one: React styles still apply
    page.wait_for_timeout(500)
    assert page.evaluate("window.__violations") == []
    assert not [line for line in console if "Content Security Policy" in line], console
    assert outside == []


def test_redoc_renders_under_the_policy(browser: Browser, docs_server: Server) -> None:
    page, _console, _outside = _open(browser, docs_server, "/redoc")
    page.wait_for_selector("[data-section-id]", timeout=30_000)
    assert page.locator("[data-section-id]").count() > 20
    page.wait_for_timeout(500)
    violations = page.evaluate("window.__violations")
    assert all(v["blocked"].startswith("https://cdn.redoc.ly/") for v in violations), violations


def test_the_oauth2_redirect_page_runs_its_script(browser: Browser, docs_server: Server) -> None:
    """Opened on its own it has no opener: its inline script runs (and fails on that), which
    shows the policy's hash lets it run."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(_WATCH)
    page.goto(docs_server.url + "/docs/oauth2-redirect")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__violations") == []
    assert any("swaggerUIRedirectOauth2" in error for error in errors), errors
