"""The search index can be rebuilt from the database: by the reindex role, and by `start` when it is damaged."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from campaign.server.control.local_server import LocalServer, ServerOptions, free_port
from campaign.server.plugin.search_index import SearchIndex
from tests.server_helpers import api, create_annotator, submit

N_RECORDS = 30


def _build_dataset(api_url: str, api_key: str, name: str, usernames: tuple[str, str]) -> dict[str, Any]:
    """A dataset with text, metadata, suggestions, vectors and responses of every status from two annotators."""
    import argilla as rg

    client = rg.Argilla(api_url=api_url, api_key=api_key)
    workspace = rg.Workspace(name=name, client=client).create()
    annotators = [create_annotator(api_url, api_key, username, str(workspace.id)) for username in usernames]
    settings = rg.Settings(
        fields=[rg.TextField(name="prompt"), rg.TextField(name="response_1")],
        questions=[
            rg.RatingQuestion(name="rating_1", values=[1, 2, 3, 4, 5]),
            rg.LabelQuestion(name="label", labels=["good", "bad"], required=False),
        ],
        metadata=[
            rg.TermsMetadataProperty(name="source"),
            rg.IntegerMetadataProperty(name="round"),
            rg.FloatMetadataProperty(name="length"),
        ],
        vectors=[rg.VectorField(name="emb", dimensions=3)],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    dataset = rg.Dataset(name=name, workspace=name, settings=settings, client=client).create()
    rng = random.Random(7)
    dataset.records.log(
        [
            rg.Record(
                id=f"r{i:02d}",
                fields={
                    "prompt": f"Prompt {i} about {'glaciers' if i % 4 == 0 else 'deserts'}",
                    "response_1": f"Answer number {i}",
                },
                metadata={
                    "source": ["aya", "synthetic", "forum"][i % 3],
                    "round": i % 4,
                    "length": 0.5 + i / 7,
                },
                suggestions=[
                    rg.Suggestion("rating_1", 1 + i % 5, agent="judge", score=round(i / N_RECORDS, 3))
                ],
                vectors={"emb": [rng.uniform(-1, 1) for _ in range(3)]},
            )
            for i in range(N_RECORDS)
        ]
    )
    records = api(api_url, api_key, "GET", f"/datasets/{dataset.id}/records", params={"limit": 1000}).json()
    ids = {r["external_id"]: r["id"] for r in records["items"]}
    a_key, b_key = annotators[0]["api_key"], annotators[1]["api_key"]
    for i in range(8):
        submit(api_url, a_key, ids[f"r{i:02d}"], {"rating_1": 4, "label": "good"})
        submit(api_url, b_key, ids[f"r{i:02d}"], {"rating_1": 2})
    for i in range(8, 12):
        submit(api_url, a_key, ids[f"r{i:02d}"], {"rating_1": 3}, "draft")
    for i in range(12, 14):
        submit(api_url, b_key, ids[f"r{i:02d}"], None, "discarded")
    return {"id": str(dataset.id), "ids": ids, "keys": [a_key, b_key]}


def _snapshot(api_url: str, owner_key: str, built: dict[str, Any]) -> dict[str, Any]:
    """Everything the index answers for one dataset: /me searches, progress and metadata metrics."""
    dataset_id = built["id"]

    def search(key: str, body: dict[str, Any], **params: Any) -> Any:
        response = api(
            api_url,
            key,
            "POST",
            f"/me/datasets/{dataset_id}/records/search",
            json=body,
            params={"limit": 100, **params},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def get(key: str, path: str) -> Any:
        response = api(api_url, key, "GET", path)
        assert response.status_code == 200, response.text
        return response.json()

    def status(*values: str) -> dict[str, Any]:
        scope = {"entity": "response", "property": "status"}
        return {"filters": {"and": [{"type": "terms", "scope": scope, "values": list(values)}]}}

    by_round = {"sort": [{"scope": {"entity": "metadata", "metadata_property": "round"}, "order": "desc"}]}
    by_score = {
        "sort": [
            {"scope": {"entity": "suggestion", "question": "rating_1", "property": "score"}, "order": "asc"}
        ]
    }
    snapshot: dict[str, Any] = {}
    for n, key in enumerate(built["keys"]):
        for value in ("pending", "draft", "submitted", "discarded"):
            snapshot[f"user{n}-{value}"] = search(key, status(value))
        snapshot[f"user{n}-metrics"] = get(key, f"/me/datasets/{dataset_id}/metrics")
    snapshot["text"] = search(owner_key, {"query": {"text": {"q": "glaciers"}}})
    snapshot["text-field"] = search(owner_key, {"query": {"text": {"q": "number 7", "field": "response_1"}}})
    snapshot["terms"] = search(
        owner_key,
        {
            "filters": {
                "and": [
                    {
                        "type": "terms",
                        "scope": {"entity": "metadata", "metadata_property": "source"},
                        "values": ["aya"],
                    }
                ]
            }
        },
    )
    snapshot["range"] = search(
        owner_key,
        {
            "filters": {
                "and": [
                    {
                        "type": "range",
                        "scope": {"entity": "metadata", "metadata_property": "length"},
                        "ge": 1.0,
                        "le": 3.0,
                    }
                ]
            }
        },
    )
    snapshot["record-status"] = search(
        owner_key,
        {
            "filters": {
                "and": [
                    {
                        "type": "terms",
                        "scope": {"entity": "record", "property": "status"},
                        "values": ["completed"],
                    }
                ]
            }
        },
    )
    snapshot["sort-pages"] = [search(owner_key, by_round, limit=10, offset=offset) for offset in (0, 10, 20)]
    snapshot["sort-score"] = search(owner_key, by_score)
    snapshot["progress"] = get(owner_key, f"/datasets/{dataset_id}/progress")
    snapshot["users-progress"] = get(owner_key, f"/datasets/{dataset_id}/users/progress")
    properties = get(owner_key, f"/me/datasets/{dataset_id}/metadata-properties")["items"]
    for prop in properties:
        snapshot[f"metrics-{prop['name']}"] = get(owner_key, f"/metadata-properties/{prop['id']}/metrics")
    similar = api(
        api_url,
        owner_key,
        "POST",
        f"/me/datasets/{dataset_id}/records/search",
        params={"limit": 5},
        json={"query": {"vector": {"name": "emb", "record_id": built["ids"]["r03"]}}},
    )
    snapshot["similar"] = similar.json() if similar.status_code == 200 else similar.text
    return snapshot


def _check_snapshot_is_meaningful(snapshot: dict[str, Any]) -> None:
    assert snapshot["user0-submitted"]["total"] == 8
    assert snapshot["user0-draft"]["total"] == 4
    assert snapshot["user1-discarded"]["total"] == 2
    assert snapshot["user1-pending"]["total"] == N_RECORDS - 10
    assert snapshot["text"]["total"] == 8
    assert snapshot["record-status"]["total"] == 8
    assert snapshot["progress"]["completed"] == 8
    assert snapshot["metrics-round"] == {"type": "integer", "min": 0, "max": 3}
    assert isinstance(snapshot["similar"], dict) and snapshot["similar"]["items"]


def _index_counts(index_file: Path, dataset_id: str) -> dict[str, int]:
    index = SearchIndex(index_file)
    try:
        return {
            table: int(index.query(f"SELECT count(*) FROM {table} WHERE dataset_id = ?", (dataset_id,))[0][0])
            for table in ("idx_records", "idx_metadata", "idx_suggestions", "idx_responses", "idx_vectors")
        }
    finally:
        index.close()


def test_reindex_role_rebuilds_an_equivalent_index(local_server: Any) -> None:
    built = _build_dataset(local_server.api_url, local_server.api_key, "reindexed", ("reidx-a", "reidx-b"))
    before = _snapshot(local_server.api_url, local_server.api_key, built)
    _check_snapshot_is_meaningful(before)
    server = LocalServer(local_server.home)
    counts_before = _index_counts(server.index_file, built["id"])

    server.reindex()

    assert _index_counts(server.index_file, built["id"]) == counts_before
    after = _snapshot(local_server.api_url, local_server.api_key, built)
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], name


def _prepare_result(log_file: Path) -> dict[str, Any]:
    """The JSON line that the last `serve --prepare` wrote to the server log."""
    lines = [line for line in log_file.read_text().splitlines() if line.startswith('{"owner"')]
    return dict(json.loads(lines[-1]))


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    """A local server in its own home, for tests that stop and damage it."""
    server = LocalServer(tmp_path / "home")
    yield server
    if any(server.pids().values()):
        server.stop()


def test_start_detects_and_rebuilds_a_damaged_or_missing_index(own_server: LocalServer) -> None:
    from campaign.config import read_credentials

    options = ServerOptions(port=free_port())
    own_server.start(options, timeout=120)
    creds = read_credentials(own_server.credentials_file)
    api_url, key = creds["api_url"], creds["api_key"]
    damaged = _build_dataset(api_url, key, "damaged", ("dmg-a", "dmg-b"))
    dropped = _build_dataset(api_url, key, "dropped", ("drop-a", "drop-b"))
    before = {
        name: _snapshot(api_url, key, built) for name, built in (("damaged", damaged), ("dropped", dropped))
    }
    _check_snapshot_is_meaningful(before["damaged"])
    own_server.stop()

    # Out of sync: some records of one dataset vanish from the index; another dataset's index is gone.
    index = SearchIndex(own_server.index_file)
    index.delete_records(list(damaged["ids"].values())[:5])
    index.delete_dataset(dropped["id"])
    index.close()

    own_server.start(options, timeout=120)
    assert sorted(_prepare_result(own_server.log_dir / "server.log")["reindexed"]) == sorted(
        [damaged["id"], dropped["id"]]
    )
    assert _snapshot(api_url, key, damaged) == before["damaged"]
    assert _snapshot(api_url, key, dropped) == before["dropped"]
    own_server.stop()

    # Missing: the whole index file is gone.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{own_server.index_file}{suffix}").unlink(missing_ok=True)
    own_server.start(options, timeout=120)
    assert sorted(_prepare_result(own_server.log_dir / "server.log")["reindexed"]) == sorted(
        [damaged["id"], dropped["id"]]
    )
    assert _snapshot(api_url, key, damaged) == before["damaged"]
    assert _snapshot(api_url, key, dropped) == before["dropped"]
