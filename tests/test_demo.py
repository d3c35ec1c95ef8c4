"""campaign demo: the bundled sample, the simulation plan, and the whole loop on the real local server."""

from __future__ import annotations

import json
import stat
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.demo import (
    SIMULATED_FIRST_NAME,
    DemoOptions,
    SimRecord,
    next_steps,
    plan_simulation,
    read_logins,
    sample_path,
    write_logins,
)
from campaign.errors import ConfigError


def _runner() -> CliRunner:
    return CliRunner(mix_stderr=False)


# -- offline ---------------------------------------------------------------------------------------


def test_sample_is_a_distiset_with_ultrafeedback_columns() -> None:
    from campaign.readers import distiset_configs
    from campaign.seed import SeedOptions, describe_plan, open_source

    path = sample_path()
    assert (path / "distiset_configs" / "pipeline.yaml").is_file()
    assert distiset_configs(path) == ["ultra_feedback_0"]
    reader = open_source(str(path))
    for column in ("instruction", "generations", "generation_models", "ratings", "rationales", "model_name"):
        assert column in reader.columns
    preview = describe_plan(reader, SeedOptions(template="rating", responses=3))
    report = preview.report
    assert 40 <= report.records <= 45
    assert report.skipped == Counter({"too few responses": 2})
    assert report.suggestion_skipped["judge rating is None"] == 2
    assert {s.agent for r in preview.records for s in r.suggestions} == {"demo/judge"}


def test_plan_simulation_is_deterministic_and_mixed() -> None:
    records = [
        SimRecord(
            id=f"r{i}", key=f"k{i}", questions=("rating_1", "rating_2", "rating_3"), judge={"rating_1": 5}
        )
        for i in range(200)
    ]
    people = ["demo-annotator-1", "demo-annotator-2", "demo-annotator-3"]
    plan = plan_simulation(records, people, seed=7)
    assert plan == plan_simulation(list(reversed(records)), list(reversed(people)), seed=7)
    assert plan != plan_simulation(records, people, seed=8)
    statuses = Counter(p.status for p in plan)
    assert statuses["submitted"] > 300 and statuses["draft"] > 0 and statuses["discarded"] > 0
    submitted = Counter(p.record_id for p in plan if p.status == "submitted")
    assert sum(1 for n in submitted.values() if n >= 2) > 150  # most records complete
    for p in plan:
        assert len({(q.record_id, q.username) for q in plan if q.record_id == p.record_id}) == len(
            [q for q in plan if q.record_id == p.record_id]
        )
        if p.status == "discarded":
            assert p.values is None
        elif p.status == "draft":
            assert p.values is not None and list(p.values) == ["rating_1"]
        else:
            assert p.values is not None and set(p.values) == {"rating_1", "rating_2", "rating_3"}
            assert all(1 <= v <= 5 for v in p.values.values())
    # Answers follow the judge: rating_1 (judged 5) averages well above the middle.
    firsts = [p.values["rating_1"] for p in plan if p.status == "submitted" and p.values]
    assert sum(firsts) / len(firsts) > 4.0


def test_logins_file_is_private_and_merged(tmp_path: Path) -> None:
    path = tmp_path / "demo-logins.csv"
    write_logins(path, {"demo-annotator-2": "pw-two-xxxx"}, url="http://x")
    write_logins(path, {"demo-annotator-1": "pw-one-xxxx"}, url="http://x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_logins(path) == {"demo-annotator-1": "pw-one-xxxx", "demo-annotator-2": "pw-two-xxxx"}
    assert path.read_text().splitlines()[1].startswith("demo-annotator-1,")


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="at least 2 annotators"):
        DemoOptions(annotators=1, with_sample_responses=True)
    with pytest.raises(ConfigError, match="between 1 and"):
        DemoOptions(annotators=0)


def test_next_steps_name_a_custom_home(tmp_path: Path) -> None:
    assert next_steps(Path("d")) == [
        "campaign status --campaign d",
        f"campaign export --campaign d --out {Path('d') / 'export'}",
    ]
    assert next_steps(Path("d"), home=tmp_path / "elsewhere")[0].startswith("CAMPAIGN_HOME=")


def test_half_configured_server_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARGILLA_API_URL", "http://127.0.0.1:1")
    result = _runner().invoke(cli, ["demo", "--dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "ARGILLA_API_KEY is not set" in result.stderr
    assert not (tmp_path / "d").exists()


def test_help_has_an_example() -> None:
    result = _runner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "--with-sample-responses" in result.output


# -- the whole loop on the real local server --------------------------------------------------------


def _counts(client, dataset_id: str) -> tuple[int, Counter[str]]:  # type: ignore[no-untyped-def]
    records = 0
    responses: Counter[str] = Counter()
    for page in client.iter_records(dataset_id, include=("responses",)):
        for record in page:
            records += 1
            responses.update(r["status"] for r in record.get("responses") or [])
    return records, responses


def test_demo_end_to_end(local_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from campaign.client import ArgillaClient

    local_server.use(monkeypatch)
    directory = tmp_path / "demo-e2e"
    runner = _runner()
    first = runner.invoke(cli, ["demo", "--dir", str(directory), "--with-sample-responses", "--json"])
    assert first.exit_code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["server"] == {
        "url": local_server.api_url,
        "started": False,
        "external": True,
        "credentials_file": None,
    }
    assert summary["seed"]["created"] == 43 and summary["seed"]["skipped"] == 2
    assert summary["simulated_responses"]["simulated"] is True
    assert summary["simulated_responses"]["submitted"] > 60

    owner = ArgillaClient(local_server.api_url, local_server.api_key)
    dataset = owner.require_dataset(summary["dataset"]["name"], summary["dataset"]["workspace"])
    records, responses = _counts(owner, str(dataset["id"]))
    assert records == 43
    assert responses["submitted"] == summary["simulated_responses"]["submitted"]
    assert responses["draft"] > 0 and responses["discarded"] > 0

    users = {u["username"]: u for u in owner.users()}
    names = ["demo-annotator-1", "demo-annotator-2", "demo-annotator-3"]
    for name in names:
        assert users[name]["first_name"] == SIMULATED_FIRST_NAME
    members = {u["username"] for u in owner.workspace_users(str(dataset["workspace_id"]))}
    assert set(names) <= members

    logins = directory / "demo-logins.csv"
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600
    passwords = read_logins(logins)
    assert set(passwords) == set(names)

    status = runner.invoke(cli, ["status", "--json", "--campaign", str(directory)])
    assert status.exit_code == 0, status.stderr
    report = json.loads(status.stdout)
    totals = report["progress"]["totals"]
    assert totals["records"] == 43 and totals["completed"] >= 25
    assert report["agreement"]["overall"]["value"] is not None
    assert all(q["value"] is not None for q in report["agreement"]["per_question"].values())

    out = directory / "export"
    export = runner.invoke(
        cli, ["export", "--campaign", str(directory), "--out", str(out), "--format", "all"]
    )
    assert export.exit_code == 0, export.stderr
    for fmt in ("dpo", "kto"):
        assert (out / fmt / "train.parquet").is_file()

    second = runner.invoke(cli, ["demo", "--dir", str(directory), "--with-sample-responses"])
    assert second.exit_code == 0, second.stderr
    assert "Simulated answers" in second.stdout
    assert _counts(owner, str(dataset["id"])) == (records, responses)
    assert read_logins(logins) == passwords
    again = runner.invoke(cli, ["demo", "--dir", str(directory), "--with-sample-responses", "--json"])
    assert again.exit_code == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["seed"]["created"] == 0 and rerun["seed"]["already_present"] == 43
    assert rerun["simulated_responses"]["posted"] == 0
    assert rerun["simulated_responses"]["already_answered"] == summary["simulated_responses"]["posted"]
    assert {a["action"] for a in rerun["annotators"]} == {"unchanged"}

    secrets = [*passwords.values(), local_server.api_key, local_server.password]
    secrets += [users[name]["api_key"] for name in names]
    for result in (first, second, again, status, export):
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr
