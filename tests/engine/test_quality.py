"""Quality floors on a fixed subset of shared/evaldata/davis345 (real photos, hand-made masks).

Floors were measured with the plain pipeline, then lowered by a margin (2026-11-23, every 9th
pair = 39 photos): fast mIoU 0.782 / MAE 0.0238, precise mIoU 0.831 / MAE 0.0213; the
defaults (refine=auto) must stay above them. A drop below a floor means the pipeline changed
for the worse (or a model is not the one it claims to be). Each refinement must keep its
measured lead (full set): zoom over the plain pass for fast (+0.035 IoU, +0.055 boundary F),
edges over the plain pass (MAE 0.93x for fast at equal IoU), consensus over edges for precise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphacut import Remover
from alphacut.errors import NoSubjectError
from alphacut.evaluation import Variant, evaluate, iou, load_pairs, load_truth, mae, summarize

FLOORS = {"fast": (0.76, 0.028), "precise": (0.81, 0.025)}  # (min mIoU, max MAE)
scores: dict[str, float] = {}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fast", "precise"])
def test_davis_subset_quality(model: str, shared: Path, request: pytest.FixtureRequest) -> None:
    remover: Remover = request.getfixturevalue(model)
    pairs = load_pairs(shared / "evaldata" / "davis345")[::9]
    assert len(pairs) == 39
    ious, maes = [], []
    for pair in pairs:
        truth = load_truth(pair.mask)
        try:
            predicted = remover.remove(pair.image).array[..., 3]
        except NoSubjectError:  # the model sees nothing: what a user gets is no cut-out
            predicted = np.zeros(truth.alpha.shape, np.uint8)
        ious.append(iou(predicted, truth))
        maes.append(mae(predicted, truth))
    miou, mean_mae = float(np.mean(ious)), float(np.mean(maes))
    scores[model] = miou
    min_iou, max_mae = FLOORS[model]
    assert miou >= min_iou, f"{model}: mIoU {miou:.4f} below the floor {min_iou}"
    assert mean_mae <= max_mae, f"{model}: MAE {mean_mae:.4f} above the ceiling {max_mae}"


@pytest.mark.slow
def test_precise_beats_fast() -> None:
    if set(scores) != {"fast", "precise"}:
        pytest.skip("needs both quality runs in this session")
    assert scores["precise"] > scores["fast"] + 0.02


@pytest.mark.slow
def test_zoom_beats_the_plain_pass_for_fast(shared: Path) -> None:
    pairs = load_pairs(shared / "evaldata" / "davis345")[::9]
    plain, zoom = summarize(evaluate(pairs, [Variant("fast", "none"), Variant("fast", "zoom")]))
    assert zoom.all["iou"] >= plain.all["iou"] + 0.01, (plain.all, zoom.all)
    assert zoom.all["boundary_f"] >= plain.all["boundary_f"] + 0.02, (plain.all, zoom.all)
    assert zoom.all["mae"] <= plain.all["mae"], (plain.all, zoom.all)
    assert zoom.small["iou"] >= plain.small["iou"], "no loss on small subjects"


@pytest.mark.slow
def test_edges_lowers_mae_without_moving_the_subject(shared: Path) -> None:
    pairs = load_pairs(shared / "evaldata" / "davis345")[::9]
    plain, edges = summarize(evaluate(pairs, [Variant("fast", "none"), Variant("fast", "edges")]))
    assert abs(edges.all["iou"] - plain.all["iou"]) < 0.002, (plain.all, edges.all)
    assert edges.all["mae"] <= 0.97 * plain.all["mae"], (plain.all, edges.all)


@pytest.mark.slow
def test_consensus_beats_edges_for_precise(shared: Path) -> None:
    pairs = load_pairs(shared / "evaldata" / "davis345")[::9]
    variants = [Variant("precise", "edges"), Variant("precise", "consensus")]
    edges, consensus = summarize(evaluate(pairs, variants))
    assert consensus.all["iou"] >= edges.all["iou"] + 0.01, (edges.all, consensus.all)
    assert consensus.all["mae"] <= 0.9 * edges.all["mae"], (edges.all, consensus.all)
    assert consensus.small["iou"] >= edges.small["iou"], "no loss on small subjects"
