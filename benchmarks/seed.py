"""Seeding benchmark: records/s of `campaign seed` against the SDK and distilabel, on one local server.

Run:  .venv/bin/python benchmarks/seed.py [--rows 5000] [--no-write]

It starts its own local Argilla in a temp home on a free port, generates synthetic rating rows
(2 responses, judge ratings, as a distilabel UltraFeedback pipeline writes them), and seeds the same
rows four ways, each into its own fresh dataset:

  (a) campaign seed: the library path (`plan_records` + `write_plan`), as the command runs it; on the
      local server it writes through the server's create-only endpoint (campaign/server/plugin/bulk_create.py);
  (a') the same with CAMPAIGN_SEED_FAST_PATH=0: the stock `PUT /records/bulk`, as on any other Argilla;
  (b) the argilla SDK's `dataset.records.log(records)` with default settings, with the same fields,
      metadata and suggestions as rg.Record objects;
  (c) distilabel 1.5.3's `PreferenceToArgilla` step, fed in batches of its default input_batch_size.

With --repeat N every method runs N times (round-robin, each time into a fresh dataset) and the table
shows the median rate and the range. It prints the table and replaces the "## Seeding" section of
BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_description, replace_section

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "Seeding"
JUDGE = "judge-model"
TARGET_RATIO = 2.0


@dataclass
class Outcome:
    """One way of seeding: its speed, or why it could not run."""

    name: str
    records: int = 0
    seconds: float = 0.0
    error: str | None = None
    note: str = ""

    @property
    def rate(self) -> float | None:
        """Records per second, or None if it did not run."""
        return self.records / self.seconds if self.error is None and self.seconds > 0 else None


def synthetic_rows(count: int) -> list[dict[str, Any]]:
    """Rating rows with two responses, their models, and UltraFeedback-style judge ratings."""
    import random

    rng = random.Random(0)
    words = [
        "model",
        "answer",
        "prompt",
        "language",
        "volunteer",
        "quality",
        "fluent",
        "explain",
        "reason",
        "helpful",
        "honest",
        "example",
    ]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    return [
        {
            "instruction": f"Prompt {i}: {text(30)}",
            "generations": [f"{text(120)} ({i}a)", f"{text(120)} ({i}b)"],
            "generation_models": ["model-a", "model-b"],
            "ratings": [rng.randint(1, 5), rng.randint(1, 5)],
            "rationales": [text(20), text(20)],
            "model_name": JUDGE,
        }
        for i in range(count)
    ]


def seed_options() -> Any:
    from campaign.seed import SeedOptions

    return SeedOptions(template="rating", responses=2, round=1, source_name="benchmark", seed=0)


def create_campaign_dataset(client: Any, name: str) -> str:
    """A dataset with the campaign's rating template (N=2), as `campaign create` makes it."""
    from campaign.campaign_file import CampaignFile
    from campaign.templates import build_settings, ensure_dataset, load_template

    campaign = CampaignFile(name=name, workspace="benchmark", template="rating", responses=2)
    spec = load_template("rating")
    settings = build_settings(
        spec, responses=2, guidelines=spec.read_guidelines(), min_submitted=2, language=None
    )
    result = ensure_dataset(campaign, settings, client=client)
    return str(result.dataset_id)


def record_count(client: Any, dataset_id: str) -> int:
    return int(client.dataset_progress(dataset_id)["total"])


def run_campaign(client: Any, rows: list[dict[str, Any]], *, fast_path: bool, run: int = 0) -> Outcome:
    """(a) The library path of `campaign seed`: plan records, then write them by stable id.

    `fast_path=False` is what CAMPAIGN_SEED_FAST_PATH=0 does: the stock bulk upsert endpoint.
    """
    from campaign.seed import plan_records, rows_source, write_plan

    name = f"bench-campaign-{'fast' if fast_path else 'stock'}-{run}"
    dataset_id = create_campaign_dataset(client, name)
    calls = _count_calls(client)
    started = time.perf_counter()
    plan = plan_records(rows_source(rows, name="benchmark"), seed_options())
    outcome = write_plan(client, dataset_id, plan, fast_path=fast_path)
    seconds = time.perf_counter() - started
    count = record_count(client, dataset_id)
    assert count == len(rows) == outcome.created, (count, outcome.created)
    # Which endpoint did the writing: the figure must say what it measures.
    endpoint = "POST /campaign/.../records/create-bulk" if fast_path else "PUT /records/bulk"
    other = "PUT /records/bulk" if fast_path else "POST /campaign/.../records/create-bulk"
    assert calls[endpoint] > 0 and calls[other] == 0, dict(calls)
    # Planning alone (offline), to show how much of the time is the client's and how much the server's.
    started = time.perf_counter()
    for _ in plan_records(rows_source(rows, name="benchmark"), seed_options()):
        pass
    planning = time.perf_counter() - started
    if fast_path:
        title = "campaign seed, local create-only endpoint (default on the local server)"
        note = f"{calls[endpoint]} requests of 500; planning alone (offline) takes {planning:.2f}s"
    else:
        title = "campaign seed, stock endpoint (CAMPAIGN_SEED_FAST_PATH=0; any other Argilla)"
        note = f"{calls[endpoint]} requests of 500, 2 in flight; planning alone takes {planning:.2f}s"
    return Outcome(title, count, seconds, note=note)


def _count_calls(client: Any) -> Counter[str]:
    """Count the client's bulk write requests from now on, by endpoint."""
    calls: Counter[str] = Counter()
    request = type(client).request

    def counted(self: Any, method: str, path: str, **kwargs: Any) -> Any:
        if path.endswith("/records/create-bulk"):
            calls["POST /campaign/.../records/create-bulk"] += 1
        elif path.endswith("/records/bulk"):
            calls[f"{method} /records/bulk"] += 1
        return request(self, method, path, **kwargs)

    client.request = counted.__get__(client)
    return calls


def run_sdk(client: Any, rows: list[dict[str, Any]], run: int = 0) -> Outcome:
    """(b) The SDK with default settings: the same payloads as rg.Record objects, one `log` call."""
    import argilla as rg

    from campaign.seed import plan_records, rows_source

    name = f"bench-sdk-log-{run}"
    dataset_id = create_campaign_dataset(client, name)
    dataset = client.sdk.datasets(name, workspace="benchmark")
    started = time.perf_counter()
    # Planning is included, so that both paths start from the same rows and do the same work.
    plan = plan_records(rows_source(rows, name="benchmark"), seed_options())
    records = [
        rg.Record(
            id=payload.id,
            fields=payload.fields,
            metadata=payload.metadata,
            suggestions=[
                rg.Suggestion(question_name=s.question, value=s.value, agent=s.agent)
                for s in payload.suggestions
            ],
        )
        for batch in plan
        for payload in batch
    ]
    dataset.records.log(records)
    seconds = time.perf_counter() - started
    count = record_count(client, dataset_id)
    assert count == len(rows), count
    return Outcome("argilla SDK dataset.records.log (defaults)", count, seconds)


def run_distilabel(
    client: Any, rows: list[dict[str, Any]], api_url: str, api_key: str, run: int = 0
) -> Outcome:
    """(c) distilabel's PreferenceToArgilla, fed the rows in batches of its input_batch_size."""
    name = "distilabel PreferenceToArgilla"
    dataset_name = f"bench-distilabel-{run}"
    try:
        from distilabel import __version__ as distilabel_version
        from distilabel.steps import PreferenceToArgilla

        client.ensure_workspace("benchmark")
        step = PreferenceToArgilla(
            num_generations=2,
            dataset_name=dataset_name,
            dataset_workspace="benchmark",
            api_url=api_url,
            api_key=api_key,
        )
        started = time.perf_counter()
        step.load()
        size = step.input_batch_size
        for start in range(0, len(rows), size):
            for _ in step.process(rows[start : start + size]):
                pass
        seconds = time.perf_counter() - started
        dataset = client.require_dataset(dataset_name, "benchmark")
        count = record_count(client, str(dataset["id"]))
    except Exception as exc:  # a third-party step failing is a result to report, not a crash
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
        return Outcome(name, error=detail[:300], note="could not run against Argilla 2.8")
    note = (
        f"distilabel {distilabel_version}, input_batch_size={size}; no metadata, "
        "no record ids (a re-run duplicates)"
    )
    return Outcome(name, count, seconds, note=note)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("argilla", "argilla-server", "distilabel"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} (not installed)")
    return ", ".join(parts)


def table(outcomes: list[Outcome], baseline: Outcome) -> str:
    """The results as a Markdown table, with the ratio to the SDK baseline."""
    lines = [
        "| method | records | seconds | records/s | vs SDK defaults | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        if o.rate is None:
            lines.append(f"| {o.name} | - | - | - | - | error: `{o.error}`; {o.note} |")
            continue
        ratio = o.rate / baseline.rate if baseline.rate else float("nan")
        lines.append(
            f"| {o.name} | {o.records} | {o.seconds:.2f} | {o.rate:,.0f} | {ratio:.2f}x | {o.note} |"
        )
    return "\n".join(lines)


def median_run(runs: list[Outcome]) -> Outcome:
    """The run with the median rate (the lower one of an even count), its note giving the range."""
    done = [o for o in runs if o.rate is not None]
    if not done:
        return runs[0]
    middle = statistics.median_low(o.rate or 0.0 for o in done)
    chosen = next(o for o in done if o.rate == middle)
    if len(runs) > 1:
        rates = sorted(o.rate or 0.0 for o in done)
        spread = f"median of {len(done)} runs ({', '.join(f'{r:,.0f}' for r in rates)} records/s)"
        chosen.note = f"{spread}; {chosen.note}" if chosen.note else spread
    return chosen


def main(argv: list[str] | None = None) -> int:
    """Run the four seeding paths on one fresh local server and report records/s."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000, help="Synthetic rows to seed (default: 5000).")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs of every method, round-robin; the median is shown (default: 1).",
    )
    parser.add_argument("--no-write", action="store_true", help="Do not update BENCHMARKS.md.")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from campaign.client import ArgillaClient
    from campaign.config import read_credentials
    from campaign.server.control.local_server import LocalServer, ServerOptions, free_port

    rows = synthetic_rows(args.rows)
    keys = ("campaign", "campaign-stock", "sdk", "distilabel")
    runs: dict[str, list[Outcome]] = {key: [] for key in keys}
    with tempfile.TemporaryDirectory(prefix="campaign-bench-seed-") as home:
        server = LocalServer(Path(home))
        try:
            print(f"Starting a local Argilla in {home} ...", flush=True)
            server.start(ServerOptions(port=free_port()), timeout=180)
            creds = read_credentials(server.credentials_file)
            # The SDK and distilabel read these; the campaign client gets them explicitly.
            os.environ["ARGILLA_API_URL"], os.environ["ARGILLA_API_KEY"] = creds["api_url"], creds["api_key"]
            for run in range(args.repeat):
                for key in keys:
                    print(f"Seeding {len(rows)} rows ({run + 1}/{args.repeat}): {key} ...", flush=True)
                    # A fresh client per run: nothing one method learnt about the server helps another.
                    client = ArgillaClient(creds["api_url"], creds["api_key"])
                    if key == "sdk":
                        done = run_sdk(client, rows, run)
                    elif key == "distilabel":
                        done = run_distilabel(client, rows, creds["api_url"], creds["api_key"], run)
                    else:
                        done = run_campaign(client, rows, fast_path=key == "campaign", run=run)
                    runs[key].append(done)
                    print(
                        f"  {done.rate:,.0f} records/s" if done.rate else f"  failed: {done.error}",
                        flush=True,
                    )
        finally:
            server.stop()

    outcomes = {key: median_run(runs[key]) for key in keys}
    results = table([outcomes[key] for key in keys], outcomes["sdk"])
    print()
    print(results)
    sdk_rate = outcomes["sdk"].rate or float("inf")
    ratio = (outcomes["campaign"].rate or 0) / sdk_rate
    stock_ratio = (outcomes["campaign-stock"].rate or 0) / sdk_rate
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    repeat = f" --repeat {args.repeat}" if args.repeat > 1 else ""
    runs_text = "in one run" if args.repeat == 1 else f"{args.repeat} rounds in one run, median shown"
    body = f"""\
`.venv/bin/python benchmarks/seed.py --rows {args.rows}{repeat}`: {args.rows:,} synthetic rating rows (2
responses of ~120 words, judge ratings and rationales), each method into its own fresh dataset on the
same local server (SQLite, default `campaign server` options), {runs_text}. Times include building
the records from the rows; the campaign and SDK datasets use the rating template (N=2); distilabel
creates its own.

Machine: {machine_description()}; {versions()}.

{results}

Target >= {TARGET_RATIO:.0f}x the SDK defaults: **{verdict}** ({ratio:.2f}x with the local create-only
endpoint; {stock_ratio:.2f}x through the stock endpoint).

What is compared: the SDK and distilabel write through argilla-server's stock `PUT /records/bulk`
(the SDK 50 records a request, one at a time). `campaign seed` writes through the local server's own
create-only endpoint (`POST /api/v1/campaign/datasets/{{id}}/records/create-bulk`, in
`campaign/server/plugin/bulk_create.py`), 500 records a request with 2 in flight; on any other Argilla server, or with
`CAMPAIGN_SEED_FAST_PATH=0`, it uses the stock endpoint, which is the second row. The endpoint
validates with the same upstream schema and validators (same 422 errors), inserts records and
suggestions with two executemany statements (`ON CONFLICT (external_id, dataset_id) DO NOTHING`),
indexes them in one call, and answers with counts instead of echoing every record; it only creates
(records already there are left as they are, which is what `campaign seed` wants), and it declines, so
that the client uses the stock endpoint, when a record has responses, vectors or a server id, or an
enabled webhook subscribes to record events. `tests/test_seed_fast_path.py` checks that both
endpoints give the same records, searches, progress and errors.

Where the time goes: with the stock endpoint, the server's per-record ORM work (multi-row INSERT
compilation, flushes, relationship loads, serialising every record back) dominates every client, so
client tuning alone moves the ratio little. On the create-only endpoint, the largest shares of the
server's time are the search-index writes, the upstream validators and parsing the request JSON.
"""
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
        print(f"\nUpdated the '## {SECTION}' section of {BENCHMARKS_MD}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
