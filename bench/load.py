"""Load benchmark: throughput, latency percentiles and memory of a real `alphacut serve`.

Not a test: it prints numbers. Loopback only, bounded in requests and time, stops by itself.
It starts its own server (temporary data directory, one worker) and measures, for both APIs
(images: POST /v1/images/{id}/remove-background; Ximilar: POST /removebg/fast/removebg with
one base64 record), at concurrency 1, 4 and 16:

- throughput (requests per second) and p50/p95/p99 latency, and how many answers were 5xx;
- the server's peak RSS, and its RSS before and after a long run (``--soak`` requests,
  default 2000) to show that memory stays flat.

The inference queue is sized to the highest concurrency, so that the numbers measure work,
not refusals (with the default queue of 8, concurrency 16 correctly gets some 503s).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO / "tests" / "fixtures" / "rembg" / "car-1.jpg"
EXE = str(Path(sys.executable).with_name("alphacut"))


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(data_dir: Path, queue: int) -> tuple[subprocess.Popen[str], str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(data_dir), "ALPHACUT_INFERENCE_QUEUE": str(queue)}
    process = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert process.stderr is not None
    lines = []
    while True:
        line = process.stderr.readline()
        lines.append(line)
        if "startup complete" in line or not line:
            break
    key = re.search(r"(test_[A-Za-z0-9]{40})", "".join(lines))
    if not key:
        sys.exit("the server did not start:\n" + "".join(lines))
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, f"http://127.0.0.1:{port}", key.group(1)


def run_level(
    call: Callable[[], int], requests: int, concurrency: int, limit_s: float
) -> dict[str, float]:
    latencies: list[float] = []
    statuses: list[int] = []
    deadline = time.monotonic() + limit_s

    def one(_: int) -> None:
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        status = call()
        latencies.append(time.perf_counter() - started)
        statuses.append(status)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    return {
        "requests": len(latencies),
        "throughput": len(latencies) / wall,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
        "5xx": sum(1 for s in statuses if s >= 500),
        "other_errors": sum(1 for s in statuses if 400 <= s < 500),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--requests", type=int, default=48, help="per API and concurrency")
    parser.add_argument("--soak", type=int, default=2000, help="requests of the memory run")
    parser.add_argument("--limit", type=float, default=300, help="seconds per measurement")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16], help="clients")
    args = parser.parse_args()

    levels = tuple(args.levels)
    data = args.photo.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    record = {"records": [{"_base64": base64.b64encode(data).decode()}]}
    with tempfile.TemporaryDirectory(prefix="alphacut-load-") as tmp:
        process, base, key = start_server(Path(tmp), queue=max(levels) * 2)
        try:
            client = httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=300,
                                  limits=httpx.Limits(max_connections=64))  # fmt: skip
            uploaded = client.post(
                "/v1/images/upload", data={"name": "load"}, files={"image": ("p.jpg", data)}
            ).json()

            def images_api() -> int:
                response = client.post(
                    f"/v1/images/{uploaded['id']}/remove-background", json={"model": "fast"}
                )
                if response.status_code == 201:  # keep the store from growing without bound
                    client.delete(f"/v1/images/{response.json()['id']}")
                return response.status_code

            def ximilar_api() -> int:
                response = client.post(
                    "/removebg/fast/removebg",
                    json=record,
                    headers={"Authorization": f"Token {key}"},
                )
                return response.status_code

            images_api()  # warm-up: model load
            rss_start = rss_mb(process.pid)
            print(f"server pid {process.pid}; photo {args.photo.name} {size[0]}x{size[1]}; "
                  f"{os.cpu_count()} cores; RSS after warm-up {rss_start:.0f} MB")  # fmt: skip
            rows = []
            for name, call in (("images", images_api), ("ximilar", ximilar_api)):
                for concurrency in levels:
                    row = {"api": name, "concurrency": concurrency,
                           **run_level(call, args.requests, concurrency, args.limit)}  # fmt: skip
                    rows.append(row)
                    print(
                        json.dumps(
                            {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
                        )
                    )
            before = rss_mb(process.pid)
            soak = run_level(images_api, args.soak, 4, args.limit * 4)
            after = rss_mb(process.pid)
            peak = rss_mb(process.pid, "VmHWM")
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)

    print()
    print("| API | concurrency | requests | req/s | p50 s | p95 s | p99 s | 5xx |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        cells = [row["api"], row["concurrency"], row["requests"], f"{row['throughput']:.2f}"]
        cells += [f"{row[p]:.3f}" for p in ("p50", "p95", "p99")] + [row["5xx"]]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print()
    print(
        f"memory: RSS {before:.0f} MB before and {after:.0f} MB after {soak['requests']} "
        f"more requests ({soak['5xx']} 5xx); peak RSS {peak:.0f} MB"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "soak": soak, "rss": [before, after, peak]}, indent=2)
        )


if __name__ == "__main__":
    main()
