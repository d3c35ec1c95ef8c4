"""Consensus frames -> TRL columns (DPO, ORPO, KTO), standard or conversational, validated row by row.

Input columns: `campaign.consensus.PAIRS_SCHEMA` (dpo, orpo) or `UNPAIRED_SCHEMA` (kto).
Output columns: `prompt, chosen, rejected` or `prompt, completion, label`, then the provenance columns.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import polars as pl

from campaign.errors import InputError, UsageError

FORMATS = ("dpo", "orpo", "kto")
AnnotatorMode = Literal["omit", "anonymised", "usernames"]
ANNOTATOR_MODES: tuple[str, ...] = ("omit", "anonymised", "usernames")

TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "dpo": ("prompt", "chosen", "rejected"),
    "orpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion"),
}
PAIR_COLUMNS = [
    "prompt",
    "chosen",
    "rejected",
    "prompt_id",
    "record_id",
    "rejected_record_id",
    "round",
    "chosen_model",
    "rejected_model",
    "chosen_score",
    "rejected_score",
    "margin",
    "n_annotators",
    "agreement",
    "source",
]
KTO_COLUMNS = [
    "prompt",
    "completion",
    "label",
    "prompt_id",
    "record_id",
    "slot",
    "round",
    "model",
    "score",
    "n_annotators",
    "agreement",
    "source",
]


def check_format(fmt: str) -> None:
    """Refuse an unknown format name."""
    if fmt not in FORMATS:
        msg = f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)} or 'all'."
        raise UsageError(msg)


def pseudonym(username: str, *, salt: str) -> str:
    """A stable pseudonym for an annotator: the same name and salt always give the same one."""
    return "annotator-" + hashlib.sha256(f"{salt}:{username}".encode()).hexdigest()[:10]


def validate_rows(frame: pl.DataFrame, fmt: str) -> None:
    """Check every row (TRL only looks at the first): non-empty text, boolean labels, distinct pairs."""
    check_format(fmt)
    columns = [*TEXT_COLUMNS[fmt], *(["label"] if fmt == "kto" else [])]
    missing = [c for c in [*columns, "record_id"] if c not in frame.columns]
    if missing:
        msg = f"The {fmt} frame lacks column(s) {', '.join(missing)}."
        raise InputError(msg)
    problems: list[tuple[str, pl.Expr]] = [
        (f"'{c}' is null or empty", pl.col(c).is_null() | (pl.col(c).str.strip_chars() == ""))
        for c in TEXT_COLUMNS[fmt]
    ]
    if fmt == "kto":
        if frame.schema["label"] != pl.Boolean:
            msg = f"The kto 'label' column must be boolean, not {frame.schema['label']}."
            raise InputError(msg)
        problems.append(("'label' is null", pl.col("label").is_null()))
    else:
        same = pl.col("chosen").str.strip_chars() == pl.col("rejected").str.strip_chars()
        problems.append(("'chosen' equals 'rejected'", same.fill_null(False)))
    # One pass answers whether any row is invalid; only then is the first bad row looked up.
    found = frame.select(expr.any().alias(str(i)) for i, (_, expr) in enumerate(problems)).row(0)
    for (what, expr), any_bad in zip(problems, found, strict=True):
        if not any_bad:
            continue
        bad = frame.with_row_index("row").filter(expr)
        if bad.height:
            first = bad.row(0, named=True)
            msg = (
                f"{bad.height} {fmt} row(s) invalid: {what} (first: row {first['row']}, "
                f"record {first['record_id']}). Check that record in Argilla, then run 'campaign status'."
            )
            raise InputError(msg)


def _messages(*parts: tuple[str, pl.Expr]) -> pl.Expr:
    """A list of {role, content} messages from (role, text expression) parts."""
    structs = [pl.struct(pl.lit(role).alias("role"), text.alias("content")) for role, text in parts]
    return pl.concat_list(structs)


def to_format(
    consensus: pl.DataFrame,
    fmt: str,
    *,
    chat: bool = False,
    system_prompt: str | None = None,
    annotators: AnnotatorMode = "omit",
    salt: str = "",
) -> pl.DataFrame:
    """TRL columns plus provenance for one format, validated; `chat=True` gives message lists."""
    check_format(fmt)
    if system_prompt is not None and not chat:
        msg = "A system prompt needs the conversational format; add --chat."
        raise UsageError(msg)
    if system_prompt is not None and not system_prompt.strip():
        msg = "The system prompt is empty; pass some text or leave --system-prompt out."
        raise UsageError(msg)
    if annotators not in ANNOTATOR_MODES:
        msg = f"Unknown annotator mode {annotators!r}; use one of {', '.join(ANNOTATOR_MODES)}."
        raise UsageError(msg)
    columns = KTO_COLUMNS if fmt == "kto" else PAIR_COLUMNS
    frame = consensus.select(columns + (["annotators"] if annotators != "omit" else []))
    validate_rows(frame, fmt)
    if annotators == "anonymised":
        frame = frame.with_columns(
            pl.col("annotators").list.eval(
                pl.element().map_elements(lambda name: pseudonym(name, salt=salt), return_dtype=pl.String())
            )
        )
    if chat:
        prompt_parts: list[tuple[str, pl.Expr]] = [("user", pl.col("prompt"))]
        if system_prompt is not None:
            prompt_parts.insert(0, ("system", pl.lit(system_prompt)))
        answers = ["completion"] if fmt == "kto" else ["chosen", "rejected"]
        frame = frame.with_columns(
            _messages(*prompt_parts).alias("prompt"),
            *[_messages(("assistant", pl.col(c))).alias(c) for c in answers],
        )
    return frame
