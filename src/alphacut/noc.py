"""The simulated user of interactive segmentation: how many clicks a cut-out needs.

The protocol is RITM's (Sofiiuk et al. 2021, ``isegm/inference/clicker.py``), the one the
published NoC figures use: each next click goes to the pixel of the largest error region that
lies farthest from that region's boundary (the frame's edge counts as a boundary), a subject
click where the cut-out misses the subject, a background click where it takes in background;
void pixels (DAVIS's 255) are never errors. Every click so far goes to
:func:`~alphacut.engine.hints.correct` with the automatic cut-out, as the web page sends them.

- ``NoC@85`` / ``NoC@90``: clicks until the IoU first reaches 0.85 / 0.90 (0 where the
  automatic cut-out already does), ``max_clicks`` (20) where it never does;
- ``NoF@90``: the share of photos that never reach 0.90 within ``max_clicks``;
- IoU after 1, 3 and 5 clicks; seconds per click (the correction alone, at the photo's size).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from alphacut.engine.hints import Hints, Point, Proposer, correct

MAX_CLICKS = 20
REPORTED_AFTER = (1, 3, 5)


@dataclass(frozen=True)
class Trace:
    """One photo's IoU before any click and after each (``ious[k]``: after k clicks), and the
    seconds each click's correction took."""

    ious: tuple[float, ...]
    seconds: tuple[float, ...]

    def clicks_to(self, target: float, max_clicks: int = MAX_CLICKS) -> int:
        """Clicks until the IoU first reaches ``target`` (``max_clicks`` if it never does)."""
        return next((k for k, value in enumerate(self.ious) if value >= target), max_clicks)

    def after(self, clicks: int) -> float:
        """The IoU after ``clicks`` clicks (the last one measured, past a stopped trace)."""
        return self.ious[min(clicks, len(self.ious) - 1)]


def next_click(
    predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_], valid: npt.NDArray[np.bool_]
) -> Point | None:
    """Where the simulated user clicks next (``None``: the cut-out is exactly right)."""
    missed = truth & ~predicted & valid
    extra = ~truth & predicted & valid
    depth_missed = _depth(missed)
    depth_extra = _depth(extra)
    deepest_missed, deepest_extra = float(depth_missed.max()), float(depth_extra.max())
    if max(deepest_missed, deepest_extra) == 0:
        return None
    subject = deepest_missed > deepest_extra
    depth, deepest = (depth_missed, deepest_missed) if subject else (depth_extra, deepest_extra)
    ys, xs = np.nonzero(depth == deepest)
    return Point(int(xs[0]), int(ys[0]), "subject" if subject else "background")


def simulate(
    rgb: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8],
    truth: npt.NDArray[np.bool_],
    valid: npt.NDArray[np.bool_],
    max_clicks: int = MAX_CLICKS,
    propose: Proposer | None = None,
) -> Trace:
    """Click on ``alpha`` (the automatic cut-out of the photo ``rgb``) until IoU 0.90 is
    reached and at least the clicks that are reported after were made, or ``max_clicks``.
    ``propose``: the model that subject clicks ask (:meth:`Remover.proposer`), as a server's
    corrections do."""
    ious = [_iou(alpha >= 128, truth, valid)]
    seconds: list[float] = []
    points: list[Point] = []
    current = alpha
    last = max(REPORTED_AFTER)
    while len(points) < max_clicks and not (ious[-1] >= 0.90 and len(points) >= last):
        click = next_click(current >= 128, truth, valid)
        if click is None:  # exactly right: nothing left to click (after() keeps the last IoU)
            break
        points.append(click)
        started = time.perf_counter()
        current = correct(rgb, alpha, Hints(points=tuple(points)), propose)
        seconds.append(time.perf_counter() - started)
        ious.append(_iou(current >= 128, truth, valid))
    return Trace(tuple(ious), tuple(seconds))


@dataclass(frozen=True)
class ClickReport:
    """A set's figures under the simulated user (see the module docstring)."""

    label: str
    count: int
    noc85: float
    noc90: float
    nof90: float
    iou_before: float
    iou_after: dict[int, float]
    seconds_per_click: float
    max_clicks: int


def click_report(label: str, traces: list[Trace], max_clicks: int = MAX_CLICKS) -> ClickReport:
    seconds = [s for trace in traces for s in trace.seconds]
    return ClickReport(
        label=label,
        count=len(traces),
        noc85=float(np.mean([t.clicks_to(0.85, max_clicks) for t in traces])),
        noc90=float(np.mean([t.clicks_to(0.90, max_clicks) for t in traces])),
        nof90=float(np.mean([max(t.ious) < 0.90 for t in traces])),
        iou_before=float(np.mean([t.ious[0] for t in traces])),
        iou_after={k: float(np.mean([t.after(k) for t in traces])) for k in REPORTED_AFTER},
        seconds_per_click=float(np.mean(seconds)) if seconds else 0.0,
        max_clicks=max_clicks,
    )


def _iou(
    predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_], valid: npt.NDArray[np.bool_]
) -> float:
    union = np.count_nonzero((predicted | truth) & valid)
    return 1.0 if union == 0 else float(np.count_nonzero(predicted & truth & valid) / union)


def _depth(region: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Each pixel's distance to the region's boundary, the frame's edge included (RITM pads
    with zeros and uses the exact distance transform)."""
    padded = np.pad(region, 1).astype(np.uint8)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return np.asarray(depth, dtype=np.float32)
