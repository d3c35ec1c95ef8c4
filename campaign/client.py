"""The one place that talks to Argilla.

It uses the argilla SDK where the SDK is sound (creating datasets from Settings, reading settings
back) and the REST API where it falls short: the SDK crashes on discarded responses without values,
drops users' API keys, and re-validates every record client-side. Idempotent calls are retried with
backoff; every HTTP or connection error is translated once, here, into a `CampaignError`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.config import resolve_connection
from campaign.errors import (
    AuthenticationFailed,
    CampaignError,
    ConfigError,
    Conflict,
    ConnectionFailed,
    InputError,
    NotFound,
    ServerError,
)

if TYPE_CHECKING:
    import argilla as rg
    import requests

    from campaign.campaign_file import CampaignFile

PAGE_SIZE = 1000
BULK_SIZE = 500  # argilla-server's RECORDS_BULK_UPSERT_MAX_ITEMS
TERMS_MAX = 250  # argilla-server's TERMS_FILTER_VALUES_MAX_ITEMS
RETRY_STATUSES = (429, 500, 502, 503, 504)
LEAN_INCLUDES = frozenset({"responses", "suggestions"})  # what the local server's sync endpoints return
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
FAST_PATH_UNAVAILABLE = "fast path unavailable"  # how the local server's create-bulk endpoint declines
_AGENT_INVALID = re.compile(r"[^a-zA-Z0-9\-_:./\s]")


def safe_agent(agent: str | None) -> str | None:
    """An agent name that argilla-server accepts (letters, digits, -_:./ and spaces; 1-200 chars)."""
    if agent is None:
        return None
    cleaned = _AGENT_INVALID.sub("-", agent).strip()[:200]
    return cleaned if re.search(r"[a-zA-Z0-9]", cleaned) else None


@dataclass(frozen=True)
class EnsureResult:
    """What `campaign create` did."""

    created: bool
    workspace_created: bool
    dataset_id: str
    url: str
    differences: list[str] = field(default_factory=list)


class ArgillaClient:
    """A connection to one Argilla server, as one user."""

    def __init__(self, api_url: str, api_key: str, *, timeout: float = 60.0, retries: int = 5) -> None:
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self._session: requests.Session | None = None
        self._sdk: rg.Argilla | None = None
        self._extensions: bool | None = None  # does the server have campaign's read endpoints?
        self._create_bulk_missing = False  # a server with the read endpoints but without create-bulk

    def __repr__(self) -> str:  # never show the key
        return f"ArgillaClient({self.api_url!r})"

    # -- transport --------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """A requests session that retries idempotent calls with exponential backoff."""
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter
            from urllib3.util.retry import Retry

            retry = Retry(
                total=self.retries,
                connect=self.retries,
                read=self.retries,
                status=self.retries,
                backoff_factor=0.3,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=IDEMPOTENT_METHODS,
                raise_on_status=False,
            )
            session = requests.Session()
            session.headers["X-Argilla-Api-Key"] = self._api_key
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            self._session = session
        return self._session

    def request(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> Any:
        """Call `/api/v1{path}` and return its JSON, translating failures into CampaignErrors.

        POSTs are retried only when the caller says they are idempotent (searches, upserts by id).
        """
        import time

        import requests

        url = f"{self.api_url}/api/v1{path}"
        kwargs.setdefault("timeout", self.timeout)
        retried_post = bool(idempotent) and method.upper() == "POST"
        # urllib3 retries idempotent methods only until the response headers arrive; an answer cut off
        # in its body is retried here.
        safe = retried_post or method.upper() in IDEMPOTENT_METHODS
        attempts = self.retries + 1 if safe else 1
        for attempt in range(attempts):
            try:
                response = self.session.request(method, url, **kwargs)
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
                if attempt + 1 < attempts:
                    time.sleep(0.3 * 2**attempt)
                    continue
                msg = f"Argilla at {self.api_url} broke off its answer to {method} {path} (connection lost)."
                raise ConnectionFailed(msg) from None
            except requests.ConnectionError as exc:
                if retried_post and attempt + 1 < attempts:
                    time.sleep(0.3 * 2**attempt)
                    continue
                msg = (
                    f"Cannot reach Argilla at {self.api_url} ({_reason(exc)}). Is it running? "
                    "Start the local one with 'campaign server start', or check ARGILLA_API_URL."
                )
                raise ConnectionFailed(msg) from None
            except requests.Timeout:
                if retried_post and attempt + 1 < attempts:
                    continue
                msg = f"Argilla at {self.api_url} did not answer {method} {path} within {self.timeout:.0f}s."
                raise ConnectionFailed(msg) from None
            if response.status_code in RETRY_STATUSES and retried_post and attempt + 1 < attempts:
                time.sleep(0.3 * 2**attempt)
                continue
            return self._result(response, method, path)
        raise AssertionError("unreachable")

    def _result(self, response: requests.Response, method: str, path: str) -> Any:
        status = response.status_code
        if status < 400:
            if status == 204 or not response.content:
                return None
            return response.json()
        detail = _detail(response)
        if status == 401:
            source = resolve_connection().api_key.source
            msg = (
                f"Argilla at {self.api_url} rejected the API key (from {source}). "
                "Check ARGILLA_API_KEY, or restart the local server to rewrite its credentials."
            )
            raise AuthenticationFailed(msg)
        if status == 403:
            msg = f"Not allowed: {method} {path} needs an owner or admin API key ({detail})."
            raise AuthenticationFailed(msg)
        if status == 404:
            raise NotFound(f"Not found on {self.api_url}: {path} ({detail}).")
        if status == 409:
            raise Conflict(f"Argilla refused {method} {path}: {detail}")
        if status == 422:
            raise InputError(f"Argilla rejected the request {method} {path}: {detail}")
        msg = f"Argilla at {self.api_url} failed on {method} {path} with HTTP {status}: {detail}"
        raise ServerError(msg)

    @property
    def sdk(self) -> rg.Argilla:
        """The argilla SDK client for the same server and key (built on first use)."""
        if self._sdk is None:
            import argilla as rg

            self._sdk = rg.Argilla(api_url=self.api_url, api_key=self._api_key, timeout=int(self.timeout))
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

    def ensure_dataset(self, campaign: CampaignFile, settings: rg.Settings) -> EnsureResult:
        """Create the campaign's workspace and dataset, or check that the existing one matches."""
        import argilla as rg

        from campaign.templates import diff_settings, settings_summary

        workspace, workspace_created = self.ensure_workspace(campaign.workspace)
        existing = self.find_dataset(campaign.name, campaign.workspace)
        if existing is not None:
            dataset = self.sdk.datasets(campaign.name, workspace=campaign.workspace)
            differences = diff_settings(settings_summary(settings), settings_summary(dataset.settings))
            return EnsureResult(
                False, workspace_created, str(existing["id"]), self.dataset_url(existing["id"]), differences
            )
        sdk = self.sdk
        try:
            dataset = rg.Dataset(
                name=campaign.name, workspace=workspace["name"], settings=settings, client=sdk
            )
            dataset.create()
        except CampaignError:
            raise
        except Exception as exc:
            msg = f"Argilla could not create dataset {campaign.name!r}: {exc}"
            raise ServerError(msg) from None
        return EnsureResult(True, workspace_created, str(dataset.id), self.dataset_url(str(dataset.id)))

    def dataset_progress(self, dataset_id: str) -> dict[str, Any]:
        """Argilla's own progress counts of a dataset."""
        return dict(self.request("GET", f"/datasets/{dataset_id}/progress"))

    # -- records ----------------------------------------------------------------------------------

    def existing_external_ids(self, dataset_id: str, external_ids: list[str]) -> set[str]:
        """Which of these record ids the dataset already holds (one search per 250 ids)."""
        found: set[str] = set()
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
            result = self.request(
                "POST",
                f"/datasets/{dataset_id}/records/search",
                idempotent=True,
                json=body,
                params={"limit": len(chunk), "offset": 0},
            )
            found.update(str(item["record"]["external_id"]) for item in result["items"])
        return found

    def upsert_records(self, dataset_id: str, records: list[dict[str, Any]]) -> int:
        """Create or update records by external id, in transactions of up to 500."""
        for start in range(0, len(records), BULK_SIZE):
            chunk = records[start : start + BULK_SIZE]
            self.request("PUT", f"/datasets/{dataset_id}/records/bulk", json={"items": chunk})
        return len(records)

    def create_records(
        self, dataset_id: str, records: list[dict[str, Any]], *, fast_path: bool = True
    ) -> tuple[int, int]:
        """Create records by external id, leaving existing ones as they are; (created, already present).

        On the local server this uses its create-only bulk endpoint (same validation, much less work per
        record) and the server counts what existed; elsewhere, or when that endpoint declines a batch
        (webhooks, responses...), or with `fast_path=False`, the stock bulk upsert, which updates
        existing records and whose records all count as created.
        """
        created = present = 0
        for start in range(0, len(records), BULK_SIZE):
            chunk = records[start : start + BULK_SIZE]
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


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return type(exc).__name__


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("params") or detail)
    if isinstance(detail, list):
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


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
            f"The Argilla URL {conn.api_url.value!r} (from {conn.api_url.source}) must start with "
            "http:// or https://, e.g. http://127.0.0.1:6900."
        )
        raise ConfigError(msg)
    client = ArgillaClient(conn.api_url.value, conn.api_key.value)
    if check:
        client.me()
    return client


def ensure_dataset(campaign: CampaignFile, settings: rg.Settings) -> EnsureResult:
    """Create or check the campaign's dataset on the configured server."""
    return connect().ensure_dataset(campaign, settings)


def random_password() -> str:
    """A password for a new annotator: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)
