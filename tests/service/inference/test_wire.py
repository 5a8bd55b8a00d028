"""The remote side of the inference port, without a fleet: jobs and errors on the wire, the
one factory, and the worker command's refusals (the fleet itself: tests/fleet/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alphacut.config import Settings
from alphacut.engine.effects import Effects, Length
from alphacut.engine.hints import Hints, Point
from alphacut.engine.outputs import Encoded, OutputSpec
from alphacut.errors import (
    AlphacutError,
    ImageTooLargeError,
    NotFoundError,
    ProcessingTimeoutError,
    ServiceBusyError,
)
from alphacut.service.inference.celery_client import CeleryInference
from alphacut.service.inference.factory import open_inference
from alphacut.service.inference.local import LocalInference
from alphacut.service.inference.port import InferenceJob, InferenceResult, InferenceUrlError
from alphacut.service.inference.wire import (
    error_from_payload,
    error_payload,
    job_from_payload,
    job_payload,
    output_keys,
    result_from_payload,
    result_payload,
)
from alphacut.service.work import OutOfMemoryError, WorkQueue
from alphacut.storage.blobs import LocalBlobStore, check_key


def test_a_job_crosses_the_broker_as_json() -> None:
    job = InferenceJob(
        model="precise",
        outputs=(OutputSpec("cutout", "webp", 80), OutputSpec("background", "jpeg", 70, "#fff")),
        blob_key="images/ab/image_ab.png",
        refine="edges",
        effects=Effects(
            roi=(Length(1), Length(2, True), Length(90), Length(80, True)),
            semitransparency=False,
            crop=True,
            crop_margin=(Length(5, True), Length(10)),
            scale=0.5,
            position=(0.5, 1.0),
            shadow_opacity=30,
            background_color="#00ff00",
        ),
        max_pixels=250_000,
        pixels=1_000_000,
        queue_wait=300.0,
        hints=Hints(box=(1, 2, 300, 400), points=(Point(5, 6), Point(7, 8, "background"))),
        base_blob_key="images/cd/image_cd.png",
        request_id="req-0123.abc_DEF",
    )
    payload = json.loads(json.dumps(job_payload(job, "images/ab/image_ab.png", 1234.5)))
    back, deadline = job_from_payload(payload)
    assert back == InferenceJob(**{**job.__dict__, "queue_wait": None})
    assert deadline == 1234.5
    keys = output_keys("0123abcd", job.outputs)
    assert keys == ["inference/0123abcd/0.webp", "inference/0123abcd/1.jpg"]
    assert all(check_key(key) for key in keys)


def test_a_background_image_crosses_as_a_blob_key() -> None:
    job = InferenceJob(
        model="fast", blob_key="images/ab/image_ab.png", effects=Effects(background_image=b"bg")
    )
    payload = json.loads(json.dumps(job_payload(job, "images/ab/image_ab.png", 1.0, "k/bg")))
    assert payload["effects"]["background_image"] is None  # the bytes stay off the broker
    assert payload["background_key"] == "k/bg"
    read: list[str] = []

    def blob(key: str) -> bytes:
        read.append(key)
        return b"bg"

    back, _ = job_from_payload(payload, blob)
    assert back == job and read == ["k/bg"]
    with pytest.raises(ValueError, match="background image"):
        job_from_payload(payload)


def test_a_result_comes_back_with_its_formats_subject_and_confidence() -> None:
    result = InferenceResult(
        (Encoded(b"png", "png"), Encoded(b"zip", "zip")),
        30,
        20,
        "u2netp",
        "edges",
        (1, 2, 3, 4),
        confidence=0.8123,
    )
    keys = ["inference/ab/0.png", "inference/ab/1.zip"]
    answer = json.loads(json.dumps(result_payload(result, keys)))
    stored = dict(zip(keys, (b"png", b"zip"), strict=True))
    assert result_from_payload(answer, stored.__getitem__) == result


@pytest.mark.parametrize("confidence", [1.5, -0.1, float("nan"), "high"])
def test_a_workers_confidence_outside_zero_to_one_is_refused(confidence: object) -> None:
    result = InferenceResult((Encoded(b"png", "png"),), 30, 20, "u2netp", "edges")
    answer = result_payload(result, ["inference/ab/0.png"]) | {"confidence": confidence}
    with pytest.raises(ValueError, match=r"confidence must"):
        result_from_payload(answer, lambda key: b"png")


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("the image was deleted"),
        ImageTooLargeError("too large"),
        ProcessingTimeoutError("late"),
        ServiceBusyError("busy", 7),
        OutOfMemoryError("no memory", 3),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_workers_error_comes_back_as_the_same_error(error: AlphacutError) -> None:
    back = error_from_payload(json.loads(json.dumps(error_payload(error))), 5)
    assert type(back) is type(error)
    assert (back.status, back.code, back.message) == (error.status, error.code, error.message)
    assert getattr(back, "retry_after", None) == getattr(error, "retry_after", None)


def test_an_unknown_error_keeps_its_status_and_code() -> None:
    payload = {"type": "Newer", "status": 418, "code": "teapot", "message": "short and stout"}
    back = error_from_payload(payload, 5)
    assert (back.status, back.code, back.message) == (418, "teapot", "short and stout")


def test_one_factory_picks_the_implementation(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    queues = (WorkQueue("image", 1, 1, 1), WorkQueue("inference", 1, 1, 1))
    try:
        local = open_inference(Settings(data_dir=tmp_path), blobs, *queues)
        assert isinstance(local, LocalInference)
        remote = open_inference(
            Settings(data_dir=tmp_path, inference_url="redis://127.0.0.1:1/0"), blobs, *queues
        )
        assert isinstance(remote, CeleryInference)
        assert remote.busy(), "an unreachable broker takes no job"
        assert remote.readiness() == "inference broker unreachable"
        remote.shutdown()
        with pytest.raises(InferenceUrlError, match="redis://") as caught:
            open_inference(
                Settings(data_dir=tmp_path, inference_url="amqp://user:secret@host//"),
                blobs,
                *queues,
            )
        assert "secret" not in caught.value.message
    finally:
        for queue in queues:
            queue.shutdown()


def test_worker_needs_the_broker_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALPHACUT_INFERENCE_URL"}
    env["ALPHACUT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("alphacut")), "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "ALPHACUT_INFERENCE_URL is not set" in done.stderr


@pytest.mark.parametrize(
    "change",
    [
        {"effects": {"scale": 40}},
        {"effects": {"semitransparency": "false"}},
        {"effects": {"crop_margin": [{"value": 1, "relative": False}] * 3}},
        {"effects": {"roi": [{"value": float("inf"), "relative": False}] * 4}},
        {"effects": {"position": [1e300, 0.5]}},
        {"effects": {"crop_margin": [{"value": -5, "relative": False}]}},
        {"effects": {"shadow_opacity": 1000}},
        {"outputs": [{"kind": "everything", "format": "png"}]},
        {"outputs": [{"kind": "cutout", "format": "gif"}]},
        {"outputs": [{"kind": "cutout", "format": "png"}] * 100},
        {"outputs": []},
        {"hints": {"points": [[1, 2, "maybe"]]}},
        {"hints": {"points": [[1.5, 2, "subject"]]}},
        {"hints": {"points": [[1, 2, "subject"]] * 101}},
        {"hints": {"box": [5, 5, 1, 1]}},
        {"hints": {"box": [0, 0, float("nan"), 4]}},
        {"request_id": "two words"},
        {"request_id": "id\nforged log line"},
        {"request_id": "x" * 129},
        {"request_id": ""},
        {"request_id": 12345},
        {"request_id": ["a"]},
    ],
    ids=lambda change: json.dumps(change)[:48],
)
def test_a_job_from_the_broker_gets_the_dialects_checks(change: dict[str, Any]) -> None:
    """Values a dialect would refuse are refused when a job is read from the broker too, as
    a 400 for the replica, never a worker's crash or an unbounded image (review of issue
    23: scale 40 made a 4000x4000 intermediate of a 200x100 cut-out)."""
    job = InferenceJob(model="fast", blob_key="images/ab/image_ab.png")
    payload = json.loads(json.dumps(job_payload(job, "images/ab/image_ab.png", 1.0)))
    for name, value in change.items():
        payload[name] = {**payload[name], **value} if isinstance(value, dict) else value
    with pytest.raises(AlphacutError) as refused:
        job_from_payload(payload)
    assert refused.value.status == 400


def test_a_worker_refuses_a_cuda_device_it_cannot_use(tmp_path: Path) -> None:
    """ALPHACUT_DEVICE=cuda on this CPU-only machine: one line naming what is missing, exit
    2, before the broker is ever reached (nothing listens at this URL)."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime here has its CUDA provider")
    env = {
        **os.environ,
        "ALPHACUT_DATA_DIR": str(tmp_path),
        "ALPHACUT_INFERENCE_URL": "redis://:pw@127.0.0.1:9/0",
        "ALPHACUT_DEVICE": "cuda",
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("alphacut")), "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "onnxruntime has no CUDA provider" in done.stderr
    assert "CPUExecutionProvider" in done.stderr  # what it has instead
    assert "Traceback" not in done.stderr
