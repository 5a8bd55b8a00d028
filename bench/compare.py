"""Side by side: alphacut against rembg 2.0.86 and against the model's own limit (issue 24).

Not a test: it prints numbers. Run it with ``make bench-compare`` (installs the ``bench``
extra: rembg and what its CLI imports). One run measures, on the same photos (made from
tests/fixtures/rembg, resized, JPEG q92, in a temporary folder) and the same U2-Netp weights
(rembg's model folder points at alphacut's verified file, as bench/engine.py does), each on
its defaults with the fast model (alphacut: ``fast`` and its default refinement; rembg:
``u2netp``):

- HTTP, 480x360 photo, 4 concurrent clients, and 12 MP photo, 2 clients, jobs per second
  with the cut-out's bytes back: ``alphacut serve`` through its Ximilar path (POST
  /removebg/fast/removebg with one base64 record, then GET the record's ``_output_url``) and
  its images API (upload + remove-background + download), against ``rembg s --no-ui`` (one
  POST /api/remove that answers the PNG). Both servers run at once on loopback ephemeral
  ports (alphacut with ``ALPHACUT_LOAD_MODELS='["fast"]'``), started and stopped here; rounds
  alternate between them so that drift in the machine's speed hits both alike.
- a folder of 20 photos at 1 MP: ``alphacut remove DIR --out-dir OUT -m fast`` against
  ``rembg p -m u2netp DIR OUT``, and one 12 MP photo: ``alphacut remove in.jpg -o out.png -m
  fast`` against ``rembg i -m u2netp in.jpg out.png``; wall time of the whole command,
  process start included, median over alternating runs;
- in process, 1 MP photo, each model with its default refinement: seconds end to end (JPEG
  bytes in, PNG bytes out) beside one bare pass of the same model, interleaved run by run
  (bench/engine.py), and rembg's ``remove`` with a reused session beside it;
- the bare model's peak (bench/peak.py): U2-Netp's passes per second on a ready tensor, the
  best of one stream, streams and small batches, on the runtime the defaults pick: every row
  is also a ratio to it (HTTP jobs/s against passes/s; the folder's time against 20 passes'
  time; a single job against one pass);
- ``alphacut --version`` wall time (median);
- the service's RSS with the fast model loaded: after one warm-up job, after the benchmark's
  jobs, and after ``--soak`` more Ximilar jobs at 480x360 (default 2,000; flat means within
  5% or 20 MB of the reading before them), beside ``rembg s``'s RSS after its benchmark jobs.

Values are medians over the rounds; a ratio is the median of the rounds' ratios (both sides
measured back to back in each round, so that the machine's drift cancels out); an HTTP row
passes only if both of alphacut's APIs meet the target. Each row is judged PASS or MISS
against its target (issue 24's table: against the bare model where the model bounds it,
against rembg where start-up and image work do). Every request and command is bounded
in time; the servers are stopped however the run ends.
``--quick`` repeats less; ``--skip-rembg`` measures alphacut alone (ratios left empty).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageOps

from alphacut.config import get_settings
from alphacut.models.registry import MODELS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.engine import bench_alphacut, make_input, median_seconds, rembg_sessions
from bench.load import rss_mb, run_level, start_server
from bench.peak import model_peak

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "tests" / "fixtures" / "rembg"
BIN = Path(sys.executable).parent
ALPHACUT = str(BIN / "alphacut")
REMBG = str(BIN / "rembg")
HTTP_LIMIT_S = 600.0  # per measurement (run_level stops sending after it)
COMMAND_LIMIT_S = 600.0  # per CLI command


# --- inputs ------------------------------------------------------------------------------


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo(name: str) -> Image.Image:
    with Image.open(PHOTOS / name) as original:
        return original.convert("RGB")


def at_pixels(image: Image.Image, pixels: int) -> Image.Image:
    scale = (pixels / (image.width * image.height)) ** 0.5
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def make_inputs(tmp: Path, folder_size: int) -> dict[str, Any]:
    """480x360 and 12 MP photos (bytes and files), and a folder of 1 MP photos."""
    small = jpeg(ImageOps.fit(photo("car-1.jpg"), (480, 360), Image.Resampling.LANCZOS))
    large = jpeg(at_pixels(photo("cloth-1.jpg"), 12_000_000))
    (tmp / "small.jpg").write_bytes(small)
    (tmp / "large.jpg").write_bytes(large)
    folder = tmp / "folder"
    folder.mkdir()
    sources = sorted(PHOTOS.glob("*.jpg"))
    for index in range(folder_size):
        image = at_pixels(photo(sources[index % len(sources)].name), 1_000_000)
        if (index // len(sources)) % 2:  # no two files alike
            image = ImageOps.mirror(image)
        (folder / f"photo-{index:02d}.jpg").write_bytes(jpeg(image, 88 + index % 8))
    return {"small": small, "large": large, "folder": folder}


def describe(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return f"{image.width}x{image.height}, {len(data) / 1e6:.2f} MB"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (a server may spawn helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += rss_mb(current)
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return total


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def rembg_env(tmp: Path) -> dict[str, str]:
    """rembg reads alphacut's verified U2-Netp file (symlinked under rembg's name; rembg's
    checksum check off, as in bench/engine.py); BROWSER=true keeps `rembg s` from opening
    a browser at start-up."""
    home = tmp / "u2net"
    home.mkdir(exist_ok=True)
    link = home / "u2netp.onnx"
    if not link.exists():
        spec = MODELS["u2netp"] if "u2netp" in MODELS else MODELS["fast"]  # new names, old
        link.symlink_to(get_settings().model_dir / spec.filename)
    return {
        **os.environ,
        "U2NET_HOME": str(home),
        "MODEL_CHECKSUM_DISABLED": "1",
        "BROWSER": "true",
    }


def start_rembg(
    env: dict[str, str], log: Path, limit_s: float = 120
) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    with log.open("w") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [REMBG, "s", "--no-ui", "-h", "127.0.0.1", "-p", str(port), "-l", "warning"],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/api", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(process)
    sys.exit("`rembg s` did not start:\n" + log.read_text()[-3000:])


def timed_command(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=COMMAND_LIMIT_S, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wall


# --- HTTP jobs ---------------------------------------------------------------------------


def is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def alphacut_jobs(client: httpx.Client, key: str, data: bytes) -> dict[str, Callable[[], int]]:
    record = {"records": [{"_base64": base64.b64encode(data).decode()}]}

    def ximilar() -> int:
        response = client.post(
            "/removebg/fast/removebg", json=record, headers={"Authorization": f"Token {key}"}
        )
        if response.status_code != 200:
            return response.status_code
        answer = response.json()["records"][0]
        if answer["_status"]["code"] != 200:
            return int(answer["_status"]["code"])
        cutout = client.get(answer["_output_url"])
        return cutout.status_code if is_png(cutout.content) else 599

    def images() -> int:
        uploaded = client.post(
            "/v1/images/upload", data={"name": "bench"}, files={"image": ("p.jpg", data)}
        )
        if uploaded.status_code != 201:
            return uploaded.status_code
        removed = client.post(
            f"/v1/images/{uploaded.json()['id']}/remove-background", json={"model": "fast"}
        )
        if removed.status_code != 201:
            return removed.status_code
        cutout = client.get(f"/v1/images/{removed.json()['id']}/download")
        return cutout.status_code if is_png(cutout.content) else 599

    return {"ximilar": ximilar, "images": images}


def rembg_job(client: httpx.Client, data: bytes) -> Callable[[], int]:
    def post() -> int:
        response = client.post(
            "/api/remove", data={"model": "u2netp"}, files={"file": ("p.jpg", data)}
        )
        return response.status_code if is_png(response.content) else 599

    return post


def measure_http(
    calls: dict[str, Callable[[], int]], requests: int, concurrency: int, rounds: int
) -> dict[str, list[float]]:
    """Jobs/s of each call, round by round (rounds alternate); exits on any failed job."""
    for call in calls.values():
        call()  # warm-up: first-use allocations, connection set-up
    runs: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            row = run_level(call, requests, concurrency, HTTP_LIMIT_S)
            if row["5xx"] or row["other_errors"]:
                sys.exit(f"{name}: {row['5xx']} 5xx and {row['other_errors']} 4xx answers")
            runs[name].append(row["throughput"])
            print(f"  {name}: {row['throughput']:.2f} jobs/s ({row['requests']} jobs, "
                  f"p50 {row['p50']:.2f} s)", flush=True)  # fmt: skip
    return runs


def measure_commands(commands: dict[str, Callable[[], list[str]]], rounds: int,
                     env: dict[str, dict[str, str] | None]) -> dict[str, list[float]]:  # fmt: skip
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            runs[name].append(timed_command(argv(), env[name]))
            print(f"  {name}: {runs[name][-1]:.2f} s", flush=True)
    return runs


def measure_in_process(repeat: int, with_rembg: bool) -> dict[str, dict[str, float]]:
    """fast and precise at 1 MP with their default refinement, end to end beside one bare
    pass (interleaved), and rembg's ``remove`` on the same weights beside them."""
    data = make_input(PHOTOS / "cloth-1.jpg", 1_000_000)
    sessions = rembg_sessions(["fast", "precise"]) if with_rembg else {}
    measured: dict[str, dict[str, float]] = {}
    for model in ("fast", "precise"):
        print(f"in process, {model} 1 MP:", flush=True)
        row = bench_alphacut(model, data, repeat, "auto")
        if sessions:
            from rembg import remove as rembg_remove

            def reference(session: Any = sessions[model]) -> object:
                return rembg_remove(data, session=session)

            row["rembg"] = median_seconds(reference, repeat)
        theirs = f", rembg {row['rembg']:.3f} s" if "rembg" in row else ""
        print(f"  {row['total']:.3f} s end to end, bare pass {row['bare_model']:.3f} s{theirs}",
              flush=True)  # fmt: skip
        measured[model] = row
    return measured


# --- the table ---------------------------------------------------------------------------


def ratio_cell(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "-"


def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "-"
    return "PASS" if (value >= target if higher_is_better else value <= target) else "MISS"


def main() -> None:
    global HTTP_LIMIT_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and repeats")
    parser.add_argument("--skip-rembg", action="store_true", help="measure alphacut alone")
    parser.add_argument("--soak", type=int, help="requests between the two RSS readings")
    parser.add_argument("--limit", type=float, default=HTTP_LIMIT_S, help="s per HTTP row")
    args = parser.parse_args()
    HTTP_LIMIT_S = args.limit
    quick = args.quick
    rounds = 1 if quick else 3
    small_jobs, large_jobs = (12, 4) if quick else (24, 8)
    soak = args.soak if args.soak is not None else (100 if quick else 2000)
    with_rembg = not args.skip_rembg
    if with_rembg and not Path(REMBG).exists():
        sys.exit("rembg's CLI is not installed: run `make bench-compare` (the bench extra)")

    started = time.monotonic()
    print(f"{datetime.date.today()} {cpu_name()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"{'quick' if quick else 'full'} run", flush=True)  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    print("bare model peak (bench/peak.py):", flush=True)
    peak = model_peak("fast", seconds=3.0 if quick else 8.0)
    for label, rate in peak["shapes"].items():
        print(f"  {label}: {rate:.2f} passes/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="alphacut-compare-") as tmp_name:
        tmp = Path(tmp_name)
        inputs = make_inputs(tmp, folder_size=20)
        print(f"inputs: small {describe(inputs['small'])}; large {describe(inputs['large'])}; "
              f"folder of 20 at 1 MP", flush=True)  # fmt: skip
        env_rembg = rembg_env(tmp)

        # HTTP: both servers up at once, rounds alternating between them.
        os.environ["ALPHACUT_LOAD_MODELS"] = '["fast"]'
        (tmp / "data").mkdir()
        server, base, key = start_server(tmp / "data", queue=8)
        servers: list[subprocess.Popen[Any]] = [server]
        limits = httpx.Limits(max_connections=16)
        try:
            ours = httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=300,
                                limits=limits)  # fmt: skip
            ours_small = alphacut_jobs(ours, key, inputs["small"])
            ours_small["ximilar"]()  # warm-up before the first RSS reading
            rss = {"alphacut_before": tree_rss_mb(server.pid)}
            calls_small = dict(ours_small)
            calls_large = dict(alphacut_jobs(ours, key, inputs["large"]))
            if with_rembg:
                rembg_server, rembg_base = start_rembg(env_rembg, tmp / "rembg-s.log")
                servers.append(rembg_server)
                theirs = httpx.Client(base_url=rembg_base, timeout=300, limits=limits)
                calls_small["rembg"] = rembg_job(theirs, inputs["small"])
                calls_large["rembg"] = rembg_job(theirs, inputs["large"])
            print("HTTP 480x360, 4 clients:", flush=True)
            results["small"] = measure_http(calls_small, small_jobs, 4, rounds)
            print("HTTP 12 MP, 2 clients:", flush=True)
            results["large"] = measure_http(calls_large, large_jobs, 2, rounds)
            if with_rembg:
                rss["rembg"] = tree_rss_mb(servers[1].pid)
                rss["rembg_peak"] = rss_mb(servers[1].pid, "VmHWM")
                stop(servers.pop())  # quiet during the soak and the CLI runs
            rss["alphacut_soak_start"] = tree_rss_mb(server.pid)
            print(f"RSS soak: {soak} more Ximilar jobs at 4 clients", flush=True)
            soaked = run_level(ours_small["ximilar"], soak, 4, HTTP_LIMIT_S * 4)
            rss["alphacut_after"] = tree_rss_mb(server.pid)
            rss["alphacut_peak"] = rss_mb(server.pid, "VmHWM")
            rss["soak_requests"] = soaked["requests"]
            rss["soak_errors"] = soaked["5xx"] + soaked["other_errors"]
        finally:
            ours.close()
            if with_rembg:
                theirs.close()
            for process in servers:
                stop(process)

        # CLI: whole commands, process start included.
        env: dict[str, dict[str, str] | None] = {"alphacut": None, "rembg": env_rembg}
        counter = iter(range(1_000_000))

        def out_dir(kind: str) -> str:
            path = tmp / f"out-{kind}-{next(counter)}"
            path.mkdir()
            return str(path)

        folder = str(inputs["folder"])
        large = str(tmp / "large.jpg")
        folder_commands: dict[str, Callable[[], list[str]]] = {
            "alphacut": lambda: [
                ALPHACUT,
                "remove",
                folder,
                "--out-dir",
                out_dir("folder"),
                "-m",
                "fast",
            ],
        }
        one_commands: dict[str, Callable[[], list[str]]] = {
            "alphacut": lambda: [
                ALPHACUT,
                "remove",
                large,
                "-o",
                out_dir("one") + "/o.png",
                "-m",
                "fast",
            ],
        }
        if with_rembg:
            folder_commands["rembg"] = lambda: [REMBG, "p", "-m", "u2netp", folder,
                                                out_dir("folder")]  # fmt: skip
            one_commands["rembg"] = lambda: [REMBG, "i", "-m", "u2netp", large,
                                             out_dir("one") + "/o.png"]  # fmt: skip
        print("folder of 20 x 1 MP, CLI:", flush=True)
        results["folder"] = measure_commands(folder_commands, rounds, env)
        print("one 12 MP photo, CLI:", flush=True)
        results["one"] = measure_commands(one_commands, rounds, env)
        for path in tmp.glob("out-*"):  # every command wrote every output, as PNG
            pngs = list(path.glob("*.png"))
            expected = 20 if path.name.startswith("out-folder") else 1
            if len(pngs) != expected or not all(is_png(png.read_bytes()[:8]) for png in pngs):
                sys.exit(f"{path.name}: {len(pngs)} PNG outputs, expected {expected}")
        version = [timed_command([ALPHACUT, "--version"]) for _ in range(3 if quick else 7)]
        results["version"] = {"alphacut": version}
        if with_rembg:
            rembg_version = [timed_command([REMBG, "--version"], env_rembg) for _ in range(3)]
            results["version"]["rembg"] = rembg_version

    inprocess = measure_in_process(repeat=3 if quick else 7, with_rembg=with_rembg)
    print_table(results, rss, peak, inprocess)
    print(f"\n({time.monotonic() - started:.0f} s; load average now "
          f"{os.getloadavg()[0]:.2f}: other work on the machine skews every number)")  # fmt: skip


def print_table(
    results: dict[str, dict[str, list[float]]],
    rss: dict[str, float],
    peak: dict[str, Any],
    inprocess: dict[str, dict[str, float]],
) -> None:
    """Medians; a ratio is the median of the rounds' ratios (each round measured both sides
    back to back, so that the machine's drift cancels out in it). Each row: alphacut, the
    bare model's figure for the same work, the ratio to it, rembg's, the ratio to it, the
    target and PASS/MISS."""

    def get(row: str, who: str) -> float | None:
        runs = results[row].get(who)
        return statistics.median(runs) if runs else None

    def ratio(row: str, who: str) -> float | None:
        ours, theirs = results[row].get(who), results[row].get("rembg")
        if not ours or not theirs:
            return None
        return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))

    def number(value: float | None, unit: str = "", digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}{unit}"

    rate, pass_s = peak["peak"], peak["pass_s"]
    rows: list[list[str]] = []
    for row, label, clients in (("small", "HTTP 480x360 fast", 4), ("large", "HTTP 12 MP fast", 2)):
        ximilar, images = get(row, "ximilar"), get(row, "images")
        worst = min(value for value in (ximilar, images) if value is not None)
        by_x, by_i = ratio(row, "ximilar"), ratio(row, "images")
        worst_by_rembg = min(by_x, by_i) if by_x and by_i else None
        if row == "small":
            target, passed = ">= 0.90x bare peak", worst / rate >= 0.90
        else:
            target = ">= 1.5x `rembg s`"
            passed = worst_by_rembg is not None and worst_by_rembg >= 1.5
        rows.append([
            f"{label}, {clients} clients: jobs/s",
            f"{ximilar:.2f} (Ximilar path), {images:.2f} (images API)",
            f"{rate:.2f} passes/s", f"{worst / rate:.2f}x",
            number(get(row, "rembg")), f"{ratio_cell(by_x)}, {ratio_cell(by_i)}",
            target, "PASS" if passed else "MISS",
        ])  # fmt: skip
    ours, theirs = get("folder", "alphacut"), get("folder", "rembg")
    model_time = 20 / rate
    assert ours is not None
    rows.append([
        "folder of 20 x 1 MP fast, CLI: wall time, process start included", f"{ours:.2f} s",
        f"{model_time:.2f} s (20 passes)", f"{ours / model_time:.2f}x", number(theirs, " s"),
        ratio_cell(ratio("folder", "alphacut")), "<= 1.15x model + 0.5 s",
        "PASS" if ours <= 1.15 * model_time + 0.5 else "MISS",
    ])  # fmt: skip
    ours, theirs = get("one", "alphacut"), get("one", "rembg")
    by_rembg = ratio("one", "alphacut")
    assert ours is not None
    rows.append([
        "one 12 MP photo fast, CLI, process start included", f"{ours:.2f} s",
        f"{pass_s:.3f} s (1 pass)", f"{ours / pass_s:.1f}x", number(theirs, " s"),
        ratio_cell(by_rembg), "<= 0.40x `rembg i`",
        "-" if by_rembg is None else ("PASS" if by_rembg <= 0.40 else "MISS"),
    ])  # fmt: skip
    for model, target_label in (("precise", "<= 1.1 s"), ("fast", "<= 1.25x bare pass")):
        measured = inprocess[model]
        total, bare, rembg = measured["total"], measured["bare_model"], measured.get("rembg")
        passed = total <= 1.1 if model == "precise" else measured["total_over_bare"] <= 1.25
        rows.append([
            f"{model} 1 MP end to end, default refinement, in process", f"{total:.3f} s",
            f"{bare:.3f} s (1 pass)", f"{measured['total_over_bare']:.2f}x",
            number(rembg, " s", 3), ratio_cell(total / rembg if rembg else None), target_label,
            "PASS" if passed else "MISS",
        ])  # fmt: skip
    version, rembg_version = get("version", "alphacut"), get("version", "rembg")
    rows.append(["`alphacut --version`", f"{version:.2f} s", "-", "-",
                 number(rembg_version, " s"), "-", "<= 0.3 s",
                 verdict(version, 0.3, higher_is_better=False)])  # fmt: skip
    warm, before, after = rss["alphacut_before"], rss["alphacut_soak_start"], rss["alphacut_after"]
    flat = after - before <= max(20.0, 0.05 * before)
    theirs_rss = rss.get("rembg")
    rows.append([
        "service RSS with the fast model loaded",
        f"{warm:.0f} MB after warm-up; {before:.0f} MB after the benchmark's jobs and "
        f"{after:.0f} MB after {rss['soak_requests']:.0f} more ({rss['soak_errors']:.0f} "
        f"failed); peak {rss['alphacut_peak']:.0f} MB", "-", "-",
        f"{theirs_rss:.0f} MB (peak {rss['rembg_peak']:.0f})" if theirs_rss else "-",
        ratio_cell(after / theirs_rss if theirs_rss else None), "<= 400 MB, flat",
        "PASS" if after <= 400 and flat else "MISS",
    ])  # fmt: skip
    print()
    print(f"bare model: {peak['model']}, {peak['runtime']}, {peak['threads']} threads; peak "
          f"{rate:.2f} passes/s ({peak['best']}); one pass {pass_s:.3f} s")  # fmt: skip
    print()
    print("| measure | alphacut | bare model | / bare | rembg 2.0.86 | / rembg | target | |")
    print("|---|---|---|---|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
