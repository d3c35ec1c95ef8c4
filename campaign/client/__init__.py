"""The one place that talks to Argilla.

It uses the argilla SDK where the SDK is sound (creating datasets from Settings, reading settings
back) and the REST API where it falls short: the SDK crashes on discarded responses without values,
drops users' API keys, and re-validates every record client-side. Idempotent calls are retried with
backoff; every HTTP or connection error is translated once, in `_http`, into a `CampaignError`.
Callers pass plain data or the dataclasses of `records`; no other module builds a URL or a REST body.
"""

from campaign.client._client import (
    BULK_SIZE,
    FAST_PATH_UNAVAILABLE,
    LEAN_INCLUDES,
    PAGE_SIZE,
    SETTINGS_KINDS,
    TERMS_MAX,
    ArgillaClient,
    DatasetEnsured,
    connect,
    random_password,
)
from campaign.client._http import IDEMPOTENT_METHODS, RETRY_STATUSES
from campaign.client.records import (
    QuestionIndex,
    RecordCompletion,
    RecordPayload,
    StoredRecord,
    StoredResponse,
    StoredSuggestion,
    SuggestionPayload,
    safe_agent,
)

__all__ = [
    "BULK_SIZE",
    "FAST_PATH_UNAVAILABLE",
    "IDEMPOTENT_METHODS",
    "LEAN_INCLUDES",
    "PAGE_SIZE",
    "RETRY_STATUSES",
    "SETTINGS_KINDS",
    "TERMS_MAX",
    "ArgillaClient",
    "DatasetEnsured",
    "QuestionIndex",
    "RecordCompletion",
    "RecordPayload",
    "StoredRecord",
    "StoredResponse",
    "StoredSuggestion",
    "SuggestionPayload",
    "connect",
    "random_password",
    "safe_agent",
]
