"""Our pipelines against rembg's own outputs on rembg's own fixtures (shared/parity/rembg).

``fast`` must reproduce rembg's u2netp exactly (same weights, same recipe); ``precise`` uses
a different export of IS-Net with its own recipe, so it only has to agree closely.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alphacut import Remover

FIXTURES = ["anime-girl-1", "car-1", "cloth-1", "plants-1"]
REFERENCE = {"fast": ("u2netp", 0.995), "precise": ("isnet-general-use", 0.94)}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ours, theirs = a >= 128, b >= 128
    return float((ours & theirs).sum() / max((ours | theirs).sum(), 1))


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("model", ["fast", "precise"])
def test_alpha_matches_rembg(
    model: str, fixture: str, parity_dir: Path, fixtures: Path, request: pytest.FixtureRequest
) -> None:
    remover: Remover = request.getfixturevalue(f"{model}_plain")  # rembg has no refinement
    reference_name, floor = REFERENCE[model]
    with Image.open(parity_dir / "results" / f"{fixture}.{reference_name}.png") as reference:
        theirs = np.asarray(reference.getchannel("A"))
    ours = remover.remove(fixtures / f"{fixture}.jpg").array[..., 3]
    assert ours.shape == theirs.shape
    iou = _iou(ours, theirs)
    assert iou >= floor, f"{model} vs rembg {reference_name} on {fixture}: IoU {iou:.4f}"
    if model == "fast":  # same weights and recipe: equal up to float rounding
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
