"""Worker nodes' reports through a real Redis: what a node writes, what a replica reads,
and reports that are not what a worker writes left out, bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from alphacut.service.inference import reports
from alphacut.service.inference.reports import REPORT_PREFIX, RUNTIMES_PREFIX, WorkerReport
from fleetservers import redis_server


@pytest.fixture(scope="module")
def broker() -> Iterator[redis.Redis]:
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


@pytest.fixture(autouse=True)
def empty(broker: redis.Redis) -> None:
    broker.flushall()


def test_a_nodes_report_reaches_the_replicas(broker: redis.Redis) -> None:
    reports.publish(broker, "boot1", ["u2netp", "isnet-general-use"])
    assert reports.collect(broker) == [WorkerReport(frozenset({"u2netp", "isnet-general-use"}))]
    runtimes = {"u2netp.onnx": "openvino fp32 cpu [CPU]"}
    reports.publish_runtimes(broker, "boot1", runtimes)
    (report,) = reports.collect(broker)
    assert report.runtimes == runtimes
    # both lapse with the node unless rewritten
    assert 0 < broker.ttl(REPORT_PREFIX + "boot1") <= reports.REPORT_TTL_S
    assert 0 < broker.ttl(RUNTIMES_PREFIX + "boot1") <= reports.REPORT_TTL_S
    reports.withdraw(broker, "boot1")  # a node that stops
    assert reports.collect(broker) == []
    assert not broker.exists(RUNTIMES_PREFIX + "boot1")


def test_a_model_is_installed_on_the_fleet_when_every_node_has_it(broker: redis.Redis) -> None:
    assert reports.installed_on_all(reports.collect(broker)) is None  # nobody has reported
    reports.publish(broker, "a", ["u2netp", "isnet-general-use", "birefnet-general"])
    reports.publish(broker, "b", ["u2netp", "isnet-general-use"])
    reports.publish_runtimes(broker, "a", {"u2netp.onnx": "onnxruntime fp32 cuda [X]"})
    reports.publish_runtimes(broker, "b", {"u2netp.onnx": "openvino fp32 cpu [CPU]"})
    found = reports.collect(broker)
    assert reports.installed_on_all(found) == {"u2netp", "isnet-general-use"}
    assert reports.runtimes_of(found) == {
        "u2netp.onnx": "onnxruntime fp32 cuda [X]; openvino fp32 cpu [CPU]"
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"installed": "u2netp"}',
        b'{"installed": ["u2netp", "../../etc/passwd"]}',
        b'{"installed": [1]}',
        json.dumps({"installed": ["u2netp"] * 1000}).encode(),
        b'{"installed": ["u2netp"], "pad": "' + b"x" * reports.MAX_REPORT_BYTES + b'"}',
    ],
    ids=lambda raw: raw[:40].decode(),
)
def test_a_report_a_worker_would_not_write_is_left_out(broker: redis.Redis, raw: bytes) -> None:
    reports.publish(broker, "good", ["u2netp"])
    broker.set(REPORT_PREFIX + "bad", raw)
    assert reports.collect(broker) == [WorkerReport(frozenset({"u2netp"}))]


@pytest.mark.parametrize(
    "runtimes",
    [
        {"u2netp.onnx": "line\nbreak"},
        {"u2netp.onnx": "\x1b[31m"},
        {"u2netp.onnx": "x" * 201},
        {"../u2netp.onnx": "openvino fp32 cpu"},
        {"u2netp.onnx": ""},
        {f"m{i}.onnx": "cpu" for i in range(reports.MAX_RUNTIMES + 1)},
    ],
    ids=lambda runtimes: repr(runtimes)[:40],
)
def test_runtimes_a_worker_would_not_write_are_left_out(
    broker: redis.Redis, runtimes: dict[str, str]
) -> None:
    reports.publish(broker, "bad", ["u2netp", "isnet-general-use"])
    broker.hset(RUNTIMES_PREFIX + "bad", mapping=runtimes)  # type: ignore[arg-type]
    reports.publish(broker, "good", ["u2netp"])
    assert reports.collect(broker) == [WorkerReport(frozenset({"u2netp"}))]
    if len(runtimes) <= reports.MAX_RUNTIMES:  # more: a worker writes the first ones only
        with pytest.raises(reports.BadReportError):
            reports.publish_runtimes(broker, "mine", runtimes)


def test_a_replica_reads_a_bounded_number_of_reports(broker: redis.Redis) -> None:
    pipe = broker.pipeline()
    for index in range(reports.MAX_NODES + 50):
        pipe.set(f"{REPORT_PREFIX}{index}", reports.encode(["u2netp"]), ex=60)
    pipe.execute()
    assert len(reports.collect(broker)) == reports.MAX_NODES
