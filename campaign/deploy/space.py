"""`campaign deploy space`: the Space folder, and creating, configuring and waiting for the Space.

The Space runs `campaign server start --foreground` on this very version of argilla-campaign, with HF
sign-in (`hf_oauth: true`) and its database copied to a private dataset repo. Secrets (the owner's key
and password, the token that writes the copies) go through the Space secrets API, never into a file.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from campaign.config import SPACE_FILENAME, default_home, write_private_json
from campaign.deploy.hub import endpoint, hub_errors, hub_token
from campaign.errors import CampaignError, HubError, UsageError
from campaign.server.control.foreground import (
    ENV_OWNER_API_KEY,
    ENV_OWNER_PASSWORD,
    ENV_WORKSPACE,
    start_command,
)
from campaign.server.control.local_server import OWNER_USERNAME

APP_PORT = 7860
BASE_IMAGE = "python:3.11-slim"
MARKER_TAG = "argilla-campaign"
ERROR_STAGES = frozenset({"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE", "DELETING"})
if TYPE_CHECKING:
    from huggingface_hub import HfApi

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


@dataclass(frozen=True)
class SpaceOptions:
    """What to deploy and where."""

    repo_id: str
    workspace: str = "argilla"
    title: str | None = None
    hardware: str | None = None
    private: bool = False
    org_only: str | None = None

    @property
    def backup_repo(self) -> str:
        """The private dataset repo that holds the database copies."""
        return f"{self.repo_id}-db"

    @property
    def url(self) -> str:
        """The Space's own address (where the app answers)."""
        return space_url(self.repo_id)


@dataclass(frozen=True)
class DeployPlan:
    """What a deployment creates and sets: what `--dry-run` prints."""

    options: SpaceOptions
    folder: Path
    files: list[str]
    secret_names: list[str]

    def lines(self) -> list[str]:
        """The plan, one step a line (no secret values)."""
        o = self.options
        extras = ", ".join(
            part
            for part in (
                "private" if o.private else "public",
                f"hardware {o.hardware}" if o.hardware else "",
                f"sign-in limited to members of {o.org_only}" if o.org_only else "",
            )
            if part
        )
        return [
            f"Space folder {self.folder}: {', '.join(self.files)}",
            f"Create the Space {o.repo_id} (docker, {extras})",
            f"Create the private dataset repo {o.backup_repo} for database copies",
            f"Set the Space secrets {', '.join(self.secret_names)}",
            f"Upload the folder and wait until {o.url} answers",
            f"Record {o.url} as this machine's server for campaign commands",
        ]


@dataclass
class DeployResult:
    """A finished deployment."""

    repo_id: str
    url: str
    backup_repo: str
    record: Path
    created: list[str] = field(default_factory=list)


def check_repo_id(repo_id: str) -> str:
    """A Space id is NAMESPACE/NAME."""
    if not _REPO_ID.match(repo_id):
        msg = f"{repo_id!r} is not a Space id: use NAMESPACE/NAME, e.g. my-org/dutch-dpo-annotate."
        raise UsageError(msg)
    return repo_id


def space_url(repo_id: str) -> str:
    """https://<namespace>-<name>.hf.space, the host the Hub gives a Space."""
    subdomain = re.sub(r"[^a-z0-9]+", "-", repo_id.lower().replace("/", "-")).strip("-")
    return f"https://{subdomain}.hf.space"


def package_version() -> str:
    """The argilla-campaign version running here: the Space installs exactly this one."""
    import campaign

    return campaign.__version__


def dockerfile(options: SpaceOptions, version: str) -> str:
    """The Space's Dockerfile: a slim Python image with this argilla-campaign version, running as user 1000."""
    command = json.dumps(start_command(APP_PORT))
    return f"""FROM {BASE_IMAGE}

# Spaces run the container as user 1000.
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \\
    PATH=/home/user/.local/bin:$PATH \\
    PYTHONUNBUFFERED=1 \\
    CAMPAIGN_HOME=/home/user/data \\
    {ENV_WORKSPACE}={options.workspace}
WORKDIR /home/user

RUN pip install --no-cache-dir --user "argilla-campaign=={version}"

EXPOSE {APP_PORT}
CMD {command}
"""


def readme(options: SpaceOptions, version: str) -> str:
    """The Space's README: its YAML configuration, then a short description."""
    import yaml

    title = options.title or options.repo_id.split("/")[1]
    config: dict[str, object] = {
        "title": title,
        "emoji": "📝",
        "colorFrom": "yellow",
        "colorTo": "red",
        "sdk": "docker",
        "app_port": APP_PORT,
        "pinned": False,
        "hf_oauth": True,
    }
    if options.org_only:
        config["hf_oauth_authorized_org"] = options.org_only
    config["short_description"] = "An annotation campaign: sign in with Hugging Face"
    config["tags"] = [MARKER_TAG, "argilla"]
    front = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    return f"""---
{front}---

# {title}

An annotation campaign on Argilla, run by [argilla-campaign](https://pypi.org/project/argilla-campaign/) {version}.
Sign in with your Hugging Face account to annotate.

The Space runs `{" ".join(start_command(APP_PORT))}`. Its database is copied to a private
dataset repo every few minutes and restored when the Space restarts.
"""


def space_files(options: SpaceOptions, version: str) -> dict[str, str]:
    """The files of the Space folder, by name."""
    return {"Dockerfile": dockerfile(options, version), "README.md": readme(options, version)}


def write_space_folder(folder: Path, options: SpaceOptions, *, version: str | None = None) -> list[Path]:
    """Write the Space folder (Dockerfile, README.md); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in space_files(options, version or package_version()).items():
        path = folder / name
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


SECRET_NAMES = [ENV_OWNER_API_KEY, ENV_OWNER_PASSWORD, "HF_TOKEN", "CAMPAIGN_BACKUP_REPO"]


def plan(options: SpaceOptions, folder: Path) -> DeployPlan:
    """Write the folder and say what a deployment would do."""
    written = write_space_folder(folder, options)
    return DeployPlan(options, folder, [p.name for p in written], list(SECRET_NAMES))


def space_record_path(home: Path | None = None) -> Path:
    """Where the deployed Space's URL and owner credentials are kept for campaign commands (0600)."""
    return (home or default_home()) / SPACE_FILENAME


def _owner_credentials(record: Path, repo_id: str) -> dict[str, str]:
    """The Space owner's credentials: kept from an earlier deploy of the same Space, else new."""
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        if data.get("repo_id") == repo_id and data.get("api_key") and data.get("password"):
            return {
                "username": str(data["username"]),
                "password": data["password"],
                "api_key": data["api_key"],
            }
    except (OSError, ValueError, AttributeError):
        pass
    return {
        "username": OWNER_USERNAME,
        "password": secrets.token_urlsafe(18),
        "api_key": secrets.token_urlsafe(32),
    }


def _check_namespace(user: dict[str, object], namespace: str) -> None:
    """The token's user may create repos in namespace, else a one-line error."""
    name = str(user.get("name", ""))
    auth = user.get("auth")
    role = ""
    if isinstance(auth, dict) and isinstance(auth.get("accessToken"), dict):
        role = str(auth["accessToken"].get("role", ""))
    if role == "read":
        msg = f"The Hugging Face token of {name} is read-only. Create one with write access and set HF_TOKEN."
        raise HubError(msg)
    if namespace == name:
        return
    orgs = user.get("orgs")
    for org in orgs if isinstance(orgs, list) else []:
        if isinstance(org, dict) and org.get("name") == namespace:
            if org.get("roleInOrg") in (None, "admin", "write", "contributor"):
                return
            msg = f"{name} may not create repos in {namespace} (role {org.get('roleInOrg')}). Ask an admin for write access."
            raise HubError(msg)
    msg = f"The token belongs to {name}, who is not a member of {namespace}. Use {name}/... or a token of a member."
    raise HubError(msg)


def deploy(
    options: SpaceOptions,
    folder: Path,
    *,
    token: str | None = None,
    home: Path | None = None,
    timeout: float = 900.0,
    progress: Callable[[str], None] = lambda line: None,
) -> DeployResult:
    """Create (or update) the Space and its backup repo, set its secrets, upload, wait until it answers."""
    from huggingface_hub import HfApi

    token = hub_token(token)
    api = HfApi(endpoint=endpoint(), token=token)
    record = space_record_path(home)
    created: list[str] = []
    namespace = options.repo_id.split("/")[0]

    with hub_errors("check the token"):
        user = api.whoami()
    _check_namespace(user, namespace)
    with hub_errors(f"look up {options.repo_id}"):
        exists = api.repo_exists(options.repo_id, repo_type="space")
        if exists:
            tags = api.space_info(options.repo_id).tags or []
    if exists and MARKER_TAG not in tags:
        msg = (
            f"The Space {options.repo_id} exists and was not made by 'campaign deploy space' (no "
            f"{MARKER_TAG} tag). Pick another name, or delete it on the Hub first."
        )
        raise HubError(msg)

    owner = _owner_credentials(record, options.repo_id)
    write_space_folder(folder, options)
    try:
        with hub_errors(f"create the Space {options.repo_id}"):
            api.create_repo(
                options.repo_id,
                repo_type="space",
                space_sdk="docker",
                private=options.private,
                space_hardware=options.hardware,  # type: ignore[arg-type]
                exist_ok=True,
            )
        if not exists:
            created.append(f"Space {options.repo_id}")
        elif options.hardware:
            with hub_errors(f"request {options.hardware} for {options.repo_id}"):
                api.request_space_hardware(options.repo_id, options.hardware)  # type: ignore[arg-type]
        with hub_errors(f"create the dataset repo {options.backup_repo}"):
            if not api.repo_exists(options.backup_repo, repo_type="dataset"):
                api.create_repo(options.backup_repo, repo_type="dataset", private=True, exist_ok=True)
                created.append(f"dataset {options.backup_repo}")
        values = {
            ENV_OWNER_API_KEY: owner["api_key"],
            ENV_OWNER_PASSWORD: owner["password"],
            "HF_TOKEN": token,
            "CAMPAIGN_BACKUP_REPO": options.backup_repo,
        }
        with hub_errors(f"set the secrets of {options.repo_id}"):
            for key in SECRET_NAMES:
                api.add_space_secret(options.repo_id, key, values[key])
        # Recorded before the upload: a failure later still leaves the credentials of what was set.
        write_private_json(
            record,
            {"repo_id": options.repo_id, "api_url": options.url, **owner, "backup_repo": options.backup_repo},
        )
        progress(f"Uploading {folder} to {options.repo_id} ...")
        with hub_errors(f"upload the Space folder to {options.repo_id}"):
            api.upload_folder(
                folder_path=str(folder),
                repo_id=options.repo_id,
                repo_type="space",
                commit_message=f"Deploy argilla-campaign {package_version()}",
            )
    except HubError as exc:
        if created:
            msg = f"{exc} Created so far: {', '.join(created)}. Run the same command again to finish."
            raise HubError(msg) from None
        raise
    _wait_healthy(api, options, owner["api_key"], timeout=timeout, progress=progress)
    return DeployResult(options.repo_id, options.url, options.backup_repo, record, created)


def _wait_healthy(
    api: HfApi, options: SpaceOptions, api_key: str, *, timeout: float, progress: Callable[[str], None]
) -> None:
    """Poll the Space's stage, then its API, until the owner's key works."""
    from campaign.client import ArgillaClient

    deadline = time.monotonic() + timeout
    last_stage = ""
    while time.monotonic() < deadline:
        with hub_errors(f"read the state of {options.repo_id}"):
            stage = str(api.get_space_runtime(options.repo_id).stage)
        if stage != last_stage:
            progress(f"Space {options.repo_id}: {stage}")
            last_stage = stage
        if stage in ERROR_STAGES:
            msg = (
                f"The Space {options.repo_id} stopped at {stage}. See its logs at "
                f"https://huggingface.co/spaces/{options.repo_id}?logs=container"
            )
            raise HubError(msg)
        if stage == "RUNNING":
            try:
                ArgillaClient(options.url, api_key, timeout=10, retries=0).me()
                return
            except CampaignError:
                pass
        time.sleep(5)
    msg = (
        f"The Space {options.repo_id} did not answer within {timeout:.0f}s (last stage {last_stage or 'unknown'}). "
        f"It is recorded; check 'campaign status' later or its logs at https://huggingface.co/spaces/{options.repo_id}"
    )
    raise HubError(msg)


def forget(home: Path | None = None) -> str | None:
    """Stop using the recorded Space (campaign commands go back to the local server); its id, if any."""
    record = space_record_path(home)
    try:
        repo_id = json.loads(record.read_text(encoding="utf-8")).get("repo_id")
    except (OSError, ValueError, AttributeError):
        return None
    record.unlink()
    return str(repo_id) if repo_id else None
