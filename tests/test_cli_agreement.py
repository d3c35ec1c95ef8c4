"""`campaign agreement`: JSON output, published values through the CLI, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from campaign.cli import cli, main
from tests.test_agreement import FIXTURES, REFERENCE, reference_cases, reference_to_long


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `campaign agreement ARGS` through the real entry point: (exit code, stdout, stderr)."""
    try:
        main(["agreement", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["agreement", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "kendall-w" in result.output
    assert "agreement" in CliRunner().invoke(cli, ["--help"]).output


def test_alpha_on_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(FIXTURES / "krippendorff_c.csv"), "--level", "ordinal")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["statistic"] == "alpha"
    assert data["level"] == "ordinal"
    assert round(data["value"], 3) == 0.815
    assert (data["n_units"], data["n_annotators"], data["n_values"]) == (11, 4, 40)


def test_renamed_columns_on_jsonl(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--unit-col", "item", "--annotator-col", "user", "--value-col", "label", "--json"]
    code, out, _ = run(capsys, str(FIXTURES / "labels.jsonl"), "--statistic", "cohen", *args)
    assert code == 0
    data = json.loads(out)
    # (good, good), (good, bad), (bad, bad): p_o = 2/3, p_e = 4/9 -> kappa = 0.4
    assert data["statistic"] == "cohen"
    assert data["value"] == pytest.approx(0.4)
    assert data["p_o"] == pytest.approx(2 / 3)


def test_parquet_and_kendall_w_details(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ranks.parquet"
    rows = [("x", "a", 1), ("y", "a", 1), ("z", "a", 2), ("x", "b", 1), ("y", "b", 2), ("z", "b", 3)]
    pl.DataFrame(rows, schema=["unit", "annotator", "value"], orient="row").write_parquet(path)
    code, out, _ = run(capsys, str(path), "--statistic", "kendall-w")
    assert code == 0
    data = json.loads(out)
    assert data["value"] == pytest.approx(78 / 84)
    assert data["level"] == "ordinal"
    assert set(data) >= {"chi2", "df", "p_value", "n_units", "n_annotators"}


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """Write a long frame as csv, missing values as empty cells."""
    frame.write_csv(path)
    return path


@pytest.mark.parametrize("case", reference_cases() if REFERENCE.is_dir() else [], ids=str)
def test_reference_values_through_the_cli(
    case: tuple[str, str, str | None, str, float, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, statistic, level, field, published, decimals = case
    doc = json.loads((REFERENCE / name).read_text())
    path = write_csv(reference_to_long(doc), tmp_path / "data.csv")
    args = [str(path), "--statistic", statistic, *(["--level", level] if level else [])]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    assert data["statistic"] == statistic
    assert round(data[field], decimals) == round(published, decimals)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["missing.csv"], 1, "missing.csv: no such file"),
        (["data.xlsx"], 2, "unknown file type '.xlsx'"),
        ([str(FIXTURES / "header_only.csv")], 1, "the file has no rows"),
        ([str(FIXTURES / "krippendorff_c.csv"), "--unit-col", "item"], 1, "missing column(s) item"),
        (
            [
                str(FIXTURES / "labels.jsonl"),
                "--value-col",
                "label",
                "--unit-col",
                "item",
                "--annotator-col",
                "user",
                "--level",
                "ordinal",
            ],
            1,
            "non-numeric value 'good'",
        ),
        ([str(FIXTURES / "three_annotators.csv"), "--statistic", "cohen"], 1, "exactly 2 annotators"),
        ([str(FIXTURES / "three_annotators.csv"), "--statistic", "fleiss"], 1, "same number of ratings"),
        ([str(FIXTURES / "three_annotators.csv"), "--statistic", "kendall-w"], 1, "ranked 2 of 3 units"),
        ([str(FIXTURES / "one_unit.csv")], 1, "not enough data for alpha"),
        ([str(FIXTURES / "one_unit.csv"), "--statistic", "fleiss", "--level", "ordinal"], 2, "nominal data"),
        ([str(FIXTURES / "one_unit.csv"), "--statistic", "cohen-linear", "--level", "nominal"], 2, "ordered"),
    ],
)
def test_errors_are_one_line(
    args: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMPAIGN_DEBUG", raising=False)
    got, out, err = run(capsys, *args)
    assert got == code
    assert out == ""
    assert err.startswith("Error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_unknown_statistic_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(FIXTURES / "one_unit.csv"), "--statistic", "pearson")
    assert code == 2
    assert "Invalid value for '--statistic'" in err


def test_not_enough_data_when_values_never_vary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "same.csv"
    path.write_text("unit,annotator,value\n1,a,3\n1,b,3\n2,a,3\n2,b,3\n")
    code, out, err = run(capsys, str(path), "--level", "interval")
    assert (code, out) == (1, "")
    assert "not enough data for alpha" in err
    assert "no variation" in err
