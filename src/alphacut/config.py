"""The one settings object. Every field can be set from the environment as ``ALPHACUT_<NAME>``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from alphacut.engine.config import Device, EngineSettings, Runtime, usable_cpus
from alphacut.logs import LogFormat

__all__ = ["Device", "EngineSettings", "Runtime", "Settings", "get_settings"]


class Settings(EngineSettings):
    """alphacut's configuration, validated once at start-up: the engine's own settings
    (:class:`~alphacut.engine.config.EngineSettings`: models, runtime, threads, decoder
    limits) and the service's."""

    model_config = SettingsConfigDict(env_prefix="ALPHACUT_", extra="ignore", frozen=True)

    model_min_residency_seconds: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Seconds a model loaded for a request stays loaded before another chosen "
        "model may unload it; until then such a request is refused with 503 + Retry-After "
        "(no reload per request when clients alternate models). 0: unload at once, as LRU.",
    )
    model_loads_per_key_per_hour: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Most loads of models that are not configured (chosen per request) that "
        "one API key may cause in any hour; past it 429 + Retry-After. Per process: each "
        "worker of a fleet counts its own.",
    )
    # HTTP service --------------------------------------------------------------------------
    data_dir: Path = Field(
        Path("var"), description="All service state: the database and the image files."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL: SQLite (migrated at start-up) or "
        "postgresql+psycopg://user:password@host/db (migrated by `alphacut db upgrade`); "
        "default: SQLite at DATA_DIR/alphacut.db.",
    )
    blob_url: str | None = Field(
        None,
        description="Where image files are stored: file:///absolute/path, or "
        "s3://bucket/prefix on any S3-compatible store (endpoint and credentials from the "
        "standard AWS_* settings); default: DATA_DIR/blobs.",
    )
    blob_presigned_urls: bool = Field(
        False,
        description="Serve published (/p/) and result (/results/) files as a redirect (307) "
        "to a presigned URL of the S3 store instead of through alphacut (s3:// only).",
    )
    # Short on purpose: a presigned URL cannot be revoked (unpublishing, deleting or revoking
    # the key does not stop it) and anyone who sees it can pass it on; a redirect is followed
    # at once, so a minute is plenty. An hour at most (not S3's 7 days): see docs/operations.md.
    blob_presigned_seconds: int = Field(
        60,
        ge=1,
        le=3600,
        description="How long a presigned URL stays valid; it keeps working that long after "
        "the image is unpublished or deleted or its key revoked.",
    )
    blob_presigned_endpoint_url: str | None = Field(
        None,
        description="Public base URL presigned redirects point at (a proxy or CDN in front "
        "of the store), instead of AWS_ENDPOINT_URL, which anonymous viewers then never see.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the service at (for links); default: the request's.",
    )
    trust_forwarded_headers: bool = Field(
        False,
        description="Build links from X-Forwarded-Proto/-Host (only behind a proxy that sets "
        "them; a client could send its own otherwise).",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest image accepted by POST /v1/images/upload."
    )
    max_json_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON request body of the images API."
    )
    max_json_depth: int = Field(
        64, ge=2, le=1000, description="Deepest nesting of arrays/objects in a JSON body (400)."
    )
    max_json_values: int = Field(
        100_000, ge=100, description="Most values (items, members) in a JSON body (then 400)."
    )
    rate_limit_per_minute: int | None = Field(
        None, ge=1, description="Requests per minute per API key; unset: no limit."
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate-limit counters live (a `limits` storage URL): memory:// "
        "(per process) or redis://:PASSWORD@host:port[/db] (shared by every replica; "
        "rediss:// for TLS).",
    )
    inference_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Background removals whose model passes run at the same time in this "
        "process (unset: the model's streams, ALPHACUT_INFERENCE_STREAMS: 1 on a small "
        "machine, one per 4 cores from 8 cores); `alphacut worker`: its processes (unset: 1).",
    )
    inference_queue: int = Field(
        8, ge=0, le=10_000, description="Removals that may wait; beyond this: 503."
    )
    inference_url: str | None = Field(
        None,
        description="Where removals run: unset: in this process; "
        "redis://:PASSWORD@host:port/db (rediss:// for TLS): on `alphacut worker` "
        "processes (Celery, with this Redis as broker and result store), "
        "which need the same blob store as the API (BLOB_URL or a shared DATA_DIR).",
    )
    fleet_queue_limit: int = Field(
        64,
        ge=0,
        le=100_000,
        description="Removals that may wait in the fleet's queue (INFERENCE_URL set); "
        "beyond this: 503.",
    )
    image_workers: int = Field(
        default_factory=usable_cpus,
        ge=1,
        le=256,
        description="Other image operations (decode, resize, encode...) run at the same time.",
    )
    image_queue: int = Field(
        32, ge=0, le=10_000, description="Image operations that may wait; beyond this: 503."
    )
    retry_after_seconds: int = Field(
        5,
        ge=1,
        le=3600,
        description="Retry-After sent with 503 (a queue full, a backend not answering).",
    )
    memory_budget_bytes: int | None = Field(
        None,
        ge=1,
        description="Memory that image work may hold at once (each job is costed from its "
        "pixel counts first; too big for it: 413); default: 70% of what the process may "
        "still use at start-up (RAM, cgroup limit or RLIMIT_AS, the smallest).",
    )
    memory_wait_seconds: float = Field(
        10.0, ge=0, le=600, description="How long a job waits for memory to free (then 503)."
    )
    fetch_timeout_seconds: float = Field(
        15.0,
        gt=0,
        le=300,
        description="Total time allowed to fetch an image from a URL: name resolution, "
        "connecting, TLS, headers and body, redirects included.",
    )
    fetch_max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed per fetch.")
    fetch_workers: int = Field(
        16,
        ge=1,
        le=1024,
        description="URL fetches at the same time, on their own threads (beyond: 503), so "
        "that slow origins cannot take the threads of requests that fetch nothing.",
    )
    fetch_trusted_origins: list[str] = Field(
        default_factory=list,
        description="host:port pairs that may be fetched even on private addresses.",
    )
    public_cache_seconds: int = Field(
        60, ge=0, description="Cache-Control max-age of published image URLs."
    )
    keep_metadata: bool = Field(
        False,
        description="Store uploads byte for byte, metadata included (EXIF GPS, camera serial, "
        "XMP, comments); default: strip it, keeping the pixels, ICC profile and orientation.",
    )
    # 100 MiB: room for the SQLite WAL (about 4 MiB at its steady state) and a few uploads in
    # flight at once (20 MiB each) after the last check passed; 0 turns the check off.
    min_free_bytes: int = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Free disk space kept in the data dir: writes under it answer 507, "
        "and /readyz says not ready.",
    )
    max_stored_bytes_per_key: int | None = Field(
        None, ge=1, description="Bytes of images one API key may store (then 403); unset: no quota."
    )

    request_timeout_seconds: float = Field(
        120.0, gt=0, description="Longest a removal or image operation may take (then 504)."
    )
    # Waits on a storage server: each bounded, so that one that stops answering costs a
    # request a 503 + Retry-After in seconds, never a hang (docs/operations.md, Stalls).
    database_connect_timeout_seconds: int = Field(
        5, ge=2, le=300, description="Longest wait to open a PostgreSQL connection (libpq's)."
    )
    database_statement_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="PostgreSQL's statement_timeout: the server cancels a longer statement.",
    )
    database_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Longest wait for any answer of the PostgreSQL server, then the "
        "connection is dropped (503); longer than the statement timeout.",
    )
    database_pool_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Longest wait for a free connection of the pool (then 503).",
    )
    blob_connect_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="Longest wait to connect to the S3 store, per try."
    )
    blob_read_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Longest wait for each answer (each chunk of one) of the S3 store, per try.",
    )
    blob_max_attempts: int = Field(
        2, ge=1, le=10, description="Tries of each S3 request, the first included."
    )
    readiness_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Longest /readyz waits for each check before it reports `error: timeout`.",
    )
    log_format: LogFormat = Field(
        "text",
        description="Log lines as `text` (uvicorn's format, the request id at the end) or "
        "`json` (one object a line: time, level, logger, message, request and key ids, "
        "route, status, durations), for the service, its access log and fleet workers.",
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Time a client has to send a request head (then the connection is closed).",
    )
    metrics: Literal["off", "loopback", "token"] = Field(
        "off",
        description="Who may read the Prometheus metrics at /metrics (and a worker node's "
        "port): off (404), loopback (this machine only, not through a proxy) or token "
        "(Authorization: Bearer ALPHACUT_METRICS_TOKEN).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        min_length=16,
        max_length=256,
        description="The bearer token scrapers send when ALPHACUT_METRICS=token (16-256 "
        "characters).",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        description="Address an `alphacut worker` node serves its metrics on (0.0.0.0 or :: "
        "for a scraper on another machine, with ALPHACUT_METRICS=token).",
    )
    worker_metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port of a worker node's /metrics (one per node; 0: any free port).",
    )
    removebg_max_records: int = Field(
        10, ge=1, le=1000, description="Records per Ximilar-style remove-background request."
    )
    max_batch_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest Ximilar-style request body (base64)."
    )
    result_ttl_seconds: int = Field(
        24 * 3600, ge=1, description="How long Ximilar-style output URLs stay valid."
    )
    sweep_interval_seconds: float = Field(
        300.0, gt=0, description="How often expired result files are deleted."
    )

    @field_validator("blob_presigned_endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value in ("", None):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s):// URL")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r}: an endpoint URL has no query or fragment")
        return value

    @model_validator(mode="after")
    def _metrics_token_set(self) -> Self:
        """Token mode without a token would be an endpoint no one, or anyone, could read."""
        if self.metrics == "token" and self.metrics_token is None:
            raise ValueError("ALPHACUT_METRICS=token needs ALPHACUT_METRICS_TOKEN")
        return self

    @model_validator(mode="after")
    def _backend_waits_fit(self) -> Self:
        """A backend that does not answer is given up on well within a request's limit."""
        if self.database_read_timeout_seconds <= self.database_statement_timeout_seconds:
            raise ValueError(
                "database_read_timeout_seconds must exceed database_statement_timeout_seconds "
                "(the server cancels a slow statement itself first)"
            )
        # Only the backends in use: a short request limit on SQLite and local files (tests,
        # a laptop) waits on no server.
        waits: dict[str, float] = {}
        if self.database_url and not self.database_url.startswith("sqlite"):
            waits[
                "database_pool_timeout_seconds + database_connect_timeout_seconds + "
                "database_read_timeout_seconds"
            ] = (
                self.database_pool_timeout_seconds
                + self.database_connect_timeout_seconds
                + self.database_read_timeout_seconds
            )
        if self.blob_url and self.blob_url.startswith("s3://"):
            waits[
                "blob_max_attempts x (blob_connect_timeout_seconds + blob_read_timeout_seconds)"
            ] = self.blob_max_attempts * (
                self.blob_connect_timeout_seconds + self.blob_read_timeout_seconds
            )
        for what, seconds in waits.items():
            if seconds >= self.request_timeout_seconds:
                raise ValueError(
                    f"{what} ({seconds:g} s) must be under request_timeout_seconds "
                    f"({self.request_timeout_seconds:g} s)"
                )
        return self

    @property
    def inference_slots(self) -> int:
        """Model passes this process runs at once: ``inference_workers``, else the model's
        streams (one pass per stream)."""
        return self.inference_workers or self.streams

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'alphacut.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
