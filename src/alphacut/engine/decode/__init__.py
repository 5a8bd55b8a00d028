"""Turn whatever the caller hands us into an 8-bit RGB or RGBA image, safely.

- The format is chosen by its magic bytes (never the file name), and Pillow is told to try
  that one format only. Which formats are accepted is the caller's choice
  (:attr:`Limits.formats`): the web formats (JPEG, PNG, WebP) by default; the HTTP APIs and
  the web page also read HEIC/HEIF (``pillow-heif``) and AVIF (:data:`PHOTO_FORMATS`), the
  files phones save photos in; the command line and the library's ``Remover`` read BMP and
  TIFF besides (:data:`ALL_FORMATS`), as rembg reads whatever Pillow reads. The images API
  stores an upload and serves it again as the image's original, with a ``format`` of png,
  jpeg or webp that its clients expect: a HEIC or AVIF upload is converted as it is stored
  (:meth:`alphacut.service.images.ImageService.create`), as imgproxy and thumbor re-encode
  what they read.
- The byte limit is checked before reading, the pixel limit from the header before the pixel
  data is decoded, so a decompression bomb costs nothing. The header is read by our own code
  for every format (JPEG SOF, PNG IHDR, WebP VP8/VP8L/VP8X, BMP info header, TIFF first IFD
  and its tile size, the HEIF/AVIF ``ispe`` boxes and grid/overlay canvases), then again by
  Pillow's parser before anything is decoded. A TIFF is read as its first page; HEIF and AVIF
  as their primary image.
- EXIF orientation is applied. Colour stays right: an RGB ICC profile is kept beside the pixels
  (and written into the output); CMYK and grey images with a profile are converted to sRGB
  through it; 16-bit samples are scaled, not clipped.
- Polyglots are refused: after the image may come only padding, and after a JPEG the images
  its MPF index lists (:func:`check_single_format`). The check guards the originals the HTTP
  service stores and serves; BMP, TIFF, HEIF and AVIF are never stored, and where their data
  ends cannot be told from their structure alone (TIFF strips lie anywhere), so it is not made
  for them.
- HEIF's own rotation and mirroring (``irot``/``imir``) are applied by libheif, which resets
  the EXIF orientation to 1; AVIF's are turned into the EXIF orientation by Pillow: either way
  an image is turned once.
- Every failure is an :class:`~alphacut.errors.AlphacutError` with a message for the user.
"""

from alphacut.engine.decode.containers import (
    WEB_FORMATS,
    JpegSegment,
    SourceFormat,
    check_single_format,
    image_end,
    jpeg_segments,
    mpf_images,
    tiff_ifd0,
)
from alphacut.engine.decode.pixels import MAX_EXIF_BYTES, DecodedImage, ImageSource, Limits, decode
from alphacut.engine.decode.probe import (
    ALL_FORMATS,
    PHOTO_FORMATS,
    probe_pixels,
    probe_size,
    sniff,
)

__all__ = [
    "ALL_FORMATS",
    "MAX_EXIF_BYTES",
    "PHOTO_FORMATS",
    "WEB_FORMATS",
    "DecodedImage",
    "ImageSource",
    "JpegSegment",
    "Limits",
    "SourceFormat",
    "check_single_format",
    "decode",
    "image_end",
    "jpeg_segments",
    "mpf_images",
    "probe_pixels",
    "probe_size",
    "sniff",
    "tiff_ifd0",
]
