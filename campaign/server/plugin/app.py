"""The ASGI app of the local server: argilla-server's app with this project's search engine, speed-ups
and sync endpoints.

Importing this module bootstraps argilla-server; it is the module uvicorn's worker processes import, so
it is the one place in the package with side effects at import.
"""

from __future__ import annotations

from campaign.server.plugin import sync_endpoints
from campaign.server.plugin.launcher import bootstrap

bootstrap()
sync_endpoints.install()

from argilla_server import app  # noqa: E402  must come after the bootstrap

__all__ = ["app"]
