"""Refinement: masks better than one pass of a model over the whole photo.

``zoom`` (:func:`zoom_box`): the models see the whole photo squeezed into 320 px (``fast``)
or 1024 px (``precise``), so a subject that fills a quarter of the frame gets a quarter of
the model's pixels. A second pass over the subject's box (plus a margin) gives it all of them;
its mask replaces the first inside the box. Measured on DAVIS-345 (``alphacut eval``), this
is what moves IoU, boundary F and small subjects most; the box must cover at most
``ZOOM_MAX_FRACTION`` of the photo, else the second pass would see nearly the same pixels.

``edges`` (:func:`firm_alpha`): a model's alpha is only meaningful near the edges it finds.
Between 0 and 1 far from its own 0.5 contour it is indecision, not transparency: a faint haze
over the background, a half-transparent patch inside the subject. Such alpha is settled to the
side of 0.5 it lies on, beyond ``EDGE_BAND`` model pixels of the contour (fading over
``EDGE_FADE`` more, so no new hard step appears), in units of the model's own pixels, so the
band follows what the model can resolve on any photo size. Hair, fur and soft edges lie in the
band and keep their alpha. Measured on all of DAVIS-345: MAE 0.88x for ``precise`` and 0.93x
for ``fast`` at no change in IoU; the gradient error rises (sharper steps where the model was
wrong anyway). Where a model is unsure of a whole object (a ghost of it at alpha near one half)
the object is settled into fragments: the known cost.

``consensus`` (:func:`agree`): a second, independent model checks the first. IS-Net
(``precise``, trained for dichotomous segmentation) often takes in a second object or a piece
of background that U2-Netp (``fast``, trained for salient objects) does not see as the subject.
Each separate part of ``precise``'s subject is kept whole if ``fast`` sees enough of it, else
dropped; the largest part always stays. ``precise``'s edges and hair are never cut. It costs
one pass of ``fast`` (about 0.35 s). Measured on all of DAVIS-345 against ``edges``: IoU
+0.007, MAE 0.93x, boundary F +0.008, small subjects IoU +0.010. Variants measured and left out
(all 345 pairs): keeping alpha only where ``fast`` sees the subject, pixel by pixel (IoU +0.008
but boundary F -0.009, small subjects IoU -0.006, and it chops objects in two); the same
without always keeping the largest part (small subjects IoU -0.001: when ``fast`` misses the
subject, the subject went). On a 69-photo subset the pixel rule had looked far better (IoU
+0.022): decisions here are taken on the whole set. Checking ``fast`` with ``precise`` costs
seven times ``fast``'s own pass for IoU +0.003, so ``fast`` has no checker. U2-Net full as
the checker (a third model, 176 MB) adds IoU +0.004 for 0.5 s more: not kept.

Measured and left out: a colour-guided filter (He et al.) at full resolution, which moved
fast's IoU by +0.002 and made MAE worse: the errors that matter are where the model looks,
not how its edges are resampled. Removing small islands and holes (under 1% or 5% of the
largest part) lowered IoU: DAVIS subjects are often several separate parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.engine.threads import pool
from alphacut.errors import InvalidInputError
from alphacut.models.registry import Refine

Box = tuple[int, int, int, int]

ZOOM_MARGIN = 0.1  # of the subject's width and height, on each side
ZOOM_PAD = 8  # pixels, on each side, so that thin subjects keep some context
ZOOM_MAX_FRACTION = 0.6  # of the photo's area: bigger boxes gain too little to pay a pass
EDGE_BAND = 1.0  # model pixels each side of the 0.5 contour where alpha is left as it is
EDGE_FADE = 2.0  # model pixels beyond the band over which alpha fades to fully in or out
AGREE_TOLERANCE = 8  # checker-model pixels: how near the checker's subject counts as seen
AGREE_SUPPORT = 0.25  # the share of a part's pixels the checker must see for it to stay
_JOIN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))  # pieces 3 px apart: one part


@dataclass(frozen=True)
class RefineSteps:
    """What a refinement runs around the model's pass: ``settle`` (:func:`firm_alpha` on
    each mask, and the subject's own colour in soft pixels), a ``zoom`` pass over the
    subject's box (:func:`zoom_box`), a ``checker`` model's :func:`agree`."""

    settle: bool = False
    zoom: bool = False
    checker: bool = False


STEPS: dict[Refine, RefineSteps] = {
    Refine.NONE: RefineSteps(),
    Refine.EDGES: RefineSteps(settle=True),
    Refine.ZOOM: RefineSteps(settle=True, zoom=True),
    Refine.CONSENSUS: RefineSteps(settle=True, checker=True),
}


def resolve_refine(requested: str | None, model_default: str) -> Refine:
    """The refinement a request gets: ``auto`` (or none asked for) is the model's measured
    best, ``model_default``; any other name must be a :class:`Refine`."""
    try:
        chosen = Refine(requested or Refine.AUTO)
    except ValueError:
        *others, last = Refine
        raise InvalidInputError(
            f"unknown refine {requested!r}; choose {', '.join(others)} or {last}"
        ) from None
    return Refine(model_default) if chosen is Refine.AUTO else chosen


def zoom_box(mask: Image.Image) -> Box | None:
    """The box (left, top, right, bottom) worth a second pass: the subject (alpha >= 128)
    with a margin, clipped to the photo; ``None`` without a subject or when the box covers
    more than ``ZOOM_MAX_FRACTION`` of the photo."""
    found = mask.point(lambda v: 255 if v >= 128 else 0).getbbox()
    if found is None:
        return None
    box = with_margin(found, mask.size)
    width, height = mask.size
    if (box[2] - box[0]) * (box[3] - box[1]) > ZOOM_MAX_FRACTION * width * height:
        return None
    return box


def with_margin(box: Box, size: tuple[int, int]) -> Box:
    """``box`` with the context a second pass sees around a subject (``ZOOM_MARGIN`` of its
    width and height plus ``ZOOM_PAD`` px each side), clipped to an image of ``size``."""
    left, top, right, bottom = box
    dx = int((right - left) * ZOOM_MARGIN) + ZOOM_PAD
    dy = int((bottom - top) * ZOOM_MARGIN) + ZOOM_PAD
    width, height = size
    return (max(0, left - dx), max(0, top - dy), min(width, right + dx), min(height, bottom + dy))


def firm_alpha(
    alpha: npt.NDArray[np.uint8], model_pixel: float, *, threads: int = 1
) -> npt.NDArray[np.uint8]:
    """``alpha`` (uint8, at the photo's size) with soft values away from the subject's edge
    settled to 0 or 255; ``model_pixel`` is how many photo pixels one model pixel spans.

    Each pixel keeps ``keep = clip(1 - (d - band) / fade)`` of its own alpha, where ``d`` is
    its distance to the other side of 0.5: all of it within the band, none beyond band + fade.
    Only the pixels in the fade (a thin ring along the contour) need arithmetic; the rest are
    copied (as bit-exact as computing ``keep`` everywhere, and 1.7x faster at 12 MP, where
    most of the photo lies far from the contour). With ``threads`` > 1 the two distance
    transforms (one pass over the photo each, on one core: OpenCV does not split them) run
    at once on a large photo."""
    hard = (alpha >= 128).astype(np.uint8)
    # Distance to the nearest pixel on the other side of 0.5 (one of the two terms is 0).
    if threads > 1 and hard.size >= _PARALLEL_PIXELS:
        outside = pool(2, "distance").submit(_distance, 1 - hard)
        distance = _distance(hard)
        distance += outside.result()
    else:
        distance = _distance(hard)
        distance += _distance(1 - hard)
    scale = max(model_pixel, 1.0)
    band, fade = EDGE_BAND * scale, EDGE_FADE * scale
    result: npt.NDArray[np.uint8] = hard * np.uint8(255)  # beyond band + fade: settled
    near = distance <= np.float32(band)
    np.copyto(result, alpha, where=near)  # within the band: the model's own alpha
    ring = np.flatnonzero(~near & (distance < np.float32(band + fade)))
    keep = np.clip(1.0 - (distance.ravel()[ring] - band) / fade, 0.0, 1.0)
    settled = hard.ravel()[ring] * np.float32(255.0)
    firmed = settled + (alpha.ravel()[ring] - settled) * keep
    result.ravel()[ring] = np.clip(firmed + 0.5, 0, 255).astype(np.uint8)
    return result


_PARALLEL_PIXELS = 1_000_000  # below this a second thread costs more than it saves


def _distance(mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Each pixel's distance to the nearest zero of ``mask`` (OpenCV releases the GIL)."""
    return np.asarray(cv2.distanceTransform(mask, cv2.DIST_L2, 3), dtype=np.float32)


def agree(alpha: npt.NDArray[np.uint8], checker: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``alpha`` (at the photo's size) without the parts of its subject that a second model
    does not see; ``checker`` is that model's mask at its own input size.

    A part is a connected piece of the subject with its soft fringe. It is kept when at least
    ``AGREE_SUPPORT`` of its pixels lie within ``AGREE_TOLERANCE`` checker pixels of the
    checker's subject; the largest part is always kept (the checker vetoes extras, never the
    subject itself), and kept parts are kept whole, edges and all.
    """
    side = 2 * AGREE_TOLERANCE + 1
    found = (checker >= 128).astype(np.uint8)
    near = cv2.dilate(found, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    height, width = alpha.shape
    seen = np.asarray(cv2.resize(near, (width, height), interpolation=cv2.INTER_NEAREST)) > 0
    core = alpha >= 128
    joined = cv2.dilate(core.astype(np.uint8), _JOIN) | (alpha > 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    if count <= 2:  # no part or a single one: nothing to veto
        return alpha
    total = np.bincount(labels[core], minlength=count)
    supported = np.bincount(labels[core & seen], minlength=count)
    keep = supported >= AGREE_SUPPORT * total
    keep[int(np.argmax(total[1:])) + 1] = True
    keep[0] = False
    result: npt.NDArray[np.uint8] = np.where(keep[labels], alpha, 0).astype(np.uint8)
    return result
