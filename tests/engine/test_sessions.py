"""Execution providers, thread settings and the shared session cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphacut.config import Settings
from alphacut.engine import sessions
from alphacut.engine.sessions import DeviceUnavailableError, SessionCache
from alphacut.models.registry import MODELS


@pytest.fixture
def fast_path(settings: Settings) -> Path:
    return settings.model_dir / MODELS["fast"].filename


def test_cpu_is_used_without_a_gpu(fast_path: Path) -> None:
    loaded = SessionCache().get(fast_path, output=None, device="auto", threads=1)
    if "CUDAExecutionProvider" not in sessions.available_providers():
        assert loaded.providers == ("CPUExecutionProvider",)
    assert loaded.providers[-1] == "CPUExecutionProvider"


def test_cpu_can_be_forced(fast_path: Path) -> None:
    loaded = SessionCache().get(fast_path, output=None, device="cpu", threads=1)
    assert loaded.providers == ("CPUExecutionProvider",)


def test_cuda_is_chosen_when_onnxruntime_offers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sessions, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert sessions._providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert sessions._providers("cpu") == ["CPUExecutionProvider"]


def test_cuda_demanded_but_absent_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceUnavailableError, match="onnxruntime-gpu"):
        sessions._providers("cuda")


def test_thread_count_is_applied(fast_path: Path) -> None:
    loaded = SessionCache().get(fast_path, output=None, device="cpu", threads=3)
    options = loaded.session.get_session_options()
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1


def test_one_session_per_key_even_under_contention(fast_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cache = SessionCache()
    with ThreadPoolExecutor(8) as pool:
        loaded = list(
            pool.map(lambda _: cache.get(fast_path, output=None, device="cpu", threads=1), range(8))
        )
    assert all(item is loaded[0] for item in loaded)
    assert cache.get(fast_path, output=None, device="cpu", threads=2) is not loaded[0]
