"""What each worker node of a fleet holds, told to the API replicas through Redis.

A replica has no model files (the workers do), so ``GET /v1/models`` and ``/readyz`` ask the
workers' reports: each node's main process keeps ``alphacut:report:<boot id>`` in Redis,
rewritten every :data:`REPORT_EVERY_S` seconds with a :data:`REPORT_TTL_S` expiry (a node
that stops or dies drops out by itself): the catalogue models installed and verified in its
model folder, and the runtime each model its pool processes loaded really runs on (they
write it to ``alphacut:runtimes:<boot id>``, one field per model file, as they load).

Why a report with an expiry rather than a Celery broadcast (``control.inspect``)? A
broadcast waits a fixed time for replies from an unknown number of nodes, on every call (a
``/v1/models`` would take that long, or need its own cache); a report is one read, answers
at once, and lapses with its node, as the liveness keys beside it do.

A report is data from the broker, a trust boundary: it is read bounded (at most
:data:`MAX_NODES` reports of :data:`MAX_REPORT_BYTES` each) and checked before use: model
names must be the catalogue's, runtime descriptions short printable text; a report that is
not is ignored, with a warning.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from alphacut.models.registry import CATALOGUE

log = logging.getLogger(__name__)

REPORT_PREFIX = "alphacut:report:"
RUNTIMES_PREFIX = "alphacut:runtimes:"
REPORT_TTL_S = 30
REPORT_EVERY_S = 10.0
MAX_NODES = 256  # reports read per look
MAX_REPORT_BYTES = 16 * 1024
MAX_RUNTIMES = 64  # model files per report
_MODEL_FILE = re.compile(r"[A-Za-z0-9._-]{1,100}")
_DESCRIPTION = re.compile(r"[ -~]{1,200}")  # printable ASCII: a line of a log, a JSON value


class BadReportError(ValueError):
    """A report that is not what a worker of this version writes."""


@dataclass(frozen=True)
class WorkerReport:
    """One node's: the catalogue models installed there, and each loaded model file's
    runtime (``u2netp.onnx`` -> ``openvino fp32 cpu [CPU]``)."""

    installed: frozenset[str]
    runtimes: Mapping[str, str] = field(default_factory=dict)


def encode(installed: Iterable[str]) -> str:
    return json.dumps({"installed": sorted(installed)})


def decode(
    raw: bytes | str, runtimes: Mapping[bytes | str, bytes | str] | None = None
) -> WorkerReport:
    """A report and its node's runtimes as read from Redis, checked; :class:`BadReportError`
    when they are not what a worker writes."""
    if len(raw) > MAX_REPORT_BYTES:
        raise BadReportError(f"a report is at most {MAX_REPORT_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadReportError("a report is JSON") from None
    if not isinstance(data, dict):
        raise BadReportError("a report is a JSON object")
    installed = data.get("installed")
    if not isinstance(installed, list) or len(installed) > len(CATALOGUE):
        raise BadReportError("installed: a list of catalogue model names")
    if not all(isinstance(name, str) and name in CATALOGUE for name in installed):
        raise BadReportError("installed: a list of catalogue model names")
    texts = {_text(name): _text(value) for name, value in (runtimes or {}).items()}
    return WorkerReport(frozenset(installed), check_runtimes(texts))


def check_runtimes(runtimes: Any) -> dict[str, str]:
    """Model file -> runtime description, each checked (:class:`BadReportError`)."""
    if not isinstance(runtimes, dict) or len(runtimes) > MAX_RUNTIMES:
        raise BadReportError(f"runtimes: an object of at most {MAX_RUNTIMES} entries")
    for name, description in runtimes.items():
        if not isinstance(name, str) or not _MODEL_FILE.fullmatch(name):
            raise BadReportError("runtimes: model file names of [A-Za-z0-9._-]")
        if not isinstance(description, str) or not _DESCRIPTION.fullmatch(description):
            raise BadReportError("runtimes: descriptions of printable text, 200 at most")
    return dict(runtimes)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# A worker's side -------------------------------------------------------------------------


def publish(client: redis.Redis, boot: str, installed: Iterable[str]) -> None:
    """Write this node's report (``boot``: its id) and keep it, and the runtimes its pool
    processes wrote, for :data:`REPORT_TTL_S` more seconds."""
    pipe = client.pipeline()
    pipe.set(REPORT_PREFIX + boot, encode(installed), ex=REPORT_TTL_S)
    pipe.expire(RUNTIMES_PREFIX + boot, REPORT_TTL_S)
    pipe.execute()


def withdraw(client: redis.Redis, boot: str) -> None:
    """A node that stops takes its report with it (one killed lets it lapse)."""
    client.delete(REPORT_PREFIX + boot, RUNTIMES_PREFIX + boot)


def publish_runtimes(client: redis.Redis, boot: str, runtimes: Mapping[str, str]) -> None:
    """A pool process's loaded models and what they run on, beside its node's report."""
    if runtimes:
        checked = check_runtimes(dict(list(runtimes.items())[:MAX_RUNTIMES]))
        pipe = client.pipeline()
        pipe.hset(RUNTIMES_PREFIX + boot, mapping=checked)  # type: ignore[arg-type]
        pipe.expire(RUNTIMES_PREFIX + boot, REPORT_TTL_S)
        pipe.execute()


# A replica's side ------------------------------------------------------------------------


def collect(client: redis.Redis) -> list[WorkerReport]:
    """The reports of the live nodes (at most :data:`MAX_NODES`), each with its runtimes
    (read only where there are at most :data:`MAX_RUNTIMES`), each checked; a bad one is
    left out, with a warning."""
    keys: list[bytes] = []
    for key in client.scan_iter(match=REPORT_PREFIX + "*", count=100):
        keys.append(key)
        if len(keys) >= MAX_NODES:
            break
    if not keys:
        return []
    boots = [_text(key).removeprefix(REPORT_PREFIX) for key in keys]
    pipe = client.pipeline()
    for boot in boots:
        pipe.hlen(RUNTIMES_PREFIX + boot)
    sizes = pipe.execute()
    pipe = client.pipeline()
    pipe.mget(keys)
    for boot, size in zip(boots, sizes, strict=True):
        if int(size) <= MAX_RUNTIMES:
            pipe.hgetall(RUNTIMES_PREFIX + boot)
    raws, *found = pipe.execute()
    runtimes = iter(found)
    reports = []
    for boot, raw, size in zip(boots, raws, sizes, strict=True):
        held = next(runtimes) if int(size) <= MAX_RUNTIMES else None
        if raw is None:  # expired between the scan and the read
            continue
        try:
            if held is None:
                raise BadReportError(f"more than {MAX_RUNTIMES} runtimes")
            reports.append(decode(raw, held))
        except BadReportError as exc:
            log.warning("the report of worker node %r was ignored: %s", boot[:40], exc)
    return reports


def installed_on_all(reports: list[WorkerReport]) -> set[str] | None:
    """The models every live node has (any node may take a job); None with no report."""
    if not reports:
        return None
    return set.intersection(*(set(report.installed) for report in reports))


def runtimes_of(reports: list[WorkerReport]) -> dict[str, str]:
    """Each model file the nodes loaded, and what it runs on there (several, ``; ``
    between, where the nodes differ: a GPU node beside CPU ones)."""
    found: dict[str, set[str]] = {}
    for report in reports:
        for name, description in report.runtimes.items():
            found.setdefault(name, set()).add(description)
    return {name: "; ".join(sorted(found[name])) for name in sorted(found)}
