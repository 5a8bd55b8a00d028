"""The PNG writer against Pillow's decoder and an independent chunk/CRC/zlib check."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from alphacut.engine.png import encode_png
from imagetools import read_png_chunks

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()
    return np.asarray(image)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 7), (7, 1), (33, 17), (480, 640)])
def test_round_trip_random_pixels(channels: int, height: int, width: int) -> None:
    rng = np.random.default_rng(height * 1000 + width + channels)
    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    data = encode_png(pixels)
    decoded = _decode(data)
    assert Image.open(io.BytesIO(data)).mode == MODES[channels]
    np.testing.assert_array_equal(decoded.reshape(pixels.shape), pixels)


def test_grey_accepts_two_dimensional_arrays() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(_decode(encode_png(pixels)), pixels)


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("level", [1, 3, 6, 9])
def test_threaded_pieces_form_one_valid_zlib_stream(threads: int, level: int) -> None:
    # Large enough (about 5 MB) to be split into several independently deflated pieces.
    rng = np.random.default_rng(level)
    pixels = np.zeros((1200, 1100, 4), dtype=np.uint8)
    pixels[200:1000, 100:900] = rng.integers(0, 256, size=(800, 800, 4), dtype=np.uint8)
    data = encode_png(pixels, level=level, threads=threads)
    chunks = read_png_chunks(data)
    idat = b"".join(body for tag, body in chunks if tag == b"IDAT")
    raw = zlib.decompress(idat)  # checks the adler32 of the whole stream
    assert len(raw) == 1200 * (1 + 1100 * 4)
    np.testing.assert_array_equal(_decode(data), pixels)


def test_same_output_whatever_the_thread_count_decodes_identically() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, size=(900, 1300, 3), dtype=np.uint8)
    one = _decode(encode_png(pixels, threads=1))
    four = _decode(encode_png(pixels, threads=4))
    np.testing.assert_array_equal(one, four)


def test_icc_profile_is_embedded() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode_png(np.zeros((4, 4, 3), dtype=np.uint8), icc_profile=icc)
    assert Image.open(io.BytesIO(data)).info["icc_profile"] == icc
    tags = [tag for tag, _ in read_png_chunks(data)]
    assert tags.index(b"iCCP") < tags.index(b"IDAT")


def test_smaller_than_unfiltered_on_a_real_photo(photo: object) -> None:
    pixels = np.asarray(Image.open(str(photo)).convert("RGB"))
    filtered = len(encode_png(pixels, level=6))
    unfiltered = len(zlib.compress(pixels.tobytes(), 6))
    assert filtered < unfiltered


@pytest.mark.parametrize(
    ("pixels", "error"),
    [
        (np.zeros((4, 4), dtype=np.uint16), TypeError),
        (np.zeros((4, 4, 5), dtype=np.uint8), ValueError),
        (np.zeros((0, 4, 3), dtype=np.uint8), ValueError),
        (np.zeros((4,), dtype=np.uint8), ValueError),
    ],
)
def test_rejects_what_it_cannot_encode(pixels: np.ndarray, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_png(pixels)
