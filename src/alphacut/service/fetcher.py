"""URL fetches on a bounded pool of their own.

A fetch is slow I/O that the client controls (the origin it names may answer as slowly as
it likes, up to the fetch deadline). Running fetches on the request threads would let a few
dozen slow origins take every thread and stall requests that fetch nothing; here they take
at most ``ALPHACUT_FETCH_WORKERS`` threads of this pool, and a fetch that finds them all busy
is refused at once (503 + Retry-After).
"""

from __future__ import annotations

from alphacut.config import Settings
from alphacut.fetch import FetchPolicy, fetch
from alphacut.service.work import WorkQueue

# Beyond the fetch's own deadline, the caller waits this long for it (the fetch ends by its
# deadline; this only guards against a bug there).
_GRACE_S = 5.0


class UrlFetcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = WorkQueue(
            "fetch",
            settings.fetch_workers,
            0,
            settings.retry_after_seconds,
            settings.fetch_timeout_seconds + _GRACE_S,
        )

    def fetch(
        self, url: str, max_bytes: int, *, wait: float | None = None, within: float | None = None
    ) -> bytes:
        """The body at ``url`` (see :func:`alphacut.fetch.fetch`), at most ``max_bytes``.
        ``wait``: seconds it may wait for a fetch slot (None: refused at once when all are
        busy); ``within``: seconds it may take at most (never more than the fetch timeout)."""
        timeout = self.settings.fetch_timeout_seconds
        policy = FetchPolicy(
            max_bytes=max_bytes,
            timeout=timeout if within is None else max(0.001, min(timeout, within)),
            max_redirects=self.settings.fetch_max_redirects,
            trusted_origins=tuple(self.settings.fetch_trusted_origins),
        )
        return self.queue.run(lambda: fetch(url, policy), wait=wait)

    def shutdown(self) -> None:
        self.queue.shutdown()
