"""`campaign annotators add --out` and `reset-password` against the real local server: no password lost."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.client import ArgillaClient
from tests.conftest import RunningServer
from tests.test_setup_server import (
    assert_one_line_error,
    created_campaign,
    login_status,
    read_passwords,
    run,
)


def usernames(client: ArgillaClient) -> set[str]:
    return {str(u["username"]) for u in client.users()}


def test_add_appends_to_an_existing_passwords_file(
    server: RunningServer, client: ArgillaClient, tmp_path: Path
) -> None:
    runner = CliRunner(mix_stderr=False)
    created_campaign(runner, tmp_path / "c")
    tag = uuid.uuid4().hex[:6]
    out = tmp_path / "passwords.csv"
    first = run(
        runner,
        "annotators",
        "add",
        "--username",
        f"a-{tag}",
        "--campaign",
        str(tmp_path / "c"),
        "--out",
        str(out),
    )
    assert first.exit_code == 0, first.stderr
    second = run(
        runner,
        "annotators",
        "add",
        "--username",
        f"b-{tag}",
        "--username",
        f"c-{tag}",
        "--campaign",
        str(tmp_path / "c"),
        "--out",
        str(out),
    )
    assert second.exit_code == 0, second.stderr
    passwords = read_passwords(out)
    assert list(passwords) == [f"a-{tag}", f"b-{tag}", f"c-{tag}"]
    assert out.read_text(encoding="utf-8").count("username,password") == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for username, password in passwords.items():
        assert login_status(server, username, password) in (200, 201), username


def test_add_refuses_a_foreign_or_impossible_out_before_creating_anyone(
    server: RunningServer, client: ArgillaClient, tmp_path: Path
) -> None:
    runner = CliRunner(mix_stderr=False)
    campaign_dir = tmp_path / "c"
    created_campaign(runner, campaign_dir)
    campaign_yaml = (campaign_dir / "campaign.yaml").read_bytes()
    cases = [
        (campaign_dir / "campaign.yaml", "is not a passwords file", 2),
        (campaign_dir / "campaign.yaml" / "passwords.csv", "is a file, not a folder", 1),
        (tmp_path / ("p" * 300 + ".csv"), "too long", 1),
    ]
    for out, expected, exit_code in cases:
        username = f"x-{uuid.uuid4().hex[:8]}"
        result = run(
            runner,
            "annotators",
            "add",
            "--username",
            username,
            "--campaign",
            str(campaign_dir),
            "--out",
            str(out),
        )
        assert_one_line_error(result, expected, exit_code=exit_code)
        assert str(out) in result.stderr
        assert username not in usernames(client)
    assert (campaign_dir / "campaign.yaml").read_bytes() == campaign_yaml


def test_reset_password_gives_a_new_one_and_keeps_the_other_rows(
    server: RunningServer, client: ArgillaClient, tmp_path: Path
) -> None:
    runner = CliRunner(mix_stderr=False)
    campaign_dir = tmp_path / "c"
    created_campaign(runner, campaign_dir)
    tag = uuid.uuid4().hex[:6]
    out = tmp_path / "passwords.csv"
    added = run(
        runner,
        "annotators",
        "add",
        "--username",
        f"a-{tag}",
        "--username",
        f"b-{tag}",
        "--campaign",
        str(campaign_dir),
        "--out",
        str(out),
    )
    assert added.exit_code == 0, added.stderr
    before = read_passwords(out)

    reset = run(
        runner, "annotators", "reset-password", f"a-{tag}", "--campaign", str(campaign_dir), "--out", str(out)
    )
    assert reset.exit_code == 0, reset.stderr
    after = read_passwords(out)
    assert list(after) == [f"a-{tag}", f"b-{tag}"] and after[f"b-{tag}"] == before[f"b-{tag}"]
    assert after[f"a-{tag}"] != before[f"a-{tag}"]
    assert login_status(server, f"a-{tag}", after[f"a-{tag}"]) in (200, 201)
    assert login_status(server, f"a-{tag}", before[f"a-{tag}"]) == 401

    shown = run(runner, "annotators", "reset-password", f"b-{tag}", "--campaign", str(campaign_dir))
    assert shown.exit_code == 0, shown.stderr
    assert login_status(server, f"b-{tag}", shown.stdout.strip()) in (200, 201)
    assert "shown once" in shown.stderr

    missing = run(runner, "annotators", "reset-password", f"nobody-{tag}", "--campaign", str(campaign_dir))
    assert_one_line_error(missing, "is not a member of workspace", exit_code=1)
    foreign = run(
        runner,
        "annotators",
        "reset-password",
        f"a-{tag}",
        "--campaign",
        str(campaign_dir),
        "--out",
        str(campaign_dir / "campaign.yaml"),
    )
    assert_one_line_error(foreign, "is not a passwords file", exit_code=2)
    assert login_status(server, f"a-{tag}", after[f"a-{tag}"]) in (200, 201)  # refused before the reset


def test_a_password_that_cannot_be_written_says_how_to_reset_it(
    server: RunningServer, client: ArgillaClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import campaign.annotators

    runner = CliRunner(mix_stderr=False)
    campaign_dir = tmp_path / "c"
    created_campaign(runner, campaign_dir)
    username = f"full-{uuid.uuid4().hex[:6]}"

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(campaign.annotators, "write_file", full_disk)
    out = tmp_path / "passwords.csv"
    result = run(
        runner,
        "annotators",
        "add",
        "--username",
        username,
        "--campaign",
        str(campaign_dir),
        "--out",
        str(out),
    )
    assert_one_line_error(result, "reset-password USER --out FILE", exit_code=1)
    assert username in result.stderr and "No space left" in result.stderr
    monkeypatch.undo()
    server.use(monkeypatch)
    reset = run(
        runner, "annotators", "reset-password", username, "--campaign", str(campaign_dir), "--out", str(out)
    )
    assert reset.exit_code == 0, reset.stderr
    assert login_status(server, username, read_passwords(out)[username]) in (200, 201)
