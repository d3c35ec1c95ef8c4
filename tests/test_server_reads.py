"""Reads never write: annotators' read paths issue no INSERT, UPDATE or DELETE, and leave metadata intact.

A probe process runs argilla-server's app in memory (as the launcher bootstraps it) on the session
server's database, counts the write statements on a SQLAlchemy cursor event while it calls every
read path an annotator's web UI uses, and prints them. The stock code path (no fixes) is probed too,
which shows the probe sees the write it must not find.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.server_helpers import create_annotator

N_RECORDS = 6
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def _read_paths(dataset_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """What the web UI calls to show an annotator the dataset and their queue."""
    queue = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["pending"],
                },
                {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
            ]
        }
    }
    search = f"/api/v1/me/datasets/{dataset_id}/records/search?include=responses&include=suggestions"
    return [
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/me/datasets", None),
        ("GET", f"/api/v1/datasets/{dataset_id}", None),
        ("GET", f"/api/v1/datasets/{dataset_id}/fields", None),
        ("GET", f"/api/v1/datasets/{dataset_id}/questions", None),
        ("GET", f"/api/v1/me/datasets/{dataset_id}/metadata-properties", None),
        ("GET", f"/api/v1/me/datasets/{dataset_id}/metrics", None),
        ("GET", f"/api/v1/datasets/{dataset_id}/progress", None),
        ("POST", f"{search}&limit=10", queue),
        ("POST", f"{search}&limit=10", {}),
        ("POST", f"{search}&limit=10", {"query": {"text": {"q": "river"}}}),
    ]


def probe_main() -> None:
    """In the probe process: call the read paths with the key in argv[1]; print statuses and writes."""
    import asyncio

    import httpx
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from campaign.server.plugin.app import app

    api_key, dataset_id = sys.argv[1], sys.argv[2]
    writes: list[str] = []

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(WRITE_VERBS):
            writes.append(statement.split(" WHERE")[0])

    async def calls() -> list[int | str]:
        transport = httpx.ASGITransport(app=app)
        headers = {"X-Argilla-Api-Key": api_key}
        async with httpx.AsyncClient(transport=transport, base_url="http://probe", headers=headers) as client:
            statuses = []
            for method, path, body in _read_paths(dataset_id):
                response = await client.request(method, path, json=body)
                statuses.append(response.status_code if response.status_code == 200 else response.text)
            return statuses

    statuses = asyncio.run(calls())
    print(json.dumps({"statuses": statuses, "writes": writes}))


def _probe(server: RunningServer, api_key: str, dataset_id: str, *, fixes: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
    env.update(
        {
            "ARGILLA_HOME_PATH": str(server.home / "argilla"),
            "ARGILLA_ENABLE_TELEMETRY": "0",
            "ARGILLA_SEARCH_ENGINE": "campaign-sql",
            "CAMPAIGN_SEARCH_INDEX": str(server.home / "search-index.sqlite"),
            "CAMPAIGN_SPEEDUPS": "1" if fixes else "0",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
    )
    code = "from tests.test_server_reads import probe_main; probe_main()"
    done = subprocess.run(
        [sys.executable, "-c", code, api_key, dataset_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _stored_metadata(server: RunningServer, dataset_id: str) -> dict[str, Any]:
    with sqlite3.connect(server.home / "argilla" / "argilla.db") as db:
        rows = db.execute(
            "SELECT id, metadata, updated_at FROM records WHERE dataset_id = ?",
            (dataset_id.replace("-", ""),),
        ).fetchall()
    return {row[0]: (json.loads(row[1]), row[2]) for row in rows}


@pytest.fixture(scope="module")
def hidden_metadata_dataset(local_server: RunningServer) -> tuple[str, dict[str, Any]]:
    """A dataset whose records carry metadata visible to annotators and metadata hidden from them."""
    import argilla as rg

    client = local_server.client()
    workspace = rg.Workspace(name="reads", client=client).create()
    annotator = create_annotator(local_server.api_url, local_server.api_key, "reader-a", str(workspace.id))
    settings = rg.Settings(
        fields=[rg.TextField(name="prompt")],
        questions=[rg.RatingQuestion(name="rating", values=[1, 2, 3, 4, 5])],
        metadata=[
            rg.TermsMetadataProperty(name="language"),
            rg.TermsMetadataProperty(name="model_1", visible_for_annotators=False),
        ],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    dataset = rg.Dataset(name="reads", workspace="reads", settings=settings, client=client).create()
    dataset.records.log(
        [
            rg.Record(
                fields={"prompt": f"a river {i}"},
                metadata={"language": "nl", "model_1": f"model-{i}"},
                suggestions=[rg.Suggestion("rating", 1 + i % 5, agent="judge")],
            )
            for i in range(N_RECORDS)
        ]
    )
    return str(dataset.id), annotator


def test_annotator_reads_issue_no_writes_and_keep_metadata(
    local_server: RunningServer, hidden_metadata_dataset: tuple[str, dict[str, Any]]
) -> None:
    dataset_id, annotator = hidden_metadata_dataset
    before = _stored_metadata(local_server, dataset_id)
    assert len(before) == N_RECORDS

    probed = _probe(local_server, annotator["api_key"], dataset_id, fixes=True)

    assert probed["statuses"] == [200] * len(_read_paths(dataset_id))
    assert probed["writes"] == []
    assert _stored_metadata(local_server, dataset_id) == before


def test_the_queue_hides_hidden_metadata(
    local_server: RunningServer, hidden_metadata_dataset: tuple[str, dict[str, Any]]
) -> None:
    from tests.server_helpers import api

    dataset_id, annotator = hidden_metadata_dataset
    for key, expected in (
        (annotator["api_key"], {"language"}),
        (local_server.api_key, {"language", "model_1"}),
    ):
        response = api(
            local_server.api_url, key, "POST", f"/me/datasets/{dataset_id}/records/search", json={}
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert len(items) == N_RECORDS
        assert all(set(item["record"]["metadata"]) == expected for item in items)


def test_the_probe_sees_the_stock_queue_search_write_metadata(
    local_server: RunningServer, hidden_metadata_dataset: tuple[str, dict[str, Any]]
) -> None:
    dataset_id, annotator = hidden_metadata_dataset
    before = _stored_metadata(local_server, dataset_id)

    probed = _probe(local_server, annotator["api_key"], dataset_id, fixes=False)

    assert any(write.startswith("UPDATE records SET metadata") for write in probed["writes"])
    # Upstream rolls the UPDATE back: what it costs is the write lock, not the data.
    assert _stored_metadata(local_server, dataset_id) == before
