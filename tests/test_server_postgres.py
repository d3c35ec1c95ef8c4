"""The local server with PostgreSQL as its database, in a fresh database that is dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from campaign.server.control.local_server import LocalServer, ServerOptions, free_port
from tests.server_helpers import api, create_annotator, submit

pytestmark = pytest.mark.postgres

URL_ENV = "CAMPAIGN_TEST_POSTGRES_URL"


def _admin_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq DSN for asyncpg."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _execute(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, randomly named database; its SQLAlchemy URL. Dropped at the end."""
    url = os.environ.get(URL_ENV)
    if not url:
        message = f"{URL_ENV} is not set (e.g. postgresql+asyncpg://user:pass@127.0.0.1:5432/postgres)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL test")
        pytest.skip(message)
    name = f"campaign_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_dsn(url)
    asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(url, name)
    finally:
        asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_round_trip_on_postgresql(postgres_database: str, tmp_path: Path) -> None:
    import argilla as rg

    from campaign.config import read_credentials

    server = LocalServer(tmp_path / "home")
    status = server.start(ServerOptions(port=free_port(), database_url=postgres_database), timeout=120)
    try:
        assert status.healthy
        assert status.database is not None and status.database.startswith("postgresql+asyncpg://")
        assert "campaign_ci:campaign_ci@" not in status.database  # the password is redacted
        assert not (server.argilla_home / "argilla.db").exists()

        creds = read_credentials(server.credentials_file)
        client = rg.Argilla(api_url=creds["api_url"], api_key=creds["api_key"])
        workspace = rg.Workspace(name="pg", client=client).create()
        annotator = create_annotator(creds["api_url"], creds["api_key"], "pg-annotator", str(workspace.id))
        settings = rg.Settings(
            fields=[rg.TextField(name="prompt"), rg.TextField(name="response_1")],
            questions=[rg.RatingQuestion(name="rating_1", values=[1, 2, 3, 4, 5])],
            metadata=[rg.TermsMetadataProperty(name="source")],
        )
        dataset = rg.Dataset(name="pg", workspace="pg", settings=settings, client=client).create()
        dataset.records.log(
            [
                rg.Record(
                    id=f"pg-{i}",
                    fields={"prompt": f"Prompt {i}", "response_1": f"Answer {i}"},
                    metadata={"source": "aya" if i % 2 else "synthetic"},
                )
                for i in range(10)
            ]
        )
        listed = api(creds["api_url"], creds["api_key"], "GET", f"/datasets/{dataset.id}/records").json()
        ids = {r["external_id"]: r["id"] for r in listed["items"]}
        assert len(ids) == 10
        submit(creds["api_url"], annotator["api_key"], ids["pg-3"], {"rating_1": 4})
        submit(creds["api_url"], annotator["api_key"], ids["pg-4"], {"rating_1": 2}, "draft")

        query = rg.Query(filter=rg.Filter([("response.status", "==", "submitted")]))
        submitted: list[Any] = list(dataset.records(query=query, with_responses=True))
        assert [r.id for r in submitted] == ["pg-3"]
        assert [r.value for r in submitted[0].responses["rating_1"]] == [4]

        progress = dataset.progress(with_users_distribution=True)
        assert progress["total"] == 10
        assert progress["completed"] == 1
        assert progress["pending"] == 9
        assert progress["users"]["pg-annotator"]["completed"]["submitted"] == 1
        assert progress["users"]["pg-annotator"]["pending"]["draft"] == 1

        metrics = api(
            creds["api_url"], annotator["api_key"], "GET", f"/me/datasets/{dataset.id}/metrics"
        ).json()
        assert metrics["responses"]["submitted"] == 1 and metrics["responses"]["draft"] == 1
    finally:
        server.stop()
