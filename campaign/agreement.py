"""Agreement statistics: pure functions over long-format polars frames.

A long frame has one row per judgement: the unit judged, the annotator and the value. Missing
judgements are simply absent rows (or null values). Every figure comes back as a `Statistic` that
carries the number of units it used; with too little data its value is None and its note says
"not enough data" rather than giving a misleading number.

Krippendorff's alpha comes from the `krippendorff` package and Kendall's W uses scipy's ranks and
chi-squared distribution. Fleiss' and Cohen's kappa are short numpy formulas (neither is in scipy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, get_args

import numpy as np
import numpy.typing as npt
import polars as pl

from campaign.errors import InputError, NotFound, UsageError
from campaign.templates import TEMPLATE_NAMES

Level = Literal["nominal", "ordinal", "interval", "ratio"]
Weights = Literal["linear", "quadratic"]
LEVELS: tuple[str, ...] = get_args(Level)
STATISTICS: tuple[str, ...] = ("alpha", "fleiss", "cohen", "cohen-linear", "cohen-quadratic", "kendall-w")
READERS: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
NOT_ENOUGH_DATA = "not enough data"
NOT_APPLICABLE = "not applicable"
RESPONSE_COLUMNS: tuple[str, ...] = ("record_id", "question", "slot", "value", "annotator", "status")
SUGGESTION_COLUMNS: tuple[str, ...] = ("record_id", "question", "slot", "value", "agent")
_NULL_STRINGS = ["", "NA", "NaN", "nan", "null"]
# krippendorff builds a units x values x values float array; past this many cells it would need GBs.
MAX_ALPHA_CELLS = 200_000_000
# The name each statistic is shown under; Krippendorff's alpha adds its level, which changes the figure.
STATISTIC_LABELS: dict[str, str] = {
    "alpha": "Krippendorff's α",
    "fleiss": "Fleiss' κ",
    "cohen": "Cohen's κ",
    "cohen-linear": "Cohen's κ (linear)",
    "cohen-quadratic": "Cohen's κ (quadratic)",
    "kappa-vs-consensus": "Cohen's κ vs consensus",
    "kendall-w": "Kendall's W",
    "kendall-w-mean": "Kendall's W (mean)",
    "spearman": "Spearman's ρ",
    "spearman-vs-consensus": "Spearman's ρ vs consensus",
    "kendall-tau": "Kendall's τ-b",
}
# The keys of Statistic.to_dict() that are fields (or derived from them); any other key is a detail.
_STATISTIC_KEYS = frozenset(
    ("statistic", "label", "level", "value", "n_units", "n_annotators", "n_values", "note", "reason")
)
_SEP = "\x1f"  # joins key parts into one unit id; cannot appear in ids typed by people


@dataclass(frozen=True)
class Statistic:
    """One agreement figure with the data it rests on; value is None when it cannot be computed."""

    name: str
    level: str
    value: float | None
    n_units: int
    n_annotators: int
    note: str | None = None
    _: KW_ONLY
    n_values: int = 0
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The statistic's name for people, e.g. "Krippendorff's α (ordinal)" or "Fleiss' κ"."""
        label = STATISTIC_LABELS.get(self.name, self.name)
        return f"{label} ({self.level})" if self.name == "alpha" and self.level else label

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: statistic, its label, level, value, counts, note, reason, details."""
        return {
            "statistic": self.name,
            "label": self.label,
            "level": self.level,
            "value": self.value,
            "n_units": self.n_units,
            "n_annotators": self.n_annotators,
            "n_values": self.n_values,
            "note": self.note,
            "reason": self.reason,
            **self.details,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Statistic:
        """The Statistic whose `to_dict()` is `data`: keys beyond the named fields are its details."""
        return cls(
            data["statistic"],
            data["level"],
            data["value"],
            data["n_units"],
            data["n_annotators"],
            data["note"],
            n_values=data["n_values"],
            reason=data["reason"],
            details={key: value for key, value in data.items() if key not in _STATISTIC_KEYS},
        )


class TemplateAgreement(TypedDict):
    """The statistics of one template's questions: pooled, per question, and Fleiss or Kendall's W."""

    overall: Statistic
    per_question: dict[str, Statistic]
    fleiss: NotRequired[Statistic]  # binary
    kendall_w: NotRequired[Statistic]  # ranking


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's kappa between two annotators over the units they share."""

    annotator_a: str
    annotator_b: str
    statistic: Statistic

    def to_dict(self) -> dict[str, Any]:
        """The statistic's dict, after the two annotators."""
        return {"annotator_a": self.annotator_a, "annotator_b": self.annotator_b, **self.statistic.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairAgreement:
        """The PairAgreement whose `to_dict()` is `data`."""
        stat = {key: value for key, value in data.items() if key not in ("annotator_a", "annotator_b")}
        return cls(data["annotator_a"], data["annotator_b"], Statistic.from_dict(stat))


@dataclass(frozen=True)
class AnnotatorAgreement:
    """One annotator against the leave-one-out consensus of the others."""

    annotator: str
    statistic: Statistic
    threshold: float
    flagged: bool  # the value is below the threshold

    def to_dict(self) -> dict[str, Any]:
        """The statistic's dict, between the annotator and the threshold and flag."""
        stat = self.statistic.to_dict()
        return {"annotator": self.annotator, **stat, "threshold": self.threshold, "flagged": self.flagged}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnnotatorAgreement:
        """The AnnotatorAgreement whose `to_dict()` is `data`."""
        stat = {key: value for key, value in data.items() if key not in ("annotator", "threshold", "flagged")}
        return cls(data["annotator"], Statistic.from_dict(stat), data["threshold"], data["flagged"])


@dataclass(frozen=True)
class JudgeAgreement:
    """One suggestion agent against the human consensus; correlations for numeric levels only."""

    agent: str
    alpha: Statistic
    spearman: Statistic | None = None
    kendall_tau: Statistic | None = None

    def to_dict(self) -> dict[str, Any]:
        """agent and alpha, then spearman and kendall_tau when computed."""
        entry: dict[str, Any] = {"agent": self.agent, "alpha": self.alpha.to_dict()}
        if self.spearman is not None:
            entry["spearman"] = self.spearman.to_dict()
        if self.kendall_tau is not None:
            entry["kendall_tau"] = self.kendall_tau.to_dict()
        return entry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgeAgreement:
        """The JudgeAgreement whose `to_dict()` is `data`."""
        return cls(
            data["agent"],
            Statistic.from_dict(data["alpha"]),
            _optional_statistic(data.get("spearman")),
            _optional_statistic(data.get("kendall_tau")),
        )


@dataclass(frozen=True)
class CampaignAgreement:
    """Agreement of a campaign snapshot; `to_dict()` gives the schema in `campaign_agreement`."""

    template: str
    level: str
    n_records: int
    n_annotators: int
    n_responses: int
    overall: Statistic
    per_question: dict[str, Statistic]
    fleiss: Statistic | None
    kendall_w: Statistic | None
    pairwise: list[PairAgreement]
    annotators: list[AnnotatorAgreement]
    judge: list[JudgeAgreement]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the documented schema."""
        return {
            "template": self.template,
            "level": self.level,
            "n_records": self.n_records,
            "n_annotators": self.n_annotators,
            "n_responses": self.n_responses,
            "overall": self.overall.to_dict(),
            "per_question": {q: s.to_dict() for q, s in self.per_question.items()},
            "fleiss": self.fleiss.to_dict() if self.fleiss is not None else None,
            "kendall_w": self.kendall_w.to_dict() if self.kendall_w is not None else None,
            "pairwise": [pair.to_dict() for pair in self.pairwise],
            "annotators": [entry.to_dict() for entry in self.annotators],
            "judge": [entry.to_dict() for entry in self.judge],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignAgreement:
        """The CampaignAgreement whose `to_dict()` is `data` (the JSON read back)."""
        return cls(
            template=data["template"],
            level=data["level"],
            n_records=data["n_records"],
            n_annotators=data["n_annotators"],
            n_responses=data["n_responses"],
            overall=Statistic.from_dict(data["overall"]),
            per_question={q: Statistic.from_dict(s) for q, s in data["per_question"].items()},
            fleiss=_optional_statistic(data["fleiss"]),
            kendall_w=_optional_statistic(data["kendall_w"]),
            pairwise=[PairAgreement.from_dict(entry) for entry in data["pairwise"]],
            annotators=[AnnotatorAgreement.from_dict(entry) for entry in data["annotators"]],
            judge=[JudgeAgreement.from_dict(entry) for entry in data["judge"]],
        )


def _optional_statistic(data: Mapping[str, Any] | None) -> Statistic | None:
    return None if data is None else Statistic.from_dict(data)


def not_enough_data(
    name: str, level: str, reason: str, *, n_units: int = 0, n_annotators: int = 0, n_values: int = 0
) -> Statistic:
    """A Statistic without a value because the data cannot support one."""
    return Statistic(
        name, level, None, n_units, n_annotators, NOT_ENOUGH_DATA, n_values=n_values, reason=reason
    )


# --------------------------------------------------------------------------------------------
# Reading and encoding long-format data


def read_long(
    path: str | Path, *, unit_col: str = "unit", annotator_col: str = "annotator", value_col: str = "value"
) -> pl.DataFrame:
    """Read a csv, jsonl or parquet file with unit, annotator and value columns (picked by extension)."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(READERS))
        msg = f"{path}: unknown file type {path.suffix or '(no extension)'!r}; use one of {known}."
        raise UsageError(msg)
    if not path.is_file():
        msg = f"{path}: no such file."
        raise NotFound(msg)
    try:
        if kind == "csv":
            frame = pl.read_csv(path, infer_schema=False, null_values=_NULL_STRINGS)
        elif kind == "jsonl":
            frame = pl.read_ndjson(path)
        else:
            frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path}: cannot read as {kind}: {first_line}"
        if "supertype" in first_line:
            msg = (
                f"{path}: a column mixes lists or objects with plain values ({first_line}); "
                "each row needs one number or label per column."
            )
        raise InputError(msg) from exc
    if frame.height == 0:
        msg = f"{path}: the file has no rows; it needs one row per (unit, annotator, value)."
        raise InputError(msg)
    _require_columns(frame, (unit_col, annotator_col, value_col), where=str(path), flag_hint=True)
    return frame.select(unit_col, annotator_col, value_col)


def _require_columns(
    frame: pl.DataFrame, columns: Sequence[str], *, where: str, flag_hint: bool = False
) -> None:
    """Raise InputError naming the columns a frame lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(frame.columns) or "none"
        hint = " Rename them with --unit-col, --annotator-col and --value-col." if flag_hint else ""
        msg = f"{where}: missing column(s) {', '.join(missing)} (columns present: {have}).{hint}"
        raise InputError(msg)


def _clean_strings(expr: pl.Expr) -> pl.Expr:
    """Trim whitespace and JSON string quotes, as snapshot values may be JSON-encoded."""
    return expr.str.strip_chars().str.replace(r'^"(.*)"$', "${1}")


def parse_values(values: pl.Series, *, level: Level) -> pl.Series:
    """Values as Float64 (numbers, or nominal values that are all numeric) or String (other nominal)."""
    dtype = values.dtype
    if dtype == pl.Null:  # every value is missing
        return values.cast(pl.Float64)
    if dtype.is_numeric():
        numeric = values.cast(pl.Float64)
        return _finite(numeric.fill_nan(None) if dtype.is_float() else numeric, values)
    if dtype == pl.Boolean:
        return values.cast(pl.String) if level == "nominal" else values.cast(pl.Float64)
    if dtype not in (pl.String, pl.Categorical, pl.Enum):
        msg = f"column {values.name!r} holds {dtype} values; it needs numbers or labels, one per row."
        raise InputError(msg)
    text = values.cast(pl.String).to_frame("v").select(_clean_strings(pl.col("v"))).to_series()
    text = text.set(text == "", None)
    numeric = text.cast(pl.Float64, strict=False).fill_nan(None)
    bad = text.is_not_null() & numeric.is_null()
    if not bad.any():
        return _finite(numeric, text.alias(values.name)).alias(values.name)
    if level == "nominal":
        return text.alias(values.name)
    row = int(bad.arg_true()[0])
    msg = (
        f"column {values.name!r} has a non-numeric value {text[row]!r} (row {row + 1}); "
        f"--level {level} needs numbers. Use --level nominal for labels."
    )
    raise InputError(msg)


def _finite(numeric: pl.Series, shown: pl.Series) -> pl.Series:
    """Numbers with no infinity: an infinite rating is a data error, not a value to average."""
    infinite = numeric.is_infinite().fill_null(False)
    if infinite.any():
        row = int(infinite.arg_true()[0])
        msg = (
            f"column {shown.name!r} has an infinite value {shown[row]!r} (row {row + 1}); "
            "agreement needs finite numbers. Fix or remove that row."
        )
        raise InputError(msg)
    return numeric


@dataclass(frozen=True)
class _Coded:
    """Long data as integer codes: unit, annotator and value indexes into sorted label arrays."""

    unit: npt.NDArray[np.int64]
    annotator: npt.NDArray[np.int64]
    value: npt.NDArray[np.int64]
    units: list[str]
    annotators: list[str]
    domain: npt.NDArray[Any]
    numeric: bool


def _encode(
    frame: pl.DataFrame, *, level: Level, unit_col: str, annotator_col: str, value_col: str
) -> _Coded:
    """Check and encode a long frame; duplicate (unit, annotator) pairs and null ids are errors."""
    _require_columns(frame, (unit_col, annotator_col, value_col), where="agreement data", flag_hint=True)
    values = parse_values(frame.get_column(value_col), level=level)
    df = pl.DataFrame(
        {
            "u": frame.get_column(unit_col).cast(pl.String),
            "a": frame.get_column(annotator_col).cast(pl.String),
            "v": values,
        }
    ).with_row_index("row", offset=1)
    for col, name in (("u", unit_col), ("a", annotator_col)):
        nulls = df.filter(pl.col(col).is_null())
        if nulls.height:
            msg = f"column {name!r} is empty in {nulls.height} row(s), first at row {nulls['row'][0]}."
            raise InputError(msg)
    df = df.filter(pl.col("v").is_not_null())
    df = df.with_columns(
        ui=pl.col("u").rank("dense").cast(pl.Int64) - 1,
        ai=pl.col("a").rank("dense").cast(pl.Int64) - 1,
        vi=pl.col("v").rank("dense").cast(pl.Int64) - 1,
    )
    units = df["u"].unique().sort()
    annotators = df["a"].unique().sort()
    # Duplicates checked on integer codes: far cheaper than on (unit, annotator) string pairs.
    dup = df.filter((pl.col("ui") * annotators.len() + pl.col("ai")).is_duplicated())
    if dup.height:
        msg = (
            f"annotator {dup['a'][0]!r} has {dup.filter(pl.col('u') == dup['u'][0]).height} values for "
            f"unit {dup['u'][0]!r} (rows {', '.join(str(r) for r in dup['row'].head(2))}); "
            "keep one value per (unit, annotator)."
        )
        raise InputError(msg)
    return _Coded(
        unit=df["ui"].to_numpy(),
        annotator=df["ai"].to_numpy(),
        value=df["vi"].to_numpy(),
        units=units.to_list(),
        annotators=annotators.to_list(),
        domain=df["v"].unique().sort().to_numpy(),
        numeric=df["v"].dtype == pl.Float64,
    )


def _value_counts(coded: _Coded) -> npt.NDArray[np.int64]:
    """Units x values matrix: how many annotators gave each value to each unit."""
    n_units, n_values = len(coded.units), len(coded.domain)
    flat = np.bincount(coded.unit * n_values + coded.value, minlength=n_units * n_values)
    return flat.reshape(n_units, n_values).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha


def alpha(
    frame: pl.DataFrame,
    *,
    level: Level = "nominal",
    unit_col: str = "unit",
    annotator_col: str = "annotator",
    value_col: str = "value",
) -> Statistic:
    """Krippendorff's alpha at a level of measurement; missing values are allowed."""
    _check_level(level)
    coded = _encode(frame, level=level, unit_col=unit_col, annotator_col=annotator_col, value_col=value_col)
    return _alpha_coded(coded, level)


def _alpha_coded(coded: _Coded, level: Level, name: str = "alpha") -> Statistic:
    """Alpha from encoded data, via value counts (equivalent to the reliability matrix, and O(n))."""
    import krippendorff

    counts = _value_counts(coded)
    pairable = counts.sum(axis=1) >= 2
    counts = counts[pairable]
    n_units, n_values = int(pairable.sum()), int(counts.sum())
    n_annotators = int(np.unique(coded.annotator[pairable[coded.unit]]).size)
    if n_units < 2:
        reason = f"{n_units} unit(s) have 2 or more values; alpha needs at least 2 such units"
        return not_enough_data(
            name, level, reason, n_units=n_units, n_annotators=n_annotators, n_values=n_values
        )
    used = counts.sum(axis=0) > 0
    counts, domain = counts[:, used], coded.domain[used]
    if domain.size < 2:
        reason = f"every value is {domain[0]!r}, so there is no variation and alpha is undefined"
        return not_enough_data(
            name, level, reason, n_units=n_units, n_annotators=n_annotators, n_values=n_values
        )
    if n_units * domain.size**2 > MAX_ALPHA_CELLS:
        msg = (
            f"alpha over {n_units} units with {domain.size} distinct values needs too much memory; "
            "round the values to fewer distinct ones (for example to whole numbers)."
        )
        raise InputError(msg)
    value_domain = domain.astype(np.float64) if coded.numeric else np.arange(domain.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(
            krippendorff.alpha(value_counts=counts, value_domain=value_domain, level_of_measurement=level)
        )
    if not math.isfinite(value):
        reason = "the values show no variation between units, so alpha is undefined"
        return not_enough_data(
            name, level, reason, n_units=n_units, n_annotators=n_annotators, n_values=n_values
        )
    return Statistic(name, level, value, n_units, n_annotators, n_values=n_values)


# --------------------------------------------------------------------------------------------
# Fleiss' kappa


def fleiss_kappa(
    frame: pl.DataFrame, *, unit_col: str = "unit", annotator_col: str = "annotator", value_col: str = "value"
) -> Statistic:
    """Fleiss' (1971) kappa; every unit must have the same number of ratings."""
    coded = _encode(
        frame, level="nominal", unit_col=unit_col, annotator_col=annotator_col, value_col=value_col
    )
    counts = _value_counts(coded)
    per_unit = counts.sum(axis=1)
    if per_unit.size and per_unit.min() != per_unit.max():
        lo, hi = int(per_unit.min()), int(per_unit.max())
        example = coded.units[int(np.argmin(per_unit))]
        msg = (
            f"Fleiss' kappa needs the same number of ratings for every unit; units have between {lo} "
            f"and {hi} (unit {example!r} has {lo}). Use --statistic alpha, which allows missing ratings."
        )
        raise InputError(msg)
    return replace(fleiss_kappa_counts(counts), n_annotators=len(coded.annotators))


def fleiss_kappa_counts(counts: npt.ArrayLike) -> Statistic:
    """Fleiss' kappa from a units x categories count matrix whose rows all have the same sum."""
    table = np.asarray(counts, dtype=np.float64)
    name, level = "fleiss", "nominal"
    if table.ndim != 2:
        msg = "Fleiss' kappa needs a units x categories count matrix."
        raise InputError(msg)
    n_units = table.shape[0]
    raters = table.sum(axis=1)
    if n_units and raters.min() != raters.max():
        msg = "Fleiss' kappa needs the same number of ratings in every row of the count matrix."
        raise InputError(msg)
    n = float(raters[0]) if n_units else 0.0
    n_values = int(table.sum())
    if n_units < 2 or n < 2:
        reason = f"{n_units} unit(s) with {n:g} rating(s) each; Fleiss' kappa needs 2 units and 2 ratings"
        return not_enough_data(name, level, reason, n_units=n_units, n_annotators=int(n), n_values=n_values)
    p_i = ((table**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(p_i.mean())
    p_j = table.sum(axis=0) / (n_units * n)
    p_e = float((p_j**2).sum())
    details = {"p_bar": p_bar, "p_e": p_e, "raters_per_unit": int(n)}
    if p_e >= 1.0:
        reason = "every rating is the same category, so chance agreement is 1 and kappa is undefined"
        return Statistic(
            name,
            level,
            None,
            n_units,
            int(n),
            NOT_ENOUGH_DATA,
            n_values=n_values,
            reason=reason,
            details=details,
        )
    kappa = (p_bar - p_e) / (1.0 - p_e)
    return Statistic(name, level, kappa, n_units, int(n), n_values=n_values, details=details)


# --------------------------------------------------------------------------------------------
# Cohen's kappa


def cohen_kappa(
    frame: pl.DataFrame,
    *,
    weights: Weights | None = None,
    level: Level | None = None,
    unit_col: str = "unit",
    annotator_col: str = "annotator",
    value_col: str = "value",
) -> Statistic:
    """Cohen's kappa between exactly two annotators on the units both rated (weighted as in sklearn)."""
    level = level or ("nominal" if weights is None else "ordinal")
    _check_level(level)
    if weights is not None and level == "nominal":
        msg = f"{weights}-weighted kappa needs ordered values; use --level ordinal, or --statistic cohen."
        raise UsageError(msg)
    coded = _encode(frame, level=level, unit_col=unit_col, annotator_col=annotator_col, value_col=value_col)
    if len(coded.annotators) != 2:
        shown = ", ".join(repr(a) for a in coded.annotators[:5])
        more = ", ..." if len(coded.annotators) > 5 else ""
        msg = (
            f"Cohen's kappa compares exactly 2 annotators; the data has {len(coded.annotators)} "
            f"({shown}{more}). Use --statistic alpha or fleiss for more annotators."
        )
        raise InputError(msg)
    matrix = np.full((2, len(coded.units)), -1, dtype=np.int64)
    matrix[coded.annotator, coded.unit] = coded.value
    both = (matrix >= 0).all(axis=0)
    return cohen_kappa_codes(matrix[0, both], matrix[1, both], weights=weights, level=level)


def _kappa_name(weights: Weights | None) -> str:
    """The statistic name used on the command line for a weighting."""
    return "cohen" if weights is None else f"cohen-{weights}"


def cohen_kappa_codes(
    a: npt.ArrayLike, b: npt.ArrayLike, *, weights: Weights | None = None, level: str = "nominal"
) -> Statistic:
    """Cohen's kappa for two aligned label arrays; labels are ordered by sort order, as sklearn does."""
    name = _kappa_name(weights)
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.ndim != 1:
        msg = "Cohen's kappa needs two label arrays of the same length."
        raise InputError(msg)
    n = int(x.size)
    if n < 2:
        reason = f"{n} unit(s) rated by both annotators; Cohen's kappa needs at least 2"
        return not_enough_data(name, level, reason, n_units=n, n_annotators=2, n_values=2 * n)
    labels, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
    table = np.zeros((labels.size, labels.size), dtype=np.float64)
    np.add.at(table, (inverse[:n], inverse[n:]), 1.0)
    return cohen_kappa_table(table, weights=weights, level=level)


def cohen_kappa_table(
    table: npt.ArrayLike, *, weights: Weights | None = None, level: str = "nominal"
) -> Statistic:
    """Cohen's kappa from a square contingency table (rows: first annotator, columns: second)."""
    name = _kappa_name(weights)
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        msg = "Cohen's kappa needs a square contingency table."
        raise InputError(msg)
    # like sklearn, keep only labels that either annotator used; weights follow their sorted positions
    used = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    counts = counts[np.ix_(used, used)]
    n, k = int(counts.sum()), int(used.sum())
    if n < 2:
        reason = f"{n} unit(s) rated by both annotators; Cohen's kappa needs at least 2"
        return not_enough_data(name, level, reason, n_units=n, n_annotators=2, n_values=2 * n)
    observed = counts / n
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    if weights is None:
        w = 1.0 - np.eye(k)
    else:
        diff = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(np.float64)
        w = diff if weights == "linear" else diff**2
    p_o, p_e = float(np.trace(observed)), float(np.trace(expected))
    details = {"p_o": p_o, "p_e": p_e}
    disagreement_expected = float((w * expected).sum())
    if disagreement_expected <= 0.0:
        reason = "both annotators gave one and the same value throughout, so kappa is undefined"
        return Statistic(
            name, level, None, n, 2, NOT_ENOUGH_DATA, n_values=2 * n, reason=reason, details=details
        )
    value = 1.0 - float((w * observed).sum()) / disagreement_expected
    return Statistic(name, level, value, n, 2, n_values=2 * n, details=details)


# --------------------------------------------------------------------------------------------
# Kendall's W


def kendall_w(
    frame: pl.DataFrame, *, unit_col: str = "unit", annotator_col: str = "annotator", value_col: str = "value"
) -> Statistic:
    """Kendall's W (tie-corrected) for annotators who each rank or score every unit."""
    coded = _encode(
        frame, level="ordinal", unit_col=unit_col, annotator_col=annotator_col, value_col=value_col
    )
    n_units, n_raters = len(coded.units), len(coded.annotators)
    per_annotator = np.bincount(coded.annotator, minlength=n_raters)
    if n_units and (per_annotator < n_units).any():
        worst = int(np.argmin(per_annotator))
        msg = (
            f"Kendall's W needs every annotator to rank every unit; annotator {coded.annotators[worst]!r} "
            f"ranked {int(per_annotator[worst])} of {n_units} units. Drop incomplete annotators, "
            "or use --statistic alpha --level ordinal, which allows missing values."
        )
        raise InputError(msg)
    long = pl.DataFrame(
        {
            "g": np.zeros(coded.unit.size, dtype=np.int64),
            "u": coded.unit,
            "a": coded.annotator,
            "v": coded.domain.astype(np.float64)[coded.value],
        }
    )
    rows = _kendall_w_groups(long)
    if rows.height == 0:
        return not_enough_data("kendall-w", "ordinal", "no rankings", n_units=n_units, n_annotators=n_raters)
    return _kendall_w_statistic(rows.row(0, named=True))


def _kendall_w_groups(long: pl.DataFrame) -> pl.DataFrame:
    """Tie-corrected W per group g of complete rankings: columns g, n, m, n_values, w, chi2, df, p_value."""
    from scipy import stats

    ranked = long.with_columns(r=pl.col("v").rank("average").over("g", "a"))
    ties = (
        long.group_by("g", "a", "v")
        .agg(t=pl.len().cast(pl.Float64))
        .group_by("g")
        .agg(ties=(pl.col("t") ** 3 - pl.col("t")).sum())
    )
    rank_sums = ranked.group_by("g", "u").agg(rank_sum=pl.col("r").sum())
    spread = rank_sums.group_by("g").agg(
        s=((pl.col("rank_sum") - pl.col("rank_sum").mean()) ** 2).sum(), n=pl.len().cast(pl.Float64)
    )
    raters = long.group_by("g").agg(m=pl.col("a").n_unique().cast(pl.Float64), n_values=pl.len())
    out = spread.join(raters, on="g").join(ties, on="g", how="left").fill_null(0.0)
    out = out.with_columns(
        denominator=pl.col("m") ** 2 * (pl.col("n") ** 3 - pl.col("n")) - pl.col("m") * pl.col("ties")
    ).with_columns(
        w=pl.when((pl.col("denominator") > 0) & (pl.col("m") >= 2) & (pl.col("n") >= 2))
        .then(12.0 * pl.col("s") / pl.col("denominator"))
        .otherwise(None)
    )
    out = out.with_columns(chi2=pl.col("m") * (pl.col("n") - 1) * pl.col("w"), df=pl.col("n") - 1)
    chi2 = out["chi2"].to_numpy()
    p_value = np.where(np.isnan(chi2), np.nan, stats.chi2.sf(np.nan_to_num(chi2), out["df"].to_numpy()))
    return out.with_columns(p_value=pl.Series(p_value).fill_nan(None)).sort("g")


def _kendall_w_statistic(row: dict[str, Any]) -> Statistic:
    """One group's W as a Statistic with chi2, df and p-value."""
    n, m, n_values = int(row["n"]), int(row["m"]), int(row["n_values"])
    if row["w"] is None:
        if m < 2 or n < 2:
            reason = f"{m} annotator(s) ranked {n} unit(s); Kendall's W needs at least 2 of each"
        else:
            reason = "every annotator tied every unit, so W is undefined"
        return not_enough_data("kendall-w", "ordinal", reason, n_units=n, n_annotators=m, n_values=n_values)
    details = {"chi2": float(row["chi2"]), "df": int(row["df"]), "p_value": float(row["p_value"])}
    return Statistic("kendall-w", "ordinal", float(row["w"]), n, m, n_values=n_values, details=details)


# --------------------------------------------------------------------------------------------
# The command-line entry: one statistic on one long frame


def default_level(statistic: str) -> Level:
    """The level of measurement a statistic assumes when none is given."""
    return "ordinal" if statistic in ("cohen-linear", "cohen-quadratic", "kendall-w") else "nominal"


def compute(
    frame: pl.DataFrame,
    *,
    statistic: str,
    level: Level | None = None,
    unit_col: str = "unit",
    annotator_col: str = "annotator",
    value_col: str = "value",
) -> Statistic:
    """Compute one named statistic (see STATISTICS) on a long frame."""
    if statistic not in STATISTICS:
        msg = f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}."
        raise UsageError(msg)
    chosen: Level = level or default_level(statistic)
    _check_level(chosen)
    columns = {"unit_col": unit_col, "annotator_col": annotator_col, "value_col": value_col}
    if statistic == "alpha":
        return alpha(frame, level=chosen, **columns)
    if statistic == "fleiss":
        if chosen != "nominal":
            msg = f"Fleiss' kappa is for nominal data; drop --level {chosen}, or use --statistic alpha."
            raise UsageError(msg)
        return fleiss_kappa(frame, **columns)
    if statistic == "kendall-w":
        if chosen not in ("ordinal", "interval", "ratio"):
            msg = "Kendall's W ranks the values, so it needs --level ordinal (numeric values)."
            raise UsageError(msg)
        return kendall_w(frame, **columns)
    weights: Weights | None = None
    if statistic == "cohen-linear":
        weights = "linear"
    elif statistic == "cohen-quadratic":
        weights = "quadratic"
    return cohen_kappa(frame, weights=weights, level=chosen, **columns)


def _check_level(level: str) -> None:
    """Raise UsageError for an unknown level of measurement."""
    if level not in LEVELS:
        msg = f"unknown level of measurement {level!r}; choose one of {', '.join(LEVELS)}."
        raise UsageError(msg)


# --------------------------------------------------------------------------------------------
# Per-annotator views on a long frame


def pairwise_cohen(
    frame: pl.DataFrame,
    *,
    level: Level = "nominal",
    min_shared: int = 5,
    unit_col: str = "unit",
    annotator_col: str = "annotator",
    value_col: str = "value",
) -> list[PairAgreement]:
    """Cohen's kappa for every annotator pair sharing >= min_shared units (quadratic unless nominal)."""
    _check_level(level)
    coded = _encode(frame, level=level, unit_col=unit_col, annotator_col=annotator_col, value_col=value_col)
    weights: Weights | None = None if level == "nominal" else "quadratic"
    long = pl.DataFrame({"u": coded.unit, "a": coded.annotator, "v": coded.value})
    # one row per (pair, value, value) with its count: the pairs' contingency tables, sparsely
    cells = (
        long.join(long, on="u", suffix="_b")
        .filter(pl.col("a") < pl.col("a_b"))
        .group_by("a", "a_b", "v", "v_b")
        .agg(count=pl.len())
        .filter(pl.col("count").sum().over("a", "a_b") >= min_shared)
        .sort("a", "a_b")
    )
    k = coded.domain.size
    results = []
    for (a, b), group in cells.group_by("a", "a_b", maintain_order=True):
        table = np.zeros((k, k), dtype=np.float64)
        table[group["v"].to_numpy(), group["v_b"].to_numpy()] = group["count"].to_numpy()
        stat = cohen_kappa_table(table, weights=weights, level=level)
        annotator_a, annotator_b = coded.annotators[int(a)], coded.annotators[int(b)]
        results.append(PairAgreement(annotator_a, annotator_b, stat))
    return results


def annotator_agreement(
    frame: pl.DataFrame,
    *,
    level: Level = "nominal",
    threshold: float = 0.4,
    min_units: int = 5,
    unit_col: str = "unit",
    annotator_col: str = "annotator",
    value_col: str = "value",
) -> list[AnnotatorAgreement]:
    """Each annotator against the leave-one-out consensus of the others, flagged below threshold.

    Numeric levels use Spearman's rho between the annotator's values and the others' mean; nominal
    uses Cohen's kappa against the others' majority (units where the others tie are skipped).
    """
    _check_level(level)
    coded = _encode(frame, level=level, unit_col=unit_col, annotator_col=annotator_col, value_col=value_col)
    n_units = len(coded.units)
    per_unit = np.bincount(coded.unit, minlength=n_units)
    shared = per_unit[coded.unit] >= 2
    own_all = coded.value
    if level == "nominal":
        counts = _value_counts(coded)
        others = counts[coded.unit] - np.eye(coded.domain.size, dtype=np.int64)[own_all]
        top = others.max(axis=1)
        unique_top = (others == top[:, None]).sum(axis=1) == 1
        keep = shared & unique_top
        consensus = others.argmax(axis=1)
    else:
        numbers = coded.domain.astype(np.float64)[own_all]
        sums = np.bincount(coded.unit, weights=numbers, minlength=n_units)
        keep = shared
        with np.errstate(divide="ignore", invalid="ignore"):
            consensus = (sums[coded.unit] - numbers) / (per_unit[coded.unit] - 1)
    own_values = own_all if level == "nominal" else coded.domain.astype(np.float64)[own_all]
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(coded.annotator[rows], kind="stable")]
    bounds = np.cumsum(np.bincount(coded.annotator[rows], minlength=len(coded.annotators)))[:-1]
    results = []
    for name, mine in zip(coded.annotators, np.split(rows, bounds), strict=True):
        stat = _versus_consensus(own_values[mine], consensus[mine], level=level, min_units=min_units)
        flagged = stat.value is not None and stat.value < threshold
        results.append(AnnotatorAgreement(name, stat, threshold, flagged))
    return results


def _versus_consensus(
    own: npt.NDArray[Any], consensus: npt.NDArray[Any], *, level: str, min_units: int
) -> Statistic:
    """One annotator's agreement with the consensus of the others."""
    n = int(own.size)
    if level == "nominal":
        if n < max(min_units, 2):
            reason = f"{n} unit(s) shared with a clear majority of others; needs {max(min_units, 2)}"
            return not_enough_data(
                "kappa-vs-consensus", level, reason, n_units=n, n_annotators=2, n_values=2 * n
            )
        return replace(cohen_kappa_codes(own, consensus, level=level), name="kappa-vs-consensus")
    return _correlation("spearman-vs-consensus", own, consensus, level=level, min_units=min_units)


def _correlation(
    name: str, x: npt.NDArray[Any], y: npt.NDArray[Any], *, level: str, min_units: int = 3
) -> Statistic:
    """Spearman's rho or Kendall's tau-b between two numeric arrays, None when undefined."""
    from scipy import stats

    n, needed = int(x.size), max(min_units, 3)
    if n < needed:
        reason = f"{n} unit(s) to correlate; needs at least {needed}"
        return not_enough_data(name, level, reason, n_units=n, n_annotators=2, n_values=2 * n)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        reason = "one side gives the same value throughout, so the correlation is undefined"
        return not_enough_data(name, level, reason, n_units=n, n_annotators=2, n_values=2 * n)
    result = stats.kendalltau(x, y) if name.startswith("kendall") else stats.spearmanr(x, y)
    value, p_value = float(result.statistic), float(result.pvalue)
    return Statistic(name, level, value, n, 2, n_values=2 * n, details={"p_value": p_value})


# --------------------------------------------------------------------------------------------
# Campaign snapshots: responses (and suggestions) -> agreement per template


def submitted_responses(responses: pl.DataFrame) -> pl.DataFrame:
    """Submitted rows of a snapshot, one per (record, question, slot, annotator), values unquoted."""
    _require_columns(responses, RESPONSE_COLUMNS, where="responses snapshot")
    frame = responses.filter(pl.col("status") == "submitted")
    if "updated_at" in frame.columns:
        frame = frame.sort("updated_at", nulls_last=False)
    return (
        frame.with_columns(
            pl.col("record_id").cast(pl.String),
            pl.col("question").cast(pl.String),
            pl.col("slot").cast(pl.Int64),
            _clean_strings(pl.col("value").cast(pl.String)),
            pl.col("annotator").cast(pl.String),
        )
        .filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
        .unique(subset=["record_id", "question", "slot", "annotator"], keep="last")
    )


def _long(frame: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """A unit/annotator/value frame whose unit joins the key columns."""
    parts = [pl.col(k).cast(pl.String).fill_null("") for k in keys]
    return frame.select(
        unit=pl.concat_str(parts, separator=_SEP) if len(parts) > 1 else parts[0],
        annotator=pl.col("annotator"),
        value=pl.col("value"),
    )


def rating_agreement(responses: pl.DataFrame) -> TemplateAgreement:
    """Ordinal alpha for rating_* questions: {"overall": pooled over (record, question), "per_question"}."""
    return _rating(submitted_responses(responses))


def _rating(submitted: pl.DataFrame) -> TemplateAgreement:
    """rating_agreement on submitted_responses output."""
    frame = submitted.filter(pl.col("question").str.starts_with("rating_"))
    questions = sorted(frame["question"].unique().to_list(), key=_natural_key)
    per_question = {
        q: _campaign_alpha(_long(frame.filter(pl.col("question") == q), ["record_id"]), level="ordinal")
        for q in questions
    }
    overall = _campaign_alpha(_long(frame, ["record_id", "question"]), level="ordinal")
    return {"overall": overall, "per_question": per_question}


def binary_agreement(responses: pl.DataFrame, *, question: str = "label") -> TemplateAgreement:
    """Nominal alpha for the label question, and Fleiss' kappa when every item has as many raters."""
    return _binary(submitted_responses(responses), question)


def _binary(submitted: pl.DataFrame, question: str) -> TemplateAgreement:
    """binary_agreement on submitted_responses output."""
    frame = submitted.filter(pl.col("question") == question)
    long = _long(frame, ["record_id"])
    overall = _campaign_alpha(long, level="nominal")
    rated = long.filter(pl.len().over("unit") >= 2)  # items with a single vote carry no agreement
    raters = rated.group_by("unit").agg(k=pl.len())["k"].to_numpy()
    if raters.size == 0:
        fleiss = not_enough_data("fleiss", "nominal", "no item has 2 or more submitted ratings")
    elif raters.min() != raters.max():
        reason = (
            f"items have between {int(raters.min())} and {int(raters.max())} submitted ratings; "
            "Fleiss' kappa needs the same number for every item (alpha does not)"
        )
        fleiss = Statistic(
            "fleiss", "nominal", None, int(raters.size), rated["annotator"].n_unique(), NOT_APPLICABLE,
            n_values=int(raters.sum()), reason=reason,
        )  # fmt: skip
    else:
        fleiss = fleiss_kappa(rated)
    return {"overall": overall, "per_question": {question: overall}, "fleiss": fleiss}


def kendall_w_by_record(responses: pl.DataFrame, *, question: str = "ranking") -> pl.DataFrame:
    """Kendall's W per record over its slots: record_id, w, n_slots, n_annotators, chi2, df, p_value.

    Only annotators who ranked every slot of the record count.
    """
    return _kendall_w_by_record(submitted_responses(responses), question)


def _kendall_w_by_record(submitted: pl.DataFrame, question: str) -> pl.DataFrame:
    """kendall_w_by_record on submitted_responses output."""
    frame = submitted.filter(pl.col("question") == question)
    frame = frame.with_columns(v=pl.col("value").cast(pl.Float64, strict=False)).filter(
        pl.col("v").is_not_null()
    )
    frame = frame.filter(
        pl.len().over("record_id", "annotator") == pl.col("slot").n_unique().over("record_id")
    )
    long = frame.select(g=pl.col("record_id"), u=pl.col("slot"), a=pl.col("annotator"), v=pl.col("v"))
    schema = {
        "record_id": pl.String,
        "w": pl.Float64,
        "n_slots": pl.Int64,
        "n_annotators": pl.Int64,
        "chi2": pl.Float64,
        "df": pl.Int64,
        "p_value": pl.Float64,
    }
    if long.height == 0:
        return pl.DataFrame(schema=schema)
    rows = _kendall_w_groups(long)
    return rows.select(
        record_id=pl.col("g"),
        w=pl.col("w"),
        n_slots=pl.col("n").cast(pl.Int64),
        n_annotators=pl.col("m").cast(pl.Int64),
        chi2=pl.col("chi2"),
        df=pl.col("df").cast(pl.Int64),
        p_value=pl.col("p_value"),
    )


def ranking_agreement(responses: pl.DataFrame, *, question: str = "ranking") -> TemplateAgreement:
    """Mean Kendall's W over records and ordinal alpha on rank positions (units = record, slot)."""
    return _ranking(submitted_responses(responses), question)


def _ranking(submitted: pl.DataFrame, question: str) -> TemplateAgreement:
    """ranking_agreement on submitted_responses output."""
    frame = submitted.filter(pl.col("question") == question)
    overall = _campaign_alpha(_long(frame, ["record_id", "slot"]), level="ordinal")
    per_record = _kendall_w_by_record(submitted, question).filter(pl.col("w").is_not_null())
    n_records = per_record.height
    if n_records == 0:
        w = not_enough_data("kendall-w-mean", "ordinal", "no record has 2 or more complete rankings")
    else:
        scores = per_record["w"].to_numpy()
        details = {
            "min": float(scores.min()),
            "max": float(scores.max()),
            "records_significant_05": int((per_record["p_value"] < 0.05).sum()),
        }
        used = frame.filter(pl.col("record_id").is_in(per_record["record_id"].implode()))
        n_annotators = used["annotator"].n_unique()
        n_values = int((per_record["n_slots"] * per_record["n_annotators"]).sum())
        w = Statistic(
            "kendall-w-mean",
            "ordinal",
            float(scores.mean()),
            n_records,
            n_annotators,
            n_values=n_values,
            details=details,
        )
    return {"overall": overall, "per_question": {question: overall}, "kendall_w": w}


def judge_agreement(
    responses: pl.DataFrame, suggestions: pl.DataFrame, *, level: Level = "ordinal"
) -> list[JudgeAgreement]:
    """Each suggestion agent against the human consensus (mean, or majority for nominal) per unit.

    Units are (record_id, question, slot). Alpha treats judge and consensus as two raters; numeric
    levels add Spearman's rho and Kendall's tau-b.
    """
    return _judge(submitted_responses(responses), suggestions, level)


def _judge(human: pl.DataFrame, suggestions: pl.DataFrame, level: Level) -> list[JudgeAgreement]:
    """judge_agreement on submitted_responses output."""
    _check_level(level)
    _require_columns(suggestions, SUGGESTION_COLUMNS, where="suggestions")
    keys = ["record_id", "question", "slot"]
    if level == "nominal":
        votes = human.group_by([*keys, "value"]).agg(n=pl.len())
        consensus = (
            votes.filter(pl.col("n") == pl.col("n").max().over(keys))
            .filter(pl.len().over(keys) == 1)  # ties have no majority
            .select(*keys, consensus=pl.col("value"))
        )
    else:
        human = human.with_columns(pl.col("value").cast(pl.Float64, strict=False))
        consensus = (
            human.group_by(keys)
            .agg(consensus=pl.col("value").mean())
            .filter(pl.col("consensus").is_not_null())
        )
    judged = suggestions.select(
        pl.col("record_id").cast(pl.String),
        pl.col("question").cast(pl.String),
        pl.col("slot").cast(pl.Int64),
        _clean_strings(pl.col("value").cast(pl.String)).alias("judge"),
        pl.col("agent").cast(pl.String).fill_null("(unknown agent)"),
    ).filter(pl.col("judge").is_not_null() & (pl.col("judge") != ""))
    if level != "nominal":
        judged = judged.with_columns(pl.col("judge").cast(pl.Float64, strict=False)).filter(
            pl.col("judge").is_not_null()
        )
    joined = judged.join(consensus, on=keys, how="inner", nulls_equal=True)
    results = []
    for agent in sorted(judged["agent"].unique().to_list()):
        rows = joined.filter(pl.col("agent") == agent)
        unit = pl.concat_str([pl.col(k).cast(pl.String).fill_null("") for k in keys], separator=_SEP)
        long = pl.concat(
            [
                rows.select(unit=unit, annotator=pl.lit("judge"), value=pl.col("judge").cast(pl.String)),
                rows.select(
                    unit=unit, annotator=pl.lit("consensus"), value=pl.col("consensus").cast(pl.String)
                ),
            ]
        )
        entry = JudgeAgreement(agent, _campaign_alpha(long, level=level))
        if level != "nominal":
            x, y = rows["judge"].to_numpy(), rows["consensus"].to_numpy()
            entry = replace(
                entry,
                spearman=_correlation("spearman", x, y, level=level),
                kendall_tau=_correlation("kendall-tau", x, y, level=level),
            )
        results.append(entry)
    return results


def campaign_agreement(
    responses: pl.DataFrame,
    template: str,
    suggestions: pl.DataFrame | None = None,
    *,
    min_shared: int = 5,
    flag_below: float = 0.4,
) -> CampaignAgreement:
    """Agreement report for a campaign snapshot, for `campaign status` to embed.

    Schema of its `to_dict()` (a "statistic" is `Statistic.to_dict()`: statistic, label (its name for people,
    such as "Fleiss' κ"), level, value (None when there is too little data), n_units, n_annotators,
    n_values, note, reason and statistic-specific extras)::

        {
          "template": "rating" | "ranking" | "binary",
          "level": "ordinal" | "nominal",
          "n_records": int, "n_annotators": int, "n_responses": int,   # submitted only
          "overall": statistic,       # always Krippendorff's alpha: pooled rating_* (record x question),
                                      # nominal on label, or ordinal on rank positions (record x slot)
          "per_question": {question: statistic},
          "fleiss": statistic | None,      # binary only; note "not applicable" when raters differ
          "kendall_w": statistic | None,   # ranking only: mean W over records (n_units = records)
          "pairwise": [{"annotator_a", "annotator_b", **statistic}],   # pairs with >= min_shared units
          "annotators": [{"annotator", **statistic, "threshold", "flagged"}],  # vs leave-one-out consensus
          "judge": [{"agent", "alpha": statistic, "spearman"?: statistic, "kendall_tau"?: statistic}],
        }
    """
    if template not in TEMPLATE_NAMES:
        msg = f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}."
        raise UsageError(msg)
    submitted = submitted_responses(responses)
    level: Level = "nominal" if template == "binary" else "ordinal"
    if template == "rating":
        frame = submitted.filter(pl.col("question").str.starts_with("rating_"))
        part = _rating(frame)
        keys = ["record_id", "question"]
    elif template == "ranking":
        frame = submitted.filter(pl.col("question") == "ranking")
        part = _ranking(frame, "ranking")
        keys = ["record_id", "slot"]
    else:
        frame = submitted.filter(pl.col("question") == "label")
        part = _binary(frame, "label")
        keys = ["record_id"]
    long = _long(frame, keys)
    has_rows = long.height > 0
    return CampaignAgreement(
        template=template,
        level=level,
        n_records=frame["record_id"].n_unique(),
        n_annotators=frame["annotator"].n_unique(),
        n_responses=frame.select(pl.struct("record_id", "annotator").n_unique()).item(),
        overall=part["overall"],
        per_question=part["per_question"],
        fleiss=part.get("fleiss"),
        kendall_w=part.get("kendall_w"),
        pairwise=pairwise_cohen(long, level=level, min_shared=min_shared) if has_rows else [],
        annotators=(
            annotator_agreement(long, level=level, threshold=flag_below, min_units=min_shared)
            if has_rows
            else []
        ),
        judge=_judge(frame, suggestions, level) if suggestions is not None and suggestions.height > 0 else [],
    )


def _campaign_alpha(long: pl.DataFrame, *, level: Level) -> Statistic:
    """Alpha on campaign data, where an empty selection means not enough data."""
    if long.height == 0:
        return not_enough_data("alpha", level, "no submitted responses")
    return alpha(long, level=level)


def _natural_key(name: str) -> tuple[str, int]:
    """Sort rating_2 before rating_10."""
    head, _, tail = name.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (name, -1)
