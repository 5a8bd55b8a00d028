"""One id finds a request's whole path on a fleet: `alphacut serve` (a real replica, JSON
logs) and the workers (JSON logs) log its lines under the request's ``X-Request-ID``, and
Ximilar's ``request_id`` is the same id. The replica's model list and ``/readyz`` come from
the workers' reports."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from alphacut.service.keys import KeyService
from alphacut.storage.database import Database
from inferencefleet import Fleet
from servers import free_port

Line = dict[str, Any]


@contextmanager
def replica(fleet: Fleet, log: Path) -> Iterator[str]:
    """`alphacut serve` on the fleet in a subprocess, logging JSON to ``log``; its URL once
    it answers."""
    port = free_port()
    env = {
        **os.environ,
        "ALPHACUT_DATA_DIR": str(fleet.data_dir),
        "ALPHACUT_INFERENCE_URL": fleet.url,
        "ALPHACUT_LOG_FORMAT": "json",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("alphacut")), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def json_lines(text: str) -> list[Line]:
    """Every log line that is a JSON object (Celery's banner and the printed key are not)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def lines_of(lines: list[Line], request_id: str) -> list[Line]:
    return [line for line in lines if line.get("request_id") == request_id]


def test_one_id_finds_a_request_on_the_replica_and_the_worker(
    fleet: Any, photo: Path, tmp_path: Path
) -> None:
    if not isinstance(fleet, Fleet):
        pytest.skip("the script fleet's workers log text, in files of their own")
    log = tmp_path / "replica.log"
    with replica(fleet, log) as url:
        db = Database(f"sqlite:///{fleet.data_dir / 'alphacut.db'}")
        secret, key = KeyService(db).create("request ids on the fleet", "test")
        db.close()
        removal, ximilar = f"fleet-cut-{uuid.uuid4().hex}", f"fleet-x-{uuid.uuid4().hex}"
        with httpx.Client(base_url=url, headers={"x-api-key": secret}, timeout=120) as api:
            image = api.post(
                "/v1/images/upload", data={"name": "car"}, files={"image": photo.read_bytes()}
            ).json()
            cut = api.post(
                f"/v1/images/{image['id']}/remove-background",
                json={"model": "fast"},
                headers={"X-Request-ID": removal},
            )
            assert cut.status_code == 201, cut.text
            assert cut.headers["x-request-id"] == removal
            record = {"_base64": base64.b64encode(photo.read_bytes()).decode()}
            batch = api.post(
                "/removebg/fast/removebg",
                json={"records": [record, record]},
                headers={"Authorization": f"Token {secret}", "X-Request-ID": ximilar},
            )
            body = batch.json()
            assert batch.status_code == 200, body
            listed = api.get("/v1/models").json()
            ready = httpx.get(f"{url}/readyz").json()
    # Ximilar's request_id is the request's id, in its status and in each record's
    assert batch.headers["x-request-id"] == body["status"]["request_id"] == ximilar
    assert [r["_status"]["request_id"] for r in body["records"]] == [ximilar, ximilar]
    assert all(r["_status"]["code"] == 200 for r in body["records"])

    served, worked = json_lines(log.read_text()), json_lines(fleet.log_text())
    assert served and worked
    # uvicorn's own lines and Celery's are JSON too
    assert any(x["logger"] == "uvicorn.error" for x in served)
    assert any(x["logger"].startswith("celery") for x in worked)
    # The replica: its request line and uvicorn's access line, under the id
    (request,) = [x for x in lines_of(served, removal) if x["logger"] == "alphacut.request"]
    assert request["route"] == "/v1/images/{image_id}/remove-background"
    assert request["status"] == 201 and request["key_id"] == key.id
    assert {"decode", "inference", "encode"} <= set(request["stages_ms"])  # the worker's
    (access,) = [x for x in lines_of(served, removal) if x["logger"] == "uvicorn.access"]
    assert access["status"] == 201 and access["path"].endswith("/remove-background")
    # The worker: the job's line, under the same id, with the key's id
    (job,) = [x for x in lines_of(worked, removal) if x["logger"] == "alphacut.worker"]
    assert job["status"] == 200 and job["model"] == "fast" and job["key_id"] == key.id
    assert re.fullmatch(r"[0-9a-f]{32}", job["job_id"])
    assert job["stages_ms"]["inference"] > 0
    # Ximilar's two records: two jobs, each under the batch's id
    jobs = [x for x in lines_of(worked, ximilar) if x["logger"] == "alphacut.worker"]
    assert len(jobs) == 2 and len({x["job_id"] for x in jobs}) == 2
    # Nothing secret in any line
    everything = log.read_text() + fleet.log_text()
    password = urlsplit(fleet.url).password
    assert password and password not in everything
    assert secret not in everything

    # The model list and readiness, from the workers' reports
    installed = {spec.name for spec in fleet.settings().model_store().installed()}
    assert {"u2netp", "isnet-general-use"} <= installed
    assert {m["name"]: m["installed"] for m in listed["models"]} == {
        m["name"]: m["name"] in installed for m in listed["models"]
    }
    assert ready["models"], ready
    assert all(
        re.fullmatch(r"(openvino|onnxruntime) \w+ cpu \[\w+\]", v) for v in ready["models"].values()
    )
