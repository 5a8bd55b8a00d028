"""Backgrounds on the web page (issue 26), in real headless Chromium against a real server:
a colour, a photo, the original blurred and a shadow, each applied by the images API's
``background`` operation; the pixels shown and downloaded are checked, with the editor's
corrections, a batch, the keyboard and a phone.

Screenshots at 1366x900 and 390x844 are written to ``test-output/``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from servers import Server
from web import test_page
from web.test_editor import Photo, _nothing_left, _open_editor, _run, _settled
from web.test_page import (
    LAPTOP,
    OUTPUT,
    PHONE,
    _download,
    _downloaded,
    _one_done,
    _open_card,
    add_files,
    choose_fast,
    wait_done,
)

browser = test_page.browser
local = test_page.local
page_on = test_page.page_on

BLUE = (31, 111, 235)  # the "Blue" swatch, #1f6feb
GREEN = (40, 160, 60)


def _shown(card: Locator, kind: str) -> None:
    """Wait until the viewer shows the server's result for a choice of ``kind``."""
    expect(card).to_have_attribute("data-background", _containing(kind), timeout=60_000)
    expect(card.locator("img.composed")).to_be_visible()
    expect(card.locator("img.cut")).to_be_hidden()


def _containing(word: str) -> re.Pattern[str]:
    """A cache key of a choice of ``word`` (the page's ``version|kind|colour|photo|shadow``)."""
    return re.compile(f"\\|{word}\\|")


def _png(card: Locator, page: Page) -> npt.NDArray[np.uint8]:
    image = _downloaded(page, card.get_by_role("button", name="PNG"))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGBA"))


def _visible_pixel(card: Locator, x: int, y: int) -> list[int]:
    """The pixel (x, y) of the image the viewer shows, read from the <img> itself."""
    pixel = card.locator("img.composed").evaluate(
        """(img, [x, y]) => {
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            return [...context.getImageData(x, y, 1, 1).data];
        }""",
        [x, y],
    )
    return [int(value) for value in pixel]


def _names_become(page: Page, server: Server, key: str, names: list[str]) -> list[str]:
    """The names of the key's images on the server, once they are ``names`` (a result's
    delete is sent without waiting for it: poll a while); fails with what is there."""
    with server.client(key) as api:
        for _ in range(50):
            there = sorted(image["name"] for image in api.get("/v1/images").json()["data"])
            if there == names:
                return there
            page.wait_for_timeout(100)
    raise AssertionError(f"images on the server: {there}, not {names}")


def _green_photo(tmp_path: Path) -> Path:
    path = tmp_path / "lawn.png"
    Image.new("RGB", (300, 200), GREEN).save(path)
    return path


def test_colour_photo_blur_and_shadow_change_the_pixels(
    local: Server, page_on: Callable[..., Page], photo: Path, tmp_path: Path
) -> None:
    key = local.new_key()
    page = page_on(local, LAPTOP, key=key)
    page.clock.install()  # time runs as usual, until fast_forward below
    card = _one_done(page, photo)
    cut = _png(card, page)
    empty = cut[..., 3] == 0
    solid = cut[..., 3] == 255
    ys, xs = np.nonzero(empty)
    corner = (int(xs[0]), int(ys[0]))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/background") else None)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/upload") else None)

    # A swatch, by the keyboard: the server's cut-out on that colour, shown and downloaded.
    swatch = card.get_by_role("button", name="Blue")
    swatch.focus()
    page.keyboard.press("Enter")
    _shown(card, "color")
    expect(swatch).to_have_attribute("aria-pressed", "true")
    expect(card.get_by_label("Colour", exact=True)).to_be_checked()
    assert _visible_pixel(card, *corner) == [*BLUE, 255], "the viewer shows the colour"
    on_blue = _png(card, page)
    assert (on_blue[empty][:, :3] == BLUE).all(), "every transparent pixel is now the colour"
    assert (on_blue[..., 3] == 255).all()
    assert np.array_equal(on_blue[solid], cut[solid]), "the subject is unchanged"
    jpeg = np.asarray(_downloaded(page, card.get_by_role("button", name="JPEG")), dtype=int)
    assert np.abs(jpeg[empty].mean(axis=0) - BLUE).max() < 4, "the JPEG carries it too"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "web-background-colour-desktop.png"))

    # A photo of one's own, chosen with the file chooser.
    card.locator(".bg-photo-file").set_input_files(str(_green_photo(tmp_path)))
    _shown(card, "photo")
    expect(card.get_by_label("Photo", exact=True)).to_be_checked()
    expect(card.locator(".bg-photo-name")).to_have_text("lawn.png")
    on_lawn = _png(card, page)
    assert (np.abs(on_lawn[empty][:, :3].astype(int) - GREEN) <= 1).all(), "the photo behind"
    assert _visible_pixel(card, *corner)[:3] == list(on_lawn[corner[1], corner[0], :3])
    page.screenshot(path=str(OUTPUT / "web-background-photo-desktop.png"))

    # Back to the colour: kept, so nothing is asked of the server again.
    before = len(asked)
    card.get_by_label("Colour", exact=True).check()
    _shown(card, "color")
    assert _visible_pixel(card, *corner) == [*BLUE, 255]
    assert len(asked) == before, "a choice made before is shown from the page's copy"

    # The original blurred: around the subject, the photo's own pixels, smoothed.
    card.get_by_label("Blur", exact=True).check()
    _shown(card, "blur")
    blurred = _png(card, page)[..., :3].astype(float)
    with Image.open(photo) as opened:
        original = np.asarray(opened.convert("RGB")).astype(float)
    inner = empty.copy()
    inner[:, :20] = inner[:, -20:] = False
    inner[:20] = inner[-20:] = False

    def detail(pixels: npt.NDArray[np.float64]) -> float:
        return float(np.abs(np.diff(pixels, axis=1))[inner[:, 1:]].mean())

    assert detail(blurred) < 0.6 * detail(original), (detail(blurred), detail(original))
    assert np.abs(blurred[inner].mean(axis=0) - original[inner].mean(axis=0)).max() < 12
    page.screenshot(path=str(OUTPUT / "web-background-blur-desktop.png"))

    # A shadow alone keeps the transparency, under the subject only.
    card.get_by_label("Transparent").check()
    expect(card.locator("img.cut")).to_be_visible()
    card.get_by_label("Shadow").check()
    _shown(card, "transparent")
    shadowed = _png(card, page)
    assert (shadowed[..., 3] == 0).mean() > 0.1, "still transparent away from the subject"
    assert ((shadowed[..., 3] > 0) & empty).sum() > 200, "a shadow where it was transparent"

    # Five choices, three uploads: the cut-out, the lawn and the original, each sent once and
    # kept on the server while the controls are in use; every result deleted once downloaded.
    assert len(uploads) == 3, uploads
    assert _names_become(page, local, key, ["background", "background", "cutout.png"])
    # Left alone, the page deletes them.
    page.clock.fast_forward(31_000)
    _nothing_left(page, local, key)


def test_a_correction_gets_the_background_again(
    local: Server, page_on: Callable[..., Page], photo: Path
) -> None:
    """The background goes under the corrected cut-out: erased pixels become the colour."""
    page = page_on(local, LAPTOP, key=local.new_key())
    card = _one_done(page, photo)
    alpha = _png(card, page)[..., 3]
    erase = _run(alpha, 255, 80)
    card.get_by_role("button", name="Red").click()
    _shown(card, "color")
    red = (209, 36, 47)
    assert (_png(card, page)[erase[2], erase[0] : erase[1], :3] != red).any()

    editor = _open_editor(page, card)
    editor.get_by_label("Erase").check()
    Photo(page, (480, 360)).drag((erase[0], erase[2]), (erase[1], erase[2]))
    _settled(editor, 1)
    editor.get_by_role("button", name="Done").click()
    expect(editor).to_be_hidden()
    _shown(card, "color")
    corrected = _png(card, page)
    assert (corrected[erase[2], erase[0] + 12 : erase[1] - 12, :3] == red).all()
    # Dismissed, the card takes its copies on the server with it (the first cut-out's went
    # when the correction replaced it).
    key = page.evaluate("localStorage.getItem('alphacut.apiKey')")
    card.locator(".dismiss").click()
    _nothing_left(page, local, key)


def test_a_batch_takes_one_background_and_zips_it(
    local: Server, page_on: Callable[..., Page], photo: Path, portrait: Path
) -> None:
    key = local.new_key()
    page = page_on(local, LAPTOP, key=key)
    choose_fast(page)
    add_files(page, photo, portrait)
    cards = page.locator(".card")
    for index in range(2):
        wait_done(cards.nth(index))
    car = page.locator(".card", has_text="car-1.jpg")
    person = page.locator(".card", has_text="cloth-1.jpg")
    _open_card(car)
    car.get_by_role("button", name="Black").click()
    _shown(car, "color")
    car.get_by_role("button", name="Use this background for all").click()
    _shown(person, "color")  # its thumbnail too
    page.screenshot(path=str(OUTPUT / "web-background-batch.png"), full_page=True)
    name, data = _download(page, page.get_by_role("button", name="Download all (ZIP)"))
    assert name == "alphacut-cutouts.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["car-1-cutout.png", "cloth-1-cutout.png"]
        for member in archive.namelist():
            image = np.asarray(Image.open(io.BytesIO(archive.read(member))).convert("RGBA"))
            assert tuple(image[2, 2]) == (0, 0, 0, 255), member
    # Leaving the page deletes the cut-outs' copies it kept for the backgrounds.
    assert _names_become(page, local, key, ["cutout.png", "cutout.png"])
    page.goto("about:blank")
    _nothing_left(page, local, key)


def test_phone_background_controls_beside_the_image(
    local: Server, page_on: Callable[..., Page], photo: Path, tmp_path: Path
) -> None:
    """On a phone the choices sit right above the image: what they change is in sight."""
    # No smooth scrolling (the page reveals a new result with one): positions are final.
    page = page_on(local, PHONE, key=local.new_key(), reduced_motion="reduce")
    card = _one_done(page, photo)
    card.get_by_role("button", name="Blue").click()
    _shown(card, "color")
    stage = card.locator(".stage")
    card.locator(".view-bar").evaluate("bar => bar.scrollIntoView({block: 'start'})")
    for control in [
        card.get_by_label("Colour", exact=True),
        card.get_by_label("Photo", exact=True),
        card.get_by_role("button", name="Blue"),
        card.get_by_role("button", name="Choose photo…"),
        card.get_by_label("Shadow"),
    ]:
        expect(control).to_be_in_viewport()
    expect(stage).to_be_in_viewport(ratio=0.9)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "no sideways scrolling on a phone"
    page.screenshot(path=str(OUTPUT / "web-background-phone.png"))
    card.locator(".bg-photo-file").set_input_files(str(_green_photo(tmp_path)))
    _shown(card, "photo")
    card.get_by_label("Shadow").check()
    expect(card).to_have_attribute("data-background", re.compile(r"\|photo\|.*\|true$"))
    _shown(card, "photo")
    page.screenshot(path=str(OUTPUT / "web-background-phone-photo.png"))
    # A photo the server refuses is said beside the controls; the cut-out is shown as it is.
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"these are notes, not a photo")
    card.locator(".bg-photo-file").set_input_files(str(bad))
    expect(card.locator(".bg-status")).to_contain_text(
        "The background could not be applied: Unsupported format"
    )
    expect(card.locator("img.cut")).to_be_visible()
    expect(card.locator("img.composed")).to_be_hidden()
