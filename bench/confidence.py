"""Fit and check the confidence score and model=auto's rule (issue 25; not a test).

For every pair of a data set (default: ../shared/evaldata/davis345) it runs the default
``precise`` pipeline once (IS-Net, checked by U2-Netp: ``consensus``) and keeps both
candidate cut-outs that ``model=auto`` chooses between: precise's consensus mask and fast's
own default cut-out (its pass, settled: ``edges``), each scored against the hand-made mask
(IoU at 0.5), with the signals :func:`alphacut.engine.confidence.assess_checked` computes,
and fast's and precise's signals alone (:func:`~alphacut.engine.confidence.assess`).

It prints:

- the least-squares weights of each estimate (precise checked, fast kept by auto, each model
  alone), to paste into ``alphacut/engine/confidence.py``;
- how well each estimate ranks (AUROC for IoU < 0.80, Spearman) and its mean |estimate - IoU|,
  **cross-validated with whole stretches of the set held out** (davis345's frames come from
  videos in order: contiguous folds keep a video's frames together, so no fold is scored by
  a fit that saw its neighbours), beside the in-sample figures of the weights in the engine;
- ``auto``'s rule (switch to fast where the masks agree below ``SWITCH_BELOW`` and fast's is
  the more decided; fast's cut-out then made with ``zoom``) against precise alone and the
  per-photo oracle, with the threshold also chosen inside each fold;
- what the score costs: ``assess_checked`` on the two models' outputs, timed.

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

import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut import Remover
from alphacut.engine import confidence
from alphacut.engine.confidence import assess, assess_checked
from alphacut.engine.refine import agree
from alphacut.evaluation import BAD_IOU, auroc, iou, load_pairs, load_truth, spearman, spread

REPO = Path(__file__).resolve().parents[1]
FOLDS = 5


def collect(folder: Path, limit: int | None) -> list[dict[str, Any]]:
    precise = Remover("precise")  # consensus: IS-Net checked by U2-Netp
    checker = precise._checker
    zoomed = Remover("fast", refine="zoom")  # what auto keeps where it switches
    assert checker is not None
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    pairs = spread(load_pairs(folder), limit)
    for index, pair in enumerate(pairs):
        truth = load_truth(pair.mask)
        with Image.open(pair.image) as opened:
            image = opened.convert("RGB")
        first = precise._model_output(image, {})
        second = checker._model_output(image, {})
        own = agree(np.asarray(precise._full_size(first.mask, image.size, {})), second.mask)
        theirs = zoomed._full_size(second.mask, image.size, {})
        theirs_zoomed = zoomed._zoomed(image, theirs.copy(), {}, lambda m, t: m.run(t))
        checked = assess_checked(first.mask, first.share, second.mask, second.share)
        alone_p = assess(first.mask, first.share, precise.spec.name)
        alone_f = assess(second.mask, second.share, checker.spec.name)
        rows.append({
            "image": pair.image.name,
            "iou_precise": iou(own, truth),
            "iou_fast": iou(np.asarray(theirs), truth),
            "iou_fast_zoom": iou(np.asarray(theirs_zoomed), truth),
            "agreement": checked.own.agreement,
            "certainty": checked.own.certainty, "soft": checked.own.soft,
            "fast_certainty": checked.checker.certainty, "fast_soft": checked.checker.soft,
            "alone_certainty": alone_p.certainty, "alone_soft": alone_p.soft,
            "fast_alone_certainty": alone_f.certainty, "fast_alone_soft": alone_f.soft,
            "switch": checked.switch,
            "confidence": checked.own.confidence, "fast_confidence": checked.checker.confidence,
        })  # fmt: skip
        if (index + 1) % 50 == 0:
            print(f"  {index + 1}/{len(pairs)} in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
    return rows


def _features(rows: list[dict[str, Any]], *names: str) -> npt.NDArray[np.float64]:
    columns = [np.ones(len(rows))]
    for name in names:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        columns.append(np.log1p(values) if "soft" in name else values)
    return np.column_stack(columns)


def _cross_validated(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    folds = (np.arange(len(y)) * FOLDS) // len(y)  # contiguous: a video's frames together
    estimate = np.zeros(len(y))
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        weights, *_ = np.linalg.lstsq(x[train], y[train], rcond=None)
        estimate[test] = x[test] @ weights
    return np.clip(estimate, 0.0, 1.0)


def _quality(estimate: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> str:
    bad = list(y < BAD_IOU)
    return (f"AUROC {auroc(list(estimate), bad):.3f}, Spearman "
            f"{spearman(list(estimate), list(y)):+.3f}, mean |est - IoU| "
            f"{float(np.mean(np.abs(estimate - y))):.3f}")  # fmt: skip


def report(rows: list[dict[str, Any]]) -> None:
    y_p = np.array([row["iou_precise"] for row in rows])
    y_f = np.array([row["iou_fast"] for row in rows])
    bad = int(np.sum(y_p < BAD_IOU))
    print(f"{len(rows)} photos; precise (consensus) mean IoU {y_p.mean():.4f}, "
          f"{bad} under {BAD_IOU}; fast (edges) {y_f.mean():.4f}")  # fmt: skip
    estimates = {
        "precise checked (CHECKED)": (("agreement", "certainty", "soft"), y_p),
        "fast kept by auto (CHECKER_KEPT)": (("agreement", "fast_certainty", "fast_soft"), y_f),
        "precise alone (ALONE_OTHERS)": (("alone_certainty", "alone_soft"), y_p),
        "fast alone (ALONE['u2netp'])": (("fast_alone_certainty", "fast_alone_soft"), y_f),
    }
    for title, (names, y) in estimates.items():
        x = _features(rows, *names)
        weights, *_ = np.linalg.lstsq(x, y, rcond=None)
        print(f"\n{title}: weights {tuple(round(float(w), 3) for w in weights)}")
        print(f"  cross-validated, {FOLDS} contiguous folds: {_quality(_cross_validated(x, y), y)}")
    engine = np.array([row["confidence"] for row in rows])
    print(f"\nthe engine's precise confidence, in sample: {_quality(engine, y_p)}")
    order = np.argsort(engine)
    print("by decile (mean confidence -> mean IoU): " + "; ".join(
        f"{engine[chunk].mean():.2f} -> {y_p[chunk].mean():.2f}"
        for chunk in np.array_split(order, 10)))  # fmt: skip
    for threshold in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8):
        flagged = engine < threshold
        print(f"  doubtful under {threshold}: {int(flagged.sum())} ({flagged.mean():.1%}), "
              f"{np.mean(y_p[flagged] < BAD_IOU) if flagged.any() else 0:.0%} of them under "
              f"IoU {BAD_IOU}; catches {int(np.sum(flagged & (y_p < 0.5)))} of "
              f"{int(np.sum(y_p < 0.5))} under IoU 0.5")  # fmt: skip

    y_z = np.array([row["iou_fast_zoom"] for row in rows])
    switch = np.array([row["switch"] for row in rows])
    auto = np.where(switch, y_z, y_p)
    print(f"\nauto (agreement < {confidence.SWITCH_BELOW}, fast more decided): mean IoU "
          f"{auto.mean():.4f} ({auto.mean() - y_p.mean():+.4f} over precise), "
          f"{int(switch.sum())} switched ({int(np.sum(auto > y_p))} better, "
          f"{int(np.sum(auto < y_p))} worse); oracle "
          f"{np.maximum(y_p, y_z).mean():.4f}")  # fmt: skip
    agreement = np.array([row["agreement"] for row in rows])
    decided = np.array([row["fast_certainty"] > row["certainty"] for row in rows])
    folds = (np.arange(len(rows)) * FOLDS) // len(rows)
    chosen = np.zeros(len(rows), dtype=bool)
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        best = max(
            (float(np.where((agreement < t) & decided, y_z, y_p)[train].mean()), t)
            for t in np.arange(0.3, 0.96, 0.05)
        )[1]
        chosen[test] = ((agreement < best) & decided)[test]
    held = np.where(chosen, y_z, y_p)
    print(f"auto with its threshold chosen in each fold: {held.mean():.4f} "
          f"({held.mean() - y_p.mean():+.4f})")  # fmt: skip
    per_fold = [float(held[folds == k].mean() - y_p[folds == k].mean()) for k in range(FOLDS)]
    print("  gain per held-out fold: " + ", ".join(f"{g:+.4f}" for g in per_fold))


def cost() -> None:
    rng = np.random.default_rng(0)
    own = (rng.random((1024, 1024)) * 255).astype(np.uint8)
    other = (rng.random((320, 320)) * 255).astype(np.uint8)
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        assess_checked(own, 0.2, other, 0.2)
        timings.append(time.perf_counter() - started)
    print(f"\ncost: assess_checked on IS-Net's 1024 px and U2-Netp's 320 px outputs: "
          f"{statistics.median(timings) * 1000:.1f} ms (median of 20)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=REPO.parent / "shared" / "evaldata" / "davis345"
    )
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, help="write every photo's row here")
    parser.add_argument("--rows", type=Path, help="report on rows a --json run wrote")
    args = parser.parse_args()
    rows = json.loads(args.rows.read_text()) if args.rows else collect(args.folder, args.limit)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    report(rows)
    cost()


if __name__ == "__main__":
    main()
