"""The local server end to end through the SDK and REST, as the web UI and the CLI use it."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.server_helpers import api, create_annotator, submit

N_RECORDS = 50


def _search(
    server: Any, api_key: str, dataset_id: str, body: dict[str, Any], **params: Any
) -> dict[str, Any]:
    response = api(
        server.api_url,
        api_key,
        "POST",
        f"/me/datasets/{dataset_id}/records/search",
        json=body,
        params={"limit": 100, **params},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _status_filter(*statuses: str) -> dict[str, Any]:
    return {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": list(statuses),
                }
            ]
        }
    }


def _ids(result: dict[str, Any]) -> set[str]:
    return {item["record"]["id"] for item in result["items"]}


@pytest.fixture(scope="module")
def campaign_dataset(local_server: Any) -> dict[str, Any]:
    """A dataset with rating, ranking and label questions, 50 records and responses from two annotators."""
    import argilla as rg

    client = local_server.client()
    workspace = rg.Workspace(name="roundtrip", client=client).create()
    annotators = [
        create_annotator(local_server.api_url, local_server.api_key, name, str(workspace.id))
        for name in ("ann-a", "ann-b")
    ]
    settings = rg.Settings(
        guidelines="Rate each response.",
        fields=[
            rg.TextField(name="prompt"),
            rg.TextField(name="response_1"),
            rg.TextField(name="response_2"),
        ],
        questions=[
            rg.RatingQuestion(name="rating_1", values=[1, 2, 3, 4, 5]),
            rg.RankingQuestion(name="ranking", values=["response_1", "response_2"], required=False),
            rg.LabelQuestion(name="label", labels=["good", "bad"], required=False),
        ],
        metadata=[rg.TermsMetadataProperty(name="source"), rg.IntegerMetadataProperty(name="round")],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    dataset = rg.Dataset(name="roundtrip", workspace="roundtrip", settings=settings, client=client).create()
    records = [
        rg.Record(
            id=f"rec-{i:03d}",
            fields={
                "prompt": f"Question number {i} about {'volcanoes' if i % 5 == 0 else 'rivers'}",
                "response_1": f"First answer {i}",
                "response_2": f"Second answer {i}",
            },
            metadata={"source": "aya" if i < 20 else "synthetic", "round": 1 + i % 3},
            suggestions=[rg.Suggestion("rating_1", 1 + i % 5, agent="judge-model", score=0.5)],
        )
        for i in range(N_RECORDS)
    ]
    dataset.records.log(records)
    ids = {r["external_id"]: r["id"] for r in _all_records(local_server, str(dataset.id))}

    # Both annotators submit records 0-9 (completed), ann-a submits 10-14, drafts 15-17, discards 18-19
    # (one without values, as the UI allows); ann-b discards 20-21.
    a_key, b_key = annotators[0]["api_key"], annotators[1]["api_key"]
    plan: list[tuple[str, int, dict[str, Any] | None, str]] = []
    for i in range(10):
        plan.append((a_key, i, {"rating_1": 4, "label": "good"}, "submitted"))
        plan.append(
            (
                b_key,
                i,
                {
                    "rating_1": 5,
                    "label": "good",
                    "ranking": [{"value": "response_1", "rank": 1}, {"value": "response_2", "rank": 2}],
                },
                "submitted",
            )
        )
    plan += [(a_key, i, {"rating_1": 2, "label": "bad"}, "submitted") for i in range(10, 15)]
    plan += [(a_key, i, {"rating_1": 3}, "draft") for i in range(15, 18)]
    plan += [(a_key, 18, {"rating_1": 1}, "discarded"), (a_key, 19, None, "discarded")]
    plan += [(b_key, i, None, "discarded") for i in (20, 21)]
    for key, i, values, status in plan:
        submit(local_server.api_url, key, ids[f"rec-{i:03d}"], values, status)
    return {"dataset": dataset, "ids": ids, "annotators": annotators, "workspace": workspace}


def _all_records(server: Any, dataset_id: str) -> list[dict[str, Any]]:
    response = api(
        server.api_url,
        server.api_key,
        "GET",
        f"/datasets/{dataset_id}/records",
        params={"include": ["responses", "suggestions"], "limit": 1000},
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_round_trip_reads_back_records_responses_and_suggestions(
    local_server: Any, campaign_dataset: Any
) -> None:
    records = _all_records(local_server, str(campaign_dataset["dataset"].id))
    assert len(records) == N_RECORDS
    by_external = {r["external_id"]: r for r in records}
    statuses = sorted(resp["status"] for r in records for resp in r["responses"])
    assert statuses.count("submitted") == 25
    assert statuses.count("draft") == 3
    assert statuses.count("discarded") == 4
    assert by_external["rec-003"]["suggestions"][0]["value"] == 4
    assert by_external["rec-003"]["suggestions"][0]["agent"] == "judge-model"
    assert {resp["values"]["rating_1"]["value"] for resp in by_external["rec-000"]["responses"]} == {4, 5}
    # Record status follows min_submitted=2: only records with two submitted responses are completed.
    completed = {r["external_id"] for r in records if r["status"] == "completed"}
    assert completed == {f"rec-{i:03d}" for i in range(10)}


def test_sdk_iterates_records_with_submitted_responses(local_server: Any, campaign_dataset: Any) -> None:
    import argilla as rg

    dataset = local_server.client().datasets("roundtrip", workspace="roundtrip")
    # The SDK crashes on discarded responses without values, so read the submitted ones only.
    query = rg.Query(filter=rg.Filter([("response.status", "==", "submitted")]))
    records = {r.id: r for r in dataset.records(query=query, with_responses=True, with_suggestions=True)}
    assert set(records) == {f"rec-{i:03d}" for i in range(15)}
    assert sorted(r.value for r in records["rec-001"].responses["rating_1"]) == [4, 5]
    assert records["rec-001"].suggestions["rating_1"].agent == "judge-model"


def test_progress_with_users_distribution(local_server: Any, campaign_dataset: Any) -> None:
    dataset = local_server.client().datasets("roundtrip", workspace="roundtrip")
    progress = dataset.progress(with_users_distribution=True)
    assert progress["total"] == N_RECORDS
    assert progress["completed"] == 10
    assert progress["pending"] == 40
    users = progress["users"]
    assert users["ann-a"]["completed"]["submitted"] == 10
    assert users["ann-a"]["pending"] == {"submitted": 5, "draft": 3, "discarded": 2}
    assert users["ann-b"]["pending"]["discarded"] == 2


def test_user_progress_metrics(local_server: Any, campaign_dataset: Any) -> None:
    a_key = campaign_dataset["annotators"][0]["api_key"]
    dataset_id = str(campaign_dataset["dataset"].id)
    metrics = api(local_server.api_url, a_key, "GET", f"/me/datasets/{dataset_id}/metrics").json()
    assert metrics["responses"] == {"total": 50, "submitted": 15, "discarded": 2, "draft": 3, "pending": 30}


@pytest.mark.parametrize(
    ("statuses", "annotator", "expected"),
    [
        (["submitted"], 0, set(range(15))),
        (["draft"], 0, {15, 16, 17}),
        (["discarded"], 0, {18, 19}),
        (["pending"], 0, set(range(20, 50))),
        (["pending"], 1, set(range(10, 20)) | set(range(22, 50))),
        (["discarded"], 1, {20, 21}),
        (["pending", "draft"], 0, set(range(15, 18)) | set(range(20, 50))),
    ],
)
def test_me_search_by_response_status(
    local_server: Any, campaign_dataset: Any, statuses: list[str], annotator: int, expected: set[int]
) -> None:
    key = campaign_dataset["annotators"][annotator]["api_key"]
    result = _search(local_server, key, str(campaign_dataset["dataset"].id), _status_filter(*statuses))
    assert result["total"] == len(expected)
    assert _ids(result) == {campaign_dataset["ids"][f"rec-{i:03d}"] for i in expected}


def test_me_search_order_is_stable_and_starts_at_each_users_key(
    local_server: Any, campaign_dataset: Any
) -> None:
    from campaign.server.plugin.search_index import random_key, user_key

    dataset_id = str(campaign_dataset["dataset"].id)
    shuffled = sorted(campaign_dataset["ids"].values(), key=random_key)
    for annotator in campaign_dataset["annotators"]:
        first = _search(local_server, annotator["api_key"], dataset_id, {})
        again = _search(local_server, annotator["api_key"], dataset_id, {})
        order = [i["record"]["id"] for i in first["items"]]
        assert [i["record"]["id"] for i in again["items"]] == order
        # One shuffled order of the records, which each user starts at their own key (wrapping around).
        start = sum(random_key(record_id) < user_key(annotator["id"]) for record_id in shuffled)
        assert order == shuffled[start:] + shuffled[:start]
    # (Two users whose random keys fall between the same two records' keys get the same order: with 50
    # records, 1 time in 50. Asserting that two orders differ would fail that often.)


def test_search_metadata_suggestion_and_response_value_filters(
    local_server: Any, campaign_dataset: Any
) -> None:
    dataset_id = str(campaign_dataset["dataset"].id)
    key = local_server.api_key
    ids = campaign_dataset["ids"]
    terms = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "metadata", "metadata_property": "source"},
                    "values": ["aya"],
                }
            ]
        }
    }
    assert _search(local_server, key, dataset_id, terms)["total"] == 20
    ranged = {
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "metadata", "metadata_property": "round"},
                    "ge": 2,
                    "le": 3,
                }
            ]
        }
    }
    assert _ids(_search(local_server, key, dataset_id, ranged)) == {
        ids[f"rec-{i:03d}"] for i in range(N_RECORDS) if 1 + i % 3 >= 2
    }
    suggestion = {
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "suggestion", "question": "rating_1", "property": "value"},
                    "ge": 5,
                }
            ]
        }
    }
    assert _ids(_search(local_server, key, dataset_id, suggestion)) == {
        ids[f"rec-{i:03d}"] for i in range(N_RECORDS) if i % 5 == 4
    }
    agent = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "suggestion", "question": "rating_1", "property": "agent"},
                    "values": ["judge-model"],
                }
            ]
        }
    }
    assert _search(local_server, key, dataset_id, agent)["total"] == N_RECORDS
    response_value = {
        "filters": {
            "and": [
                {"type": "terms", "scope": {"entity": "response", "question": "label"}, "values": ["bad"]}
            ]
        }
    }
    # In /me/ searches, response filters apply to the caller's own responses.
    assert _search(local_server, key, dataset_id, response_value)["total"] == 0
    a_key = campaign_dataset["annotators"][0]["api_key"]
    assert _ids(_search(local_server, a_key, dataset_id, response_value)) == {
        ids[f"rec-{i:03d}"] for i in range(10, 15)
    }
    record_status = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "record", "property": "status"},
                    "values": ["completed"],
                }
            ]
        }
    }
    assert _search(local_server, key, dataset_id, record_status)["total"] == 10


def test_text_query_over_all_fields_and_one_field(local_server: Any, campaign_dataset: Any) -> None:
    dataset_id = str(campaign_dataset["dataset"].id)
    key = local_server.api_key
    everywhere = _search(local_server, key, dataset_id, {"query": {"text": {"q": "volcanoes"}}})
    assert everywhere["total"] == 10
    assert all(item["query_score"] > 0 for item in everywhere["items"])
    # Every term must match, possibly in different fields.
    assert (
        _search(local_server, key, dataset_id, {"query": {"text": {"q": "volcanoes second"}}})["total"] == 10
    )
    assert (
        _search(
            local_server, key, dataset_id, {"query": {"text": {"q": "volcanoes", "field": "response_1"}}}
        )["total"]
        == 0
    )
    assert (
        _search(local_server, key, dataset_id, {"query": {"text": {"q": "answer 7", "field": "response_1"}}})[
            "total"
        ]
        == 1
    )


def test_sort_and_pagination(local_server: Any, campaign_dataset: Any) -> None:
    dataset_id = str(campaign_dataset["dataset"].id)
    key = local_server.api_key
    body = {
        "sort": [
            {"scope": {"entity": "metadata", "metadata_property": "round"}, "order": "desc"},
            {"scope": {"entity": "record", "property": "inserted_at"}, "order": "asc"},
        ]
    }
    pages = [_search(local_server, key, dataset_id, body, limit=20, offset=offset) for offset in (0, 20, 40)]
    assert [len(p["items"]) for p in pages] == [20, 20, 10]
    seen = [item["record"]["id"] for page in pages for item in page["items"]]
    assert len(set(seen)) == N_RECORDS
    rounds = [item["record"]["metadata"]["round"] for page in pages for item in page["items"]]
    assert rounds == sorted(rounds, reverse=True)
    by_score = {
        "sort": [
            {"scope": {"entity": "suggestion", "question": "rating_1", "property": "value"}, "order": "asc"}
        ]
    }
    values = [item["record"]["id"] for item in _search(local_server, key, dataset_id, by_score)["items"]]
    ranks = {campaign_dataset["ids"][f"rec-{i:03d}"]: 1 + i % 5 for i in range(N_RECORDS)}
    assert [ranks[v] for v in values] == sorted(ranks.values())


def test_metadata_metrics(local_server: Any, campaign_dataset: Any) -> None:
    dataset = local_server.client().datasets("roundtrip", workspace="roundtrip")
    props = api(
        local_server.api_url, local_server.api_key, "GET", f"/me/datasets/{dataset.id}/metadata-properties"
    )
    by_name = {p["name"]: p["id"] for p in props.json()["items"]}
    terms = api(
        local_server.api_url, local_server.api_key, "GET", f"/metadata-properties/{by_name['source']}/metrics"
    )
    assert terms.json() == {
        "type": "terms",
        "total": 50,
        "values": [{"term": "synthetic", "count": 30}, {"term": "aya", "count": 20}],
    }
    integer = api(
        local_server.api_url, local_server.api_key, "GET", f"/metadata-properties/{by_name['round']}/metrics"
    )
    assert integer.json() == {"type": "integer", "min": 1, "max": 3}


def test_distribution_change_is_recomputed_by_the_worker(local_server: Any) -> None:
    import argilla as rg

    client = local_server.client()
    workspace = rg.Workspace(name="distribution", client=client).create()
    annotator = create_annotator(local_server.api_url, local_server.api_key, "ann-dist", str(workspace.id))
    settings = rg.Settings(
        fields=[rg.TextField(name="prompt")],
        questions=[rg.LabelQuestion(name="label", labels=["good", "bad"])],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    dataset = rg.Dataset(
        name="distribution", workspace="distribution", settings=settings, client=client
    ).create()
    dataset.records.log([rg.Record(id=f"d{i}", fields={"prompt": f"p{i}"}) for i in range(6)])
    records = _all_records(local_server, str(dataset.id))
    for record in records[:3]:
        submit(local_server.api_url, annotator["api_key"], record["id"], {"label": "good"})
    assert dataset.progress()["completed"] == 0

    dataset.settings.distribution = rg.TaskDistribution(min_submitted=1)
    dataset.update()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and dataset.progress()["completed"] != 3:
        time.sleep(0.3)
    assert dataset.progress()["completed"] == 3
    statuses = {r["status"] for r in _all_records(local_server, str(dataset.id))[:3]}
    assert statuses == {"completed"}


def test_vector_similarity_search(local_server: Any) -> None:
    import argilla as rg

    client = local_server.client()
    rg.Workspace(name="vectors", client=client).create()
    settings = rg.Settings(
        fields=[rg.TextField(name="prompt")],
        questions=[rg.LabelQuestion(name="label", labels=["good", "bad"])],
        vectors=[rg.VectorField(name="emb", dimensions=3)],
    )
    dataset = rg.Dataset(name="vectors", workspace="vectors", settings=settings, client=client).create()
    rng = random.Random(0)
    vectors = {f"v{i}": [rng.uniform(-1, 1) for _ in range(3)] for i in range(20)}
    dataset.records.log(
        [rg.Record(id=k, fields={"prompt": k}, vectors={"emb": v}) for k, v in vectors.items()]
    )
    target = vectors["v3"]
    found = list(dataset.records(query=rg.Query(similar=rg.Similar(name="emb", value=target)), limit=5))
    record, score = found[0]
    assert record.id == "v3"
    assert score == pytest.approx(1.0, abs=1e-5)
    # With a text query, only the records whose text matches are ranked by similarity.
    query = rg.Query(query="v7", similar=rg.Similar(name="emb", value=target))
    assert [r.id for r, _ in dataset.records(query=query, limit=5)] == ["v7"]
    nothing = rg.Query(query="nowhere", similar=rg.Similar(name="emb", value=target))
    assert list(dataset.records(query=nothing, limit=5)) == []
