"""How many clicks a cut-out needs, and what a click costs over HTTP (issue 26).

Not a test: it prints numbers.

1. **NoC** on a folder with masks (default: davis345): ``alphacut eval --clicks 20`` with the
   default model, i.e. the simulated user of ``alphacut.noc`` (RITM's protocol) correcting
   each automatic cut-out: NoC@85, NoC@90, NoF@90, IoU after 1/3/5 clicks, seconds a click
   (the correction alone, at the photo's size).
2. **A click over HTTP at 1 MP**: starts its own ``alphacut serve`` (temporary data folder,
   loopback), uploads a davis345 photo enlarged to 1333x750 (1.0 MP), makes its automatic
   cut-out, then times ``--clicks`` corrections (``remove-background`` with ``cutout_id`` and
   every click so far, as the web page sends them) and the download of each answer: the
   wall time a person waits for, median and worst.

    .venv/bin/python bench/clicks.py                       # both, all 345 pairs
    .venv/bin/python bench/clicks.py --limit 69 --no-http  # NoC on a spread of 69
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.load import start_server

REPO = Path(__file__).resolve().parents[1]
DAVIS = REPO.parent / "shared" / "evaldata" / "davis345"
EXE = str(Path(sys.executable).parent / "alphacut")


def noc(folder: Path, limit: int | None, model: str | None) -> None:
    command = [EXE, "eval", str(folder), "--clicks", "20"]
    command += ["--model", model] if model else ["--model", "precise"]
    command += ["--limit", str(limit)] if limit else []
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def http_clicks(folder: Path, clicks: int) -> None:
    with Image.open(folder / "img" / "000.jpg") as photo:
        big = photo.convert("RGB").resize((1333, 750), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=92)
    with tempfile.TemporaryDirectory() as data:
        process, url, key = start_server(Path(data), 4)
        try:
            with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=120) as client:
                up = client.post(
                    "/v1/images/upload",
                    data={"name": "p"},
                    files={"image": ("p", buffer.getvalue())},
                )
                up.raise_for_status()
                source = up.json()["id"]
                started = time.perf_counter()
                first = client.post(f"/v1/images/{source}/remove-background", json={})
                first.raise_for_status()
                automatic = time.perf_counter() - started
                base = first.json()["id"]
                points: list[dict[str, object]] = []
                waits, answers = [], []
                for index in range(clicks):
                    # clicks spread over the photo, alternating subject and background
                    x = 100 + (index * 397) % 1133
                    y = 80 + (index * 211) % 590
                    points.append(
                        {"x": x, "y": y, "label": "subject" if index % 2 else "background"}
                    )
                    started = time.perf_counter()
                    answer = client.post(
                        f"/v1/images/{source}/remove-background",
                        json={"cutout_id": base, "points": points},
                    )
                    answer.raise_for_status()
                    answered = time.perf_counter() - started
                    client.get(f"/v1/images/{answer.json()['id']}/download").raise_for_status()
                    waits.append(time.perf_counter() - started)
                    answers.append(answered)
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)
    print(f"1333x750 (1.0 MP), default model; automatic cut-out {automatic:.2f} s")
    print(
        f"a click ({clicks}, each with every click so far): answer median "
        f"{statistics.median(answers):.3f} s, worst {max(answers):.3f} s; with the PNG's "
        f"download median {statistics.median(waits):.3f} s, worst {max(waits):.3f} s"
    )
    print("each answer, in order:", " ".join(f"{a:.3f}" for a in answers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DAVIS)
    parser.add_argument("--limit", type=int, default=None, help="pairs spread over the set")
    parser.add_argument("--model", default=None, help="default: precise (the default model)")
    parser.add_argument("--clicks", type=int, default=10, help="HTTP clicks to time")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-noc", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}")
    if not args.no_http:
        http_clicks(args.folder, args.clicks)
    if not args.no_noc:
        noc(args.folder, args.limit, args.model)


if __name__ == "__main__":
    main()
