"""The one start-up check that ``alphacut serve``, ``alphacut worker`` and the app itself run:
a setting that can never work is said once, in one line, before anything starts, instead of
failing every request (or a worker's start in a traceback).

Messages never repeat a URL: the broker's and the rate-limit store's carry passwords.
"""

from __future__ import annotations

from alphacut.config import Settings
from alphacut.engine.pipeline import check_refine
from alphacut.errors import AlphacutError
from alphacut.models.store import ModelStore
from alphacut.service.inference.port import check_broker_url
from alphacut.storage.factory import open_blob_store

_RATE_LIMIT_SCHEMES = ("memory", "redis", "rediss")


class SettingsError(AlphacutError):
    """A setting the service cannot start with."""

    status = 500
    code = "bad_settings"


def check_startup(settings: Settings, store: ModelStore) -> None:
    """Raise :class:`AlphacutError` (one line for people) for a setting that cannot work:
    a refinement a configured model cannot honour, a blob URL that names no usable store, a
    broker or rate-limit URL of a kind alphacut does not speak."""
    check_refine(settings, store)
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
