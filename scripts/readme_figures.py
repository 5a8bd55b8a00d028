"""Before/after figures for the README: the plain pipeline beside alphacut's refinements.

``.venv/bin/python scripts/readme_figures.py`` (needs both models). For each
photo (rembg's own test fixtures, MIT licence) it writes ``docs/img/<name>.jpg``: a crop of the
photo, the same crop cut out by one plain pass of the model (``refine=none``, what rembg
gives), then by alphacut's default (``refine=auto``) and any other refinement listed, all over
a dark blue that shows any halo or haze. The crops are fixed regions chosen to show hair, fine
edges and coloured fringes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from alphacut import Remover

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "rembg"
OUT = REPO / "docs" / "img"
BACKGROUND = "#1d3557"
TILE = 300  # pixels: each panel's side
# name -> (photo, model, crop box in the photo's pixels, refinements shown after the plain one)
FIGURES = {
    "hair-and-hat": ("cloth-1.jpg", "precise", (215, 20, 515, 320), ("auto",)),
    "leaf-edges": ("plants-1.jpg", "precise", (150, 380, 600, 830), ("auto",)),
    "fast-edges": ("plants-1.jpg", "fast", (150, 380, 600, 830), ("auto", "zoom")),
}


def panel(image: Image.Image, label: str) -> Image.Image:
    tile = image.convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, TILE, 22), fill="#000000")
    draw.text((6, 5), label, fill="#ffffff")
    return tile


def main() -> None:
    if not FIXTURES.is_dir():
        sys.exit(f"the test photos are missing: {FIXTURES}")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (photo, model, box, refinements) in FIGURES.items():
        with Image.open(FIXTURES / photo) as opened:
            source = opened.convert("RGB")
        plain = Remover(model, refine="none").remove(source)
        panels = [
            panel(source.crop(box), "photo"),
            panel(plain.on_background(BACKGROUND).crop(box), f"{model}, plain (rembg)"),
        ]
        for refine in refinements:
            remover = Remover(model, refine=refine)
            cut = remover.remove(source)
            label = f"{model}, refine={remover.refine}" + (" (default)" if refine == "auto" else "")
            panels.append(panel(cut.on_background(BACKGROUND).crop(box), label))
        figure = Image.new("RGB", (TILE * len(panels) + 8 * (len(panels) - 1), TILE), "#ffffff")
        for index, tile in enumerate(panels):
            figure.paste(tile, (index * (TILE + 8), 0))
        target = OUT / f"{name}.jpg"
        figure.save(target, quality=88)
        print(target.relative_to(REPO))


if __name__ == "__main__":
    main()
