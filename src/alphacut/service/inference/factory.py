"""The one place an :class:`~alphacut.service.inference.port.Inference` is made from settings."""

from __future__ import annotations

from alphacut.config import Settings
from alphacut.models.store import ModelStore
from alphacut.service.inference.local import LocalInference
from alphacut.service.inference.port import Inference, check_broker_url
from alphacut.service.memory import MemoryBudget
from alphacut.service.work import WorkQueue
from alphacut.storage.blobs import BlobStore


def open_inference(
    settings: Settings,
    blobs: BlobStore,
    image_queue: WorkQueue,
    inference_queue: WorkQueue,
    budget: MemoryBudget | None = None,
    store: ModelStore | None = None,
) -> Inference:
    """The implementation ``ALPHACUT_INFERENCE_URL`` names: unset, this process
    (:class:`~.local.LocalInference`); ``redis://host:port/db``, a Celery fleet of ``alphacut
    worker`` processes (:class:`~.celery_client.CeleryInference`)."""
    url = settings.inference_url
    if not url:
        return LocalInference(settings, blobs, image_queue, inference_queue, budget, store)
    check_broker_url(url)
    from alphacut.service.inference.celery_client import CeleryInference  # the fleet extra

    return CeleryInference(settings, blobs, url)
