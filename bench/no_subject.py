"""Where is "no subject"? The share of a photo each model sees as subject (its raw output at
or above one half, before any stretching), on photos with a subject and on photos without.

Photos without a subject, all real or plainly made:
- **empty scenes**: for every photo of the data set (default ../shared/evaldata/davis345),
  the largest crop (at least a quarter of the frame, tried at random) that holds no pixel of
  the hand-made mask: the same scene without its subject. Such a crop often still holds
  something a person would cut out (a car, a sign), so it is counted, not judged;
- **plain surfaces**: solid colours, gradients, noise, and the smoothest quarter of each of
  the first 20 photos blurred flat (a wall, a sky).

It prints how many photos each model refuses at several thresholds, as the engine decides:
``fast`` and ``precise`` by their own model's share, ``auto`` where neither model sees one,
so that ``ALPHACUT_NO_SUBJECT_SHARE`` is chosen on numbers: no photo with a subject refused
where a model sees it, every plain surface refused.

    .venv/bin/python bench/no_subject.py            # all 345 photos, about 8 minutes
    .venv/bin/python bench/no_subject.py --limit 40
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFilter

from alphacut import Remover
from alphacut.evaluation import load_pairs, load_truth, spread

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.0005, 0.001, 0.002, 0.005)


def shares(remover: Remover, image: Image.Image) -> float:
    """The share of ``image`` that ``remover``'s model sees as subject (raw output >= 0.5)."""
    return remover._model_output(image.convert("RGB"), {}).share


def empty_crop(
    image: Image.Image, subject: np.ndarray, rng: np.random.Generator
) -> Image.Image | None:
    height, width = subject.shape
    for fraction in (0.7, 0.6, 0.5):
        h, w = int(height * fraction), int(width * fraction)
        for _ in range(60):
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            if not subject[y : y + h, x : x + w].any():
                return image.crop((x, y, x + w, y + h))
    return None


def plain_surfaces(photos: list[Image.Image], rng: np.random.Generator) -> dict[str, Image.Image]:
    made: dict[str, Image.Image] = {}
    for color in ((255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 180, 150), (40, 90, 160)):
        made[f"solid {color}"] = Image.new("RGB", (1024, 768), color)
    ramp = np.linspace(0, 255, 1024, dtype=np.float32)
    made["gradient"] = Image.fromarray(
        np.repeat(np.repeat(ramp[None, :, None], 768, 0), 3, 2).astype(np.uint8)
    )
    made["noise"] = Image.fromarray(rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8))
    made["fine noise on grey"] = Image.fromarray(
        np.clip(128 + rng.normal(0, 12, (768, 1024, 3)), 0, 255).astype(np.uint8)
    )
    for index, photo in enumerate(photos[:20]):
        grey = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = cv2.blur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (31, 31))
        h, w = grey.shape
        best = min(
            ((detail[y : y + h // 2, x : x + w // 2].mean(), x, y)
             for y in range(0, h // 2 + 1, h // 8) for x in range(0, w // 2 + 1, w // 8)),
        )  # fmt: skip
        _, x, y = best
        crop = photo.crop((x, y, x + w // 2, y + h // 2)).filter(ImageFilter.GaussianBlur(8))
        made[f"flat patch {index}"] = crop
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, default=REPO.parent / "shared" / "evaldata" / "davis345"
    )
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    fast, precise = Remover("fast", refine="none"), Remover("precise", refine="none")
    groups: dict[str, list[tuple[str, float, float]]] = {
        "photos": [],
        "empty scenes": [],
        "plain": [],
    }
    photos: list[Image.Image] = []
    for pair in spread(load_pairs(args.folder), args.limit):
        with Image.open(pair.image) as opened:
            image = opened.convert("RGB")
        photos.append(image)
        name = pair.image.name
        groups["photos"].append((name, shares(fast, image), shares(precise, image)))
        crop = empty_crop(image, load_truth(pair.mask).alpha >= 0.5, rng)
        if crop is not None:
            groups["empty scenes"].append((name, shares(fast, crop), shares(precise, crop)))
    for name, image in plain_surfaces(photos, rng).items():
        groups["plain"].append((name, shares(fast, image), shares(precise, image)))

    for group, rows in groups.items():
        fast_seen = [row[1] for row in rows]
        precise_seen = [row[2] for row in rows]
        either = [max(row[1], row[2]) for row in rows]
        medians = f"fast {statistics.median(fast_seen):.4f}, "
        medians += f"precise {statistics.median(precise_seen):.4f}"
        print(f"\n{group}: {len(rows)}; median share seen: {medians}")
        print("| threshold | refused: fast | precise (its own share) | auto (neither model) |")
        print("|---|---|---|---|")
        for threshold in THRESHOLDS:
            counts = [
                sum(v < threshold for v in seen) for seen in (fast_seen, precise_seen, either)
            ]
            print(f"| {threshold:.2%} | " + " | ".join(str(c) for c in counts) + " |")
        if group != "photos":
            kept = [row for row in rows if max(row[1], row[2]) >= 0.001]
            print(f"seen as having a subject (either model >= 0.1%): {len(kept)}, e.g. "
                  + ", ".join(f"{name} ({max(a, b):.1%})" for name, a, b in kept[:5]))  # fmt: skip
        else:
            missed = [row for row in rows if row[1] < 0.001 or row[2] < 0.001]
            named = [f"{name} (fast {a:.2%}, precise {b:.2%})" for name, a, b in missed]
            print("photos one model sees nothing in: " + ", ".join(named))


if __name__ == "__main__":
    main()
