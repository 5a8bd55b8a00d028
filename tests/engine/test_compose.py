"""Colours, cut-out pixels, backgrounds and the crop box."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alphacut.engine.compose import (
    Margin,
    cutout_array,
    on_background,
    parse_color,
    subject_box,
)
from alphacut.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "rgba"),
    [
        ("#ffffff", (255, 255, 255, 255)),
        ("ffffff", (255, 255, 255, 255)),
        ("#FFF", (255, 255, 255, 255)),
        ("81d4fa", (0x81, 0xD4, 0xFA, 255)),
        ("#00000080", (0, 0, 0, 128)),
        ("00000080", (0, 0, 0, 128)),
        ("#f008", (255, 0, 0, 0x88)),
        ("red", (255, 0, 0, 255)),
        (" rgb(1, 2, 3) ", (1, 2, 3, 255)),
        ((1, 2, 3), (1, 2, 3, 255)),
        ((1, 2, 3, 4), (1, 2, 3, 4)),
    ],
)
def test_parse_color(text: str | tuple[int, ...], rgba: tuple[int, int, int, int]) -> None:
    assert parse_color(text) == rgba


@pytest.mark.parametrize("bad", ["", "#12", "#1234567", "nope", "#gggggg", (1, 2), (1, 2, 300)])
def test_parse_color_rejects(bad: str | tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError, match="colour"):
        parse_color(bad)


def test_cutout_zeroes_colour_where_fully_transparent() -> None:
    rgb = np.asarray(Image.new("RGB", (3, 1), (10, 20, 30)))
    alpha = np.array([[0, 1, 255]], dtype=np.uint8)
    out = cutout_array(rgb, alpha)
    assert out.tolist() == [[[0, 0, 0, 0], [10, 20, 30, 1], [10, 20, 30, 255]]]
    assert out.flags.writeable and not np.shares_memory(out, rgb)


def test_cutout_takes_views_and_matches_pillows_putalpha() -> None:
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
    rgb, alpha = photo[..., :3], photo[:, :, 3]  # strided views, as crops and channels are
    alpha[::3] = 0
    expected = Image.fromarray(np.ascontiguousarray(rgb))
    expected.putalpha(Image.fromarray(np.ascontiguousarray(alpha)))
    reference = np.array(expected)
    reference[reference[..., 3] == 0] = 0
    assert np.array_equal(cutout_array(rgb, alpha), reference)


def test_background_blends_by_alpha() -> None:
    cut = Image.fromarray(np.array([[[200, 0, 0, 255], [200, 0, 0, 128], [0, 0, 0, 0]]], np.uint8))
    flat = on_background(cut, (0, 0, 255, 255))
    assert flat.mode == "RGB"
    assert flat.getpixel((0, 0)) == (200, 0, 0)
    r, g, b = flat.getpixel((1, 0))  # type: ignore[misc]
    assert 95 <= r <= 105 and g == 0 and 122 <= b <= 132
    assert flat.getpixel((2, 0)) == (0, 0, 255)
    translucent = on_background(cut, (0, 0, 255, 128))
    assert translucent.mode == "RGBA"
    assert translucent.getpixel((2, 0)) == (0, 0, 255, 128)
    assert translucent.getpixel((0, 0)) == (200, 0, 0, 255)


def test_subject_box_ignores_faint_noise() -> None:
    alpha = np.full((50, 80), 3, dtype=np.uint8)  # the model's background noise
    alpha[10:20, 30:45] = 255
    assert subject_box(Image.fromarray(alpha)) == (30, 10, 45, 20)
    assert subject_box(Image.fromarray(np.full((5, 5), 3, np.uint8))) is None


@pytest.mark.parametrize(
    ("value", "box"),
    [
        (0, (10, 20, 110, 70)),
        (5, (5, 15, 115, 75)),
        ("5px", (5, 15, 115, 75)),
        ("10%", (0, 15, 120, 75)),
        (" 10 % ", (0, 15, 120, 75)),
        (2.4, (8, 18, 112, 72)),
    ],
)
def test_margin(value: int | float | str, box: tuple[int, int, int, int]) -> None:
    assert Margin.parse(value).box_around((10, 20, 110, 70)) == box


@pytest.mark.parametrize("bad", ["-5", "5em", "101%", "abc", 20_000, -1, ""])
def test_margin_rejects(bad: int | str) -> None:
    with pytest.raises(InvalidInputError, match="margin"):
        Margin.parse(bad)
