"""Consolidation: submitted responses -> one consensus frame of pairs (DPO/ORPO) or examples (KTO).

Input columns: the snapshot's `records` and `responses` tables (and `suggestions` for the judge fallback).
Output columns: `PAIRS_SCHEMA` or `UNPAIRED_SCHEMA`.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from campaign.consensus.policy import (
    BELOW_MARGIN,
    BETWEEN_THRESHOLDS,
    FEWER_THAN_TWO,
    IDENTICAL,
    LOW_AGREEMENT,
    MIDDLE_RANK,
    NO_SUBMITTED,
    NOT_UNANIMOUS,
    PAIRS_SCHEMA,
    TIE,
    TOO_FEW_ANNOTATORS,
    UNPAIRED,
    UNPAIRED_SCHEMA,
    UNRATED,
    ConsensusPolicy,
    Consolidation,
    resolve_min_annotators,
)
from campaign.errors import InputError
from campaign.templates import TEMPLATE_NAMES as TEMPLATES

GOOD, BAD = "good", "bad"

# ---------------------------------------------------------------------------------------------------------
# Internals: votes and decisions as polars frames (one pass over each table, no per-record Python)
# ---------------------------------------------------------------------------------------------------------

REQUIRED_RECORD_COLUMNS = (
    "record_id",
    "prompt_id",
    "round",
    "template",
    "prompt",
    "slot",
    "response",
    "model",
)
REQUIRED_RESPONSE_COLUMNS = ("record_id", "question", "slot", "value", "annotator", "status")
REQUIRED_SUGGESTION_COLUMNS = ("record_id", "question", "slot", "value", "agent")

# What Python's str.strip() removes (str.isspace). polars' default strip_chars keeps \x1c-\x1f, and the
# identical-response and empty-completion checks have always followed Python.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Integral votes below this sum exactly in float64 in any order, so sum / count is what fmean returns.
_EXACT_LIMIT = 2.0**31
_VOTES_SCHEMA: dict[str, pl.DataType] = {
    "rid": pl.UInt32(),
    "slot": pl.Int64(),
    "code": pl.UInt32(),
    "value": pl.Float64(),
    "template": pl.Enum(TEMPLATES),
}


def _require(frame: pl.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"The {name} frame lacks column(s) {', '.join(missing)}; run 'campaign status' to re-sync."
        raise InputError(msg)


def _where(frame: pl.DataFrame, condition: pl.Expr | pl.Series) -> pl.DataFrame:
    """`frame.filter(condition)`, without copying the frame when every row passes (the common case)."""
    mask = condition if isinstance(condition, pl.Series) else frame.select(condition.alias("_")).to_series()
    return frame if mask.sum() == frame.height else frame.filter(mask)


def _strip(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars(_WHITESPACE)


@dataclass(frozen=True)
class _Inputs:
    """The records of a consolidation, their slots, and the votes each judged record is decided on."""

    # rid, record_id, prompt_id, round, template, prompt, order (the record's rank in the exports' row order),
    # n_slots, first_slot, source ('human', 'judge', or null when dropped), reason (why it was dropped before
    # any decision), n_annotators
    records: pl.DataFrame
    slots: pl.DataFrame  # rid, slot, response, model
    # rid, slot, code (the voter), value, template, known (+ row: the slot's row in `slots`, when dense),
    # for judged records only
    votes: pl.DataFrame
    # True when the records are rows 0..N-1 by rid and the slots of record `rid` are numbered 1..n at rows
    # first_slot..first_slot+n-1 of `slots`: lookups by (rid, slot) are then positions, not joins.
    dense: bool
    # True when every vote is integral and small, so that sums are exact in any order (see _aggregated).
    exact: bool
    human: _Voters  # who voted on each record (the lists of names are built per example)
    judge: _Voters
    # Whether examples carry the `annotators` column (an export that omits it never builds the lists).
    annotators: bool = True
    # Per-slot vote counts and sums, computed once for the pairs and the KTO examples when they share votes
    # (they may run side by side: the lock makes the second wait for the first's sums).
    sums: dict[str, Any] = field(default_factory=dict)
    sums_lock: threading.Lock = field(default_factory=threading.Lock)


# Above this many (record, voter) cells the dense per-record arrays give way to group-bys.
_DENSE_CELLS = 1 << 26


def _record_tables(
    records: pl.DataFrame, rounds: Iterable[int] | None
) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """One row per record (fields of its first slot, and its place in the exports' row order), one row per
    (record, slot) (the last row wins), and whether the slots are densely numbered (see `_Inputs.dense`)."""
    _require(records, REQUIRED_RECORD_COLUMNS, "records")
    frame = records.select(REQUIRED_RECORD_COLUMNS)
    if rounds is not None:
        frame = frame.filter(pl.col("round").is_in(sorted(set(rounds))))
    # `rid` numbers the records: every later join and group-by is on integers.
    rid, slot = pl.col("rid"), pl.col("slot")
    new_record = (rid != rid.shift(1)).fill_null(True)
    runs = _record_runs(frame)
    if runs is not None:
        # As a sync writes them (each record's rows together, in slot order): numbered as they come.
        frame = frame.with_columns(runs.alias("rid"))
        recs = frame.select(
            "rid", "record_id", "prompt_id", "round", "template", pl.col("prompt").fill_null("")
        ).filter(new_record)
    else:
        # Otherwise in record_id order. The prompts stay out of the sort: only each record's first row
        # needs one, gathered by its original row.
        prompts = frame.get_column("prompt")
        frame = (
            frame.drop("prompt")
            .with_row_index("_row")
            .sort(["record_id", "slot"], maintain_order=True)
            .with_columns(rid=pl.col("record_id").rle_id())
        )
        recs = frame.select("rid", "record_id", "prompt_id", "round", "template", "_row").filter(new_record)
        recs = recs.with_columns(prompt=prompts.gather(recs.get_column("_row")).fill_null("")).drop("_row")
    # The exports' row order (by prompt id, then record id), as each record's rank: examples are put in
    # order by sorting integers.
    recs = recs.with_columns(order=pl.arg_sort_by("prompt_id", "record_id").arg_sort())
    bad = recs.filter(~pl.col("template").is_in(TEMPLATES).fill_null(False))
    if bad.height:
        record_id, template = bad.select("record_id", "template").row(0)
        msg = f"Record {record_id} has unknown template {template!r}; expected one of {', '.join(TEMPLATES)}."
        raise InputError(msg)
    _check_prompt_ids(recs)
    slots = frame.select("rid", slot.fill_null(1), pl.col("response").fill_null(""), "model")
    # Sorted by slot within a record, equal (rid, slot) rows are neighbours unless a null slot (read as 1)
    # comes before a slot below 1; only then does the last distinct row need hashing.
    ordered = slots.select((new_record | (slot >= slot.shift(1))).fill_null(True).all()).item()
    if ordered:
        slots = slots.filter(((rid != rid.shift(-1)) | (slot != slot.shift(-1))).fill_null(True))
    else:
        slots = slots.filter(pl.struct("rid", "slot").is_last_distinct())
    starts = slots.select(rid.rle().struct.field("len").cast(pl.Int64).alias("n_slots"))
    recs = recs.with_columns(
        n_slots=starts.get_column("n_slots"),
        first_slot=starts.get_column("n_slots").cum_sum().shift(1, fill_value=0),
    )
    dense = bool(
        ordered
        and slots.select(
            pl.when(new_record).then(slot == 1).otherwise(slot == slot.shift(1) + 1).all()
        ).item()
    )
    return recs, slots, dense


def _record_runs(frame: pl.DataFrame) -> pl.Series | None:
    """Run numbers of the record ids when each record's rows come together, in increasing slot order (no
    null id or slot): then they number the records. None otherwise."""
    ids, slots = frame.get_column("record_id"), frame.get_column("slot")
    if frame.height == 0 or ids.null_count() or slots.null_count():
        return None
    runs = ids.rle_id()
    first = (runs != runs.shift(1)).fill_null(True)
    if not (first | (slots > slots.shift(1))).fill_null(True).all():
        return None
    # Distinct hashes mean distinct ids (a shared hash only sends the records to the sort).
    heads = _hashes(ids.filter(first))
    return runs if heads.n_unique() == heads.len() else None


def _check_prompt_ids(recs: pl.DataFrame) -> None:
    """Refuse records without a prompt id: the split and the binary pairing group by it.

    A sync never writes one (it falls back to the record id) and `campaign seed` always sets it, so a null
    means the snapshot was written or edited by something else; guessing would put a prompt in both splits.
    """
    missing = recs.filter(pl.col("prompt_id").is_null())
    if missing.height:
        ids = missing.get_column("record_id").to_list()
        shown = ", ".join(str(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
        msg = (
            f"{len(ids)} record(s) have no prompt_id ({shown}); a snapshot synced by 'campaign status' "
            "always has one. Delete the campaign's .campaign/snapshot folder and run 'campaign status' "
            "to sync it again, or set prompt_id on those rows of records.parquet."
        )
        raise InputError(msg)


def _number(value: Any) -> float | None:
    """A rating or rank; NaN and infinities have no mean or order, so they count as no vote."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number + 0.0 if math.isfinite(number) else None  # + 0.0 turns -0.0 into 0.0


def _vote(value: Any) -> float | None:
    """A binary vote: 1.0 good, 0.0 bad."""
    text = str(value).strip().lower()
    return 1.0 if text == GOOD else 0.0 if text == BAD else None


def _mapped(column: str, values: list[Any], parse: Any, dtype: pl.DataType) -> pl.Expr:
    """`column` through `parse`, computed once per distinct value (there are few: ratings, ranks, labels)."""
    values = [v for v in values if v is not None]
    if not values:
        return pl.lit(None, dtype=dtype)
    return pl.col(column).replace_strict(values, [parse(v) for v in values], default=None, return_dtype=dtype)


def _valid(source: pl.LazyFrame, who: str, exclude: set[str] | None) -> pl.LazyFrame:
    """The rows of `source` that may count as votes: submitted responses of voters not excluded (all the
    suggestions)."""
    if who == "annotator":
        source = source.filter(pl.col("status") == "submitted")
        if exclude:
            source = source.filter(~pl.col("annotator").is_in(sorted(exclude)))
    return source


def _voter(frame: pl.DataFrame, who: str) -> pl.Expr:
    return pl.col(who) if who in frame.columns else pl.lit(None, dtype=pl.String())


_Texts = tuple[list[Any], list[Any], list[Any], int]


def _vote_texts(frame: pl.DataFrame, who: str, exclude: set[str] | None) -> _Texts:
    """The distinct questions, values and voters of the valid rows, and how many have no slot.

    They are few (ratings, ranks, labels, names): each is parsed once, then looked up per row, so that no
    text column of the votes is copied (texts of votes that end up dropped are harmless).
    """
    return (
        _valid(frame.lazy(), who, exclude)
        .select(
            pl.col("question").unique().implode(),
            pl.col("value").unique().implode(),
            _voter(frame, who).alias("who").unique().implode(),
            pl.col("slot").null_count(),
        )
        .collect()
        .row(0)
    )


def _collect(
    frame: pl.DataFrame,
    recs: pl.DataFrame,
    who: str,
    *,
    exclude: set[str] | None = None,
    first_code: int = 0,
    texts: _Texts | None = None,
) -> _Voters:
    """The last valid vote of each voter on each slot of the records in `recs`, and who voted on each record.

    Votes have the columns rid, slot, code, value, template; `code` is `first_code` plus the
    voter's position in the (sorted) list of voter names. `texts` are `_vote_texts` of the frame, if read.
    """
    ids = recs.get_column("record_id")
    known_ids = ids.drop_nulls()
    if frame.height == 0 or known_ids.len() == 0:
        return _voters(pl.DataFrame(schema=_VOTES_SCHEMA), [], first_code, recs.height, None)
    # rid is the position of the record id among the records' ids (a null id, if any, comes first); votes on
    # unknown records get none and are dropped.
    positions = _positions(frame.get_column("record_id"), known_ids)
    source = _valid(frame.lazy().with_columns(positions.alias("rid")), who, exclude)
    rid = pl.col("rid") if ids.len() == known_ids.len() else pl.col("rid") + (ids.len() - known_ids.len())
    given = _voter(frame, who)
    templates = recs.get_column("template").cast(pl.Enum(TEMPLATES))
    present = set(templates.unique().drop_nulls().to_list())
    questions, values, voters, null_slots = texts or _vote_texts(frame, who, exclude)
    kinds = {_question_kind(q) for q in questions if q is not None}
    template = pl.col("template")
    if len(kinds) == 1 and None not in questions:  # one kind of question (say rating_<n>): no lookup
        kind = pl.lit(kinds.pop(), dtype=pl.Int8())
    else:
        kind = _mapped("question", questions, _question_kind, pl.Int8())
    rating_question = (template == "rating") & (kind == _RATING_QUESTION)
    suffixes: dict[str, str] = {}
    if null_slots:
        numbered = (
            source.filter(pl.col("slot").is_null())
            .select("question", rid=rid)
            .filter(pl.col("rid").is_not_null())
            .with_columns(template=pl.lit(templates).gather(pl.col("rid")))
            .filter(rating_question)
            .select(pl.col("question").unique())
            .collect()
            .to_series()
        )
        suffixes = {q: q.removeprefix("rating_") for q in numbered.to_list()}
    from_question = _mapped(
        "question",
        list(suffixes),
        lambda q: int(suffixes[q]) if suffixes[q].isdigit() else None,
        pl.Int64(),
    )
    votes_, numbers = (
        _mapped("value", values, _vote, pl.Float64()),
        _mapped("value", values, _number, pl.Float64()),
    )
    parsed = (
        numbers
        if "binary" not in present
        else votes_
        if present == {"binary"}
        else pl.when(template == "binary").then(votes_).otherwise(numbers)
    )
    names = sorted({"judge" if v is None or v == "" else v for v in voters})
    nameless = pl.col("who").is_null() | (pl.col("who") == "")
    voter = pl.when(nameless).then(pl.lit("judge")).otherwise(pl.col("who"))
    if None not in voters and "" not in voters:
        voter = pl.col("who")
    plan = (
        source.select("question", "slot", "value", given.alias("who"), rid=rid)
        .filter(pl.col("rid").is_not_null())
        .with_columns(template=pl.lit(templates).gather(pl.col("rid")))
        .with_columns(
            eff_slot=pl.when(rating_question)
            .then(pl.coalesce(pl.col("slot"), from_question))
            .when((template == "ranking") & (kind == _RANKING_QUESTION))
            .then(pl.col("slot"))
            .when((template == "binary") & (kind == _LABEL_QUESTION))
            .then(pl.lit(1, dtype=pl.Int64()))
            .otherwise(pl.lit(None, dtype=pl.Int64())),
            parsed=parsed,
            voter=voter,
        )
        .filter(pl.col("eff_slot").is_not_null() & pl.col("parsed").is_not_null())
        .with_columns(code=pl.col("voter").cast(pl.Enum(names)).to_physical().cast(pl.UInt32) + first_code)
    )
    # Codes stand for the voters (one code per name), so no voter text is copied for each vote.
    columns = ("rid", "eff_slot", "code", "parsed", "template")
    rows = plan.select(columns).collect(engine="streaming")
    duplicated, voted = _has_duplicates(rows, len(names), first_code, recs.height)
    if duplicated:
        # A voter answered one slot twice: the last in (record, question, slot, voter) order wins (the
        # (record, voter) cells that have a vote stay the same).
        rows = plan.collect().sort(["rid", "question", "slot", "who"], nulls_last=True, maintain_order=True)
        rows = rows.unique(["rid", "eff_slot", "code"], keep="last", maintain_order=True)
    votes = rows.select("rid", slot="eff_slot", code="code", value="parsed", template="template")
    return _voters(votes, names, first_code, recs.height, voted)


def _hashes(ids: pl.Series) -> pl.Series:
    """64-bit hashes of ids (only compared within one process)."""
    return ids.hash()


def _positions(ids: pl.Series, known: pl.Series) -> pl.Series:
    """The position (UInt32) of each of `ids` among the distinct, non-null `known` ids; null if not known.

    A sync writes each record's responses together, so equal ids come in runs: each run is looked up once.
    """
    runs = ids.rle_id()
    if ids.len() and runs[-1] < ids.len() // 2:
        return _lookup(ids.filter((runs != runs.shift(1)).fill_null(True)), known).gather(runs)
    return _lookup(ids, known)


def _lookup(ids: pl.Series, known: pl.Series) -> pl.Series:
    """`_positions` of every id: joining 64-bit hashes of the ids is ~2x faster than an enum cast of the
    strings; the joined ids are then compared, and a hash that two texts share (or a null id that would
    match) falls back to the cast.
    """
    hashes = _hashes(known)
    if hashes.n_unique() == known.len():
        numbered = pl.DataFrame(
            {"h": hashes, "rid": pl.int_range(known.len(), dtype=pl.UInt32(), eager=True)}
        )
        found = (
            pl.DataFrame({"h": _hashes(ids)})
            .join(numbered, on="h", how="left", maintain_order="left")
            .get_column("rid")
        )
        same = (known.gather(found) == ids).fill_null(False) | found.is_null()
        if same.all():
            return found
    # The cast builds its lookup table on every call (per chunk or morsel in a plan), so it runs once, on
    # the whole column.
    return ids.cast(pl.Enum(known), strict=False).to_physical().cast(pl.UInt32)


_RATING_QUESTION, _RANKING_QUESTION, _LABEL_QUESTION = 1, 2, 3


def _question_kind(question: str) -> int:
    """Which template's question this is: rating_<n>, ranking, label, or none (0)."""
    if question.startswith("rating_"):
        return _RATING_QUESTION
    return {"ranking": _RANKING_QUESTION, "label": _LABEL_QUESTION}.get(question, 0)


def _has_duplicates(rows: pl.DataFrame, n_voters: int, first_code: int, n_records: int) -> tuple[bool, Any]:
    """Whether some voter has two votes on one (rid, eff_slot); and, when the votes were counted per cell,
    whether each (record, voter) cell has a vote (n_records x n_voters booleans, row-major), else None."""
    if rows.height == 0:
        return False, None
    low, high = rows.select(low=pl.col("eff_slot").min(), high=pl.col("eff_slot").max()).row(0)
    width = (high - low + 1) * max(n_voters, 1)
    if width * n_records <= _DENSE_CELLS:
        import numpy as np

        # One integer per (record, slot, voter) cell: counting votes per cell is a bincount. The cells are
        # computed in place (each step of a polars expression would take fresh memory for 8 bytes a vote).
        cells = rows.get_column("rid").to_numpy().astype(np.int64)
        cells *= width
        cells += rows.get_column("eff_slot").to_numpy() * n_voters
        cells += rows.get_column("code").to_numpy()
        cells -= low * n_voters + first_code
        counts = np.bincount(cells, minlength=n_records * width)
        per_slot = counts.reshape(n_records, high - low + 1, max(n_voters, 1))
        if high - low < 64:
            # One slot at a time: numpy's any(axis=1) over the middle axis is several times slower.
            voted: Any = per_slot[:, 0, :] > 0
            for position in range(1, high - low + 1):
                voted |= per_slot[:, position, :] > 0
        else:
            voted = per_slot.any(axis=1)
        return bool(counts.max() > 1), voted.ravel()
    if width < 1 << 32:
        key = (
            pl.col("rid").cast(pl.UInt64) * (1 << 32)
            + (pl.col("eff_slot") - low).cast(pl.UInt64) * n_voters
            + (pl.col("code") - first_code).cast(pl.UInt64)
        )
        return bool(rows.select(key.n_unique()).item() < rows.height), None
    return bool(rows.select(pl.struct("rid", "eff_slot", "code").is_duplicated().any()).item()), None


@dataclass(frozen=True)
class _Voters:
    """The votes of one source (humans or judges) and who voted on each record, without a list per record.

    Record `rid` has `counts[rid]` voters: positions `codes[starts[rid]:starts[rid] + counts[rid]]` of the
    sorted `names`. Lists of names are built only for the examples that carry them (`_annotator_lists`).
    """

    votes: pl.DataFrame
    names: list[str]
    counts: Any  # numpy int64, one per rid 0..N-1
    starts: Any
    codes: Any


def _voters(votes: pl.DataFrame, names: list[str], first_code: int, n_records: int, voted: Any) -> _Voters:
    """`_Voters` of `votes`; `voted` are the marked (record, voter) cells when `_has_duplicates` counted them."""
    import numpy as np

    if votes.height == 0 or not names:
        empty = np.zeros(n_records, dtype=np.int64)
        return _Voters(votes, names, empty, empty, np.zeros(0, dtype=np.int64))
    width = len(names)
    if voted is None and n_records * width <= _DENSE_CELLS:
        # Mark each (record, voter) cell once.
        cells = (
            votes.select(pl.col("rid").cast(pl.Int64) * width + (pl.col("code").cast(pl.Int64) - first_code))
            .to_series()
            .to_numpy()
        )
        voted = np.zeros(n_records * width, dtype=bool)
        voted[cells] = True
    if voted is not None:
        # The marked cells, in order, are every record's voters in name order (codes follow sorted names).
        owner, codes = np.divmod(np.flatnonzero(voted), width)
    else:
        distinct = votes.select("rid", "code").unique().sort("rid", "code")
        owner = distinct.get_column("rid").to_numpy().astype(np.int64)
        codes = distinct.get_column("code").to_numpy().astype(np.int64) - first_code
    counts = np.bincount(owner, minlength=n_records).astype(np.int64)
    return _Voters(votes, names, counts, np.cumsum(counts) - counts, codes)


def _annotator_lists(inputs: _Inputs, rid: pl.Series) -> pl.Series:
    """The sorted voters of each record in `rid` (of its source: humans or judges; null when it has none)."""
    import numpy as np
    import pyarrow as pa

    rows = rid.to_numpy()
    source = inputs.records.get_column("source").gather(rid)
    starts = np.zeros(rows.size, dtype=np.int64)
    lengths = np.zeros(rows.size, dtype=np.int64)
    valid = np.zeros(rows.size, dtype=bool)
    names: list[str] = []
    codes: list[Any] = []
    for kind, voters in (("human", inputs.human), ("judge", inputs.judge)):
        mine = (source == kind).fill_null(False).to_numpy()
        valid |= mine
        starts[mine] = voters.starts[rows[mine]] + sum(c.size for c in codes)
        lengths[mine] = voters.counts[rows[mine]]
        codes.append(voters.codes + len(names))
        names += voters.names
    offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Value i of the lists is code starts[row] + (i - offsets[row]) of its row.
    picks = np.concatenate(codes)[np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])]
    values = pl.Series(names, dtype=pl.String()).gather(picks).to_arrow()
    # The list array is put together from buffers: pa.array() imports pandas on its first call (~0.3 s).
    validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    lists = pa.Array.from_buffers(
        pa.large_list(values.type), rows.size, [validity, pa.py_buffer(offsets)], children=[values]
    )
    annotators = pl.from_arrow(lists)
    assert isinstance(annotators, pl.Series)
    return annotators.alias("annotators")


def _prepare(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None,
    policy: ConsensusPolicy,
    min_submitted: int | None,
    rounds: Iterable[int] | None,
    annotators: bool = True,
) -> _Inputs:
    """Records, their slots, who judges each one (humans, else the judge, else a drop reason) and the votes."""
    exclude = set(policy.exclude_annotators)

    def read_texts() -> _Texts:
        _require(responses, REQUIRED_RESPONSE_COLUMNS, "responses")
        return _vote_texts(responses, "annotator", exclude)

    with ThreadPoolExecutor(max_workers=1) as pool:
        # The votes' texts do not depend on the records: they are read while the records are numbered.
        texts = pool.submit(read_texts)
        recs, slots, dense = _record_tables(records, rounds)
        human = _collect(responses, recs, "annotator", exclude=exclude, texts=texts.result())
    judge = _voters(pl.DataFrame(schema=_VOTES_SCHEMA), [], len(human.names), recs.height, None)
    if policy.judge_fallback and suggestions is not None:
        _require(suggestions, REQUIRED_SUGGESTION_COLUMNS, "suggestions")
        judge = _collect(suggestions, recs, "agent", first_code=len(human.names))
    need = pl.lit(resolve_min_annotators(policy, min_submitted))
    if policy.binary.min_votes is not None:
        need = pl.when(pl.col("template") == "binary").then(pl.lit(policy.binary.min_votes)).otherwise(need)
    human_n, judge_n = pl.col("human_n").fill_null(0), pl.col("judge_n").fill_null(0)
    reason = (
        pl.when(human_n == 0)
        .then(pl.lit(NO_SUBMITTED))
        .when(human_n < need)
        .then(pl.lit(TOO_FEW_ANNOTATORS))
        .otherwise(pl.lit(None, dtype=pl.String()))
    )
    source = (
        pl.when(reason.is_null())
        .then(pl.lit("human"))
        .when(judge_n > 0)
        .then(pl.lit("judge"))
        .otherwise(pl.lit(None, dtype=pl.String()))
    )
    counts = pl.DataFrame({"human_n": human.counts, "judge_n": judge.counts})
    recs = (
        pl.concat([recs, counts], how="horizontal")
        .with_columns(reason=reason, source=source)
        .with_columns(
            reason=pl.when(pl.col("source").is_null()).then(pl.col("reason")),
            n_annotators=pl.when(pl.col("source") == "human")
            .then(pl.col("human_n"))
            .when(pl.col("source") == "judge")
            .then(pl.col("judge_n")),
        )
        .drop("human_n", "judge_n")
    )
    sources = recs.get_column("source")
    # Codes stand for voters from here on (judge codes follow the human ones).
    votes = pl.concat(
        [
            _where(voters.votes, (sources == name).gather(voters.votes.get_column("rid")))
            for name, voters in (("human", human), ("judge", judge))
        ]
    )
    known = _with_known(votes, recs, slots, dense)
    return _Inputs(recs, slots, known, dense, _exact(votes, "value"), human, judge, annotators)


def _with_known(votes: pl.DataFrame, recs: pl.DataFrame, slots: pl.DataFrame, dense: bool) -> pl.DataFrame:
    """`votes` plus `known`: whether the voted slot is one of the record's responses (pairs use only those)."""
    if dense:
        # In numpy, in place: each step of a polars expression would take fresh memory for every vote.
        rid = votes.get_column("rid").to_numpy()
        slot = votes.get_column("slot").to_numpy()
        inside = slot >= 1
        inside &= slot <= recs.get_column("n_slots").to_numpy()[rid]
        row = recs.get_column("first_slot").to_numpy()[rid]
        row += slot
        row -= 1
        rows = pl.Series("row", row)
        if not inside.all():
            rows = pl.select(pl.when(pl.Series(inside)).then(rows)).to_series()
        return votes.with_columns(pl.Series("known", inside), rows)
    known = slots.select("rid", "slot", known=pl.lit(True))
    return votes.join(known, on=["rid", "slot"], how="left").with_columns(pl.col("known").fill_null(False))


def _aggregate(values: list[float], method: str) -> float:
    return float(statistics.median(values)) if method == "median" else float(statistics.fmean(values))


def _aggregated(votes: pl.DataFrame, column: str, method: str, *extra: pl.Expr) -> pl.DataFrame:
    """rid, slot, score (+ `extra` aggregations): `column` combined per slot, exactly as `statistics` does."""
    value = pl.col(column)
    combined = value.median() if method == "median" else value.sum() / pl.len().cast(pl.Float64)
    scores = votes.group_by("rid", "slot").agg(combined.alias("score"), *extra)
    # Non-integral votes (never from Argilla's rating and ranking questions) may sum differently than
    # math.fsum; those few slots are recomputed with the statistics module.
    inexact = votes.filter((value.round(0) != value) | (value.abs() >= _EXACT_LIMIT))
    if inexact.height:
        keys = inexact.select("rid", "slot").unique()
        lists = votes.join(keys, on=["rid", "slot"], how="semi").group_by("rid", "slot").agg(value)
        exact = lists.select(
            "rid",
            "slot",
            exact=pl.Series(
                [_aggregate(v, method) for v in lists.get_column(column).to_list()], dtype=pl.Float64
            ),
        )
        scores = (
            scores.join(exact, on=["rid", "slot"], how="left")
            .with_columns(score=pl.coalesce("exact", "score"))
            .drop("exact")
        )
    return scores


def _gate(agreement: pl.Expr, policy: ConsensusPolicy) -> pl.Expr:
    """Whether an example falls below the agreement gate (judge rows, with no agreement, pass)."""
    if policy.agreement_gate is None:
        return pl.lit(False)
    return agreement.fill_null(policy.agreement_gate) < policy.agreement_gate


def _slot_rows(inputs: _Inputs, votes: pl.DataFrame) -> Any:
    """The row of `inputs.slots` each (known) vote is on, when `inputs.dense`."""
    return votes.get_column("row").to_numpy()


def _slot_sums(inputs: _Inputs, votes: pl.DataFrame, column: str, shared: str | None) -> tuple[Any, Any]:
    """Vote counts and sums of `column` per row of `inputs.slots` (dense); `shared` names the vote set, so
    that another consolidation of the same votes reuses them (sums of integral votes are exact in any order).
    """
    import numpy as np

    def computed() -> tuple[Any, Any]:
        rows = _slot_rows(inputs, votes)
        size = inputs.slots.height
        return (
            np.bincount(rows, minlength=size),
            np.bincount(rows, weights=votes.get_column(column).to_numpy(), minlength=size),
        )

    if shared is None:
        return computed()
    with inputs.sums_lock:
        if shared not in inputs.sums:
            inputs.sums[shared] = computed()
        return inputs.sums[shared]


def _exact(votes: pl.DataFrame, column: str) -> bool:
    """Whether every vote is integral and small, so that sums are exact in any order (see _aggregated)."""
    value = pl.col(column)
    return (
        votes.height == 0
        or not votes.select(((value.round(0) != value) | (value.abs() >= _EXACT_LIMIT)).any()).item()
    )


def _dense_best(inputs: _Inputs, votes: pl.DataFrame, flip: Any, shared: str | None) -> pl.DataFrame:
    """n, chosen, rejected, chosen_score, rejected_score, margin per rid 0..N-1 (n = 0 without scores).

    `votes` hold known votes with the value to average in `agg`; `flip` (per rid) says that a lower
    mean is better (mean rank). Same choices as sorting by (key desc, slot) in `_scored`.
    """
    import numpy as np

    n_records = inputs.records.height
    counts, totals = _slot_sums(inputs, votes, "agg", shared)
    scored = np.flatnonzero(counts)  # in (rid, slot) order
    score = totals[scored] / counts[scored]
    owner = inputs.slots.get_column("rid").to_numpy()[scored].astype(np.int64)
    key = np.where(flip[owner], -score, score) if flip.any() else score
    out = {
        "n": np.zeros(n_records, dtype=np.int64),
        "chosen": np.zeros(n_records, dtype=np.int64),
        "rejected": np.zeros(n_records, dtype=np.int64),
        "chosen_score": np.zeros(n_records),
        "rejected_score": np.zeros(n_records),
        "margin": np.zeros(n_records),
    }
    if scored.size:
        first = np.r_[True, owner[1:] != owner[:-1]]
        starts = np.flatnonzero(first)
        width = scored.size // starts.size
        # Chosen: highest key, lowest slot; rejected: lowest key, highest slot (rows are in slot order).
        if width <= 16 and starts.size * width == scored.size and (np.diff(starts) == width).all():
            # Every record has `width` scored slots: column by column beats reduceat's per-group overhead.
            grid = key.reshape(-1, width)
            high, low = grid[:, 0].copy(), grid[:, 0].copy()
            for column in range(1, width):
                np.maximum(high, grid[:, column], out=high)
                np.minimum(low, grid[:, column], out=low)
            best_column = np.full(starts.size, width - 1)
            worst_column = np.zeros(starts.size, dtype=np.int64)
            for column in range(width - 1, -1, -1):
                best_column[grid[:, column] == high] = column
            for column in range(width):
                worst_column[grid[:, column] == low] = column
            best, worst = starts + best_column, starts + worst_column
        else:
            group = np.cumsum(first) - 1
            high, low = np.maximum.reduceat(key, starts), np.minimum.reduceat(key, starts)
            position = np.arange(scored.size)
            best = np.minimum.reduceat(np.where(key == high[group], position, scored.size), starts)
            worst = np.maximum.reduceat(np.where(key == low[group], position, -1), starts)
        slot = inputs.slots.get_column("slot").to_numpy()[scored]
        ids = owner[starts]
        out["n"][ids] = np.diff(np.r_[starts, scored.size])
        out["chosen"][ids], out["rejected"][ids] = slot[best], slot[worst]
        out["chosen_score"][ids], out["rejected_score"][ids] = score[best], score[worst]
        out["margin"][ids] = high - low
    frame = pl.DataFrame(out)
    has = pl.col("n") > 0
    return frame.with_columns(
        pl.when(has).then(pl.col(c)).alias(c)
        for c in ("chosen", "rejected", "chosen_score", "rejected_score", "margin")
    )


def _dense_agreement(inputs: _Inputs, better: pl.DataFrame, pairs: pl.DataFrame) -> pl.Series | None:
    """Pair agreement per rid 0..N-1 from positional arrays, or None when they would be too large."""
    import numpy as np

    n_records, n_rows = inputs.records.height, inputs.slots.height
    width = int(better.select(pl.col("code").max()).item() or 0) + 1
    if n_rows * width > _DENSE_CELLS:
        return None
    # One vote per (slot, voter): a (slot row x voter) grid of `better` (NaN: no vote), read at each pair's
    # chosen and rejected rows. Differences are exact (votes are integral).
    cells = np.full(n_rows * width, np.nan)
    cells[_slot_rows(inputs, better) * width + better.get_column("code").to_numpy()] = better.get_column(
        "better"
    ).to_numpy()
    grid = cells.reshape(n_rows, width)
    ids = pairs.get_column("rid").to_numpy()
    before = inputs.records.get_column("first_slot").to_numpy()[ids] - 1
    on_chosen = grid[before + pairs.get_column("chosen").to_numpy()]
    on_rejected = grid[before + pairs.get_column("rejected").to_numpy()]
    both = ~(np.isnan(on_chosen) | np.isnan(on_rejected))
    agree = (on_chosen > on_rejected) & both
    if width <= 64:  # voter by voter: sums over a short last axis are slow in numpy
        judged, agreeing = both[:, 0].astype(np.float64), agree[:, 0].astype(np.float64)
        for voter in range(1, width):
            judged += both[:, voter]
            agreeing += agree[:, voter]
    else:
        judged, agreeing = both.sum(axis=1, dtype=np.float64), agree.sum(axis=1, dtype=np.float64)
    share = np.full(n_records, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        share[ids] = agreeing / judged
    return pl.Series("agreement", share).fill_nan(None)


_SCORED_SCHEMA: dict[str, pl.DataType] = {
    "rid": pl.UInt32(),
    "reason": pl.String(),
    "chosen": pl.Int64(),
    "rejected": pl.Int64(),
    "chosen_score": pl.Float64(),
    "rejected_score": pl.Float64(),
    "margin": pl.Float64(),
    "agreement": pl.Float64(),
}


def _scored(inputs: _Inputs, policy: ConsensusPolicy, templates: tuple[str, ...]) -> pl.DataFrame:
    """Best and worst response of each judged rating or ranking record, or the reason it is dropped.

    Output columns: rid, reason, chosen, rejected, chosen_score, rejected_score, margin, agreement.
    """
    # (Columns picked before filtering, here and below: the records' texts are not copied.)
    judged = inputs.records.select("rid", "template", "source").filter(
        pl.col("source").is_not_null() & pl.col("template").is_in(templates)
    )
    if judged.height == 0:  # say, the KTO examples' rankings in a rating campaign
        return pl.DataFrame(schema=_SCORED_SCHEMA)
    votes = _where(inputs.votes, pl.col("template").is_in(templates) & pl.col("known"))
    # `better` is higher for the preferred response (pair agreement), `score` is reported, `key` is ranked.
    rating = _where(votes, pl.col("template") == "rating").with_columns(better=pl.col("value"))
    ranking = _where(votes, pl.col("template") == "ranking")
    by_voter = ["rid", "code"]
    borda = policy.ranking.method == "borda"
    if borda:
        # Borda points: how many responses this annotator ranked strictly worse.
        worse = pl.len().over(by_voter) - pl.col("value").rank("max").over(by_voter)
        ranking = ranking.with_columns(better=worse.cast(pl.Float64))
    else:
        ranking = ranking.with_columns(better=-pl.col("value"))
    better = pl.concat([part for part in (rating, ranking) if part.height] or [rating])
    if borda or not ranking.height:
        averaged = better.with_columns(agg=pl.col("better"))
    else:
        averaged = better.with_columns(
            agg=pl.when(pl.col("template") == "ranking").then(pl.col("value")).otherwise(pl.col("better"))
        )
    dense = inputs.dense and inputs.exact and policy.rating.method == "mean"
    if dense:
        flip = (inputs.records.get_column("template") == "ranking").to_numpy() & (not borda)
        # Without rankings, these are the known rating votes that the KTO statistics count and sum too.
        shared = _KNOWN_RATINGS if not ranking.height and "rating" in templates else None
        full = _dense_best(inputs, averaged, flip, shared)
        rid = judged.get_column("rid")
        decided = pl.concat(
            [judged.select("rid", "template", "source"), full.select(pl.all().gather(rid))], how="horizontal"
        )
        rows = inputs.records.get_column("first_slot").gather(rid) - 1
        response = inputs.slots.get_column("response")
        decided = decided.with_columns(
            text=response.gather(rows + decided.get_column("chosen")).str.strip_chars(_WHITESPACE),
            text_r=response.gather(rows + decided.get_column("rejected")).str.strip_chars(_WHITESPACE),
        )
    else:
        if borda:
            ranking_scores = _aggregated(ranking, "better", "mean").with_columns(key=pl.col("score"))
        else:
            ranking_scores = _aggregated(ranking, "value", "mean").with_columns(key=-pl.col("score"))
        rating_scores = _aggregated(rating, "value", policy.rating.method).with_columns(key=pl.col("score"))
        scores = pl.concat([rating_scores, ranking_scores])
        # Chosen: highest key, then lowest slot; rejected: lowest key, then highest slot.
        best = (
            scores.sort(["rid", "key", "slot"], descending=[False, True, False])
            .group_by("rid", maintain_order=True)
            .agg(
                n=pl.len(),
                chosen=pl.col("slot").first(),
                rejected=pl.col("slot").last(),
                chosen_score=pl.col("score").first(),
                rejected_score=pl.col("score").last(),
                margin=pl.col("key").first() - pl.col("key").last(),
            )
        )
        texts = inputs.slots.select("rid", "slot", text=_strip("response"))
        decided = (
            judged.select("rid", "template", "source")
            .join(best, on="rid", how="left")
            .join(texts, left_on=["rid", "chosen"], right_on=["rid", "slot"], how="left")
            .join(texts, left_on=["rid", "rejected"], right_on=["rid", "slot"], how="left", suffix="_r")
        )
    min_margin = (
        pl.when(pl.col("template") == "rating")
        .then(pl.lit(policy.rating.min_margin))
        .otherwise(pl.lit(policy.ranking.min_margin))
    )
    reason = (
        pl.when(pl.col("n").fill_null(0) < 2)
        .then(pl.lit(FEWER_THAN_TWO))
        .when(pl.col("margin") <= 0)
        .then(pl.lit(TIE))
        .when(pl.col("margin") < min_margin)
        .then(pl.lit(BELOW_MARGIN))
        .when(pl.col("text") == pl.col("text_r"))
        .then(pl.lit(IDENTICAL))
        .otherwise(pl.lit(None, dtype=pl.String()))
    )
    decided = decided.with_columns(reason=reason)
    # Pair agreement: share of annotators who judged both responses and strictly preferred the chosen one.
    # (Columns picked before filtering, so that no text is copied.)
    pairs = decided.select("rid", "chosen", "rejected", "reason", "source").filter(
        pl.col("reason").is_null() & (pl.col("source") == "human")
    )
    shares = _dense_agreement(inputs, better, pairs) if dense else None
    if shares is not None:
        decided = decided.with_columns(agreement=shares.gather(decided.get_column("rid")))
    else:
        better = better.select("rid", "slot", "code", "better")
        both = better.join(pairs.select("rid", slot="chosen"), on=["rid", "slot"], how="semi").join(
            better.join(pairs.select("rid", slot="rejected"), on=["rid", "slot"], how="semi"),
            on=["rid", "code"],
            how="inner",
            suffix="_r",
        )
        agreement = both.group_by("rid").agg(
            agreement=(pl.col("better") > pl.col("better_r")).sum().cast(pl.Float64)
            / pl.len().cast(pl.Float64)
        )
        decided = decided.join(agreement, on="rid", how="left")
    decided = decided.with_columns(agreement=pl.when(pl.col("source") == "human").then(pl.col("agreement")))
    low = pl.col("reason").is_null() & _gate(pl.col("agreement"), policy)
    return decided.with_columns(
        reason=pl.when(low).then(pl.lit(LOW_AGREEMENT)).otherwise(pl.col("reason"))
    ).select("rid", "reason", "chosen", "rejected", "chosen_score", "rejected_score", "margin", "agreement")


_BINARY_SCHEMA: dict[str, pl.DataType] = {
    "rid": pl.UInt32(),
    "reason": pl.String(),
    "label": pl.Boolean(),
    "share": pl.Float64(),
    "agreement": pl.Float64(),
}


def _binary(inputs: _Inputs, policy: ConsensusPolicy) -> pl.DataFrame:
    """Label, share of good votes and agreement of each judged binary record, or why it is dropped.

    Output columns: rid, reason, label, share, agreement.
    """
    import numpy as np

    judged = inputs.records.select("rid", "template", "source").filter(
        pl.col("source").is_not_null() & (pl.col("template") == "binary")
    )
    if judged.height == 0:  # a rating or ranking campaign
        return pl.DataFrame(schema=_BINARY_SCHEMA)
    votes = _where(inputs.votes, (pl.col("template") == "binary") & (pl.col("slot") == 1))
    # Good votes are 1.0 and bad 0.0: per-record sums by position (rids are 0..N-1).
    rid = votes.get_column("rid").to_numpy()
    size = inputs.records.height
    counts = pl.DataFrame(
        {
            "good": np.bincount(rid, weights=votes.get_column("value").to_numpy(), minlength=size),
            "n": np.bincount(rid, minlength=size).astype(np.int64),
        }
    )
    good, n = pl.col("good"), pl.col("n")
    unanimous = policy.binary.method == "unanimous"
    reason = (
        pl.when(n == 0)
        .then(pl.lit(NO_SUBMITTED))
        .when(pl.lit(unanimous) & (good > 0) & (good < n))
        .then(pl.lit(NOT_UNANIMOUS))
        .when(good * 2 == n)
        .then(pl.lit(TIE))
        .otherwise(pl.lit(None, dtype=pl.String()))
    )
    decided = (
        pl.concat(
            [judged.select("rid", "source"), counts.select(pl.all().gather(judged.get_column("rid")))],
            how="horizontal",
        )
        .with_columns(reason=reason, label=good * 2 > n, share=good / n.cast(pl.Float64))
        .with_columns(
            agreement=pl.when(pl.col("source") == "human").then(
                pl.when(pl.col("label")).then(pl.col("share")).otherwise(1.0 - pl.col("share"))
            )
        )
    )
    low = pl.col("reason").is_null() & _gate(pl.col("agreement"), policy)
    return decided.with_columns(
        reason=pl.when(low).then(pl.lit(LOW_AGREEMENT)).otherwise(pl.col("reason"))
    ).select("rid", "reason", "label", "share", "agreement")


def _counts(*parts: pl.DataFrame) -> dict[str, int]:
    """Drop reasons summed over frames of (reason, weight); reasons with no record are left out."""
    totals: dict[str, int] = {}
    for part in parts:  # each part on its own: few reasons each, no concatenated copy of every row
        sums = (
            part.lazy()
            .select(pl.col("reason").cast(pl.String), pl.col("weight").cast(pl.Int64))
            .drop_nulls("reason")
            .group_by("reason")
            .agg(pl.col("weight").sum())
            .collect()
        )
        for reason, n in sums.iter_rows():
            totals[reason] = totals.get(reason, 0) + int(n)
    return {reason: n for reason, n in sorted(totals.items()) if n > 0}


def _finish(
    parts: list[pl.DataFrame],
    schema: dict[str, pl.DataType],
    order: list[str],
    inputs: _Inputs,
    ordered: tuple[bool, ...],
) -> pl.DataFrame:
    """The parts in `schema`'s columns and types, concatenated and sorted (the exports' row order).

    A part marked `ordered` is in that order already (`_in_order`): when it is the only one with rows, it is
    the result as it is, without another copy of every column by a sort.
    """
    columns = [
        pl.col(name).cast(dtype)
        for name, dtype in schema.items()
        if name != "annotators" or inputs.annotators
    ]
    selected = [part.select(columns) for part in parts]
    filled = [i for i, part in enumerate(selected) if part.height]
    if len(filled) == 1 and ordered[filled[0]]:
        return selected[filled[0]]
    return pl.concat(selected).sort(order)


def _in_order(frame: pl.DataFrame, inputs: _Inputs, *then: str) -> pl.DataFrame:
    """`frame` (by rid) in the exports' row order: by prompt id, then record id (the record's `order`), then
    `then`. Sorted before `_with_record`, the record fields and texts are gathered once, in order."""
    if frame.height < 2:
        return frame
    order = inputs.records.get_column("order").gather(frame.get_column("rid")).alias("_order")
    return frame.with_columns(order).sort("_order", *then).drop("_order")


# ---------------------------------------------------------------------------------------------------------
# Public: pairs (DPO/ORPO) and unpaired examples (KTO)
# ---------------------------------------------------------------------------------------------------------


# The record fields that examples carry.
_RECORD_FIELDS = ("record_id", "prompt_id", "round", "prompt", "source", "annotators", "n_annotators")


def _with_record(frame: pl.DataFrame, inputs: _Inputs, *slots: tuple[str, str]) -> pl.DataFrame:
    """`frame` (by rid) with the record's fields and, per (slot column, prefix), that slot's text/model."""
    recs = inputs.records
    rid = frame.get_column("rid")
    # Records are rows 0..N-1 by rid: their fields are gathered by position (frame's own columns win).
    frame = frame.with_columns(
        _annotator_lists(inputs, rid) if c == "annotators" else recs.get_column(c).gather(rid)
        for c in _RECORD_FIELDS
        if c not in frame.columns and (c != "annotators" or inputs.annotators)
    )
    for column, prefix in slots:
        names = {"response": f"{prefix}text", "model": f"{prefix}model"}
        if inputs.dense:
            first, n = recs.get_column("first_slot").gather(rid), recs.get_column("n_slots").gather(rid)
            slot = frame.get_column(column)
            row = pl.select(
                pl.when(slot.is_between(1, n)).then(first + slot - 1).cast(pl.Int64).alias("row")
            ).to_series()
            frame = frame.with_columns(
                inputs.slots.get_column(c).gather(row).alias(a) for c, a in names.items()
            )
        else:
            # The rows keep their order (`_in_order` may have put them in the exports' order).
            frame = frame.join(
                inputs.slots.rename({"slot": column, **names}),
                on=["rid", column],
                how="left",
                maintain_order="left",
            )
    return frame


def consolidate_pairs(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None = None,
    *,
    policy: ConsensusPolicy | None = None,
    min_submitted: int | None = None,
    rounds: Iterable[int] | None = None,
) -> Consolidation:
    """Preference pairs (prompt, chosen, rejected + provenance) for DPO and ORPO; one unit = one record."""
    policy = policy or ConsensusPolicy()
    return _pairs(_prepare(records, responses, suggestions, policy, min_submitted, rounds), policy)


def _pairs(inputs: _Inputs, policy: ConsensusPolicy) -> Consolidation:
    scored = _scored(inputs, policy, ("rating", "ranking"))
    kept_scored = _with_record(
        _in_order(scored.filter(pl.col("reason").is_null()), inputs),
        inputs,
        ("chosen", "chosen_"),
        ("rejected", "rejected_"),
    ).select(
        *(["annotators"] if inputs.annotators else []),  # _finish puts the columns in schema order
        prompt="prompt",
        chosen="chosen_text",
        rejected="rejected_text",
        prompt_id="prompt_id",
        record_id="record_id",
        rejected_record_id="record_id",
        round="round",
        chosen_model="chosen_model",
        rejected_model="rejected_model",
        chosen_score="chosen_score",
        rejected_score="rejected_score",
        margin="margin",
        n_annotators="n_annotators",
        agreement="agreement",
        source="source",
    )
    binary = _binary(inputs, policy)
    pairs, binary_dropped = _pair_binary(binary.filter(pl.col("reason").is_null()), inputs)
    frame = _finish(
        [kept_scored, pairs],
        PAIRS_SCHEMA,
        ["prompt_id", "record_id", "rejected_record_id"],
        inputs,
        ordered=(True, False),
    )
    dropped = _counts(
        inputs.records.select("reason", weight=pl.lit(1)),
        scored.select("reason", weight=pl.lit(1)),
        binary.select("reason", weight=pl.lit(1)),
        binary_dropped,
    )
    kept = kept_scored.height + 2 * pairs.height
    return Consolidation(frame, inputs.records.height, kept, dropped, "records")


def _pair_binary(labelled: pl.DataFrame, inputs: _Inputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pair good and bad completions of the same prompt: best good with worst bad, then the next ones.

    Returns the pair rows and the (reason, weight) of what could not be paired.
    """
    if labelled.height == 0:  # nothing to pair (no binary record was labelled)
        schema = {k: v for k, v in PAIRS_SCHEMA.items() if k != "annotators" or inputs.annotators}
        return pl.DataFrame(schema=schema), pl.DataFrame(schema={"reason": pl.String(), "weight": pl.Int64()})
    items = _with_record(
        labelled.select("rid", "label", "share", "agreement", slot=pl.lit(1, dtype=pl.Int64())),
        inputs,
        ("slot", ""),
    )
    rank = pl.int_range(pl.len()).over("prompt_id").alias("rank")
    goods = items.filter(pl.col("label")).sort(
        ["prompt_id", "share", "record_id"], descending=[False, True, False]
    )
    bads = items.filter(~pl.col("label")).sort(["prompt_id", "share", "record_id"])
    matched = goods.with_columns(rank).join(
        bads.with_columns(rank), on=["prompt_id", "rank"], how="inner", suffix="_r", nulls_equal=True
    )
    identical = _strip("text") == _strip("text_r")
    together = pl.concat_list("annotators", "annotators_r").list.unique().list.sort()
    pairs = matched.filter(~identical).select(
        *([together.alias("annotators")] if inputs.annotators else []),
        prompt="prompt",
        chosen="text",
        rejected="text_r",
        prompt_id="prompt_id",
        record_id="record_id",
        rejected_record_id="record_id_r",
        round=pl.max_horizontal("round", "round_r"),
        chosen_model="model",
        rejected_model="model_r",
        chosen_score="share",
        rejected_score="share_r",
        margin=pl.col("share") - pl.col("share_r"),
        n_annotators=pl.min_horizontal("n_annotators", "n_annotators_r"),
        agreement=pl.min_horizontal("agreement", "agreement_r"),
        source=pl.when((pl.col("source") == "judge") | (pl.col("source_r") == "judge"))
        .then(pl.lit("judge"))
        .otherwise(pl.lit("human")),
    )
    n_identical = matched.height - pairs.height
    dropped = pl.DataFrame(
        {"reason": [UNPAIRED, IDENTICAL], "weight": [items.height - 2 * matched.height, 2 * n_identical]},
        schema={"reason": pl.String(), "weight": pl.Int64()},
    )
    return pairs, dropped


def consolidate_unpaired(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None = None,
    *,
    policy: ConsensusPolicy | None = None,
    min_submitted: int | None = None,
    rounds: Iterable[int] | None = None,
) -> Consolidation:
    """KTO examples (prompt, completion, label + provenance); one unit = one response of a record."""
    policy = policy or ConsensusPolicy()
    return _unpaired(_prepare(records, responses, suggestions, policy, min_submitted, rounds), policy)


def _unpaired(inputs: _Inputs, policy: ConsensusPolicy) -> Consolidation:
    recs = inputs.records
    units = (
        pl.when(pl.col("template") == "binary").then(pl.lit(1, dtype=pl.Int64())).otherwise(pl.col("n_slots"))
    )
    total = int(recs.select(units.sum()).item() or 0)
    n_slots = recs.select("rid", weight=units)

    binary = _binary(inputs, policy)
    binary_rows = _with_record(
        _in_order(
            binary.filter(pl.col("reason").is_null()).select(
                "rid", "label", "share", "agreement", slot=pl.lit(1, dtype=pl.Int64())
            ),
            inputs,
        ),
        inputs,
        ("slot", ""),
    ).with_columns(completion="text", score="share")

    rating, rating_dropped = _rating_examples(inputs, policy)

    scored = _scored(inputs, policy, ("ranking",)).join(n_slots, on="rid", how="left")
    kept = scored.filter(pl.col("reason").is_null())
    ranking_rows = _with_record(
        _in_order(
            pl.concat(
                [
                    kept.select("rid", "agreement", slot="chosen", score="chosen_score", label=pl.lit(True)),
                    kept.select(
                        "rid", "agreement", slot="rejected", score="rejected_score", label=pl.lit(False)
                    ),
                ]
            ),
            inputs,
            "slot",
        ),
        inputs,
        ("slot", ""),
    ).with_columns(completion="text")
    frame = _finish(
        [binary_rows, rating, ranking_rows],
        UNPAIRED_SCHEMA,
        ["prompt_id", "record_id", "slot"],
        inputs,
        ordered=(True, True, True),
    )
    dropped = _counts(
        recs.select("reason", weight=units),
        binary.select("reason", weight=pl.lit(1)),
        rating_dropped,
        scored.select("reason", "weight"),
        kept.select(reason=pl.lit(MIDDLE_RANK), weight=pl.col("weight") - 2),
    )
    return Consolidation(frame, total, total - sum(dropped.values()), dropped, "responses")


def _rating_examples(inputs: _Inputs, policy: ConsensusPolicy) -> tuple[pl.DataFrame, pl.DataFrame]:
    """KTO rows of judged rating records, one per rated response, and the (reason, weight) of the others."""
    judged = inputs.records.select("rid", "template", "source").filter(
        (pl.col("template") == "rating") & pl.col("source").is_not_null()
    )
    votes = _where(inputs.votes, pl.col("template") == "rating")
    high, low = policy.kto.desirable_min, policy.kto.undesirable_max
    if inputs.dense and inputs.exact and policy.rating.method == "mean":
        frame = _dense_rating_stats(inputs, _where(votes, pl.col("known")), judged, high, low)
    else:
        stats = _aggregated(
            votes,
            "value",
            policy.rating.method,
            pl.len().cast(pl.Float64).alias("n"),
            (pl.col("value") >= high).sum().cast(pl.Float64).alias("n_high"),
            (pl.col("value") <= low).sum().cast(pl.Float64).alias("n_low"),
        )
        frame = inputs.slots.join(judged.select("rid"), on="rid", how="semi").join(
            stats, on=["rid", "slot"], how="left"
        )
    score = pl.col("score")
    frame = (
        frame.with_columns(
            label=pl.when(score >= high).then(pl.lit(True)).when(score <= low).then(pl.lit(False)),
        )
        .with_columns(
            agreement=pl.when(pl.col("label"))
            .then(pl.col("n_high") / pl.col("n"))
            .otherwise(pl.col("n_low") / pl.col("n")),
        )
        .with_columns(source=inputs.records.get_column("source").gather(frame.get_column("rid")))
        .with_columns(agreement=pl.when(pl.col("source") == "human").then(pl.col("agreement")))
    )
    reason = (
        pl.when(pl.col("n").is_null())
        .then(pl.lit(UNRATED))
        .when(pl.col("label").is_null())
        .then(pl.lit(BETWEEN_THRESHOLDS))
        .when(_strip("response") == "")
        .then(pl.lit(UNRATED))
        .when(_gate(pl.col("agreement"), policy))
        .then(pl.lit(LOW_AGREEMENT))
        .otherwise(pl.lit(None, dtype=pl.String()))
    )
    frame = frame.with_columns(reason=reason)
    # The columns are picked before filtering, so that no text is copied by the filter.
    kept = frame.select("rid", "slot", "label", "score", "agreement", "reason").filter(
        pl.col("reason").is_null()
    )
    rows = _with_record(
        _in_order(kept.drop("reason"), inputs, "slot"),
        inputs,
        ("slot", ""),
    ).with_columns(completion="text")
    return rows, frame.select("reason", weight=pl.lit(1))


_KNOWN_RATINGS = "known rating votes"


def _dense_rating_stats(
    inputs: _Inputs, votes: pl.DataFrame, judged: pl.DataFrame, high: float, low: float
) -> pl.DataFrame:
    """The slots of the judged records with n, score (mean), n_high and n_low of their known votes."""
    import numpy as np

    rows = _slot_rows(inputs, votes)
    value = votes.get_column("value").to_numpy()
    counts, total = _slot_sums(inputs, votes, "value", _KNOWN_RATINGS)
    size = inputs.slots.height
    n = counts.astype(np.float64)
    stats = pl.DataFrame(
        {
            "score": total,
            "n": n,
            "n_high": np.bincount(rows, weights=value >= high, minlength=size),
            "n_low": np.bincount(rows, weights=value <= low, minlength=size),
        }
    )
    rated = pl.col("n") > 0
    stats = stats.with_columns(
        pl.when(rated).then(pl.col("score") / pl.col("n")).alias("score"),
        *(pl.when(rated).then(pl.col(c)).alias(c) for c in ("n", "n_high", "n_low")),
    )
    chosen = np.zeros(inputs.records.height, dtype=bool)
    chosen[judged.get_column("rid").to_numpy()] = True
    keep = pl.Series(chosen[inputs.slots.get_column("rid").to_numpy()])
    return _where(pl.concat([inputs.slots, stats], how="horizontal"), keep)


CONSOLIDATIONS = {"pairs": _pairs, "unpaired": _unpaired}


def consolidate(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None = None,
    *,
    kinds: Iterable[str] = ("pairs", "unpaired"),
    policy: ConsensusPolicy | None = None,
    min_submitted: int | None = None,
    rounds: Iterable[int] | None = None,
    annotators: bool = True,
) -> dict[str, Consolidation]:
    """Several consolidations ('pairs', 'unpaired') of one snapshot, reading its votes once.

    `annotators=False` leaves the `annotators` column out of the frames (for exports that omit it).
    """
    policy = policy or ConsensusPolicy()
    inputs = _prepare(records, responses, suggestions, policy, min_submitted, rounds, annotators)
    wanted = list(dict.fromkeys(kinds))
    if len(wanted) < 2:
        return {kind: CONSOLIDATIONS[kind](inputs, policy) for kind in wanted}
    # Side by side: each is a chain of polars and numpy steps that release the GIL but use one core for
    # much of the time, so two chains keep both cores of a small machine busier than one after the other.
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        running = {kind: pool.submit(CONSOLIDATIONS[kind], inputs, policy) for kind in wanted}
        return {kind: future.result() for kind, future in running.items()}
