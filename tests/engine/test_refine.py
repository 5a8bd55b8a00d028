"""Refinement: where the second (zoomed) pass looks, how alpha is settled away from the edges,
and how a Remover picks its refinement."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from alphacut import Remover
from alphacut.config import Settings
from alphacut.engine.refine import (
    EDGE_BAND,
    EDGE_FADE,
    ZOOM_PAD,
    agree,
    firm_alpha,
    resolve_refine,
    zoom_box,
)
from alphacut.errors import InvalidInputError, ModelNotInstalledError


def _mask(width: int, height: int, box: tuple[int, int, int, int] | None) -> Image.Image:
    pixels = np.zeros((height, width), np.uint8)
    if box is not None:
        left, top, right, bottom = box
        pixels[top:bottom, left:right] = 200
    pixels[0, 0] = 127  # faint noise under the threshold does not widen the box
    return Image.fromarray(pixels, "L")


def test_a_small_subject_gets_its_box_plus_a_margin() -> None:
    box = zoom_box(_mask(1000, 800, (400, 300, 500, 400)))
    margin = 10 + ZOOM_PAD  # 10% of 100 px, plus the pad
    assert box == (400 - margin, 300 - margin, 500 + margin, 400 + margin)


def test_the_box_stays_inside_the_photo() -> None:
    assert zoom_box(_mask(1000, 800, (0, 0, 100, 50))) == (0, 0, 118, 63)


def test_no_second_pass_without_a_subject_or_for_a_subject_filling_the_frame() -> None:
    assert zoom_box(_mask(640, 480, None)) is None
    assert zoom_box(_mask(640, 480, (40, 40, 600, 440))) is None


def test_refine_auto_is_the_models_measured_best() -> None:
    assert resolve_refine("auto", "zoom") == "zoom"
    assert resolve_refine("none", "zoom") == "none"
    assert resolve_refine("edges", "none") == "edges"
    with pytest.raises(InvalidInputError, match="unknown refine"):
        resolve_refine("sharpen", "zoom")


def test_a_remover_takes_refine_from_the_argument_then_the_settings(settings: Settings) -> None:
    assert Remover("fast", refine="none", settings=settings).refine == "none"
    configured = settings.model_copy(update={"refine": "zoom"})
    assert Remover("precise", settings=configured).refine == "zoom"
    assert Remover("precise", refine="none", settings=configured).refine == "none"


def _firm(alpha: np.ndarray, model_pixel: float = 1.0) -> np.ndarray:
    return firm_alpha(alpha.astype(np.uint8), model_pixel)


def test_haze_far_from_the_subject_is_settled_to_transparent() -> None:
    alpha = np.full((100, 100), 60, np.uint8)  # faint haze everywhere
    alpha[40:60, 40:60] = 255
    firmed = _firm(alpha)
    assert firmed[5, 5] == 0 and firmed[95, 95] == 0
    assert firmed[50, 50] == 255
    assert firmed[50, 39] == 60  # next to the edge the model's alpha is kept


def test_a_half_transparent_patch_inside_the_subject_is_settled_to_opaque() -> None:
    alpha = np.zeros((100, 100), np.uint8)
    alpha[10:90, 10:90] = 255
    alpha[40:60, 40:60] = 170
    firmed = _firm(alpha)
    # The patch's rim is no edge of the subject (both sides are above one half): all settled.
    assert (firmed[40:60, 40:60] == 255).all()


def test_the_band_is_measured_in_model_pixels() -> None:
    alpha = np.zeros((200, 200), np.uint8)
    alpha[:, 100:] = 255
    alpha[:, 90:100] = 100  # soft pixels up to 10 px from the 0.5 contour
    # One model pixel spans 1 photo pixel: beyond 1 + 2 px the soft pixels go.
    assert _firm(alpha, 1.0)[0, 90] == 0
    # One model pixel spans 5 photo pixels: 10 px is within the band, kept (faded a little).
    assert _firm(alpha, 5.0)[0, 95] == 100
    assert 0 < _firm(alpha, 5.0)[0, 90] <= 100


def test_firming_never_moves_a_pixel_across_one_half() -> None:
    alpha = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    firmed = _firm(alpha, 2.0)
    assert np.array_equal(firmed >= 128, alpha >= 128)


def _firm_everywhere(alpha: npt.NDArray[np.uint8], model_pixel: float) -> npt.NDArray[np.uint8]:
    """The definition of firm_alpha, computed for every pixel (the function itself touches
    only the ring between band and band + fade)."""
    hard = (alpha >= 128).astype(np.uint8)
    distance = np.asarray(cv2.distanceTransform(hard, cv2.DIST_L2, 3), np.float32)
    distance += np.asarray(cv2.distanceTransform(1 - hard, cv2.DIST_L2, 3), np.float32)
    scale = max(model_pixel, 1.0)
    keep = np.clip(1.0 - (distance - EDGE_BAND * scale) / (EDGE_FADE * scale), 0.0, 1.0)
    settled = hard * np.float32(255.0)
    firmed = np.clip(settled + (alpha - settled) * keep + 0.5, 0, 255)
    return np.asarray(firmed, np.float32).astype(np.uint8)


@pytest.mark.parametrize("model_pixel", [0.5, 1.0, 2.7, 12.5])
def test_firming_only_the_ring_is_bit_exact_with_the_definition(model_pixel: float) -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (97, 131), dtype=np.uint8)
    spots = ((rng.random((180, 240)) > 0.6) * 255).astype(np.uint8)
    blobs = np.asarray(cv2.GaussianBlur(spots, (0, 0), 4), np.uint8)
    strided = blobs[::2, 1::2]  # not contiguous
    alphas: list[npt.NDArray[np.uint8]] = [noise, blobs, strided]
    for alpha in alphas:
        assert np.array_equal(firm_alpha(alpha, model_pixel), _firm_everywhere(alpha, model_pixel))


def test_firming_a_large_photo_on_two_threads_is_the_same_to_the_bit() -> None:
    # above 1 MP the two distance transforms run at once (issue 24): the same numbers
    rng = np.random.default_rng(3)
    spots = ((rng.random((300, 400)) > 0.7) * 255).astype(np.uint8)
    small = np.asarray(cv2.GaussianBlur(spots, (0, 0), 3), np.uint8)
    alpha = np.asarray(cv2.resize(small, (1400, 1050), interpolation=cv2.INTER_LINEAR), np.uint8)
    assert alpha.size >= 1_000_000
    threaded = firm_alpha(alpha, 4.4, threads=2)
    assert np.array_equal(threaded, firm_alpha(alpha, 4.4, threads=1))
    assert np.array_equal(threaded, _firm_everywhere(alpha, 4.4))


def test_edges_is_the_plain_pass_firmed_and_without_the_old_backgrounds_colour(
    settings: Settings, portrait: Path
) -> None:
    plain = Remover("fast", refine="none", settings=settings).remove(portrait).array
    edges = Remover("fast", refine="edges", settings=settings).remove(portrait).array
    model_pixel = max(plain.shape[:2]) / 320
    assert np.array_equal(edges[..., 3], firm_alpha(plain[..., 3], model_pixel))
    opaque = edges[..., 3] == 255
    assert np.array_equal(edges[opaque][:, :3], plain[opaque][:, :3])
    soft = (edges[..., 3] > 0) & ~opaque
    assert soft.any()
    changed = np.any(edges[soft][:, :3] != plain[soft][:, :3], axis=1)
    assert changed.mean() > 0.5, "soft pixels carry the subject's estimated colour"


def test_agree_drops_a_part_the_checker_does_not_see() -> None:
    alpha = np.zeros((200, 400), np.uint8)
    alpha[50:150, 40:140] = 255  # the subject both models see
    alpha[60:120, 260:320] = 200  # a second object only the first model takes in
    alpha[59, 260:320] = 90  # with a soft fringe
    checker = np.zeros((320, 320), np.uint8)  # the checker's own grid: 1.25 x 0.625 px
    checker[80:240, 32:112] = 255  # covers the first object only
    agreed = agree(alpha, checker)
    assert (agreed[:, 250:] == 0).all(), "dropped, fringe and all"
    assert np.array_equal(agreed[:, :150], alpha[:, :150]), "kept as it was"


def test_agree_keeps_a_part_seen_in_part_whole() -> None:
    alpha = np.zeros((200, 400), np.uint8)
    alpha[20:180, 20:180] = 255
    alpha[60:120, 260:380] = 255  # a second object...
    alpha[60:120, 259] = 120
    checker = np.zeros((320, 320), np.uint8)
    checker[32:288, 16:144] = 255
    checker[96:192, 208:236] = 255  # ...of which the checker sees (with its tolerance) 37%
    assert np.array_equal(agree(alpha, checker), alpha)


def test_agree_never_drops_the_largest_part() -> None:
    alpha = np.zeros((200, 400), np.uint8)
    alpha[50:150, 40:140] = 255
    alpha[80:100, 300:320] = 255
    nothing = np.zeros((32, 32), np.uint8)  # the checker found no subject at all
    agreed = agree(alpha, nothing)
    assert np.array_equal(agreed[:, :200], alpha[:, :200])
    assert (agreed[:, 200:] == 0).all()


def test_agree_leaves_a_single_part_alone() -> None:
    alpha = np.zeros((100, 100), np.uint8)
    alpha[20:80, 20:80] = 255
    assert np.array_equal(agree(alpha, np.zeros((32, 32), np.uint8)), alpha)


def test_consensus_needs_a_model_with_a_checker(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match="consensus needs a second model"):
        Remover("fast", refine="consensus", settings=settings)
    assert Remover("precise", settings=settings).refine == "consensus"


def test_consensus_is_edges_checked_by_the_fast_model(settings: Settings, portrait: Path) -> None:
    edges = Remover("precise", refine="edges", settings=settings).remove(portrait)
    consensus = Remover("precise", refine="consensus", settings=settings).remove(portrait)
    with Image.open(portrait) as photo:
        found = Remover("fast", refine="none", settings=settings)._model_output(
            photo.convert("RGB"), {}
        )
    assert np.array_equal(consensus.array[..., 3], agree(edges.array[..., 3], found.mask))
    assert "check" in consensus.timings


def test_a_service_configured_for_a_refine_a_model_cannot_do_refuses_to_start(
    settings: Settings,
) -> None:
    from alphacut.api.app import build_runtime

    with pytest.raises(InvalidInputError, match="consensus needs a second model"):
        build_runtime(settings.model_copy(update={"refine": "consensus"}))


def test_an_inputs_own_transparency_is_not_treated_as_a_mixed_edge(
    settings: Settings, portrait: Path
) -> None:
    with Image.open(portrait) as photo:
        rgba = photo.convert("RGBA")
    rgba.putalpha(128)  # translucent all over: nothing of a background is mixed into it
    pixels = np.asarray(rgba)
    cut = Remover("fast", refine="edges", settings=settings).remove(rgba).array
    subject = cut[..., 3] == 128  # where the model saw the subject in full
    assert subject.mean() > 0.1
    assert np.array_equal(cut[subject][:, :3], pixels[subject][:, :3])


def test_consensus_says_why_it_needs_a_missing_checker(settings: Settings, tmp_path: Path) -> None:
    only_precise = tmp_path / "models"
    only_precise.mkdir()
    precise_file = settings.model_dir / "isnet-general-use.onnx"
    (only_precise / precise_file.name).symlink_to(precise_file)
    remover = Remover("precise", settings=settings.model_copy(update={"model_dir": only_precise}))
    with pytest.raises(ModelNotInstalledError, match=r"model u2netp is not installed.*consensus"):
        remover.load()
