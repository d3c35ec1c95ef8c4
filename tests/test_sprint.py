"""A short community sprint on the real local server: 20+ annotators at once, no 5xx, nothing lost.

Each annotator loops "fetch my pending queue, submit a rating for its first record" for a few
seconds, as the web UI does. Then: no answer was a 5xx or a dropped connection, and every
acknowledged response is stored exactly once. Also the faults a sprint meets: two tabs submitting
for the same record, and a record deleted while a queue that shows it is open.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import requests

from tests.conftest import RunningServer
from tests.server_helpers import api, create_annotator

N_ANNOTATORS = 20
N_RECORDS = 200
SPRINT_SECONDS = 4.0
QUEUE_BODY = {
    "filters": {
        "and": [
            {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]},
            {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
        ]
    }
}
QUEUE_PARAMS = [("include", "responses"), ("include", "suggestions"), ("limit", "10")]


@pytest.fixture(scope="module")
def sprint_dataset(local_server: RunningServer) -> tuple[str, str]:
    """A rating dataset (hidden model metadata, min_submitted 3) with N_RECORDS records: (workspace, dataset) ids."""
    import argilla as rg

    client = local_server.client()
    workspace = rg.Workspace(name="sprint", client=client).create()
    settings = rg.Settings(
        fields=[rg.TextField(name="prompt"), rg.TextField(name="response_1")],
        questions=[rg.RatingQuestion(name="rating_1", values=[1, 2, 3, 4, 5])],
        metadata=[
            rg.TermsMetadataProperty(name="language"),
            rg.TermsMetadataProperty(name="model_1", visible_for_annotators=False),
        ],
        distribution=rg.TaskDistribution(min_submitted=3),
    )
    dataset = rg.Dataset(name="sprint", workspace="sprint", settings=settings, client=client).create()
    dataset.records.log(
        [
            rg.Record(
                fields={"prompt": f"prompt {i}", "response_1": f"answer {i}"},
                metadata={"language": "nl", "model_1": f"model-{i % 3}"},
                suggestions=[rg.Suggestion("rating_1", 1 + i % 5, agent="judge")],
            )
            for i in range(N_RECORDS)
        ]
    )
    return str(workspace.id), str(dataset.id)


def _queue(server: RunningServer, api_key: str, dataset_id: str) -> requests.Response:
    return api(
        server.api_url,
        api_key,
        "POST",
        f"/me/datasets/{dataset_id}/records/search",
        params=QUEUE_PARAMS,
        json=QUEUE_BODY,
    )


def _submit(server: RunningServer, api_key: str, record_id: str, value: int) -> requests.Response:
    body = {"status": "submitted", "values": {"rating_1": {"value": value}}}
    return api(server.api_url, api_key, "POST", f"/records/{record_id}/responses", json=body)


def _stored(server: RunningServer, dataset_id: str) -> Counter[tuple[str, str]]:
    """How many responses are stored per (record id, user id)."""
    found = api(
        server.api_url,
        server.api_key,
        "GET",
        f"/datasets/{dataset_id}/records",
        params={"include": "responses", "limit": 1000},
    )
    found.raise_for_status()
    return Counter(
        (record["id"], response["user_id"])
        for record in found.json()["items"]
        for response in record.get("responses") or []
    )


def test_twenty_annotators_at_once_get_no_errors_and_lose_nothing(
    local_server: RunningServer, sprint_dataset: tuple[str, str]
) -> None:
    workspace_id, dataset_id = sprint_dataset
    annotators = [
        create_annotator(
            local_server.api_url, local_server.api_key, f"sprint-{uuid.uuid4().hex[:6]}", workspace_id
        )
        for _ in range(N_ANNOTATORS)
    ]
    acknowledged: list[tuple[str, str]] = []
    failures: list[str] = []
    start = threading.Barrier(N_ANNOTATORS)

    def annotate(annotator: dict[str, Any]) -> None:
        start.wait()
        deadline = time.monotonic() + SPRINT_SECONDS
        while time.monotonic() < deadline:
            try:
                queue = _queue(local_server, annotator["api_key"], dataset_id)
                if queue.status_code != 200:
                    failures.append(f"queue: {queue.status_code} {queue.text[:200]}")
                    continue
                items = queue.json()["items"]
                if any(set(item["record"]["metadata"]) != {"language"} for item in items):
                    failures.append("queue: metadata hidden from annotators was shown")
                if not items:
                    return
                record_id = items[0]["record"]["id"]
                submitted = _submit(local_server, annotator["api_key"], record_id, 1 + len(acknowledged) % 5)
            except requests.RequestException as error:
                failures.append(f"dropped: {error!r}")
                continue
            if submitted.status_code == 201:
                acknowledged.append((record_id, annotator["id"]))
            else:
                failures.append(f"submit: {submitted.status_code} {submitted.text[:200]}")

    threads = [threading.Thread(target=annotate, args=(annotator,)) for annotator in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(acknowledged) >= N_ANNOTATORS
    stored = _stored(local_server, dataset_id)
    ours = {annotator["id"] for annotator in annotators}
    assert Counter(acknowledged) == Counter({key: n for key, n in stored.items() if key[1] in ours})
    assert set(stored.values()) == {1}


def test_two_tabs_submitting_for_one_record_get_a_conflict_not_a_500(
    local_server: RunningServer, sprint_dataset: tuple[str, str]
) -> None:
    workspace_id, dataset_id = sprint_dataset
    annotator = create_annotator(local_server.api_url, local_server.api_key, "two-tabs", workspace_id)
    record_id = _queue(local_server, annotator["api_key"], dataset_id).json()["items"][0]["record"]["id"]
    answers: list[int] = []

    def tab(value: int) -> None:
        answers.append(_submit(local_server, annotator["api_key"], record_id, value).status_code)

    tabs = [threading.Thread(target=tab, args=(value,)) for value in (2, 4)]
    for thread in tabs:
        thread.start()
    for thread in tabs:
        thread.join()

    assert sorted(answers) == [201, 409]
    assert _stored(local_server, dataset_id)[(record_id, annotator["id"])] == 1


def test_a_record_deleted_while_its_queue_is_open(
    local_server: RunningServer, sprint_dataset: tuple[str, str]
) -> None:
    workspace_id, dataset_id = sprint_dataset
    annotator = create_annotator(local_server.api_url, local_server.api_key, "deleted-under", workspace_id)
    shown = [
        item["record"]["id"]
        for item in _queue(local_server, annotator["api_key"], dataset_id).json()["items"]
    ]
    api(
        local_server.api_url,
        local_server.api_key,
        "DELETE",
        f"/datasets/{dataset_id}/records",
        params={"ids": shown[0]},
    ).raise_for_status()

    refreshed = _queue(local_server, annotator["api_key"], dataset_id)
    assert refreshed.status_code == 200
    assert shown[0] not in {item["record"]["id"] for item in refreshed.json()["items"]}
    assert _submit(local_server, annotator["api_key"], shown[0], 3).status_code == 404
