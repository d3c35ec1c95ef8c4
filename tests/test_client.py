"""The client's boundaries: it imports nothing above it, and no other module speaks HTTP to Argilla."""

from __future__ import annotations

import ast
from pathlib import Path

import campaign

PACKAGE = Path(campaign.__file__).parent
CLIENT = PACKAGE / "client"
BELOW_CLIENT = {"campaign.errors", "campaign.config"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_client_imports_only_errors_and_config() -> None:
    for path in sorted(CLIENT.glob("*.py")):
        own = {name for name in imported_modules(path) if name.split(".")[0] == "campaign"}
        above = {name for name in own if not name.startswith("campaign.client") and name not in BELOW_CLIENT}
        assert not above, f"{path.name} imports {sorted(above)}"


def test_no_other_library_module_calls_the_rest_api() -> None:
    # The local server's own code (server/) serves the API; everything else goes through the client.
    for path in sorted(PACKAGE.rglob("*.py")):
        if CLIENT in path.parents or PACKAGE / "server" in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        assert ".request(" not in text and "/api/v1" not in text, path.relative_to(PACKAGE)
        assert "requests" not in imported_modules(path), path.relative_to(PACKAGE)
