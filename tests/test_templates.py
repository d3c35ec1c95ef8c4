"""Templates -> argilla Settings, template validation, settings summary and diff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from campaign.errors import ConfigError, UsageError
from campaign.templates import (
    GUIDELINES_MAX_CHARS,
    TEMPLATE_NAMES,
    build_settings,
    diff_settings,
    load_template,
    settings_summary,
)


def summary_for(name: str, responses: int, *, min_submitted: int = 2, language: str | None = "nl") -> dict:
    spec = load_template(name)
    settings = build_settings(
        spec,
        responses=responses,
        guidelines=spec.read_guidelines(),
        min_submitted=min_submitted,
        language=language,
    )
    return settings_summary(settings)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


@pytest.mark.parametrize("responses", [2, 8])
def test_rating_settings(responses: int) -> None:
    summary = summary_for("rating", responses, min_submitted=3)
    slots = range(1, responses + 1)
    assert names(summary["fields"]) == ["prompt", *(f"response_{i}" for i in slots)]
    assert all(f["type"] == "text" and f["use_markdown"] for f in summary["fields"])
    assert names(summary["questions"]) == [f"rating_{i}" for i in slots]
    assert {q["type"] for q in summary["questions"]} == {"rating"}
    assert all(q["options"] == [1, 2, 3, 4, 5] for q in summary["questions"])
    assert names(summary["metadata"]) == [
        "prompt_id",
        "round",
        "source",
        "language",
        *(f"model_{i}" for i in slots),
        *(f"source_index_{i}" for i in slots),
    ]
    assert summary["distribution"] == {"strategy": "overlap", "min_submitted": 3}


@pytest.mark.parametrize("responses", [2, 8])
def test_ranking_settings(responses: int) -> None:
    summary = summary_for("ranking", responses)
    slots = range(1, responses + 1)
    assert names(summary["fields"]) == ["prompt", *(f"response_{i}" for i in slots)]
    assert len(summary["questions"]) == 1
    ranking = summary["questions"][0]
    assert ranking["name"] == "ranking"
    assert ranking["type"] == "ranking"
    assert ranking["options"] == {f"response_{i}": f"Response {i}" for i in slots}
    assert [f"model_{i}" for i in slots] == [m for m in names(summary["metadata"]) if m.startswith("model_")]
    assert summary["distribution"]["min_submitted"] == 2


def test_binary_settings() -> None:
    summary = summary_for("binary", 1)
    assert names(summary["fields"]) == ["prompt", "completion"]
    (label,) = summary["questions"]
    assert label["name"] == "label"
    assert label["type"] == "label_selection"
    assert label["options"] == {"good": "👍 good", "bad": "👎 bad"}
    assert names(summary["metadata"]) == ["prompt_id", "round", "source", "language", "model", "source_index"]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_metadata_types_and_visibility(name: str) -> None:
    spec = load_template(name)
    summary = summary_for(name, spec.responses.default)
    by_name = {m["name"]: m for m in summary["metadata"]}
    assert by_name["round"]["type"] == "integer"
    assert by_name["prompt_id"]["type"] == "terms"
    assert all(m["type"] == "integer" for n, m in by_name.items() if n.startswith("source_index"))
    visible = [n for n, m in by_name.items() if m["visible_for_annotators"]]
    assert visible == ["language"]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_guidelines_cover_what_volunteers_need(name: str) -> None:
    text = load_template(name).read_guidelines()
    assert len(text) < GUIDELINES_MAX_CHARS
    lowered = text.lower()
    assert "wrong language" in lowered
    assert "discard" in lowered
    assert "good" in lowered


def test_binary_labels_read_without_an_emoji_font() -> None:
    """Emoji-only buttons read as boxes without an emoji font: every shown label carries a word."""
    from campaign.consensus.votes import BAD, GOOD

    (label,) = summary_for("binary", 1)["questions"]
    # The stored values stay the ones consensus and exports read; only the shown text changed.
    assert set(label["options"]) == {GOOD, BAD}
    for value, text in label["options"].items():
        assert value in text and any(ch.isascii() and ch.isalpha() for ch in text)


def test_binary_guidelines_are_generic_with_the_haiku_as_one_example() -> None:
    text = load_template("binary").read_guidelines()
    assert "👍 good" in text and "👎 bad" in text
    haiku = [line for line in text.splitlines() if "haiku" in line.lower()]
    assert len(haiku) == 1 and "for example" in haiku[0].lower()
    assert "Thumbs up" not in text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_guidelines_have_no_tables(name: str) -> None:
    """Argilla shows guidelines in a narrow panel, where a table's short first column wrapped 'scor/e'."""
    lines = load_template(name).read_guidelines().splitlines()
    assert [line for line in lines if line.lstrip().startswith("|")] == []


def test_language_fills_descriptions() -> None:
    summary = summary_for("rating", 2, language="nl")
    assert "(nl)" in summary["questions"][0]["description"]
    assert "{language}" not in json.dumps(summary)


def test_summary_is_json_and_building_stays_offline() -> None:
    import argilla as rg

    before = rg.Argilla._default_client
    summary = summary_for("ranking", 3)
    assert rg.Argilla._default_client is before
    assert json.loads(json.dumps(summary)) == summary
    assert len(summary["guidelines"]["sha256"]) == 64


@pytest.mark.parametrize(("name", "responses"), [("rating", 1), ("rating", 9), ("ranking", 9), ("binary", 2)])
def test_responses_out_of_range(name: str, responses: int) -> None:
    spec = load_template(name)
    with pytest.raises(UsageError, match=f"not {responses}"):
        build_settings(spec, responses=responses, guidelines="# g", min_submitted=2, language=None)


def test_guidelines_limits() -> None:
    spec = load_template("rating")
    with pytest.raises(ConfigError, match="empty"):
        build_settings(spec, responses=2, guidelines="  \n", min_submitted=2, language=None)
    with pytest.raises(ConfigError, match="at most 10000"):
        build_settings(spec, responses=2, guidelines="x" * 10_001, min_submitted=2, language=None)
    with pytest.raises(UsageError, match="min_submitted"):
        build_settings(spec, responses=2, guidelines="# g", min_submitted=0, language=None)


def test_unknown_template_name_suggests() -> None:
    with pytest.raises(UsageError, match="Did you mean 'ranking'"):
        load_template("rankng")
    with pytest.raises(UsageError, match="does not exist"):
        load_template("nowhere/mine.yaml")


CUSTOM = """\
name: pairwise
responses: {default: 2, min: 2, max: 4}
min_submitted: 1
guidelines: pairwise.md
fields:
  - name: prompt
  - name: answer_{i}
    title: Answer {i}
questions:
  - name: best
    type: label
    title: Which answer is better?
    values:
      answer_{i}: Answer {i}
metadata:
  - name: prompt_id
    type: terms
"""


def write_template(tmp_path: Path, text: str, guidelines: bool = True) -> Path:
    path = tmp_path / "pairwise.yaml"
    path.write_text(text, encoding="utf-8")
    if guidelines:
        (tmp_path / "pairwise.md").write_text("# Pick the better answer\n", encoding="utf-8")
    return path


def test_custom_template(tmp_path: Path) -> None:
    spec = load_template(write_template(tmp_path, CUSTOM))
    settings = build_settings(
        spec, responses=3, guidelines=spec.read_guidelines(), min_submitted=1, language=None
    )
    summary = settings_summary(settings)
    assert names(summary["fields"]) == ["prompt", "answer_1", "answer_2", "answer_3"]
    assert summary["questions"][0]["options"] == {f"answer_{i}": f"Answer {i}" for i in (1, 2, 3)}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    title: Which",
            "    titel: Which",
            r"pairwise.yaml:12: unknown key 'questions\[0\].titel'. Did you mean 'title'",
        ),
        ("    type: label", "    type: slider", r"pairwise.yaml:11: key 'questions\[0\].type'"),
        ("    type: terms", "    type: [terms]", r"pairwise.yaml:17: key 'metadata\[0\].type'"),
        ("max: 4}", "max: 9}", r"pairwise.yaml:2: key 'responses'"),
        ("  - name: prompt_id", "  - name: best", r"pairwise.yaml:\d+: names must be unique.*best"),
        (
            "min_submitted: 1",
            "min_submitted: 1\nmin_submitted: 2",
            r"pairwise.yaml:4: key 'min_submitted' is given twice",
        ),
        ("fields:", "fields: [", r"pairwise.yaml:\d+: invalid YAML"),
        ("  - name: answer_{i}", "  - name: answer", r"field name must contain \{i\}"),
    ],
)
def test_custom_template_errors_name_the_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in CUSTOM
    path = write_template(tmp_path, CUSTOM.replace(old, new, 1))
    with pytest.raises(ConfigError, match=expected):
        load_template(path)


def test_custom_rating_values_are_checked(tmp_path: Path) -> None:
    text = CUSTOM.replace("type: label", "type: rating").replace(
        "    values:\n      answer_{i}: Answer {i}\n", "    values: [1, 20]\n"
    )
    with pytest.raises(ConfigError, match=r"pairwise.yaml:10: key 'questions\[0\]'.*0 to 10"):
        load_template(write_template(tmp_path, text))


def test_custom_template_missing_guidelines_file(tmp_path: Path) -> None:
    path = write_template(tmp_path, CUSTOM, guidelines=False)
    with pytest.raises(ConfigError, match=r"pairwise.yaml:4: key 'guidelines'.*pairwise.md does not exist"):
        load_template(path)


def test_custom_template_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_template(write_template(tmp_path, "- just a list\n"))


def test_diff_equal_is_empty() -> None:
    assert diff_settings(summary_for("rating", 3), summary_for("rating", 3)) == []


def test_diff_finds_changes() -> None:
    expected = summary_for("rating", 3, min_submitted=2)
    actual = summary_for("rating", 2, min_submitted=3)
    actual["questions"][0]["options"] = [1, 2, 3]
    actual["metadata"][0]["visible_for_annotators"] = True
    actual["guidelines"] = {"sha256": "0" * 64, "chars": 10}
    actual["fields"].append({"name": "notes", "type": "text"})
    diff = diff_settings(expected, actual)
    assert "field 'response_3': expected, but missing" in diff
    assert "question 'rating_3': expected, but missing" in diff
    assert "metadata property 'model_3': expected, but missing" in diff
    assert "field 'notes': not expected, but present" in diff
    assert "question 'rating_1' options: expected [1, 2, 3, 4, 5], found [1, 2, 3]" in diff
    assert "metadata property 'prompt_id' visible_for_annotators: expected False, found True" in diff
    assert "distribution.min_submitted: expected 2, found 3" in diff
    assert any(line.startswith("guidelines: differ") for line in diff)


def test_diff_reports_order_and_titles() -> None:
    expected = summary_for("ranking", 2)
    actual = json.loads(json.dumps(expected))
    actual["fields"].reverse()
    actual["questions"][0]["title"] = "Rank them"
    diff = diff_settings(expected, actual)
    assert diff == [
        "fields order: expected prompt, response_1, response_2; found response_2, response_1, prompt",
        "question 'ranking' title: expected 'Rank the responses from best (1) to worst', found 'Rank them'",
    ]


def test_diff_across_templates() -> None:
    diff = diff_settings(summary_for("binary", 1), summary_for("rating", 2))
    assert "question 'label': expected, but missing" in diff
    assert "field 'completion': expected, but missing" in diff
