"""`alphacut models install` and `alphacut models list`, run in-process (typer's CliRunner) so
that a catalogue entry can be pointed at a test stand-in: no test here reaches the internet."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from alphacut.cli import app
from alphacut.config import get_settings
from alphacut.models import registry
from alphacut.models.registry import (
    CATALOGUE,
    Checksum,
    ModelSpec,
    NpmChunkedSource,
    Recipe,
    UrlSource,
)
from servers import file_origin

MODEL = b"tiny onnx stand-in " * 4096  # the installer never parses the file


def _spec(name: str, *, acceptance: bool = False) -> ModelSpec:
    return ModelSpec(
        name=name, summary="test", architecture="test", recipe=Recipe(size=320),
        filename=f"{name}.onnx", size=len(MODEL),
        checksum=Checksum("sha256", hashlib.sha256(MODEL).hexdigest()),
        licence="CC BY-NC 4.0 (test weights)" if acceptance else "MIT (test)",
        commercial=not acceptance, needs_acceptance=acceptance,
        source=UrlSource(f"https://models.invalid/{name}-epoch_1.onnx"), upstream="test",
        quality="test", memory_mb=1, seconds=0.1,
    )  # fmt: skip


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """The CLI reads get_settings() (cached): fresh around each test, from its environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv("ALPHACUT_MODEL_DIR", str(folder))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):  # straight to the (absent) host
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return folder


def _stand_in(monkeypatch: pytest.MonkeyPatch, spec: ModelSpec) -> ModelSpec:
    monkeypatch.setitem(registry.CATALOGUE, spec.name, spec)
    return spec


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _said(result: Result) -> str:
    return " ".join(result.stderr.split())


def _onnx_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.onnx")) if folder.exists() else []


def test_install_without_network_says_so(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real entry, but a host that never resolves: robust on a machine that has internet.
    real = CATALOGUE["birefnet-general"]
    url = "https://models.invalid/" + real.source.describe().rpartition("/")[2]
    _stand_in(monkeypatch, dataclasses.replace(real, source=UrlSource(url)))
    result = invoke("models", "install", "birefnet-general")
    assert result.exit_code != 0
    said = _said(result)
    assert "no internet access" in said and "--from FILE" in said, said
    assert url in said
    assert _onnx_files(model_dir) == []
    assert not any(p.name.endswith(".download") for p in model_dir.iterdir())


def test_install_downloads_with_a_progress_bar(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with file_origin({"/release/tiny-url-epoch_1.onnx": MODEL}) as host:
        url = f"http://{host}/release/tiny-url-epoch_1.onnx"  # plain http: loopback only
        spec = _stand_in(monkeypatch, dataclasses.replace(_spec("tiny-url"), source=UrlSource(url)))
        result = invoke("models", "install", "tiny-url")
    assert result.exit_code == 0, result.stderr
    said = _said(result)
    assert f"tiny-url: downloading {url}" in said and "installed and verified" in said
    assert (model_dir / spec.filename).read_bytes() == MODEL
    assert sorted(p.name for p in model_dir.iterdir()) == [".install.lock", spec.filename]


def test_install_from_file(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _stand_in(monkeypatch, _spec("tiny-url"))
    fetched = tmp_path / "tiny-url-epoch_1.onnx"
    fetched.write_bytes(MODEL)
    result = invoke("models", "install", "tiny-url", "--from", str(fetched))
    assert result.exit_code == 0, result.stderr
    assert (model_dir / spec.filename).read_bytes() == MODEL
    assert "installed and verified" in _said(result)

    again = invoke("models", "install", "tiny-url")  # no --from, no network: already there
    assert again.exit_code == 0, again.stderr
    assert "already installed and verified" in _said(again)


def test_install_from_a_wrong_file_installs_nothing(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _stand_in(monkeypatch, _spec("tiny-url"))
    fetched = tmp_path / "tiny-url-epoch_1.onnx"
    fetched.write_bytes(MODEL[:-1])
    result = invoke("models", "install", "tiny-url", "--from", str(fetched))
    assert result.exit_code == 1
    assert "error:" in _said(result) and "expected" in _said(result)
    assert _onnx_files(model_dir) == []


def test_install_from_a_folder(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _stand_in(monkeypatch, _spec("tiny-url"))
    folder = tmp_path / "fetched"
    folder.mkdir()
    (folder / "tiny-url-epoch_1.onnx").write_bytes(MODEL)  # the upstream file name
    result = invoke("models", "install", "tiny-url", "--from", str(folder))
    assert result.exit_code == 0, result.stderr
    assert (model_dir / spec.filename).read_bytes() == MODEL


def test_a_licence_is_refused_without_a_terminal_or_the_flag(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _stand_in(monkeypatch, _spec("nc-model", acceptance=True))
    fetched = tmp_path / "nc-model.onnx"
    fetched.write_bytes(MODEL)
    result = invoke("models", "install", "nc-model", "--from", str(fetched))  # stdin: no TTY
    assert result.exit_code == 1
    said = _said(result)
    assert "CC BY-NC 4.0 (test weights)" in said and "--accept-licence" in said
    assert "was not accepted, so nothing was installed" in said
    assert _onnx_files(model_dir) == []


def test_accept_licence_installs(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _stand_in(monkeypatch, _spec("nc-model", acceptance=True))
    fetched = tmp_path / "nc-model.onnx"
    fetched.write_bytes(MODEL)
    result = invoke("models", "install", "nc-model", "--from", str(fetched), "--accept-licence")
    assert result.exit_code == 0, result.stderr
    assert "licence accepted (--accept-licence)" in _said(result)
    assert (model_dir / spec.filename).read_bytes() == MODEL


def test_an_unknown_model_is_refused(model_dir: Path) -> None:
    result = invoke("models", "install", "no-such-model")
    assert result.exit_code != 0
    assert "unknown model 'no-such-model'" in _said(result)


def _listing(result: Result) -> dict[str, dict[str, object]]:
    assert result.exit_code == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["models"]}


def test_models_list_json_shows_the_whole_catalogue(fresh_settings: None) -> None:
    """The real model directory, where make installs the two packaged models."""
    rows = _listing(invoke("models", "list", "--json"))
    assert list(rows) == list(CATALOGUE)
    assert rows["u2netp"]["aliases"] == ["fast"]
    assert rows["isnet-general-use"]["aliases"] == ["precise"]
    for name, row in rows.items():
        spec = CATALOGUE[name]
        packaged = name in ("u2netp", "isnet-general-use")
        assert row["status"] == ("installed" if packaged else "missing"), name
        if not packaged:
            assert row["aliases"] == [], name
        assert (row["size"], row["size_exact"]) == (spec.size, spec.size_exact)
        assert (row["licence"], row["commercial_use"]) == (spec.licence, spec.commercial)
        assert row["source"] == spec.source.describe()
        assert row["checksum"] == spec.checksum.describe()
    bria = rows["bria-rmbg-2.0"]
    assert bria["commercial_use"] is False and bria["needs_acceptance"] is True
    assert "non-commercial" in str(bria["licence"])
    assert rows["birefnet-general"]["commercial_use"] is True
    assert str(rows["birefnet-general"]["source"]).startswith("https://")


def test_models_list_json_in_an_empty_folder(model_dir: Path) -> None:
    rows = _listing(invoke("models", "list", "--json"))
    assert list(rows) == list(CATALOGUE)
    assert {row["status"] for row in rows.values()} == {"missing"}
    assert rows["u2netp"]["aliases"] == ["fast"]


def test_models_list_shows_an_installed_download(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _stand_in(monkeypatch, _spec("tiny-url"))
    fetched = tmp_path / "tiny.onnx"
    fetched.write_bytes(MODEL)
    assert invoke("models", "install", "tiny-url", "--from", str(fetched)).exit_code == 0
    rows = _listing(invoke("models", "list", "--json"))
    assert rows["tiny-url"]["status"] == "installed"
    assert rows["birefnet-general"]["status"] == "missing"


# A hostile resources.json in an npm tarball (issue 22, item 11) --------------------------


def _chunky_tarball(folder: Path, resources: bytes) -> None:
    import io
    import tarfile

    with tarfile.open(folder / "test-chunky-2.0.0.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("package/dist/resources.json")
        info.size = len(resources)
        tar.addfile(info, io.BytesIO(resources))


def _chunk(offsets: str) -> bytes:
    chunk = '{"hash": "' + "a" * 64 + '", "offsets": ' + offsets + "}"
    return ('{"/models/medium": {"chunks": [' + chunk + "]}}").encode()


@pytest.mark.parametrize(
    "resources",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError before
        _chunk("[0, 1e400]"),  # OverflowError (int(inf)) before
        _chunk("[0, " + "9" * 400 + "]"),
        _chunk('["0", "10"]'),
        _chunk("[true, 10]"),
        b'{"/models/medium": {"chunks": {"a": 1}}}',
        b'{"/models/medium": {"chunks": ["x"]}}',
        b"[1, 2]",
        b"\xff\xfe not json",
    ],
    ids=["deep", "1e400", "400-digits", "strings", "bool", "dict", "str-chunk", "list", "bytes"],
)
def test_a_hostile_resources_json_is_one_clear_line(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, resources: bytes
) -> None:
    spec = dataclasses.replace(
        _spec("chunky"), source=NpmChunkedSource("@test/chunky@2.0.0", "/models/medium")
    )
    _stand_in(monkeypatch, spec)
    folder = tmp_path / "artifacts"
    folder.mkdir()
    _chunky_tarball(folder, resources)
    result = invoke("models", "install", "chunky", "--from", str(folder))
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    said = result.stderr.strip()
    assert "Traceback" not in said and len(said.splitlines()) <= 2, said
    assert "test-chunky-2.0.0.tgz" in said or "resources.json" in said, said
    assert _onnx_files(model_dir) == []
