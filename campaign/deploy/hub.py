"""The one translation of huggingface_hub errors into one-line messages, and the Hub client settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from campaign.errors import HubError

DEFAULT_ENDPOINT = "https://huggingface.co"


def endpoint() -> str:
    """The Hub's URL: HF_ENDPOINT, read at call time (huggingface_hub reads it once, at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token(token: str | None = None) -> str:
    """The token to use: the one given, else HF_TOKEN or the one `hf auth login` stored."""
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        msg = "No Hugging Face token. Run 'hf auth login' (a token with write access) or set HF_TOKEN."
        raise HubError(msg)
    return found


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn huggingface_hub and network errors raised while doing `what` into one HubError line."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        yield
    except OfflineModeIsEnabled:
        msg = f"Cannot {what}: HF_HUB_OFFLINE is set. Unset it to reach the Hub."
        raise HubError(msg) from None
    except RepositoryNotFoundError:
        msg = f"Cannot {what}: the repository does not exist or the token cannot see it."
        raise HubError(msg) from None
    except HfHubHTTPError as exc:
        if exc.response is None:
            # hf_hub_download reports an unreachable Hub as an HTTP error without a response.
            msg = f"Cannot reach the Hub at {endpoint()} to {what}. Check the network or HF_ENDPOINT."
            raise HubError(msg) from None
        status = exc.response.status_code
        if status == 401:
            msg = f"Cannot {what}: the Hub rejected the token. Run 'hf auth login' again or set HF_TOKEN."
        elif status == 403:
            msg = f"Cannot {what}: the token may not write there. Use a token with write access to that namespace."
        else:
            msg = f"Cannot {what}: the Hub answered {status}."
        raise HubError(msg) from None
    except OSError as exc:
        # requests' and urllib3's errors are OSErrors too; a local file error is not the network's.
        network = isinstance(exc, ConnectionError | TimeoutError) or type(exc).__module__.startswith(
            ("requests", "urllib3")
        )
        if not network:
            raise
        msg = f"Cannot reach the Hub at {endpoint()} to {what} ({type(exc).__name__}). Check the network or HF_ENDPOINT."
        raise HubError(msg) from None
