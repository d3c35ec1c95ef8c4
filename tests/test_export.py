"""Export: TRL columns, validation, splits, card, atomic folder writes, datasets round trip, Hub push."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_export_data import label, rating_campaign, ratings, record, snapshot

from campaign.consensus import ConsensusPolicy, consolidate_pairs, consolidate_unpaired
from campaign.errors import AuthenticationFailed, InputError, NotEnoughData, NotFound, UsageError
from campaign.export import (
    ExportOptions,
    build_export,
    export_snapshot,
    kto_weights,
    push_to_hub,
    to_format,
    write_export,
    writers,
)
from campaign.export.card import card_header, size_category, weighted_ratio
from campaign.export.formats import validate_rows
from campaign.export.splits import is_test, split_by_prompt
from campaign.export.splits import test_prompts as hashed_test_prompts

# --- formats and validation ---------------------------------------------------------------------------


def consensus_frames():
    snap = rating_campaign(12)
    args = {"min_submitted": 2}
    pairs = consolidate_pairs(snap.records, snap.responses, **args).frame
    examples = consolidate_unpaired(snap.records, snap.responses, **args).frame
    return pairs, examples


def test_standard_columns_lead_with_trl_ones():
    pairs, examples = consensus_frames()
    dpo = to_format(pairs, "dpo")
    assert dpo.columns[:3] == ["prompt", "chosen", "rejected"]
    assert {
        "prompt_id",
        "record_id",
        "chosen_model",
        "rejected_model",
        "chosen_score",
        "rejected_score",
    } <= set(dpo.columns)
    assert {"margin", "n_annotators", "agreement", "source"} <= set(dpo.columns)
    assert "annotators" not in dpo.columns
    kto = to_format(examples, "kto")
    assert kto.columns[:3] == ["prompt", "completion", "label"]
    assert {"model", "score", "n_annotators", "agreement"} <= set(kto.columns)
    assert kto.schema["label"] == pl.Boolean


def test_chat_format_builds_message_lists():
    pairs, examples = consensus_frames()
    row = to_format(pairs, "orpo", chat=True, system_prompt="Answer in Dutch.").row(0, named=True)
    assert row["prompt"] == [
        {"role": "system", "content": "Answer in Dutch."},
        {"role": "user", "content": pairs["prompt"][0]},
    ]
    assert row["chosen"] == [{"role": "assistant", "content": pairs["chosen"][0]}]
    kto = to_format(examples, "kto", chat=True).row(0, named=True)
    assert kto["prompt"] == [{"role": "user", "content": examples["prompt"][0]}]
    assert kto["completion"][0]["role"] == "assistant" and isinstance(kto["label"], bool)


def test_system_prompt_needs_chat():
    pairs, _ = consensus_frames()
    with pytest.raises(UsageError, match="--chat"):
        to_format(pairs, "dpo", system_prompt="Be brief.")


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [("chosen", "  ", "'chosen' is null or empty"), ("prompt", None, "'prompt' is null or empty")],
)
def test_every_row_is_validated_not_just_the_first(column, value, problem):
    pairs, _ = consensus_frames()
    last = pairs.height - 1
    broken = pairs.with_columns(
        pl.when(pl.int_range(pl.len()) == last).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )
    with pytest.raises(InputError, match=rf"{problem} \(first: row {last}"):
        validate_rows(broken, "dpo")


def test_validation_catches_equal_pairs_and_bad_labels():
    pairs, examples = consensus_frames()
    with pytest.raises(InputError, match="'chosen' equals 'rejected'"):
        validate_rows(pairs.with_columns(rejected=pl.col("chosen")), "dpo")
    with pytest.raises(InputError, match="must be boolean"):
        validate_rows(examples.with_columns(pl.col("label").cast(pl.Int64)), "kto")
    with pytest.raises(InputError, match="'label' is null"):
        validate_rows(examples.with_columns(label=pl.lit(None, dtype=pl.Boolean)), "kto")


# --- splits -------------------------------------------------------------------------------------------


def test_split_is_by_prompt_and_deterministic():
    frame = pl.DataFrame({"prompt_id": [f"p{i % 40}" for i in range(200)], "x": list(range(200))})
    first = split_by_prompt(frame, test_size=0.25, seed=7)
    again = split_by_prompt(frame, test_size=0.25, seed=7)
    assert first["test"].equals(again["test"])
    assert not set(first["train"]["prompt_id"]) & set(first["test"]["prompt_id"])
    assert first["train"].height + first["test"].height == 200
    assert 0 < first["test"]["prompt_id"].n_unique() < 40
    other = split_by_prompt(frame, test_size=0.25, seed=8)
    assert set(other["test"]["prompt_id"]) != set(first["test"]["prompt_id"])
    assert split_by_prompt(frame, test_size=0, seed=0)["test"].height == 0


def test_split_rejects_bad_test_size():
    with pytest.raises(UsageError, match="test-size"):
        split_by_prompt(pl.DataFrame({"prompt_id": ["a"]}), test_size=1.0, seed=0)


@pytest.mark.parametrize("seed", [0, 1])  # "None" hashes to train with seed 0 and to test with seed 1
def test_split_refuses_rows_without_prompt_id(seed):
    # Such a row used to vanish from both splits, or crash sorting the test prompt ids.
    frame = pl.DataFrame(
        {"prompt_id": [f"p{i}" for i in range(30)] + [None], "record_id": [f"r{i}" for i in range(31)]}
    )
    with pytest.raises(InputError, match=r"1 row\(s\) have no prompt_id \(first: record r30\)"):
        split_by_prompt(frame, test_size=0.1, seed=seed)


@given(
    ids=st.lists(st.text(min_size=1, max_size=12), max_size=60),
    test_size=st.floats(min_value=0, max_value=0.99),
    seed=st.integers(min_value=0, max_value=10**6),
)
@settings(max_examples=100, deadline=None)
def test_no_prompt_in_both_splits(ids, test_size, seed):
    frame = pl.DataFrame({"prompt_id": ids + ids[::-1]}, schema={"prompt_id": pl.String})
    parts = split_by_prompt(frame, test_size=test_size, seed=seed)
    assert not set(parts["train"]["prompt_id"]) & set(parts["test"]["prompt_id"])
    assert parts["train"].height + parts["test"].height == frame.height
    for pid in parts["test"]["prompt_id"]:
        assert is_test(pid, test_size=test_size, seed=seed)


@pytest.mark.parametrize("test_size", [0.0, 5e-324, 1e-12, 0.1, 1 / 3, 0.5, 0.9999999999999999, 1.0, 1.5])
def test_test_prompts_agree_with_is_test(test_size):
    ids = [f"prompt-{i}" for i in range(3000)] + ["", "é", "a b"]
    for seed in (0, 7):
        expected = sorted(p for p in ids if is_test(p, test_size=test_size, seed=seed))
        assert hashed_test_prompts(ids, test_size=test_size, seed=seed) == expected
        # A string column takes the path that hashes its UTF-8 bytes without str objects.
        assert hashed_test_prompts(pl.Series(ids), test_size=test_size, seed=seed) == expected


# --- card ---------------------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=1, max_value=10**6))
def test_kto_weights_land_in_trl_range(n_desirable, n_undesirable):
    weights = kto_weights(n_desirable, n_undesirable)
    assert weights is not None
    assert 1 <= weighted_ratio(n_desirable, n_undesirable, **weights) <= 4 / 3


def test_kto_weights_need_both_classes():
    assert kto_weights(10, 0) is None and kto_weights(0, 3) is None
    assert kto_weights(12, 10) == {"desirable_weight": 1.0, "undesirable_weight": 1.0}


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 50_000, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M",
    ]  # fmt: skip


# --- folder writes ------------------------------------------------------------------------------------


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_layout_manifest_and_card(tmp_path):
    out = tmp_path / "export"
    result = export_snapshot(
        rating_campaign(60),
        out,
        ExportOptions(formats="all", jsonl=True, name="Dutch DPO", language="nl", license="apache-2.0"),
    )
    assert result.path == str(out)
    names = set(files_of(out))
    assert {
        "README.md",
        "manifest.json",
        "dpo/train.parquet",
        "orpo/train.parquet",
        "kto/train.parquet",
    } <= names
    assert "dpo/train.jsonl" in names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["snapshot"]["snapshot_id"] == "snap-1"
    assert manifest["rounds"] == [1, 2] and manifest["options"]["rounds"] == "all"
    assert set(manifest["packages"]) == {"argilla-campaign", "polars", "pyarrow"}
    dpo = manifest["formats"]["dpo"]
    assert dpo["kept"] + sum(dpo["dropped"].values()) == dpo["total"] == 60
    assert sum(f["rows"] for f in dpo["files"].values()) == dpo["rows"] == dpo["kept"]
    assert manifest["formats"]["kto"]["balance"]["desirable"] > 0
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["language"] == ["nl"] and header["license"] == "apache-2.0"
    assert header["size_categories"] == ["n<1K"]
    assert [cfg["config_name"] for cfg in header["configs"]] == ["dpo", "orpo", "kto"]
    for cfg in header["configs"]:
        for entry in cfg["data_files"]:
            assert (out / entry["path"]).is_file()
    for text in ("from trl import DPOTrainer", "from trl.experimental.orpo import", "KTOTrainer"):
        assert text.replace("DPOTrainer", "DPOConfig, DPOTrainer") in card or text in card
    assert "desirable_weight" in card and "Dropped, by reason" in card and "# Dutch DPO" in card


def test_reexport_is_byte_identical(tmp_path):
    snap = rating_campaign(40)
    options = {"formats": "all", "chat": True, "system_prompt": "Hi", "jsonl": True, "test_size": 0.3}
    export_snapshot(snap, tmp_path / "a", ExportOptions(**options))
    export_snapshot(snap, tmp_path / "b", ExportOptions(**options))
    first, second = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert first == second and len(first) > 6


def test_parquet_files_are_snappy_with_dictionaries_only_for_repetitive_columns(tmp_path):
    import pyarrow.parquet as pq

    export_snapshot(
        rating_campaign(40), tmp_path / "out", ExportOptions(formats=["dpo", "kto"], test_size=0.0)
    )
    for fmt, free_text in (("dpo", {"prompt", "chosen", "rejected"}), ("kto", {"prompt", "completion"})):
        meta = pq.ParquetFile(tmp_path / "out" / fmt / "train.parquet").metadata
        columns = {
            meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
            for i in range(meta.num_columns)
        }
        assert {c.compression for c in columns.values()} == {"SNAPPY"}
        for name in free_text:
            assert not columns[name].is_stats_set
            assert "RLE_DICTIONARY" not in columns[name].encodings
        assert columns["record_id"].is_stats_set and "RLE_DICTIONARY" not in columns["record_id"].encodings
        assert columns["source"].is_stats_set and "RLE_DICTIONARY" in columns["source"].encodings


def test_refuses_non_empty_folder_even_with_overwrite(tmp_path):
    # --overwrite replaces only an earlier export (recognised by its manifest), never another folder.
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(UsageError, match=r"keep\.txt"):
            export_snapshot(rating_campaign(10), out, ExportOptions(formats="dpo", overwrite=overwrite))
        assert files_of(out) == {"keep.txt": b"mine"}
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_overwrite_replaces_an_earlier_export(tmp_path):
    out = tmp_path / "export"
    export_snapshot(rating_campaign(10), out, ExportOptions(formats="kto"))
    with pytest.raises(UsageError, match="--overwrite"):
        export_snapshot(rating_campaign(10), out, ExportOptions(formats="dpo"))
    export_snapshot(rating_campaign(10), out, ExportOptions(formats="dpo", overwrite=True))
    assert not (out / "kto").exists() and (out / "dpo" / "train.parquet").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "export").mkdir()
    export_snapshot(rating_campaign(10), tmp_path / "export", ExportOptions(formats="kto"))
    assert (tmp_path / "export" / "kto" / "train.parquet").is_file()


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = writers.write_frame

    def flaky(frame, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(frame, path, **kwargs)

    monkeypatch.setattr(writers, "write_frame", flaky)
    with pytest.raises(KeyboardInterrupt):
        export_snapshot(rating_campaign(30), tmp_path / "export", ExportOptions(formats="all"))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_export(tmp_path, monkeypatch):
    out = tmp_path / "export"
    export_snapshot(rating_campaign(10), out, ExportOptions(formats="dpo"))
    before = files_of(out)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writers, "render_card", boom)
    with pytest.raises(OSError, match="disk full"):
        export_snapshot(rating_campaign(20), out, ExportOptions(formats="all", overwrite=True))
    assert files_of(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_nothing_kept_raises_with_reasons(tmp_path):
    snap = snapshot(record("r1", ["a", "b"]), ratings("r1", "x", [3, 3]) + ratings("r1", "y", [3, 3]))
    with pytest.raises(NotEnoughData, match="tie=1"):
        export_snapshot(snap, tmp_path / "out", ExportOptions(formats="dpo"))
    assert not (tmp_path / "out").exists()


def test_empty_formats_are_skipped_when_others_have_data(tmp_path):
    recs = record("r1", ["c"], template="binary") + record("r2", ["d"], template="binary")
    resp = label("r1", "x", "good") + label("r2", "x", "good")
    result = export_snapshot(snapshot(recs, resp, template="binary", min_submitted=1), tmp_path / "o")
    assert list(result.formats) == ["kto"] and set(result.skipped) == {"dpo", "orpo"}
    assert not (tmp_path / "o" / "dpo").exists()


def test_rounds_are_selected_and_recorded(tmp_path):
    result = export_snapshot(rating_campaign(30), tmp_path / "o", ExportOptions(formats="dpo", rounds=[2]))
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["rounds"] == [2] and manifest["options"]["rounds"] == [2]
    frame = pl.read_parquet(tmp_path / "o" / "dpo" / "train.parquet")
    assert set(frame["round"]) == {2}
    assert result.formats["dpo"].consolidation.total == 15
    with pytest.raises(UsageError, match=r"Round\(s\) 9 not in the snapshot"):
        build_export(rating_campaign(4), ExportOptions(rounds=[9]))


def test_usernames_never_written_unless_asked(tmp_path):
    snap = rating_campaign(20)
    policy = ConsensusPolicy(exclude_annotators=["mallory"])
    export_snapshot(snap, tmp_path / "plain", ExportOptions(formats="all", policy=policy, jsonl=True))
    export_snapshot(
        snap,
        tmp_path / "anon",
        ExportOptions(formats="all", policy=policy, jsonl=True, annotators="anonymised"),
    )
    for folder in ("plain", "anon"):
        for name, data in files_of(tmp_path / folder).items():
            for user in (b"alice", b"bob", b"mallory"):
                assert user not in data, f"{user!r} in {folder}/{name}"
    anon = pl.read_parquet(tmp_path / "anon" / "dpo" / "train.parquet")
    assert all(name.startswith("annotator-") for names in anon["annotators"] for name in names)
    export_snapshot(snap, tmp_path / "named", ExportOptions(formats="dpo", annotators="usernames"))
    named = pl.read_parquet(tmp_path / "named" / "dpo" / "train.parquet")
    assert set(named["annotators"].explode()) == {"alice", "bob"}


# --- datasets round trip ------------------------------------------------------------------------------


def load(folder: Path, fmt: str):
    from datasets import load_dataset

    files = {split: str(folder / fmt / f"{split}.parquet") for split in ("train", "test")}
    files = {split: path for split, path in files.items() if Path(path).exists()}
    return load_dataset("parquet", data_files=files, cache_dir=str(folder.parent / "hf-cache"))


def test_datasets_loads_standard_exports(tmp_path):
    export_snapshot(rating_campaign(60), tmp_path / "out", ExportOptions(formats="all", test_size=0.3))
    dpo = load(tmp_path / "out", "dpo")
    assert set(dpo) == {"train", "test"}
    assert dpo["train"].column_names[:3] == ["prompt", "chosen", "rejected"]
    assert dpo["train"].features["chosen"].dtype == "string"
    assert set(dpo["train"]["prompt_id"]).isdisjoint(dpo["test"]["prompt_id"])
    kto = load(tmp_path / "out", "kto")
    assert kto["train"].features["label"].dtype == "bool"
    assert all(isinstance(v, bool) for v in kto["train"]["label"])


def test_datasets_loads_conversational_exports(tmp_path):
    export_snapshot(
        rating_campaign(30),
        tmp_path / "out",
        ExportOptions(formats="all", chat=True, system_prompt="Be kind."),
    )
    row = load(tmp_path / "out", "orpo")["train"][0]
    assert row["prompt"][0] == {"role": "system", "content": "Be kind."}
    assert row["prompt"][1]["role"] == "user"
    assert row["chosen"][0]["role"] == "assistant" and row["rejected"][0]["role"] == "assistant"
    kto = load(tmp_path / "out", "kto")["train"][0]
    assert kto["completion"][0]["role"] == "assistant" and isinstance(kto["label"], bool)


# --- Hub ----------------------------------------------------------------------------------------------


class RecordingApi:
    """Duck-types the two HfApi methods an export uses, recording every call."""

    def __init__(self, fail_status: int | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.fail_status = fail_status

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        if self.fail_status:
            import requests
            from huggingface_hub.errors import HfHubHTTPError

            response = requests.Response()
            response.status_code = self.fail_status
            raise HfHubHTTPError("denied", response=response)
        return f"https://huggingface.co/datasets/{kwargs['repo_id']}"

    def upload_folder(self, **kwargs):
        self.calls.append(
            ("upload_folder", {**kwargs, "files": sorted(files_of(Path(kwargs["folder_path"])))})
        )


def test_push_creates_private_repo_and_uploads_in_one_commit(tmp_path):
    api = RecordingApi()
    result = export_snapshot(
        rating_campaign(20), tmp_path / "out", ExportOptions(formats="dpo", hub_repo="me/data"), api=api
    )
    assert result.hub_url == "https://huggingface.co/datasets/me/data"
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder"]
    create, upload = api.calls[0][1], api.calls[1][1]
    assert create["private"] is True and create["repo_type"] == "dataset" and create["exist_ok"] is True
    assert upload["repo_type"] == "dataset" and upload["folder_path"] == str(tmp_path / "out")
    assert "snap-1" in upload["commit_message"]
    assert {"README.md", "manifest.json", "dpo/train.parquet"} <= set(upload["files"])
    assert 'load_dataset("me/data", "dpo")' in (tmp_path / "out" / "README.md").read_text()


def test_push_without_out_uses_a_temporary_folder(tmp_path):
    api = RecordingApi()
    result = export_snapshot(
        rating_campaign(20), None, ExportOptions(formats="kto", hub_repo="me/kto", private=False), api=api
    )
    assert result.path is None and api.calls[0][1]["private"] is False
    assert not Path(api.calls[1][1]["folder_path"]).exists()


def test_push_errors_are_translated(tmp_path):
    export_snapshot(rating_campaign(10), tmp_path / "out", ExportOptions(formats="dpo"))
    with pytest.raises(AuthenticationFailed, match="hf auth login"):
        push_to_hub(tmp_path / "out", "me/data", api=RecordingApi(fail_status=401))
    with pytest.raises(NotFound, match="not an export folder"):
        push_to_hub(tmp_path, "me/data", api=RecordingApi())
    with pytest.raises(UsageError, match="--out DIR"):
        export_snapshot(rating_campaign(10), None)


def test_token_is_never_written(tmp_path):
    api = RecordingApi()
    export_snapshot(
        rating_campaign(10), tmp_path / "out", ExportOptions(hub_repo="me/x"), token="hf_secret123", api=api
    )
    assert all(b"hf_secret123" not in data for data in files_of(tmp_path / "out").values())
    assert api.calls[0][1]["token"] == "hf_secret123"


def test_write_export_from_a_built_result(tmp_path):
    result = build_export(rating_campaign(10), ExportOptions(formats=["kto", "dpo"]))
    assert list(result.formats) == ["dpo", "kto"]
    written = write_export(result, tmp_path / "o")
    assert written.path == str(tmp_path / "o") and result.path is None
    assert card_header(json.loads((tmp_path / "o" / "manifest.json").read_text()), language=None, license="x")


def test_card_shows_agreement_table(tmp_path):
    stat = {"statistic": "alpha", "level": "ordinal", "value": 0.8123, "n_units": 40}
    agreement = {"overall": stat, "per_question": {"rating_1": {**stat, "value": None, "reason": "too few"}}}
    export_snapshot(rating_campaign(10), tmp_path / "o", ExportOptions(formats="dpo"), agreement=agreement)
    card = (tmp_path / "o" / "README.md").read_text()
    assert "| overall | alpha | ordinal | 0.812 | 40 |" in card
    assert "| rating_1 | alpha | ordinal | too few | 40 |" in card


def test_an_export_cleans_up_the_staging_folder_of_a_killed_export(tmp_path: Path) -> None:
    import subprocess
    import sys

    from campaign.destinations import remove_leftovers

    out = tmp_path / "v1"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f".v1.tmp-{dead.pid}-abc"
    abandoned.mkdir()
    (abandoned / "partial.parquet").write_bytes(b"x")
    ours = tmp_path / f".v1.tmp-{os.getpid()}-def"
    ours.mkdir()
    remove_leftovers(out)
    assert not abandoned.exists()
    assert ours.exists()  # a live export's staging folder is left alone


def test_plain_strings_match_arrows_cast_for_slices_and_nulls():
    import pyarrow as pa

    frame = pl.DataFrame(
        {
            "text": ["a", None, "ccc", "", "é" * 5],
            "n": [1, 2, 3, 4, 5],
            "tags": [["x"], [], None, ["y"], ["z"]],
        }
    )
    for part in (frame, frame.slice(1, 3), pl.concat([frame, frame.slice(2)], rechunk=False)):
        table = part.to_arrow()
        plain = writers._plain_table(table)
        assert plain.schema.field("text").type == pa.string()
        assert plain.schema.field("tags").type == pa.list_(pa.string())
        assert plain.equals(table.cast(plain.schema))
    # An arrow slice (a chunk whose offsets and validity start past 0).
    sliced = pa.table({"text": pa.array(["a", None, "bb", "ccc"], type=pa.large_string()).slice(1, 3)})
    assert writers._plain_table(sliced).equals(sliced.cast(pa.schema([pa.field("text", pa.string())])))


def _python_lines(markdown: str, *, needle: str) -> str:
    """The lines of the first ```python block holding `needle` that import or call `datasets`."""
    for block in markdown.split("```python\n")[1:]:
        code = block.split("```", 1)[0]
        if needle in code:
            return "\n".join(
                line for line in code.splitlines() if "datasets" in line or "load_dataset(" in line
            )
    raise AssertionError(f"no python block with {needle!r}")


def test_an_empty_split_is_left_out_of_disk_manifest_and_card_alike(tmp_path, monkeypatch):
    # Four prompts with test_size 0.01: every prompt lands in train, so every test split is empty.
    out = tmp_path / "dutch-dpo-v1"
    export_snapshot(rating_campaign(4), out, ExportOptions(formats="all", test_size=0.01))
    manifest = json.loads((out / "manifest.json").read_text())
    header = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.parquet")}
    in_manifest = {f["path"] for spec in manifest["formats"].values() for f in spec["files"].values()}
    in_card = {entry["path"] for cfg in header["configs"] for entry in cfg["data_files"]}
    assert (
        on_disk == in_manifest == in_card == {"dpo/train.parquet", "orpo/train.parquet", "kto/train.parquet"}
    )
    assert "has no file" in (out / "README.md").read_text()
    cache = str(tmp_path / "hf-cache")
    monkeypatch.setenv("HF_DATASETS_CACHE", cache)
    # The project README's snippet, typed next to the export folder of its step-by-step section.
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    monkeypatch.chdir(tmp_path)
    loaded: dict = {}
    exec(_python_lines(readme, needle="load_dataset"), loaded)  # the README's own lines
    assert set(loaded["dpo"]) == {"train"} and loaded["dpo"]["train"].num_rows > 0
    # The card's own snippet, run from the export folder, loads every config.
    monkeypatch.chdir(out)
    loaded = {}
    exec(_python_lines((out / "README.md").read_text(), needle="load_dataset"), loaded)
    for fmt in ("dpo", "orpo", "kto"):
        assert set(loaded[fmt]) == {"train"} and loaded[fmt]["train"].num_rows > 0
