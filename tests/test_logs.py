"""alphacut.logs: which request ids are taken from outside, the JSON lines, redaction, and
the request's context across the threads its work runs on."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import threading
import uuid
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from alphacut import logs
from alphacut.api.server import log_config
from alphacut.config import Settings
from alphacut.logs import LogFormat
from alphacut.service.work import WorkQueue


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "x" * 128,
        "req.2026_12_05-1",
    ],
)
def test_a_well_formed_id_is_kept(value: str) -> None:
    assert logs.valid_request_id(value)
    assert logs.request_id_from(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 129,
        "two words",
        "line\nbreak",
        "line\r\nX-Injected: 1",
        '"quoted"',
        "{}",
        "\x1b[31mred",
        "caf\xe9",
        "id\x00",
        "a/b",
        None,
        12,
    ],
    ids=repr,
)
def test_anything_else_is_replaced_by_a_new_uuid(value: object) -> None:
    assert not logs.valid_request_id(value)
    made = logs.request_id_from(value if isinstance(value, str) else None)
    assert made != value
    assert str(uuid.UUID(made)) == made  # Ximilar's form


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Lines of the ``alphacut.test`` logger, as the service writes them in JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RequestFields())
    logger = logging.getLogger("alphacut.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fields_and_the_request(captured: io.StringIO) -> None:
    logger = logging.getLogger("alphacut.test")
    logger.info("outside any request")
    with logs.bound("req-1", "key_abc"):
        logger.warning("done %s", "now", extra={"route": "/v1/images/{image_id}", "status": 201})
    outside, inside = _lines(captured)
    assert outside["request_id"] is None and outside["key_id"] is None
    assert inside["request_id"] == "req-1" and inside["key_id"] == "key_abc"
    assert inside["level"] == "WARNING" and inside["logger"] == "alphacut.test"
    assert inside["message"] == "done now"
    assert inside["route"] == "/v1/images/{image_id}" and inside["status"] == 201
    assert str(inside["time"]).endswith("+00:00")


def test_secrets_never_reach_a_line(captured: io.StringIO) -> None:
    logger = logging.getLogger("alphacut.test")
    token = "Abcdefghijklmnopqrstuvwxyz0123456789"  # noqa: S105 - a made-up one
    logger.info("broker redis://:hunter2hunter2@10.0.0.5:6379/0 and /p/%s", token)
    try:
        raise RuntimeError(
            f"cannot reach postgresql://alphacut:s3cret@db/alphacut /results/{token}"
        )
    except RuntimeError:
        logger.exception("failed")
    text = captured.getvalue()
    assert "hunter2" not in text and "s3cret" not in text and token not in text
    first, second = _lines(captured)
    assert first["message"] == "broker redis://***@10.0.0.5:6379/0 and /p/Abcd…"
    assert "RuntimeError" in str(second["exception"])


def test_a_line_never_breaks_in_two(captured: io.StringIO) -> None:
    logging.getLogger("alphacut.test").info('a\nforged line\r\n{"level": "ERROR"}')
    (line,) = _lines(captured)
    assert line["level"] == "INFO"


def test_the_key_is_found_once_the_request_is_authenticated(captured: io.StringIO) -> None:
    state: dict[str, str] = {}
    logger = logging.getLogger("alphacut.test")
    with logs.bound("req-2", key_from=lambda: state.get("key")):
        logger.info("before")
        state["key"] = "key_late"
        logger.info("after")
    before, after = _lines(captured)
    assert before["key_id"] is None and after["key_id"] == "key_late"


def test_work_queue_jobs_and_their_timings_belong_to_the_request(captured: io.StringIO) -> None:
    queue = WorkQueue("test", 2, 2, retry_after=1)
    logger = logging.getLogger("alphacut.test")
    try:
        with logs.bound("req-3") as context:

            def job() -> str:
                logger.info("in a worker thread")
                logs.add_timings({"decode": 0.25})
                return threading.current_thread().name

            ran_on = queue.run(job)
            queue.run(job)
        assert ran_on != threading.current_thread().name
        assert context.timings == {"decode": 0.5}
        assert [line["request_id"] for line in _lines(captured)] == ["req-3", "req-3"]
        queue.run(job)  # no request: no id, and nothing counted anywhere
        assert _lines(captured)[-1]["request_id"] is None
    finally:
        queue.shutdown()


def test_stages_per_request_are_bounded() -> None:
    context = logs.RequestContext("req-4")
    context.add_timings({f"stage{i}": 1.0 for i in range(logs.MAX_STAGES + 10)})
    context.add_timings({"stage0": 1.0})
    assert len(context.timings) == logs.MAX_STAGES
    assert context.timings["stage0"] == 2.0


def test_text_lines_carry_the_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    handler.addFilter(logs.RequestFields())
    record = logging.LogRecord(
        "alphacut.x", logging.INFO, __file__, 1, "at /p/%s", ("abcdefgh",), None
    )
    with logs.bound("req-5"):
        handler.handle(record)
    assert stream.getvalue().rstrip().endswith("INFO alphacut.x [req-5] at /p/abcd…")


@pytest.mark.parametrize("value", ["xml", "JSON ", ""])
def test_an_unknown_log_format_stops_the_start(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(log_format=value)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_uvicorns_lines_go_through_the_same_formatter(log_format: LogFormat) -> None:
    """The logging set-up `alphacut serve` hands uvicorn: its access and error lines and
    alphacut's, each with the request's id, in the format asked for."""
    config = log_config(log_format)
    stream = io.StringIO()
    for handler in config["handlers"].values():
        handler["stream"] = stream
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    logging.config.dictConfig(config)
    try:
        with logs.bound("req-6"):
            logging.getLogger("uvicorn.access").info(
                '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/p/secrettoken", "1.1", 200
            )
            logging.getLogger("alphacut.request").info("GET /p/{token} 200 in 1 ms")
            try:
                raise OSError("redis://:hunter2@10.1.2.3:6379 refused")
            except OSError:
                logging.getLogger("uvicorn.error").exception("lost redis://:hunter2@10.1.2.3")
    finally:
        logging.config.dictConfig(log_config("text"))
        root.handlers[:] = before[0]
        root.setLevel(before[1])
    text = stream.getvalue()
    assert "secrettoken" not in text and "hunter2" not in text and "redis://***@10.1.2.3" in text
    access, request = text.splitlines()[:2]
    if log_format == "json":
        assert json.loads(access)["path"] == "/p/secr…"
        assert json.loads(access)["request_id"] == json.loads(request)["request_id"] == "req-6"
    else:
        assert access.endswith('" 200 OK [req-6]') and request.endswith("1 ms [req-6]")
