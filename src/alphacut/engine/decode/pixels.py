"""Decoding within limits: a path, bytes, a file object, a PIL image or a numpy array to
upright 8-bit RGB or RGBA pixels and the profile they are in."""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageCms, ImageOps, TiffImagePlugin

from alphacut.engine.decode.containers import WEB_FORMATS, SourceFormat, check_single_format
from alphacut.engine.decode.probe import _NAMES, _tiff_header, probe_size, sniff
from alphacut.errors import (
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)

ImageSource: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | Image.Image"
    " | npt.NDArray[np.generic]"
)

_PILLOW_FORMATS: dict[SourceFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "avif": "AVIF",
}  # HEIF is opened by pillow-heif's image class itself, without registering it in Pillow
# Everything Pillow may raise on hostile or damaged data.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    RuntimeError,  # pillow-heif: libheif's decoding errors
    UserWarning,  # Pillow's "Corrupt EXIF data" (TIFF), where warnings are made errors
)
_SRGB = ImageCms.createProfile("sRGB")
# A JPEG's EXIF fits one 64 KiB segment; PNG and WebP could carry megabytes to parse.
MAX_EXIF_BYTES = 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    formats: frozenset[SourceFormat] = WEB_FORMATS


@dataclass(frozen=True)
class DecodedImage:
    """Upright 8-bit pixels (mode ``RGB`` or ``RGBA``) and the RGB ICC profile they are in.

    ``orientation`` is the EXIF orientation (1-8) that was applied to make them upright."""

    image: Image.Image
    icc_profile: bytes | None
    source_format: SourceFormat | None
    orientation: int = 1


def decode(source: ImageSource, limits: Limits) -> DecodedImage:
    """Decode ``source`` (path, bytes, file object, PIL image or numpy array) within ``limits``."""
    if isinstance(source, Image.Image):
        return _from_pillow(source, limits, None)
    if isinstance(source, np.ndarray):
        return _from_array(source, limits)
    data = _read_bytes(source, limits)
    fmt = sniff(data[:64], limits.formats)
    check_single_format(data, fmt)
    header_size = probe_size(data, fmt)
    if header_size is not None:
        _check_pixels(*header_size, limits)  # before Pillow allocates anything
    if fmt == "tiff":
        _check_tiff_tiles(data, limits)
    try:
        image = _open(data, fmt)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError("the image's dimensions exceed the pixel limit") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(
            f"could not read the {_NAMES[fmt]} image: it is truncated or damaged"
        ) from exc
    return _from_pillow(image, limits, fmt)


def _open(data: bytes, fmt: SourceFormat) -> Image.Image:
    """The image's header parsed, nothing decoded yet."""
    if fmt == "heif":
        # Imported here: libheif loads only when a HEIF file comes. Its image class is used
        # directly rather than registered, so that Pillow elsewhere in the process is as it was.
        from pillow_heif import HeifImageFile

        image: Image.Image = HeifImageFile(io.BytesIO(data))  # type: ignore[no-untyped-call]
        return image
    if fmt == "tiff":
        # The plugin's class itself, so that a layout Pillow cannot hold (three float samples,
        # 12-bit...) is said as such: through Image.open it is only "cannot identify".
        try:
            return TiffImagePlugin.TiffImageFile(io.BytesIO(data))
        except SyntaxError as exc:
            if "pixel mode" not in str(exc):
                raise
            raise UnsupportedImageError(
                "this TIFF's sample layout (bits, sample count or format) cannot be read; "
                "convert it to 8- or 16-bit RGB, grey or CMYK"
            ) from exc
    return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]])


def _check_tiff_tiles(data: bytes, limits: Limits) -> None:
    """A tiled TIFF's decoder holds one tile at a time: a small image may declare enormous
    tiles (libtiff allocates one), so a tile counts against the pixel limit as an image does."""
    header = _tiff_header(data)
    if header is not None and header[2] * header[3] > limits.max_pixels:
        raise ImageTooLargeError(
            f"the TIFF's tiles are {header[2]}x{header[3]}; the limit is "
            f"{limits.max_pixels / 1e6:g} MP"
        )


def _read_bytes(source: ImageSource, limits: Limits) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            if not path.is_file():
                raise InvalidInputError(f"{path} is not a file")
            size = path.stat().st_size
            _check_bytes(size, limits)
            with path.open("rb") as f:
                data = f.read(limits.max_bytes + 1)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    elif hasattr(source, "read"):
        data = source.read(limits.max_bytes + 1)
        if not isinstance(data, bytes):
            raise InvalidInputError("the file object must be opened in binary mode")
    else:
        raise InvalidInputError(
            f"cannot read an image from {type(source).__name__}; pass a path, bytes, "
            "a binary file object, a PIL image or a numpy array"
        )
    _check_bytes(len(data), limits)
    return data


def _check_bytes(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise ImageTooLargeError.over_bytes(size, limits.max_bytes, "image file")


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"the image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); "
            f"the limit is {limits.max_pixels / 1e6:g} MP"
        )


def _from_pillow(image: Image.Image, limits: Limits, fmt: SourceFormat | None) -> DecodedImage:
    _check_pixels(image.width, image.height, limits)  # header only: nothing decoded yet
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError("the image's dimensions exceed the pixel limit") from exc
    except _DECODE_ERRORS as exc:
        what = f"{_NAMES[fmt]} image" if fmt else "image"
        raise CorruptImageError(f"could not decode the {what}: it is truncated or damaged") from exc
    icc = image.info.get("icc_profile") or None
    image, orientation = _upright(image)
    if fmt == "tiff" and image.mode == "F":
        # Floating-point samples are 0..1 by convention (scientific and HDR TIFFs, as
        # tifffile, scikit-image and OpenCV write them).
        unit = np.nan_to_num(np.asarray(image, dtype=np.float32))
        image = Image.fromarray(np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8), "L")
    image, icc = _to_rgb(image, icc)
    return DecodedImage(image=image, icc_profile=icc, source_format=fmt, orientation=orientation)


def _upright(image: Image.Image) -> tuple[Image.Image, int]:
    """The image turned as its EXIF (or XMP) orientation says, and that orientation."""
    exif = image.info.get("exif") or b""
    if len(exif) > MAX_EXIF_BYTES:
        raise CorruptImageError(
            f"the image's EXIF metadata is implausibly large ({len(exif):,} bytes)"
        )
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        turned = isinstance(orientation, int) and 2 <= orientation <= 8
        if not turned:  # upright already (exif_transpose would return a copy: 36 MB at 12 MP)
            return image, 1
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image, 1  # unreadable EXIF: keep the pixels as stored
    return upright, orientation


def _to_rgb(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """8-bit RGB or RGBA, and the RGB profile the values are in (``None`` means sRGB)."""
    alpha: Image.Image | None = None
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = _grey16_to_l(image)
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode in ("LA", "La", "RGBA", "RGBa"):
        alpha = image.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None
        image = image.convert("L" if image.mode in ("LA", "La") else "RGB")

    image, icc = _to_srgb_or_tagged_rgb(image, _profile(icc), icc)
    if alpha is not None:
        image.putalpha(alpha)
    return image, icc


def _to_srgb_or_tagged_rgb(
    image: Image.Image, profile: ImageCms.ImageCmsProfile | None, icc: bytes | None
) -> tuple[Image.Image, bytes | None]:
    """RGB values plus the profile they are in: RGB keeps its own profile, CMYK and grey
    images with a matching profile are converted through it to sRGB, anything else is
    converted plainly and left untagged (sRGB by convention)."""
    space = profile.profile.xcolor_space.strip() if profile else None
    if image.mode == "RGB":
        return image, icc if space == "RGB" else None
    if profile is not None and (image.mode, space) in (("CMYK", "CMYK"), ("L", "GRAY")):
        try:
            converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # an unusable profile: fall back to the plain conversion below
        if converted is not None:
            return converted, None
    return image.convert("RGB"), None


def _profile(icc: bytes | None) -> ImageCms.ImageCmsProfile | None:
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken profile is ignored, as browsers do


def _grey16_to_l(image: Image.Image) -> Image.Image:
    values: npt.NDArray[np.int64] = np.asarray(image, dtype=np.int64)
    if image.mode == "I" and values.max(initial=0) <= 255:
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")


def _from_array(array: npt.NDArray[np.generic], limits: Limits) -> DecodedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInputError(
            f"a numpy image must be (h, w), (h, w, 3) RGB or (h, w, 4) RGBA; got {array.shape}"
        )
    _check_pixels(array.shape[1], array.shape[0], limits)
    pixels: npt.NDArray[np.uint8]
    if array.dtype == np.uint8:
        pixels = array.astype(np.uint8, copy=False)
    elif array.dtype == np.uint16:
        pixels = (array.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        pixels = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).astype(np.uint8)
    else:
        raise InvalidInputError(
            f"numpy images must be uint8, uint16, bool or float in 0..1; got {array.dtype}"
        )
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2] if pixels.ndim == 3 else 2]
    image, icc = _to_rgb(Image.fromarray(np.ascontiguousarray(pixels), mode), None)
    return DecodedImage(image=image, icc_profile=icc, source_format=None)
