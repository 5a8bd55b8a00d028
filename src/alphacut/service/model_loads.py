"""A per-key limit on the model loads requests cause (``ALPHACUT_MODEL_LOADS_PER_KEY_PER_HOUR``).

Loading a model chosen per request costs the server seconds of CPU and up to gigabytes of
memory, and the request that chose it caused it: past the limit the key is answered 429 +
``Retry-After`` (the seconds until its oldest load in the window is an hour old), as a rate
limit is, rather than 503, which says the server is busy for everyone. A sliding window of
load times per key, in memory, bounded in keys and in times per key.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from alphacut.errors import RateLimitedError
from alphacut.service import metrics

WINDOW_S = 3600.0
MAX_KEYS = 10_000  # keys tracked at once; the least recently charged is forgotten past it


class LoadLimiter:
    """At most ``per_window`` charges per key in any ``window`` seconds."""

    def __init__(
        self,
        per_window: int,
        *,
        window: float = WINDOW_S,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window = per_window
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._loads: OrderedDict[str, deque[float]] = OrderedDict()

    def charge(self, key: str | None) -> None:
        """Count one load for ``key`` (None: a caller without a key, counted together), or
        raise :class:`RateLimitedError` if it had its ``per_window`` already."""
        name = key or ""
        with self._lock:
            now = self._clock()
            times = self._loads.pop(name, None) or deque(maxlen=self.per_window)
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.per_window:
                self._loads[name] = times
                retry = max(1, math.ceil(times[0] + self.window - now))
                metrics.refused("model_loads")
                raise RateLimitedError(
                    f"this key has caused {self.per_window} model loads in the last "
                    f"{self.window / 60:g} minutes (ALPHACUT_MODEL_LOADS_PER_KEY_PER_HOUR); "
                    f"retry in {retry} s or choose a model that is loaded",
                    retry,
                )
            times.append(now)
            self._loads[name] = times  # most recently charged last
            while len(self._loads) > self.max_keys:
                self._loads.popitem(last=False)
