"""The bad-input corpus: every case in tests/bad_inputs/ fails with one clear line and no traceback.

Each case is a folder with a `case.yaml`:

    description: what is wrong
    command: campaign seed rows.jsonl --campaign camp --dry-run   # run in a copy of the folder
    expect: "line 2: invalid JSON"                               # a fragment of the message
    campaign: true        # optional: copy _campaign/ (a rating campaign, N=2) to ./camp
    exit: 1               # the exit code: 1 a known failure, 2 a usage error
    usage: true           # optional: a click usage error (no traceback even with CAMPAIGN_DEBUG=1)
    progress: true        # optional: progress notes may come before the one error line
    env: {ARGILLA_API_URL: "{closed_url}", ARGILLA_API_KEY: wrong}   # optional
    setup: ["campaign create --campaign camp"]   # optional: shell lines run first, each must succeed

Placeholders in `command`, `setup` and `env`: {fixtures} (tests/fixtures), {closed_url} (a port nothing
listens on), {local_url} and {local_key} (the session's local server, started only for the cases that use
them), {unique} (a token unique to each run, for names on the shared server), {free_port} (a port
that was free a moment ago).
CAMPAIGN_HOME is the case's `home/` folder, so a case can bring its own credentials.json.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS = Path(__file__).parent / "bad_inputs"
FIXTURES = Path(__file__).parent / "fixtures"
CAMPAIGN = Path(sys.executable).with_name("campaign")
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.yaml").is_file())
KNOWN_KEYS = {"description", "command", "expect", "exit", "campaign", "usage", "progress", "env", "setup"}


def load_case(name: str) -> dict[str, Any]:
    """A case's manifest, checked so that a typo in the corpus fails loudly."""
    case = yaml.safe_load((CORPUS / name / "case.yaml").read_text(encoding="utf-8"))
    assert isinstance(case, dict), f"{name}/case.yaml must be a mapping"
    assert set(case) <= KNOWN_KEYS, f"{name}/case.yaml: unknown keys {set(case) - KNOWN_KEYS}"
    assert case.get("command", "").startswith("campaign "), f"{name}: command must start with 'campaign '"
    assert case.get("expect") and case.get("description"), f"{name}: needs description and expect"
    assert case.get("exit") in (1, 2), f"{name}: needs its exit code (1 or 2)"
    return case


def closed_url() -> str:
    """A local URL that refuses connections: a port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def copy_case(name: str, case: dict[str, Any], workdir: Path) -> Path:
    """A fresh copy of the case folder (plus the shared campaign if it asks for one) to run in."""
    shutil.copytree(CORPUS / name, workdir, ignore=shutil.ignore_patterns("case.yaml"))
    if case.get("campaign"):
        shutil.copytree(CORPUS / "_campaign", workdir / "camp")
    (workdir / "home").mkdir(exist_ok=True)
    return workdir


def run_case(case: dict[str, Any], workdir: Path, values: dict[str, str], *, debug: bool) -> Any:
    """Run the case's command line through the installed console script, in a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CAMPAIGN_", "HF_"))}
    env.update(
        CAMPAIGN_HOME=str(workdir / "home"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(workdir / ".hf"),
        COLUMNS="200",
    )
    values = {**values, "unique": uuid.uuid4().hex[:10], "free_port": closed_url().rsplit(":", 1)[1]}
    env.update({key: str(value).format(**values) for key, value in (case.get("env") or {}).items()})
    env["PATH"] = f"{CAMPAIGN.parent}{os.pathsep}{env.get('PATH', '')}"
    for line in case.get("setup") or []:
        done = subprocess.run(
            line.format(**values),
            shell=True,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"setup {line!r} failed:\n{done.stdout}\n{done.stderr}"
    if debug:
        env["CAMPAIGN_DEBUG"] = "1"
    argv = shlex.split(case["command"].format(**values))
    return subprocess.run(
        [str(CAMPAIGN), *argv[1:]], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="session")
def corpus_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every selected case, plain and with CAMPAIGN_DEBUG=1, a few at a time (each is a fresh process)."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_bad_input_fails_with_one_clear_line"
    ]
    cases = {name: load_case(name) for name in selected}
    values = {"fixtures": str(FIXTURES), "closed_url": closed_url(), "local_url": "", "local_key": ""}
    if any("{local_" in str(case) for case in cases.values()):
        server = request.getfixturevalue("local_server")
        values.update(local_url=server.api_url, local_key=server.api_key)
    root = tmp_path_factory.mktemp("bad-inputs")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            (name, debug): pool.submit(
                run_case, case, copy_case(name, case, root / name / str(debug)), values, debug=debug
            )
            for name, case in cases.items()
            for debug in (False, True)
        }
        return {key: future.result() for key, future in futures.items()}


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 150


@pytest.mark.parametrize("name", CASES)
def test_bad_input_fails_with_one_clear_line(name: str, corpus_runs: dict[Any, Any]) -> None:
    case = load_case(name)
    result = corpus_runs[name, False]
    shown = f"{name}: exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == case["exit"], shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.get("usage"):
        assert result.returncode == 2, shown
        usage_block = (
            len(lines) == 3 and lines[0].startswith("Usage: campaign") and lines[1].startswith("Try ")
        )
        assert len(lines) == 1 or usage_block, shown
        assert lines[-1].startswith("Error: "), shown
    else:
        errors = [line for line in lines if line.startswith("Error: ")]
        assert len(lines) == 1 or (case.get("progress") and len(errors) == 1), shown
        assert lines[-1].startswith("Error: "), shown
        assert "unexpected" not in lines[-1], f"an unhandled exception reached the user\n{shown}"
    assert case["expect"] in lines[-1], shown

    debug = corpus_runs[name, True]
    assert debug.returncode != 0, debug.stderr
    if case.get("usage"):
        assert "Traceback" not in debug.stderr, debug.stderr
    else:
        assert "Traceback" in debug.stderr, f"CAMPAIGN_DEBUG=1 shows no traceback:\n{debug.stderr}"


def test_an_unreachable_hub_on_push_is_one_clear_error(tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from campaign.errors import ConnectionFailed
    from campaign.export import push_to_hub

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"snapshot": {"snapshot_id": "s1"}}', encoding="utf-8")
    api = HfApi(endpoint=closed_url(), token="hf_" + "x" * 34)
    with pytest.raises(ConnectionFailed, match=r"Could not reach the Hub to push someone/data.*intact at"):
        push_to_hub(folder, "someone/data", token="hf_" + "x" * 34, api=api)
