"""The one start-up check that ``alphacut serve``, ``alphacut worker`` and the app itself run:
a setting that can never work is said once, in one line, before anything starts, instead of
failing every request (or a worker's start in a traceback).

Messages never repeat a URL: the broker's and the rate-limit store's carry passwords.
"""

from __future__ import annotations

import logging

from alphacut.config import Settings
from alphacut.engine.pipeline import check_refine
from alphacut.engine.sessions import onnx, resolve_runtime
from alphacut.errors import AlphacutError
from alphacut.models.registry import CATALOGUE
from alphacut.models.store import ModelStatus, ModelStore
from alphacut.service.inference.port import check_broker_url
from alphacut.storage.factory import open_blob_store

log = logging.getLogger(__name__)

_RATE_LIMIT_SCHEMES = ("memory", "redis", "rediss")


class SettingsError(AlphacutError):
    """A setting the service cannot start with."""

    status = 500
    code = "bad_settings"


def check_startup(settings: Settings, store: ModelStore, *, runs_models: bool = True) -> None:
    """Raise :class:`AlphacutError` (one line for people) for a setting that cannot work:
    a refinement a configured model cannot honour, a blob URL that names no usable store, a
    broker or rate-limit URL of a kind alphacut does not speak, and, where this process runs
    the models (``runs_models``: not an API replica of a fleet), a device it cannot use;
    warn of a model run in bf16 on the operator's word only."""
    check_refine(settings, store)
    if runs_models:
        check_device(settings, store)
        warn_unproven_bf16(settings)
    open_blob_store(settings)
    if settings.inference_url:
        check_broker_url(settings.inference_url)
    if _scheme(settings.rate_limit_storage) not in _RATE_LIMIT_SCHEMES:
        raise SettingsError(
            "ALPHACUT_RATE_LIMIT_STORAGE must be memory:// or redis://[:password@]host:port "
            "(rediss:// for TLS)"
        )


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def check_device(settings: Settings, store: ModelStore) -> None:
    """``ALPHACUT_DEVICE=cuda`` where CUDA does not work is an error at start-up, never a
    quiet fall back to the CPU: the runtime must allow it, onnxruntime must have its CUDA
    provider, and (with the fast model installed) a session must start on it."""
    if settings.device != "cuda":
        return
    resolve_runtime(settings.runtime, "cuda")  # openvino + cuda: an error
    onnx.providers("cuda")
    spec = store.spec("fast")
    if store.status(spec) is ModelStatus.INSTALLED:
        onnx.check_cuda(store.path(spec))


def warn_unproven_bf16(settings: Settings) -> None:
    """A warning for each model set to bf16 that was never measured to keep its masks in
    bf16, until a measurement (``alphacut eval --runtime``) clears it in the catalogue."""
    for name in settings.model_precision:
        model = settings.model_aliases.get(name, name)
        if settings.precision_for(model) == "bf16" and not CATALOGUE[model].bf16:
            log.warning(
                "model %s runs in bf16 (ALPHACUT_MODEL_PRECISION) where the CPU has native "
                "bf16, but bf16 was never measured to keep its masks: check it on your photos "
                "with `alphacut eval FOLDER -m %s --runtime openvino-fp32 --runtime "
                "openvino-bf16` (docs/performance.md)",
                model,
                model,
            )
