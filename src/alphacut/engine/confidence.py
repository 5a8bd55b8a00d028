"""How good a cut-out probably is, from what the pipeline already has (issue 25).

The models' own output says more than its 0.5 contour: how decided its soft values are where
the subject is (``certainty``: mean |2a - 1|), how much of the subject is soft at all
(``soft``) and, where a second model ran (``precise``'s ``consensus`` check), how far the two
masks agree (``agreement``: IoU). They are computed at the models' own resolution (1024 and
320 px), so they cost a few milliseconds whatever the photo's size, and combined into
:attr:`Assessment.confidence`, a number in [0, 1] that reads as an estimate of the cut-out's
IoU against a person's mask. The weights below were fitted on davis345's hand-made masks;
``docs/quality.md`` has how well the estimate ranks (AUROC), how it is calibrated (a table by
decile), both cross-validated with whole videos held out, and ``bench/confidence.py`` refits
them.

The same signals decide ``model=auto`` (:attr:`Checked.switch`): where the two models
disagree and the checker's output is the more decided, the checker's cut-out is kept (made
with ``zoom``: one more pass of the small model, over the subject's box). And the raw
output says when there is **no subject** at all (:attr:`Assessment.subject`: the share of
the photo that the model, before any stretching of its output, puts at or above one half).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

# Each estimate is clip(w0 + w1*x1 + ...), least squares against the IoU of the cut-out the
# pipeline makes, on all 345 pairs of davis345 (2026-12-05, precise in bf16; docs/quality.md).
# precise's consensus cut-out: (intercept, agreement, certainty over either model's subject,
# log1p(soft)).
CHECKED = (-0.070, 0.397, 0.660, -0.044)
# The checker's (fast's) cut-out, where model=auto keeps it: the same signals of its own mask
# (fitted against its edges cut-out; auto keeps it with zoom, on average 0.03 better there).
CHECKER_KEPT = (0.026, 0.668, 0.276, -0.074)
# One model alone: (intercept, certainty over its own subject, log1p(soft)). U2-Netp's was
# fitted for it; IS-Net's serves every other model, none of which was measured here (their
# confidence ranks cut-outs, but its calibration is unknown: docs/quality.md).
ALONE = {"u2netp": (-0.366, 1.298, 0.001)}
ALONE_OTHERS = (-0.005, 0.934, -0.084)
# model=auto keeps the checker's cut-out where the two masks overlap by less than this (IoU)
# and the checker's soft output is the more decided over the pair's subject: the rule the
# first study chose on plain masks (docs/design/confidence.md), before the consensus
# pipeline's numbers were seen; a fitted classifier gained less on held-out videos.
SWITCH_BELOW = 0.7
NO_SUBJECT_SHARE = 0.001  # default: under 0.1% of the photo is no subject (docs/quality.md)


@dataclass(frozen=True)
class Assessment:
    """How sure a cut-out is. ``confidence``: an estimate of its IoU (0..1, 0 for an empty
    cut-out); ``subject``: the share of the photo its model sees as subject, from its raw
    output (0 for a blank wall); ``certainty`` and ``soft``: the mask
    model's own signals; ``agreement``: IoU of the two models' masks where a second one ran,
    else None."""

    confidence: float
    subject: float
    certainty: float
    soft: float
    agreement: float | None = None
    checker_subject: float | None = None  # the share the second model sees, where one ran


@dataclass(frozen=True)
class Checked:
    """A model's cut-out checked by a second one: both assessments, and whether ``auto``
    keeps the checker's."""

    own: Assessment
    checker: Assessment
    switch: bool


def subject_share(probability: npt.NDArray[np.float32]) -> float:
    """The share of the model's input that its raw output (a probability, before any
    min-max stretch) puts at or above one half."""
    return float(np.count_nonzero(probability >= 0.5)) / max(probability.size, 1)


def assess(mask: npt.NDArray[np.uint8], share: float, model: str) -> Assessment:
    """``model``'s cut-out alone: ``mask`` is its output at its own size (uint8), ``share``
    its raw :func:`subject_share`."""
    found = mask >= 128
    certainty, soft = _signals(mask, found)
    w0, w_certainty, w_soft = ALONE.get(model, ALONE_OTHERS)
    score = w0 + w_certainty * certainty + w_soft * np.log1p(soft)
    # an empty cut-out is never a good one, however decided its background
    return Assessment(_clip(score) if found.any() else 0.0, share, certainty, soft)


def assess_checked(
    own: npt.NDArray[np.uint8],
    own_share: float,
    checker: npt.NDArray[np.uint8],
    checker_share: float,
) -> Checked:
    """A model's output checked by a second model's (each at its own size, uint8). ``auto``
    switches where the checker finds a subject and the model none, or where the two disagree
    (IoU under ``SWITCH_BELOW``) and the checker's output is the more decided."""
    small = own.shape if own.size <= checker.size else checker.shape
    agreement = _iou(_at(own, small) >= 128, _at(checker, small) >= 128)
    own_found, their_found = bool(np.any(own >= 128)), bool(np.any(checker >= 128))
    theirs_here = _at(checker, own.shape) >= 128
    own_certainty, own_soft = _signals(own, own >= 128, region=(own >= 128) | theirs_here)
    ours_there = _at(own, checker.shape) >= 128
    their_certainty, their_soft = _signals(
        checker, checker >= 128, region=(checker >= 128) | ours_there
    )
    # An empty cut-out where the other model sees a subject is a miss, whatever the signals
    # (its "certainty" is that of the background): nothing of the subject is there.
    mine = _estimate(CHECKED, agreement, own_certainty, own_soft) if own_found else 0.0
    theirs = _estimate(CHECKER_KEPT, agreement, their_certainty, their_soft) if their_found else 0.0
    disagree = agreement < SWITCH_BELOW and their_certainty > own_certainty
    return Checked(
        Assessment(mine, own_share, own_certainty, own_soft, agreement, checker_share),
        Assessment(theirs, checker_share, their_certainty, their_soft, agreement, own_share),
        switch=their_found and (not own_found or disagree),
    )


def _signals(
    mask: npt.NDArray[np.uint8],
    found: npt.NDArray[np.bool_],
    region: npt.NDArray[np.bool_] | None = None,
) -> tuple[float, float]:
    """(certainty: mean |2a - 1| over ``region``, default the subject; soft: pixels with
    alpha in (0.1, 0.9) over the subject's area)."""
    region = found if region is None else region
    alpha = mask.astype(np.float32) * np.float32(1 / 255)
    certainty = float(np.abs(2 * alpha[region] - 1).mean()) if region.any() else 1.0
    soft = float(np.count_nonzero((alpha > 0.1) & (alpha < 0.9))) / max(
        int(np.count_nonzero(found)), 1
    )
    return certainty, soft


def _estimate(
    weights: tuple[float, float, float, float], agreement: float, certainty: float, soft: float
) -> float:
    w0, w_agreement, w_certainty, w_soft = weights
    return _clip(w0 + w_agreement * agreement + w_certainty * certainty + w_soft * np.log1p(soft))


def _clip(score: float) -> float:
    return round(float(np.clip(score, 0.0, 1.0)), 4)


def _at(mask: npt.NDArray[np.uint8], shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    if mask.shape == shape:
        return mask
    size = (int(shape[1]), int(shape[0]))
    return np.asarray(cv2.resize(mask, size, interpolation=cv2.INTER_AREA))


def _iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union
