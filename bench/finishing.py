"""remove.bg's finishing at 12 MP: where the cut-out is made, against encode + decode + finish.

Not a test: it prints numbers. Until issue 23, a remove.bg request asked the inference port
for a full-size PNG cut-out, decoded that PNG again on the API side, applied the remove.bg
options to it and encoded the answer. Now the options travel inside the job as
:class:`~alphacut.engine.effects.Effects` and are applied to the cut-out where it is made: no
PNG is encoded and decoded on the way (and on a fleet, the work runs on the worker).

Both ways run here, A/B in one process, on the same decoded 12 MP photo and the same mask
(the model's pass is left out: it is the same for both), for three requests: no options,
``bg_color``, ``crop`` + ``add_shadow``; each answered as remove.bg's ``format=auto``. It
prints the median seconds of each over ``--repeat`` runs, interleaved.

    .venv/bin/python bench/finishing.py [--repeat 7] [--photo tests/fixtures/rembg/cloth-1.jpg]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from alphacut.config import get_settings
from alphacut.engine.compose import on_background
from alphacut.engine.decode import Limits, decode
from alphacut.engine.effects import Effects, Length, apply_effects, finish
from alphacut.engine.encode import encode_image
from alphacut.engine.formats import OutputFormat
from alphacut.engine.outputs import OutputSpec, encode_output
from alphacut.engine.pipeline import Remover

REPO = Path(__file__).resolve().parents[1]
PIXELS = 12_000_000
REQUESTS = {
    "no options": Effects(),
    "bg_color": Effects(background_color="#81d4fa"),
    "crop + shadow": Effects(crop=True, crop_margin=(Length(10, True),), shadow_opacity=50),
}


def photo_at(path: Path, pixels: int) -> bytes:
    image = Image.open(path).convert("RGB")
    scale = (pixels / (image.width * image.height)) ** 0.5
    size = (round(image.width * scale), round(image.height * scale))
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--photo", type=Path, default=REPO / "tests/fixtures/rembg/cloth-1.jpg")
    args = parser.parse_args()
    settings = get_settings()
    limits = Limits(settings.max_input_bytes, settings.max_input_pixels)
    remover = Remover("fast", settings=settings)
    decoded = decode(photo_at(args.photo, PIXELS), limits)
    mask = remover.predict(decoded)
    auto = OutputSpec("cutout", "auto")

    def new_way(effects: Effects) -> bytes:
        cut, _box = finish(remover.compose(decoded, mask), effects, limits)
        return encode_output(cut, auto).data

    def old_way(effects: Effects) -> bytes:
        # The port's answer was a full-size PNG cut-out; the API side decoded it again,
        # finished it and encoded the answer (as service/removebg_compat.py's _finish did).
        png = remover.compose(decoded, mask).to_bytes("png")
        with Image.open(io.BytesIO(png)) as opened:
            cut = opened.convert("RGBA")
            icc = opened.info.get("icc_profile")
        cut, _box = apply_effects(cut, effects, limits)
        fmt: OutputFormat = "png" if int(np.asarray(cut.getchannel("A")).min()) < 255 else "jpeg"
        image = cut if fmt == "png" else on_background(cut, (255, 255, 255, 255))
        return encode_image(
            image,
            fmt,
            icc_profile=icc,
            png_level=settings.png_compress_level,
            threads=settings.image_threads,
        )

    print(
        f"remove.bg finishing at {decoded.image.width}x{decoded.image.height}, "
        f"{args.repeat} runs each, interleaved; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'request':16} {'old: PNG round trip':>20} {'new: in the job':>16} {'saved':>8}")
    for name, effects in REQUESTS.items():
        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.repeat):
            for label, run in (("old", old_way), ("new", new_way)):
                started = time.perf_counter()
                run(effects)
                times[label].append(time.perf_counter() - started)
        old, new = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"{name:16} {old:>19.2f}s {new:>15.2f}s {old - new:>7.2f}s")


if __name__ == "__main__":
    main()
