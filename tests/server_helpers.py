"""Small REST helpers for tests that act as annotators on the real local server."""

from __future__ import annotations

from typing import Any

import requests


def api(server_url: str, api_key: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    """Call the Argilla REST API with a user's key."""
    response = requests.request(
        method, f"{server_url}/api/v1{path}", headers={"X-Argilla-Api-Key": api_key}, timeout=30, **kwargs
    )
    return response


def create_annotator(server_url: str, owner_key: str, username: str, workspace_id: str) -> dict[str, Any]:
    """Create an annotator in a workspace; returns the user with its API key and password."""
    password = f"{username}-password-123"
    created = api(
        server_url,
        owner_key,
        "POST",
        "/users",
        json={"first_name": username, "username": username, "password": password, "role": "annotator"},
    )
    created.raise_for_status()
    user = created.json()
    api(
        server_url, owner_key, "POST", f"/workspaces/{workspace_id}/users", json={"user_id": user["id"]}
    ).raise_for_status()
    user["password"] = password
    return dict(user)


def submit(
    server_url: str, api_key: str, record_id: str, values: dict[str, Any] | None, status: str = "submitted"
) -> dict[str, Any]:
    """Create the calling user's response to a record, as the web UI does."""
    body: dict[str, Any] = {"status": status}
    if values is not None:
        body["values"] = {question: {"value": value} for question, value in values.items()}
    response = api(server_url, api_key, "POST", f"/records/{record_id}/responses", json=body)
    response.raise_for_status()
    return dict(response.json())
