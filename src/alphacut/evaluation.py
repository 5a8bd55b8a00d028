"""Quality metrics against hand-made masks, and the ``pairs.csv`` data-set format.

A data set is a folder with ``pairs.csv`` (columns ``image,mask,...``, paths relative to the
folder). Masks may be 0/255 binary, soft alpha (L), or palette/instance ids as in DAVIS, where
every non-zero id is foreground and 255 marks void pixels that are not scored.

Metrics (all over the valid pixels only):

- ``iou``: intersection over union of both masks binarised at 0.5;
- ``mae``: mean absolute difference of alpha in 0..1;
- ``boundary_f``: the F-measure of the two masks' boundaries, a boundary pixel counting as
  found when the other boundary passes within ``tolerance`` pixels (DAVIS's F, with a fixed
  tolerance in pixels rather than a fraction of the diagonal);
- ``sad``: the sum of absolute alpha differences, in thousands (the matting convention);
- ``grad``: the gradient error of Rhemann et al. (first-order Gaussian derivatives, sigma
  1.4), in thousands: it rewards edges with the right sharpness, not only the right place.

A subject is *small* when the truth's foreground covers under 5% of the valid pixels.

Runtimes and precisions (:func:`runtime_verdicts`): variants that differ only in ``runtime``
(``openvino-fp32`` against ``openvino-bf16``...) are also compared with each other, photo by
photo (``agreement``: the IoU at 0.5 of the two masks), and judged by this project's rule for
a change of runtime or precision: against the hand-made masks, mean IoU within 0.002 and mean
boundary F within 0.005 of the reference's, and no photo whose mask agrees with the
reference's below IoU 0.80 (no photo flips).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.config import Settings
from alphacut.engine.pipeline import Cutout, Remover
from alphacut.engine.sessions import SESSIONS, Loader, SessionCache, fixed_loader
from alphacut.errors import NoSubjectError
from alphacut.models.store import ModelStore
from alphacut.noc import Trace, simulate

VOID_ID = 255
SMALL_SUBJECT = 0.05
BOUNDARY_TOLERANCE = 3
# The rule for a change of runtime or precision (issue 24), against the reference's figures.
RULE_IOU = 0.002  # mean IoU against the truth within this
RULE_BOUNDARY_F = 0.005  # mean boundary F against the truth within this
RULE_AGREEMENT = 0.80  # no photo's mask below this IoU with the reference's mask


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path


@dataclass(frozen=True)
class Truth:
    """Ground truth as alpha in 0..1 and a map of the pixels that count."""

    alpha: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]

    @property
    def foreground_fraction(self) -> float:
        count = np.count_nonzero(self.valid)
        return float(self.alpha[self.valid].sum() / count) if count else 0.0

    @property
    def small(self) -> bool:
        return bool(self.foreground_fraction < SMALL_SUBJECT)


@dataclass(frozen=True)
class Scores:
    iou: float
    mae: float
    boundary_f: float
    sad: float
    grad: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


METRICS = ("iou", "mae", "boundary_f", "sad", "grad")


def load_pairs(folder: Path) -> list[Pair]:
    """The pairs of a data set, in file order; paths may not leave the folder."""
    root = folder.resolve()
    pairs = []
    with (folder / "pairs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            pair = Pair(folder / row["image"], folder / row["mask"])
            for path in (pair.image, pair.mask):
                if not path.resolve().is_relative_to(root):
                    raise ValueError(f"pairs.csv names a file outside {folder}: {path}")
            pairs.append(pair)
    return pairs


def spread(pairs: list[Pair], count: int | None) -> list[Pair]:
    """``count`` pairs spread evenly over the list (neighbours in a video-derived set are
    near-duplicates, so the first N would be a poor sample); all of them for ``None``."""
    if count is None or count >= len(pairs):
        return pairs
    return [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, count).round()]


def load_truth(path: Path) -> Truth:
    with Image.open(path) as image:
        if image.mode == "P":
            ids = np.asarray(image)
            return Truth((ids > 0).astype(np.float32), ids != VOID_ID)
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return Truth(grey, np.ones(grey.shape, dtype=bool))


def score(
    predicted: npt.NDArray[np.uint8], truth: Truth, tolerance: int = BOUNDARY_TOLERANCE
) -> Scores:
    """Every metric for one predicted alpha (uint8, the truth's size)."""
    if predicted.shape != truth.alpha.shape:
        raise ValueError(f"prediction {predicted.shape} and truth {truth.alpha.shape} differ")
    return Scores(
        iou=float(iou(predicted, truth)),
        mae=mae(predicted, truth),
        boundary_f=boundary_f(predicted, truth, tolerance),
        sad=sad(predicted, truth),
        grad=gradient_error(predicted, truth),
    )


def iou(predicted: npt.NDArray[np.uint8], truth: Truth, threshold: float = 0.5) -> float:
    """Intersection over union of the masks binarised at ``threshold``, void pixels ignored.
    Two empty masks agree perfectly (1.0)."""
    ours = (predicted.astype(np.float32) / 255.0 >= threshold) & truth.valid
    theirs = (truth.alpha >= threshold) & truth.valid
    union = np.count_nonzero(ours | theirs)
    return 1.0 if union == 0 else float(np.count_nonzero(ours & theirs) / union)


def mae(predicted: npt.NDArray[np.uint8], truth: Truth) -> float:
    """Mean absolute difference of alpha in 0..1 over valid pixels."""
    difference = np.abs(predicted.astype(np.float32) / 255.0 - truth.alpha)
    return float(difference[truth.valid].mean()) if truth.valid.any() else 0.0


def sad(predicted: npt.NDArray[np.uint8], truth: Truth) -> float:
    """Sum of absolute alpha differences over valid pixels, in thousands."""
    difference = np.abs(predicted.astype(np.float32) / 255.0 - truth.alpha)
    return float(difference[truth.valid].sum()) / 1000.0


def _boundary(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels of the mask with a 4-neighbour outside it (the frame's edge is not a boundary)."""
    padded = np.pad(mask, 1, mode="edge").astype(np.uint8)
    eroded = cv2.erode(padded, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))[1:-1, 1:-1]
    return np.asarray(mask & (eroded == 0), dtype=bool)


def _disc(radius: int) -> npt.NDArray[np.uint8]:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.asarray(disc, dtype=np.uint8)


def _away_from_void(valid: npt.NDArray[np.bool_], radius: int) -> npt.NDArray[np.bool_]:
    """Valid pixels farther than ``radius`` from any void pixel (what a prediction does on
    void must not leak into the scores through a filter or a tolerance)."""
    if valid.all():
        return valid
    near_void = cv2.dilate((~valid).astype(np.uint8), _disc(radius)) > 0
    return np.asarray(valid & ~near_void, dtype=bool)


def boundary_f(
    predicted: npt.NDArray[np.uint8], truth: Truth, tolerance: int = BOUNDARY_TOLERANCE
) -> float:
    """F-measure of the boundaries at 0.5, each pixel matched within ``tolerance`` pixels
    (a disc); boundary pixels on or near void are not counted. Two boundary-free masks
    score 1."""
    scored = _away_from_void(truth.valid, tolerance + 1)
    ours = _boundary(predicted >= 128) & scored
    theirs = _boundary(truth.alpha >= 0.5) & scored
    if not ours.any() and not theirs.any():
        return 1.0
    if not ours.any() or not theirs.any():
        return 0.0
    disc = _disc(tolerance)
    near_theirs = cv2.dilate(theirs.astype(np.uint8), disc) > 0
    near_ours = cv2.dilate(ours.astype(np.uint8), disc) > 0
    precision = np.count_nonzero(ours & near_theirs) / np.count_nonzero(ours)
    recall = np.count_nonzero(theirs & near_ours) / np.count_nonzero(theirs)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _gaussian_gradient(
    alpha: npt.NDArray[np.float32], sigma: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    gauss = np.exp(-(x**2) / (2 * sigma**2))
    gauss /= gauss.sum()
    derivative = -x / sigma**2 * gauss
    derivative /= np.abs(derivative).sum() / 2  # a unit step gives a unit response
    gx = cv2.sepFilter2D(alpha, cv2.CV_32F, derivative, gauss, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(alpha, cv2.CV_32F, gauss, derivative, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(gx, dtype=np.float32), np.asarray(gy, dtype=np.float32)


def gradient_error(predicted: npt.NDArray[np.uint8], truth: Truth, sigma: float = 1.4) -> float:
    """Sum over valid pixels (away from void) of the squared difference of the gradient
    magnitudes of both alphas (Gaussian derivatives, ``sigma``), in thousands."""
    ours = np.hypot(*_gaussian_gradient(predicted.astype(np.float32) / 255.0, sigma))
    theirs = np.hypot(*_gaussian_gradient(truth.alpha, sigma))
    scored = _away_from_void(truth.valid, int(np.ceil(3 * sigma)))
    return float(((ours - theirs) ** 2)[scored].sum()) / 1000.0


# --- running a data set through alphacut ------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of running alphacut to compare: a model and its edge refinement."""

    model: str
    refine: str
    runtime: str | None = None  # a fixed runtime (sessions.RUNTIME_NAMES); None: the settings'

    @property
    def label(self) -> str:
        label = f"{self.model} refine={self.refine}"
        return label if self.runtime is None else f"{label} {self.runtime}"

    @property
    def method(self) -> tuple[str, str]:
        """What the variant computes, apart from its runtime: variants with the same method
        are compared photo by photo, the first one listed as the reference."""
        return self.model, self.refine


@dataclass(frozen=True)
class ImageResult:
    variant: str
    image: str
    small: bool
    seconds: float
    scores: Scores
    # For a variant that differs from an earlier one only in its runtime: that variant's label,
    # and the IoU at 0.5 of the two masks on this photo.
    reference: str | None = None
    agreement: float | None = None
    confidence: float | None = None  # the engine's estimate of this cut-out's IoU
    mask_model: str | None = None  # the model whose mask it is (auto: the one it kept)
    refused: bool = False  # the engine found no subject: scored as an empty cut-out
    clicks: Trace | None = None  # the simulated user's clicks on it (evaluate(clicks=N))


@dataclass(frozen=True)
class Summary:
    """Mean scores of one variant: over all images, over small subjects and over the rest."""

    variant: str
    images: int
    small_images: int
    seconds_per_image: float
    all: dict[str, float]
    small: dict[str, float]
    large: dict[str, float]


def _means(results: list[ImageResult]) -> dict[str, float]:
    if not results:
        return {}
    return {m: float(np.mean([getattr(r.scores, m) for r in results])) for m in METRICS}


def summarize(results: list[ImageResult]) -> list[Summary]:
    """One summary per variant, in the order the variants first appear."""
    by_variant: dict[str, list[ImageResult]] = {}
    for result in results:
        by_variant.setdefault(result.variant, []).append(result)
    return [
        Summary(
            variant=variant,
            images=len(group),
            small_images=sum(1 for r in group if r.small),
            seconds_per_image=float(np.mean([r.seconds for r in group])),
            all=_means(group),
            small=_means([r for r in group if r.small]),
            large=_means([r for r in group if not r.small]),
        )
        for variant, group in by_variant.items()
    ]


def _agreement(first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8]) -> float:
    ours, theirs = first >= 128, second >= 128
    union = np.count_nonzero(ours | theirs)
    return 1.0 if union == 0 else float(np.count_nonzero(ours & theirs) / union)


def evaluate(
    pairs: list[Pair],
    variants: list[Variant],
    *,
    settings: Settings | None = None,
    store: ModelStore | None = None,
    tolerance: int = BOUNDARY_TOLERANCE,
    on_result: Callable[[ImageResult], None] | None = None,
    loaders: Mapping[str, Loader] | None = None,
    clicks: int = 0,
) -> list[ImageResult]:
    """Run every variant on every pair and score it. Seconds are alphacut's end to end
    (decode to full-size cut-out, model already loaded), not the scoring's. The variants
    take turns on each photo, so that a machine's drifting speed weighs on all alike, and
    each mask is read once. A variant with a ``runtime`` runs through ``loaders[runtime]``
    (default: :func:`~alphacut.engine.sessions.fixed_loader`); one that differs from an
    earlier variant only in its runtime also gets its ``agreement`` with it. With ``clicks``,
    each cut-out is then corrected by the simulated user of :mod:`alphacut.noc`, up to that
    many clicks."""
    caches: dict[str, SessionCache] = {}
    for variant in variants:
        if variant.runtime is not None and variant.runtime not in caches:
            loader = (loaders or {}).get(variant.runtime) or fixed_loader(variant.runtime)
            caches[variant.runtime] = SessionCache(loader=loader)
    removers = [
        (
            variant,
            Remover(
                variant.model,
                refine=variant.refine,
                settings=settings,
                store=store,
                sessions=caches[variant.runtime] if variant.runtime is not None else SESSIONS,
            ),
        )
        for variant in variants
    ]
    for _variant, remover in removers:
        remover.load()
    # photos are named by file name, or by path where two share a name (a verdict pairs by it)
    unique_names = len({pair.image.name for pair in pairs}) == len(pairs)
    references: dict[tuple[str, str], Variant] = {}
    for variant in variants:
        references.setdefault(variant.method, variant)
    results = []
    for pair in pairs:
        truth = load_truth(pair.mask)
        masks: dict[Variant, npt.NDArray[np.uint8]] = {}
        for variant, remover in removers:
            started = time.perf_counter()
            cut: Cutout | None = None
            try:
                cut = remover.remove(pair.image)
                alpha = np.asarray(cut.array[..., 3])
            except NoSubjectError:  # what a user gets: no cut-out at all, scored as empty
                alpha = np.zeros(truth.alpha.shape, np.uint8)
            seconds = time.perf_counter() - started
            if alpha.shape != truth.alpha.shape:
                raise ValueError(
                    f"{pair.image.name} is {alpha.shape[1]}x{alpha.shape[0]} but its mask "
                    f"{pair.mask.name} is {truth.alpha.shape[1]}x{truth.alpha.shape[0]}"
                )
            masks[variant] = alpha
            trace = None
            if clicks:
                rgb = np.asarray(remover.decode(pair.image).image.convert("RGB"))
                valid = truth.valid
                propose = remover.proposer()
                trace = simulate(rgb, alpha, truth.alpha >= 0.5, valid, clicks, propose)
            reference = references[variant.method]
            compared = reference is not variant
            result = ImageResult(
                variant=variant.label,
                image=pair.image.name if unique_names else str(pair.image),
                small=truth.small,
                seconds=seconds,
                scores=score(alpha, truth, tolerance),
                reference=reference.label if compared else None,
                agreement=_agreement(alpha, masks[reference]) if compared else None,
                confidence=cut.confidence if cut is not None else None,
                mask_model=cut.mask_model if cut is not None else None,
                refused=cut is None,
                clicks=trace,
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


@dataclass(frozen=True)
class RuntimeVerdict:
    """The rule's verdict on one runtime or precision against a reference (see the module's
    docstring), over the photos both ran on."""

    reference: str
    candidate: str
    images: int
    iou: tuple[float, float]  # mean IoU against the truth: reference, candidate
    boundary_f: tuple[float, float]
    seconds: tuple[float, float]  # mean seconds per photo, end to end
    min_agreement: float
    worst: list[tuple[str, float]]  # the five photos where the masks agree least
    failures: list[str]  # why it fails the rule; empty: it passes

    @property
    def passes(self) -> bool:
        return not self.failures


def runtime_verdicts(results: list[ImageResult]) -> list[RuntimeVerdict]:
    """One verdict per variant compared with a reference (``ImageResult.reference``)."""
    by_label: dict[str, dict[str, ImageResult]] = {}
    for result in results:
        by_label.setdefault(result.variant, {})[result.image] = result
    verdicts = []
    for candidate, rows in by_label.items():
        compared = [r for r in rows.values() if r.reference is not None]
        if not compared:
            continue
        reference = str(compared[0].reference)
        base = [by_label[reference][r.image] for r in compared]

        def mean(group: list[ImageResult], metric: str) -> float:
            return float(np.mean([getattr(r.scores, metric) for r in group]))

        iou_pair = (mean(base, "iou"), mean(compared, "iou"))
        f_pair = (mean(base, "boundary_f"), mean(compared, "boundary_f"))
        agreements = sorted((float(r.agreement or 0.0), r.image) for r in compared)
        failures = []
        if abs(iou_pair[1] - iou_pair[0]) > RULE_IOU:
            failures.append(f"mean IoU moves {iou_pair[1] - iou_pair[0]:+.4f} (limit {RULE_IOU})")
        if abs(f_pair[1] - f_pair[0]) > RULE_BOUNDARY_F:
            failures.append(
                f"mean boundary F moves {f_pair[1] - f_pair[0]:+.4f} (limit {RULE_BOUNDARY_F})"
            )
        flipped = [image for value, image in agreements if value < RULE_AGREEMENT]
        if flipped:
            failures.append(
                f"{len(flipped)} photo(s) agree with {reference} below IoU {RULE_AGREEMENT} "
                f"(worst {agreements[0][1]}: {agreements[0][0]:.3f})"
            )
        verdicts.append(
            RuntimeVerdict(
                reference=reference,
                candidate=candidate,
                images=len(compared),
                iou=iou_pair,
                boundary_f=f_pair,
                seconds=(
                    float(np.mean([r.seconds for r in base])),
                    float(np.mean([r.seconds for r in compared])),
                ),
                min_agreement=agreements[0][0],
                worst=[(image, value) for value, image in agreements[:5]],
                failures=failures,
            )
        )
    return verdicts


# The confidence score (issue 25) ---------------------------------------------------------

BAD_IOU = 0.80  # a cut-out under this IoU is one a person should look at


@dataclass(frozen=True)
class ConfidenceReport:
    """How well one variant's confidence tells its good cut-outs from its bad ones.

    ``auroc``: the chance that a random cut-out under IoU ``BAD_IOU`` scores lower than a
    random one above it (0.5 is chance); ``spearman``: rank correlation with IoU;
    ``calibration``: mean |confidence - IoU|; ``deciles``: (mean confidence, mean IoU, photos)
    for each tenth of the photos by confidence; ``flagged``: at the threshold, how many are
    doubtful and how many of those are really under ``BAD_IOU``; ``bad``: photos under it;
    ``refused``: photos the engine found no subject in (scored as empty, no confidence);
    ``kept``: photos per model whose mask was kept (``auto``: how often it switched)."""

    variant: str
    photos: int
    bad: int
    auroc: float
    spearman: float
    calibration: float
    deciles: list[tuple[float, float, int]]
    threshold: float
    flagged: int
    flagged_bad: int
    refused: int
    kept: dict[str, int]


def auroc(scores: list[float], bad: list[bool]) -> float:
    """The probability that a random bad item scores lower than a random good one (ties
    count half); nan without both kinds."""
    good_scores = np.sort([s for s, b in zip(scores, bad, strict=True) if not b])
    bad_scores = [s for s, b in zip(scores, bad, strict=True) if b]
    if not len(good_scores) or not bad_scores:
        return float("nan")
    wins = 0.0
    for value in bad_scores:
        above = len(good_scores) - int(np.searchsorted(good_scores, value, side="right"))
        ties = int(np.searchsorted(good_scores, value, side="right")) - int(
            np.searchsorted(good_scores, value, side="left")
        )
        wins += above + 0.5 * ties
    return wins / (len(good_scores) * len(bad_scores))


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation, tied values sharing their average rank; nan where it is
    undefined (fewer than two values, or one side constant)."""
    ranks_a, ranks_b = _ranks(a), _ranks(b)
    if len(a) < 2 or ranks_a.std() == 0 or ranks_b.std() == 0:
        return float("nan")
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def _ranks(values: list[float]) -> npt.NDArray[np.float64]:
    """Ranks from 0, ties given the mean of the ranks they span."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array))
    ranks[order] = np.arange(len(array), dtype=np.float64)
    _unique, inverse = np.unique(array, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return np.asarray(sums[inverse] / counts[inverse], dtype=np.float64)


def confidence_reports(results: list[ImageResult], threshold: float) -> list[ConfidenceReport]:
    """One :class:`ConfidenceReport` per variant, in the order the variants first appear."""
    by_variant: dict[str, list[ImageResult]] = {}
    for result in results:
        by_variant.setdefault(result.variant, []).append(result)
    reports = []
    for variant, group in by_variant.items():
        scored = [r for r in group if r.confidence is not None]
        confidence = [float(r.confidence) for r in scored]  # type: ignore[arg-type]
        ious = [r.scores.iou for r in scored]
        bad = [value < BAD_IOU for value in ious]
        order = np.argsort(confidence)
        deciles = [] if not scored else [
            (
                float(np.mean([confidence[i] for i in chunk])),
                float(np.mean([ious[i] for i in chunk])),
                len(chunk),
            )
            for chunk in np.array_split(order, min(10, len(order)))
            if len(chunk)
        ]  # fmt: skip
        flagged = [i for i, value in enumerate(confidence) if value < threshold]
        kept: dict[str, int] = {}
        for r in scored:
            kept[str(r.mask_model)] = kept.get(str(r.mask_model), 0) + 1
        reports.append(
            ConfidenceReport(
                variant=variant,
                photos=len(scored),
                bad=sum(bad),
                auroc=auroc(confidence, bad),
                spearman=spearman(confidence, ious),
                calibration=(
                    float(np.mean(np.abs(np.subtract(confidence, ious))))
                    if scored
                    else float("nan")
                ),
                deciles=deciles,
                threshold=threshold,
                flagged=len(flagged),
                flagged_bad=sum(1 for i in flagged if bad[i]),
                refused=sum(1 for r in group if r.refused),
                kept=kept,
            )
        )
    return reports
