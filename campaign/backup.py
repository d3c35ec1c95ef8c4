"""Back up a dataset (settings, records, every annotator's responses, users) and restore it anywhere.

Everything goes through the REST API, not the SDK's `Dataset.to_disk`, which in argilla 2.8 crashes on
a discarded response without values and otherwise drops response statuses, ranking ranks (so ties),
suggestion types, vectors, timestamps and usernames (responses keep only server-local user ids).

A backup is a directory:
  manifest.json   format, versions, source, counts and the sha256 of every other file
  dataset.json    dataset attributes and settings (fields, questions, metadata, vectors), ids stripped
  records.jsonl   one record a line: external id, fields, metadata, vectors, suggestions, responses
  users.json      the users involved: username, role, names (never API keys or passwords)

Users and questions are referred to by name, so a backup restores onto any server. Restoring is an
upsert by external id, so re-running an interrupted restore finishes it without duplicates.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.config import redact_url
from campaign.destinations import (
    cannot_write,
    check_file,
    check_folder,
    remove_leftovers,
    replace_folder,
    staging_path,
    write_file,
)
from campaign.errors import CampaignError, Conflict, InputError, NotFound

if TYPE_CHECKING:
    from campaign.client import ArgillaClient, StoredRecord

FORMAT = "argilla-campaign-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATASET_FILE = "dataset.json"
RECORDS_FILE = "records.jsonl"
USERS_FILE = "users.json"
PASSWORDS_FILE = "restored-users-passwords.json"
DATA_FILES = (DATASET_FILE, RECORDS_FILE, USERS_FILE)
RESTORE_MARKER = "campaign_restored_from"  # dataset metadata key naming the backup a dataset came from
RESTORE_CHUNK = 200
USER_KEYS = ("username", "role", "first_name", "last_name")
_SETTINGS_KEYS = {
    "fields": ("name", "title", "required", "settings"),
    "questions": ("name", "title", "description", "required", "settings"),
    "metadata_properties": ("name", "title", "settings", "visible_for_annotators"),
    "vectors_settings": ("name", "title", "dimensions"),
}


@dataclass(frozen=True)
class BackupResult:
    """What `campaign backup` wrote."""

    directory: Path
    dataset: str
    workspace: str
    counts: dict[str, Any]


@dataclass(frozen=True)
class RestoreResult:
    """What `campaign restore` did."""

    dataset: str
    workspace: str
    dataset_id: str
    url: str
    dataset_created: bool
    workspace_created: bool
    records: int
    responses: int
    users_created: list[str] = field(default_factory=list)
    passwords_file: Path | None = None
    notes: list[str] = field(default_factory=list)


# -- backup ---------------------------------------------------------------------------------------


def backup_dataset(
    client: ArgillaClient, directory: Path, *, dataset: str, workspace: str, overwrite: bool = False
) -> BackupResult:
    """Save a dataset's settings, records, responses and users into `directory`, atomically."""
    directory = check_folder(
        directory, what="a backup", ours=is_backup, overwrite=overwrite, option="backup DIRECTORY"
    )
    found = client.require_dataset(dataset, workspace)
    dataset_id = str(found["id"])
    usernames = {str(u["id"]): u for u in client.users()}
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_path(directory, "partial")
    except OSError as exc:
        raise cannot_write(directory, exc, option="backup DIRECTORY") from None
    try:
        settings, question_names = _read_settings(client, dataset_id)
        settings["dataset"]["workspace"] = workspace
        _write_json(staging / DATASET_FILE, settings)
        counts, responders = _write_records(
            client, dataset_id, staging / RECORDS_FILE, question_names=question_names, users=usernames
        )
        members = {str(u["id"]) for u in client.workspace_users(str(found["workspace_id"]))}
        users = []
        for user_id in sorted(
            members | set(responders), key=lambda i: str(usernames.get(i, {}).get("username"))
        ):
            user = usernames.get(user_id)
            if user is None:
                continue
            users.append(
                {key: user.get(key) for key in USER_KEYS}
                | {"workspace_member": user_id in members, "responses": responders.get(user_id, 0)}
            )
        _write_json(staging / USERS_FILE, users)
        counts |= {
            "users": len(users),
            **{kind: len(settings[kind]) for kind in _SETTINGS_KEYS},
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "backup_id": uuid.uuid4().hex,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {
                "api_url": redact_url(client.api_url),
                "workspace": workspace,
                "dataset": dataset,
                "dataset_id": dataset_id,
            },
            "versions": _versions(client),
            "counts": counts,
            "files": {name: _file_digest(staging / name) for name in DATA_FILES},
        }
        _write_json(staging / MANIFEST, manifest)
        _fsync_dir(staging)
        replace_folder(staging, directory)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):  # a local write failed
            raise cannot_write(directory, exc, option="backup DIRECTORY") from None
        raise
    remove_leftovers(directory)
    return BackupResult(directory, dataset, workspace, counts)


def read_settings(client: ArgillaClient, dataset_id: str) -> dict[str, Any]:
    """A dataset's attributes and settings as server-independent JSON (no ids, no timestamps)."""
    return _read_settings(client, dataset_id)[0]


def _read_settings(client: ArgillaClient, dataset_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings, and question id -> name to turn suggestions' question ids into names."""
    info = client.dataset(dataset_id)
    metadata = dict(info.get("metadata") or {})
    metadata.pop(RESTORE_MARKER, None)
    settings: dict[str, Any] = {
        "dataset": {
            "name": info["name"],
            "guidelines": info.get("guidelines"),
            "allow_extra_metadata": info.get("allow_extra_metadata", True),
            "distribution": info.get("distribution"),
            "metadata": metadata or None,
        }
    }
    question_ids: dict[str, str] = {}
    for kind in _SETTINGS_KEYS:
        items = client.settings_items(dataset_id, kind)
        settings[kind] = [{key: item.get(key) for key in _SETTINGS_KEYS[kind]} for item in items]
        if kind == "questions":
            question_ids = {str(item["id"]): str(item["name"]) for item in items}
    return settings, question_ids


def _write_records(
    client: ArgillaClient,
    dataset_id: str,
    path: Path,
    *,
    question_names: dict[str, str],
    users: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, int]]:
    statuses: Counter[str] = Counter()
    responders: Counter[str] = Counter()
    records = suggestions = vectors = 0
    with path.open("w", encoding="utf-8") as handle:
        for page in stored_records(client, dataset_id):
            for record in page:
                entry = _record_entry(record, question_names=question_names, users=users)
                records += 1
                suggestions += len(entry["suggestions"])
                vectors += len(entry["vectors"])
                for response in entry["responses"]:
                    statuses[response["status"]] += 1
                for response in record.get("responses") or []:
                    responders[str(response["user_id"])] += 1
                handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    counts = {
        "records": records,
        "suggestions": suggestions,
        "vectors": vectors,
        "responses": sum(statuses.values()),
        "responses_by_status": dict(sorted(statuses.items())),
    }
    return counts, dict(responders)


def stored_records(
    client: ArgillaClient, dataset_id: str, *, page_size: int = 500
) -> Iterator[list[dict[str, Any]]]:
    """Every record, a page at a time, with responses, suggestions and vectors.

    Asking for vectors keeps `iter_records` on the stock REST endpoint (the local server's lean sync
    endpoint carries no vectors).
    """
    return client.iter_records(
        dataset_id, include=("responses", "suggestions", "vectors"), page_size=page_size
    )


def _record_entry(
    record: dict[str, Any], *, question_names: dict[str, str], users: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    responses = []
    for response in record.get("responses") or []:
        user_id = str(response["user_id"])
        user = users.get(user_id)
        if user is None:
            msg = f"Record {record['id']} has a response by user {user_id}, who no longer exists."
            raise NotFound(msg)
        responses.append(
            {
                "user": user["username"],
                "status": response["status"],
                "values": response.get("values"),
                "inserted_at": response.get("inserted_at"),
                "updated_at": response.get("updated_at"),
            }
        )
    suggestions = [
        {
            "question": question_names[str(s["question_id"])],
            "value": s["value"],
            "agent": s.get("agent"),
            "score": s.get("score"),
            "type": s.get("type"),
        }
        for s in record.get("suggestions") or []
    ]
    return {
        "id": str(record["id"]),
        "external_id": record.get("external_id"),
        "status": record.get("status"),
        "fields": record.get("fields"),
        "metadata": record.get("metadata"),
        "vectors": record.get("vectors") or {},
        "suggestions": sorted(suggestions, key=lambda s: s["question"]),
        "responses": sorted(responses, key=lambda r: r["user"]),
        "inserted_at": record.get("inserted_at"),
        "updated_at": record.get("updated_at"),
    }


def is_backup(directory: Path) -> bool:
    """Whether `directory` holds a backup that `campaign backup` wrote (recognised by its manifest)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _versions(client: ArgillaClient) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    from campaign import __version__

    try:
        sdk: str | None = version("argilla")
    except PackageNotFoundError:
        sdk = None
    try:
        server: str | None = client.server_version()
    except CampaignError:
        server = None
    return {"argilla_campaign": __version__, "argilla_server": server, "argilla_sdk": sdk}


# -- reading a backup -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    """A backup directory, checked: manifest, settings and users loaded; records streamed on demand."""

    directory: Path
    manifest: dict[str, Any]
    settings: dict[str, Any]
    users: list[dict[str, Any]]

    def records(self) -> Iterator[dict[str, Any]]:
        """The backed-up records, one at a time."""
        path = self.directory / RECORDS_FILE
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    msg = f"{path}, line {number}: not valid JSON ({exc.msg}). The backup is damaged."
                    raise InputError(msg) from None


def read_backup(directory: Path) -> Backup:
    """Open a backup directory and check its manifest and file checksums before any work starts."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFound(f"Backup directory {directory} does not exist. Create one with 'campaign backup DIR'.")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise NotFound(
            f"{directory} is not a backup: it has no {MANIFEST}. Create one with 'campaign backup DIR'."
        )
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{manifest_path} is not an argilla-campaign backup manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        msg = (
            f"{manifest_path} has backup format version {manifest.get('format_version')!r}; this "
            f"argilla-campaign reads version {FORMAT_VERSION}. Upgrade argilla-campaign."
        )
        raise InputError(msg)
    for key in ("source", "counts", "files"):
        if not isinstance(manifest.get(key), dict):
            raise InputError(f"{manifest_path} lacks its {key!r} section; the backup is damaged.")
    for name in DATA_FILES:
        expected = manifest["files"].get(name)
        path = directory / name
        if not path.is_file():
            raise NotFound(f"{path} is missing; the backup is incomplete.")
        if not isinstance(expected, dict) or _file_digest(path)["sha256"] != expected.get("sha256"):
            raise InputError(f"{path} does not match its checksum in {MANIFEST}; the backup is damaged.")
    settings = _read_json(directory / DATASET_FILE)
    users = _read_json(directory / USERS_FILE)
    return Backup(directory, manifest, settings, users)


# -- restore --------------------------------------------------------------------------------------


def restore_dataset(
    client: ArgillaClient,
    directory: Path,
    *,
    dataset: str | None = None,
    workspace: str | None = None,
    passwords_file: Path | None = None,
    force: bool = False,
) -> RestoreResult:
    """Recreate a backed-up dataset, its missing users, records, suggestions and responses.

    Re-running finishes an interrupted restore (records are upserted by external id). Restoring into
    a dataset with records that did not come from this backup needs `force`, because the backed-up
    responses then replace the same users' newer ones.
    """
    backup = read_backup(directory)
    # Checked before any user is created: their passwords are shown only once.
    passwords_path = check_file(
        passwords_file or backup.directory / PASSWORDS_FILE,
        what="a passwords file of 'campaign restore'",
        ours=_is_passwords_file,
    )
    source = backup.manifest["source"]
    backup_id = str(backup.manifest.get("backup_id"))
    name = dataset or str(source["dataset"])
    workspace = workspace or str(source["workspace"])
    notes: list[str] = []

    ws, workspace_created = client.ensure_workspace(workspace)
    existing = client.find_dataset(name, workspace)
    created = existing is None
    if existing is None:
        existing = _create_dataset(
            client, backup.settings, name=name, workspace_id=str(ws["id"]), marker=backup_id
        )
    dataset_id = str(existing["id"])
    marked = (existing.get("metadata") or {}).get(RESTORE_MARKER) == backup_id
    if existing.get("status") == "draft":
        if not (created or marked or force):
            msg = (
                f"Dataset {name!r} in workspace {workspace!r} is an unpublished draft that did not come from "
                "this backup. Restore under another name with --dataset NEW_NAME, or add --yes to complete it."
            )
            raise Conflict(msg)
        _complete_settings(client, dataset_id, backup.settings)
    else:
        differences = _settings_differences(backup.settings, read_settings(client, dataset_id))
        if differences:
            msg = (
                f"Dataset {name!r} in workspace {workspace!r} exists with other settings "
                f"({'; '.join(differences[:3])}). Restore under another name with --dataset NEW_NAME."
            )
            raise Conflict(msg)
        if not created and not marked and client.has_records(dataset_id) and not force:
            msg = (
                f"Dataset {name!r} in workspace {workspace!r} already has records that did not come from "
                "this backup; restoring would replace its users' responses with the backed-up ones. "
                "Restore under another name with --dataset NEW_NAME, or add --yes to merge."
            )
            raise Conflict(msg)

    passwords: dict[str, str] = {}
    written_passwords: Path | None = None
    try:
        user_ids = _ensure_users(client, backup.users, workspace_id=str(ws["id"]), passwords=passwords)
    finally:
        # Written even when creating a later user failed: the ones already created need their passwords.
        if passwords:
            written_passwords = _save_passwords(passwords_path, passwords)
    question_ids = {str(q["name"]): str(q["id"]) for q in client.questions(dataset_id)}

    records = responses = 0
    chunk: list[StoredRecord] = []
    for entry in backup.records():
        chunk.append(_stored_record(entry, user_ids=user_ids))
        records += 1
        responses += len(entry.get("responses") or [])
        if len(chunk) >= RESTORE_CHUNK:
            client.upsert_records(dataset_id, chunk, question_ids=question_ids)
            chunk = []
    if chunk:
        client.upsert_records(dataset_id, chunk, question_ids=question_ids)
    expected = backup.manifest["counts"]
    if records != expected.get("records") or responses != expected.get("responses"):
        msg = (
            f"{backup.directory / RECORDS_FILE} holds {records} records and {responses} responses, but "
            f"{MANIFEST} says {expected.get('records')} and {expected.get('responses')}; the backup is damaged."
        )
        raise InputError(msg)
    notes.append(
        "Response and record timestamps are kept in the backup; the server sets new ones on restore."
    )
    return RestoreResult(
        dataset=name,
        workspace=workspace,
        dataset_id=dataset_id,
        url=client.dataset_url(dataset_id),
        dataset_created=created,
        workspace_created=workspace_created,
        records=records,
        responses=responses,
        users_created=sorted(passwords),
        passwords_file=written_passwords,
        notes=notes,
    )


def _create_dataset(
    client: ArgillaClient, settings: dict[str, Any], *, name: str, workspace_id: str, marker: str
) -> dict[str, Any]:
    attributes = settings["dataset"]
    return client.create_draft_dataset(
        name=name,
        workspace_id=workspace_id,
        guidelines=attributes.get("guidelines"),
        allow_extra_metadata=attributes.get("allow_extra_metadata", True),
        metadata={**(attributes.get("metadata") or {}), RESTORE_MARKER: marker},
        distribution=attributes.get("distribution"),
    )


def _complete_settings(client: ArgillaClient, dataset_id: str, settings: dict[str, Any]) -> None:
    """Add the settings a draft dataset still lacks (by name), then publish it."""
    for kind in _SETTINGS_KEYS:
        present = {item["name"] for item in client.settings_items(dataset_id, kind)}
        for item in settings.get(kind, []):
            if item["name"] not in present:
                client.add_setting(
                    dataset_id, kind, {key: value for key, value in item.items() if value is not None}
                )
    client.publish_dataset(dataset_id)


def _settings_differences(wanted: dict[str, Any], found: dict[str, Any]) -> list[str]:
    differences = []
    for key in ("guidelines", "allow_extra_metadata", "distribution"):
        if wanted["dataset"].get(key) != found["dataset"].get(key):
            differences.append(f"{key} differs")
    for kind in _SETTINGS_KEYS:
        mine = {item["name"]: item for item in wanted.get(kind, [])}
        theirs = {item["name"]: item for item in found.get(kind, [])}
        for item_name in sorted(mine.keys() | theirs.keys()):
            if mine.get(item_name) != theirs.get(item_name):
                differences.append(f"{kind.replace('_', ' ')} {item_name!r} differs")
    return differences


def _is_passwords_file(path: Path) -> bool:
    """Whether `path` holds passwords that a restore wrote: a JSON object of username -> password."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(isinstance(v, str) for v in data.values())


def _save_passwords(path: Path, passwords: dict[str, str]) -> Path:
    """Add `passwords` to those already in `path` (0600)."""
    previous = _read_json(path) if path.is_file() and path.stat().st_size else {}
    merged = {**(previous if isinstance(previous, dict) else {}), **passwords}
    try:
        write_file(path, json.dumps(merged, indent=2) + "\n", private=True)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    remove_leftovers(path)
    return path


def _ensure_users(
    client: ArgillaClient, users: list[dict[str, Any]], *, workspace_id: str, passwords: dict[str, str]
) -> dict[str, str]:
    """Map usernames to ids on this server; missing users are created, their passwords put in `passwords`."""
    from campaign.client import random_password

    present = {str(u["username"]): str(u["id"]) for u in client.users()}
    for user in users:
        username = str(user["username"])
        if username not in present:
            password = random_password()
            made = client.create_user(
                username=username,
                password=password,
                role=str(user.get("role") or "annotator"),
                first_name=str(user.get("first_name") or username),
                last_name=user.get("last_name"),
            )
            present[username] = str(made["id"])
            passwords[username] = password
        if user.get("workspace_member") or user.get("responses"):
            client.add_to_workspace(workspace_id, present[username])
    return present


def _stored_record(entry: dict[str, Any], *, user_ids: dict[str, str]) -> StoredRecord:
    from campaign.client import StoredRecord, StoredResponse, StoredSuggestion

    return StoredRecord(
        # Records without an external id get their source id, so that a re-run updates, not duplicates.
        external_id=entry.get("external_id") or entry["id"],
        fields=entry["fields"],
        metadata=entry.get("metadata"),
        vectors=entry.get("vectors") or {},
        suggestions=[
            StoredSuggestion(s["question"], s["value"], s.get("agent"), s.get("score"), s.get("type"))
            for s in entry.get("suggestions") or []
        ],
        responses=[
            StoredResponse(user_ids[r["user"]], r["status"], r.get("values"))
            for r in entry.get("responses") or []
        ],
    )


# -- files ----------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        msg = f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}). The backup is damaged."
        raise InputError(msg) from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text. The backup is damaged.") from None


def _file_digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
