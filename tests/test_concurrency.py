"""Concurrency (issue 8, item 5): annotators submit while `campaign status` and `campaign export` run.

Every run must succeed, every snapshot a reader sees must be whole (its content matches its id), and
after the annotators stop, a final sync matches a later one and the server's own counts.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.client import ArgillaClient
from tests.conftest import RunningServer
from tests.server_helpers import create_annotator, submit
from tests.test_faults import annotate, campaign_cli, server_counts, snapshot_counts
from tests.test_seed_server import comparison_rows, new_campaign, server_records, write_rows


def test_status_and_export_while_annotators_submit(
    local_server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from campaign.snapshot import content_id, load_snapshot

    server = local_server
    server.use(monkeypatch)
    client = ArgillaClient(server.api_url, server.api_key)
    campaign_dir = tmp_path / "c"
    name = new_campaign(CliRunner(mix_stderr=False), campaign_dir, "rating", "--responses", "2")
    source = write_rows(tmp_path / "rows.parquet", comparison_rows(200, 2))
    seeded = campaign_cli(
        server.api_url, server.api_key, "seed", str(source), "--campaign", str(campaign_dir)
    )
    assert seeded.returncode == 0, seeded.stderr
    annotate(server.api_url, server.api_key, client, name, count=5)  # something to export from the start
    first = campaign_cli(server.api_url, server.api_key, "status", "--campaign", str(campaign_dir), "--json")
    assert first.returncode == 0, first.stderr

    workspace_id = str(client.require_workspace(name)["id"])
    records = server_records(client, name)[5:65]
    stop = threading.Event()
    errors: list[str] = []

    def annotator(offset: int) -> None:
        user = create_annotator(server.api_url, server.api_key, f"c-{uuid.uuid4().hex[:6]}", workspace_id)
        for i, record in enumerate(records[offset::2]):
            if stop.is_set():
                return
            submit(server.api_url, user["api_key"], record["id"], {"rating_1": 1 + i % 5, "rating_2": 2})

    def reader() -> None:
        while not stop.is_set():
            snapshot = load_snapshot(campaign_dir)
            seen = content_id(snapshot.records, snapshot.responses, snapshot.suggestions)
            if seen != snapshot.snapshot_id:
                errors.append(f"mixed snapshot: content {seen}, meta {snapshot.snapshot_id}")

    annotators = [threading.Thread(target=annotator, args=(k,)) for k in (0, 1)]
    check = threading.Thread(target=reader)
    for thread in [*annotators, check]:
        thread.start()
    runs = 0
    try:
        while any(t.is_alive() for t in annotators) or runs < 2:
            status = campaign_cli(
                server.api_url, server.api_key, "status", "--campaign", str(campaign_dir), "--json"
            )
            assert status.returncode == 0, status.stderr
            out = tmp_path / f"export-{runs}"
            exported = campaign_cli(
                server.api_url, server.api_key, "export", "--campaign", str(campaign_dir), "--format", "dpo",
                "--out", str(out), "--json",
            )  # fmt: skip
            assert exported.returncode == 0, exported.stderr
            assert (out / "manifest.json").is_file()
            runs += 1
    finally:
        for thread in annotators:
            thread.join(timeout=120)
        stop.set()
        check.join(timeout=30)
    assert errors == []

    final = campaign_cli(server.api_url, server.api_key, "status", "--campaign", str(campaign_dir), "--json")
    assert final.returncode == 0, final.stderr
    after_final = snapshot_counts(campaign_dir)
    later = campaign_cli(server.api_url, server.api_key, "status", "--campaign", str(campaign_dir), "--json")
    assert later.returncode == 0, later.stderr
    assert snapshot_counts(campaign_dir) == after_final == server_counts(client, name)
    progress = client.dataset_progress(str(client.require_dataset(name, name)["id"]))
    report = json.loads(later.stdout)
    assert after_final["records"] == progress["total"] == 200
    assert after_final["submitted"] == 2 * 5 + 60
    assert report["progress"]["totals"]["completed"] == progress["completed"] == 5
