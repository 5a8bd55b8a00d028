"""The one settings object. Every field can be set from the environment as ``ALPHACUT_<NAME>``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ModelName = Literal["fast", "precise"]
Device = Literal["auto", "cpu", "cuda"]


def _default_model_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "alphacut" / "models"


class Settings(BaseSettings):
    """alphacut's configuration, validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="ALPHACUT_", extra="ignore", frozen=True)

    model_dir: Path = Field(
        default_factory=_default_model_dir,
        description="Directory holding the verified model weights.",
    )
    default_model: ModelName = Field("precise", description="Model used when none is named.")
    device: Device = Field(
        "auto", description="Execution device: auto (CUDA when available, else CPU), cpu, cuda."
    )
    inference_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="onnxruntime intra-op threads per model session.",
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
