"""The quality metrics, on masks whose scores are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alphacut.evaluation import (
    ImageResult,
    Scores,
    Truth,
    boundary_f,
    gradient_error,
    iou,
    load_pairs,
    load_truth,
    mae,
    runtime_verdicts,
    sad,
    score,
)


def _square(shift: int = 0, size: int = 100, side: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[30 + shift : 30 + side + shift, 30:70] = 255
    return mask


def _truth(mask: np.ndarray) -> Truth:
    return Truth((mask / 255).astype(np.float32), np.ones(mask.shape, bool))


def test_a_perfect_prediction_scores_perfectly() -> None:
    truth = _truth(_square())
    scores = score(_square(), truth)
    assert (scores.iou, scores.mae, scores.boundary_f, scores.sad, scores.grad) == (1, 0, 1, 0, 0)


def test_a_shifted_mask_loses_area_but_its_boundary_is_found_within_tolerance() -> None:
    truth, shifted = _truth(_square()), _square(shift=2)
    assert iou(shifted, truth) == pytest.approx(38 * 40 / (42 * 40))
    assert mae(shifted, truth) == pytest.approx(2 * 2 * 40 / 100**2)
    assert sad(shifted, truth) == pytest.approx(2 * 2 * 40 / 1000)
    assert boundary_f(shifted, truth, tolerance=3) == 1.0
    assert boundary_f(shifted, truth, tolerance=1) < 0.8


def test_void_pixels_do_not_count() -> None:
    truth = _truth(_square())
    valid = np.ones((100, 100), bool)
    valid[:, 50:] = False  # the right half is void
    wrong_on_void = _square()
    wrong_on_void[:, 50:] = 255 - wrong_on_void[:, 50:]
    voided = Truth(truth.alpha, valid)
    assert score(wrong_on_void, voided) == score(_square(), voided)
    assert iou(wrong_on_void, truth) < 0.5


def test_gradient_error_tells_a_soft_edge_from_a_sharp_one() -> None:
    sharp = np.zeros((60, 60), np.float32)
    sharp[:, 30:] = 1
    soft = np.clip((np.arange(60, dtype=np.float32) - 24) / 12, 0, 1)[None].repeat(60, 0)
    truth = Truth(sharp, np.ones(sharp.shape, bool))
    assert gradient_error((sharp * 255).astype(np.uint8), truth) == 0
    assert gradient_error(np.round(soft * 255).astype(np.uint8), truth) > 0.01
    assert iou(np.round(soft * 255).astype(np.uint8), truth) == 1.0  # same place at 0.5


def test_small_subjects_and_palette_truth(tmp_path: Path) -> None:
    ids = np.zeros((100, 100), np.uint8)
    ids[10:20, 10:20] = 2  # instance id 2: foreground
    ids[0, :] = 255  # void
    image = Image.fromarray(ids, "P")
    image.putpalette([0, 0, 0] * 256)
    image.save(tmp_path / "m.png")
    truth = load_truth(tmp_path / "m.png")
    assert truth.alpha.max() == 1 and not truth.valid[0].any()
    assert truth.foreground_fraction == pytest.approx(100 / 9900)
    assert truth.small


def test_pairs_may_not_leave_their_folder(tmp_path: Path) -> None:
    (tmp_path / "pairs.csv").write_text("image,mask\na.jpg,a.png\n../../etc/passwd,a.png\n")
    with pytest.raises(ValueError, match="outside"):
        load_pairs(tmp_path)


# --- the rule for a change of runtime or precision ----------------------------------------


def _result(variant: str, image: str, iou_: float, f: float, agreement: float | None = None,
            reference: str | None = None) -> ImageResult:  # fmt: skip
    return ImageResult(variant=variant, image=image, small=False, seconds=0.1,
                       scores=Scores(iou=iou_, mae=0.0, boundary_f=f, sad=0.0, grad=0.0),
                       reference=reference, agreement=agreement)  # fmt: skip


def _compared(ious: list[float], fs: list[float], agreements: list[float]) -> list[ImageResult]:
    ref, new = "fast refine=none openvino-fp32", "fast refine=none openvino-bf16"
    results = []
    for index, (candidate_iou, f, agreement) in enumerate(zip(ious, fs, agreements, strict=True)):
        results.append(_result(ref, f"{index}.jpg", 0.8, 0.7))
        results.append(_result(new, f"{index}.jpg", candidate_iou, f, agreement, ref))
    return results


@pytest.mark.parametrize(
    ("ious", "fs", "agreements", "fails"),
    [
        ([0.801, 0.799, 0.8], [0.70, 0.704, 0.70], [0.99, 0.81, 0.95], []),  # within: passes
        ([0.807, 0.8, 0.8], [0.7, 0.7, 0.7], [0.99, 0.99, 0.99], ["mean IoU moves +0.0023"]),
        ([0.8, 0.8, 0.8], [0.716, 0.7, 0.7], [0.99, 0.99, 0.99], ["boundary F moves +0.0053"]),
        ([0.8, 0.8, 0.8], [0.7, 0.7, 0.7], [0.99, 0.79, 0.5], ["2 photo(s)", "worst 2.jpg: 0.500"]),
    ],
)
def test_the_runtime_rule_judges_iou_boundary_f_and_every_photo(
    ious: list[float], fs: list[float], agreements: list[float], fails: list[str]
) -> None:
    (verdict,) = runtime_verdicts(_compared(ious, fs, agreements))
    assert verdict.candidate.endswith("openvino-bf16") and verdict.reference.endswith("fp32")
    assert verdict.images == 3 and verdict.passes == (not fails)
    assert verdict.min_agreement == min(agreements)
    assert [image for image, _ in verdict.worst] == [
        f"{i}.jpg" for i in sorted(range(3), key=lambda i: agreements[i])
    ]
    said = " ".join(verdict.failures)
    for text in fails:
        assert text in said


def test_a_gain_beyond_the_tolerance_also_fails_the_rule() -> None:
    # the rule asks that the masks stay what they were, not that they improve: a precision
    # that moves mean IoU by more than 0.002 either way changed the model's answers
    (verdict,) = runtime_verdicts(_compared([0.81, 0.81], [0.7, 0.7], [0.95, 0.95]))
    assert not verdict.passes and "+0.0100" in verdict.failures[0]


def test_variants_without_a_reference_get_no_verdict() -> None:
    assert runtime_verdicts([_result("fast refine=none", "a.jpg", 0.8, 0.7)]) == []
