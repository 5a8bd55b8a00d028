"""The confidence score, model=auto and "no subject" (issue 25), on real photos and masks made
to show each signal. The score's ranking power and calibration are measured on davis345 by
``alphacut eval`` (docs/quality.md), not here: these tests check that each signal moves the
score the right way, that the engine carries it, and that a photo without a subject is
refused rather than answered with an empty cut-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from alphacut.config import Settings
from alphacut.engine import confidence
from alphacut.engine.confidence import assess, assess_checked, subject_share
from alphacut.engine.pipeline import Remover
from alphacut.errors import InvalidInputError, NoSubjectError


def _disc(size: int, radius: float, soft: float = 0.0, shift: int = 0) -> npt.NDArray[np.uint8]:
    """A disc mask (uint8), hard or with a soft edge ``soft`` px wide."""
    y, x = np.mgrid[0:size, 0:size]
    distance = np.hypot(x - size / 2 - shift, y - size / 2) - radius
    disc: npt.NDArray[np.uint8] = (
        np.where(distance <= 0, 255, 0).astype(np.uint8)
        if soft == 0
        else (np.clip(0.5 - distance / soft, 0, 1) * 255).astype(np.uint8)
    )
    return disc


def test_a_decided_mask_scores_higher_than_an_undecided_one() -> None:
    hard = assess(_disc(320, 80), 0.2, "u2netp")
    hazy = assess(_disc(320, 80, soft=120), 0.2, "u2netp")
    assert hard.certainty > hazy.certainty and hard.soft < hazy.soft
    assert hard.confidence > hazy.confidence + 0.2


def test_two_models_that_disagree_score_lower_than_two_that_agree() -> None:
    own = _disc(1024, 250)
    agreeing = assess_checked(own, 0.2, _disc(320, 78), 0.2)
    disagreeing = assess_checked(own, 0.2, _disc(320, 60, shift=90), 0.2)
    assert agreeing.own.agreement is not None and agreeing.own.agreement > 0.9
    assert disagreeing.own.agreement is not None and disagreeing.own.agreement < 0.5
    assert agreeing.own.confidence > disagreeing.own.confidence + 0.1


def test_auto_switches_only_where_the_models_disagree_and_the_checker_is_more_decided() -> None:
    own_hazy = _disc(1024, 250, soft=400)
    checker_sharp = _disc(320, 60, shift=90)
    assert assess_checked(own_hazy, 0.2, checker_sharp, 0.2).switch
    # the same disagreement, but the model's own mask is the more decided: kept
    assert not assess_checked(_disc(1024, 250), 0.2, _disc(320, 60, shift=90), 0.2).switch
    # a hazier model that agrees with its checker: kept
    assert not assess_checked(own_hazy, 0.2, _disc(320, 78), 0.2).switch


def test_the_score_stays_in_zero_to_one_whatever_the_masks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        own = rng.integers(0, 256, (64, 64), dtype=np.uint8)
        other = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        checked = assess_checked(own, 0.5, other, 0.5)
        for one in (checked.own, checked.checker, assess(own, 0.5, "u2netp")):
            assert 0.0 <= one.confidence <= 1.0
    empty = np.zeros((320, 320), np.uint8)
    assert 0.0 <= assess(empty, 0.0, "isnet-general-use").confidence <= 1.0


def test_subject_share_reads_the_raw_output_not_the_stretched_one() -> None:
    faint = np.full((100, 100), 0.02, np.float32)
    faint[:10, :10] = 0.04  # stretched min-max, this corner would read as a sure subject
    assert subject_share(faint) == 0.0
    faint[:10, :10] = 0.9
    assert subject_share(faint) == pytest.approx(0.01)


def test_an_empty_cut_out_scores_zero_and_auto_keeps_the_checkers() -> None:
    nothing = np.zeros((1024, 1024), np.uint8)
    checked = assess_checked(nothing, 0.0, _disc(320, 60), 0.11)
    assert (checked.own.subject, checked.own.checker_subject) == (0.0, 0.11)
    # the empty cut-out is a miss: no confidence at all, whatever its decided background
    assert checked.own.confidence == 0.0 and checked.checker.confidence > 0.0
    assert checked.switch
    # the other way round: never switch to an empty cut-out
    assert not assess_checked(_disc(1024, 250), 0.2, np.zeros((320, 320), np.uint8), 0.0).switch
    assert assess(np.zeros((320, 320), np.uint8), 0.0, "u2netp").confidence == 0.0


# The engine, on real photos -----------------------------------------------------------


def test_every_cut_out_carries_its_confidence(fast: Remover, precise: Remover, photo: Path) -> None:
    for remover in (fast, precise):
        cut = remover.remove(photo)
        assert cut.confidence is not None and 0.0 <= cut.confidence <= 1.0
        assert cut.assessment is not None and cut.assessment.subject > 0.01
        assert cut.doubtful == (cut.confidence < remover.settings.doubtful_below)
        assert cut.crop().confidence == cut.confidence  # derived cut-outs keep it
    assert precise.remove(photo).assessment.agreement is not None  # type: ignore[union-attr]
    assert fast.remove(photo).assessment.agreement is None  # type: ignore[union-attr]


def test_the_threshold_decides_what_is_doubtful(photo: Path) -> None:
    never = Remover("fast", settings=Settings(doubtful_below=0.0)).remove(photo)
    always = Remover("fast", settings=Settings(doubtful_below=1.0)).remove(photo)
    assert not never.doubtful and always.doubtful
    assert never.confidence == always.confidence


def test_auto_is_precise_checked_and_keeps_the_checkers_cut_out_when_it_switches(
    settings: Settings, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = Remover("auto", settings=settings)
    assert auto.spec.name == "isnet-general-use" and auto.refine == "consensus"
    kept = auto.remove(photo)
    precise = Remover("precise", settings=settings).remove(photo)
    assert kept.mask_model == "isnet-general-use" and kept.model == "auto"
    assert np.array_equal(kept.array, precise.array)  # no switch on a clear photo

    def more_decided_checker(*args: object) -> confidence.Checked:
        found = assess_checked(*args)  # type: ignore[arg-type]
        return confidence.Checked(found.own, found.checker, switch=True)

    monkeypatch.setattr("alphacut.engine.pipeline.assess_checked", more_decided_checker)
    switched = auto.remove(photo)
    fast = Remover("fast", refine="zoom", settings=settings).remove(photo)
    assert switched.mask_model == "u2netp"
    # what auto keeps is fast's cut-out with zoom, bit for bit (its first pass reused)
    assert np.array_equal(switched.array, fast.array)
    assert switched.timings["inference"] > 0


def test_auto_refuses_a_refinement_without_a_second_model(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match="auto"):
        Remover("auto", refine="edges", settings=settings)
    assert Remover("auto", refine="auto", settings=settings).refine == "consensus"


@pytest.mark.parametrize("model", ["fast", "precise", "auto"])
@pytest.mark.parametrize(
    "surface",
    [
        Image.new("RGB", (640, 480), (200, 190, 180)),
        Image.new("RGB", (640, 480), (255, 255, 255)),
        Image.fromarray(
            np.repeat(np.repeat(np.linspace(0, 255, 640)[None, :, None], 480, 0), 3, 2).astype(
                np.uint8
            )
        ),
    ],
    ids=["beige wall", "white", "gradient"],
)
def test_a_plain_surface_has_no_subject(
    settings: Settings, model: str, surface: Image.Image
) -> None:
    with pytest.raises(NoSubjectError, match="no subject found") as raised:
        Remover(model, settings=settings).remove(surface)
    assert raised.value.status == 422 and raised.value.code == "unknown_foreground"


def test_precise_refuses_where_only_its_checker_sees_a_subject_and_auto_does_not(
    settings: Settings, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def precise_sees_nothing(own: np.ndarray, share: float, *rest: object) -> confidence.Checked:
        return assess_checked(np.zeros_like(own), 0.0, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr("alphacut.engine.pipeline.assess_checked", precise_sees_nothing)
    with pytest.raises(NoSubjectError, match="try model auto"):
        Remover("precise", settings=settings).remove(photo)
    kept = Remover("auto", settings=settings).remove(photo)
    assert kept.mask_model == "u2netp" and kept.confidence is not None and kept.confidence > 0


def test_auto_never_switches_to_a_cut_out_the_checkers_raw_output_does_not_back(
    settings: Settings, photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """U2-Netp's mask is stretched min-max: it can show a subject where its raw output sees
    none (davis345's 276.jpg). Switching there would refuse a photo precise cuts out well."""

    def unbacked_switch(*args: object) -> confidence.Checked:
        found = assess_checked(*args)  # type: ignore[arg-type]
        return confidence.Checked(found.own, found.checker, switch=True)

    def u2netp_sees_nothing(probability: np.ndarray) -> float:
        return 0.0 if probability.shape == (320, 320) else subject_share(probability)

    monkeypatch.setattr("alphacut.engine.pipeline.assess_checked", unbacked_switch)
    monkeypatch.setattr("alphacut.engine.pipeline.subject_share", u2netp_sees_nothing)
    kept = Remover("auto", settings=settings).remove(photo)
    assert kept.mask_model == "isnet-general-use"


def test_no_subject_can_be_switched_off(settings: Settings) -> None:
    wall = Image.new("RGB", (640, 480), (200, 190, 180))
    allowed = settings.model_copy(update={"no_subject_share": 0.0})
    cut = Remover("fast", settings=allowed).remove(wall)
    assert cut.assessment is not None and cut.assessment.subject == 0.0


def test_real_photos_with_small_subjects_are_not_refused(
    fast: Remover, precise: Remover, fixtures: Path
) -> None:
    for path in sorted(fixtures.glob("*.jpg")):
        for remover in (fast, precise):
            assert remover.remove(path).assessment.subject >= 0.01  # type: ignore[union-attr]
