"""The threaded resize must be Pillow's resize, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alphacut.engine.resize import resize


@pytest.fixture(scope="module")
def source(fixtures: Path) -> Image.Image:
    with Image.open(fixtures / "plants-1.jpg") as image:
        return image.convert("RGB")


@pytest.mark.parametrize(
    "size_in", [(807, 1239), (987, 1481), (1001, 999), (2832, 4248), (333, 7777), (601, 601)]
)
@pytest.mark.parametrize(
    ("size_out", "resample"),
    [((320, 320), Image.Resampling.LANCZOS), ((1024, 1024), Image.Resampling.BILINEAR)],
)
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_identical_to_pillow(
    source: Image.Image,
    size_in: tuple[int, int],
    size_out: tuple[int, int],
    resample: Image.Resampling,
    threads: int,
) -> None:
    image = source.resize(size_in)
    expected = np.asarray(image.resize(size_out, resample))
    np.testing.assert_array_equal(
        np.asarray(resize(image, size_out, resample, threads=threads)), expected
    )


def test_greyscale_and_odd_output_widths(source: Image.Image) -> None:
    grey = source.convert("L").resize((1500, 1100))
    for size in [(321, 200), (640, 480), (999, 10)]:
        expected = np.asarray(grey.resize(size, Image.Resampling.LANCZOS))
        got = np.asarray(resize(grey, size, Image.Resampling.LANCZOS, threads=2))
        np.testing.assert_array_equal(got, expected)
