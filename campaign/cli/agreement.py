"""`campaign agreement`: one agreement statistic on any long-format file."""

from __future__ import annotations

from pathlib import Path

import click

from campaign import agreement as stats
from campaign.cli._output import print_json
from campaign.errors import InputError, NotEnoughData


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--statistic",
    type=click.Choice(stats.STATISTICS),
    default="alpha",
    show_default=True,
    help="alpha = Krippendorff; fleiss; cohen (2 annotators), optionally linear/quadratic weighted; "
    "kendall-w (tie-corrected, every annotator ranks every unit).",
)
@click.option(
    "--level",
    type=click.Choice(stats.LEVELS),
    default=None,
    help="Level of measurement. Default: ordinal for weighted cohen and kendall-w, else nominal.",
)
@click.option("--unit-col", default="unit", show_default=True, help="Column naming the unit judged.")
@click.option("--annotator-col", default="annotator", show_default=True, help="Column naming the annotator.")
@click.option("--value-col", default="value", show_default=True, help="Column holding the value given.")
@click.option(
    "--json", "as_json", is_flag=True, default=True, help="Print JSON (the default and only format)."
)
def agreement(
    file: Path,
    statistic: str,
    level: stats.Level | None,
    unit_col: str,
    annotator_col: str,
    value_col: str,
    as_json: bool,
) -> None:
    """Compute inter-annotator agreement on FILE (csv, jsonl or parquet, one row per judgement).

    FILE has the columns unit, annotator and value; a missing judgement is a missing row or an
    empty value. Prints JSON with the statistic, level, value and the numbers of units,
    annotators and values it used. With too little data it fails with "not enough data"
    rather than print a misleading number.

    \b
    Example:
        campaign agreement ratings.csv --statistic alpha --level ordinal
        campaign agreement votes.parquet --statistic fleiss
        campaign agreement pair.jsonl --statistic cohen-quadratic --annotator-col user
        campaign agreement ranks.csv --statistic kendall-w --unit-col item --value-col rank
    """
    columns = {"unit_col": unit_col, "annotator_col": annotator_col, "value_col": value_col}
    frame = stats.read_long(file, **columns)
    try:
        result = stats.compute(frame, statistic=statistic, level=level, **columns)
    except InputError as exc:
        # The statistics see a frame, not a file: say which file the bad values came from.
        raise InputError(f"{file}: {exc}") from None
    if result.value is None:
        msg = f"{stats.NOT_ENOUGH_DATA} for {statistic} on {file}: {result.reason}."
        raise NotEnoughData(msg)
    print_json({**result.to_dict(), "statistic": statistic, "file": str(file)})
