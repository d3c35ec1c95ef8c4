"""Where commands write (campaign/destinations.py), and `status --html` through CliRunner."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_export_data import rating_campaign

from campaign.cli import cli
from campaign.destinations import check_file, check_folder, remove_leftovers, replace_folder, write_file
from campaign.errors import DestinationError, UsageError
from campaign.snapshot import save_snapshot


def never(_: Path) -> bool:
    return False


def always(_: Path) -> bool:
    return True


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_new_or_empty_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("new", "empty", "deeper/new"):
        assert check_folder(tmp_path / name, what="x", ours=never, overwrite=False) == tmp_path / name


def test_a_folder_we_wrote_needs_overwrite_and_a_foreign_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f" / "a.txt").parent.mkdir()
    (tmp_path / "f" / "a.txt").write_text("x")
    with pytest.raises(UsageError, match="--overwrite"):
        check_folder(tmp_path / "f", what="x", ours=always, overwrite=False)
    assert check_folder(tmp_path / "f", what="x", ours=always, overwrite=True) == tmp_path / "f"
    with pytest.raises(UsageError, match=r"holds a\.txt\); nothing was replaced"):
        check_folder(tmp_path / "f", what="x", ours=never, overwrite=True)


def test_the_campaign_and_the_current_folder_are_never_targets(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    campaign = tmp_path / "camp"
    (campaign / "sub").mkdir(parents=True)
    (campaign / "campaign.yaml").write_text("name: x\n")
    with pytest.raises(UsageError, match="campaign folder"):
        check_folder(campaign, what="x", ours=always, overwrite=True)
    monkeypatch.chdir(campaign / "sub")
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(UsageError):
            check_folder(out, what="x", ours=always, overwrite=True)


def test_impossible_places_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DestinationError, match="is a file, not a folder"):
        check_folder(tmp_path / "file" / "out", what="x", ours=never, overwrite=False)
    with pytest.raises(DestinationError, match="too long"):
        check_file(tmp_path / ("y" * 256), what="x", ours=never)
    with pytest.raises(UsageError, match="is a folder"):
        check_file(tmp_path, what="x", ours=always)


def test_a_file_is_replaced_only_if_empty_or_ours(tmp_path: Path) -> None:
    (tmp_path / "empty").touch()
    (tmp_path / "full").write_text("x")
    assert check_file(tmp_path / "empty", what="x", ours=never) == tmp_path / "empty"
    assert check_file(tmp_path / "full", what="x", ours=always) == tmp_path / "full"
    with pytest.raises(UsageError, match="left as it is"):
        check_file(tmp_path / "full", what="x", ours=never)


def test_write_file_is_atomic_and_private_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    write_file(path, "a,b\n", private=True)
    assert path.read_text() == "a,b\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    write_file(tmp_path / "public.html", "<p>")
    assert stat.S_IMODE((tmp_path / "public.html").stat().st_mode) & 0o044
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public.html", "secret.csv"]


def test_replace_folder_swaps_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target, staging = tmp_path / "t", tmp_path / "s"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_folder(staging, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_leftovers_of_dead_runs_go_live_ones_and_others_stay(tmp_path: Path) -> None:
    dead = dead_pid()
    target = tmp_path / "out"
    gone = [
        f".out.tmp-{dead}-ab",
        f".out.old-{dead}-cd",
        f".out.partial-{dead}-ef",
        ".out.old-1a2b3c4d",
        ".out.tmp",
    ]
    kept = [f".out.tmp-{os.getpid()}-ab", f".other.tmp-{dead}-ab", "out", ".out.tmpfoo", "notes.txt"]
    for name in gone + kept:
        (tmp_path / name).mkdir()
    assert sorted(p.name for p in remove_leftovers(target)) == sorted(gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


# -- status --html ---------------------------------------------------------------------------------


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "camp"
    save_snapshot(directory, rating_campaign(20))
    (directory / "campaign.yaml").write_text("name: demo\nworkspace: demo\n", encoding="utf-8")
    return directory


def status(*args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(cli, ["status", *args])


def one_line_error(result: Result, expected: str, exit_code: int) -> None:
    assert result.exit_code == exit_code, result.stderr
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "unexpected" not in result.stderr


def test_html_never_replaces_the_campaign_file_or_another_file(campaign_dir: Path) -> None:
    for name in ("campaign.yaml", "notes.html"):
        path = campaign_dir / name
        if not path.exists():
            path.write_text("<p>my notes</p>", encoding="utf-8")
        before = path.read_bytes()
        result = status("--campaign", str(campaign_dir), "--no-sync", "--html", str(path))
        one_line_error(result, f"{path} exists and is not an HTML report", 2)
        assert path.read_bytes() == before


def test_html_replaces_its_own_report_and_cleans_what_a_killed_run_left(campaign_dir: Path) -> None:
    html = campaign_dir / "report.html"
    left = campaign_dir / f".report.html.tmp-{dead_pid()}-x1"
    left.write_text("<!DOCTYPE html>half", encoding="utf-8")
    for _ in range(2):
        result = status("--campaign", str(campaign_dir), "--no-sync", "--html", str(html))
        assert result.exit_code == 0, result.stderr
    assert "<title>Campaign status: " in html.read_text(encoding="utf-8")
    assert not left.exists()
    assert not [p for p in campaign_dir.iterdir() if p.name.startswith(".report.html")]


@pytest.mark.parametrize("where", ["under a file", "name too long"])
def test_an_impossible_html_fails_before_the_sync(campaign_dir: Path, where: str) -> None:
    html = {
        "under a file": campaign_dir / "campaign.yaml" / "report.html",
        "name too long": campaign_dir / ("r" * 300 + ".html"),
    }[where]
    meta = (campaign_dir / ".campaign").stat().st_mtime_ns
    # No server is configured: reaching the sync would fail with a connection error instead.
    result = status("--campaign", str(campaign_dir), "--html", str(html))
    one_line_error(result, str(html), 1)
    assert "--html" in result.stderr
    assert (campaign_dir / ".campaign").stat().st_mtime_ns == meta
