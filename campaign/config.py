"""Where settings come from: environment, the local server's credentials file, and defaults.

Every value knows its source, so `campaign config show` can say where it came from.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from campaign.errors import ConfigError

ENV_HOME = "CAMPAIGN_HOME"
ENV_API_URL = "ARGILLA_API_URL"
ENV_API_KEY = "ARGILLA_API_KEY"
ENV_HF_TOKEN = "HF_TOKEN"
CREDENTIALS_FILENAME = "credentials.json"
# Written by `campaign deploy space`: the Space's URL and owner credentials, preferred to the local server's.
SPACE_FILENAME = "space.json"
SECRET_KEYS = frozenset({"api_key", "password", "hf_token", "token"})
URL_KEYS = frozenset({"api_url", "database_url", "redis_url", "url"})
# What an HTTP header value may carry: visible ASCII. Anything else is a copy-paste accident.
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")
_SECRET_QUERY = re.compile(r"(?i)(pass|token|key|secret|auth|sig)")


def default_home() -> Path:
    """The per-user data dir of the local server: $CAMPAIGN_HOME, else XDG data home."""
    if env := os.environ.get(ENV_HOME):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "argilla-campaign"


def credentials_path(home: Path | None = None) -> Path:
    """The credentials file that `campaign server start` writes in its data dir."""
    return (home or default_home()) / CREDENTIALS_FILENAME


def read_credentials(path: Path) -> dict[str, str]:
    """Read a credentials file, checking that it has the keys the CLI needs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"No credentials file at {path}. Run 'campaign server start' first."
        raise ConfigError(msg) from None
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"Cannot read credentials file {path}: {exc}. Delete it and run 'campaign server start' again."
        raise ConfigError(msg) from None
    if not isinstance(data, dict):
        msg = f"Credentials file {path} must hold a JSON object."
        raise ConfigError(msg)
    missing = [key for key in ("api_url", "api_key") if not isinstance(data.get(key), str) or not data[key]]
    if missing:
        msg = (
            f"Credentials file {path} lacks {', '.join(missing)}. Run 'campaign server start' to rewrite it."
        )
        raise ConfigError(msg)
    return {str(k): str(v) for k, v in data.items()}


def write_private_text(path: Path, text: str) -> None:
    """Write a file readable by the owner only (0600), atomically: it never exists with wider access."""
    from campaign.destinations import remove_leftovers, write_file

    write_file(path, text, private=True)
    remove_leftovers(path)


def write_private_json(path: Path, data: Mapping[str, object]) -> None:
    """Write JSON readable by the owner only (0600), atomically."""
    write_private_text(path, json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from."""

    value: str | None
    source: str

    @property
    def is_set(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class Connection:
    """How to reach Argilla: URL and API key, each with its source."""

    api_url: Setting
    api_key: Setting
    extras: dict[str, Setting] = field(default_factory=dict)

    def as_report(self) -> dict[str, dict[str, str | None]]:
        """Every value with its source, secrets redacted."""
        items = {"api_url": self.api_url, "api_key": self.api_key, **self.extras}
        return {
            name: {"value": redact(name, setting.value), "source": setting.source}
            for name, setting in items.items()
        }


def redact(name: str, value: str | None) -> str | None:
    """Hide a secret's value, keeping only whether it is set; URLs keep all but their credentials."""
    if value is None:
        return value
    if name in URL_KEYS:
        return redact_url(value)
    if name not in SECRET_KEYS:
        return value
    return "***" if value else ""


def redact_url(url: str) -> str:
    """A URL as it may be shown or stored: user info and secret-looking query values become ***."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def clean_api_key(value: str, source: str) -> str:
    """An API key without surrounding whitespace, checked to fit an HTTP header; the error never shows it."""
    key = value.strip()
    if not key:
        msg = f"The API key from {source} is empty. Set it to the key shown by 'campaign server start'."
        raise ConfigError(msg)
    if not _HEADER_SAFE.match(key):
        msg = (
            f"The API key from {source} holds characters an API key cannot have (spaces, control or "
            "non-ASCII characters). Copy the key again, without quotes or line breaks."
        )
        raise ConfigError(msg)
    return key


def known_secrets(*, home: Path | None = None) -> list[str]:
    """The secrets this process could leak: API key, HF token, passwords in URLs and the credentials file."""
    found: list[str] = []
    for name in (ENV_API_KEY, ENV_HF_TOKEN):
        if value := os.environ.get(name):
            found.extend([value, value.strip()])
    urls = [os.environ.get(ENV_API_URL) or ""]
    try:
        creds = json.loads(credentials_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        creds = {}
    if isinstance(creds, dict):
        found.extend(str(creds[k]) for k in SECRET_KEYS if creds.get(k))
        urls.append(str(creds.get("api_url") or ""))
    for url in urls:
        if "@" in url:
            userinfo = url.split("//", 1)[-1].rsplit("@", 1)[0]
            found.extend([userinfo, userinfo.partition(":")[2]])
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret replaced by ***: the last guard before anything is shown."""
    for secret in known_secrets() if secrets is None else secrets:
        text = text.replace(secret, "***")
    return text


def resolve_connection(*, home: Path | None = None) -> Connection:
    """Find the Argilla to talk to: ARGILLA_API_URL/ARGILLA_API_KEY, else a deployed Space, else the local server."""
    env_url = (os.environ.get(ENV_API_URL) or "").strip() or None
    env_key = (os.environ.get(ENV_API_KEY) or "").strip() or None
    cred_path = credentials_path(home)
    if (space := cred_path.with_name(SPACE_FILENAME)).exists():
        cred_path = space
    creds: dict[str, str] = {}
    if (not env_url or not env_key) and cred_path.exists():
        creds = read_credentials(cred_path)
    api_url = (
        Setting(env_url, f"env {ENV_API_URL}")
        if env_url
        else Setting(creds.get("api_url"), str(cred_path))
        if creds
        else Setting(None, "unset")
    )
    api_key = (
        Setting(env_key, f"env {ENV_API_KEY}")
        if env_key
        else Setting((creds.get("api_key") or "").strip() or None, str(cred_path))
        if creds
        else Setting(None, "unset")
    )
    hf = os.environ.get(ENV_HF_TOKEN)
    extras = {"hf_token": Setting(hf, f"env {ENV_HF_TOKEN}") if hf else Setting(None, "unset")}
    return Connection(api_url=api_url, api_key=api_key, extras=extras)


def require_connection(*, home: Path | None = None) -> tuple[str, str]:
    """The URL and key to use, or an error that says how to get them."""
    conn = resolve_connection(home=home)
    if not conn.api_url.is_set or not conn.api_key.is_set:
        msg = (
            "No Argilla server configured. Start the local one with 'campaign server start', "
            f"or set {ENV_API_URL} and {ENV_API_KEY}."
        )
        raise ConfigError(msg)
    assert conn.api_url.value is not None and conn.api_key.value is not None
    return conn.api_url.value, conn.api_key.value
