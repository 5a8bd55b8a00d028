"""Peak memory and time of every image operation and of background removal, per pixel.

Not a test: it prints the numbers that ``src/alphacut/service/memory.py`` turns into its cost
estimates (which must stay above them). Each measurement runs in a fresh process and reports
the growth of its peak resident size (VmHWM) and of its peak address space (VmPeak, what
RLIMIT_AS counts) over the job: decode -> operation -> encode, as the service runs it, and
the cost the service estimates for the same job.

    .venv/bin/python bench/memory.py            # 50 MP, every operation and removal
    .venv/bin/python bench/memory.py --mp 12 --only rotate,blur
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPERATIONS = ["decode", "png", "jpeg", "webp", "resize", "rotate", "blur", "modulate", "watermark",
              "fast/none", "fast/edges", "precise/none", "precise/consensus"]  # fmt: skip

_CHILD = r"""
import io, json, sys, time
from PIL import Image
from alphacut.engine.decode import Limits, decode
from alphacut.engine.encode import encode_image
from alphacut.engine import operations as ops
from alphacut.service.memory import operation_cost, removal_cost

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

op, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
if "/" in op:
    from alphacut import Remover
    remover = Remover(op.split("/")[0], refine=op.split("/")[1])
    remover.load()
rss, vm = status("VmHWM"), status("VmPeak")
started = time.perf_counter()
if "/" in op:
    cut = remover.remove(data)
    cut.to_bytes("png")
    pixels = cut.size[0] * cut.size[1]
    cost = removal_cost(remover.spec, remover.refine, pixels, remover.checker_spec)
    # The session was loaded before the measurement: its share of the estimate is left out.
    from alphacut.service.memory import session_bytes
    fixed = session_bytes(remover.spec)
    if remover.checker_spec is not None:
        fixed += session_bytes(remover.checker_spec)
    estimate = cost.bytes - fixed
else:
    image = decode(data, Limits(10**9, 10**9)).image
    pixels = image.width * image.height
    out = image
    if op == "resize":
        out = ops.resize(image, width=image.width - 1, height=image.height - 1, max_pixels=10**10)
    elif op == "rotate":
        out = ops.rotate(image, 3.0, alpha_ok=True, max_pixels=10**10)
    elif op == "blur":
        out = ops.blur(image, 50)
    elif op == "modulate":
        out = ops.modulate(image, ops.Modulation(10, 10, 1.2, 1.3))
    elif op == "watermark":
        mark = Image.new("RGBA", (1, 1), (255, 0, 0, 128))
        out = ops.watermark(image, [ops.Watermark(mark, repetition="repeat")], max_pixels=10**10)
    if op != "decode":
        fmt = op if op in ("png", "jpeg", "webp") else "png"
        encode_image(out, fmt, quality=None if fmt == "png" else 90, png_level=3, threads=2)
    cost = operation_cost(op, pixels, out.width * out.height if op != "decode" else 0)
    estimate = cost.bytes
seconds = time.perf_counter() - started
print(json.dumps({"pixels": pixels, "rss": status("VmHWM") - rss, "vm": status("VmPeak") - vm,
                  "seconds": seconds, "estimate": estimate, "estimated_seconds": cost.seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp", type=float, default=50.0, help="megapixels of the test photo")
    parser.add_argument(
        "--only", default="", help="comma-separated subset of: " + ",".join(OPERATIONS)
    )
    args = parser.parse_args()
    from PIL import Image, ImageDraw

    width = int((args.mp * 1e6 * 2) ** 0.5)
    height = int(args.mp * 1e6 / width)
    photo = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(photo).ellipse((width // 4, height // 4, width // 2, height // 2), fill="red")
    # A new file of its own (never a fixed name in the shared temp folder, which someone else
    # may hold or point elsewhere), and so the one it removes at the end.
    fd, name = tempfile.mkstemp(prefix=f"alphacut-memory-{width}x{height}-", suffix=".jpg")
    path = Path(name)
    with os.fdopen(fd, "wb") as file:
        photo.save(file, "JPEG", quality=90)
    del photo
    print(
        f"{platform.machine()} {platform.processor() or ''}, Python {platform.python_version()}, "
        f"{width}x{height} ({width * height / 1e6:.1f} MP) JPEG"
    )
    print(f"{'job':18} {'RSS B/px':>9} {'VM B/px':>8} {'estimate B/px':>14}", end="")
    print(f" {'s':>6} {'estimate s':>11}")
    wanted = [op for op in OPERATIONS if not args.only or op in args.only.split(",")]
    for op in wanted:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, op, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(f"{op:18} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        px = row["pixels"]
        verdict = "" if row["estimate"] >= max(row["rss"], row["vm"]) else "  <- estimate too low"
        print(
            f"{op:18} {row['rss'] / px:9.1f} {row['vm'] / px:8.1f} {row['estimate'] / px:14.1f} "
            f"{row['seconds']:6.1f} {row['estimated_seconds']:11.1f}{verdict}"
            f"   ({time.perf_counter() - started:.0f} s with start-up)"
        )
    path.unlink()


if __name__ == "__main__":
    main()
