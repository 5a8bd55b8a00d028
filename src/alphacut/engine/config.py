"""The engine's own settings: the slice of the configuration it reads, and nothing else.

Every field is read from the environment as ``ALPHACUT_<NAME>`` (the service's
:class:`alphacut.config.Settings` extends this class with its own fields, so a field is
documented and validated once). The engine (``Remover``, ``Cutout``, the sessions) takes an
``EngineSettings``, never the service's settings; a library user may make one by hand
(``EngineSettings(device="cpu")``) or let the engine read the environment.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alphacut.engine.confidence import NO_SUBJECT_SHARE
from alphacut.models.registry import (
    AUTO_MODEL,
    CATALOGUE,
    DEFAULT_TARGETS,
    Refine,
    is_model_name,
    model_choices,
)
from alphacut.models.store import ModelStore

Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["auto", "onnxruntime", "openvino"]
# How a model's numbers are computed on a CPU with native bf16: auto (bf16 where it was measured
# to keep the model's masks, docs/performance.md), fp32 (always), bf16 (on the operator's word:
# for a model never measured here; a warning at start-up).
Precision = Literal["auto", "fp32", "bf16"]


LARGE_MODEL_MB = 400  # a session this large keeps one stream by default (see streams_for)


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity (``taskset``, a container's cpuset), and
    at most its cgroup v2 CPU quota (``docker --cpus``, a Kubernetes limit: ``cpu.max``),
    rounded up; ``os.cpu_count()`` counts the whole host, and threads beyond these only
    queue for them."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text("ascii").split()[:2]
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "alphacut"


def _default_model_dir() -> Path:
    return _cache_home() / "models"


def _default_compile_cache() -> Path:
    return _cache_home() / "compiled"


class EngineSettings(BaseSettings):
    """What the engine needs: where the models are and which to use, how to run them, the
    decoder's limits and the encoder's level. Validated once, when made."""

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
        "precise",
        description="Model used when none is named: auto (precise checked by its second "
        "model, U2-Netp, keeping that model's cut-out where the two disagree and it is the "
        "more decided), fast, precise or a catalogue name.",
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
    refine: Refine = Field(
        Refine.AUTO,
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
    precision: Literal["auto", "fp32"] = Field(
        "auto",
        description="Model precision on the CPU: auto (bf16 for the models measured to keep "
        "their masks in bf16, where the CPU has native bf16; fp32 elsewhere) or fp32 (always; "
        "slower, bit for bit the masks of earlier releases). `alphacut models list` shows each "
        "model's choice and why.",
    )
    model_precision: dict[str, Precision] = Field(
        default_factory=dict,
        description="Precision per model, over `precision`: a JSON object of model (fast, "
        "precise or a catalogue name) to auto, fp32 or bf16. bf16 opts a model that was "
        "never measured here (BiRefNet, BRIA, BEN2) into bf16 on a CPU with native bf16, with a "
        "warning at start-up: prove it first on your photos with `alphacut eval --runtime "
        "openvino-fp32 --runtime openvino-bf16` (docs/performance.md).",
    )
    compile_cache_dir: Path | None = Field(
        default_factory=_default_compile_cache,
        description="Where OpenVINO keeps the models it compiled for this CPU, so that the "
        "next process loads them instead of compiling again (a CLI run starts about 0.5 s "
        "sooner). Created private (0700); not used when others can write to it. Empty: no "
        "cache.",
    )
    inference_threads: int = Field(
        default_factory=usable_cpus,
        ge=1,
        le=256,
        description="Threads per model session (onnxruntime intra-op threads, OpenVINO "
        "INFERENCE_NUM_THREADS).",
    )
    inference_streams: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Model passes one session runs at once, sharing the inference threads "
        "(OpenVINO: a pass alone still gets every thread; passes that overlap run in this "
        "many streams; onnxruntime on the CPU: the threads split among the calls). Unset: 1 "
        "below 8 threads (on 2 cores 2 streams give U2-Netp 10% more jobs a second for 240 "
        "MB more memory), else one per 4 threads (a small model's pass does not scale to many "
        "threads; several at once keep every core busy); a model over 400 MB keeps one stream "
        "below 16 threads (a second compiled copy costs its memory again). "
        "The service runs as many removals at once (ALPHACUT_INFERENCE_WORKERS's default).",
    )
    image_threads: int = Field(
        default_factory=lambda: min(usable_cpus(), 8),
        ge=1,
        le=64,
        description="Threads used to resize and to PNG-encode one large image.",
    )
    png_compress_level: int = Field(
        3, ge=1, le=9, description="zlib level for PNG output (3: measured best speed/size)."
    )
    doubtful_below: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="A cut-out whose confidence (its estimated IoU, 0..1) is below this is "
        "marked doubtful: in the APIs' answers, the CLI's summary and report, the web page. "
        "0.7 flags one photo in five of davis345, four in five of them really under IoU 0.8, "
        "and 25 of its 40 cut-outs under IoU 0.5 (docs/quality.md: other values).",
    )
    no_subject_share: float = Field(
        NO_SUBJECT_SHARE,
        ge=0.0,
        le=0.5,
        description="A photo whose subject, as the model sees it (its raw output at or above "
        "one half; for auto: either model), covers less than this share of it is refused as "
        "having no subject (remove.bg's unknown_foreground), never answered with an empty "
        "cut-out. Measured for the two packaged models only. 0: never refuse.",
    )
    max_input_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="Largest accepted encoded input, in bytes."
    )
    max_input_pixels: int = Field(
        50_000_000, ge=1, description="Largest accepted input, in pixels (checked from the header)."
    )

    @field_validator("compile_cache_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

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
            if not is_model_name(name):
                raise ValueError(f"unknown model {name!r}; choose one of: {model_choices()}")
        for name in self.model_precision:
            if name not in CATALOGUE and name not in DEFAULT_TARGETS:
                raise ValueError(
                    f"model_precision names unknown model {name!r}; use fast, precise or one "
                    "of: " + ", ".join(CATALOGUE)
                )
        return self

    def precision_for(self, model: str) -> Precision:
        """The precision asked for the catalogue model ``model``: its own entry in
        ``model_precision`` (by name, else by the alias that stands for it), else
        ``precision``."""
        if model in self.model_precision:
            return self.model_precision[model]
        for alias, target in self.model_aliases.items():
            if target == model and alias in self.model_precision:
                return self.model_precision[alias]
        return self.precision

    @property
    def streams(self) -> int:
        """``inference_streams``, or its default for ``inference_threads``: the most model
        passes at once (the service's inference slots)."""
        if self.inference_streams is not None:
            return min(self.inference_streams, self.inference_threads)
        return 1 if self.inference_threads < 8 else self.inference_threads // 4

    def streams_for(self, memory_mb: int) -> int:
        """The streams of a model whose session takes ``memory_mb``: :attr:`streams`, except
        that by default a large model (over ``LARGE_MODEL_MB``) keeps one stream below 16
        threads: its second compiled copy costs its memory again for little (IS-Net on 2
        cores: +356 MB for 4% more passes a second; U2-Netp: +13% for a few MB)."""
        if self.inference_streams is None and memory_mb > LARGE_MODEL_MB:
            return 1 if self.inference_threads < 16 else self.streams
        return self.streams

    @property
    def model_aliases(self) -> dict[str, str]:
        """What ``fast`` and ``precise`` stand for."""
        return {"fast": self.fast_model, "precise": self.precise_model}

    def model_store(self) -> ModelStore:
        """The store of ``ALPHACUT_MODEL_DIR``, with fast and precise as these settings say.
        Each entry point (the CLI, the service, a worker) makes one and passes it on."""
        return ModelStore(self.model_dir, aliases=self.model_aliases)

    @property
    def configured_models(self) -> frozenset[str]:
        """The catalogue names the configuration uses: the targets of fast and precise, the
        default, the models loaded at start-up, and the models that check them
        (``consensus``). They are what ``models install`` fetches by default, what the
        service must have (503 if not), and their sessions are never unloaded for a model
        chosen per request."""
        return _configured(
            self.fast_model, self.precise_model, self.default_model, tuple(self.load_models)
        )


@functools.lru_cache(maxsize=8)
def _configured(fast: str, precise: str, default: str, load: tuple[str, ...]) -> frozenset[str]:
    aliases = {"fast": fast, "precise": precise, AUTO_MODEL: precise}
    names = {aliases.get(name, name) for name in ("fast", "precise", default, *load)}
    checkers = {CATALOGUE[name].checker for name in names}
    return frozenset(names | {checker for checker in checkers if checker})


@functools.lru_cache(maxsize=1)
def engine_settings() -> EngineSettings:
    """The engine settings of the environment, read on first use: what the library uses when
    it is given none (``Remover("fast")``, ``alphacut.remove(...)``)."""
    return EngineSettings()
