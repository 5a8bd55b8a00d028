"""The shadow-and-background step shared by remove.bg's options and the images API's
``background`` operation (``alphacut.engine.effects``): its checks and its pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alphacut.engine.effects import MAX_BLUR, Background, backdrop, on_photo
from alphacut.engine.operations import OperationContext
from alphacut.errors import InvalidInputError


def _cut() -> Image.Image:
    image = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (10, 10, 30, 20))
    return image


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({}, "give a color"),
        ({"color": "red", "image": "image_x"}, "at most one"),
        ({"blur": 3.0}, "background_image_id"),
        ({"image": "image_x", "blur": MAX_BLUR + 1}, "blur"),
        ({"image": "image_x", "blur": float("nan")}, "blur"),
        ({"color": "nope"}, "colour"),
        ({"shadow_opacity": 101}, "shadow_opacity"),
    ],
)
def test_bad_operations_are_refused_as_they_are_made(fields: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        Background(**fields)  # type: ignore[arg-type]


def test_only_a_cut_out_takes_a_background() -> None:
    context = OperationContext("png", 10_000)
    with pytest.raises(InvalidInputError, match="not a cut-out"):
        Background(color="red").apply(Image.new("RGB", (4, 4)), context)
    with pytest.raises(InvalidInputError, match="not a cut-out"):
        Background(color="red").apply(Image.new("RGBA", (4, 4), (1, 2, 3, 255)), context)


def test_the_photo_is_read_when_the_work_runs_and_costed_before() -> None:
    read: list[str] = []

    def load(image_id: str) -> Image.Image:
        read.append(image_id)
        return Image.new("RGB", (8, 6), (0, 200, 0))

    operation = Background(image="image_bg", image_size=(1000, 1000), blur=1)
    assert operation.extra_bytes((40, 30), 10**8) >= 12 * 1000 * 1000
    assert read == []
    out = operation.apply(_cut(), OperationContext("png", 10**8, load=load))
    assert read == ["image_bg"] and out.mode == "RGB" and out.size == (40, 30)
    assert np.abs(np.asarray(out)[2, 2].astype(int) - (0, 200, 0)).max() <= 1


def test_a_thin_photo_covers_without_growing_whole() -> None:
    """1 x 20,000 px scaled whole to cover 40 px would be 800,000 px tall: only the visible
    middle is scaled (operations.resize's cover), within a pixel limit far below that."""
    thin = Image.new("RGB", (1, 20_000), (9, 9, 9))
    out = on_photo(_cut(), thin, max_pixels=10_000)
    assert out.size == (40, 30)
    with pytest.raises(InvalidInputError, match="blur"):
        on_photo(_cut(), thin, max_pixels=10_000, blur=-1)


def test_shadow_then_background_and_the_subjects_box() -> None:
    out, box = backdrop(_cut(), shadow_opacity=100, color="#0000ff", max_pixels=10_000)
    # The subject with its shadow (remove.bg's X-Foreground-*), found before the background
    # covers the canvas.
    assert box is not None and box != (0, 0, 40, 30)
    assert box[0] <= 10 and box[1] <= 10 and box[2] >= 30 and box[3] >= 20
    pixels = np.asarray(out)
    assert tuple(pixels[0, 0]) == (0, 0, 255, 255)
    assert pixels[21, 20, 2] < 255, "the shadow darkens the colour under the subject"
    assert tuple(pixels[15, 20]) == (255, 255, 255, 255)
