"""Foreground colour estimation: no halo of the old background around the cut-out.

Where alpha is between 0 and 1 (hair, soft edges, motion blur) a photo's pixel is a mix
``I = a * F + (1 - a) * B`` of the subject's colour F and the background's B. A cut-out that
keeps ``I`` as its colour carries some of B with it: a green fringe from a lawn, a dark rim from
a studio backdrop, visible as soon as the subject is put on a new background. This module
estimates F with the "blur fusion" method of Forte and Pitie (*Approximate Fast Foreground
Colour Estimation*, ICIP 2021): local means of the foreground and background colours, taken
with box filters weighted by alpha, then the residual of the compositing equation given back
to F; a wide pass (a 90 px box) and then a narrow one (6 px), the paper's own settings.

Measured (``bench/halo.py``: subjects of DAVIS-345 put on other photos with known soft alpha,
the error of ``a * F`` in the soft band, which is exactly the error of the cut-out over any new
background): keeping ``I`` 9.7 levels of 255, blur fusion 7.3, PyMatting's multi-level
estimator 6.6 at about six times the cost and a numba dependency; blur fusion was kept.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from alphacut.engine.threads import pool

WIDE_WINDOW = 90  # box side in pixels: the first pass gathers colour from far around the edge
NARROW_WINDOW = 6  # box side in pixels: the second pass, seeded by the first, keeps detail
WIDE_SCALE = 4  # the wide pass's local means are smooth: taken at 1/4 of the resolution
TILE = 64  # the narrow pass runs only on tiles (of this side) that hold soft pixels
MIN_TILES_PER_THREAD = 32  # fewer (a 1 MP photo has ~50): one thread, no hand-over cost

Pixels = npt.NDArray[np.float32]


def estimate_foreground(
    rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8], *, threads: int = 1
) -> npt.NDArray[np.uint8]:
    """The subject's own colour where ``alpha`` is soft; the photo's colour elsewhere.

    ``rgb`` is ``(h, w, 3)`` and ``alpha`` ``(h, w)``, both uint8. Cost: the wide pass at a
    sixteenth of the pixels, then full-resolution work only on the tiles with soft pixels,
    shared among up to ``threads`` threads when there are many (each tile writes only its
    own pixels, and the result is the same to the bit whatever the count).
    """
    soft = (alpha > 0) & (alpha < 255)
    out = rgb.copy()
    if not soft.any():
        return out
    wide = _WideMeans(rgb, alpha)
    height, width = alpha.shape
    pad = NARROW_WINDOW

    def narrow(regions: list[tuple[int, int, int, int]]) -> None:
        for top, left, bottom, right in regions:
            # The region plus a margin, so the narrow box filter sees real neighbours.
            y0, x0 = max(0, top - pad), max(0, left - pad)
            y1, x1 = min(height, bottom + pad), min(width, right + pad)
            image = rgb[y0:y1, x0:x1].astype(np.float32) / 255.0
            a = alpha[y0:y1, x0:x1].astype(np.float32) / 255.0
            mean_f, mean_b = wide.around(y0, y1, x0, x1)
            first = _compose_residual(image, a, mean_f, mean_b)
            mean_f, mean_b = _means(a, first, mean_b, NARROW_WINDOW)
            second = _compose_residual(image, a, mean_f, mean_b)
            inner = second[top - y0 : bottom - y0, left - x0 : right - x0]
            where = soft[top:bottom, left:right]
            target = out[top:bottom, left:right]
            target[where] = np.clip(inner[where] * 255.0 + 0.5, 0, 255).astype(np.uint8)

    regions = _regions(soft)
    shares = min(threads, len(regions) // MIN_TILES_PER_THREAD) if threads > 1 else 1
    if shares <= 1:
        narrow(regions)
    else:  # interleaved, so that each thread gets some of every part of the contour
        list(pool(shares, "image").map(narrow, [regions[index::shares] for index in range(shares)]))
    return out


def _regions(soft: npt.NDArray[np.bool_]) -> list[tuple[int, int, int, int]]:
    """``(top, left, bottom, right)`` of the ``TILE``-sized tiles holding soft pixels (small
    tiles stay in the CPU's cache: even a photo soft all over is faster in tiles than whole)."""
    height, width = soft.shape
    tiles = [
        (top, left, min(height, top + TILE), min(width, left + TILE))
        for top in range(0, height, TILE)
        for left in range(0, width, TILE)
        if soft[top : top + TILE, left : left + TILE].any()
    ]
    return tiles


class _WideMeans:
    """The wide pass's local foreground and background means, seeded by the photo itself.

    Means over a 90 px box are smooth, so they are taken at 1/``WIDE_SCALE`` of the
    resolution (from area-averaged premultiplied colour, which averaging keeps exact) and
    brought back to full size one tile at a time.
    """

    def __init__(self, rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> None:
        height, width = alpha.shape
        self.scale = WIDE_SCALE
        small = (max(1, -(-width // WIDE_SCALE)), max(1, -(-height // WIDE_SCALE)))
        window = (max(1, WIDE_WINDOW // WIDE_SCALE),) * 2
        premultiplied = np.asarray(
            cv2.multiply(rgb, cv2.merge([alpha, alpha, alpha]), scale=1 / 255), np.uint8
        )

        def shrink(pixels: npt.NDArray[np.uint8]) -> Pixels:
            area = cv2.resize(pixels, small, interpolation=cv2.INTER_AREA)
            return np.asarray(area, np.float32) / 255.0

        down_a = shrink(alpha)
        down_fa = shrink(premultiplied)
        down_b1a = shrink(rgb) - down_fa  # the photo's colour times (1 - alpha)
        mean_a = np.asarray(cv2.blur(down_a, window), np.float32)[..., None]
        self.mean_f = np.asarray(cv2.blur(down_fa, window), np.float32) / (mean_a + 1e-5)
        self.mean_b = np.asarray(cv2.blur(down_b1a, window), np.float32) / (1.0 - mean_a + 1e-5)

    def around(self, y0: int, y1: int, x0: int, x1: int) -> tuple[Pixels, Pixels]:
        """Both means, at full resolution, over rows ``y0:y1`` and columns ``x0:x1``."""
        s = self.scale
        low_h, low_w = self.mean_f.shape[:2]
        # The low-resolution cells under the region, plus one on each side to interpolate.
        ly0, lx0 = max(0, y0 // s - 1), max(0, x0 // s - 1)
        ly1, lx1 = min(low_h, -(-y1 // s) + 1), min(low_w, -(-x1 // s) + 1)
        size = ((lx1 - lx0) * s, (ly1 - ly0) * s)
        crop = (slice(y0 - ly0 * s, y1 - ly0 * s), slice(x0 - lx0 * s, x1 - lx0 * s))
        means = []
        for low in (self.mean_f, self.mean_b):
            up = cv2.resize(low[ly0:ly1, lx0:lx1], size, interpolation=cv2.INTER_LINEAR)
            means.append(np.asarray(up, np.float32)[crop])
        return means[0], means[1]


def _means(
    alpha: Pixels, foreground: Pixels, background: Pixels, window: int
) -> tuple[Pixels, Pixels]:
    """Alpha-weighted local means of the foreground and background estimates."""
    size = (window, window)
    a = alpha[..., None]
    mean_a = cv2.blur(alpha, size)[..., None]
    mean_f = cv2.blur(foreground * a, size) / (mean_a + 1e-5)
    mean_b = cv2.blur(background * (1.0 - a), size) / (1.0 - mean_a + 1e-5)
    return mean_f, mean_b


def _compose_residual(image: Pixels, alpha: Pixels, mean_f: Pixels, mean_b: Pixels) -> Pixels:
    """The foreground mean corrected by what the compositing equation leaves unexplained."""
    a = alpha[..., None]
    estimate = mean_f + a * (image - a * mean_f - (1.0 - a) * mean_b)
    return np.asarray(np.clip(estimate, 0.0, 1.0), np.float32)
