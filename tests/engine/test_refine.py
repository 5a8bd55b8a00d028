"""Refinement: where the second (zoomed) pass looks, and how a Remover picks its refinement."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alphacut import Remover
from alphacut.config import Settings
from alphacut.engine.pipeline import resolve_refine
from alphacut.engine.refine import ZOOM_PAD, zoom_box
from alphacut.errors import InvalidInputError


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
    with pytest.raises(InvalidInputError, match="unknown refine"):
        resolve_refine("sharpen", "zoom")


def test_a_remover_takes_refine_from_the_argument_then_the_settings(settings: Settings) -> None:
    assert Remover("fast", refine="none", settings=settings).refine == "none"
    configured = settings.model_copy(update={"refine": "zoom"})
    assert Remover("precise", settings=configured).refine == "zoom"
    assert Remover("precise", refine="none", settings=configured).refine == "none"
