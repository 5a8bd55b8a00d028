"""What the page says when a photo or a request is refused, and that it takes the photos
phones make (HEIC, AVIF), in real headless Chromium."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pillow_heif
from PIL import Image
from playwright.sync_api import Page, expect

from servers import Server
from web import test_page
from web.test_page import add_files, choose_fast, wait_done

# The web page's fixtures (a browser, a server, pages on it), shared with its tests.
browser = test_page.browser
local = test_page.local
page_on = test_page.page_on

# Messages the server sent, and what a card must say for them.
SAID = [
    (
        415,
        "unsupported image format (the data is BMP); accepted here: JPEG, PNG, WebP, HEIC/HEIF "
        "and AVIF; BMP and TIFF are read by the alphacut command line and library",
        None,
        "Unsupported format: the file is BMP. Accepted here: JPEG, PNG, WebP, HEIC/HEIF and "
        "AVIF; BMP and TIFF are read by the alphacut command line and library.",
    ),
    (  # what the data is may hold parentheses of its own (older servers wrote them)
        415,
        "unsupported image format (the data is HEIF/AVIF/MP4 (heic)); accepted here: JPEG, PNG "
        "and WebP",
        None,
        "Unsupported format: the file is HEIF/AVIF/MP4 (heic). Accepted here: JPEG, PNG and WebP.",
    ),
    (
        413,
        "photo too large: 27.1 MB, the limit is 20 MB",
        None,
        "Photo too large: 27.1 MB, the limit is 20 MB.",
    ),
    (
        401,
        "no API key was sent: send it in the x-api-key header",
        "missing_api_key",
        "No API key was sent: set one (the key button at the top).",
    ),
    (
        401,
        "invalid or revoked API key",
        "unauthorized",
        "The API key was refused. Set a valid key (button at the top).",
    ),
]


def test_each_refusal_is_said_in_one_clear_sentence(
    local: Server, page_on: Callable[..., Page]
) -> None:
    page = page_on(local, key=local.new_key())
    for status, message, code, expected in SAID:
        said = page.evaluate(
            "([s, m, c]) => friendlyError(new ApiError(s, m, null, c))", [status, message, code]
        )
        assert said == expected, (message, said)


def test_a_photo_without_a_key_says_none_was_sent(
    server: Server, page_on: Callable[..., Page], photo: Path
) -> None:
    page = page_on(server)
    page.locator("#key-dialog").get_by_role("button", name="Cancel").click()
    add_files(page, photo)
    card = page.locator(".card")
    expect(card).to_have_attribute("data-state", "error", timeout=60_000)
    expect(card.locator(".error")).to_have_text(
        "No API key was sent: set one (the key button at the top)."
    )


def test_the_file_chooser_offers_heic_and_avif(local: Server, page_on: Callable[..., Page]) -> None:
    page = page_on(local, key=local.new_key())
    accept = page.locator("#file-input").get_attribute("accept") or ""
    for kind in ("image/heic", "image/avif", ".heic", ".avif", "image/jpeg"):
        assert kind in accept.split(","), accept
    expect(page.locator("#drop-help")).to_contain_text("HEIC or AVIF")


def test_a_heic_photo_is_cut_out_and_shown_from_the_servers_copy(
    local: Server, page_on: Callable[..., Page], photo: Path, tmp_path: Path
) -> None:
    """Chromium cannot show HEIC: the card shows the JPEG the server stored of it."""
    heic = tmp_path / "phone.heic"
    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.open(photo)).save(buffer, quality=90)
    heic.write_bytes(buffer.getvalue())
    page = page_on(local, key=local.new_key())
    choose_fast(page)
    add_files(page, heic)
    card = page.locator(".card", has_text="phone.heic")
    wait_done(card)
    expect(card.locator(".viewer")).to_be_visible()
    before = card.locator(".before")
    assert before.evaluate("(img) => img.naturalWidth") == 480
