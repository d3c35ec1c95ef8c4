"""Seed planning: column mapping, validation, stable ids, shuffled slots, suggestions, metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from campaign.errors import InputError, UsageError
from campaign.seed import (
    ColumnMapping,
    RecordPayload,
    SeedOptions,
    SeedReport,
    SourceReader,
    describe_plan,
    open_source,
    plan_records,
    prompt_id,
    record_id,
    resolve_mapping,
    rows_source,
)

DISTISET = Path(__file__).parent / "fixtures" / "seed" / "distiset"
UF_COLUMNS = [
    "instruction",
    "generations",
    "generation_models",
    "distilabel_metadata",
    "ratings",
    "rationales",
]


def uf_row(i: int, ratings: Any = (5, 3), n: int = 2) -> dict[str, Any]:
    return {
        "instruction": f"Question number {i}?",
        "generations": [f"answer {i} from model {k}" for k in range(n)],
        "generation_models": [f"model-{k}" for k in range(n)],
        "ratings": list(ratings) if ratings is not None else None,
        "rationales": ["fine"] * n,
        "model_name": "judge-70b",
    }


def plan(
    rows: Sequence[dict[str, Any]] | SourceReader, **options: Any
) -> tuple[list[RecordPayload], SeedReport]:
    reader = rows if isinstance(rows, SourceReader) else rows_source(rows, name="mem")
    options.setdefault("template", "rating")
    report = SeedReport()
    records = [r for batch in plan_records(reader, SeedOptions(**options), report=report) for r in batch]
    return records, report


# column mapping --------------------------------------------------------------------------------


def test_ultrafeedback_columns_map_judge_and_generators_apart() -> None:
    mapping = resolve_mapping([*UF_COLUMNS, "model_name"], "rating")
    assert mapping == ColumnMapping(
        prompt="instruction",
        responses=("generations",),
        models=("generation_models",),
        ratings="ratings",
        rationales="rationales",
        judge="model_name",
    )


def test_text_generation_model_name_is_the_generator() -> None:
    mapping = resolve_mapping(["instruction", "generation", "model_name"], "binary")
    assert mapping.responses == ("generation",)
    assert mapping.models == ("model_name",)
    assert mapping.judge is None


def test_aya_columns() -> None:
    columns = ["inputs", "targets", "language", "language_code", "annotation_type", "user_id"]
    mapping = resolve_mapping(columns, "binary")
    assert (mapping.prompt, mapping.responses, mapping.language) == ("inputs", ("targets",), "language")


def test_explicit_mapping_wins_and_may_join_columns() -> None:
    columns = ["question", "chosen", "rejected", "instruction", "generations"]
    mapping = resolve_mapping(columns, "ranking", {"prompt": "question", "responses": "chosen, rejected"})
    assert mapping.prompt == "question"
    assert mapping.responses == ("chosen", "rejected")


def test_mapping_errors_name_the_column() -> None:
    with pytest.raises(InputError, match=r"--map prompt=question names no column.*instruction"):
        resolve_mapping(["instruction", "generations"], "rating", {"prompt": "question"})
    with pytest.raises(UsageError, match="Unknown --map field answer"):
        resolve_mapping(["instruction"], "rating", {"answer": "x"})
    with pytest.raises(InputError, match=r"no prompt column; looked for instruction, prompt, input, inputs"):
        resolve_mapping(["text", "generations"], "rating")
    with pytest.raises(InputError, match=r"no responses column.*--map responses=COLUMN"):
        resolve_mapping(["instruction", "text"], "rating")


def test_schema_types_are_checked_before_reading() -> None:
    schema = pa.schema([("instruction", pa.int64()), ("generations", pa.list_(pa.string()))])
    with pytest.raises(InputError, match=r"column 'instruction' \(prompt\) has type int64, expected text"):
        resolve_mapping(schema.names, "rating", schema=schema, source="data.parquet")


def test_contract_is_checked_before_any_row_is_read() -> None:
    def never(batch_size: int, columns: Sequence[str] | None) -> Iterator[list[dict[str, Any]]]:
        raise AssertionError("rows were read before the contract check")

    reader = SourceReader(name="src", kind="rows", columns=("text",), _open=never)
    with pytest.raises(InputError, match="src: no prompt column"):
        plan_records(reader, SeedOptions(template="rating"))


def test_options_are_validated() -> None:
    with pytest.raises(UsageError, match="Unknown template"):
        SeedOptions(template="pairwise")
    with pytest.raises(UsageError, match="between 2 and 8"):
        SeedOptions(template="rating", responses=9)
    with pytest.raises(UsageError, match="--limit"):
        SeedOptions(template="rating", limit=0)
    with pytest.raises(UsageError, match="Unknown --map field"):
        SeedOptions(template="rating", mapping={"answer": "x"})
    assert SeedOptions(template="binary", responses=1).template == "binary"


# validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"instruction": "  "}, "empty prompt"),
        ({"instruction": None}, "empty prompt"),
        ({"instruction": 42}, "wrong type"),
        ({"generations": ["only one"]}, "too few responses"),
        ({"generations": ["a", "b", "c"]}, "too many responses"),
        ({"generations": ["a", None]}, "empty response"),
        ({"generations": ["a", ""]}, "empty response"),
        ({"generations": None}, "empty response"),
        ({"generations": ["a", 7]}, "wrong type"),
        ({"generations": {"a": 1}}, "wrong type"),
        ({"generations": ["a", "x" * 101]}, "text too long"),
        ({"instruction": "y" * 101}, "text too long"),
    ],
)
def test_each_skip_reason_is_counted_with_its_row(change: dict[str, Any], reason: str) -> None:
    rows = [uf_row(0), uf_row(1) | change, uf_row(2)]
    records, report = plan(rows, max_chars=100)
    assert len(records) == 2
    assert report.rows_read == 3
    assert report.skipped == {reason: 1}
    assert report.examples[0].row == 2
    assert report.examples[0].reason == reason
    assert report.examples[0].source == "mem"


def test_duplicate_prompts_keep_the_first() -> None:
    rows = [uf_row(0), uf_row(1), uf_row(0) | {"generations": ["other", "answers"]}]
    records, report = plan(rows)
    assert [r.fields["prompt"] for r in records] == ["Question number 0?", "Question number 1?"]
    assert report.skipped == {"duplicate prompt": 1}
    assert report.examples[0].row == 3


def test_an_invalid_first_copy_does_not_block_a_valid_one() -> None:
    rows = [uf_row(0) | {"generations": ["a", None]}, uf_row(0)]
    records, report = plan(rows)
    assert len(records) == 1
    assert report.skipped == {"empty response": 1}


def test_examples_are_bounded_per_reason() -> None:
    rows = [uf_row(i) | {"instruction": ""} for i in range(10)]
    _, report = plan(rows)
    assert report.skipped == {"empty prompt": 10}
    assert [e.row for e in report.examples] == [1, 2, 3]
    assert report.to_dict()["rows_skipped"] == 10


def test_strict_mode_raises_on_the_first_skipped_row() -> None:
    rows = [uf_row(0), uf_row(1) | {"generations": ["a"]}]
    with pytest.raises(InputError, match=r"mem row 2: too few responses .*--strict"):
        plan(rows, strict=True)


def test_strict_mode_keeps_rows_without_judge_ratings() -> None:
    records, report = plan([uf_row(0, ratings=[None])], strict=True)
    assert len(records) == 1
    assert records[0].suggestions == []
    assert report.suggestion_skipped == {"judge rating is None": 1}


# stable ids ------------------------------------------------------------------------------------


def test_ids_are_stable_content_hashes() -> None:
    rows = [uf_row(i) for i in range(5)]
    first, _ = plan(rows)
    again, _ = plan(rows)
    other_round, _ = plan(rows, round=3, seed=9, shuffle=False, source_name="elsewhere")
    assert [r.id for r in first] == [r.id for r in again] == [r.id for r in other_round]
    assert len({r.id for r in first}) == 5
    assert all(len(r.id) >= 32 and int(r.id, 16) >= 0 for r in first)
    assert first[0].id == record_id(
        "rating", "Question number 0?", ["answer 0 from model 0", "answer 0 from model 1"]
    )
    ranking, _ = plan(rows, template="ranking")
    assert not {r.id for r in ranking} & {r.id for r in first}


def test_prompt_id_is_the_hash_of_the_prompt_alone() -> None:
    records, _ = plan([uf_row(0)], template="binary")
    assert {r.metadata["prompt_id"] for r in records} == {prompt_id("Question number 0?")}
    assert prompt_id("a") != prompt_id("b")


# shuffling and provenance ----------------------------------------------------------------------


def test_shuffle_is_deterministic_and_metadata_maps_slots_back() -> None:
    rows = [uf_row(i, ratings=[5, 4, 3, 2], n=4) for i in range(30)]
    records, _ = plan(rows, responses=4, seed=7)
    again, _ = plan(rows, responses=4, seed=7)
    assert [r.fields for r in records] == [r.fields for r in again]
    orders = set()
    for record, row in zip(records, rows, strict=True):
        order = tuple(record.metadata[f"source_index_{slot}"] for slot in range(1, 5))
        orders.add(order)
        assert sorted(order) == [0, 1, 2, 3]
        for slot in range(1, 5):
            source = record.metadata[f"source_index_{slot}"]
            assert isinstance(source, int)
            assert record.fields[f"response_{slot}"] == row["generations"][source]
            assert record.metadata[f"model_{slot}"] == row["generation_models"][source]
            # the judge's rating follows its response into the shuffled slot
            suggestion = next(s for s in record.suggestions if s.question == f"rating_{slot}")
            assert suggestion.value == row["ratings"][source]
    assert len(orders) > 5  # really shuffled


def test_another_seed_shuffles_differently_but_keeps_ids() -> None:
    rows = [uf_row(i, ratings=[5, 4, 3, 2], n=4) for i in range(20)]
    seven, _ = plan(rows, responses=4, seed=7)
    eight, _ = plan(rows, responses=4, seed=8)
    assert [r.id for r in seven] == [r.id for r in eight]
    assert [r.fields for r in seven] != [r.fields for r in eight]


def test_no_shuffle_keeps_source_order() -> None:
    records, _ = plan([uf_row(i) for i in range(10)], shuffle=False)
    for record in records:
        assert record.metadata["source_index_1"] == 0
        assert record.metadata["source_index_2"] == 1
        assert record.fields["response_1"].endswith("model 0")


# suggestions -----------------------------------------------------------------------------------


def test_rating_suggestions_carry_the_judge_as_agent() -> None:
    records, report = plan([uf_row(0)], shuffle=False)
    assert [(s.question, s.value, s.agent, s.score) for s in records[0].suggestions] == [
        ("rating_1", 5, "judge-70b", None),
        ("rating_2", 3, "judge-70b", None),
    ]
    assert report.suggestions == 2


def test_agent_defaults_to_ultrafeedback_without_a_judge_column() -> None:
    row = uf_row(0)
    del row["model_name"]
    records, _ = plan([row])
    assert {s.agent for s in records[0].suggestions} == {"ultrafeedback"}


def test_ranking_is_derived_from_ratings_best_first_ties_in_source_order() -> None:
    rows = [uf_row(0, ratings=[3, 5, 3], n=3)]
    records, _ = plan(rows, template="ranking", responses=3, shuffle=False)
    (suggestion,) = records[0].suggestions
    assert suggestion.question == "ranking"
    assert suggestion.value == ["response_2", "response_1", "response_3"]
    assert suggestion.agent == "judge-70b"
    shuffled, _ = plan(rows, template="ranking", responses=3, seed=3)
    record = shuffled[0]
    by_source = {record.metadata[f"source_index_{slot}"]: f"response_{slot}" for slot in (1, 2, 3)}
    assert record.suggestions[0].value == [by_source[1], by_source[0], by_source[2]]


@pytest.mark.parametrize(
    ("ratings", "reason"),
    [
        (None, "judge rating is None"),
        ([None], "judge rating is None"),  # what distilabel writes when the judge output does not parse
        ([None, None], "judge rating is None"),
        ([5, None], "judge rating is None"),
        ([5, 6], "judge rating out of range"),
        ([5, 0], "judge rating out of range"),
        ([5, 2.5], "judge rating out of range"),
        ([5, "4"], "judge ratings of wrong type"),
        ([5, 4, 3], "judge ratings do not match responses"),
    ],
)
def test_unusable_ratings_keep_the_row_without_suggestion(ratings: Any, reason: str) -> None:
    for template in ("rating", "ranking"):
        records, report = plan([uf_row(0, ratings=ratings), uf_row(1)], template=template)
        assert len(records) == 2
        assert records[0].suggestions == []
        assert records[1].suggestions
        assert report.suggestion_skipped == {reason: 1}
        assert report.skipped == {}
        assert report.examples[0].kind == "suggestion"


def test_float_ratings_that_are_whole_numbers_are_used() -> None:
    records, _ = plan([uf_row(0, ratings=[5.0, 1.0])], shuffle=False)
    assert [s.value for s in records[0].suggestions] == [5, 1]


def test_binary_makes_one_record_per_completion_with_judge_labels() -> None:
    row = uf_row(0, ratings=[5, 3, 1], n=3)
    records, report = plan([row], template="binary")
    assert [r.fields for r in records] == [
        {"prompt": "Question number 0?", "completion": f"answer 0 from model {k}"} for k in range(3)
    ]
    assert [[(s.question, s.value, s.agent) for s in r.suggestions] for r in records] == [
        [("label", "good", "judge-70b")],
        [],  # 3 is neither good nor bad
        [("label", "bad", "judge-70b")],
    ]
    assert [(r.metadata["model"], r.metadata["source_index"]) for r in records] == [
        ("model-0", 0),
        ("model-1", 1),
        ("model-2", 2),
    ]
    assert records[0].id == record_id("binary", "Question number 0?", ["answer 0 from model 0"])
    assert report.records == 3


def test_binary_skips_a_repeated_completion() -> None:
    row = uf_row(0) | {"generations": ["same", "same"], "ratings": [4, 4]}
    records, report = plan([row], template="binary")
    assert len(records) == 1
    assert report.skipped == {"duplicate completion": 1}


def test_aya_rows_are_prompts_with_one_human_response() -> None:
    rows = [
        {
            "inputs": "Wat is een haiku?",
            "targets": "Een kort Japans gedicht.",
            "language": "Dutch",
            "language_code": "nld",
            "annotation_type": "original-annotations",
            "user_id": "u1",
        }
    ]
    records, _ = plan(rows, template="binary")
    assert records[0].fields == {"prompt": "Wat is een haiku?", "completion": "Een kort Japans gedicht."}
    assert records[0].metadata["model"] == "human"
    assert records[0].metadata["language"] == "Dutch"
    assert records[0].suggestions == []
    _, report = plan(rows, template="rating")
    assert report.skipped == {"too few responses": 1}


# metadata --------------------------------------------------------------------------------------


def test_metadata_has_no_none_values_and_options_fill_it() -> None:
    row = uf_row(0) | {"generation_models": ["model-0", None]}
    records, _ = plan([row], round=2, source_name="nl-round-2", shuffle=False)
    assert records[0].metadata == {
        "prompt_id": prompt_id("Question number 0?"),
        "round": 2,
        "source": "nl-round-2",
        "model_1": "model-0",
        "source_index_1": 0,
        "source_index_2": 1,
    }
    with_language, _ = plan([row], language="nl")
    assert with_language[0].metadata["language"] == "nl"


def test_payload_builds_argilla_sdk_objects() -> None:
    import argilla as rg

    records, _ = plan([uf_row(0)], template="ranking")
    data = records[0].to_argilla_dict()
    record = rg.Record(
        id=data["id"],
        fields=data["fields"],
        metadata=data["metadata"],
        suggestions=[rg.Suggestion(**s) for s in data["suggestions"]],
    )
    assert record.id == records[0].id
    assert record.suggestions["ranking"].agent == "judge-70b"
    json.dumps(data)  # plain data


# run controls ----------------------------------------------------------------------------------


def test_limit_stops_early_and_batches_are_bounded() -> None:
    rows = [uf_row(i) for i in range(50)]
    reader = rows_source(rows, name="mem")
    report = SeedReport()
    batches = list(
        plan_records(reader, SeedOptions(template="rating", limit=12, batch_size=5), report=report)
    )
    assert [len(b) for b in batches] == [5, 5, 2]
    assert report.records == 12
    assert report.rows_read <= 15


def test_sample_is_deterministic_and_bounded() -> None:
    rows = [uf_row(i) for i in range(200)]
    first, report = plan(rows, sample=20, seed=1)
    again, _ = plan(rows, sample=20, seed=1)
    other, _ = plan(rows, sample=20, seed=2)
    assert len(first) == 20
    assert [r.id for r in first] == [r.id for r in again]
    assert {r.id for r in first} != {r.id for r in other}
    every = {r.id for r in plan(rows)[0]}
    assert {r.id for r in first} <= every
    assert report.not_sampled == 180
    # the sample keeps source order
    numbers = [int(r.fields["prompt"].split()[2].rstrip("?")) for r in first]
    assert numbers == sorted(numbers)
    limited, _ = plan(rows, sample=20, seed=1, limit=5)
    assert [r.id for r in limited] == [r.id for r in first[:5]]


def test_describe_plan_returns_first_records_and_the_full_report() -> None:
    rows = [uf_row(i) for i in range(10)] + [uf_row(99) | {"instruction": ""}]
    preview = describe_plan(rows_source(rows, name="mem"), SeedOptions(template="rating"), first=3)
    assert len(preview.records) == 3
    assert preview.report.records == 10
    assert preview.report.rows_read == 11
    assert preview.report.skipped == {"empty prompt": 1}
    assert preview.report.mappings["mem"]["judge"] == "model_name"


def test_several_sources_share_duplicate_detection() -> None:
    a = rows_source([uf_row(0), uf_row(1)], name="a")
    b = rows_source([uf_row(1), uf_row(2)], name="b")
    report = SeedReport()
    records = [
        r for batch in plan_records([a, b], SeedOptions(template="rating"), report=report) for r in batch
    ]
    assert len(records) == 3
    assert report.examples[0].source == "b"
    assert report.examples[0].row == 1
    assert report.sources == ["a", "b"]


# real sources end to end -----------------------------------------------------------------------


@pytest.mark.parametrize("template", ["rating", "ranking", "binary"])
def test_real_distiset_end_to_end(template: str) -> None:
    reader = open_source(DISTISET, config="ultra_feedback_0")
    records, report = plan(reader, template=template, source_name="fixture")
    assert report.rows_read == 4
    assert report.skipped == {}
    # the scripted judge could not rate the fourth prompt: distilabel wrote ratings=[None]
    assert report.suggestion_skipped == {"judge rating is None": 1}
    assert len(records) == (8 if template == "binary" else 4)
    agents = {s.agent for r in records for s in r.suggestions}
    assert agents == {"judge-model"}
    models = {v for r in records for k, v in r.metadata.items() if k.startswith("model")}
    assert models == {"model-a", "model-b"}
    again, _ = plan(open_source(DISTISET, config="ultra_feedback_0"), template=template, round=2)
    assert [r.id for r in records] == [r.id for r in again]
    assert records[0].metadata["source"] == "fixture"
    assert again[0].metadata["source"] == "distiset:ultra_feedback_0"


def test_keep_columns_config_fails_the_contract_clearly() -> None:
    reader = open_source(DISTISET, config="keep_columns_0")
    with pytest.raises(InputError, match=r"keep_columns_0: no responses column.*instruction"):
        plan_records(reader, SeedOptions(template="rating"))


def test_csv_with_json_list_columns(tmp_path: Path) -> None:
    path = tmp_path / "uf.csv"
    lines = ["instruction,generations,generation_models,ratings,model_name"]
    for i in range(3):
        gens = json.dumps([f"a{i}", f"b{i}"]).replace('"', '""')
        models = json.dumps(["m-a", "m-b"]).replace('"', '""')
        lines.append(f'p{i},"{gens}","{models}","[4, 2]",judge')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, report = plan(open_source(path), shuffle=False)
    assert report.skipped == {}
    assert records[0].fields == {"prompt": "p0", "response_1": "a0", "response_2": "b0"}
    assert records[0].metadata["model_2"] == "m-b"
    assert [(s.value, s.agent) for s in records[0].suggestions] == [(4, "judge"), (2, "judge")]


def test_jsonl_and_parquet_give_the_same_records(tmp_path: Path) -> None:
    rows = [uf_row(i) for i in range(5)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    from_jsonl, _ = plan(open_source(tmp_path / "rows.jsonl"), source_name="s")
    from_parquet, _ = plan(open_source(tmp_path / "rows.parquet"), source_name="s")
    assert from_jsonl == from_parquet


def test_large_parquet_plans_in_bounded_batches(tmp_path: Path) -> None:
    total = 200_000
    schema = pa.schema([("prompt", pa.string()), ("completion", pa.string())])
    path = tmp_path / "big.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, total, 50_000):
            ids = range(start, start + 50_000)
            table = pa.table(
                {"prompt": [f"p{i}" for i in ids], "completion": [f"c{i}" for i in ids]}, schema=schema
            )
            writer.write_table(table, row_group_size=10_000)
    report = SeedReport()
    sizes = []
    for batch in plan_records(
        open_source(path), SeedOptions(template="binary", batch_size=2_000), report=report
    ):
        sizes.append(len(batch))
    assert max(sizes) == 2_000
    assert sum(sizes) == total == report.records == report.rows_read


def test_identical_responses_are_seeded_with_a_warning_or_skipped_by_option() -> None:
    rows = [uf_row(0), uf_row(1), uf_row(2)]
    rows[1]["generations"] = ["The same  answer.", " The same answer.\n"]  # equal but for whitespace
    records, report = plan(rows)
    assert len(records) == 3
    assert report.warnings == {"identical responses": 1} and not report.skipped
    warning = next(e for e in report.examples if e.kind == "warning")
    assert (warning.row, warning.detail) == (
        2,
        "responses 0 and 1 (0-based) are identical after whitespace normalisation",
    )
    assert report.to_dict()["warnings"] == {"identical responses": 1}

    records, report = plan(rows, skip_identical=True)
    assert [r.fields["prompt"] for r in records] == ["Question number 0?", "Question number 2?"]
    assert report.skipped == {"identical responses": 1} and not report.warnings
    with pytest.raises(InputError, match=r"row 2: identical responses"):
        plan(rows, skip_identical=True, strict=True)
    # A skipped row does not claim its prompt: a later row with the same prompt and distinct answers is seeded.
    again = {**rows[1], "generations": ["one", "two"]}
    records, report = plan([*rows, again], skip_identical=True)
    assert len(records) == 3 and report.skipped == {"identical responses": 1}


def test_binary_completions_identical_after_whitespace_are_warned_or_skipped() -> None:
    row = {"instruction": "Q?", "generations": ["Yes.", "yes", "Yes. "], "ratings": [5, 1, 1]}
    records, report = plan([row], template="binary")
    assert [r.fields["completion"] for r in records] == ["Yes.", "yes", "Yes. "]
    assert report.warnings == {"identical responses": 1}
    records, report = plan([row], template="binary", skip_identical=True)
    assert [r.fields["completion"] for r in records] == ["Yes.", "yes"]
    assert report.skipped == {"identical responses": 1}


def test_seed_command_warns_about_identical_responses_and_skips_them_by_option(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from campaign.cli import cli

    runner = CliRunner(mix_stderr=False)
    directory = tmp_path / "camp"
    assert runner.invoke(cli, ["init", str(directory), "--template", "rating"]).exit_code == 0
    source = tmp_path / "rows.jsonl"
    rows = [uf_row(0), {**uf_row(1), "generations": ["Same text", "Same  text "]}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    warned = runner.invoke(cli, ["seed", str(source), "--campaign", str(directory), "--dry-run"])
    assert warned.exit_code == 0, warned.stderr
    assert "Warning: 1 row(s) seeded with identical responses" in warned.stderr
    assert "--skip-identical" in warned.stderr
    args = ["seed", str(source), "--campaign", str(directory), "--dry-run", "--json", "--skip-identical"]
    skipped = runner.invoke(cli, args)
    assert skipped.exit_code == 0, skipped.stderr
    report = json.loads(skipped.stdout)["report"]
    assert (report["records"], report["skipped"], report["warnings"]) == (1, {"identical responses": 1}, {})
