"""The inference fleet against the embedded mode, on this machine: images/s and latency of
``POST /v1/images/{id}/remove-background`` (``fast``, a 1 MP photo) through real HTTP.

Embedded: one API process running removals itself (``--slots`` at once, one onnxruntime
thread each). Fleet: an API replica sending them through Redis to ``--slots`` worker nodes
of one process each (one thread each): the same compute, plus the broker, the blob store
round trips and the result polling. At concurrency 1 the difference of the mean latencies
is the fleet's overhead per request. Batching is reported from the models' input shapes.

    .venv/bin/python bench/fleet.py [--requests 40] [--slots 2]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from PIL import Image  # noqa: E402

from alphacut.config import Settings  # noqa: E402
from inferencefleet import inference_fleet  # noqa: E402
from servers import Server, start_server  # noqa: E402


def photo_1mp() -> bytes:
    image = Image.open(REPO / "tests" / "fixtures" / "rembg" / "car-1.jpg").convert("RGB")
    image = image.resize((1155, 866), Image.Resampling.LANCZOS)  # 1.0 MP
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def measure(server: Server, requests: int, concurrency: int) -> dict[str, float]:
    key = server.new_key()
    with server.client(key) as api:
        uploaded = api.post(
            "/v1/images/upload", data={"name": "b"}, files={"image": ("b.jpg", photo_1mp())}
        )
        uploaded.raise_for_status()
        path = f"/v1/images/{uploaded.json()['id']}/remove-background"

        def one(_: int) -> float:
            started = time.perf_counter()
            response = api.post(path, json={"model": "fast"})
            if response.status_code != 201:
                raise RuntimeError(response.text)
            return time.perf_counter() - started

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(2 * concurrency)))  # warm-up
            started = time.perf_counter()
            latencies = sorted(pool.map(one, range(requests)))
            wall = time.perf_counter() - started
    return {
        "images/s": requests / wall,
        "mean ms": 1000 * statistics.fmean(latencies),
        "p50 ms": 1000 * latencies[len(latencies) // 2],
        "p95 ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
    }


def batch_dimensions(settings: Settings) -> dict[str, object]:
    import onnxruntime as ort

    shapes: dict[str, object] = {}
    for path in sorted(settings.model_dir.glob("*.onnx")):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shapes[path.stem] = session.get_inputs()[0].shape
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--slots", type=int, default=2, help="removals at once, both modes")
    args = parser.parse_args()
    os.environ["ALPHACUT_LOAD_MODELS"] = '["fast"]'
    common = {"inference_threads": 1, "load_models": ["fast"], "image_workers": args.slots}
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = start_server(
            Settings(data_dir=Path(tmp) / "embedded", inference_workers=args.slots, **common)
        )
        for concurrency in (1, 2 * args.slots):
            rows[f"embedded c={concurrency}"] = measure(embedded, args.requests, concurrency)
        embedded.stop()
        data, logs = Path(tmp) / "fleet", Path(tmp) / "logs"
        data.mkdir()
        logs.mkdir()
        with inference_fleet(data, logs, workers=args.slots) as fleet:
            replica = start_server(fleet.settings(**common))
            for concurrency in (1, 2 * args.slots):
                rows[f"fleet    c={concurrency}"] = measure(replica, args.requests, concurrency)
            replica.stop()
    print(f"cores: {os.cpu_count()}; {args.requests} requests of 1 MP `fast` per row")
    print(f"{'':16} {'images/s':>9} {'mean ms':>9} {'p50 ms':>9} {'p95 ms':>9}")
    for name, row in rows.items():
        print(f"{name:16} " + " ".join(f"{value:9.1f}" for value in row.values()))
    base, fleet_one = rows["embedded c=1"]["mean ms"], rows["fleet    c=1"]["mean ms"]
    overhead = f"{fleet_one - base:+.1f} ms ({fleet_one / base - 1:+.1%})"
    print(f"fleet overhead per request (c=1): {overhead}")
    print(f"model input shapes (batch dimension first): {batch_dimensions(Settings())}")


if __name__ == "__main__":
    main()
