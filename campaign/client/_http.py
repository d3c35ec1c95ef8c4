"""The HTTP layer under the client: one session per client, retries, and errors translated once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from campaign.config import clean_api_key, redact_url, resolve_connection
from campaign.errors import (
    AuthenticationFailed,
    Conflict,
    ConnectionFailed,
    InputError,
    NotFound,
    ServerError,
)

if TYPE_CHECKING:
    import requests

RETRY_STATUSES = (429, 500, 502, 503, 504)
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
API_KEY_HEADER = "X-Argilla-Api-Key"


class Http:
    """Calls to one Argilla server's `/api/v1` with one API key."""

    def __init__(self, api_url: str, api_key: str, *, timeout: float = 60.0, retries: int = 5) -> None:
        self._base_url = api_url.strip().rstrip("/")
        # api_url is what messages, reports and snapshots show: never the URL's credentials
        self.api_url = redact_url(self._base_url)
        self._api_key = clean_api_key(api_key, "the Argilla client")
        self.timeout = timeout
        self.retries = retries
        self._session: requests.Session | None = None

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
            session.headers[API_KEY_HEADER] = self._api_key
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            self._session = session
        return self._session

    def request(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> Any:
        """Call `/api/v1{path}` and return its JSON, translating failures into CampaignErrors.

        POSTs are retried only when the caller says they are idempotent (searches, upserts by id).
        """
        import requests

        url = f"{self._base_url}/api/v1{path}"
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
