"""The fleet for these tests (see :mod:`inferencefleet`) and an API replica (in-process
uvicorn) with ``ALPHACUT_INFERENCE_URL`` pointing at it.

The ``server`` fixture here replaces the embedded one, so API tests imported into this
folder run unchanged against the fleet. Without redis-server the tests are skipped, and
under CI (``CI=true``) they fail (see :func:`fleetservers.unavailable`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alphacut.config import Settings
from api.conftest import api, key, upload  # the API suites' fixtures, for tests run here
from inferencefleet import Fleet, inference_fleet
from servers import Server, start_server

__all__ = ["api", "key", "upload"]


# `make test-fleet`: the fleet `scripts/fleet up` started (PostgreSQL, S3, Redis, workers,
# replicas), named by its state file; the replicas made here then share its database, bucket
# and broker. Unset (`make test`): a fleet of redis-server and workers started here.
SCRIPT_FLEET = os.environ.get("ALPHACUT_TEST_FLEET")


@dataclass
class ScriptFleet:
    """The fleet of ``scripts/fleet``, as the tests here use a fleet."""

    state: dict[str, Any]
    data_dir: Path

    @property
    def url(self) -> str:
        return f"{self.state['redis_url']}/0"

    @property
    def replicas(self) -> list[str]:
        return list(self.state["replicas"])

    @property
    def logs(self) -> Path:
        return Path(SCRIPT_FLEET or ".").parent / "logs"

    def log_text(self) -> str:
        """Every log of the fleet's processes (its replicas' and workers' among them)."""
        texts = (path.read_text(errors="replace") for path in sorted(self.logs.iterdir()))
        return "\n".join(texts)

    def settings(self, **overrides: object) -> Settings:
        values = {
            "data_dir": self.data_dir,
            "database_url": self.state["database_url"],
            "blob_url": "s3://alphacut/blobs",
            "inference_url": self.url,
            "rate_limit_storage": f"{self.state['redis_url']}/1",
            **overrides,
        }
        return Settings(**values)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet | ScriptFleet]:
    data_dir = tmp_path_factory.mktemp("fleet-data")
    if SCRIPT_FLEET:
        state = json.loads(Path(SCRIPT_FLEET).read_text())
        credentials = {
            "AWS_ACCESS_KEY_ID": "fleet",
            "AWS_SECRET_ACCESS_KEY": "fleet-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": state["s3_endpoint"],
        }
        with pytest.MonkeyPatch.context() as patch:
            for name, value in credentials.items():
                patch.setenv(name, value)
            yield ScriptFleet(state, data_dir)
        return
    logs = tmp_path_factory.mktemp("fleet-logs")
    try:
        # Workers log JSON lines here (ALPHACUT_LOG_FORMAT), as test_request_ids_on_fleet reads
        with inference_fleet(data_dir, logs, env={"ALPHACUT_LOG_FORMAT": "json"}) as made:
            yield made
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def make_server(fleet: Fleet | ScriptFleet) -> Iterator[Callable[..., Server]]:
    """API replicas on the fleet, as a fleet's replicas are: one database and one blob store
    shared by all (replaces the embedded servers of the suites run here)."""
    started: list[Server] = []

    def make(**overrides: object) -> Server:
        replica = start_server(fleet.settings(**overrides))
        started.append(replica)
        return replica

    yield make
    for replica in started:
        replica.stop()


@pytest.fixture(scope="session")
def server(make_server: Callable[..., Server]) -> Server:
    """An API replica whose removals run on the fleet."""
    return make_server()
