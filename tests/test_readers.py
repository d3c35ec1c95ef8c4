"""Readers: every source kind, streamed in bounded batches, with actionable errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from campaign.errors import InputError, NotFound, UsageError
from campaign.readers import SourceReader, distiset_configs, open_source, rows_source

FIXTURES = Path(__file__).parent / "fixtures" / "seed"
DISTISET = FIXTURES / "distiset"

ROWS = [
    {"instruction": f"prompt {i}", "generations": [f"a{i}", f"b{i}"], "generation_models": ["m-a", "m-b"]}
    for i in range(7)
]


def all_rows(
    reader: SourceReader, batch_size: int = 3, columns: list[str] | None = None
) -> list[dict[str, Any]]:
    batches = list(reader.iter_batches(batch_size, columns=columns))
    assert all(0 < len(b) <= batch_size for b in batches)
    return [row for batch in batches for row in batch]


# distilabel Distiset folders ------------------------------------------------------------------


def test_real_distiset_lists_its_configs() -> None:
    assert distiset_configs(DISTISET) == ["keep_columns_0", "ultra_feedback_0"]


def test_distiset_with_two_configs_needs_a_choice() -> None:
    with pytest.raises(UsageError, match=r"2 configs: keep_columns_0, ultra_feedback_0.*--config"):
        open_source(DISTISET)


def test_distiset_unknown_config_lists_the_configs() -> None:
    with pytest.raises(
        NotFound, match=r"no config 'nope'; its configs are: keep_columns_0, ultra_feedback_0"
    ):
        open_source(DISTISET, config="nope")


def test_distiset_reads_the_chosen_config() -> None:
    reader = open_source(DISTISET, config="ultra_feedback_0")
    assert reader.kind == "distiset"
    assert reader.config == "ultra_feedback_0"
    assert reader.split == "train"
    assert reader.short_name == "distiset:ultra_feedback_0"
    assert reader.schema is not None
    # the real column names a generate -> GroupColumns -> UltraFeedback pipeline writes
    assert set(reader.columns) >= {
        "instruction",
        "generations",
        "generation_models",
        "ratings",
        "rationales",
        "model_name",
        "distilabel_metadata",
    }
    rows = all_rows(reader, columns=["instruction", "generations", "model_name"])
    assert len(rows) == 4
    assert set(rows[0]) == {"instruction", "generations", "model_name"}
    assert rows[0]["model_name"] == "judge-model"
    assert len(rows[0]["generations"]) == 2


def test_distiset_with_one_config_needs_no_choice(tmp_path: Path) -> None:
    single = tmp_path / "single"
    shutil.copytree(DISTISET, single)
    shutil.rmtree(single / "keep_columns_0")
    reader = open_source(single)
    assert reader.config == "ultra_feedback_0"


def test_distiset_written_with_datasets_in_several_shards(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    root = tmp_path / "distiset"
    DatasetDict({"train": Dataset.from_list(ROWS)}).save_to_disk(
        str(root / "default"), num_shards={"train": 3}
    )
    (root / "distiset_configs").mkdir()
    reader = open_source(root)
    assert reader.config == "default"
    assert [r["instruction"] for r in all_rows(reader, batch_size=2)] == [f"prompt {i}" for i in range(7)]


def test_unknown_column_asked_for_is_an_error() -> None:
    reader = open_source(DISTISET, config="keep_columns_0")
    with pytest.raises(InputError, match="no column 'generations'"):
        reader.iter_batches(10, columns=["generations"])


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(UsageError):
        rows_source(ROWS).iter_batches(0)


# datasets save_to_disk folders ------------------------------------------------------------------


def test_saved_dataset_folder(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    reader = open_source(tmp_path / "ds")
    assert reader.kind == "datasets"
    assert len(all_rows(reader)) == 7


def test_saved_dataset_dict_folder_and_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list(ROWS[:2]), "train": Dataset.from_list(ROWS)}).save_to_disk(
        str(tmp_path / "dd")
    )
    assert len(all_rows(open_source(tmp_path / "dd"))) == 7  # train by default
    assert len(all_rows(open_source(tmp_path / "dd", split="test"))) == 2
    with pytest.raises(NotFound, match="its splits are: test, train"):
        open_source(tmp_path / "dd", split="validation")


# files ------------------------------------------------------------------------------------------


def test_parquet_file_and_folder(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet", row_group_size=2)
    reader = open_source(tmp_path / "a.parquet")
    assert reader.kind == "parquet"
    assert reader.short_name == "a.parquet"
    assert reader.columns == ("instruction", "generations", "generation_models")
    assert [r["generations"] for r in all_rows(reader)][3] == ["a3", "b3"]

    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS[:3]), folder / "train-0.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS[3:]), folder / "train-1.parquet")
    assert len(all_rows(open_source(folder))) == 7


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n", encoding="utf-8")
    reader = open_source(path)
    assert reader.kind == "jsonl"
    assert reader.columns == ("instruction", "generations", "generation_models")
    rows = all_rows(reader, columns=["instruction"])
    assert rows[-1] == {"instruction": "prompt 6"}


def test_jsonl_bad_line_cites_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2: invalid JSON"):
        open_source(path)  # the first lines are read to learn the columns
    late = tmp_path / "late.jsonl"
    late.write_text('{"prompt": "a"}\n' * 150 + "[1, 2]\n", encoding="utf-8")
    # every line is read to learn the columns, so a bad late line fails at open
    with pytest.raises(InputError, match="line 151: expected a JSON object"):
        all_rows(open_source(late), batch_size=100)


def test_json_array_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    with pytest.raises(InputError, match="JSON Lines"):
        open_source(path)


def test_csv_and_tsv_read_every_column_as_text(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('prompt,response,round\n"Hi, you",hello,1\n"multi\nline",bye,2\n', encoding="utf-8")
    reader = open_source(path)
    assert reader.kind == "csv"
    assert all_rows(reader) == [
        {"prompt": "Hi, you", "response": "hello", "round": "1"},
        {"prompt": "multi\nline", "response": "bye", "round": "2"},
    ]
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("prompt\tresponse\nHi\thello\n", encoding="utf-8")
    assert all_rows(open_source(tsv), columns=["response"]) == [{"response": "hello"}]


def test_aya_rows(tmp_path: Path) -> None:
    aya = [
        {
            "inputs": "Wat is een haiku?",
            "targets": "Een kort Japans gedicht.",
            "language": "Dutch",
            "language_code": "nld",
            "annotation_type": "original-annotations",
            "user_id": "u1",
        }
    ]
    pq.write_table(pa.Table.from_pylist(aya), tmp_path / "aya.parquet")
    reader = open_source(tmp_path / "aya.parquet")
    assert reader.columns == ("inputs", "targets", "language", "language_code", "annotation_type", "user_id")
    assert all_rows(reader)[0]["targets"] == "Een kort Japans gedicht."


def test_missing_path_and_unsupported_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="No such file or folder"):
        open_source(tmp_path / "missing.parquet")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"unsupported file type '\.txt'"):
        open_source(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no Distiset"):
        open_source(tmp_path / "empty")


# Hub ids ---------------------------------------------------------------------------------------


def test_hub_id_streams_through_load_dataset_with_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import load_dataset

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "train.parquet")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    calls: list[dict[str, Any]] = []

    def loader(repo_id: str, **kwargs: Any) -> Any:
        calls.append({"repo_id": repo_id, **kwargs})
        # no Hub here: the same streaming loader, pointed at a local parquet file
        return load_dataset(
            "parquet", data_files=str(tmp_path / "train.parquet"), split=kwargs["split"], streaming=True
        )

    reader = open_source("someone/aya-nl", loader=loader)
    assert reader.kind == "hub"
    assert reader.name == "someone/aya-nl"
    assert set(reader.columns) == {"instruction", "generations", "generation_models"}
    rows = all_rows(reader, batch_size=4, columns=["instruction"])
    assert [r["instruction"] for r in rows] == [f"prompt {i}" for i in range(7)]
    assert calls[0] == {
        "repo_id": "someone/aya-nl",
        "name": None,
        "split": "train",
        "streaming": True,
        "token": "hf_test_token",
    }


def test_hub_errors_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def missing(repo_id: str, **kwargs: Any) -> Any:
        raise FileNotFoundError(f"Dataset '{repo_id}' doesn't exist on the Hub")

    def needs_config(repo_id: str, **kwargs: Any) -> Any:
        raise ValueError("Config name is missing. Please pick one among the available configs: ['nl', 'fr']")

    with pytest.raises(NotFound, match="HF_TOKEN"):
        open_source("someone/private", loader=missing)
    with pytest.raises(UsageError, match=r"\['nl', 'fr'\].*--config"):
        open_source("someone/multi", loader=needs_config)


# bounded memory --------------------------------------------------------------------------------


def test_large_parquet_streams_in_bounded_batches(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    total, chunk = 200_000, 20_000
    schema = pa.schema([("instruction", pa.string()), ("generations", pa.list_(pa.string()))])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, total, chunk):
            ids = range(start, start + chunk)
            writer.write_table(
                pa.table(
                    {"instruction": [f"p{i}" for i in ids], "generations": [[f"a{i}", f"b{i}"] for i in ids]},
                    schema=schema,
                ),
                row_group_size=5_000,
            )
    reader = open_source(path)
    baseline = pa.total_allocated_bytes()
    peak = 0
    count = 0
    largest = 0
    for batch in reader.iter_batches(1_000):
        count += len(batch)
        largest = max(largest, len(batch))
        peak = max(peak, pa.total_allocated_bytes() - baseline)
    assert count == total
    assert largest == 1_000
    # arrow holds about one row group at a time, never the whole file (~5 MB of text)
    assert peak < 4_000_000


# bad inputs: one clear error, or rows read as the user meant ------------------------------------


def test_jsonl_columns_that_first_appear_late_are_seen(tmp_path: Path) -> None:
    rows = [{"instruction": f"p{i}", "generations": ["a", "b"]} for i in range(250)]
    for row in rows[150:]:
        row.update(ratings=[4, 5], generation_models=["m1", "m2"])
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    reader = open_source(path)
    assert set(reader.columns) == {"instruction", "generations", "ratings", "generation_models"}
    read = all_rows(reader, batch_size=100, columns=["instruction", "ratings"])
    assert read[200] == {"instruction": "p200", "ratings": [4, 5]}
    assert read[0] == {"instruction": "p0", "ratings": None}


def test_a_utf8_bom_is_accepted_in_jsonl_as_in_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS[0]).encode() + b"\n")
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b'\xef\xbb\xbfinstruction,generations\np,"[""a"",""b""]"\n')
    assert all_rows(open_source(jsonl))[0]["instruction"] == "prompt 0"
    assert open_source(csv).columns == ("instruction", "generations")


def test_a_latin1_jsonl_names_the_line_and_the_remedy(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    lines = [
        json.dumps(ROWS[0]),
        json.dumps({"instruction": "café", "generations": ["a", "b"]}, ensure_ascii=False),
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.jsonl line 2: not UTF-8 text.*Save the file as UTF-8"):
        open_source(path)


def test_deeply_nested_json_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"instruction": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: JSON nested too deeply"):
        open_source(path)


def test_a_line_holding_an_array_is_not_called_an_array_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('["a", "b"]\n' + json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: expected a JSON object, got list"):
        open_source(path)
    one_line_array = tmp_path / "array.jsonl"
    one_line_array.write_text(json.dumps(ROWS[:2]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="is a JSON array"):
        open_source(one_line_array)


def test_a_corrupt_arrow_file_in_a_datasets_folder(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    arrow = next((tmp_path / "ds").glob("*.arrow"))
    arrow.write_bytes(b"not arrow at all" * 10)
    with pytest.raises(InputError, match=r"\.arrow is not a readable Arrow file.*save_to_disk"):
        open_source(tmp_path / "ds")


def test_an_arrow_file_cut_short_fails_while_reading(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS * 300).save_to_disk(str(tmp_path / "ds"))
    arrow = next((tmp_path / "ds").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    with pytest.raises(InputError, match="not a readable Arrow file"):
        all_rows(open_source(tmp_path / "ds"), batch_size=100)


def test_a_csv_with_a_duplicated_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("instruction,generations,instruction\np,x,q\n", encoding="utf-8")
    with pytest.raises(InputError, match="names column 'instruction' more than once"):
        open_source(path)


@pytest.mark.parametrize("source", ["data/rows.jsonl", "./nothere", "~/nothere/x", "tsets/train.parquet"])
def test_a_mistyped_local_path_is_no_such_file_not_a_hub_id(source: str, tmp_path: Path) -> None:
    def hub(repo_id: str, **kwargs: Any) -> Any:
        raise AssertionError(f"{repo_id} was looked up on the Hub")

    with pytest.raises(NotFound, match="No such file or folder"):
        open_source(source, loader=hub)


def test_a_missing_file_in_an_existing_folder_is_no_such_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)

    def hub(repo_id: str, **kwargs: Any) -> Any:
        raise AssertionError(f"{repo_id} was looked up on the Hub")

    with pytest.raises(NotFound, match="No such file or folder: data/train"):
        open_source("data/train", loader=hub)


def test_an_unreachable_hub_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def unreachable(repo_id: str, **kwargs: Any) -> Any:
        raise requests.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=9): refused")

    with pytest.raises(InputError, match=r"Could not reach the Hub for 'someone/data'.*HF_ENDPOINT"):
        open_source("someone/data", loader=unreachable)
