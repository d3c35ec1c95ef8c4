"""Status benchmark: snapshot sync (first and incremental) against SDK iteration, and agreement at scale.

Run:  .venv/bin/python benchmarks/status.py [--records 20000] [--annotators 3] [--repeats 3] [--no-write]

It starts its own local server in a temp dir, fills a rating campaign with responses through the bulk
API, then measures in one run:
  - iterating the dataset with the SDK, `records(with_responses=True)` (the baseline);
  - the first `sync_snapshot` (target: no slower than the SDK iteration), `--repeats` times, each into a
    fresh campaign folder;
  - a re-sync after 1% of the responses changed (target: <= 10% of the first sync), `--repeats` times,
    each after another 1% changed;
  - `campaign_agreement` over 100k units x 5 annotators (target: < 1 s).
Sync figures are medians, with the range of the repeats in the note: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import publish


def _fill(client: Any, dataset_id: str, users: list[str], n: int, rng: random.Random) -> None:
    """Records with submitted ratings from every annotator, 500 per bulk request."""
    from campaign.client import StoredRecord, StoredResponse, StoredSuggestion

    questions = {q["name"]: q["id"] for q in client.questions(dataset_id)}
    for start in range(0, n, 500):
        items = []
        for i in range(start, min(n, start + 500)):
            items.append(
                StoredRecord(
                    external_id=f"rec-{i}",
                    fields={"prompt": f"prompt {i}", "response_1": f"first {i}", "response_2": f"second {i}"},
                    metadata={"prompt_id": f"p{i}", "round": 1},
                    suggestions=[StoredSuggestion("rating_1", rng.randint(1, 5), agent="judge")],
                    responses=[
                        StoredResponse(
                            user,
                            "submitted",
                            {
                                "rating_1": {"value": rng.randint(1, 5)},
                                "rating_2": {"value": rng.randint(1, 5)},
                            },
                        )
                        for user in users
                    ],
                )
            )
        client.upsert_records(dataset_id, items, question_ids=questions)


def measure_sync(n_records: int, n_annotators: int, repeats: int = 3) -> dict[str, Any]:
    """Seconds for SDK iteration, first syncs and 1% re-syncs (`repeats` of each) on one server."""
    import argilla as rg

    from campaign.campaign_file import init_campaign
    from campaign.client import ArgillaClient
    from campaign.config import read_credentials
    from campaign.server.control.local_server import LocalServer, ServerOptions, free_port
    from campaign.snapshot import snapshot_dir, sync_snapshot
    from campaign.templates import ensure_dataset

    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        server = LocalServer(Path(tmp) / "home")
        server.start(ServerOptions(port=free_port()), timeout=120)
        try:
            creds = read_credentials(server.credentials_file)
            client = ArgillaClient(creds["api_url"], creds["api_key"])
            campaign = init_campaign(
                Path(tmp) / "bench", template="rating", responses=2, min_submitted=2
            ).campaign
            result = ensure_dataset(campaign, campaign.build_settings(), client=client)
            workspace = client.require_workspace(campaign.workspace)
            users = []
            for k in range(n_annotators):
                user = client.create_user(
                    username=f"bench-{k}", password="bench-password", role="annotator", first_name="bench"
                )
                client.add_to_workspace(workspace["id"], str(user["id"]))
                users.append(str(user["id"]))
            _fill(client, result.dataset_id, users, n_records, rng)

            sdk = rg.Argilla(api_url=creds["api_url"], api_key=creds["api_key"])
            dataset = sdk.datasets(campaign.name, workspace=campaign.workspace)
            started = time.perf_counter()
            count = sum(1 for _ in dataset.records(with_responses=True, with_suggestions=True))
            sdk_seconds = time.perf_counter() - started
            assert count == n_records

            sync = dict(dataset_name=campaign.name, workspace=campaign.workspace, template="rating")
            first_seconds = []
            for _ in range(repeats):  # each into an empty snapshot folder, so each is a full sync
                shutil.rmtree(snapshot_dir(campaign.directory), ignore_errors=True)
                started = time.perf_counter()
                _, first = sync_snapshot(client, campaign.directory, **sync)
                first_seconds.append(time.perf_counter() - started)
                assert first.mode == "full", first

            again_seconds, changed_records = [], []
            for k in range(repeats):
                # Change 1% of the responses: new values for one annotator's response on 3% of the
                # records when there are 3 annotators (another draw, and another value, each time).
                changed = rng.sample(range(n_records), max(1, n_records * n_annotators // 100))
                records = client.records_by_id(
                    result.dataset_id,
                    [r["id"] for r in _ids(client, result.dataset_id, [f"rec-{i}" for i in changed])],
                )
                value = 1 + k % 5
                for record in records:
                    response = record["responses"][0]
                    client.request(
                        "PUT",
                        f"/responses/{response['id']}",
                        json={
                            "values": {"rating_1": {"value": value}, "rating_2": {"value": value}},
                            "status": "submitted",
                        },
                    )
                started = time.perf_counter()
                _, again = sync_snapshot(client, campaign.directory, **sync)
                again_seconds.append(time.perf_counter() - started)
                assert again.mode == "incremental", again
                changed_records.append(again.changed_records)
        finally:
            server.stop()
    return {
        "sdk": sdk_seconds,
        "first": first_seconds,
        "incremental": again_seconds,
        "changed_records": changed_records,
        "responses": float(first.n_responses),
    }


def _ids(client: Any, dataset_id: str, external_ids: list[str]) -> list[dict[str, Any]]:
    found = []
    for start in range(0, len(external_ids), 250):
        body = {
            "filters": {
                "and": [
                    {
                        "type": "terms",
                        "scope": {"entity": "record", "property": "external_id"},
                        "values": external_ids[start : start + 250],
                    }
                ]
            }
        }
        result = client.request(
            "POST", f"/datasets/{dataset_id}/records/search", json=body, params={"limit": 250}
        )
        found += [item["record"] for item in result["items"]]
    return found


def measure_agreement(units: int = 100_000, annotators: int = 5) -> tuple[float, float]:
    """Seconds of ordinal alpha over `units` x `annotators`, and of the whole campaign agreement report."""
    import polars as pl

    from campaign.agreement import alpha, campaign_agreement

    rng = random.Random(1)
    records = units // 2
    truth = [rng.randint(1, 5) for _ in range(units)]
    rows = {
        "record_id": [], "prompt_id": [], "round": [], "question": [], "slot": [], "value": [],
        "annotator": [], "status": [], "updated_at": [],
    }  # fmt: skip
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for unit in range(units):
        record, slot = divmod(unit, 2)
        for a in range(annotators):
            value = min(5, max(1, truth[unit] + rng.choice((-1, 0, 0, 0, 1))))
            rows["record_id"].append(f"r{record}")
            rows["prompt_id"].append(f"p{record}")
            rows["round"].append(1)
            rows["question"].append(f"rating_{slot + 1}")
            rows["slot"].append(slot + 1)
            rows["value"].append(str(value))
            rows["annotator"].append(f"a{a}")
            rows["status"].append("submitted")
            rows["updated_at"].append(now)
    frame = pl.DataFrame(rows)
    assert records * 2 == units
    long = frame.select(
        pl.concat_str(["record_id", "question"], separator="/").alias("unit"),
        "annotator",
        pl.col("value").cast(pl.Int64),
    )
    started = time.perf_counter()
    stat = alpha(long, level="ordinal")
    alpha_seconds = time.perf_counter() - started
    assert stat.value is not None and stat.n_units == units
    started = time.perf_counter()
    report = campaign_agreement(frame, "rating")
    report_seconds = time.perf_counter() - started
    assert report.overall.value is not None
    return alpha_seconds, report_seconds


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print (and optionally record) the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="first syncs and re-syncs measured (median)")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)

    sync = measure_sync(args.records, args.annotators, max(1, args.repeats))
    alpha_seconds, report_seconds = measure_agreement()
    first, again = statistics.median(sync["first"]), statistics.median(sync["incremental"])
    worst = max(sync["incremental"]) / min(sync["first"])
    runs = len(sync["first"])
    rows = [
        (
            f"SDK records(with_responses=True), {args.records:,} records x {args.annotators}",
            f"{sync['sdk']:.1f} s",
            "baseline",
        ),
        (
            f"first sync_snapshot (median of {runs})",
            f"{first:.1f} s",
            f"{first / sync['sdk']:.2f}x the SDK (target <= 1x); range {_range(sync['first'], 1)} s",
        ),
        (
            f"re-sync after 1% of responses changed (median of {runs}; "
            f"{min(sync['changed_records'])}-{max(sync['changed_records'])} records)",
            f"{again:.2f} s",
            f"{again / first:.1%} of the first sync (target <= 10%); range {_range(sync['incremental'], 2)} s; "
            f"slowest re-sync / fastest first sync {worst:.1%}",
        ),
        ("ordinal alpha, 100,000 units x 5 annotators", f"{alpha_seconds:.2f} s", "target < 1 s"),
        (
            "whole agreement report (alpha per question and pooled, pairwise kappa, leave-one-out, judge)",
            f"{report_seconds:.2f} s",
            "same data",
        ),
    ]
    publish(
        rows,
        section="Status",
        command=(
            f".venv/bin/python benchmarks/status.py --records {args.records} --annotators {args.annotators} "
            f"--repeats {args.repeats}"
        ),
        write=not args.no_write,
    )
    return 0


def _range(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
