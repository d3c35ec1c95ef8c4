"""No secret leaks: a whole campaign through the CLI, then every output, log and written file is searched.

The secrets are the owner's API key and password, each annotator's API key and password, an
HF token set in the environment, and a password in ARGILLA_API_URL (user info of the URL). The only places allowed to hold them are the credentials file of
the local server and the --out passwords file of 'campaign annotators add' (annotator passwords only).
"""

from __future__ import annotations

import csv
import os
import secrets as random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.server_helpers import api, submit

CAMPAIGN = Path(sys.executable).with_name("campaign")
DISTISET = Path(__file__).parent / "fixtures" / "seed" / "distiset"


def find_secrets(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets that occur in `text`."""
    return [name for name, value in secrets.items() if value in text]


def file_texts(path: Path) -> list[str]:
    """What a file holds as text: its raw bytes, and for parquet every value and the schema metadata."""
    raw = path.read_bytes()
    texts = [raw.decode("utf-8", errors="replace"), raw.decode("latin-1")]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        texts.append(str(table.schema.metadata))
        texts.extend(str(column.to_pylist()) for column in table.columns)
    return texts


def test_no_secret_in_any_output_log_or_file(local_server: RunningServer, tmp_path: Path) -> None:
    name = f"secrets-{random.token_hex(4)}"
    hf_token = "hf_" + random.token_hex(17)
    url_password = "urlpw" + random.token_hex(8)
    url_with_password = local_server.api_url.replace("://", f"://campaign:{url_password}@")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CAMPAIGN_", "HF_"))}
    env.update(
        CAMPAIGN_HOME=str(tmp_path / "home"),
        ARGILLA_API_URL=url_with_password,
        ARGILLA_API_KEY=local_server.api_key + "\r\n",
        HF_TOKEN=hf_token,
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        COLUMNS="200",
    )
    directory = tmp_path / name
    passwords_file = tmp_path / "passwords.csv"
    outputs: list[tuple[str, str]] = []

    def run(*args: str) -> str:
        result = subprocess.run(
            [str(CAMPAIGN), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"campaign {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        outputs.append((f"stdout of campaign {' '.join(args)}", result.stdout))
        outputs.append((f"stderr of campaign {' '.join(args)}", result.stderr))
        return result.stdout

    run("init", str(directory), "--template", "rating", "--responses", "2")
    run("create", "--campaign", str(directory))
    run("config", "show", "--campaign", str(directory))
    run("config", "show", "--campaign", str(directory), "--json")
    usernames = [f"{name}-a1", f"{name}-a2"]
    run(
        "annotators",
        "add",
        "--campaign",
        str(directory),
        *[part for u in usernames for part in ("--username", u)],
        "--out",
        str(passwords_file),
    )
    run("annotators", "list", "--campaign", str(directory), "--json")
    run("seed", str(DISTISET), "--config", "ultra_feedback_0", "--campaign", str(directory))

    with passwords_file.open(newline="", encoding="utf-8") as handle:
        passwords = {row["username"]: row["password"] for row in csv.DictReader(handle)}
    assert set(passwords) == set(usernames)
    users = {
        u["username"]: u
        for u in api(local_server.api_url, local_server.api_key, "GET", "/users").json()["items"]
    }
    datasets = api(local_server.api_url, local_server.api_key, "GET", "/me/datasets").json()["items"]
    dataset = next(d for d in datasets if d["name"] == name)
    records = api(
        local_server.api_url, local_server.api_key, "GET", f"/datasets/{dataset['id']}/records?limit=1000"
    ).json()["items"]
    assert records
    for i, record in enumerate(records):
        for j, username in enumerate(usernames):
            values = {"rating_1": 1 + (i + j) % 5, "rating_2": 5 - (i % 3)}
            submit(local_server.api_url, users[username]["api_key"], record["id"], values)

    run("status", "--campaign", str(directory), "--json")
    run("status", "--campaign", str(directory), "--markdown", "--html", str(directory / "report.html"))
    run("status", "--campaign", str(directory), "--no-sync")
    run("export", "--campaign", str(directory), "--format", "all", "--out", str(directory / "export"))
    run(
        "export",
        "--campaign",
        str(directory),
        "--format",
        "dpo",
        "--out",
        str(directory / "export-json"),
        "--json",
    )
    run("server", "status", "--json", "--home", str(local_server.home))
    run("backup", str(directory / "backup"), "--campaign", str(directory))

    secrets = {
        "owner API key": local_server.api_key,
        "owner password": local_server.password,
        "HF token": hf_token,
        "password in ARGILLA_API_URL": url_password,
    }
    for username in usernames:
        secrets[f"{username} API key"] = users[username]["api_key"]
        secrets[f"{username} password"] = passwords[username]
    assert all(len(value) >= 8 for value in secrets.values())

    written = sorted(p for p in directory.rglob("*") if p.is_file())
    assert any(p.suffix == ".parquet" and ".campaign" in p.parts for p in written), "no snapshot written"
    for expected in (
        "backup/manifest.json",
        "report.html",
        "export/README.md",
        "export/manifest.json",
        "export/dpo/train.parquet",
    ):
        assert directory / expected in written, f"{expected} not written"
    logs = sorted(p for p in (local_server.home / "logs").rglob("*") if p.is_file())
    assert logs, "the local server wrote no logs"
    allowed = {passwords_file, local_server.home / "credentials.json", tmp_path / "home" / "credentials.json"}

    leaks = [(where, found) for where, text in outputs if (found := find_secrets(text, secrets))]
    for path in [*written, *logs]:
        if path in allowed:
            continue
        for text in file_texts(path):
            if found := find_secrets(text, secrets):
                leaks.append((str(path), found))
                break
    assert not leaks, "secrets leaked:\n" + "\n".join(
        f"{where}: {', '.join(found)}" for where, found in leaks
    )

    # The passwords file is the one allowed place, and it holds only the annotators' passwords.
    assert find_secrets(passwords_file.read_text(encoding="utf-8"), secrets) == [
        f"{u} password" for u in usernames
    ]


def test_the_server_home_is_private(local_server: RunningServer) -> None:
    """Every file and folder under the server home (database, index, logs) is the owner's only."""
    paths = [local_server.home, *local_server.home.rglob("*")]
    assert any(p.name == "argilla.db" for p in paths), "no database in the server home"
    assert any(p.parent.name == "logs" for p in paths), "no logs in the server home"
    # argilla-server copies its public web assets (statics) into its temp folder keeping their modes;
    # they hold no secret and sit in a private folder. Everything else must be private itself.
    public = [
        f"{oct(p.stat().st_mode & 0o777)} {p}"
        for p in paths
        if not p.is_symlink() and p.stat().st_mode & 0o077 and "statics" not in p.parts
    ]
    for folder in (p for p in paths if p.name == "statics"):
        assert folder.parent.stat().st_mode & 0o077 == 0, f"{folder.parent} is readable by others"
    assert not public, "readable by others:\n" + "\n".join(public)


def closed_url() -> str:
    """A local URL nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


KEY_SHAPES = {
    "trailing CR": "key{secret}\r",
    "inner CR LF": "key{secret}\r\nX-Evil: 1",
    "inner space": "key {secret}",
    "non-Latin-1": "key{secret}\u2603",
    "Latin-1 accent": "key{secret}\u00e9",
    "tab inside": "key\t{secret}",
}


@pytest.mark.parametrize("shape", sorted(KEY_SHAPES))
def test_no_error_message_shows_a_key_whatever_its_shape(shape: str, tmp_path: Path) -> None:
    secret = "leak" + random.token_hex(8)
    url_password = "urlpw" + random.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CAMPAIGN_", "HF_"))}
    env.update(
        CAMPAIGN_HOME=str(tmp_path / "home"),
        ARGILLA_API_URL=closed_url().replace("://", f"://someone:{url_password}@"),
        ARGILLA_API_KEY=KEY_SHAPES[shape].format(secret=secret),
        HF_HUB_OFFLINE="1",
    )
    shutil.copytree(Path(__file__).parent / "bad_inputs" / "_campaign", tmp_path / "camp")
    outputs = []
    for args in (["annotators", "list"], ["config", "show"], ["create"]):
        result = subprocess.run(
            [str(CAMPAIGN), *args, "--campaign", str(tmp_path / "camp")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        outputs.append((args, result))
    listed = outputs[0][1]
    assert listed.returncode == 1, listed.stderr
    assert "unexpected" not in listed.stderr, listed.stderr
    # a key with only surrounding whitespace is cleaned and used; any other odd character is refused
    expected = "Cannot reach Argilla" if shape == "trailing CR" else "holds characters an API key cannot have"
    assert expected in listed.stderr, listed.stderr
    for args, result in outputs:
        text = result.stdout + result.stderr
        assert secret not in text, f"campaign {' '.join(args)} shows the key:\n{text}"
        assert url_password not in text, f"campaign {' '.join(args)} shows the URL password:\n{text}"


def test_a_connection_error_hides_the_url_password(tmp_path: Path) -> None:
    url_password = "urlpw" + random.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "CAMPAIGN_", "HF_"))}
    url = closed_url()
    env.update(
        CAMPAIGN_HOME=str(tmp_path / "home"),
        ARGILLA_API_URL=url.replace("://", f"://someone:{url_password}@"),
        ARGILLA_API_KEY="a-key-of-the-right-shape",
    )
    result = subprocess.run(
        [
            str(CAMPAIGN),
            "annotators",
            "list",
            "--campaign",
            str(Path(__file__).parent / "bad_inputs" / "_campaign"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Cannot reach Argilla at http://***@127.0.0.1" in result.stderr, result.stderr
    assert url_password not in result.stdout + result.stderr


def test_redact_url_hides_user_info_and_secret_query_values() -> None:
    from campaign.config import redact, redact_url

    assert redact_url("http://u:p4ss@host:6900/x") == "http://***@host:6900/x"
    assert redact_url("https://t0ken@host") == "https://***@host"
    assert redact_url("postgresql://h/db?sslmode=require&password=pw1") == (
        "postgresql://h/db?sslmode=require&password=***"
    )
    assert redact_url("http://127.0.0.1:6900") == "http://127.0.0.1:6900"
    assert redact("api_url", "http://a:b@h") == "http://***@h"
    assert redact("api_key", "k") == "***"
