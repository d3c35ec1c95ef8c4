"""Where commands write: what a destination may replace, atomic replacement, and what killed runs left.

The rules every writer follows (export, backup, status --html, the passwords files):
- A destination is never the campaign folder (one holding campaign.yaml), a folder holding it, or the
  current folder or one above it.
- An existing folder is replaced only if it is empty or was written by the same command (recognised by
  its manifest), and then only with --overwrite; anything else is refused, naming what it holds. A folder
  that already holds the very content asked for (same source, same options) is left as it is: running
  the same command again succeeds and changes nothing.
- An existing file is replaced only if it is empty or was written by the same command.
- The new content is built beside the destination, under `.{name}.{stage}-{pid}-{random}`, and renamed
  into place in one step: a killed run leaves the old content or the new one, never a mix. The next run
  of the same command removes such names whose process is gone.
- An impossible destination (a file on the way, no permission, a name too long) is refused before any
  work starts, with a message naming the path.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from campaign.errors import DestinationError, UsageError
from campaign.processes import pid_alive

CAMPAIGN_FILENAME = "campaign.yaml"
STAGES = ("tmp", "partial", "old")  # a file or folder being built, and the content it replaced
_SHOWN = 5


def check_folder(
    out: Path | str,
    *,
    what: str,
    ours: Callable[[Path], bool],
    overwrite: bool,
    option: str = "--out",
    same: Callable[[Path], bool] | None = None,
) -> Path:
    """The absolute folder `out`, once it is safe to write there: new, empty, (with overwrite) ours, or same.

    `what` names the content for messages ("an export"); `ours(folder)` recognises it by its manifest, and
    `same(folder)`, when given, whether it already holds what is asked for (then it is not to be written).
    """
    path = _absolute(out)
    _check_place(path, option=option)
    if path.exists() and not path.is_dir():
        msg = f"{path} is a file, not a folder; choose another {option}."
        raise UsageError(msg)
    _check_not_protected(path, option=option)
    if not path.is_dir():
        return path
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return path
    if not ours(path):
        msg = (
            f"{path} is not empty and is not {what} (it holds {_listing(entries)}); "
            f"nothing was replaced. Choose a new or empty folder for {option}."
        )
        raise UsageError(msg)
    if same is not None and same(path):
        return path
    if not overwrite:
        made = "" if same is None else " made from another snapshot or with other options"
        msg = (
            f"{path} exists and is not empty (it holds {what}{made}); "
            f"pass --overwrite to replace it, or choose another {option}."
        )
        raise UsageError(msg)
    return path


def check_file(out: Path | str, *, what: str, ours: Callable[[Path], bool], option: str = "--out") -> Path:
    """The absolute file `out`, once it is safe to write: new, empty, or a file the same command wrote."""
    path = _absolute(out)
    _check_place(path, option=option)
    if path.is_dir():
        msg = f"{path} is a folder; give a file name for {option}."
        raise UsageError(msg)
    if path.exists() and path.stat().st_size and not ours(path):
        msg = f"{path} exists and is not {what}; it was left as it is. Choose another file name for {option}."
        raise UsageError(msg)
    return path


def staging_path(target: Path, stage: str) -> Path:
    """A new empty folder beside `target` to build its next content in (`stage` is 'tmp' or 'partial')."""
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target, stage)))


def replace_folder(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`; an old `target` is deleted once the new one is there."""
    if not target.exists():
        os.replace(staging, target)
        return
    trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target, "old")))
    os.replace(target, trash / "old")
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(trash / "old", target)
        trash.rmdir()
        raise
    shutil.rmtree(trash, ignore_errors=True)


def write_file(path: Path, text: str, *, private: bool = False) -> None:
    """Write `text` to `path` atomically (0600 when `private`, from the first byte on), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(_prefix(path, "tmp") + secrets.token_hex(4))
    # The mode is given at creation (the umask applies to it): a private file is never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_leftovers(target: Path) -> list[Path]:
    """Delete what killed runs writing `target` left beside it (by name, and only if their process is gone)."""
    # Older versions named them without a pid (or, for single files, without any suffix).
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:{'|'.join(STAGES)})(?:-(?:(\d+)-)?\w+)?")
    removed = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match is None or (match[1] is not None and pid_alive(int(match[1]))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def cannot_write(path: Path, exc: OSError, *, option: str = "--out") -> DestinationError:
    """The one-line error for an OSError met while writing `path`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return DestinationError(f"Cannot write {path}: {reason}. Choose another {option}.")


def _prefix(target: Path, stage: str) -> str:
    return f".{target.name}.{stage}-{os.getpid()}-"


def _absolute(out: Path | str) -> Path:
    """`out` as an absolute path with '.' and '..' resolved as the user reads them."""
    return Path(os.path.abspath(os.path.expanduser(out)))


def _check_place(path: Path, *, option: str) -> None:
    """Refuse a path that cannot be created: a file on the way, a name too long, a folder not writable."""
    for part in path.parts[1:]:
        if len(os.fsencode(part)) > 255:
            msg = (
                f"{path}: the name {part[:40]!r}... is too long for a file system; choose a shorter {option}."
            )
            raise DestinationError(msg)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        msg = f"Cannot write {path}: {parent} is a file, not a folder. Choose another {option}."
        raise DestinationError(msg)
    if not os.access(parent, os.W_OK | os.X_OK):
        msg = f"Cannot write {path}: no permission to write in {parent}. Choose another {option}."
        raise DestinationError(msg)


def _check_not_protected(path: Path, *, option: str) -> None:
    """Refuse a campaign folder, and the current folder or one above it."""
    # A folder above a campaign is refused by the caller as not ours, naming what it holds.
    real = path.resolve()
    if (real / CAMPAIGN_FILENAME).is_file():
        msg = f"{path} is a campaign folder (it holds {CAMPAIGN_FILENAME}); choose another {option}."
        raise UsageError(msg)
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        msg = f"{path} holds the current folder {cwd}, which would be deleted; choose another {option}."
        raise UsageError(msg)


def _listing(entries: list[str]) -> str:
    shown = ", ".join(entries[:_SHOWN])
    return shown if len(entries) <= _SHOWN else f"{shown} and {len(entries) - _SHOWN} more"
