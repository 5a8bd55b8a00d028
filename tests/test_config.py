"""Settings refused at start-up: waits on a backend that cannot fit in a request's limit, a
presigned URL lifetime past an hour, a public endpoint that is not a URL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alphacut.config import Settings

PG = "postgresql+psycopg://alphacut@127.0.0.1:5432/alphacut"
S3 = "s3://bucket/prefix"


def test_the_defaults_bound_every_backend_wait_inside_a_request() -> None:
    settings = Settings()
    database = (
        settings.database_pool_timeout_seconds
        + settings.database_connect_timeout_seconds
        + settings.database_read_timeout_seconds
    )
    store = settings.blob_max_attempts * (
        settings.blob_connect_timeout_seconds + settings.blob_read_timeout_seconds
    )
    assert database < settings.request_timeout_seconds / 4
    assert store < settings.request_timeout_seconds / 4
    assert settings.readiness_timeout_seconds <= 2
    assert settings.blob_presigned_seconds == 60


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"database_statement_timeout_seconds": 10, "database_read_timeout_seconds": 10},
         "must exceed database_statement_timeout_seconds"),
        ({"request_timeout_seconds": 15, "database_url": PG},
         "must be under request_timeout_seconds"),
        ({"blob_max_attempts": 10, "blob_read_timeout_seconds": 20, "blob_url": S3},
         "blob_max_attempts x"),
        ({"database_connect_timeout_seconds": 1}, "greater than or equal to 2"),
        ({"blob_presigned_seconds": 3601}, "less than or equal to 3600"),
        ({"blob_presigned_endpoint_url": "files.example.com"}, "not an http(s):// URL"),
        ({"blob_presigned_endpoint_url": "https://cdn.example.com/?x=1"}, "no query"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Settings(**values)


def test_an_empty_public_endpoint_means_none() -> None:
    assert Settings(blob_presigned_endpoint_url="").blob_presigned_endpoint_url is None


def test_a_short_request_limit_is_fine_where_no_server_is_waited_on() -> None:
    """SQLite and local files have no backend timeouts to fit (a one-second limit is what
    the deadline tests use); PostgreSQL's and S3's must fit."""
    assert Settings(request_timeout_seconds=1).request_timeout_seconds == 1
    with pytest.raises(ValidationError, match="must be under request_timeout_seconds"):
        Settings(request_timeout_seconds=1, database_url=PG)
    with pytest.raises(ValidationError, match="blob_max_attempts x"):
        Settings(request_timeout_seconds=1, blob_url=S3)


def test_a_blob_url_that_cannot_work_is_refused_without_repeating_it() -> None:
    from alphacut.errors import AlphacutError
    from alphacut.storage.factory import open_blob_store

    for url in ("https://AKIA:hunter2@minio.internal/bucket", "s3://"):
        with pytest.raises(AlphacutError) as refused:
            open_blob_store(Settings(blob_url=url))
        assert "hunter2" not in refused.value.message and "AKIA" not in refused.value.message


def test_precision_per_model_over_the_global_setting() -> None:
    settings = Settings(
        precision="fp32",
        model_precision={"precise": "auto", "birefnet-general": "bf16", "u2netp": "fp32"},
    )
    assert settings.precision_for(settings.precise_model) == "auto"  # by its alias
    assert settings.precision_for("birefnet-general") == "bf16"
    assert settings.precision_for("u2netp") == "fp32"
    assert settings.precision_for("bria-rmbg") == "fp32"  # the global setting
    # a model's own name wins over the alias that stands for it
    both = Settings(model_precision={"precise": "bf16", "isnet-general-use": "fp32"})
    assert both.precision_for("isnet-general-use") == "fp32"
    assert Settings().precision_for("u2netp") == "auto"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"precision": "bf16"}, "precision"),  # forcing bf16 everywhere is not offered
        ({"model_precision": {"nonesuch": "bf16"}}, "unknown model 'nonesuch'"),
        ({"model_precision": {"fast": "f16"}}, "model_precision"),
    ],
)
def test_precision_settings_refused(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(**values)


def test_an_unmeasured_model_in_bf16_is_warned_of_at_start_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from alphacut.service.startup import warn_unproven_bf16

    with caplog.at_level("WARNING", logger="alphacut.service.startup"):
        warn_unproven_bf16(Settings(model_precision={"birefnet-general": "bf16", "fast": "fp32"}))
    (record,) = caplog.records
    assert "birefnet-general runs in bf16" in record.getMessage()
    assert "alphacut eval FOLDER -m birefnet-general --runtime openvino-fp32" in record.getMessage()


def test_cuda_that_does_not_work_stops_the_start(tmp_path: Any) -> None:
    import onnxruntime

    from alphacut.engine.sessions import DeviceUnavailableError
    from alphacut.service.startup import check_device

    settings = Settings(device="cuda", model_dir=tmp_path)
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime here has its CUDA provider")
    with pytest.raises(DeviceUnavailableError, match="no CUDA provider"):
        check_device(settings, settings.model_store())
    with pytest.raises(DeviceUnavailableError, match="CPU only"):
        check_device(settings.model_copy(update={"runtime": "openvino"}), settings.model_store())
    check_device(Settings(device="cpu"), settings.model_store())  # nothing to check


def test_threads_default_to_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # taskset or a container's cpuset (affinity), and a cgroup v2 quota (docker --cpus),
    # not the host's count: threads beyond them only queue
    from alphacut.engine.config import usable_cpus

    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1, 2, 3, 4, 5}, raising=False)
    quota = tmp_path / "cpu.max"
    assert usable_cpus(quota) == 6  # no cgroup file
    quota.write_text("max 100000\n")
    assert usable_cpus(quota) == 6
    quota.write_text("250000 100000\n")  # 2.5 CPUs: rounded up
    assert usable_cpus(quota) == 3
    quota.write_text("50000 100000\n")
    assert usable_cpus(quota) == 1
    quota.write_text("garbage\n")
    assert usable_cpus(quota) == 6
    assert Settings().inference_threads == usable_cpus()
