"""The speed-ups change nothing observable: the same requests to a patched and a stock server give the same
answers, including the validation errors for bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.config import read_credentials
from campaign.server.control.local_server import LocalServer, ServerOptions, free_port
from tests.server_helpers import api, create_annotator, submit

VOLATILE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4}-\d{2}-\d{2}T[0-9:.]+|rnd-[0-9a-f]+"
)


def _normalise(value: Any) -> Any:
    """Replace ids and timestamps, which differ between servers by nature, with placeholders."""
    if isinstance(value, dict):
        return {
            k: _normalise(v) for k, v in sorted(value.items()) if k not in ("id", "inserted_at", "updated_at")
        }
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        return VOLATILE.sub("<volatile>", value)
    return value


@pytest.fixture(scope="module")
def stock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second local server running argilla-server's stock code path."""
    server = LocalServer(tmp_path_factory.mktemp("stock-home"))
    server.start(ServerOptions(port=free_port(), speedups=False), timeout=120)
    creds = read_credentials(server.credentials_file)
    try:
        yield type(
            "Stock", (), {"api_url": creds["api_url"], "api_key": creds["api_key"], "home": Path(server.home)}
        )
    finally:
        server.stop()


def _scenario(server: Any) -> list[Any]:
    """Create a dataset, log good and bad records, answer, and read everything back; return every answer."""
    url, key = server.api_url, server.api_key
    out: list[Any] = []

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = api(url, key, method, path, **kwargs)
        body = response.json() if response.content else None
        out.append((method, re.sub(r"/[0-9a-f-]{36}", "/<id>", path), response.status_code, _normalise(body)))
        return body

    workspace = call("POST", "/workspaces", json={"name": "parity"})
    dataset = call(
        "POST",
        "/datasets",
        json={
            "name": "parity",
            "workspace_id": workspace["id"],
            "distribution": {"strategy": "overlap", "min_submitted": 1},
        },
    )
    ds = dataset["id"]
    call(
        "POST",
        f"/datasets/{ds}/fields",
        json={"name": "prompt", "title": "Prompt", "settings": {"type": "text"}},
    )
    rating = call(
        "POST",
        f"/datasets/{ds}/questions",
        json={
            "name": "rating",
            "title": "Rating",
            "settings": {"type": "rating", "options": [{"value": v} for v in range(1, 6)]},
        },
    )
    label = call(
        "POST",
        f"/datasets/{ds}/questions",
        json={
            "name": "label",
            "title": "Label",
            "required": False,
            "settings": {
                "type": "label_selection",
                "options": [{"value": "good", "text": "good"}, {"value": "bad", "text": "bad"}],
            },
        },
    )
    call(
        "POST",
        f"/datasets/{ds}/metadata-properties",
        json={"name": "source", "title": "Source", "settings": {"type": "terms"}},
    )
    call(
        "POST",
        f"/datasets/{ds}/metadata-properties",
        json={"name": "round", "title": "Round", "settings": {"type": "integer"}},
    )
    call("PUT", f"/datasets/{ds}/publish")
    good = [
        {
            "external_id": f"r{i}",
            "fields": {"prompt": f"prompt {i}"},
            "metadata": {"source": "a", "round": i},
            "suggestions": [
                {"question_id": rating["id"], "value": 1 + i % 5, "agent": "judge", "type": "model"},
                {"question_id": label["id"], "value": "good"},
            ],
        }
        for i in range(5)
    ]
    call("PUT", f"/datasets/{ds}/records/bulk", json={"items": good})
    bad_batches = [
        [{"external_id": "x", "fields": {"prompt": "p"}, "metadata": {"round": "not a number"}}],
        [{"external_id": "x", "fields": {"prompt": "p"}, "metadata": {"unknown": 1}}],
        [
            {
                "external_id": "x",
                "fields": {"prompt": "p"},
                "suggestions": [{"question_id": rating["id"], "value": 9}],
            }
        ],
        [
            {
                "external_id": "x",
                "fields": {"prompt": "p"},
                "suggestions": [{"question_id": label["id"], "value": "maybe"}],
            }
        ],
        [{"external_id": "x", "fields": {"missing": "p"}}],
    ]
    for batch in bad_batches:
        call("PUT", f"/datasets/{ds}/records/bulk", json={"items": batch})
    annotator = create_annotator(url, key, "parity-annotator", workspace["id"])
    records = call("GET", f"/datasets/{ds}/records", params={"include": ["responses", "suggestions"]})
    first = records["items"][0]["id"]
    submit(url, annotator["api_key"], first, {"rating": 4, "label": "bad"})
    bad = api(
        url,
        annotator["api_key"],
        "POST",
        f"/records/{records['items'][1]['id']}/responses",
        json={"status": "submitted", "values": {"rating": {"value": 7}}},
    )
    out.append(("POST", "/records/<id>/responses", bad.status_code, _normalise(bad.json())))
    call("GET", f"/datasets/{ds}/records", params={"include": ["responses", "suggestions"]})
    call("GET", f"/datasets/{ds}/progress")
    body = {
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "metadata", "metadata_property": "round"},
                    "ge": 1,
                    "le": 3,
                }
            ]
        }
    }
    # Each user sees records in an order of their own (keyed by user id, which differs between the
    # servers), so compare the found records, not their order.
    search = api(url, key, "POST", f"/me/datasets/{ds}/records/search", json=body).json()
    assert "items" in search, search
    found = sorted(
        (_normalise(item) for item in search["items"]), key=lambda item: item["record"]["external_id"]
    )
    out.append(("search", search["total"], found))
    return out


@pytest.mark.usefixtures("stock_server")
def test_the_same_requests_get_the_same_answers_with_and_without_speedups(
    local_server: Any, stock_server: Any
) -> None:
    patched = _scenario(local_server)
    stock = _scenario(stock_server)
    assert len(patched) == len(stock)
    for ours, theirs in zip(patched, stock, strict=True):
        assert ours == theirs
    statuses = [entry[2] for entry in stock if len(entry) == 4]
    assert statuses.count(422) >= 5  # the bad batches were rejected, identically, by both
