"""Annotator accounts: read them from CSV or YAML, create them, add them to the campaign's workspace.

Generated passwords are returned once, to be shown or written to a 0600 file. API keys are never
returned: annotators log in to the web UI with their password.

A passwords file is a CSV with the header `username,password`. Writing to an existing one keeps every
row in it: a new account's row is appended, a reset password replaces that user's row. Each password
is written as soon as its account is created, so a killed run loses none that it created.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from campaign.destinations import check_file, remove_leftovers, write_file
from campaign.errors import DestinationError, InputError, NotFound, UsageError

if TYPE_CHECKING:
    from campaign.client import ArgillaClient

ROLES = ("annotator", "admin")
USERNAME_PATTERN = r"^(?!-|_)[a-z0-9-_]+$"
KNOWN_COLUMNS = ("username", "first_name", "last_name", "role", "password")
PASSWORDS_HEADER = ["username", "password"]


@dataclass(frozen=True)
class AnnotatorSpec:
    """One annotator to create."""

    username: str
    first_name: str | None = None
    last_name: str | None = None
    role: str = "annotator"
    password: str | None = None


@dataclass(frozen=True)
class AddResult:
    """What happened to one annotator."""

    username: str
    action: str  # created | added-to-workspace | unchanged
    role: str
    password: str | None = None

    def public(self) -> dict[str, Any]:
        """The result without the password."""
        data = asdict(self)
        data.pop("password")
        return data


def _check_username(name: str, where: str) -> str:
    import re

    name = name.strip()
    if not name:
        msg = f"{where}: empty username. Every annotator needs a username."
        raise InputError(msg)
    if not re.match(USERNAME_PATTERN, name):
        msg = (
            f"{where}: username {name!r} is not accepted by Argilla. "
            "Use lower-case letters, digits, '-' and '_', not starting with '-' or '_'."
        )
        raise InputError(msg)
    return name


def _spec(row: dict[str, Any], where: str) -> AnnotatorSpec:
    unknown = sorted(set(row) - set(KNOWN_COLUMNS))
    if unknown:
        msg = f"{where}: unknown column(s) {', '.join(unknown)}. Known columns: {', '.join(KNOWN_COLUMNS)}."
        raise InputError(msg)
    if "username" not in row:
        msg = f"{where}: missing column 'username'. The file needs a 'username' column (or key)."
        raise InputError(msg)
    role = str(row.get("role") or "annotator").strip()
    if role not in ROLES:
        msg = f"{where}: role {role!r} is not one of {', '.join(ROLES)}."
        raise InputError(msg)
    password = row.get("password") or None
    if password is not None and len(str(password)) < 8:
        msg = f"{where}: the password must have at least 8 characters; leave it empty to generate one."
        raise InputError(msg)
    return AnnotatorSpec(
        username=_check_username(str(row["username"] or ""), where),
        first_name=(str(row["first_name"]).strip() or None) if row.get("first_name") else None,
        last_name=(str(row["last_name"]).strip() or None) if row.get("last_name") else None,
        role=role,
        password=str(password) if password is not None else None,
    )


def spec_for_username(username: str) -> AnnotatorSpec:
    """An annotator given by username alone (`--username`)."""
    return _spec({"username": username}, f"--username {username}")


def read_annotators(path: Path) -> list[AnnotatorSpec]:
    """Annotators from a CSV file (a header row with `username`) or a YAML list."""
    if not path.exists():
        msg = f"Annotators file {path} does not exist."
        raise InputError(msg)
    suffix = path.suffix.lower()
    rows: list[tuple[str, dict[str, Any]]] = []
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "username" not in [f.strip() for f in reader.fieldnames]:
                msg = f"{path}: missing column 'username' in the header row (found: {', '.join(reader.fieldnames or [])})."
                raise InputError(msg)
            for line, row in enumerate(reader, start=2):
                rows.append((f"{path}:{line}", {k.strip(): v for k, v in row.items() if k}))
    elif suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            # pyyaml's own message spans several lines; keep the user's message to one.
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or "syntax error"
            msg = f"{where}: invalid YAML: {problem}. Check the indentation and the quotes."
            raise InputError(msg) from None
        if isinstance(data, dict) and "annotators" in data:
            data = data["annotators"]
        if not isinstance(data, list):
            msg = f"{path}: expected a list of annotators (each a mapping with 'username', or a plain username)."
            raise InputError(msg)
        for i, item in enumerate(data, start=1):
            entry = {"username": item} if isinstance(item, str) else item
            if not isinstance(entry, dict):
                msg = f"{path}: annotator #{i} must be a mapping or a username."
                raise InputError(msg)
            rows.append((f"{path}: annotator #{i}", entry))
    else:
        msg = f"{path}: unsupported annotators file type {suffix or '(none)'}; use .csv or .yaml."
        raise UsageError(msg)
    specs: list[AnnotatorSpec] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        spec = _spec(row, where)
        if spec.username in seen:
            msg = f"{where}: duplicate username {spec.username!r} (first at {seen[spec.username]})."
            raise InputError(msg)
        seen[spec.username] = where
        specs.append(spec)
    if not specs:
        msg = f"{path}: no annotators found."
        raise InputError(msg)
    return specs


def add_annotators(
    client: ArgillaClient,
    workspace: str,
    specs: list[AnnotatorSpec],
    *,
    passwords_file: Path | None = None,
) -> list[AddResult]:
    """Create missing users with random passwords and add everyone to the workspace; re-adding is a no-op.

    With `passwords_file`, each new password is saved there as soon as its account exists; the file is
    checked before any account is created.
    """
    from campaign.client import random_password

    target = check_passwords_file(passwords_file) if passwords_file is not None else None
    ws = client.require_workspace(workspace)
    existing = {u["username"]: u for u in client.users()}
    members = {u["username"] for u in client.workspace_users(ws["id"])}
    results: list[AddResult] = []
    for spec in specs:
        user = existing.get(spec.username)
        password = None
        if user is None:
            password = spec.password or random_password()
            user = client.create_user(
                username=spec.username,
                password=password,
                role=spec.role,
                first_name=spec.first_name or spec.username,
                last_name=spec.last_name,
            )
            action = "created"
        else:
            action = "unchanged"
        if spec.username not in members:
            client.add_to_workspace(ws["id"], str(user["id"]))
            members.add(spec.username)
            if action == "unchanged":
                action = "added-to-workspace"
        if password is not None and target is not None:
            # Saved once the account is a member, so that a failed save can be mended by reset-password.
            save_passwords(target, [(spec.username, password)])
        results.append(AddResult(spec.username, action, str(user.get("role", spec.role)), password))
    return results


def list_annotators(
    client: ArgillaClient, workspace: str, dataset: str | None = None
) -> list[dict[str, Any]]:
    """Members of the workspace with role, workspaces and submitted responses in the campaign dataset."""
    ws = client.require_workspace(workspace)
    submitted: dict[str, int] = {}
    if dataset is not None:
        found = client.find_dataset(dataset, workspace)
        if found is not None:
            submitted = _submitted_by_username(client, str(found["id"]))
    rows = []
    for user in client.workspace_users(ws["id"]):
        rows.append(
            {
                "username": user["username"],
                "role": user["role"],
                "workspaces": client.user_workspaces(str(user["id"])),
                "submitted": submitted.get(user["username"], 0),
            }
        )
    return sorted(rows, key=lambda r: r["username"])


def _submitted_by_username(client: ArgillaClient, dataset_id: str) -> dict[str, int]:
    names = client.usernames_by_id()
    counts: dict[str, int] = {}
    for page in client.iter_records(dataset_id, include=("responses",)):
        for record in page:
            for response in record.get("responses") or []:
                if response["status"] == "submitted":
                    name = names.get(str(response["user_id"]), str(response["user_id"]))
                    counts[name] = counts.get(name, 0) + 1
    return counts


def remove_annotator(client: ArgillaClient, workspace: str, username: str) -> None:
    """Take a user's membership of the workspace away; their responses are kept."""
    ws = client.require_workspace(workspace)
    for user in client.workspace_users(ws["id"]):
        if user["username"] == username:
            client.remove_from_workspace(ws["id"], str(user["id"]))
            return
    msg = f"User {username!r} is not a member of workspace {workspace!r}. See 'campaign annotators list'."
    raise NotFound(msg)


def reset_password(client: ArgillaClient, workspace: str, username: str) -> str:
    """Give a member of the workspace a new random password and return it (owners are refused)."""
    from campaign.client import random_password

    ws = client.require_workspace(workspace)
    user = next((u for u in client.workspace_users(ws["id"]) if u["username"] == username), None)
    if user is None:
        msg = f"User {username!r} is not a member of workspace {workspace!r}. See 'campaign annotators list'."
        raise NotFound(msg)
    if user.get("role") == "owner":
        msg = f"{username!r} is the server's owner; reset-password is for annotators and admins."
        raise UsageError(msg)
    password = random_password()
    client.set_password(str(user["id"]), password)
    return password


def _is_passwords_file(path: Path) -> bool:
    """Whether `path` is a passwords CSV that `campaign annotators` wrote (by its header)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), None) == PASSWORDS_HEADER
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def check_passwords_file(path: Path) -> Path:
    """The passwords file, once it is new, empty or one written here (any other file is refused)."""
    return check_file(
        path, what=f"a passwords file ({','.join(PASSWORDS_HEADER)} CSV)", ours=_is_passwords_file
    )


def save_passwords(path: Path, rows: list[tuple[str, str]]) -> None:
    """Add username, password rows to the passwords file (0600); a username already there gets the new one."""
    known: dict[str, str] = {}
    if path.is_file() and path.stat().st_size:
        with path.open(newline="", encoding="utf-8") as handle:
            known = {row["username"]: row["password"] for row in csv.DictReader(handle)}
    known.update(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PASSWORDS_HEADER)
    writer.writerows(known.items())
    try:
        write_file(path, buffer.getvalue(), private=True)
    except OSError as exc:
        names = ", ".join(name for name, _ in rows)
        msg = (
            f"Cannot write {path}: {exc.strerror or exc}. The password of {names} is not saved; run "
            f"'campaign annotators reset-password USER --out FILE' with a writable FILE to give a new one."
        )
        raise DestinationError(msg) from None
    remove_leftovers(path)
