"""Where copies of the server's database go: a private Hub dataset repo, or a local folder with its layout.

Layout (both stores): `backups/<name>` where name is `argilla-<UTC time>.sqlite.gz`, so that names sort
by age. Commit messages carry the file name only, never a secret.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from campaign.deploy.hub import endpoint, hub_errors
from campaign.errors import ConfigError

BACKUP_DIR = "backups"
ENV_BACKUP_REPO = "CAMPAIGN_BACKUP_REPO"
ENV_BACKUP_DIR = "CAMPAIGN_BACKUP_DIR"


class BackupStore(Protocol):
    """A place that holds named database copies."""

    def describe(self) -> str:
        """Where the copies go, for logs and status (no secret)."""
        ...

    def names(self) -> list[str]:
        """The names of the copies it holds, any order."""
        ...

    def put(self, source: Path, name: str) -> None:
        """Store the file source under name."""
        ...

    def get(self, name: str, dest: Path) -> None:
        """Write the copy called name to dest."""
        ...

    def remove(self, names: list[str]) -> None:
        """Delete copies."""
        ...


class LocalFolderStore:
    """Copies in a local folder, laid out as the Hub repo: ROOT/backups/<name>."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = self.root / BACKUP_DIR

    def describe(self) -> str:
        """The folder."""
        return str(self.root)

    def names(self) -> list[str]:
        """Copies in the folder."""
        if not self.folder.is_dir():
            return []
        return [
            path.name for path in self.folder.iterdir() if path.is_file() and not path.name.startswith(".")
        ]

    def put(self, source: Path, name: str) -> None:
        """Copy source in, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, self.folder / name)

    def get(self, name: str, dest: Path) -> None:
        """Copy one out."""
        shutil.copyfile(self.folder / name, dest)

    def remove(self, names: list[str]) -> None:
        """Delete copies."""
        for name in names:
            (self.folder / name).unlink(missing_ok=True)


class HfHubStore:
    """Copies in a private dataset repo on the Hub."""

    def __init__(self, repo_id: str, token: str) -> None:
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self._token = token
        self._api = HfApi(endpoint=endpoint(), token=token)

    def describe(self) -> str:
        """The dataset repo."""
        return f"hf://datasets/{self.repo_id}"

    def names(self) -> list[str]:
        """Copies in the repo's backups/ folder."""
        with hub_errors(f"list the copies in {self.repo_id}"):
            files = self._api.list_repo_files(self.repo_id, repo_type="dataset")
        prefix = f"{BACKUP_DIR}/"
        return [
            path.removeprefix(prefix)
            for path in files
            if path.startswith(prefix) and "/" not in path[len(prefix) :]
        ]

    def put(self, source: Path, name: str) -> None:
        """Upload one copy in its own commit."""
        with hub_errors(f"upload {name} to {self.repo_id}"):
            self._api.upload_file(
                path_or_fileobj=str(source),
                path_in_repo=f"{BACKUP_DIR}/{name}",
                repo_id=self.repo_id,
                repo_type="dataset",
                commit_message=f"Database copy {name}",
            )

    def get(self, name: str, dest: Path) -> None:
        """Download one copy to dest."""
        from huggingface_hub import hf_hub_download

        with (
            tempfile.TemporaryDirectory(dir=dest.parent) as tmp,
            hub_errors(f"download {name} from {self.repo_id}"),
        ):
            path = hf_hub_download(
                self.repo_id,
                f"{BACKUP_DIR}/{name}",
                repo_type="dataset",
                token=self._token,
                endpoint=endpoint(),
                local_dir=tmp,
            )
            os.replace(path, dest)

    def remove(self, names: list[str]) -> None:
        """Delete copies in one commit."""
        if not names:
            return
        with hub_errors(f"delete old copies in {self.repo_id}"):
            self._api.delete_files(
                self.repo_id,
                [f"{BACKUP_DIR}/{name}" for name in names],
                repo_type="dataset",
                commit_message=f"Remove {len(names)} old database copies",
            )


def store_from_env(env: Mapping[str, str]) -> BackupStore | None:
    """The store the environment names: CAMPAIGN_BACKUP_REPO (with HF_TOKEN) or CAMPAIGN_BACKUP_DIR, else None."""
    repo = env.get(ENV_BACKUP_REPO)
    folder = env.get(ENV_BACKUP_DIR)
    if repo and folder:
        msg = f"Set one of {ENV_BACKUP_REPO} and {ENV_BACKUP_DIR}, not both."
        raise ConfigError(msg)
    if folder:
        return LocalFolderStore(Path(folder))
    if repo:
        token = env.get("HF_TOKEN")
        if not token:
            msg = f"{ENV_BACKUP_REPO} is set but HF_TOKEN is not: the Space needs a token that may write to {repo}."
            raise ConfigError(msg)
        return HfHubStore(repo, token)
    return None
