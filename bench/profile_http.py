"""Where an HTTP job's CPU goes: the running server sampled by py-spy, stage by stage.

Not a test: it prints numbers. Starts its own ``alphacut serve`` (temporary data folder,
loopback, ``ALPHACUT_LOAD_MODELS='["fast"]'``), warms it, then sends Ximilar jobs (POST
/removebg/fast/removebg with one base64 480x360 JPEG record, then GET its ``_output_url``)
from ``--clients`` clients for ``--seconds`` while ``py-spy record`` samples every thread of
the server that is running (not waiting) at 200 Hz. Each sample is put in the first stage
its stack shows, from the innermost frame out (the model's pass, decode, the mask's
upscale and ``edges``, colour estimation, PNG encode, base64, JSON, the HTTP server and event
loop, the database, the blob store...), and the table gives each stage's share of the
sampled CPU and its CPU seconds per job, beside the model pass's. Needs the ``bench`` extra
(py-spy) and the right to trace a child process (root, or ptrace_scope 0).

    .venv/bin/python bench/profile_http.py                  # 4 clients, 30 s
    .venv/bin/python bench/profile_http.py --clients 1 --seconds 20
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.load import start_server

REPO = Path(__file__).resolve().parents[1]
PY_SPY = Path(sys.executable).parent / "py-spy"

# (stage, what a frame's "function (file)" text contains), matched from the innermost frame
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("model pass (OpenVINO/onnxruntime)", ("sessions/openvino.py", "sessions/onnx.py",
                                           "_ov_api.py")),
    ("PNG encode", ("engine/png.py", "engine/encode.py")),
    ("colour estimation (foreground)", ("engine/foreground.py",)),
    ("edges (firm_alpha)", ("engine/refine.py",)),
    ("model input (resize, normalise)", ("engine/recipes.py", "engine/resize.py")),
    ("mask to full size", ("_full_size", "to_mask", "activate")),
    ("decode", ("engine/decode/",)),
    ("compose, effects, outputs", ("engine/compose.py", "engine/effects.py",
                                   "engine/outputs.py", "engine/pipeline.py")),
    ("base64", ("base64.py", "binascii")),
    ("JSON", ("json/", "orjson", "pydantic", "api/schemas.py")),
    ("database", ("sqlalchemy", "sqlite3", "storage/database.py", "storage/sqlite")),
    ("blob store", ("storage/blobs.py", "storage/local.py", "storage/files")),
    ("HTTP server, event loop", ("uvicorn", "starlette", "fastapi", "asyncio", "h11",
                                 "httptools", "anyio")),
    ("queues, thread hand-offs", ("service/work.py", "concurrent/futures", "threading.py",
                                  "queue.py")),
]  # fmt: skip


def stage_of(stack: str) -> str:
    frames = stack.split(";")[::-1]  # py-spy's raw format: root first, innermost last
    for frame in frames:
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
    return "other (alphacut's API, services)"


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread (by native id) of ``pid`` so far (/proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def thread_names(raw: str) -> dict[int, str]:
    """Native thread id -> Python thread name, from py-spy's ``thread (TID): name`` frames
    (digits dropped, so a pool's threads are one group)."""
    names: dict[int, str] = {}
    for match in re.finditer(r"thread \((\d+)\)(?:: ([^;]*))?;", raw):
        name = (match.group(2) or "unnamed").rstrip("0123456789_")
        names[int(match.group(1))] = name
    return names


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(PY_SPY), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
         "--duration", str(int(seconds)), "--output", str(out), "--nonblocking", "--threads",
         "--subprocesses"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--top", type=int, default=0, help="also print each stage's N top frames")
    args = parser.parse_args()
    if not PY_SPY.exists():
        sys.exit("py-spy is not installed: `make bench-compare` installs the bench extra")
    with Image.open(REPO / "tests" / "fixtures" / "rembg" / "car-1.jpg") as original:
        small = ImageOps.fit(original.convert("RGB"), (480, 360), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=92)
    record_body = {"records": [{"_base64": base64.b64encode(buffer.getvalue()).decode()}]}
    os.environ["ALPHACUT_LOAD_MODELS"] = '["fast"]'
    with tempfile.TemporaryDirectory(prefix="alphacut-profile-") as tmp_name:
        tmp = Path(tmp_name)
        server, base, key = start_server(tmp, queue=64)
        done = 0
        try:
            client = httpx.Client(base_url=base, timeout=120,
                                  headers={"Authorization": f"Token {key}"})  # fmt: skip

            def job() -> None:
                answer = client.post("/removebg/fast/removebg", json=record_body)
                answer.raise_for_status()
                url = answer.json()["records"][0]["_output_url"]
                client.get(url).raise_for_status()

            for _ in range(5):
                job()
            out = tmp / "samples.txt"
            spy = record(server.pid, args.seconds, out)
            time.sleep(1.0)  # py-spy attached
            cpu_before = thread_cpu(server.pid)
            stop_at = time.monotonic() + args.seconds - 2
            lock = threading.Lock()

            def client_loop() -> None:
                nonlocal done
                while time.monotonic() < stop_at:
                    job()
                    with lock:
                        done += 1

            started = time.perf_counter()
            threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            cpu_after = thread_cpu(server.pid)
            _, error = spy.communicate(timeout=args.seconds + 60)
            if not out.exists():
                sys.exit("py-spy wrote nothing:\n" + error.decode()[-2000:])
            samples: collections.Counter[str] = collections.Counter()
            frames: dict[str, collections.Counter[str]] = collections.defaultdict(
                collections.Counter
            )
            raw = out.read_text()
            for line in raw.splitlines():
                stack, _, count = line.rpartition(" ")
                stage = stage_of(stack)
                samples[stage] += int(count)
                frames[stage][stack.split(";")[-1]] += int(count)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    total = sum(samples.values())
    cpu_s = total / 200  # samples of running threads at 200 Hz: CPU seconds
    print(f"{done} jobs in {elapsed:.1f} s ({done / elapsed:.2f} jobs/s), {args.clients} "
          f"clients, {os.cpu_count()} CPUs; {total} samples = {cpu_s:.1f} CPU s sampled "
          f"({cpu_s / done:.3f} CPU s per job)")  # fmt: skip
    print()
    print("| stage | share of sampled CPU | CPU s per job |")
    print("|---|---|---|")
    for stage, hits in samples.most_common():
        print(f"| {stage} | {100 * hits / total:.1f}% | {hits / 200 / done:.4f} |")
    names = thread_names(raw)
    used: dict[str, float] = collections.defaultdict(float)
    for tid, seconds in cpu_after.items():
        name = names.get(tid, "native threads (OpenVINO's workers, ...)")
        used[name] += seconds - cpu_before.get(tid, 0.0)
    whole = sum(used.values())
    print(
        f"\nCPU by thread (/proc, exact; py-spy's samples above count only Python frames):"
        f" {whole:.1f} CPU s, {whole / done:.3f} per job, {whole / elapsed:.2f} cores busy"
    )
    print("\n| threads | CPU s per job | share |")
    print("|---|---|---|")
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"| {name} | {seconds / done:.4f} | {100 * seconds / whole:.1f}% |")
    for stage, hits in samples.most_common() if args.top else []:
        print(f"\n{stage}:")
        for frame, times in frames[stage].most_common(args.top):
            print(f"  {100 * times / hits:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
