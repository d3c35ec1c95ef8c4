"""The client's resources: users, workspaces, datasets and their settings, records and responses."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.client._http import API_KEY_HEADER, Http
from campaign.client.records import (
    QuestionIndex,
    RecordCompletion,
    RecordPayload,
    StoredRecord,
    completion_body,
    record_body,
    stored_record_body,
)
from campaign.config import clean_api_key, redact_url, resolve_connection
from campaign.errors import (
    CampaignError,
    ConfigError,
    Conflict,
    InputError,
    NotFound,
    ServerError,
)

if TYPE_CHECKING:
    import argilla as rg

PAGE_SIZE = 1000
BULK_SIZE = 500  # argilla-server's RECORDS_BULK_UPSERT_MAX_ITEMS
TERMS_MAX = 250  # argilla-server's TERMS_FILTER_VALUES_MAX_ITEMS
LEAN_INCLUDES = frozenset({"responses", "suggestions"})  # what the local server's sync endpoints return
FAST_PATH_UNAVAILABLE = "fast path unavailable"  # how the local server's create-bulk endpoint declines
SETTINGS_KINDS = ("fields", "questions", "metadata_properties", "vectors_settings")
# Where each kind of setting is listed; metadata properties are listed under /me (annotators see them too).
_SETTINGS_LIST_PATHS = {
    "fields": "/datasets/{id}/fields",
    "questions": "/datasets/{id}/questions",
    "metadata_properties": "/me/datasets/{id}/metadata-properties",
    "vectors_settings": "/datasets/{id}/vectors-settings",
}
_SETTINGS_CREATE_PATHS = {
    "fields": "/datasets/{id}/fields",
    "questions": "/datasets/{id}/questions",
    "metadata_properties": "/datasets/{id}/metadata-properties",
    "vectors_settings": "/datasets/{id}/vectors-settings",
}


@dataclass(frozen=True)
class DatasetEnsured:
    """A dataset that exists now: whether it (and its workspace) was created, and the server's settings."""

    dataset_id: str
    url: str
    created: bool
    workspace_created: bool
    server_settings: rg.Settings | None = None  # the existing dataset's settings; None when just created


class ArgillaClient(Http):
    """A connection to one Argilla server, as one user: every call the campaign makes to Argilla."""

    def __init__(self, api_url: str, api_key: str, *, timeout: float = 60.0, retries: int = 5) -> None:
        super().__init__(api_url, api_key, timeout=timeout, retries=retries)
        self._sdk: rg.Argilla | None = None
        self._extensions: bool | None = None  # does the server have campaign's read endpoints?
        self._create_bulk_missing = False  # a server with the read endpoints but without create-bulk

    def __repr__(self) -> str:  # never show the key
        return f"ArgillaClient({self.api_url!r})"

    @property
    def sdk(self) -> rg.Argilla:
        """The argilla SDK client for the same server and key (built on first use)."""
        if self._sdk is None:
            import argilla as rg

            self._sdk = rg.Argilla(api_url=self._base_url, api_key=self._api_key, timeout=int(self.timeout))
        return self._sdk

    # -- users and workspaces ---------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The calling user; the cheapest check that URL and key work."""
        return dict(self.request("GET", "/me"))

    def users(self) -> list[dict[str, Any]]:
        """Every user (owner key needed)."""
        return list(self.request("GET", "/users")["items"])

    def usernames_by_id(self) -> dict[str, str]:
        """User id -> username, to show names instead of UUIDs."""
        return {str(u["id"]): str(u["username"]) for u in self.users()}

    def find_workspace(self, name: str) -> dict[str, Any] | None:
        """A workspace by name, or None."""
        for workspace in self.request("GET", "/me/workspaces")["items"]:
            if workspace["name"] == name:
                return dict(workspace)
        return None

    def ensure_workspace(self, name: str) -> tuple[dict[str, Any], bool]:
        """Get or create a workspace; the bool says whether it was created."""
        found = self.find_workspace(name)
        if found is not None:
            return found, False
        try:
            created = self.request("POST", "/workspaces", json={"name": name})
        except InputError as exc:
            msg = f"Argilla rejected the workspace name {name!r}: {exc}. Use letters, digits, '-' and '_'."
            raise InputError(msg) from None
        return dict(created), True

    def require_workspace(self, name: str) -> dict[str, Any]:
        """A workspace that must exist."""
        found = self.find_workspace(name)
        if found is None:
            msg = f"Workspace {name!r} does not exist on {self.api_url}. Run 'campaign create' first."
            raise NotFound(msg)
        return found

    def workspace_users(self, workspace_id: str) -> list[dict[str, Any]]:
        """Members of a workspace."""
        return list(self.request("GET", f"/workspaces/{workspace_id}/users")["items"])

    def user_workspaces(self, user_id: str) -> list[str]:
        """Names of a user's workspaces."""
        return [w["name"] for w in self.request("GET", f"/users/{user_id}/workspaces")["items"]]

    def create_user(
        self, *, username: str, password: str, role: str, first_name: str, last_name: str | None = None
    ) -> dict[str, Any]:
        """Create a user; the returned dict has its API key removed."""
        body = {"username": username, "password": password, "role": role, "first_name": first_name}
        if last_name:
            body["last_name"] = last_name
        user = dict(self.request("POST", "/users", json=body))
        user.pop("api_key", None)
        return user

    def add_to_workspace(self, workspace_id: str, user_id: str) -> bool:
        """Add a user to a workspace; False when already a member."""
        try:
            self.request("POST", f"/workspaces/{workspace_id}/users", json={"user_id": user_id})
        except Conflict:
            return False
        return True

    def remove_from_workspace(self, workspace_id: str, user_id: str) -> None:
        """Take a user's workspace membership away (their responses stay)."""
        self.request("DELETE", f"/workspaces/{workspace_id}/users/{user_id}")

    def set_password(self, user_id: str, password: str) -> None:
        """Give a user a new password (owner key needed)."""
        self.request("PATCH", f"/users/{user_id}", json={"password": password})

    def login(self, username: str, password: str) -> ArgillaClient:
        """A client acting as another user: log in with the password, then use that user's API key."""
        # Drop this client's key from these two calls, or the server would answer as its user.
        anonymous = {API_KEY_HEADER: None}
        token = self.request(
            "POST", "/token", data={"username": username, "password": password}, headers=anonymous
        )
        me = self.request(
            "GET", "/me", headers={**anonymous, "Authorization": f"Bearer {token['access_token']}"}
        )
        return ArgillaClient(self._base_url, str(me["api_key"]), timeout=self.timeout, retries=self.retries)

    def server_version(self) -> str:
        """The argilla-server version."""
        return str(self.request("GET", "/version")["version"])

    # -- datasets ---------------------------------------------------------------------------------

    def find_dataset(self, name: str, workspace: str) -> dict[str, Any] | None:
        """A dataset by name in a workspace, or None."""
        ws = self.find_workspace(workspace)
        if ws is None:
            return None
        for dataset in self.request("GET", "/me/datasets", params={"workspace_id": ws["id"]})["items"]:
            if dataset["name"] == name and str(dataset["workspace_id"]) == str(ws["id"]):
                return dict(dataset)
        return None

    def require_dataset(self, name: str, workspace: str) -> dict[str, Any]:
        """A dataset that must exist."""
        found = self.find_dataset(name, workspace)
        if found is None:
            msg = (
                f"Dataset {name!r} does not exist in workspace {workspace!r} on {self.api_url}. "
                "Run 'campaign create' first."
            )
            raise NotFound(msg)
        return found

    def dataset_url(self, dataset_id: str) -> str:
        """Where annotators open a dataset in the web UI."""
        return f"{self.api_url}/dataset/{dataset_id}/annotation-mode"

    def questions(self, dataset_id: str) -> list[dict[str, Any]]:
        """A dataset's questions."""
        return list(self.request("GET", f"/datasets/{dataset_id}/questions")["items"])

    def question_index(self, dataset_id: str) -> QuestionIndex:
        """A dataset's question ids by name and its ranking questions, to send records with suggestions."""
        return QuestionIndex.of(self.questions(dataset_id))

    def settings_items(self, dataset_id: str, kind: str) -> list[dict[str, Any]]:
        """A dataset's settings of one kind (see SETTINGS_KINDS), as the server lists them."""
        return list(self.request("GET", _SETTINGS_LIST_PATHS[kind].format(id=dataset_id))["items"])

    def add_setting(self, dataset_id: str, kind: str, item: dict[str, Any]) -> None:
        """Add one field, question, metadata property or vector setting to a draft dataset."""
        self.request("POST", _SETTINGS_CREATE_PATHS[kind].format(id=dataset_id), json=item)

    def create_draft_dataset(
        self,
        *,
        name: str,
        workspace_id: str,
        guidelines: str | None,
        allow_extra_metadata: bool,
        metadata: dict[str, Any],
        distribution: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Create a dataset without settings (a draft); add them with `add_setting`, then publish it."""
        body: dict[str, Any] = {
            "name": name,
            "guidelines": guidelines,
            "allow_extra_metadata": allow_extra_metadata,
            "metadata": metadata,
            "workspace_id": workspace_id,
        }
        if distribution:
            body["distribution"] = distribution
        return dict(self.request("POST", "/datasets", json=body))

    def publish_dataset(self, dataset_id: str) -> None:
        """Publish a draft dataset, so that annotators see it."""
        self.request("PUT", f"/datasets/{dataset_id}/publish")

    def has_records(self, dataset_id: str) -> bool:
        """Whether a dataset holds any record."""
        page = self.request("GET", f"/datasets/{dataset_id}/records", params={"limit": 1, "offset": 0})
        return bool(page["items"])

    def ensure_dataset(self, *, name: str, workspace: str, settings: rg.Settings) -> DatasetEnsured:
        """Create a workspace and a dataset with these settings, or find the existing dataset."""
        import argilla as rg

        ws, workspace_created = self.ensure_workspace(workspace)
        existing = self.find_dataset(name, workspace)
        if existing is not None:
            found = self.sdk.datasets(name, workspace=workspace)
            dataset_id = str(existing["id"])
            return DatasetEnsured(
                dataset_id, self.dataset_url(existing["id"]), False, workspace_created, found.settings
            )
        sdk = self.sdk
        try:
            dataset = rg.Dataset(name=name, workspace=ws["name"], settings=settings, client=sdk)
            dataset.create()
        except CampaignError:
            raise
        except Exception as exc:
            msg = f"Argilla could not create dataset {name!r}: {exc}"
            raise ServerError(msg) from None
        return DatasetEnsured(str(dataset.id), self.dataset_url(str(dataset.id)), True, workspace_created)

    def dataset_progress(self, dataset_id: str) -> dict[str, Any]:
        """Argilla's own progress counts of a dataset."""
        return dict(self.request("GET", f"/datasets/{dataset_id}/progress"))

    # -- records ----------------------------------------------------------------------------------

    def existing_external_ids(self, dataset_id: str, external_ids: list[str]) -> set[str]:
        """Which of these record ids the dataset already holds (one search per 250 ids)."""
        return set(self.existing_records(dataset_id, external_ids, include=()))

    def existing_records(
        self, dataset_id: str, external_ids: list[str], *, include: Iterable[str] = ("suggestions",)
    ) -> dict[str, dict[str, Any]]:
        """The records with these external ids that the dataset holds, by external id (one search per 250)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(external_ids), TERMS_MAX):
            chunk = external_ids[start : start + TERMS_MAX]
            body = {
                "filters": {
                    "and": [
                        {
                            "type": "terms",
                            "scope": {"entity": "record", "property": "external_id"},
                            "values": chunk,
                        }
                    ]
                }
            }
            params: dict[str, Any] = {"limit": len(chunk), "offset": 0}
            if include:
                params["include"] = list(include)
            result = self.request(
                "POST", f"/datasets/{dataset_id}/records/search", idempotent=True, json=body, params=params
            )
            for item in result["items"]:
                found[str(item["record"]["external_id"])] = dict(item["record"])
        return found

    def complete_records(
        self, dataset_id: str, completions: Sequence[RecordCompletion], *, questions: QuestionIndex
    ) -> int:
        """Give existing records missing metadata and suggestions (stock bulk upsert); responses stay as they are."""
        return self._upsert_bodies(dataset_id, [completion_body(c, questions) for c in completions])

    def upsert_records(
        self, dataset_id: str, records: Sequence[StoredRecord], *, question_ids: dict[str, str]
    ) -> int:
        """Create or update records by external id, with their responses, in transactions of up to 500."""
        return self._upsert_bodies(dataset_id, [stored_record_body(r, question_ids) for r in records])

    def _upsert_bodies(self, dataset_id: str, bodies: list[dict[str, Any]]) -> int:
        """Send bodies through the stock bulk upsert, one transaction per BULK_SIZE of them."""
        for start in range(0, len(bodies), BULK_SIZE):
            chunk = bodies[start : start + BULK_SIZE]
            self.request("PUT", f"/datasets/{dataset_id}/records/bulk", json={"items": chunk})
        return len(bodies)

    def create_records(
        self,
        dataset_id: str,
        records: Sequence[RecordPayload],
        *,
        questions: QuestionIndex,
        fast_path: bool = True,
    ) -> tuple[int, int]:
        """Create records by external id, leaving existing ones as they are; (created, already present).

        On the local server this uses its create-only bulk endpoint (same validation, much less work per
        record) and the server counts what existed; elsewhere, or when that endpoint declines a batch
        (webhooks, responses...), or with `fast_path=False`, the stock bulk upsert, which updates
        existing records and whose records all count as created.
        """
        return self._create_bodies(
            dataset_id, [record_body(record, questions) for record in records], fast_path=fast_path
        )

    def _create_bodies(
        self, dataset_id: str, bodies: list[dict[str, Any]], *, fast_path: bool = True
    ) -> tuple[int, int]:
        created = present = 0
        for start in range(0, len(bodies), BULK_SIZE):
            chunk = bodies[start : start + BULK_SIZE]
            answer = self._create_bulk(dataset_id, chunk) if fast_path else None
            if answer is not None:
                created += int(answer["created"])
                present += int(answer["already_present"])
                continue
            # The stock answer does not say which records existed (its response model drops
            # updated_item_ids): callers send only records that a search did not find.
            self.request("PUT", f"/datasets/{dataset_id}/records/bulk", json={"items": chunk})
            created += len(chunk)
        return created, present

    def _create_bulk(self, dataset_id: str, chunk: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The local server's create-only bulk answer, or None when the stock endpoint must do it."""
        if self._extensions is False or self._create_bulk_missing:
            return None
        path = f"/campaign/datasets/{dataset_id}/records/create-bulk"
        try:
            # Idempotent: the endpoint skips external ids that exist, so a retried batch adds nothing twice.
            answer = self.request("POST", path, idempotent=True, json={"items": chunk})
        except NotFound as exc:
            if "Dataset" in str(exc):
                raise
            # A stock server, or a local one from before this endpoint: its other extensions may exist.
            self._create_bulk_missing = True
            return None
        except Conflict as exc:
            if FAST_PATH_UNAVAILABLE not in str(exc):
                raise
            return None
        return dict(answer)

    def _extension(self, method: str, path: str, **kwargs: Any) -> Any | None:
        """Call one of the local server's /campaign/ endpoints; None when the server has none."""
        if self._extensions is False:
            return None
        try:
            result = self.request(method, f"/campaign{path}", **kwargs)
        except NotFound as exc:
            if "/campaign/" in str(exc) and "Dataset" not in str(exc):
                self._extensions = False
                return None
            raise
        self._extensions = True
        return result

    def record_fingerprints(self, dataset_id: str, *, since: str | None = None) -> dict[str, Any] | None:
        """Per-record change fingerprints from the local server's sync endpoint; None on other servers.

        The answer has `items` (all records, or those changed after `since`), `as_of` (the next `since`)
        and the dataset's `records` and `responses` totals.
        """
        params = {"since": since} if since else None
        result = self._extension("GET", f"/datasets/{dataset_id}/fingerprints", params=params)
        return None if result is None else dict(result)

    def records_by_id(
        self, dataset_id: str, record_ids: list[str], *, include: Iterable[str] = ("responses", "suggestions")
    ) -> list[dict[str, Any]]:
        """Records by server id, with responses and suggestions (one search per 250 ids)."""
        found: list[dict[str, Any]] = []
        if self._extensions is not False and set(include) <= LEAN_INCLUDES:
            for start in range(0, len(record_ids), PAGE_SIZE):
                chunk = record_ids[start : start + PAGE_SIZE]
                result = self._extension(
                    "POST", f"/datasets/{dataset_id}/records/by-id", idempotent=True, json={"ids": chunk}
                )
                if result is None:
                    break
                found.extend(result["items"])
            else:
                return found
            found = []
        for start in range(0, len(record_ids), TERMS_MAX):
            chunk = record_ids[start : start + TERMS_MAX]
            body = {
                "filters": {
                    "and": [
                        {"type": "terms", "scope": {"entity": "record", "property": "id"}, "values": chunk}
                    ]
                }
            }
            result = self.request(
                "POST",
                f"/datasets/{dataset_id}/records/search",
                idempotent=True,
                json=body,
                params={"limit": len(chunk), "offset": 0, "include": list(include)},
            )
            found.extend(item["record"] for item in result["items"])
        return found

    def iter_records(
        self,
        dataset_id: str,
        *,
        include: Iterable[str] = ("responses", "suggestions"),
        page_size: int = PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every record of a dataset, a page at a time, with responses as stored (REST, not the SDK).

        The local server's lean endpoint (responses and suggestions, never vectors) is used when it
        exists and is enough; it returns the same shape.
        """
        offset = 0
        if self._extensions is not False and set(include) <= LEAN_INCLUDES:
            while True:
                page = self._extension(
                    "GET", f"/datasets/{dataset_id}/records", params={"offset": offset, "limit": page_size}
                )
                if page is None:
                    break
                items = list(page["items"])
                if items:
                    yield items
                if len(items) < page_size:
                    return
                offset += len(items)
            offset = 0
        while True:
            page = self.request(
                "GET",
                f"/datasets/{dataset_id}/records",
                params={"include": list(include), "offset": offset, "limit": page_size},
            )
            items = list(page["items"])
            if not items:
                return
            yield items
            if len(items) < page_size:
                return
            offset += len(items)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """A dataset's attributes (name, status, last_activity_at, distribution...)."""
        return dict(self.request("GET", f"/datasets/{dataset_id}"))

    def submit_response(self, record_id: str, values: dict[str, Any] | None, status: str) -> dict[str, Any]:
        """Create the calling user's response to a record, as the web UI does."""
        body: dict[str, Any] = {"status": status}
        if values is not None:
            body["values"] = {question: {"value": value} for question, value in values.items()}
        return dict(self.request("POST", f"/records/{record_id}/responses", json=body))


def connect(*, home: Path | None = None, check: bool = True) -> ArgillaClient:
    """A client for the configured server (env first, then the local server's credentials)."""
    conn = resolve_connection(home=home)
    if not conn.api_url.is_set or not conn.api_key.is_set:
        msg = (
            "No Argilla server configured. Start the local one with 'campaign server start', "
            "or set ARGILLA_API_URL and ARGILLA_API_KEY."
        )
        raise ConfigError(msg)
    assert conn.api_url.value is not None and conn.api_key.value is not None
    if not conn.api_url.value.lower().startswith(("http://", "https://")):
        msg = (
            f"The Argilla URL {redact_url(conn.api_url.value)!r} (from {conn.api_url.source}) must start with "
            "http:// or https://, e.g. http://127.0.0.1:6900."
        )
        raise ConfigError(msg)
    client = ArgillaClient(conn.api_url.value, clean_api_key(conn.api_key.value, conn.api_key.source))
    if check:
        client.me()
    return client


def random_password() -> str:
    """A password for a new annotator: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)
