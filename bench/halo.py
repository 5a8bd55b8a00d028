"""Halo benchmark: how much of the old background stays in a cut-out's soft edge.

Not a test: it prints numbers. ``make bench-halo``. A halo cannot be scored on real photos
(nobody knows the subject's true colour under a soft edge), so the benchmark makes photos
whose answer is known: each subject of a ``pairs.csv`` set (its photo and its mask, the mask
softened by a Gaussian of sigma 2 px into a soft alpha ``a``) is put over another photo of the
set, ``I = a * F + (1 - a) * B``. A cut-out over any new background differs from the truth by
``a * (colour - F)``; the score is the mean of that, in levels of 255, over the soft pixels
(0.02 < a < 0.98). It compares the photo's own colour (what a plain pipeline keeps) with
:func:`alphacut.engine.foreground.estimate_foreground`, given the true alpha, and times the
estimation at the set's size and on a 12 MP photo.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.engine.foreground import estimate_foreground
from alphacut.evaluation import load_pairs, load_truth, spread

REPO = Path(__file__).resolve().parents[1]
SOFTNESS = 2.0  # sigma in pixels of the Gaussian that turns the hand-made mask into alpha


def _u8(x: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    return np.asarray(np.clip(x * 255 + 0.5, 0, 255), np.uint8)


def _rgb(path: Path, size: tuple[int, int] | None = None) -> npt.NDArray[np.float32]:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        if size is not None and rgb.size != size:
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(rgb, np.float32) / np.float32(255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dataset", nargs="?", type=Path, default=REPO.parent / "shared" / "evaldata" / "davis345"
    )
    parser.add_argument("--limit", type=int, default=60, help="composites to score (spread)")
    args = parser.parse_args()
    pairs = spread(load_pairs(args.dataset), args.limit)
    kept: list[float] = []
    fused: list[float] = []
    seconds: list[float] = []
    for k, pair in enumerate(pairs):
        truth = load_truth(pair.mask)
        alpha = np.asarray(
            cv2.GaussianBlur(truth.alpha * truth.valid, (0, 0), SOFTNESS), np.float32
        )
        height, width = alpha.shape
        foreground = _rgb(pair.image)
        background = _rgb(pairs[(k + len(pairs) // 2) % len(pairs)].image, (width, height))
        a = alpha[..., None]
        photo = _u8(a * foreground + (1 - a) * background)
        soft = (alpha > 0.02) & (alpha < 0.98)
        started = time.perf_counter()
        estimated = estimate_foreground(photo, _u8(alpha))
        seconds.append(time.perf_counter() - started)
        for scores, colour in ((kept, photo), (fused, estimated)):
            error = np.abs(a * (colour.astype(np.float32) / 255 - foreground))[soft]
            scores.append(float(error.mean() * 255))
    print(f"machine: {platform.processor() or platform.machine()}, {sys.platform}")
    print(f"{len(pairs)} composites from {args.dataset} (alpha: mask blurred, sigma {SOFTNESS} px)")
    print("error of the cut-out in the soft edge, levels of 255 (lower is better):")
    print(f"  photo's own colour (plain pipeline): {statistics.mean(kept):6.2f}")
    print(f"  estimated foreground (refine edges): {statistics.mean(fused):6.2f}")
    print(f"  estimation: median {1000 * statistics.median(seconds):.0f} ms per photo")
    # A 12 MP photo whose subject has a soft rim of realistic width.
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:3000, :4000]
    rim = np.clip((1200 - np.hypot(yy - 1500, xx - 2000)) * 8 + 128, 0, 255).astype(np.uint8)
    estimate_foreground(big, rim)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        estimate_foreground(big, rim)
        runs.append(time.perf_counter() - started)
    print(f"  12 MP photo, a subject with a 32 px soft rim: {1000 * min(runs):.0f} ms")


if __name__ == "__main__":
    main()
