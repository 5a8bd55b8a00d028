"""Shared fixtures: real photos from the project's shared data, and the installed models.

The shared data (``../shared`` beside the checkout, or ``ALPHACUT_SHARED_DIR``) holds real
photos with hand-made masks and rembg's reference outputs; it is read in place, never copied.
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


@pytest.fixture(scope="session")
def photo(parity_dir: Path) -> Path:
    """A real 480x360 JPEG photo (a car)."""
    return parity_dir / "fixtures" / "car-1.jpg"


@pytest.fixture(scope="session")
def portrait(parity_dir: Path) -> Path:
    """A real 739x1134 JPEG photo of a person, with EXIF."""
    return parity_dir / "fixtures" / "cloth-1.jpg"


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

    def make(**overrides: object) -> Server:
        data_dir = tmp_path_factory.mktemp("alphacut-data")
        settings = Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]
        server = start_server(settings)
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
            "!", "shared data (real photos, rembg parity, DAVIS) not found: those tests SKIPPED"
        )
