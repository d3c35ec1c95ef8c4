"""The local server's create-only bulk endpoint against the stock `PUT /records/bulk` (issue 5).

The same planned records go through both paths into two datasets with the same settings; they must
read back equal, be found by the same searches, give the same progress, and bad payloads must get the
same status and error detail. Re-sent and concurrent batches add nothing twice.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.client import ArgillaClient, RecordPayload
from campaign.client.records import record_body
from campaign.seed import SeedOptions, plan_records, rows_source, write_plan
from tests.conftest import RunningServer
from tests.server_helpers import api, create_annotator, submit
from tests.test_server_postgres import postgres_database  # noqa: F401  the PostgreSQL test's fixture

FAST = "/campaign/datasets/{id}/records/create-bulk"
STOCK = "/datasets/{id}/records/bulk"
JUDGE = "judge-model"
WORDS = ["quality", "answer", "volunteer", "fluent", "helpful", "honest", "reason", "example"]


def rows(count: int, *, offset: int = 0) -> list[dict[str, Any]]:
    """UltraFeedback-style rating rows with two responses and judge ratings."""
    return [
        {
            "instruction": f"Prompt {i}: {WORDS[i % len(WORDS)]} {WORDS[(i * 3) % len(WORDS)]}",
            "generations": [f"First answer {i} {WORDS[(i + 1) % len(WORDS)]}", f"Second answer {i}"],
            "generation_models": ["model-a", "model-b"],
            "ratings": [1 + i % 5, 1 + (i * 2) % 5],
            "rationales": ["ok", "fine"],
            "model_name": JUDGE,
        }
        for i in range(offset, offset + count)
    ]


@pytest.fixture(scope="module")
def owner(local_server: RunningServer) -> ArgillaClient:
    return ArgillaClient(local_server.api_url, local_server.api_key)


def new_dataset(client: ArgillaClient, template: str, *, workspace: str = "fastpath") -> str:
    """A dataset made as `campaign create` makes it; returns its id."""
    from campaign.campaign_file import CampaignFile
    from campaign.templates import build_settings, load_template

    name = f"fast-{template}-{uuid.uuid4().hex[:8]}"
    campaign = CampaignFile(name=name, workspace=workspace, template=template, responses=2)
    spec = load_template(template)
    settings = build_settings(
        spec, responses=2, guidelines=spec.read_guidelines(), min_submitted=1, language=None
    )
    return client.ensure_dataset(
        name=campaign.name, workspace=campaign.workspace, settings=settings
    ).dataset_id


def planned(template: str, source: list[dict[str, Any]]) -> list[RecordPayload]:
    """The records `campaign seed` plans for these rows."""
    options = SeedOptions(template=template, responses=2, round=1, source_name="fast-path", seed=0)
    return [payload for batch in plan_records(rows_source(source, name="rows"), options) for payload in batch]


def rest_items(
    client: ArgillaClient, dataset_id: str, template: str, source: list[dict[str, Any]]
) -> list[Any]:
    """The request items `campaign seed` sends for these rows."""
    questions = client.question_index(dataset_id)
    return [record_body(payload, questions) for payload in planned(template, source)]


def call(server: RunningServer, method: str, path: str, **kwargs: Any) -> Any:
    return api(server.api_url, server.api_key, method, path, **kwargs)


def fast(server: RunningServer, dataset_id: str, items: list[Any]) -> Any:
    return call(server, "POST", FAST.format(id=dataset_id), json={"items": items})


def stock(server: RunningServer, dataset_id: str, items: list[Any]) -> Any:
    return call(server, "PUT", STOCK.format(id=dataset_id), json={"items": items})


def records(server: RunningServer, dataset_id: str) -> list[dict[str, Any]]:
    """Every record through the stock listing, in its order, with suggestions."""
    found = call(
        server, "GET", f"/datasets/{dataset_id}/records", params={"include": "suggestions", "limit": 1000}
    )
    assert found.status_code == 200, found.text
    return list(found.json()["items"])


def comparable(server: RunningServer, dataset_id: str) -> list[dict[str, Any]]:
    """Records without server ids and times; suggestions by question name."""
    names = {
        q["id"]: q["name"] for q in call(server, "GET", f"/datasets/{dataset_id}/questions").json()["items"]
    }
    return [
        {
            "external_id": r["external_id"],
            "fields": r["fields"],
            "metadata": r["metadata"],
            "status": r["status"],
            "same_times": r["inserted_at"] == r["updated_at"],
            "suggestions": sorted(
                (names[s["question_id"]], json.dumps(s["value"]), s["agent"], s["score"], s["type"])
                for s in r["suggestions"]
            ),
        }
        for r in records(server, dataset_id)
    ]


def search(
    server: RunningServer, dataset_id: str, body: dict[str, Any], api_key: str | None = None
) -> list[str]:
    """External ids of the records a search finds, as `campaign` and the web UI search."""
    found = api(
        server.api_url,
        api_key or server.api_key,
        "POST",
        f"/me/datasets/{dataset_id}/records/search" if api_key else f"/datasets/{dataset_id}/records/search",
        json=body,
        params={"limit": 1000},
    )
    assert found.status_code == 200, found.text
    return sorted(item["record"]["external_id"] for item in found.json()["items"])


def dataset_times(server: RunningServer, dataset_id: str) -> tuple[str, str]:
    dataset = call(server, "GET", f"/datasets/{dataset_id}").json()
    return dataset["updated_at"], dataset["last_activity_at"]


@pytest.fixture(scope="module")
def pair(local_server: RunningServer, owner: ArgillaClient) -> Iterator[dict[str, Any]]:
    """Two rating datasets with the same settings, filled with the same items by each path."""
    fast_id, stock_id = new_dataset(owner, "rating"), new_dataset(owner, "rating")
    items = rest_items(owner, fast_id, "rating", rows(40))
    assert rest_items(owner, stock_id, "rating", rows(40)) != items  # question ids differ per dataset
    before = {fast_id: dataset_times(local_server, fast_id), stock_id: dataset_times(local_server, stock_id)}
    written_fast = fast(local_server, fast_id, items)
    written_stock = stock(local_server, stock_id, rest_items(owner, stock_id, "rating", rows(40)))
    yield {
        "fast": fast_id,
        "stock": stock_id,
        "items": items,
        "answers": (written_fast, written_stock),
        "before": before,
    }


def test_the_fast_path_answers_with_counts_only(pair: dict[str, Any]) -> None:
    written_fast, written_stock = pair["answers"]
    assert written_fast.status_code == 200, written_fast.text
    assert written_fast.json() == {"created": 40, "already_present": 0}
    assert written_stock.status_code == 200, written_stock.text
    assert len(written_stock.json()["items"]) == 40


def test_records_read_back_equal(local_server: RunningServer, pair: dict[str, Any]) -> None:
    via_fast = comparable(local_server, pair["fast"])
    via_stock = comparable(local_server, pair["stock"])
    assert len(via_fast) == 40
    assert via_fast == via_stock  # the same order too: records list by insertion time
    assert all(r["status"] == "pending" and r["suggestions"] for r in via_fast)
    assert {s[2] for r in via_fast for s in r["suggestions"]} == {JUDGE}
    assert {s[4] for r in via_fast for s in r["suggestions"]} == {"model"}


def test_the_lean_sync_endpoints_read_them_equal(
    local_server: RunningServer, owner: ArgillaClient, pair: dict[str, Any]
) -> None:
    def lean(dataset_id: str) -> list[Any]:
        return [
            (
                r["external_id"],
                r["fields"],
                r["metadata"],
                r["status"],
                sorted(json.dumps(s["value"]) for s in r["suggestions"]),
            )
            for page in owner.iter_records(dataset_id)
            for r in page
        ]

    assert lean(pair["fast"]) == lean(pair["stock"])


def test_the_dataset_row_changes_alike(local_server: RunningServer, pair: dict[str, Any]) -> None:
    # Upstream's bulk upsert leaves the dataset's updated_at and last_activity_at alone; so must the fast path.
    for dataset_id in (pair["fast"], pair["stock"]):
        assert dataset_times(local_server, dataset_id) == pair["before"][dataset_id]


def test_progress_is_the_same(local_server: RunningServer, pair: dict[str, Any]) -> None:
    progress = [
        call(local_server, "GET", f"/datasets/{d}/progress").json() for d in (pair["fast"], pair["stock"])
    ]
    assert progress[0] == progress[1]
    assert progress[0]["total"] == 40


SEARCHES = {
    "text": {"query": {"text": {"q": "honest"}}},
    "text in a field": {"query": {"text": {"q": "Second", "field": "response_2"}}},
    "metadata terms": {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "metadata", "metadata_property": "model_1"},
                    "values": ["model-a"],
                }
            ]
        }
    },
    "metadata range": {
        "filters": {
            "and": [{"type": "range", "scope": {"entity": "metadata", "metadata_property": "round"}, "ge": 1}]
        }
    },
    "suggestion value": {
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "suggestion", "question": "rating_1", "property": "value"},
                    "ge": 4,
                }
            ]
        }
    },
    "suggestion agent": {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "suggestion", "question": "rating_2", "property": "agent"},
                    "values": [JUDGE],
                }
            ]
        }
    },
    "record status": {
        "filters": {
            "and": [
                {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]}
            ]
        }
    },
}


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_the_same_searches_find_the_same_records(
    local_server: RunningServer, pair: dict[str, Any], name: str
) -> None:
    found_fast = search(local_server, pair["fast"], SEARCHES[name])
    found_stock = search(local_server, pair["stock"], SEARCHES[name])
    assert found_fast == found_stock
    assert 0 < len(found_fast) <= 40


def test_annotators_see_the_same_records_and_responses_work(
    local_server: RunningServer, owner: ArgillaClient, pair: dict[str, Any]
) -> None:
    workspace = owner.require_workspace("fastpath")
    annotator = create_annotator(
        local_server.api_url, local_server.api_key, f"fast-{uuid.uuid4().hex[:6]}", str(workspace["id"])
    )
    pending = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["pending"],
                }
            ]
        }
    }
    assert search(local_server, pair["fast"], pending, annotator["api_key"]) == search(
        local_server, pair["stock"], pending, annotator["api_key"]
    )
    # The annotator answers the same record in both datasets: status and progress move alike.
    target = pair["items"][0]["external_id"]
    for dataset_id in (pair["fast"], pair["stock"]):
        record = next(r for r in records(local_server, dataset_id) if r["external_id"] == target)
        submit(local_server.api_url, annotator["api_key"], record["id"], {"rating_1": 4, "rating_2": 2})
    after = [search(local_server, d, pending, annotator["api_key"]) for d in (pair["fast"], pair["stock"])]
    assert after[0] == after[1] and target not in after[0] and len(after[0]) == 39
    progress = [
        call(local_server, "GET", f"/datasets/{d}/progress").json() for d in (pair["fast"], pair["stock"])
    ]
    assert progress[0] == progress[1]
    assert progress[0]["completed"] == 1
    assert comparable(local_server, pair["fast"]) == comparable(local_server, pair["stock"])


def test_ranking_suggestions_are_stored_alike(local_server: RunningServer, owner: ArgillaClient) -> None:
    fast_id, stock_id = new_dataset(owner, "ranking"), new_dataset(owner, "ranking")
    assert fast(local_server, fast_id, rest_items(owner, fast_id, "ranking", rows(12))).status_code == 200
    assert stock(local_server, stock_id, rest_items(owner, stock_id, "ranking", rows(12))).status_code == 200
    via_fast = comparable(local_server, fast_id)
    assert via_fast == comparable(local_server, stock_id)
    assert all(r["suggestions"] for r in via_fast)
    ranked = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "suggestion", "question": "ranking", "property": "agent"},
                    "values": [JUDGE],
                }
            ]
        }
    }
    assert search(local_server, fast_id, ranked) == search(local_server, stock_id, ranked) != []


# -- bad payloads: the same status and detail from both paths ----------------------------------------


def _bad_payloads(item: dict[str, Any], question_id: str, unknown: str) -> dict[str, Any]:
    def with_(**changes: Any) -> dict[str, Any]:
        return {**item, **changes}

    suggestion = item["suggestions"][0]
    return {
        "no items": {"items": []},
        "too many items": {"items": [with_(external_id=f"x{i}") for i in range(501)]},
        "not a list": {"items": "nope"},
        "duplicate external ids": {"items": [item, item]},
        "missing field": {"items": [with_(fields={"prompt": "p", "response_1": "a"})]},
        "unknown field": {"items": [with_(fields={**item["fields"], "extra": "x"})]},
        "empty fields": {"items": [with_(fields={})]},
        "field is a dict": {"items": [with_(fields={**item["fields"], "prompt": {"a": 1}})]},
        "unknown metadata": {"items": [with_(metadata={**item["metadata"], "nope": "x"})]},
        "metadata of the wrong type": {"items": [with_(metadata={**item["metadata"], "round": "one"})]},
        "unknown question": {"items": [with_(suggestions=[{**suggestion, "question_id": unknown}])]},
        "rating out of range": {"items": [with_(suggestions=[{**suggestion, "value": 9}])]},
        "score above 1": {"items": [with_(suggestions=[{**suggestion, "score": 2.0}])]},
        "bad agent": {"items": [with_(suggestions=[{**suggestion, "agent": "!!"}])]},
        "bad suggestion type": {"items": [with_(suggestions=[{**suggestion, "type": "oracle"}])]},
        "duplicate suggestions": {"items": [with_(suggestions=[suggestion, suggestion])]},
        "third of four is bad": {
            "items": [with_(external_id=f"ok{i}") for i in range(2)]
            + [with_(external_id="bad", fields={})]
            + [with_(external_id="ok3")]
        },
        "a question of another dataset": {
            "items": [with_(suggestions=[{**suggestion, "question_id": question_id}])]
        },
    }


def test_bad_payloads_get_the_same_errors(local_server: RunningServer, owner: ArgillaClient) -> None:
    fast_id, stock_id = new_dataset(owner, "rating"), new_dataset(owner, "rating")
    other_question = owner.questions(new_dataset(owner, "rating"))[0]["id"]
    unknown = str(uuid.uuid4())
    # The same question ids in both bodies: the stock dataset's suggestions name the fast dataset's ids.
    fast_item = rest_items(owner, fast_id, "rating", rows(1))[0]
    stock_item = rest_items(owner, stock_id, "rating", rows(1))[0]
    fast_bad, stock_bad = (
        _bad_payloads(fast_item, other_question, unknown),
        _bad_payloads(stock_item, other_question, unknown),
    )
    for name in fast_bad:
        got_fast = fast(local_server, fast_id, fast_bad[name]["items"])
        got_stock = stock(local_server, stock_id, stock_bad[name]["items"])
        assert got_stock.status_code == 422, (name, got_stock.text)
        assert (got_fast.status_code, _detail(got_fast, fast_id)) == (
            got_stock.status_code,
            _detail(got_stock, stock_id),
        ), name
    assert comparable(local_server, fast_id) == comparable(local_server, stock_id) == []


def _detail(response: Any, dataset_id: str) -> str:
    """The error detail, with dataset and question ids (which differ between the datasets) masked."""
    return str(response.json()["detail"]).replace(dataset_id, "<dataset>")


def test_missing_dataset_and_annotator_key_are_refused_alike(
    local_server: RunningServer, owner: ArgillaClient
) -> None:
    dataset_id = new_dataset(owner, "rating")
    item = rest_items(owner, dataset_id, "rating", rows(1))[0]
    missing = str(uuid.uuid4())
    assert (fast(local_server, missing, [item]).json(), fast(local_server, missing, [item]).status_code) == (
        stock(local_server, missing, [item]).json(),
        404,
    )
    workspace = owner.require_workspace("fastpath")
    annotator = create_annotator(
        local_server.api_url, local_server.api_key, f"fast-{uuid.uuid4().hex[:6]}", str(workspace["id"])
    )
    as_annotator = [
        api(
            local_server.api_url,
            annotator["api_key"],
            method,
            path.format(id=dataset_id),
            json={"items": [item]},
        )
        for method, path in (("POST", FAST), ("PUT", STOCK))
    ]
    assert [r.status_code for r in as_annotator] == [403, 403]
    assert as_annotator[0].json() == as_annotator[1].json()
    assert records(local_server, dataset_id) == []


# -- idempotency, concurrency and fallbacks ------------------------------------------------------------


def test_the_same_batch_twice_adds_nothing(local_server: RunningServer, owner: ArgillaClient) -> None:
    dataset_id = new_dataset(owner, "rating")
    items = rest_items(owner, dataset_id, "rating", rows(30))
    assert fast(local_server, dataset_id, items[:10]).json() == {"created": 10, "already_present": 0}
    assert fast(local_server, dataset_id, items).json() == {"created": 20, "already_present": 10}
    assert fast(local_server, dataset_id, items).json() == {"created": 0, "already_present": 30}
    external_ids = [r["external_id"] for r in records(local_server, dataset_id)]
    assert sorted(external_ids) == sorted(i["external_id"] for i in items)
    assert call(local_server, "GET", f"/datasets/{dataset_id}/progress").json()["total"] == 30
    # The index holds each record once.
    assert len(search(local_server, dataset_id, {"query": {"text": {"q": "answer"}}})) == 30


def test_concurrent_batches_add_each_record_once(local_server: RunningServer, owner: ArgillaClient) -> None:
    dataset_id = new_dataset(owner, "rating")
    items = rest_items(owner, dataset_id, "rating", rows(200))
    answers: list[dict[str, Any]] = []

    def send() -> None:
        answers.append(fast(local_server, dataset_id, items).json())

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a["created"] for a in answers) == 200
    assert all(a["created"] + a["already_present"] == 200 for a in answers)
    assert len(records(local_server, dataset_id)) == 200
    assert len(search(local_server, dataset_id, {"query": {"text": {"q": "answer"}}})) == 200


def test_write_plan_counts_and_resumes_through_the_fast_path(
    local_server: RunningServer, owner: ArgillaClient
) -> None:
    dataset_id = new_dataset(owner, "rating")
    options = SeedOptions(template="rating", responses=2, round=1, source_name="fast-path", seed=0)
    seen: list[tuple[int, int]] = []
    first = write_plan(
        owner,
        dataset_id,
        plan_records(rows_source(rows(700), name="rows"), options),
        on_batch=lambda c, p: seen.append((c, p)),
    )
    assert (first.created, first.already_present) == (700, 0)
    assert sum(c for c, _ in seen) == 700
    again = write_plan(owner, dataset_id, plan_records(rows_source(rows(900), name="rows"), options))
    assert (again.created, again.already_present) == (200, 700)
    assert owner.dataset_progress(dataset_id)["total"] == 900
    assert owner._extensions is True  # the local server's endpoint did the writing


def test_stock_path_on_request(
    local_server: RunningServer, owner: ArgillaClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id = new_dataset(owner, "rating")
    options = SeedOptions(template="rating", responses=2, round=1, source_name="fast-path", seed=0)
    calls: list[str] = []
    original = owner.request

    def spy(method: str, path: str, **kwargs: Any) -> Any:
        calls.append(f"{method} {path.split('/records')[-1]}")
        return original(method, path, **kwargs)

    monkeypatch.setattr(owner, "request", spy)
    monkeypatch.setenv("CAMPAIGN_SEED_FAST_PATH", "0")
    outcome = write_plan(owner, dataset_id, plan_records(rows_source(rows(30), name="rows"), options))
    assert outcome.created == 30
    assert "PUT /bulk" in calls and "POST /create-bulk" not in calls


def test_items_the_fast_path_declines_go_through_the_stock_endpoint(
    local_server: RunningServer, owner: ArgillaClient
) -> None:
    dataset_id = new_dataset(owner, "rating")
    items = rest_items(owner, dataset_id, "rating", rows(3))
    user_id = owner.me()["id"]
    questions = {q["name"]: q["id"] for q in owner.questions(dataset_id)}
    items[1]["responses"] = [
        {
            "user_id": user_id,
            "status": "submitted",
            "values": {"rating_1": {"value": 3}, "rating_2": {"value": 5}},
        }
    ]
    declined = fast(local_server, dataset_id, items)
    assert declined.status_code == 409
    assert declined.json()["detail"]["code"] == "campaign_fast_path_unavailable"
    assert records(local_server, dataset_id) == []
    assert owner._create_bodies(dataset_id, items) == (3, 0)
    stored = records(local_server, dataset_id)
    assert len(stored) == 3 and sum(r["status"] == "completed" for r in stored) == 1
    assert questions  # the responses named real questions


def test_an_enabled_webhook_on_record_events_makes_the_fast_path_decline(
    local_server: RunningServer, owner: ArgillaClient
) -> None:
    dataset_id = new_dataset(owner, "rating")
    items = rest_items(owner, dataset_id, "rating", rows(2))
    created = call(
        local_server,
        "POST",
        "/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["record.created"]},
    )
    assert created.status_code == 201, created.text
    try:
        declined = fast(local_server, dataset_id, items)
        assert declined.status_code == 409
        assert "webhook" in declined.json()["detail"]["message"]
        assert records(local_server, dataset_id) == []
        disabled = call(local_server, "PATCH", f"/webhooks/{created.json()['id']}", json={"enabled": False})
        assert disabled.status_code == 200, disabled.text
        assert fast(local_server, dataset_id, items).json() == {"created": 2, "already_present": 0}
    finally:
        call(local_server, "DELETE", f"/webhooks/{created.json()['id']}")


def test_other_servers_fall_back_to_the_stock_endpoint(
    local_server: RunningServer, owner: ArgillaClient
) -> None:
    dataset_id = new_dataset(owner, "rating")
    client = ArgillaClient(local_server.api_url, local_server.api_key)
    client._extensions = False  # what the client concludes from a stock server's 404
    items = planned("rating", rows(5))
    assert client.create_records(dataset_id, items, questions=client.question_index(dataset_id)) == (5, 0)
    assert len(records(local_server, dataset_id)) == 5


def test_a_server_without_the_endpoint_keeps_its_other_extensions(
    local_server: RunningServer, owner: ArgillaClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.errors import NotFound

    dataset_id = new_dataset(owner, "rating")
    client = ArgillaClient(local_server.api_url, local_server.api_key)
    original = client.request

    def older_server(method: str, path: str, **kwargs: Any) -> Any:
        if path.endswith("/create-bulk"):
            raise NotFound(f"Not found on {local_server.api_url}: {path} (Not Found).")
        return original(method, path, **kwargs)

    monkeypatch.setattr(client, "request", older_server)
    items = planned("rating", rows(5))
    assert client.create_records(dataset_id, items, questions=client.question_index(dataset_id)) == (5, 0)
    assert client.record_fingerprints(dataset_id) is not None  # the sync endpoints are still used
    assert client._extensions is True


# -- PostgreSQL ----------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_fast_path_on_postgresql(postgres_database: str, tmp_path: Path) -> None:  # noqa: F811
    from campaign.config import read_credentials
    from campaign.server.control.local_server import LocalServer, ServerOptions, free_port

    server = LocalServer(tmp_path / "home")
    server.start(ServerOptions(port=free_port(), database_url=postgres_database), timeout=120)
    try:
        creds = read_credentials(server.credentials_file)
        running = RunningServer(
            tmp_path / "home", creds["api_url"], creds["api_key"], creds["username"], creds["password"]
        )
        client = ArgillaClient(running.api_url, running.api_key)
        fast_id, stock_id = new_dataset(client, "ranking"), new_dataset(client, "ranking")
        items = rest_items(client, fast_id, "ranking", rows(60))
        assert fast(running, fast_id, items[:20]).json() == {"created": 20, "already_present": 0}
        answers: list[dict[str, Any]] = []
        threads = [
            threading.Thread(target=lambda: answers.append(fast(running, fast_id, items).json()))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(a["created"] for a in answers) == 40
        assert all(a["already_present"] >= 20 for a in answers)
        assert stock(running, stock_id, rest_items(client, stock_id, "ranking", rows(60))).status_code == 200
        assert comparable(running, fast_id) == comparable(running, stock_id)
        for body in (SEARCHES["text"], SEARCHES["metadata terms"], SEARCHES["record status"]):
            assert search(running, fast_id, body) == search(running, stock_id, body) != []
        progress = [call(running, "GET", f"/datasets/{d}/progress").json() for d in (fast_id, stock_id)]
        assert progress[0] == progress[1] and progress[0]["total"] == 60
        bad = {**items[0], "external_id": "bad", "fields": {}}
        got = [fast(running, fast_id, [bad]), stock(running, stock_id, [{**bad, "suggestions": []}])]
        assert [r.status_code for r in got] == [422, 422]
        assert _detail(got[0], fast_id) == _detail(got[1], stock_id)
    finally:
        server.stop()
