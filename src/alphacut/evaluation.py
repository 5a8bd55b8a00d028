"""Quality metrics against hand-made masks, and the ``pairs.csv`` data-set format.

A data set is a folder with ``pairs.csv`` (columns ``image,mask,...``, paths relative to the
folder). Masks may be 0/255 binary, soft alpha (L), or palette/instance ids as in DAVIS, where
every non-zero id is foreground and 255 marks void pixels that are not scored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

VOID_ID = 255


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path


@dataclass(frozen=True)
class Truth:
    """Ground truth as alpha in 0..1 and a map of the pixels that count."""

    alpha: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]


def load_pairs(folder: Path) -> list[Pair]:
    with (folder / "pairs.csv").open(newline="") as f:
        return [Pair(folder / row["image"], folder / row["mask"]) for row in csv.DictReader(f)]


def load_truth(path: Path) -> Truth:
    with Image.open(path) as image:
        if image.mode == "P":
            ids = np.asarray(image)
            return Truth((ids > 0).astype(np.float32), ids != VOID_ID)
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return Truth(grey, np.ones(grey.shape, dtype=bool))


def iou(predicted: npt.NDArray[np.uint8], truth: Truth, threshold: float = 0.5) -> float:
    """Intersection over union of the masks binarised at ``threshold``, void pixels ignored.
    Two empty masks agree perfectly (1.0)."""
    ours = (predicted.astype(np.float32) / 255.0 >= threshold) & truth.valid
    theirs = (truth.alpha >= threshold) & truth.valid
    union = np.count_nonzero(ours | theirs)
    return 1.0 if union == 0 else np.count_nonzero(ours & theirs) / union


def mae(predicted: npt.NDArray[np.uint8], truth: Truth) -> float:
    """Mean absolute difference of alpha in 0..1 over valid pixels."""
    difference = np.abs(predicted.astype(np.float32) / 255.0 - truth.alpha)
    return float(difference[truth.valid].mean()) if truth.valid.any() else 0.0
