"""The library API on real photos: sources, outputs, crop, colours, errors, sharing."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import alphacut
from alphacut import Cutout, Remover
from alphacut.config import Settings
from alphacut.errors import InvalidInputError, ModelNotInstalledError

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def cut(fast: Remover, photo: Path) -> Cutout:
    return fast.remove(photo)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_result_is_full_resolution_rgba_with_a_subject(cut: Cutout, photo: Path) -> None:
    with Image.open(photo) as original:
        assert cut.size == original.size
    assert cut.image.mode == "RGBA"
    assert cut.mask.mode == "L"
    np.testing.assert_array_equal(np.asarray(cut.mask), cut.array[..., 3])
    covered = (cut.array[..., 3] > 127).mean()
    assert 0.1 < covered < 0.9, "a car should cover part of the frame, not none or all of it"
    stages = {"decode", "preprocess", "inference", "postprocess", "refine", "assess", "compose"}
    assert set(cut.timings) == stages


def test_every_source_kind_gives_the_same_mask(fast: Remover, photo: Path, cut: Cutout) -> None:
    with Image.open(photo) as image:
        pil = image.copy()
    sources: list[object] = [str(photo), photo.read_bytes(), pil, np.asarray(pil)]
    for source in sources:
        np.testing.assert_array_equal(fast.remove(source).array, cut.array)  # type: ignore[arg-type]


def test_large_photo_keeps_its_resolution(fast: Remover, portrait: Path) -> None:
    with Image.open(portrait) as image:
        big = image.resize((3000, 4600), Image.Resampling.BICUBIC)
    result = fast.remove(big)
    assert result.size == (3000, 4600)
    assert _open(result.to_bytes()).size == (3000, 4600)


def test_png_output_round_trips(cut: Cutout) -> None:
    decoded = _open(cut.to_bytes())
    assert decoded.format == "PNG" and decoded.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(decoded), cut.array)


def test_transparent_pixels_carry_no_colour(cut: Cutout) -> None:
    transparent = cut.array[..., 3] == 0
    assert transparent.any()
    assert not cut.array[transparent][:, :3].any()


def test_webp_lossless_and_lossy(cut: Cutout) -> None:
    lossless = np.asarray(_open(cut.to_bytes("webp")))
    visible = cut.array[..., 3] > 0
    np.testing.assert_array_equal(lossless[..., 3], cut.array[..., 3])
    np.testing.assert_array_equal(lossless[visible], cut.array[visible])
    small = cut.to_bytes("webp", quality=50)
    lossy = np.asarray(_open(small))
    assert lossy.shape == cut.array.shape
    assert len(small) < len(cut.to_bytes("webp"))


def test_jpeg_puts_the_subject_on_white_or_the_chosen_colour(cut: Cutout) -> None:
    white = _open(cut.to_bytes("jpg", quality=95))
    assert white.format == "JPEG" and white.mode == "RGB"
    corner = np.asarray(white)[cut.array[..., 3] == 0]
    assert corner.mean() > 250
    red = np.asarray(_open(cut.to_bytes("jpeg", 95, background="#ff0000")))
    background = red[cut.array[..., 3] == 0].mean(axis=0)
    assert background[0] > 240 and background[1] < 15 and background[2] < 15


def test_background_colour_with_alpha_gives_rgba(cut: Cutout) -> None:
    image = _open(cut.to_bytes("png", background="#0000ff80"))
    assert image.mode == "RGBA"
    pixels = np.asarray(image)[cut.array[..., 3] == 0]
    assert (pixels == [0, 0, 255, 128]).all()
    assert cut.on_background("#00ff00").mode == "RGB"


@pytest.mark.parametrize(
    ("fmt", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")]
)
def test_mask_output(cut: Cutout, fmt: str, pil_format: str) -> None:
    image = _open(cut.to_bytes(fmt, mask=True))
    assert image.format == pil_format
    assert image.convert("L").size == cut.size
    if fmt == "png":
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), cut.array[..., 3])


def test_icc_kept_and_exif_dropped(fast: Remover, portrait: Path) -> None:
    with Image.open(portrait) as image:
        assert image.info.get("exif"), "fixture should carry EXIF"
        data = io.BytesIO()
        image.save(data, "JPEG", quality=95, exif=image.info["exif"], icc_profile=SRGB_ICC)
    result = fast.remove(data.getvalue())
    for fmt in ("png", "jpeg", "webp"):
        out = _open(result.to_bytes(fmt))
        assert out.info.get("icc_profile") == SRGB_ICC, fmt
        assert not out.info.get("exif") and not out.getexif(), fmt


def test_crop_to_subject_with_margins(cut: Cutout) -> None:
    box = cut.subject_box()
    assert box is not None
    left, top, right, bottom = box
    cropped = cut.crop()
    assert cropped.size == (right - left, bottom - top)
    np.testing.assert_array_equal(cropped.array, cut.array[top:bottom, left:right])
    padded = cut.crop("20px")
    assert padded.size == (right - left + 40, bottom - top + 40)
    wide = cut.crop("50%")  # reaches past the photo's edges: padded with transparency
    dx, dy = round((right - left) * 0.5), round((bottom - top) * 0.5)
    assert wide.size == (right - left + 2 * dx, bottom - top + 2 * dy)
    x0, y0, x1, y1 = left - dx, top - dy, right + dx, bottom + dy
    assert x0 < 0 or y0 < 0 or x1 > cut.width or y1 > cut.height, "margin should pass an edge"
    expected = np.zeros((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    inside = cut.array[max(y0, 0) : min(y1, cut.height), max(x0, 0) : min(x1, cut.width)]
    oy, ox = max(y0, 0) - y0, max(x0, 0) - x0
    expected[oy : oy + inside.shape[0], ox : ox + inside.shape[1]] = inside
    np.testing.assert_array_equal(wide.array, expected)


def test_crop_option_of_remove(fast: Remover, photo: Path, cut: Cutout) -> None:
    assert fast.remove(photo, crop=True, crop_margin="10px").size == cut.crop(10).size


def test_crop_without_subject_keeps_the_frame(settings: Settings) -> None:
    empty = np.zeros((64, 48, 4), dtype=np.uint8)
    blank = Cutout(empty, icc_profile=None, model="fast", timings={}, settings=settings)
    assert blank.subject_box() is None
    assert blank.crop("10px").size == (48, 64)


def test_save_picks_the_format_from_the_suffix(cut: Cutout, tmp_path: Path) -> None:
    for name, pil_format in [("a.png", "PNG"), ("b.jpg", "JPEG"), ("c.webp", "WEBP")]:
        saved = cut.save(tmp_path / name)
        with Image.open(saved) as image:
            assert image.format == pil_format
    cut.save(tmp_path / "d.out", format="png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.jpg", "c.webp", "d.out"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"format": "gif"}, "format"),
        ({"format": "png", "quality": 0}, "quality"),
        ({"format": "png", "quality": 101}, "quality"),
        ({"format": "png", "mask": True, "background": "#fff"}, "either"),
        ({"format": "jpg", "background": "#ffffff80"}, "translucent"),
        ({"format": "png", "background": "nope"}, "colour"),
    ],
)
def test_bad_output_options(cut: Cutout, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        cut.to_bytes(**kwargs)  # type: ignore[arg-type]


def test_input_transparency_is_kept(fast: Remover, photo: Path) -> None:
    with Image.open(photo) as image:
        rgba = image.convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, : rgba.width // 2] = 0
    rgba.putalpha(Image.fromarray(alpha))
    result = fast.remove(rgba)
    assert not result.array[:, : rgba.width // 2, 3].any()
    assert result.array[:, rgba.width // 2 :, 3].any()


def test_sessions_are_shared(settings: Settings, fast: Remover) -> None:
    assert Remover("fast", settings=settings).load() is fast.load()


def test_concurrent_calls_agree_with_sequential(fast: Remover, photo: Path, portrait: Path) -> None:
    sources = [photo, portrait] * 3
    expected = [fast.remove(s).array for s in sources[:2]]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: fast.remove(s).array, sources))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, expected[i % 2])


def test_module_level_remove(photo: Path, cut: Cutout) -> None:
    np.testing.assert_array_equal(alphacut.remove(photo, model="fast").array, cut.array)


def test_missing_model_names_the_command(tmp_path: Path, photo: Path) -> None:
    remover = Remover("fast", settings=Settings(model_dir=tmp_path))
    with pytest.raises(ModelNotInstalledError, match="alphacut models install u2netp"):
        remover.remove(photo)


def test_corrupt_model_is_refused(tmp_path: Path, photo: Path) -> None:
    (tmp_path / "u2netp.onnx").write_bytes(b"\0" * 4_574_861)
    remover = Remover("fast", settings=Settings(model_dir=tmp_path))
    with pytest.raises(ModelNotInstalledError, match="failed verification"):
        remover.remove(photo)


def test_unknown_model() -> None:
    with pytest.raises(InvalidInputError, match="fast, precise"):
        Remover("huge")
