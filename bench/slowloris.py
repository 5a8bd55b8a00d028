"""Slow request heads ("slowloris") against a real `alphacut serve`: how many connections that
drip their request head the service holds, and whether `/healthz` keeps answering meanwhile.

Not a test: it prints numbers. Loopback only, bounded in connections and time, stops by
itself. It starts its own server (temporary data directory, one worker) and, for each level,
opens that many connections that each send part of a request head and then one more byte
every second, never finishing it; for ``--hold`` seconds it asks `/healthz` on a fresh
connection every 0.25 s, then lets go of every connection. Per level it prints: connections
opened, how many the server had closed by the end (and the median time it took), `/healthz`
answers and their latency, and the server's RSS.

``--header-timeout`` is the server's ALPHACUT_HEADER_TIMEOUT_SECONDS (3600 reproduces a
server without the deadline); ``--nofile`` lowers the server's open-file limit (1024 is a
common default) to show what running out of descriptors does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EXE = str(Path(sys.executable).with_name("alphacut"))
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "
MAX_CONNECTIONS = 15_000  # a bound on what this script ever opens


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(
    data_dir: Path, header_timeout: float, nofile: int | None
) -> tuple[subprocess.Popen[str], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "ALPHACUT_DATA_DIR": str(data_dir),
           "ALPHACUT_HEADER_TIMEOUT_SECONDS": str(header_timeout)}  # fmt: skip

    def limit_files() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=limit_files,
    )
    assert process.stderr is not None
    lines = []
    while True:
        line = process.stderr.readline()
        lines.append(line)
        if "startup complete" in line or not line:
            break
    if "startup complete" not in lines[-1]:
        sys.exit("the server did not start:\n" + "".join(lines))
    threading.Thread(target=process.stderr.read, daemon=True).start()  # never let it block
    return process, port


@dataclass
class Level:
    opened: int = 0
    refused: int = 0
    closed_after: list[float] = field(default_factory=list)
    health: list[float | None] = field(default_factory=list)  # latency, None: no answer


async def healthz(port: int) -> float | None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 2)
        writer.close()
    except (OSError, TimeoutError):
        return None
    return time.monotonic() - started if re.match(rb"HTTP/1.1 200 ", answer) else None


async def run_level(port: int, connections: int, hold: float) -> Level:
    level = Level()
    writers: list[asyncio.StreamWriter] = []
    watchers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(200)
    letting_go = asyncio.Event()

    async def watch(reader: asyncio.StreamReader, opened: float) -> None:
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass
        if not letting_go.is_set():
            level.closed_after.append(time.monotonic() - opened)

    async def open_one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 5
                )
                writer.write(PARTIAL_HEAD)
            except (OSError, TimeoutError):
                level.refused += 1
                return
            level.opened += 1
            writers.append(writer)
            watchers.append(asyncio.create_task(watch(reader, time.monotonic())))

    await asyncio.gather(*(open_one() for _ in range(connections)))
    deadline = time.monotonic() + hold
    next_drip = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() >= next_drip:
            for writer in writers:
                if not writer.is_closing():
                    writer.write(b"x")
            next_drip += 1.0
        level.health.append(await healthz(port))
        await asyncio.sleep(0.25)
    letting_go.set()
    for writer in writers:
        writer.close()
    await asyncio.sleep(0.5)
    for task in watchers:
        task.cancel()
    return level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="500,2000,6000", help="connections per level")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds each level lasts")
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--nofile", type=int, help="the server's open-file limit")
    args = parser.parse_args()
    levels = [min(int(n), MAX_CONNECTIONS) for n in args.levels.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        levels = [min(n, hard - 200) for n in levels]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory(prefix="alphacut-slowloris-") as tmp:
        process, port = start_server(Path(tmp), args.header_timeout, args.nofile)
        rows = []
        try:
            limit = args.nofile or hard
            print(f"server pid {process.pid}: header timeout {args.header_timeout:g} s, "
                  f"open-file limit {limit}, RSS {rss_mb(process.pid):.0f} MB")  # fmt: skip
            for connections in levels:
                level = asyncio.run(run_level(port, connections, args.hold))
                rss = rss_mb(process.pid)
                answered = [h for h in level.health if h is not None]
                closed = sorted(level.closed_after)
                rows.append([
                    connections, level.opened, len(closed),
                    f"{statistics.median(closed):.1f}" if closed else "-",
                    f"{len(answered)}/{len(level.health)}",
                    f"{statistics.median(answered) * 1000:.0f}" if answered else "-",
                    f"{max(answered) * 1000:.0f}" if answered else "-",
                    f"{rss:.0f}",
                ])  # fmt: skip
                print(rows[-1], flush=True)
                time.sleep(2)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)

    print()
    print("| dripping connections | opened | closed by the server | median s to close "
          "| /healthz answered | p50 ms | max ms | server RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
