"""Shared fixtures: an isolated environment for every test, and one real local Argilla per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ISOLATED_ENV = ("ARGILLA_API_URL", "ARGILLA_API_KEY", "HF_TOKEN", "CAMPAIGN_DEBUG", "CAMPAIGN_HOME")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's credentials, data dir or tokens."""
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "campaign-home"
    monkeypatch.setenv("CAMPAIGN_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


@dataclass(frozen=True)
class RunningServer:
    """A local server started for the test session."""

    home: Path
    api_url: str
    api_key: str
    username: str
    password: str

    def client(self, api_key: str | None = None):  # type: ignore[no-untyped-def]
        """An SDK client, as the owner or with another user's key."""
        import argilla as rg

        return rg.Argilla(api_url=self.api_url, api_key=api_key or self.api_key)

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point the CLI at this server through the environment."""
        monkeypatch.setenv("ARGILLA_API_URL", self.api_url)
        monkeypatch.setenv("ARGILLA_API_KEY", self.api_key)


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Start the real local Argilla once per session (SQLite, bundled Redis, worker) and stop it at the end."""
    from campaign.config import read_credentials
    from campaign.server.control.local_server import LocalServer, ServerOptions, free_port

    home = tmp_path_factory.mktemp("server-home")
    server = LocalServer(home)
    server.start(ServerOptions(port=free_port()), timeout=120)
    creds = read_credentials(server.credentials_file)
    try:
        yield RunningServer(
            home=home,
            api_url=creds["api_url"],
            api_key=creds["api_key"],
            username=creds["username"],
            password=creds["password"],
        )
    finally:
        server.stop()


@pytest.fixture
def server(local_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """The session server, with the CLI pointed at it through the environment."""
    local_server.use(monkeypatch)
    return local_server


@pytest.fixture
def client(server: RunningServer):  # type: ignore[no-untyped-def]
    """A REST client of the session server, as the owner."""
    from campaign.client import ArgillaClient

    return ArgillaClient(server.api_url, server.api_key)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests (models, training) run only with -m slow or CAMPAIGN_SLOW_TESTS=1."""
    if os.environ.get("CAMPAIGN_SLOW_TESTS") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or CAMPAIGN_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
