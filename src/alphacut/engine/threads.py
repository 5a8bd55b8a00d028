"""Thread pools that split one image's work across cores: a resize in strips
(:mod:`~alphacut.engine.resize`), the foreground's tiles (:mod:`~alphacut.engine.foreground`),
a PNG in pieces (:mod:`~alphacut.engine.png`). One pool per purpose and size, made on first use
and kept for the process; their tasks never wait on other tasks of a pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache


@lru_cache(maxsize=16)
def pool(threads: int, purpose: str) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads for ``purpose`` (named in its threads)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"alphacut-{purpose}")
