"""Throughput against cores: alphacut and ``rembg s`` pinned to 1, 2, ... CPUs (issue 24).

Not a test: it prints numbers. For each CPU set (``--cpus 0 0,1``; on a bigger machine
``0-7 0-15``) a child of this script pins itself there (``os.sched_setaffinity``: every
process it starts inherits the set, and alphacut's defaults follow it: threads, streams,
image workers), measures the bare model's peak on those CPUs (bench/peak.py), starts
``alphacut serve`` (``fast`` loaded) and ``rembg s --no-ui`` and sends HTTP jobs at 480x360
from 2 clients per CPU (alphacut's Ximilar path, rembg's POST /api/remove), rounds
alternating. One row per CPU set: jobs/s of each, the ratio to the bare peak and to rembg,
and how each scales against its own 1-CPU row.

    .venv/bin/python bench/scaling.py                    # 1 and 2 CPUs
    .venv/bin/python bench/scaling.py --cpus 0-3 0-7 0-15 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.compare import (
    alphacut_jobs,
    make_inputs,
    measure_http,
    rembg_env,
    rembg_job,
    start_rembg,
    stop,
)
from bench.load import start_server
from bench.peak import model_peak


def parse_cpus(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def one(cpus: set[int], rounds: int, jobs: int) -> dict[str, Any]:
    os.sched_setaffinity(0, cpus)
    clients = 2 * len(cpus)
    peak = model_peak("fast", seconds=5.0)
    os.environ["ALPHACUT_LOAD_MODELS"] = '["fast"]'
    with tempfile.TemporaryDirectory(prefix="alphacut-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        inputs = make_inputs(tmp, folder_size=0)
        (tmp / "data").mkdir()
        server, base, key = start_server(tmp / "data", queue=4 * clients)
        servers = [server]
        limits = httpx.Limits(max_connections=4 * clients)
        try:
            rembg_server, rembg_base = start_rembg(rembg_env(tmp), tmp / "rembg.log")
            servers.append(rembg_server)
            with (
                httpx.Client(base_url=base, timeout=300, limits=limits) as ours,
                httpx.Client(base_url=rembg_base, timeout=300, limits=limits) as theirs,
            ):
                calls = {
                    "alphacut": alphacut_jobs(ours, key, inputs["small"])["ximilar"],
                    "rembg": rembg_job(theirs, inputs["small"]),
                }
                runs = measure_http(calls, jobs * len(cpus), clients, rounds)
        finally:
            for process in servers:
                stop(process)
    return {
        "cpus": len(cpus),
        "clients": clients,
        "peak": peak["peak"],
        "best": peak["best"],
        "alphacut": statistics.median(runs["alphacut"]),
        "rembg": statistics.median(runs["rembg"]),
        "ratio": statistics.median(
            a / b for a, b in zip(runs["alphacut"], runs["rembg"], strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", nargs="+", default=["0", "0,1"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=12, help="jobs per CPU per round")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(parse_cpus(args.one), args.rounds, args.jobs)))
        return
    rows = []
    for cpus in args.cpus:
        print(f"CPUs {cpus}:", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--one", cpus, "--rounds", str(args.rounds),
             "--jobs", str(args.jobs)],
            capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not result:
            sys.exit(f"CPUs {cpus} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        print(done.stdout.replace(result[0], "").rstrip(), flush=True)
        rows.append(json.loads(result[0].removeprefix("RESULT ")))
    base = rows[0]
    print()
    print(
        "| CPUs | clients | bare peak, passes/s | alphacut jobs/s | / peak | `rembg s` jobs/s "
        "| alphacut / rembg | alphacut scaling | rembg scaling |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['cpus']} | {row['clients']} | {row['peak']:.2f} ({row['best']}) "
              f"| {row['alphacut']:.2f} | {row['alphacut'] / row['peak']:.2f}x "
              f"| {row['rembg']:.2f} | {row['ratio']:.2f}x "
              f"| {row['alphacut'] / base['alphacut']:.2f}x "
              f"| {row['rembg'] / base['rembg']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
