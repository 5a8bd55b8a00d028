"""A person's hints that correct a cut-out: a box the subject lies in, and clicks that mark a
pixel as subject or background (issue 26; measured by ``bench/clicks.py``).

**The box** (:attr:`Hints.box`): nothing outside it is subject. Given before a model pass
(:meth:`~alphacut.engine.pipeline.Remover.predict`), the model also looks again at the box
alone, so a small subject gets all of the model's pixels (the ``zoom`` refinement, steered).

**Clicks** (:func:`correct`) never rerun the cut-out's model over the photo: each is an edit
of the mask it is given, taken in order, so that a page can keep the automatic cut-out and
send every click so far (the answer depends on nothing else: undo is one click fewer). A
click on a pixel already on its side changes nothing. Otherwise, with ``d`` the click's
distance to the nearest pixel of the mask on the side it asks for (how big the mistake it
sits in can be):

- a **subject click away from the mask** (``d`` at least ``PROPOSE_FROM`` of the photo: a
  part or a subject missed) asks the fast model about a window around it
  (``PROPOSAL_REACH x d`` each side, within ``PROPOSAL_WINDOW`` of the photo's side): where it
  sees a subject under the click, that whole part is added. One pass of U2-Netp (about
  0.2 s on a 2-core machine), kept per photo and click, so sending every click again costs
  nothing more. At most ``PROPOSALS_A_REQUEST`` clicks of a request ask (the first ones that
  qualify; later ones use GrabCut): a request's model time stays bounded whatever it sends,
  and the answer still depends on the clicks alone, not on what a process has kept;

- a **background click on a separate part of the subject**, at that part's deepest point
  (within ``DROP_DEPTH`` of it: the whole part is wrong, not a corner of it) and holding no
  subject click: the part goes (a second object taken in);
- otherwise **GrabCut** (OpenCV; Rother et al. 2004) in a window of ``WINDOW x d`` around the
  click, at most ``WORK_SIDE`` px on a side: the mask as the probable labels, a disc of
  ``SEED x d`` around the click as probably the asked-for side, every click in the window as
  certain. Of what it relabels, only the connected piece under the click and within
  ``REACH x d`` of it is taken: a click moves one mistake, never the far side of the photo.

The click's own pixel (a few around it) always ends on the side asked for. Changed pixels
become fully in or out; every other pixel keeps the mask's own soft alpha (hair stays).

Measured on davis345 with the simulated user of interactive-segmentation papers (RITM's
protocol, ``bench/clicks.py``), from ``precise``'s automatic cut-out: see docs/quality.md,
"Correcting a cut-out with clicks". Variants measured on a spread of 69 of its photos (NoC@90;
the rule above: 6.29): a window of 2.5 d reaching 1.5 d (6.91; 7.03 without the seed disc),
dropping a part when the click is within 0.6 of its deepest point (6.83), 4 GrabCut iterations
(6.78), working at 480 px (6.42, 2.7x slower per click) or at the photo's full size in the
window (7.20, 3x slower), filling the whole seed disc even where GrabCut disagrees (6.43).
The fast model's window (added after those): 6.29 -> 5.23 on the same 69 photos (NoF@90
24.6% -> 15.9%); asked from 0.08 of the side 5.58, 0.02 5.39, for every subject click 5.26;
a window of 3 d 5.52; asking it for background clicks too (its part under the click, within
1.5 d or 2.5 d, removed) 5.62 / 5.80: it takes the subject with the mistake.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from alphacut.errors import InvalidInputError

Label = Literal["subject", "background"]
LABELS: tuple[Label, ...] = ("subject", "background")
MAX_POINTS = 100  # clicks in one request: a person's session, not a painting
WORK_SIDE = 320  # px: the longest side the edits are worked out at
WINDOW = 4.0  # x d: the half-side of GrabCut's window around a click
REACH = 2.5  # x d: the farthest a click's change reaches
SEED = 0.5  # x d: the disc around a click that is probably the side it asks for
DROP_DEPTH = 0.8  # a part whose deepest point's depth the click is within this share of: drop
CLICK_RADIUS = 3  # working px: a click's own disc, always honoured
GRABCUT_ITERATIONS = 2
GRABCUT_SEED = 26
GRABCUT_PIXELS = 8_000  # working px: a larger GrabCut window is worked out shrunk to this
PROPOSE_FROM = 0.01  # x the working longest side: a subject click this far from the mask
PROPOSAL_REACH = 1.5  # x d: the half-side of the model's window around such a click
PROPOSAL_WINDOW = (0.15, 0.4)  # x the photo's longest side: the half-side's bounds
PROPOSALS_A_REQUEST = 20  # clicks in one request that may ask the model (0.2 s each here)
PROPOSALS_KEPT = 128  # model windows kept across requests (each at most 320x320 booleans)
EDITS_KEPT = 128  # clicks' edits kept across requests (the same size), for the next click
_MIN_WINDOW = 8  # working px: the smallest half-window


@dataclass(frozen=True)
class Point:
    """A click at pixel (``x``, ``y``) of the photo: ``subject`` or ``background``."""

    x: int
    y: int
    label: Label = "subject"

    @property
    def subject(self) -> bool:
        return self.label == "subject"


T = TypeVar("T")
Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), in pixels
Proposer = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]
"""A model's mask (uint8, 0..255) of an RGB crop, at the crop's size."""


@dataclass(frozen=True)
class Hints:
    """A box the subject lies in (or ``None``) and clicks, in the photo's pixels."""

    box: Box | None = None
    points: tuple[Point, ...] = ()

    def __bool__(self) -> bool:
        return self.box is not None or bool(self.points)

    def check(self, width: int, height: int) -> None:
        """Raise :class:`InvalidInputError` (400) for hints that do not fit a photo of this
        size: a click outside it, a box not inside it or empty, too many clicks."""
        if len(self.points) > MAX_POINTS:
            raise InvalidInputError(
                f"too many points: {len(self.points)}, at most {MAX_POINTS} a request"
            )
        for point in self.points:
            if not (0 <= point.x < width and 0 <= point.y < height):
                raise InvalidInputError(
                    f"point ({point.x}, {point.y}) is outside the photo ({width}x{height}: "
                    f"x 0..{width - 1}, y 0..{height - 1})"
                )
        if self.box is not None:
            left, top, right, bottom = self.box
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise InvalidInputError(
                    f"box ({left}, {top}, {right}, {bottom}) is not a non-empty rectangle "
                    f"inside the photo ({width}x{height})"
                )

    def scaled(self, sx: float, sy: float, width: int, height: int) -> Hints:
        """The same hints on the photo resized by (``sx``, ``sy``) to ``width x height``."""

        def at(value: float, factor: float, limit: int) -> int:
            return min(limit - 1, max(0, math.floor(value * factor)))

        box = None
        if self.box is not None:
            left, top, right, bottom = self.box
            x1, y1 = at(left, sx, width), at(top, sy, height)
            box = (
                x1,
                y1,
                max(x1 + 1, min(width, math.ceil(right * sx))),
                max(y1 + 1, min(height, math.ceil(bottom * sy))),
            )
        points = tuple(Point(at(p.x, sx, width), at(p.y, sy, height), p.label) for p in self.points)
        return Hints(box, points)


def point(x: float, y: float, label: str = "subject") -> Point:
    """A :class:`Point` from loosely typed input (JSON numbers, form text): whole pixel
    coordinates, a known label; anything else is a 400."""
    if label not in LABELS:
        raise InvalidInputError(f"unknown point label {label!r}; choose subject or background")
    return Point(_pixel("x", x), _pixel("y", y), "subject" if label == "subject" else "background")


def _pixel(name: str, value: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"point {name} must be a whole number of pixels, not {value!r}")
    if value != int(value) or not 0 <= value <= 1_000_000:
        raise InvalidInputError(f"point {name} must be a whole number of pixels, not {value!r}")
    return int(value)


def points_from_json(value: object, name: str = "points") -> tuple[Point, ...]:
    """Points from a JSON list of ``{"x": 120, "y": 80, "label": "subject"|"background"}``."""
    if not isinstance(value, list) or len(value) > MAX_POINTS:
        raise InvalidInputError(f"{name} must be a list of at most {MAX_POINTS} points")
    found = []
    for item in value:
        if not isinstance(item, dict) or not {"x", "y"} <= set(item) <= {"x", "y", "label"}:
            raise InvalidInputError(
                f'each of {name} is {{"x": ..., "y": ..., "label": "subject"|"background"}}'
            )
        label = item.get("label", "subject")
        if not isinstance(label, str):
            raise InvalidInputError(f"a point's label is subject or background, not {label!r}")
        found.append(point(item["x"], item["y"], label))
    return tuple(found)


def box_from_json(value: object, name: str = "box") -> Box:
    """A box from a JSON list ``[x1, y1, x2, y2]`` (x2, y2 exclusive)."""
    if not isinstance(value, list) or len(value) != 4:
        raise InvalidInputError(f"{name} must be [x1, y1, x2, y2] in whole pixels")
    first, last = point(value[0], value[1]), point(value[2], value[3])
    if last.x <= first.x or last.y <= first.y:
        raise InvalidInputError(f"{name}: x2 and y2 must be right of and below x1 and y1")
    return (first.x, first.y, last.x, last.y)


def parse_point(text: str) -> Point:
    """``"x,y"`` (subject) or ``"x,y:bg"`` / ``"x,y:background"`` (the CLI's and the form
    APIs' spelling)."""
    where, _, label = text.strip().partition(":")
    label = {"": "subject", "fg": "subject", "bg": "background"}.get(label, label)
    parts = where.split(",")
    if len(parts) != 2:
        raise InvalidInputError(f"a point is x,y or x,y:bg, not {text!r}")
    try:
        x, y = (int(part.strip()) for part in parts)
    except ValueError:
        raise InvalidInputError(f"a point is x,y or x,y:bg in whole pixels, not {text!r}") from None
    return point(x, y, label)


def parse_points(text: str) -> tuple[Point, ...]:
    """Points separated by spaces or semicolons: ``"120,80 40,30:bg"``."""
    items = text.replace(";", " ").split()
    if len(items) > MAX_POINTS:
        raise InvalidInputError(f"too many points: {len(items)}, at most {MAX_POINTS} a request")
    return tuple(parse_point(item) for item in items)


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` (the CLI's spelling) -> (left, top, right, bottom)."""
    try:
        x, y, w, h = (int(part.strip()) for part in text.split(","))
    except ValueError:
        raise InvalidInputError(
            f"a box is x,y,width,height in whole pixels, not {text!r}"
        ) from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise InvalidInputError(f"a box needs x, y >= 0 and a width and height > 0: {text!r}")
    return (x, y, x + w, y + h)


def clear_outside(alpha: npt.NDArray[np.uint8], box: Box) -> npt.NDArray[np.uint8]:
    """``alpha`` with every pixel outside ``box`` background."""
    left, top, right, bottom = box
    kept = np.zeros_like(alpha)
    kept[top:bottom, left:right] = alpha[top:bottom, left:right]
    return kept


def correct(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    hints: Hints,
    propose: Proposer | None = None,
) -> npt.NDArray[np.uint8]:
    """``alpha`` (uint8, the photo's size) corrected by ``hints``: nothing outside the box,
    then each click in turn (see the module docstring). ``rgb`` is the photo; ``propose``
    (a crop of it -> a model's mask of the crop) finds what a subject click away from the
    mask lands on (none: GrabCut alone)."""
    height, width = alpha.shape
    hints.check(width, height)
    if hints.box is not None:
        alpha = clear_outside(alpha, hints.box)
    if not hints.points:
        return alpha
    scale = min(1.0, WORK_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    before = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA) >= 128
    labels = before.copy()
    clicks = [
        (min(size[0] - 1, int(p.x * scale)), min(size[1] - 1, int(p.y * scale)), p.subject)
        for p in hints.points
    ]
    photo = hashlib.blake2b(rgb.tobytes(), digest_size=16).digest()
    proposals = (
        _Proposals(rgb, photo, scale, labels.shape, propose) if propose is not None else None
    )
    # A page sends every click each time: the edits of the clicks before the last were made
    # for its previous request, so they are taken from there (same photo, same mask).
    mask = np.packbits(before).tobytes()

    def key(count: int) -> tuple[object, ...]:
        return (photo, rgb.shape, mask, tuple(clicks[:count]), propose is not None)

    start = 0
    for count in range(len(clicks), 0, -1):
        kept = _EDITS.get(key(count))
        if kept is not None:
            labels, start = kept.labels.copy(), count
            if proposals is not None:
                proposals.asked = kept.asked
            break
    for index in range(start, len(clicks)):
        _edit(small, labels, clicks[: index + 1], proposals)
    _EDITS.put(key(len(clicks)), _Edited(labels.copy(), proposals.asked if proposals else 0))
    for x, y, subject in clicks:
        cv2.circle(labels.view(np.uint8), (x, y), CLICK_RADIUS, int(subject), -1)
    # Back to the photo's size. Near what a click changed (within one working pixel), the
    # working labels decide: a part dropped leaves no outline of its soft edge behind, a part
    # added no rim of holes; everywhere else each pixel keeps the mask's own alpha (hair).
    full = (width, height)
    near = np.ones((3, 3), np.uint8)
    reach = max(1, math.ceil(1 / scale))
    dropped = cv2.dilate(
        cv2.resize((before & ~labels).astype(np.uint8), full, interpolation=cv2.INTER_NEAREST),
        near,
        iterations=reach,
    ).astype(bool)
    added = cv2.dilate(
        cv2.resize((labels & ~before).astype(np.uint8), full, interpolation=cv2.INTER_NEAREST),
        near,
        iterations=reach,
    ).astype(bool)
    level = cv2.resize(labels.astype(np.float32), full, interpolation=cv2.INTER_LINEAR) * 255.0
    result = alpha.astype(np.float32)
    result = np.where(added, np.maximum(result, level), result)
    result = np.where(dropped, np.minimum(result, level), result)
    corrected: npt.NDArray[np.uint8] = np.clip(result + 0.5, 0, 255).astype(np.uint8)
    for p in hints.points:  # the clicked pixels themselves, at full size
        cv2.circle(corrected, (p.x, p.y), 1, 255 if p.subject else 0, -1)
    return corrected


def _edit(
    image: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.bool_],
    clicks: list[tuple[int, int, bool]],
    proposals: _Proposals | None = None,
) -> None:
    """Apply the last of ``clicks`` to ``labels`` (in place), the earlier ones held."""
    cx, cy, subject = clicks[-1]
    if bool(labels[cy, cx]) == subject:
        return
    height, width = labels.shape
    if not subject and _drop_part(labels, clicks):
        return
    depth = float(_depth(labels if not subject else ~labels)[cy, cx])
    if subject and proposals is not None and depth >= PROPOSE_FROM * max(height, width):
        found = proposals.at(cx, cy, depth)
        if found is not None and found[cy, cx]:  # it sees a subject there: all of that part
            _, parts = cv2.connectedComponents(found.astype(np.uint8), connectivity=8)
            labels[parts == parts[cy, cx]] = True
            return
    half = int(max(_MIN_WINDOW, WINDOW * depth))
    x0, y0 = max(0, cx - half), max(0, cy - half)
    x1, y1 = min(width, cx + half + 1), min(height, cy + half + 1)
    window = labels[y0:y1, x0:x1]  # a view: edited in place
    trimap = np.where(window, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    probable = cv2.GC_PR_FGD if subject else cv2.GC_PR_BGD
    seed = max(CLICK_RADIUS, int(SEED * depth))
    cv2.circle(trimap, (cx - x0, cy - y0), seed, int(probable), -1)
    for x, y, side in clicks:
        if x0 <= x < x1 and y0 <= y < y1:
            certain = cv2.GC_FGD if side else cv2.GC_BGD
            cv2.circle(trimap, (x - x0, y - y0), CLICK_RADIUS, int(certain), -1)
    found = _grabcut(np.ascontiguousarray(image[y0:y1, x0:x1]), trimap)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    near = (xx - cx) ** 2 + (yy - cy) ** 2 <= (REACH * depth) ** 2
    changed = ((found != window) & near).astype(np.uint8)
    cv2.circle(changed, (cx - x0, cy - y0), CLICK_RADIUS, 1, -1)
    _, parts = cv2.connectedComponents(changed, connectivity=8)
    window[parts == parts[cy - y0, cx - x0]] = subject


class _Proposals:
    """What a model sees around subject clicks, at the working scale: a window centred on
    the click, its half-side ``PROPOSAL_REACH x d`` clamped to ``PROPOSAL_WINDOW`` of the
    photo's longest side, cut from the full-size photo. Kept across requests (the same
    photo and click give the same window), so that sending every click again costs one
    model pass per new click, not one per click so far."""

    def __init__(
        self,
        rgb: npt.NDArray[np.uint8],
        photo: bytes,
        scale: float,
        shape: tuple[int, int],
        propose: Proposer,
    ) -> None:
        self.rgb, self.photo, self.scale, self.shape = rgb, photo, scale, shape
        self.propose = propose
        self.asked = 0  # clicks of this request that asked (from the cache or not)

    def at(self, cx: int, cy: int, depth: float) -> npt.NDArray[np.bool_] | None:
        """The model's mask around click (``cx``, ``cy``) at the working scale; ``None``
        once ``PROPOSALS_A_REQUEST`` clicks of this request have asked."""
        if self.asked >= PROPOSALS_A_REQUEST:
            return None
        self.asked += 1
        height, width = self.rgb.shape[:2]
        longest = max(height, width)
        low, high = PROPOSAL_WINDOW
        share = min(high, max(low, PROPOSAL_REACH * depth * self.scale**-1 / longest))
        half = int(share * longest)
        fx, fy = min(width - 1, int(cx / self.scale)), min(height - 1, int(cy / self.scale))
        key = (self.photo, self.rgb.shape, fx, fy, half)
        kept = _PROPOSALS.get(key)
        if kept is not None:
            return kept
        x0, y0 = max(0, fx - half), max(0, fy - half)
        x1, y1 = min(width, fx + half + 1), min(height, fy + half + 1)
        mask = np.zeros((height, width), np.uint8)
        mask[y0:y1, x0:x1] = self.propose(np.ascontiguousarray(self.rgb[y0:y1, x0:x1]))
        small = cv2.resize(mask, self.shape[::-1], interpolation=cv2.INTER_AREA) >= 128
        _PROPOSALS.put(key, small)
        return small


@dataclass(frozen=True)
class _Edited:
    """The labels after a request's clicks, and how many of them asked the model."""

    labels: npt.NDArray[np.bool_]
    asked: int


class _Kept(Generic[T]):
    """The ``most`` recently used values (working-scale masks), by key, for any thread."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._kept: OrderedDict[tuple[object, ...], T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> T | None:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: tuple[object, ...], value: T) -> None:
        with self._lock:
            self._kept[key] = value
            self._kept.move_to_end(key)
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)


_PROPOSALS: _Kept[npt.NDArray[np.bool_]] = _Kept(PROPOSALS_KEPT)
_EDITS: _Kept[_Edited] = _Kept(EDITS_KEPT)


def _drop_part(labels: npt.NDArray[np.bool_], clicks: list[tuple[int, int, bool]]) -> bool:
    """A background click at the deepest point of a separate part of the subject that holds
    no subject click: the part goes (True). Otherwise nothing changes (False)."""
    cx, cy, _ = clicks[-1]
    _, parts = cv2.connectedComponents(labels.astype(np.uint8), connectivity=8)
    part = parts == parts[cy, cx]
    if any(side and part[y, x] for x, y, side in clicks):
        return False
    depth = _depth(part)
    if depth[cy, cx] < DROP_DEPTH * depth.max():
        return False
    labels[part] = False
    return True


def _grabcut(image: npt.NDArray[np.uint8], trimap: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """GrabCut's subject in ``image`` from a trimap of OpenCV's labels (edited copy). A
    window over :data:`GRABCUT_PIXELS` is worked out shrunk to that many pixels and the answer
    scaled back, the certain pixels kept: GrabCut's cost grows faster than its area (0.34 s
    for the whole 320x180 working photo here, 0.03 s at 120x67), and a window that large is
    one around a large mistake, where a coarser edge costs little."""
    height, width = trimap.shape
    shrink = math.sqrt(GRABCUT_PIXELS / (height * width))
    if shrink < 1:
        size = (max(1, math.floor(width * shrink)), max(1, math.floor(height * shrink)))
        coarse = _grabcut_at(
            np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)),
            np.asarray(cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST), np.uint8),
        )
        level = cv2.resize(
            coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        found_back: npt.NDArray[np.bool_] = (level >= 0.5) & (trimap != cv2.GC_BGD)
        found_back |= trimap == cv2.GC_FGD
        return found_back
    return _grabcut_at(image, trimap)


def _grabcut_at(
    image: npt.NDArray[np.uint8], trimap: npt.NDArray[np.uint8]
) -> npt.NDArray[np.bool_]:
    subject = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    if subject.all() or not subject.any():  # one side only: no colour model for the other
        return np.asarray(subject, dtype=bool)
    background_model = np.zeros((1, 65), np.float64)
    subject_model = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means, which draws from OpenCV's random number
    # generator (one per thread, shared by every call on it): seeded each time, an answer
    # depends on the clicks alone, not on what ran on the thread before.
    cv2.setRNGSeed(GRABCUT_SEED)
    cv2.grabCut(
        image, trimap, None, background_model, subject_model, GRABCUT_ITERATIONS,  # type: ignore[call-overload]
        cv2.GC_INIT_WITH_MASK,
    )  # fmt: skip
    found: npt.NDArray[np.bool_] = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    return found


def _depth(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Each pixel of ``mask``'s distance to the nearest pixel outside it (beyond the frame
    counts as outside)."""
    padded = np.pad(mask, 1).astype(np.uint8)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    return np.asarray(depth, dtype=np.float32)
