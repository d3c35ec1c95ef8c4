"""Export benchmark: DPO + KTO from a 1M-response snapshot, against a polars read + write of the same snapshot.

Run:  .venv/bin/python benchmarks/export.py [--rows 1000000] [--repeat 5] [--layout synced|scattered] [--no-write]

It synthesises a rating campaign's snapshot (2 responses a record, 3 annotators, so 6 response rows a
record) with `save_snapshot`, laid out as a sync writes it (or scattered: see `synthesise`), then measures, each in a fresh subprocess so that peak memory
(`ru_maxrss`) belongs to one measurement only:

  (a) baseline: polars reads the snapshot's parquet files and writes them back to another folder;
  (b) export: `load_snapshot` + `export_snapshot(formats=["dpo", "kto"])`, as `campaign export` runs it
      (called as its two stages, `build_export` then `write_export`, so that each is timed).

Times cover the work only (imports excluded). Each measurement runs `--repeat` times; the best time counts.
It prints a table and replaces the "## Export" section of BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "Export"
TARGET_RATIO = 4.0  # a floor: the consensus is written to be read first
ANNOTATORS = ("ann-1", "ann-2", "ann-3")
SLOTS = 2


LAYOUTS = ("synced", "scattered")


def synthesise(campaign_dir: Path, rows: int, layout: str = "synced") -> dict[str, int]:
    """Write a rating snapshot with about `rows` response rows; return the table sizes.

    "synced" lays it out as a sync writes it: record and prompt ids are 32 hex digits of a hash, as
    `campaign seed` makes them; the records come in the server's order (not by id), each with its rows
    together in slot order; each record's responses come together, annotator by annotator, question by
    question. "scattered" has the same votes under sequential ids, with the rows slot by slot and the
    responses annotator by annotator (no record's rows together), as another tool might write them.
    """
    from datetime import UTC, datetime

    import numpy as np
    import polars as pl

    from campaign.snapshot import Snapshot, empty_table, save_snapshot

    per_record = len(ANNOTATORS) * SLOTS
    n = max(1, rows // per_record)
    rng = np.random.default_rng(0)
    t0 = datetime(2024, 5, 1, tzinfo=UTC)

    id_rng = np.random.default_rng(1)  # the votes are the same in both layouts

    def hex_ids() -> pl.Series:
        raw = id_rng.bytes(16 * n)
        return pl.Series([raw[k : k + 16].hex() for k in range(0, 16 * n, 16)], dtype=pl.String())

    number = pl.Series("number", np.arange(n)).cast(pl.String).str.zfill(7)
    base = pl.DataFrame({"i": np.arange(n), "number": number}).with_columns(
        round=pl.Series(np.arange(n) % 3 + 1)
    )
    if layout == "synced":
        base = base.with_columns(record_id=hex_ids(), prompt_id=hex_ids())
    else:
        base = base.with_columns(record_id="rec-" + pl.col("number"), prompt_id="prompt-" + pl.col("number"))
    records = pl.concat(
        [
            base.with_columns(
                template=pl.lit("rating"),
                prompt=pl.lit("Write a short answer to question number ") + pl.col("number") + pl.lit("."),
                slot=pl.lit(slot, dtype=pl.Int64),
                response=pl.lit(f"Response {slot} from model {slot}, for question ") + pl.col("number"),
                model=pl.lit(f"model-{slot}"),
                status=pl.lit("completed"),
                inserted_at=pl.lit(t0),
                updated_at=pl.lit(t0),
            )
            for slot in range(1, SLOTS + 1)
        ]
    )
    # Slot 1 tends to be better than slot 2, so most records give a pair and KTO sees both labels.
    quality = {1: rng.integers(2, 6, n), 2: rng.integers(1, 5, n)}
    parts = []
    for annotator in ANNOTATORS:
        for slot in range(1, SLOTS + 1):
            noise = rng.integers(-1, 2, n)
            values = np.clip(quality[slot] + noise, 1, 5)
            parts.append(
                base.select("i", "record_id", "prompt_id", "round").with_columns(
                    question=pl.lit(f"rating_{slot}"),
                    slot=pl.lit(slot, dtype=pl.Int64),
                    value=pl.Series(values).cast(pl.String),
                    annotator=pl.lit(annotator),
                    status=pl.lit("submitted"),
                    updated_at=pl.lit(t0),
                )
            )
    responses = pl.concat(parts)
    if layout == "synced":
        records, responses = records.sort("i", "slot"), responses.sort("i", "annotator", "slot")
    records, responses = records.drop("i", "number"), responses.drop("i")
    meta = {
        "snapshot_id": "bench-snapshot",
        "synced_at": t0.isoformat(),
        "dataset": "bench",
        "dataset_id": "00000000-0000-0000-0000-00000000beef",
        "template": "rating",
        "min_submitted": 2,
    }
    snapshot = Snapshot(
        records=records, responses=responses, suggestions=empty_table("suggestions"), meta=meta
    )
    save_snapshot(campaign_dir, snapshot)
    return {"records": n, "record_rows": records.height, "response_rows": responses.height}


def measure_baseline(campaign_dir: Path, work: Path) -> dict[str, Any]:
    """Polars reads every snapshot table and writes it back (the floor of any export)."""
    import polars as pl

    from campaign.snapshot import snapshot_folder

    source = snapshot_folder(campaign_dir)
    target = work / "copy"
    target.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in sorted(source.glob("*.parquet")):
        pl.read_parquet(path).write_parquet(target / path.name)
    return {"seconds": time.perf_counter() - start}


def measure_export(campaign_dir: Path, work: Path) -> dict[str, Any]:
    """load_snapshot + export_snapshot(dpo, kto) into a fresh folder, timing its three stages.

    export_snapshot to a folder without a Hub repo is the card's agreement, build_export, then write_export;
    the last two are called here one after the other, as it calls them, so that each stage gets its own time.
    """
    from campaign.export import ExportOptions, build_export, write_export
    from campaign.snapshot import load_snapshot

    start = time.perf_counter()
    snapshot = load_snapshot(campaign_dir)
    loaded = time.perf_counter()
    result = build_export(snapshot, ExportOptions(formats=["dpo", "kto"]))
    built = time.perf_counter()
    result = write_export(result, work / "export", overwrite=True, jsonl=False, repo_id=None)
    seconds = time.perf_counter() - start
    rows = {name: fmt.rows for name, fmt in result.formats.items()}
    stages = {"load": loaded - start, "build": built - loaded, "write": start + seconds - built}
    return {"seconds": seconds, "rows": rows, "stages": stages}


MEASURES = {"baseline": measure_baseline, "export": measure_export}


def _child(name: str, campaign_dir: Path, work: Path) -> None:
    """Run one measurement and print it with this process's peak RSS as JSON."""
    import resource

    outcome = MEASURES[name](campaign_dir, work)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    outcome["peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    outcome["minor_faults"] = usage.ru_minflt  # whole process, imports included
    print(json.dumps(outcome))


def run_measure(name: str, campaign_dir: Path, work: Path) -> dict[str, Any]:
    """One measurement in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", name, str(campaign_dir), str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _versions() -> str:
    from importlib import metadata

    return ", ".join(f"{p} {metadata.version(p)}" for p in ("polars", "pyarrow"))


def main() -> None:
    """Synthesise, measure, print the table and update BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="response rows in the snapshot")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (best time counts)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="synced",
        help="rows as a sync writes them (default), or scattered with sequential ids (see synthesise)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--measure", nargs=3, metavar=("NAME", "CAMPAIGN", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        name, campaign, work = args.measure
        _child(name, Path(campaign), Path(work))
        return

    from benchmarks._common import machine_description, replace_section

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        campaign_dir = Path(tmp) / "campaign"
        start = time.perf_counter()
        sizes = synthesise(campaign_dir, args.rows, args.layout)
        print(
            f"Synthesised {sizes['response_rows']:,} response rows ({sizes['records']:,} records) "
            f"in {time.perf_counter() - start:.1f}s",
            file=sys.stderr,
        )
        snapshot_mib = sum(p.stat().st_size for p in (campaign_dir / ".campaign").rglob("*")) / 2**20
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in MEASURES}
        for run in range(args.repeat):
            for name in MEASURES:
                outcome = run_measure(name, campaign_dir, Path(tmp) / f"{name}-{run}")
                results[name].append(outcome)
                print(
                    f"  {name} run {run + 1}: {outcome['seconds']:.2f}s, peak {outcome['peak_rss_mib']:.0f} MiB",
                    file=sys.stderr,
                )
    load_after = os.getloadavg()[0]
    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()}
    stages = best["export"]["stages"]
    peak = {name: max(r["peak_rss_mib"] for r in runs) for name, runs in results.items()}
    base = best["baseline"]["seconds"]
    ratio = best["export"]["seconds"] / base
    rows = best["export"]["rows"]
    table = [
        f"| measurement | seconds (best of {args.repeat}) | vs baseline | peak RSS (MiB) | output |",
        "|---|---:|---:|---:|---|",
        f"| (a) polars read + write of the snapshot (baseline) | {base:.2f} | 1.00x | {peak['baseline']:.0f} | "
        "4 parquet tables copied |",
        f"| (b) export DPO + KTO (`load_snapshot` + `export_snapshot`) | {best['export']['seconds']:.2f} | "
        f"{ratio:.2f}x | {peak['export']:.0f} | dpo {rows.get('dpo', 0):,} pairs, kto {rows.get('kto', 0):,} examples |",
    ]
    met = "met" if ratio <= TARGET_RATIO else "**NOT met**"
    layout = (
        "laid out as a sync writes it: 32-hex record and prompt ids as `campaign seed` makes them, records "
        "in the server's order (not by id), each record's rows and responses together"
        if args.layout == "synced"
        else "scattered: sequential ids, record rows slot by slot and responses annotator by annotator"
    )
    body = "\n".join(
        [
            f"Run: `.venv/bin/python benchmarks/export.py --rows {args.rows} --repeat {args.repeat}`"
            + ("" if args.layout == "synced" else f" --layout {args.layout}"),
            "",
            f"Machine: {machine_description()}; {_versions()}.",
            "",
            f"Snapshot: a rating campaign of {sizes['records']:,} records x {SLOTS} responses x "
            f"{len(ANNOTATORS)} annotators = {sizes['response_rows']:,} response rows "
            f"({sizes['record_rows']:,} record rows, {snapshot_mib:.0f} MiB of parquet), {layout}. "
            "Each measurement runs in a fresh subprocess; time excludes imports; peak RSS is that "
            "process's `ru_maxrss` (interpreter and imports included). Both measurements alternate in "
            "the same run, so that other work on the machine weighs on both: the 1-minute load average "
            f"was {load_before:.1f} when it started and {load_after:.1f} when it ended "
            f"({os.cpu_count()} cores).",
            "",
            *table,
            "",
            f"Target: export within {TARGET_RATIO:.0f}x of the baseline: {met} ({ratio:.2f}x).",
            "",
            f"Where the time goes, in the best export run: `load_snapshot` {stages['load']:.2f}s, "
            f"`build_export` {stages['build']:.2f}s (consensus, TRL columns, validation of every row, "
            f"split), `write_export` {stages['write']:.2f}s (four parquet files, manifest, card). "
            "`--layout scattered` measures the same votes under sequential ids with no record's rows "
            "together.",
            "",
            "How: the consensus reads the votes once for DPO and KTO, in plain polars: each record id is "
            "cast to a categorical, so every vote finds its record by a join on numbers; the records are "
            "numbered in the exports' order; and each statistic (a response's rating score, the chosen and "
            "rejected responses, pair agreement, labels, the gate, repeated KTO examples) is one group-by or "
            "join over those numbers, made once for both formats (campaign/consensus/rules.py). The TRL "
            "columns are validated in a thread while "
            "the main thread hashes each exported prompt once (sha256, which defines the split). The four "
            "files are written side by side with pyarrow, as snappy, with dictionaries only for repetitive "
            "columns and no statistics for free text. A fresh process also pays for first touching the memory it "
            f"allocates: the best export process took {best['export']['minor_faults']:,} minor page "
            f"faults, the best baseline process {best['baseline']['minor_faults']:,} (imports included "
            "in both).",
        ]
    )
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
        print(f"\nUpdated the '## {SECTION}' section of {BENCHMARKS_MD}", file=sys.stderr)


if __name__ == "__main__":
    main()
