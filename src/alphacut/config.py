"""The one settings object. Every field can be set from the environment as ``ALPHACUT_<NAME>``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alphacut.models.registry import CATALOGUE, DEFAULT_TARGETS

Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["auto", "onnxruntime", "openvino"]
Refine = Literal["auto", "none", "edges", "zoom", "consensus"]


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "alphacut"


def _default_model_dir() -> Path:
    return _cache_home() / "models"


def _default_compile_cache() -> Path:
    return _cache_home() / "compiled"


class Settings(BaseSettings):
    """alphacut's configuration, validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="ALPHACUT_", extra="ignore", frozen=True)

    model_dir: Path = Field(
        default_factory=_default_model_dir,
        description="Directory holding the verified model weights.",
    )
    fast_model: str = Field(
        DEFAULT_TARGETS["fast"],
        description="The catalogue model that the name `fast` stands for (alphacut models list).",
    )
    precise_model: str = Field(
        DEFAULT_TARGETS["precise"],
        description="The catalogue model that the name `precise` stands for.",
    )
    default_model: str = Field(
        "precise", description="Model used when none is named: fast, precise or a catalogue name."
    )
    load_models: list[str] = Field(
        default_factory=lambda: ["fast", "precise"],
        description="Models the service loads at start-up (/readyz is 503 until they are); "
        "others load on first use.",
    )
    max_loaded_models: int = Field(
        3,
        ge=1,
        le=64,
        description="Most model sessions kept loaded at once. The configured models (fast, "
        "precise, the default, those loaded at start-up, precise's checker) are never "
        "unloaded; a model chosen per request takes the room they leave, unloading the least "
        "recently used other one (large models take GBs each: docs/models.md).",
    )
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
    refine: Refine = Field(
        "auto",
        description="Refinement: auto (each model's measured best), none (one plain pass, "
        "as rembg), edges (alpha settled away from the edges, no halo of the old background), "
        "zoom (edges plus a second pass over the subject's box), consensus (edges plus a "
        "check by a second model; precise only).",
    )
    device: Device = Field(
        "auto", description="Execution device: auto (CUDA when available, else CPU), cpu, cuda."
    )
    runtime: Runtime = Field(
        "auto",
        description="Model runtime: auto (onnxruntime on CUDA where a GPU is used, else "
        "OpenVINO: bf16 for the models bf16 keeps where the CPU has native bf16 (AVX512_BF16 "
        "or AMX), else fp32), onnxruntime, or openvino (CPU only).",
    )
    compile_cache_dir: Path | None = Field(
        default_factory=_default_compile_cache,
        description="Where OpenVINO keeps the models it compiled for this CPU, so that the "
        "next process loads them instead of compiling again (a CLI run starts about 0.5 s "
        "sooner). Created private (0700); not used when others can write to it. Empty: no "
        "cache.",
    )
    inference_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="Threads per model session (onnxruntime intra-op threads, OpenVINO "
        "INFERENCE_NUM_THREADS).",
    )
    image_threads: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 8),
        ge=1,
        le=64,
        description="Threads used to resize and to PNG-encode one large image.",
    )
    png_compress_level: int = Field(
        3, ge=1, le=9, description="zlib level for PNG output (3: measured best speed/size)."
    )
    max_input_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="Largest accepted encoded input, in bytes."
    )
    max_input_pixels: int = Field(
        50_000_000, ge=1, description="Largest accepted input, in pixels (checked from the header)."
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
        "(per process) or redis://host:port (shared by every replica).",
    )
    inference_workers: int = Field(
        1, ge=1, le=64, description="Background removals run at the same time."
    )
    inference_queue: int = Field(
        8, ge=0, le=10_000, description="Removals that may wait; beyond this: 503."
    )
    inference_url: str | None = Field(
        None,
        description="Where removals run: unset: in this process; redis://host:port/db: on "
        "`alphacut worker` processes (Celery, with this Redis as broker and result store), "
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
        default_factory=lambda: os.cpu_count() or 1,
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
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Time a client has to send a request head (then the connection is closed).",
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

    @field_validator("compile_cache_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

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
    def _known_models(self) -> Self:
        targets = (("fast_model", self.fast_model), ("precise_model", self.precise_model))
        for setting, name in targets:
            if name not in CATALOGUE:
                raise ValueError(
                    f"{setting}={name!r} is not a catalogue model; choose one of: "
                    + ", ".join(CATALOGUE)
                )
        for name in (self.default_model, *self.load_models):
            if name not in CATALOGUE and name not in DEFAULT_TARGETS:
                raise ValueError(
                    f"unknown model {name!r}; choose fast, precise or one of: "
                    + ", ".join(CATALOGUE)
                )
        return self

    @model_validator(mode="after")
    def _backend_waits_fit(self) -> Self:
        """A backend that does not answer is given up on well within a request's limit."""
        if self.database_read_timeout_seconds <= self.database_statement_timeout_seconds:
            raise ValueError(
                "database_read_timeout_seconds must exceed database_statement_timeout_seconds "
                "(the server cancels a slow statement itself first)"
            )
        waits = {
            "database_pool_timeout_seconds + database_connect_timeout_seconds + "
            "database_read_timeout_seconds": self.database_pool_timeout_seconds
            + self.database_connect_timeout_seconds
            + self.database_read_timeout_seconds,
            "blob_max_attempts x (blob_connect_timeout_seconds + blob_read_timeout_seconds)": (
                self.blob_max_attempts
                * (self.blob_connect_timeout_seconds + self.blob_read_timeout_seconds)
            ),
        }
        for what, seconds in waits.items():
            if seconds >= self.request_timeout_seconds:
                raise ValueError(
                    f"{what} ({seconds:g} s) must be under request_timeout_seconds "
                    f"({self.request_timeout_seconds:g} s)"
                )
        return self

    @property
    def model_aliases(self) -> dict[str, str]:
        """What ``fast`` and ``precise`` stand for."""
        return {"fast": self.fast_model, "precise": self.precise_model}

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'alphacut.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
