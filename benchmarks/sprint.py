"""Community sprint benchmark: N volunteers annotate at once on a local server, as the web UI does.

Run:  .venv/bin/python benchmarks/sprint.py [--volunteers 50] [--pause 0] [--seconds 40]
          [--records 2000] [--database-url URL] [--workers 1] [--no-baseline] [--no-write]

Each volunteer has their own annotator account and API key, and loops for a fixed time: fetch their
pending queue (`POST /api/v1/me/datasets/{id}/records/search`, response and record status pending,
10 records with responses and suggestions), submit a rating for the first record, pause (about
`--pause` seconds, jittered), repeat. The same seeded data is served with the fixes and speed-ups and,
as the baseline in the same run, with the stock code path (`--no-speedups`). It prints a table
(submissions/s, p50/p95/p99 of each call, errors by kind, acknowledged vs stored responses, the load
average) and replaces the "## Sprint: N volunteers, P s pause" section of BENCHMARKS.md unless `--no-write`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_description, replace_section

QUEUE_BODY = {
    "filters": {
        "and": [
            {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]},
            {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
        ]
    }
}
QUEUE_PARAMS = [("include", "responses"), ("include", "suggestions"), ("limit", "10")]


@dataclass
class Volunteer:
    """One annotator account of the sprint."""

    user_id: str
    api_key: str


@dataclass
class Tally:
    """What the volunteers saw during one run."""

    queue_seconds: list[float] = field(default_factory=list)
    submit_seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    elapsed: float = 0.0


@dataclass(frozen=True)
class RunResult:
    """One configuration's figures."""

    label: str
    volunteers: int
    pause: float
    tally: Tally
    stored: int
    load: tuple[float, float]


def _settings() -> Any:
    import argilla as rg

    # The rating template's shape: only `language` is visible to annotators.
    return rg.Settings(
        fields=[
            rg.TextField(name="prompt"),
            rg.TextField(name="response_1"),
            rg.TextField(name="response_2"),
        ],
        questions=[rg.RatingQuestion(name=f"rating_{i}", values=[1, 2, 3, 4, 5]) for i in (1, 2)],
        metadata=[
            rg.TermsMetadataProperty(name="prompt_id", visible_for_annotators=False),
            rg.IntegerMetadataProperty(name="round", visible_for_annotators=False),
            rg.TermsMetadataProperty(name="language", visible_for_annotators=True),
            rg.TermsMetadataProperty(name="model_1", visible_for_annotators=False),
            rg.TermsMetadataProperty(name="model_2", visible_for_annotators=False),
        ],
        distribution=rg.TaskDistribution(min_submitted=3),
    )


def _records(n: int) -> list[Any]:
    import argilla as rg

    rng = random.Random(0)
    words = [
        "river",
        "volcano",
        "bread",
        "tulip",
        "canal",
        "bicycle",
        "windmill",
        "cheese",
        "storm",
        "harbour",
    ]
    return [
        rg.Record(
            id=f"r{i}",
            fields={
                "prompt": " ".join(rng.choices(words, k=20)),
                "response_1": " ".join(rng.choices(words, k=80)),
                "response_2": " ".join(rng.choices(words, k=80)),
            },
            metadata={"prompt_id": f"p{i}", "round": 1, "language": "nl", "model_1": "a", "model_2": "b"},
            suggestions=[
                rg.Suggestion("rating_1", rng.randint(1, 5), agent="judge"),
                rg.Suggestion("rating_2", rng.randint(1, 5), agent="judge"),
            ],
        )
        for i in range(n)
    ]


def _owner_call(api_url: str, api_key: str, method: str, path: str, **kwargs: Any) -> Any:
    import requests

    response = requests.request(
        method, f"{api_url}/api/v1{path}", headers={"X-Argilla-Api-Key": api_key}, timeout=120, **kwargs
    )
    response.raise_for_status()
    return response.json() if response.content else None


def seed(
    home: Path, n_records: int, n_volunteers: int, database_url: str | None
) -> tuple[str, list[Volunteer]]:
    """Start a server in home, create the dataset, its records and the volunteers; stop it."""
    import argilla as rg

    from campaign.config import read_credentials
    from campaign.server.control.local_server import LocalServer, ServerOptions, free_port

    server = LocalServer(home)
    server.start(ServerOptions(port=free_port(), database_url=database_url), timeout=180)
    try:
        creds = read_credentials(server.credentials_file)
        api_url, key = creds["api_url"], creds["api_key"]
        client = rg.Argilla(api_url=api_url, api_key=key)
        workspace = rg.Workspace(name="sprint", client=client).create()
        dataset = rg.Dataset(name="sprint", workspace="sprint", settings=_settings(), client=client).create()
        dataset.records.log(_records(n_records), batch_size=500)

        def volunteer(i: int) -> Volunteer:
            user = _owner_call(
                api_url,
                key,
                "POST",
                "/users",
                json={
                    "first_name": f"v{i}",
                    "username": f"volunteer-{i}",
                    "password": f"volunteer-{i}-password",
                    "role": "annotator",
                },
            )
            _owner_call(
                api_url, key, "POST", f"/workspaces/{workspace.id}/users", json={"user_id": user["id"]}
            )
            return Volunteer(user_id=user["id"], api_key=user["api_key"])

        with ThreadPoolExecutor(4) as pool:
            volunteers = list(pool.map(volunteer, range(n_volunteers)))
    finally:
        server.stop()
    return str(dataset.id), volunteers


async def _volunteer_loop(
    api_url: str, dataset_id: str, volunteer: Volunteer, *, deadline: float, pause: float, tally: Tally
) -> None:
    import httpx

    rng = random.Random(volunteer.user_id)
    headers = {"X-Argilla-Api-Key": volunteer.api_key}
    search = f"{api_url}/api/v1/me/datasets/{dataset_id}/records/search"
    # Browsers wait much longer than this for a page; a request slower than 60 s counts as dropped.
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        # Volunteers arrive over the first second, not in the same millisecond.
        await asyncio.sleep(rng.random())
        while time.monotonic() < deadline:
            queue = await _timed(
                http,
                "POST",
                search,
                tally.queue_seconds,
                tally,
                "queue",
                params=QUEUE_PARAMS,
                json=QUEUE_BODY,
            )
            if not isinstance(queue, dict):
                await asyncio.sleep(1)
                continue
            items = queue["items"]
            if not items:
                return
            target = items[0]["record"]["id"]
            values = {f"rating_{i}": {"value": rng.randint(1, 5)} for i in (1, 2)}
            answer = await _timed(
                http,
                "POST",
                f"{api_url}/api/v1/records/{target}/responses",
                tally.submit_seconds,
                tally,
                "submit",
                json={"status": "submitted", "values": values},
            )
            if isinstance(answer, dict):
                tally.acknowledged.add((target, volunteer.user_id))
            if pause:
                await asyncio.sleep(pause * rng.uniform(0.5, 1.5))


async def _timed(
    http: Any, method: str, url: str, seconds: list[float], tally: Tally, call: str, **kwargs: Any
) -> dict[str, Any] | None:
    import httpx

    started = time.perf_counter()
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.TimeoutException:
        tally.errors[f"{call}: timeout"] += 1
        return None
    except httpx.HTTPError as error:
        tally.errors[f"{call}: {type(error).__name__}"] += 1
        return None
    seconds.append(time.perf_counter() - started)
    if response.status_code >= 300:
        tally.errors[f"{call}: HTTP {response.status_code}"] += 1
        return None
    return dict(response.json())


def _stored_responses(api_url: str, api_key: str, dataset_id: str, users: set[str]) -> set[tuple[str, str]]:
    """(record id, user id) of every stored response of the volunteers."""
    stored: set[tuple[str, str]] = set()
    offset = 0
    while True:
        page = _owner_call(
            api_url,
            api_key,
            "GET",
            f"/datasets/{dataset_id}/records",
            params={"include": "responses", "offset": offset, "limit": 1000},
        )
        for record in page["items"]:
            for response in record.get("responses") or []:
                if response["user_id"] in users:
                    stored.add((record["id"], response["user_id"]))
        if len(page["items"]) < 1000:
            return stored
        offset += 1000


def run(
    home: Path,
    dataset_id: str,
    volunteers: list[Volunteer],
    *,
    label: str,
    speedups: bool,
    seconds: float,
    pause: float,
    workers: int,
    database_url: str | None,
) -> RunResult:
    """Serve home with or without the fixes and speed-ups while the volunteers work; count what was stored."""
    from campaign.config import read_credentials
    from campaign.server.control.local_server import LocalServer, ServerOptions, free_port

    server = LocalServer(home)
    options = ServerOptions(port=free_port(), speedups=speedups, workers=workers, database_url=database_url)
    server.start(options, timeout=180)
    try:
        creds = read_credentials(server.credentials_file)
        tally = Tally()
        started = time.monotonic()
        deadline = started + seconds

        async def sprint() -> None:
            await asyncio.gather(
                *(
                    _volunteer_loop(
                        creds["api_url"], dataset_id, v, deadline=deadline, pause=pause, tally=tally
                    )
                    for v in volunteers
                )
            )

        asyncio.run(sprint())
        tally.elapsed = time.monotonic() - started
        load = os.getloadavg()
        stored = _stored_responses(
            creds["api_url"], creds["api_key"], dataset_id, {v.user_id for v in volunteers}
        )
    finally:
        server.stop()
    return RunResult(
        label=label,
        volunteers=len(volunteers),
        pause=pause,
        tally=tally,
        stored=len(stored & tally.acknowledged),
        load=(load[0], load[1]),
    )


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100)
    return f"{cuts[49]:.2f} / {cuts[94]:.2f} / {cuts[98]:.2f}"


def table(results: list[RunResult]) -> str:
    """The figures of every run, one row each."""
    header = (
        "| configuration | volunteers, pause | submissions/s | queue p50/p95/p99 s | submit p50/p95/p99 s "
        "| errors | acknowledged / stored | load avg 1/5 min |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for result in results:
        tally = result.tally
        errors = ", ".join(f"{kind}: {n}" for kind, n in tally.errors.most_common()) or "0"
        lines.append(
            f"| {result.label} | {result.volunteers}, {result.pause:g} s "
            f"| {len(tally.acknowledged) / tally.elapsed:.1f} "
            f"| {_percentiles(tally.queue_seconds)} | {_percentiles(tally.submit_seconds)} "
            f"| {errors} | {len(tally.acknowledged)} / {result.stored} "
            f"| {result.load[0]:.1f} / {result.load[1]:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Seed once, copy the data for each configuration, run the sprint on each, print and record the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--volunteers", type=int, default=50)
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds a volunteer pauses after a submission"
    )
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes of the server")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (an empty database per run)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the stock code path")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    parser.add_argument("--section", default=None, help="BENCHMARKS.md section (default: from the load)")
    args = parser.parse_args()

    if args.database_url and not args.no_baseline:
        parser.error("on PostgreSQL each run needs its own database: run with --no-baseline per database URL")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sprint-") as tmp:
        seeded = Path(tmp) / "seeded"
        dataset_id, volunteers = seed(seeded, args.records, args.volunteers, args.database_url)
        configurations = [("fixes + speed-ups", True)] + ([] if args.no_baseline else [("stock", False)])
        for label, speedups in configurations:
            home = Path(tmp) / label.replace(" ", "")
            shutil.copytree(seeded, home)
            database = "PostgreSQL" if args.database_url else "SQLite"
            results.append(
                run(
                    home,
                    dataset_id,
                    volunteers,
                    label=f"{label}, {database}, {args.workers} worker(s)",
                    speedups=speedups,
                    seconds=args.seconds,
                    pause=args.pause,
                    workers=args.workers,
                    database_url=args.database_url,
                )
            )
            print(table(results[-1:]).splitlines()[-1], flush=True)
    text = table(results)
    print(text)
    if not args.no_write:
        command = " ".join(["benchmarks/sprint.py", *sys.argv[1:]])
        body = f"Command: `{command}`.\n\nMachine: {machine_description()}\n\n{text}\n"
        section = args.section or f"Sprint: {args.volunteers} volunteers, {args.pause:g} s pause"
        replace_section(Path(__file__).resolve().parents[1] / "BENCHMARKS.md", section, body)


if __name__ == "__main__":
    main()
