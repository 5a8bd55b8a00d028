"""Hints (issue 26): a box and clicks that correct a cut-out, and the simulated user that
measures them (``alphacut.noc``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from alphacut.engine.hints import (
    MAX_POINTS,
    Hints,
    Point,
    box_from_json,
    correct,
    parse_box,
    parse_point,
    parse_points,
    point,
    points_from_json,
)
from alphacut.engine.pipeline import Remover
from alphacut.errors import InvalidInputError
from alphacut.noc import click_report, next_click, simulate

WIDTH, HEIGHT = 320, 240


def _scene() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """A grey photo with a red square (the subject the cut-out found) and a blue disc (a part
    it missed), with a little noise so that colour models have something to fit."""
    rng = np.random.default_rng(7)
    rgb = np.full((HEIGHT, WIDTH, 3), 128, np.float32)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    square = (abs(xx - 90) < 40) & (abs(yy - 120) < 40)
    disc = (xx - 230) ** 2 + (yy - 120) ** 2 < 35**2
    rgb[square] = (200, 40, 40)
    rgb[disc] = (40, 60, 200)
    rgb += rng.normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), square, disc


def _alpha(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    return (mask * 255).astype(np.uint8)


def test_a_subject_click_adds_the_part_it_lands_in_and_nothing_else() -> None:
    rgb, square, disc = _scene()
    corrected = correct(rgb, _alpha(square), Hints(points=(Point(230, 120),))) >= 128
    assert corrected[disc].mean() > 0.9  # the missed disc is in
    assert corrected[square].mean() > 0.99  # the square stays
    assert corrected[~(square | disc)].mean() < 0.01  # no background came with it


def test_a_background_click_on_a_separate_wrong_part_drops_all_of_it() -> None:
    rgb, square, disc = _scene()
    corrected = correct(rgb, _alpha(square | disc), Hints(points=(Point(230, 120, "background"),)))
    assert not (corrected >= 128)[disc].any()
    assert (corrected >= 128)[square].all()


def test_a_click_on_a_pixel_already_right_changes_nothing() -> None:
    rgb, square, _ = _scene()
    alpha = _alpha(square)
    alpha[100, 90] = 200  # soft alpha inside is kept as it is
    same = correct(rgb, alpha, Hints(points=(Point(90, 120), Point(5, 5, "background"))))
    assert np.array_equal(same, alpha)


def test_a_click_is_always_honoured_at_its_pixel() -> None:
    rgb, square, _ = _scene()
    # A background click deep inside the only part (not a separate mistake): at least its
    # own pixel goes, whatever the colours say.
    corrected = correct(rgb, _alpha(square), Hints(points=(Point(60, 100, "background"),)))
    assert corrected[100, 60] == 0
    added = correct(rgb, np.zeros_like(square, np.uint8), Hints(points=(Point(10, 10),)))
    assert added[10, 10] == 255


def test_later_clicks_are_applied_after_earlier_ones() -> None:
    rgb, square, _ = _scene()
    clicks = (Point(230, 120), Point(230, 120, "background"))  # add the disc, then take it out
    corrected = correct(rgb, _alpha(square), Hints(points=clicks)) >= 128
    assert corrected[120, 230] == 0


def test_the_box_clears_everything_outside_it() -> None:
    rgb, square, disc = _scene()
    corrected = correct(rgb, _alpha(square | disc), Hints(box=(40, 70, 140, 170)))
    assert not corrected[disc].any()
    assert (corrected >= 128)[square].all()


@pytest.mark.parametrize(
    ("hints", "message"),
    [
        (Hints(points=(Point(WIDTH, 0),)), "outside the photo"),
        (Hints(points=(Point(0, HEIGHT),)), "outside the photo"),
        (Hints(box=(0, 0, WIDTH + 1, 10)), "inside the photo"),
        (Hints(box=(10, 10, 10, 20)), "non-empty"),
        (Hints(points=(Point(1, 1),) * (MAX_POINTS + 1)), "too many points"),
    ],
)
def test_hints_that_do_not_fit_the_photo_are_refused(hints: Hints, message: str) -> None:
    rgb, square, _ = _scene()
    with pytest.raises(InvalidInputError, match=message):
        correct(rgb, _alpha(square), hints)


def test_points_and_boxes_are_parsed_and_checked() -> None:
    assert parse_point("12,34") == Point(12, 34, "subject")
    assert parse_point(" 12, 34:bg") == Point(12, 34, "background")
    assert parse_point("1,2:background") == Point(1, 2, "background")
    assert parse_points("1,2 3,4:bg;5,6") == (Point(1, 2), Point(3, 4, "background"), Point(5, 6))
    assert parse_box("10,20,30,40") == (10, 20, 40, 60)
    assert points_from_json([{"x": 1, "y": 2}, {"x": 3.0, "y": 4, "label": "background"}]) == (
        Point(1, 2),
        Point(3, 4, "background"),
    )
    assert box_from_json([1, 2, 3, 4]) == (1, 2, 3, 4)
    for bad in ("1", "1,2,3", "a,b", "1,2:maybe", "-1,2", "1.5,2"):
        with pytest.raises(InvalidInputError):
            parse_point(bad)
    for bad_box in ("1,2,3", "0,0,0,5", "-1,0,5,5", "a,b,c,d"):
        with pytest.raises(InvalidInputError):
            parse_box(bad_box)
    for value in (math.nan, math.inf, -1, 1.5, True, "3", None, 10**7):
        with pytest.raises(InvalidInputError):
            point(value, 0)  # type: ignore[arg-type]
    for bad_json in ([{"x": 1}], [{"x": 1, "y": 2, "z": 3}], "1,2", [[1, 2]]):
        with pytest.raises(InvalidInputError):
            points_from_json(bad_json)
    for bad_list in ([1, 2, 3], [5, 5, 1, 1], [0, 0, math.nan, 4], {"x1": 0}):
        with pytest.raises(InvalidInputError):
            box_from_json(bad_list)
    with pytest.raises(InvalidInputError, match="too many"):
        parse_points(" ".join(["1,1"] * (MAX_POINTS + 1)))


def test_hints_follow_a_resized_photo() -> None:
    hints = Hints(box=(100, 50, 300, 250), points=(Point(399, 299), Point(0, 0, "background")))
    half = hints.scaled(0.5, 0.5, 200, 150)
    assert half.box == (50, 25, 150, 125)
    assert half.points == (Point(199, 149), Point(0, 0, "background"))
    half.check(200, 150)


# The engine with a real model -----------------------------------------------------------


def test_the_model_looks_inside_the_box_only(photo: Path) -> None:
    remover = Remover("fast")
    box = (120, 60, 360, 300)
    cut = remover.remove(photo, hints=Hints(box=box))
    alpha = np.asarray(cut.mask)
    outside = np.ones(alpha.shape, bool)
    outside[box[1] : box[3], box[0] : box[2]] = False
    assert not alpha[outside].any()
    assert (alpha >= 128).any()


def test_clicks_at_the_remover_and_a_correction_without_the_model(photo: Path) -> None:
    remover = Remover("fast")
    decoded = remover.decode(photo)
    plain = remover.predict(decoded)
    clicks = Hints(points=(Point(5, 5), Point(240, 180, "background")))
    clicked = remover.predict(decoded, hints=clicks)
    assert np.asarray(clicked.mask)[5, 5] == 255
    assert np.asarray(clicked.mask)[180, 240] == 0
    assert clicked.assessment is None  # a person's correction: no model's estimate
    # The same clicks on the cut-out made before, with no model pass, give the same mask.
    before = remover.compose(decoded, plain).image
    corrected = remover.correct(decoded, before, clicks)
    assert np.array_equal(np.asarray(corrected.mask), np.asarray(clicked.mask))
    cut = remover.compose(decoded, corrected)
    assert cut.confidence is None and not cut.doubtful


def test_a_correction_needs_a_cut_out_of_the_photo_at_its_size(photo: Path) -> None:
    remover = Remover("fast")
    decoded = remover.decode(photo)
    clicks = Hints(points=(Point(5, 5),))
    with pytest.raises(InvalidInputError, match="at its size"):
        remover.correct(decoded, Image.new("RGBA", (10, 10)), clicks)
    with pytest.raises(InvalidInputError, match="no transparency"):
        remover.correct(decoded, decoded.image.convert("RGB"), clicks)


# The simulated user --------------------------------------------------------------------------


def test_the_simulated_user_clicks_the_deepest_point_of_the_largest_error() -> None:
    truth = np.zeros((100, 100), bool)
    truth[10:90, 10:50] = True  # the subject
    predicted = truth.copy()
    predicted[40:60, 60:95] = True  # a wrong 20x35 part: deepest at its middle row
    predicted[10:20, 10:20] = False  # a smaller miss
    valid = np.ones_like(truth)
    click = next_click(predicted, truth, valid)
    assert click is not None and click.label == "background"
    assert 40 + 8 <= click.y <= 60 - 8 and 60 + 8 <= click.x <= 95 - 8
    valid[40:60, 60:95] = False  # void pixels are never an error
    click = next_click(predicted, truth, valid)
    assert click is not None and click.label == "subject"
    assert next_click(truth, truth, np.ones_like(truth)) is None


def test_the_simulated_user_corrects_the_scene_and_counts_clicks() -> None:
    rgb, square, disc = _scene()
    trace = simulate(rgb, _alpha(square), square | disc, np.ones_like(square))
    assert trace.ious[0] < 0.7
    assert trace.clicks_to(0.90) <= 2
    assert len(trace.seconds) == len(trace.ious) - 1
    already = simulate(rgb, _alpha(square | disc), square | disc, np.ones_like(square))
    assert already.clicks_to(0.90) == 0
    report = click_report("scene", [trace, already])
    assert report.count == 2 and report.noc90 == trace.clicks_to(0.90) / 2
    assert report.nof90 == 0.0 and report.iou_after[1] >= report.iou_before


def test_a_dropped_part_leaves_no_outline_on_a_large_photo() -> None:
    """Clicks are worked out at WORK_SIDE px; on a photo four times that, the part a click
    drops must go with its soft edge, not leave a ring of the old alpha behind (and the part
    kept must keep its own soft edge)."""
    rgb, square, disc = _scene()
    big = np.asarray(
        cv2.resize(rgb, (WIDTH * 4, HEIGHT * 4), interpolation=cv2.INTER_NEAREST), np.uint8
    )
    hard = cv2.resize(
        _alpha(square | disc), (WIDTH * 4, HEIGHT * 4), interpolation=cv2.INTER_NEAREST
    )
    soft = np.asarray(cv2.GaussianBlur(hard, (0, 0), 3), np.uint8)  # a model's soft edge
    corrected = correct(big, soft, Hints(points=(Point(230 * 4, 120 * 4, "background"),)))
    around_disc = cv2.dilate(
        cv2.resize(_alpha(disc), (WIDTH * 4, HEIGHT * 4), interpolation=cv2.INTER_NEAREST),
        np.ones((3, 3), np.uint8),
        iterations=12,
    ).astype(bool)
    assert corrected[around_disc].max() < 64  # no outline left, not even a faint one
    kept = cv2.resize(_alpha(square), (WIDTH * 4, HEIGHT * 4), interpolation=cv2.INTER_NEAREST)
    rim = cv2.dilate(kept, np.ones((3, 3), np.uint8), iterations=4) > cv2.erode(
        kept, np.ones((3, 3), np.uint8), iterations=4
    )
    assert np.array_equal(corrected[rim], soft[rim])  # the square's soft edge untouched


# A model's view of a subject click -----------------------------------------------------------


def test_a_subject_click_away_from_the_mask_takes_the_part_the_model_sees() -> None:
    rgb, square, disc = _scene()
    calls: list[tuple[int, int]] = []

    def propose(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        calls.append(crop.shape[:2])
        blue = (crop[..., 2] > 150) & (crop[..., 0] < 100)  # "the model" sees the blue disc
        return (blue * 255).astype(np.uint8)

    clicks = Hints(points=(Point(230, 120),))
    corrected = correct(rgb, _alpha(square), clicks, propose) >= 128
    assert corrected[disc].mean() > 0.95 and corrected[square].all()
    assert corrected[~(square | disc)].mean() < 0.01
    # The same photo and click again (a page sends every click each time): no second pass.
    correct(rgb, _alpha(square), clicks, propose)
    assert len(calls) == 1
    # Another photo, same click: its own pass.
    other = rgb.copy()
    other[0, 0] = (0, 0, 0)
    correct(other, _alpha(square), clicks, propose)
    assert len(calls) == 2


def test_a_request_asks_the_model_for_a_bounded_number_of_clicks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However many far subject clicks a request sends, at most PROPOSALS_A_REQUEST of them
    cost a model pass; the answer is the same whether earlier clicks' edits were kept or not."""
    from alphacut.engine import hints

    rgb, square, _ = _scene()
    calls: list[int] = []

    def blind(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        calls.append(1)
        return np.zeros(crop.shape[:2], np.uint8)

    # Subject clicks on the grey background, far from the square and from each other.
    clicks = tuple(Point(x, y) for x in (20, 300) for y in (20, 80, 160, 220))
    for cap, most in ((3, 3), (100, len(clicks))):
        monkeypatch.setattr(hints, "PROPOSALS_A_REQUEST", cap)
        hints._EDITS._kept.clear()
        hints._PROPOSALS._kept.clear()
        calls.clear()
        fresh = correct(rgb, _alpha(square), Hints(points=clicks), blind)
        assert (len(calls) == most) if cap == 3 else (len(calls) > 3)
        hints._EDITS._kept.clear()
        hints._PROPOSALS._kept.clear()
        calls.clear()
        for count in range(1, len(clicks) + 1):  # as a page asks: one more click each time
            stepped = correct(rgb, _alpha(square), Hints(points=clicks[:count]), blind)
        assert np.array_equal(stepped, fresh)
        if cap == 3:  # resumed from the kept edits, later requests still count earlier asks
            assert len(calls) == 3


def test_where_the_model_sees_nothing_under_the_click_grabcut_decides() -> None:
    rgb, square, _ = _scene()

    def blind(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.zeros(crop.shape[:2], np.uint8)

    clicks = Hints(points=(Point(230, 120),))
    assert np.array_equal(
        correct(rgb, _alpha(square), clicks, blind), correct(rgb, _alpha(square), clicks)
    )


def test_the_fast_model_proposes_for_every_remover(photo: Path) -> None:
    crop = np.asarray(Image.open(photo).convert("RGB"))[100:300, 100:400].copy()
    for name in ("fast", "precise", "auto"):
        propose = Remover(name).proposer()
        assert propose is not None
        mask = propose(crop)
        assert mask.shape == crop.shape[:2] and mask.dtype == np.uint8 and mask.max() > 128


def test_a_click_after_others_reuses_their_edits_and_gets_the_same_answer() -> None:
    from alphacut.engine import hints

    rgb, square, _ = _scene()
    clicks = (Point(230, 120), Point(60, 100, "background"), Point(150, 60))
    hints._EDITS._kept.clear()
    fresh = correct(rgb, _alpha(square), Hints(points=clicks))
    hints._EDITS._kept.clear()
    for count in range(1, len(clicks) + 1):  # as a page asks: one more click each time
        stepped = correct(rgb, _alpha(square), Hints(points=clicks[:count]))
    assert np.array_equal(stepped, fresh)
    assert len(hints._EDITS._kept) == len(clicks)


def test_a_large_grabcut_window_is_worked_out_shrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """GrabCut's cost grows faster than its window: a click deep in a large mistake has it
    worked out at most GRABCUT_PIXELS large (the click's answer time stays bounded), and the
    mistake still goes: the missed disc (35 px deep: a 280x240 window) comes in whole."""
    from alphacut.engine import hints

    rgb, square, disc = _scene()
    sizes: list[int] = []
    grabcut = cv2.grabCut

    def counted(image: npt.NDArray[np.uint8], *args: Any) -> Any:
        sizes.append(image.shape[0] * image.shape[1])
        return grabcut(image, *args)

    monkeypatch.setattr(cv2, "grabCut", counted)
    hints._EDITS._kept.clear()
    corrected = correct(rgb, _alpha(square), Hints(points=(Point(230, 120),))) >= 128
    assert sizes and max(sizes) <= hints.GRABCUT_PIXELS < 280 * 240
    assert corrected[disc].mean() > 0.95
    assert corrected[square].mean() > 0.99
    assert corrected[~(square | disc)].mean() < 0.01


def test_an_answer_does_not_depend_on_what_ran_before_on_the_thread() -> None:
    """GrabCut's k-means draws from OpenCV's per-thread random numbers: the same clicks give
    the same answer whatever state an earlier call left them in."""
    from alphacut.engine import hints

    rgb, square, _ = _scene()
    clicks = Hints(points=tuple(Point(x, y) for x in (20, 300) for y in (20, 80, 160, 220)))
    answers = []
    for seed in range(6):
        hints._EDITS._kept.clear()
        cv2.setRNGSeed(seed)
        answers.append(correct(rgb, _alpha(square), clicks))
    assert all(np.array_equal(answer, answers[0]) for answer in answers[1:])
