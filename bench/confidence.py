"""Which signals tell a bad cut-out from a good one? (issue 25's groundwork, not a test)

For every pair of a data set (default: ../shared/evaldata/davis345), the plain masks of
``precise`` and ``fast`` (``refine=none``, the models' own answers), their IoU against the
hand-made mask, and candidate signals that the pipeline has for free or nearly:

- ``agreement``: IoU at 0.5 of the two models' masks (``consensus`` already runs ``fast``
  beside ``precise``, so this costs nothing on the default path);
- ``certainty``: mean of |2a - 1| over the pixels either model calls subject (how decided
  the precise model's soft output is where it matters);
- ``soft``: pixels with alpha in (0.1, 0.9), over the subject's area;
- ``area``: the subject's share of the frame (precise's mask);
- ``parts``: connected pieces of precise's subject holding at least 1% of it.

It prints each signal's power to flag a cut-out with IoU under 0.80 (AUROC; 0.5 is chance,
1 perfect; the direction is chosen per signal) and its Spearman correlation with IoU, the
precise/fast oracle (the better mask per photo, with hindsight), and a simple router
(keep ``fast``'s mask where the two disagree and ``fast``'s is the more decided), and writes
every photo's row to ``--json``.

    .venv/bin/python bench/confidence.py --json /tmp/confidence.json
    .venv/bin/python bench/confidence.py --limit 60
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut import Remover
from alphacut.evaluation import iou, load_pairs, load_truth, spread

REPO = Path(__file__).resolve().parents[1]
BAD = 0.80  # a cut-out under this IoU is one a user must see


def auroc(scores: list[float], bad: list[bool]) -> float:
    """Probability that a random bad photo scores lower than a random good one (ties half)."""
    good_scores = sorted(s for s, b in zip(scores, bad, strict=True) if not b)
    bad_scores = [s for s, b in zip(scores, bad, strict=True) if b]
    if not good_scores or not bad_scores:
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
    ranks_a = np.argsort(np.argsort(a)).astype(float)
    ranks_b = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def signals(precise: npt.NDArray[np.uint8], fast: npt.NDArray[np.uint8]) -> dict[str, float]:
    p, f = precise >= 128, fast >= 128
    union = np.count_nonzero(p | f)
    agreement = 1.0 if union == 0 else np.count_nonzero(p & f) / union
    alpha = precise.astype(np.float32) / 255.0
    region = p | f
    certainty = float(np.abs(2 * alpha[region] - 1).mean()) if region.any() else 1.0
    area = int(np.count_nonzero(p))
    soft = np.count_nonzero((alpha > 0.1) & (alpha < 0.9)) / max(area, 1)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(p.astype(np.uint8), connectivity=8)
    parts = int(np.count_nonzero(np.asarray(stats)[1:, cv2.CC_STAT_AREA] >= 0.01 * max(area, 1)))
    fast_alpha = fast.astype(np.float32) / 255.0
    fast_region = f | p
    fast_certainty = (
        float(np.abs(2 * fast_alpha[fast_region] - 1).mean()) if fast_region.any() else 1.0
    )
    return {
        "agreement": float(agreement),
        "certainty": certainty,
        "fast_certainty": fast_certainty,
        "soft": float(soft),
        "area": area / precise.size,
        "parts": float(parts if count > 1 else 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=REPO.parent / "shared" / "evaldata" / "davis345"
    )
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pairs = spread(load_pairs(args.folder), args.limit)
    precise, fast = Remover("precise", refine="none"), Remover("fast", refine="none")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for index, pair in enumerate(pairs):
        truth = load_truth(pair.mask)
        with Image.open(pair.image) as opened:
            image = opened.convert("RGB")
        mask_p = np.asarray(precise.predict_mask(image))
        mask_f = np.asarray(fast.predict_mask(image))
        rows.append({
            "image": pair.image.name,
            "iou_precise": iou(mask_p, truth),
            "iou_fast": iou(mask_f, truth),
            **signals(mask_p, mask_f),
        })  # fmt: skip
        if (index + 1) % 50 == 0:
            print(f"  {index + 1}/{len(pairs)} in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
    report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def report(rows: list[dict[str, Any]]) -> None:
    ious = [row["iou_precise"] for row in rows]
    bad = [value < BAD for value in ious]
    print(f"{len(rows)} photos; precise's plain mask: mean IoU {statistics.fmean(ious):.4f}, "
          f"{sum(bad)} under {BAD}")  # fmt: skip
    print("\n| signal | AUROC (IoU < 0.80) | Spearman with IoU |")
    print("|---|---|---|")
    for name in ("agreement", "certainty", "fast_certainty", "soft", "area", "parts"):
        values = [row[name] for row in rows]
        rho = spearman(values, ious)
        oriented = values if rho >= 0 else [-v for v in values]  # higher = better
        print(f"| {name} | {auroc(oriented, bad):.3f} | {rho:+.3f} |")
    fast_ious = [row["iou_fast"] for row in rows]
    oracle = [max(a, b) for a, b in zip(ious, fast_ious, strict=True)]
    means = [statistics.fmean(values) for values in (fast_ious, ious, oracle)]
    print(f"\nfast alone {means[0]:.4f}; precise alone {means[1]:.4f}; per-photo oracle "
          f"{means[2]:.4f}")  # fmt: skip
    for threshold in (0.5, 0.7, 0.8, 0.9):
        routed = [
            row["iou_fast"]
            if row["agreement"] < threshold and row["fast_certainty"] > row["certainty"]
            else row["iou_precise"]
            for row in rows
        ]
        switched = sum(1 for a, b in zip(routed, ious, strict=True) if a != b)
        print(f"router: agreement < {threshold} and fast more decided -> fast: mean IoU "
              f"{statistics.fmean(routed):.4f} ({switched} photos switched)")  # fmt: skip


if __name__ == "__main__":
    main()
