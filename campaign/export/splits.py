"""Deterministic train/test split by prompt hash, so that no prompt lands in both splits."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from campaign.errors import InputError, UsageError

SPLITS = ("train", "test")


def check_test_size(test_size: float) -> None:
    """Refuse a test share outside [0, 1)."""
    if not 0 <= test_size < 1:
        msg = f"--test-size must be at least 0 and below 1, not {test_size}."
        raise UsageError(msg)


def is_test(prompt_id: str, *, test_size: float, seed: int) -> bool:
    """Whether a prompt goes to the test split: sha256(seed:prompt_id) read as a fraction of 2**64."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_size


def _first_train_value(test_size: float) -> int:
    """The smallest 64-bit value v with v / 2**64 >= test_size (2**64 if none): is_test is `v < this`."""
    low, high = 0, 2**64
    while low < high:
        middle = (low + high) // 2
        if middle / 2**64 < test_size:
            low = middle + 1
        else:
            high = middle
    return low


def test_prompts(prompt_ids: Iterable[Any], *, test_size: float, seed: int) -> list[str]:
    """The prompt ids, among `prompt_ids` (distinct), that `is_test` sends to the test split, sorted."""
    # is_test, inlined: one hash per distinct prompt is most of the split's time on large exports, so the
    # digest's first 8 bytes are compared, as bytes, with the first value that is_test turns down.
    limit = _first_train_value(test_size)
    if limit == 0:
        return []
    if limit >= 2**64:
        return sorted(prompt_ids.to_list() if isinstance(prompt_ids, pl.Series) else prompt_ids)
    # A 32-byte digest is below these 8 bytes exactly when its first 8 bytes are (no slice needed).
    first = limit.to_bytes(8, "big")
    copy = hashlib.sha256(f"{seed}:".encode()).copy  # copying the hashed seed beats hashing it again
    if isinstance(prompt_ids, pl.Series) and prompt_ids.dtype == pl.String and not prompt_ids.null_count():
        # A string column hands over its UTF-8 bytes directly (no str object to encode per prompt).
        ids: pl.Series | list[Any] = prompt_ids
        encoded: Iterable[bytes] = prompt_ids.cast(pl.Binary).to_list()
    else:
        ids = list(prompt_ids)
        encoded = (str(prompt_id).encode() for prompt_id in ids)
    picked: list[int] = []
    pick = picked.append
    for position, text in enumerate(encoded):
        digest = copy()
        digest.update(text)
        if digest.digest() < first:
            pick(position)
    if isinstance(ids, pl.Series):
        return sorted(ids.gather(picked).to_list())
    return sorted(ids[position] for position in picked)


def split_by_prompt(
    frame: pl.DataFrame, *, test_size: float, seed: int, test_ids: Sequence[str] | None = None
) -> dict[str, pl.DataFrame]:
    """Train and test frames (row order kept) with every row of a prompt on the same side.

    `test_ids`, from `test_prompts` over these prompts or more, saves hashing them again.
    """
    check_test_size(test_size)
    if frame.height == 0:
        return {"train": frame, "test": frame.clear()}
    nameless = frame.get_column("prompt_id").null_count()
    if nameless:
        # A null prompt id has no hash and no side: it would land in neither split.
        first = frame.filter(pl.col("prompt_id").is_null()).row(0, named=True).get("record_id")
        msg = (
            f"{nameless} row(s) have no prompt_id (first: record {first}); every row needs one to be "
            "split by prompt. Set prompt_id on those records, then export again."
        )
        raise InputError(msg)
    if test_ids is None:
        prompt_ids = frame.get_column("prompt_id").unique().to_list()
        test_ids = test_prompts(prompt_ids, test_size=test_size, seed=seed)
    in_test = frame.select(pl.col("prompt_id").is_in(pl.Series(test_ids, dtype=pl.String()))).to_series()
    return {"train": frame.filter(~in_test), "test": frame.filter(in_test)}
