"""Shared fixtures: real photos, the project's shared data, and the installed models.

rembg's four MIT-licensed test photos live in the repository (``tests/fixtures/rembg``), so
that a bare clone runs the engine, API, CLI and web tests. The shared data (``../shared``
beside the checkout, or ``ALPHACUT_SHARED_DIR``) holds what is too large or not ours to copy:
the evaluation set with hand-made masks and rembg's reference outputs; it is read in place.
The models are installed by ``make test`` before pytest runs; a test that needs a model and
finds it missing fails with the command to run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alphacut import Remover
from alphacut.config import Settings
from alphacut.engine.sessions import SESSIONS
from servers import Server, start_server

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path | None:
    candidates = [os.environ.get("ALPHACUT_SHARED_DIR"), REPO / "shared", REPO.parent / "shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "parity" / "rembg").is_dir():
            return Path(candidate)
    return None


SHARED = _find_shared()


@pytest.fixture(scope="session")
def shared() -> Path:
    if SHARED is None:
        pytest.skip("shared data not found: set ALPHACUT_SHARED_DIR or put it at ../shared")
    return SHARED


@pytest.fixture(scope="session")
def parity_dir(shared: Path) -> Path:
    return shared / "parity" / "rembg"


# rembg's MIT-licensed test photos, in the repository so that a bare clone runs the tests.
FIXTURES = REPO / "tests" / "fixtures" / "rembg"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """rembg's four test photos (anime-girl-1, car-1, cloth-1, plants-1 .jpg)."""
    return FIXTURES


@pytest.fixture(scope="session")
def photo() -> Path:
    """A real 480x360 JPEG photo (a car)."""
    return FIXTURES / "car-1.jpg"


@pytest.fixture(scope="session")
def portrait() -> Path:
    """A real 739x1134 JPEG photo of a person, with EXIF."""
    return FIXTURES / "cloth-1.jpg"


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings make test runs with (the real model directory)."""
    return Settings()


@pytest.fixture(scope="session")
def fast(settings: Settings) -> Remover:
    remover = Remover("fast", settings=settings)
    remover.load()
    return remover


@pytest.fixture(scope="session")
def precise(settings: Settings) -> Remover:
    remover = Remover("precise", settings=settings)
    remover.load()
    return remover


@pytest.fixture(scope="session")
def fast_plain(settings: Settings) -> Remover:
    """One plain pass of the model, no refinement: rembg's pipeline."""
    return Remover("fast", refine="none", settings=settings)


@pytest.fixture(scope="session")
def precise_plain(settings: Settings) -> Remover:
    return Remover("precise", refine="none", settings=settings)


ServerFactory = Callable[..., Server]


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    started: list[Server] = []

    def make(*, wait_for_models: bool = True, **overrides: object) -> Server:
        data_dir = tmp_path_factory.mktemp("alphacut-data")
        settings = Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]
        server = start_server(settings, wait_for_models=wait_for_models)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(make_server: ServerFactory) -> Server:
    return make_server()


@pytest.fixture
def fresh_sessions() -> Iterator[None]:
    """Drop cached sessions around a test that changes how they are built."""
    SESSIONS.clear()
    yield
    SESSIONS.clear()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SHARED is None:
        terminalreporter.write_sep(
            "!", "shared data (rembg parity outputs, the DAVIS set) not found: those tests SKIPPED"
        )
