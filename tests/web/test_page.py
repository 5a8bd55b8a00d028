"""The web page in real headless Chromium (Debian's, driven by Playwright), end to end.

Screenshots at desktop and phone widths are written to ``test-output/`` in the repository.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from alphacut.api.web import CONTENT_SECURITY_POLICY
from servers import Server

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str:
    path = os.environ.get("ALPHACUT_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed: `make test` installs it (scripts/install-chromium)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def local(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture
def page_on(browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts = []

    def open_page(server: Server, viewport: ViewportSize = DESKTOP, key: str = "") -> Page:
        """The page, opened as `alphacut serve`'s link opens it when ``key`` is given."""
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        outside: list[str] = []
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((server.url, "blob:", "data:"))
                else outside.append(request.url)
            ),
        )
        page.outside_requests = outside  # type: ignore[attr-defined]
        page.goto(server.url + "/" + (f"#key={key}" if key else ""))
        return page

    yield open_page
    for context in contexts:
        context.close()


def choose_fast(page: Page) -> None:
    page.get_by_label("Fast").check()


def add_files(page: Page, *paths: Path) -> None:
    page.set_input_files("#file-input", [str(path) for path in paths])


def wait_done(card: Any, timeout: float = 120_000) -> None:
    """Wait for a card to finish; on failure, say what the card says."""
    card.locator(":scope[data-state=done], :scope[data-state=error]").wait_for(timeout=timeout)
    state = card.get_attribute("data-state")
    assert state == "done", card.locator(".error").inner_text()


def _downloaded(page: Page, button: Any) -> Image.Image:
    with page.expect_download() as info:
        button.click()
    path = info.value.path()
    image = Image.open(io.BytesIO(Path(path).read_bytes()))
    image.load()
    return image


def test_upload_result_download_and_screenshots(
    local: Server, page_on: Callable[..., Page], photo: Path, portrait: Path
) -> None:
    page = page_on(local, key=local.new_key())
    expect(page.locator("#key-label")).to_contain_text("(from link)")
    choose_fast(page)
    add_files(page, photo, portrait)
    cards = page.locator(".card")
    expect(cards).to_have_count(2)
    for index in range(2):
        wait_done(cards.nth(index))
    car = page.locator(".card", has_text="car-1.jpg")
    expect(car.locator(".card-status")).to_contain_text("480×360")  # noqa: RUF001

    png = _downloaded(page, car.get_by_role("button", name="PNG"))
    assert (png.format, png.mode, png.size) == ("PNG", "RGBA", (480, 360))
    alpha = np.asarray(png.getchannel("A"))
    assert (alpha == 0).mean() > 0.2, "real transparency around the car"
    assert (alpha > 200).mean() > 0.1, "and an opaque subject"

    webp = _downloaded(page, car.get_by_role("button", name="WebP"))
    assert (webp.format, webp.size) == ("WEBP", (480, 360))
    car.get_by_label("Colour", exact=True).check()
    car.locator("input[type=color]").fill("#ff0000")
    jpeg = _downloaded(page, car.get_by_role("button", name="JPEG"))
    assert (jpeg.format, jpeg.mode, jpeg.size) == ("JPEG", "RGB", (480, 360))
    corner = np.asarray(jpeg)[alpha == 0].mean(axis=0)
    assert corner[0] > 200 and corner[1] < 60, "the chosen red background"

    car.get_by_label("Mask").check()
    mask = car.locator("canvas.mask")
    expect(mask).to_be_visible()
    assert mask.evaluate("c => [c.width, c.height]") == [480, 360]

    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "web-desktop.png"), full_page=True)
    assert page.outside_requests == []  # type: ignore[attr-defined]
    with local.client(local.new_key()) as api:
        assert api.get("/v1/images").json()["data"] == []


def test_phone_layout_and_a_bad_file(
    local: Server, page_on: Callable[..., Page], photo: Path, tmp_path: Path
) -> None:
    page = page_on(local, PHONE, key=local.new_key())
    choose_fast(page)
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is a text file with a .jpg name")
    add_files(page, bad, photo)
    failed = page.locator(".card", has_text="holiday.jpg")
    expect(failed).to_have_attribute("data-state", "error", timeout=60_000)
    expect(failed.locator(".error")).to_contain_text("Unsupported format")
    expect(failed.locator(".stage")).to_be_hidden()  # no broken-image preview
    expect(failed.get_by_role("button", name="Try again")).to_be_visible()
    wait_done(page.locator(".card", has_text="car-1.jpg"))
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "no sideways scrolling on a phone"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "web-phone.png"), full_page=True)


def test_too_big_and_url_intake(
    make_server: Callable[..., Server], page_on: Callable[..., Page], portrait: Path
) -> None:
    small = make_server(max_upload_bytes=100_000)
    page = page_on(small, key=small.new_key())
    add_files(page, portrait)  # 216 kB
    card = page.locator(".card")
    expect(card).to_have_attribute("data-state", "error", timeout=60_000)
    expect(card.locator(".error")).to_contain_text("Too big")
    page.locator("#url-input").fill("http://127.0.0.1:9/internal.jpg")
    page.get_by_role("button", name="Fetch").click()
    refused = page.locator(".card", has_text="internal.jpg")
    expect(refused.locator(".error")).to_contain_text("internal address", timeout=60_000)


def test_keyboard_opens_the_file_chooser(local: Server, page_on: Callable[..., Page]) -> None:
    page = page_on(local, key=local.new_key())
    expect(page.locator("#key-label")).to_contain_text("(from link)")
    page.locator("body").press("Tab")  # first stop: the key button
    for _ in range(5):
        if page.evaluate("document.activeElement.id") == "dropzone":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "dropzone"
    # Whether the browser then shows its dialog is the browser's business (and flaky to
    # intercept headless); what the page owes is a click on the multi-file input.
    page.evaluate(
        """() => {
            window.chooserOpened = 0;
            const input = document.getElementById("file-input");
            input.addEventListener("click", (event) => {
                window.chooserOpened += 1;
                window.chooserMultiple = input.multiple;
                event.preventDefault();
            });
        }"""
    )
    page.keyboard.press("Enter")
    page.keyboard.press("Space")
    assert page.evaluate("window.chooserOpened") == 2
    assert page.evaluate("window.chooserMultiple") is True


def test_key_is_asked_for_and_remembered_without_a_link(
    server: Server, page_on: Callable[..., Page]
) -> None:
    page = page_on(server)
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.locator("#key-input").fill("test_" + "x" * 40)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#key-error")).to_contain_text("refused")
    secret = server.new_key()
    page.locator("#key-input").fill(secret)
    page.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#key-label")).to_contain_text(secret[:9])
    page.reload()
    expect(page.locator("#key-label")).to_contain_text(secret[:9])
    expect(dialog).to_be_hidden()


def test_key_from_the_start_up_link(
    server: Server, page_on: Callable[..., Page], photo: Path
) -> None:
    """`alphacut serve` prints ``/#key=...``: the page keeps the key and drops the fragment,
    which no request carries."""
    secret, key = server.keys.create("web page of a test", "test")
    page = page_on(server, key=secret)
    expect(page.locator("#key-label")).to_contain_text(f"{secret[:9]}… (from link)")
    expect(page.locator("#key-dialog")).to_be_hidden()
    assert page.url == server.url + "/", "the key is off the address bar"
    assert page.evaluate("location.hash") == ""
    assert page.evaluate("localStorage.getItem('alphacut.apiKey')") == secret
    page.reload()
    expect(page.locator("#key-label")).to_contain_text(f"{secret[:9]}… (from link)")
    server.keys.revoke(key.id)  # what stopping the server does
    add_files(page, photo)
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#key-error")).to_contain_text("Open the link it printed")
    assert page.outside_requests == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "evil.example"], ids=lambda h: h
)
def test_no_key_is_handed_out_over_http(server: Server, host: str) -> None:
    """A reverse proxy on the same machine sends loopback peers and a loopback Host: no
    request, whatever it says, gets a key."""
    port = server.url.rsplit(":", 1)[1]
    response = httpx.get(f"{server.url}/web/local-key", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 404
    assert "test_" not in response.text and "live_" not in response.text


@pytest.mark.parametrize(
    "path", ["/", "/static/index.html", "/static/app.js", "/static/app.css", "/static/icon.svg"]
)
def test_page_security_headers(server: Server, path: str) -> None:
    response = httpx.get(f"{server.url}{path}")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"


def test_page_loads_nothing_from_elsewhere(server: Server) -> None:
    assert "http" not in httpx.get(f"{server.url}/static/app.css").text.replace("http://www.w3", "")
