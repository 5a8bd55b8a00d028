"""An inference fleet on loopback for tests and benchmarks: Debian's redis-server (broker
and result store, with a password, via :func:`fleetservers.redis_server`) and ``alphacut
worker`` nodes as subprocesses, sharing one data dir (so the local blob store is the shared
one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alphacut.config import Settings
from alphacut.service.inference.wire import celery_app
from fleetservers import redis_server


@dataclass
class Fleet:
    url: str  # redis://:PASSWORD@127.0.0.1:PORT, the broker's
    data_dir: Path
    workers: list[subprocess.Popen[bytes]]
    logs: Path
    blob_url: str | None = None  # None: the local store under data_dir, shared on one machine
    env: Mapping[str, str] = field(default_factory=dict)  # the workers' own settings

    def settings(self, **overrides: object) -> Settings:
        values = {
            "data_dir": self.data_dir,
            "inference_url": self.url,
            "blob_url": self.blob_url,
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]

    def kill_node(self, index: int) -> None:
        """SIGKILL worker node ``index`` and its pool processes, as a lost machine, and
        start a new one in its place."""
        process = self.workers[index]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.workers[index] = _start_worker(
            self.url, self.data_dir, self.logs, index, self.blob_url, restart=True, env=self.env
        )
        wait_for_workers(self.url, len(self.workers))

    def log_text(self, tail: int | None = None) -> str:
        """Every worker's log (or the last ``tail`` characters of each)."""
        texts = (path.read_text(errors="replace") for path in sorted(self.logs.iterdir()))
        return "\n".join(text[-tail:] if tail else text for text in texts)


def _start_worker(
    url: str,
    data_dir: Path,
    logs: Path,
    index: int,
    blob_url: str | None = None,
    *,
    restart: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ALPHACUT_INFERENCE_URL": url,
        "ALPHACUT_DATA_DIR": str(data_dir),
        "ALPHACUT_INFERENCE_THREADS": "1",
        "ALPHACUT_IMAGE_WORKERS": "1",
        **(env or {}),
    }
    if blob_url:
        environment["ALPHACUT_BLOB_URL"] = blob_url
    exe = Path(sys.executable).with_name("alphacut")
    with (logs / f"worker-{index}.log").open("ab" if restart else "wb") as log:
        return subprocess.Popen(
            [str(exe), "worker", "--concurrency", "1", "--name", f"w{index}@fleet-test"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_workers(url: str, count: int, timeout: float = 90.0) -> None:
    app = celery_app(url, Settings())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5)
        if len(replies) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} inference workers did not answer within {timeout:g} s")


@contextmanager
def inference_fleet(
    data_dir: Path,
    logs: Path,
    workers: int = 2,
    blob_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Fleet]:
    """redis-server and ``workers`` worker nodes of one pool process each, ready; their
    blob store: ``blob_url`` (the AWS_* settings of the environment apply), else the local
    one under ``data_dir``; ``env``: more of their settings (``ALPHACUT_LOG_FORMAT``...)."""
    with redis_server() as url:
        started = [
            _start_worker(url, data_dir, logs, index, blob_url, env=env) for index in range(workers)
        ]
        made = Fleet(url, data_dir, started, logs, blob_url, dict(env or {}))
        try:
            try:
                wait_for_workers(url, workers)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{made.log_text(tail=3000)}") from None
            yield made
        finally:
            for process in started:  # the node and its pool processes: one session each
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in started:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
