"""What a loaded model says it runs on (asked of its session, not of the settings), and a
CUDA that cannot start refused by name, never a quiet fall back to the CPU. This machine has
no GPU: the refusals and the CPU's reports are real; where onnxruntime is told it has a CUDA
provider it lacks, the session it builds really runs on the CPU, and that is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphacut.config import Settings
from alphacut.engine import sessions
from alphacut.engine.sessions import DeviceUnavailableError, LoadSpec, SessionCache, onnx
from alphacut.service.doctor import model_runtimes
from alphacut.service.startup import check_device

pytestmark = pytest.mark.skipif(
    onnx.CUDA in onnx.available_providers(), reason="onnxruntime here has its CUDA provider"
)


@pytest.fixture(scope="module")
def fast_path(settings: Settings) -> Path:
    store = settings.model_store()
    return store.require("fast")


def test_onnxruntime_reports_its_execution_provider(fast_path: Path) -> None:
    for device in ("cpu", "auto"):
        spec = LoadSpec(path=fast_path, runtime="onnxruntime", device=device, threads=1)
        choice = sessions.load(spec).choice
        assert choice.providers == ("CPUExecutionProvider",), device
        assert choice.device == "cpu"
        assert choice.short() == "onnxruntime fp32 cpu [CPUExecutionProvider]"
        assert "[CPUExecutionProvider]" in choice.describe()


def test_openvino_reports_its_device(fast_path: Path) -> None:
    if sessions.openvino.core() is None:
        pytest.skip("openvino is not installed")
    spec = LoadSpec(path=fast_path, runtime="openvino", device="cpu", threads=1)
    choice = sessions.load(spec).choice
    assert choice.providers == ("CPU",)
    assert choice.short().startswith("openvino ") and choice.short().endswith(" cpu [CPU]")


def test_the_session_cache_reports_what_each_session_runs_on(fast_path: Path) -> None:
    cache = SessionCache()
    cache.get(LoadSpec(path=fast_path, runtime="onnxruntime", device="cpu", threads=1))
    assert cache.runtimes() == {fast_path.name: "onnxruntime fp32 cpu [CPUExecutionProvider]"}


def test_cuda_without_its_provider_is_refused_by_name(fast_path: Path, tmp_path: Path) -> None:
    spec = LoadSpec(path=fast_path, runtime="onnxruntime", device="cuda", threads=1)
    with pytest.raises(DeviceUnavailableError) as refused:
        sessions.load(spec)
    assert "onnxruntime has no CUDA provider" in refused.value.message
    assert "CPUExecutionProvider" in refused.value.message  # what it has instead
    settings = Settings(device="cuda", data_dir=tmp_path)
    with pytest.raises(DeviceUnavailableError, match="no CUDA provider"):
        check_device(settings, settings.model_store())
    runtimes = model_runtimes(settings, settings.model_store())
    assert runtimes and all(
        value.startswith("unavailable: device 'cuda'") for value in runtimes.values()
    ), runtimes


# onnxruntime (CPU build) warns that it has no such provider, as onnxruntime-gpu does not.
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_a_cuda_provider_that_falls_back_to_the_cpu_is_caught(
    fast_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime-gpu lists its CUDA provider on a machine where it cannot start, and then
    builds the session on the CPU: the session's own providers show it."""
    monkeypatch.setattr(onnx, "available_providers", lambda: [onnx.CUDA, onnx.CPU])
    cuda = LoadSpec(path=fast_path, runtime="onnxruntime", device="cuda", threads=1)
    with pytest.raises(DeviceUnavailableError) as refused:
        sessions.load(cuda)
    missing = onnx.missing_cuda_libraries()
    assert missing, "this machine has the CUDA libraries: the test expects none"
    assert f"libraries not found: {', '.join(missing)}" in refused.value.message
    # auto: a warning, and what it really runs on is said (CPU), never "cuda"
    auto = LoadSpec(path=fast_path, runtime="onnxruntime", device="auto", threads=1)
    choice = sessions.load(auto).choice
    assert choice.device == "cpu" and choice.providers == (onnx.CPU,)
    assert choice.reason == "CUDA failed to start"


def test_missing_libraries_are_asked_of_the_loader() -> None:
    assert onnx.missing_cuda_libraries(("libc.so.6", "libalphacut-no-such.so.1")) == [
        "libalphacut-no-such.so.1"
    ]


def test_doctor_names_what_each_model_runs_on(tmp_path: Path) -> None:
    settings = Settings(device="cpu", runtime="onnxruntime", data_dir=tmp_path)
    runtimes = model_runtimes(settings, settings.model_store())
    assert set(runtimes) == {"fast (u2netp)", "precise (isnet-general-use)"}
    assert all("onnxruntime fp32 on CPU [CPUExecutionProvider]" in v for v in runtimes.values())
