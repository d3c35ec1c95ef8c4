"""Opt-in: TRL 1.16 trains two steps on each export as written (DPO, ORPO, KTO; standard and --chat).

Run with `pytest -m slow tests/test_trl_training.py` after installing the trainer stack into the venv:
`pip install torch==2.13.0` first (the CPU wheel on local disk), then `pip install transformers accelerate`
and `pip install --no-deps trl==1.16.0` (trl 1.16 declares datasets>=4.7, while the project pins
datasets==4.1.1 for argilla-server's click<8.2; the exports train fine with it). It is not a package extra
because that set does not resolve together. The model and tokenizer are tiny, random and built offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_export_data import rating_campaign

from campaign.cli import cli
from campaign.snapshot import save_snapshot

pytestmark = pytest.mark.slow

SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
# A minimal chat template: a role marker, the content, an end marker; generation prompt opens the assistant.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same small rating campaign exported in standard and conversational form (all formats)."""
    root = tmp_path_factory.mktemp("trl")
    campaign_dir = root / "camp"
    save_snapshot(campaign_dir, rating_campaign(60))
    folders = {}
    for variant, extra in (("standard", []), ("chat", ["--chat", "--system-prompt", "Answer briefly."])):
        out = root / variant
        result = CliRunner(mix_stderr=False).invoke(
            cli,
            [
                "export",
                "--campaign",
                str(campaign_dir),
                "--no-sync",
                "--format",
                "all",
                "--out",
                str(out),
                *extra,
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.stderr
        folders[variant] = out
    return folders


def _texts(folder: Path) -> list[str]:
    """Every string in an export's train files, for the tokenizer's vocabulary."""
    import polars as pl

    texts: list[str] = []
    for path in sorted(folder.glob("*/train.parquet")):
        frame = pl.read_parquet(path)
        for column in ("prompt", "chosen", "rejected", "completion"):
            if column not in frame.columns:
                continue
            series = frame.get_column(column)
            if series.dtype == pl.String:
                texts += series.to_list()
            else:
                texts += [message["content"] for row in series.to_list() for message in row]
    return texts


@pytest.fixture(scope="module")
def tokenizer(exports: dict[str, Path]) -> Any:
    """A character-level tokenizer over the export text, with BOS/EOS/PAD and a chat template.

    One token per character, so that no token spans the prompt/completion boundary when TRL joins them.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    texts = _texts(exports["standard"]) + _texts(exports["chat"]) + ["Answer briefly."]
    raw.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    raw.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _models(tokenizer: Any) -> tuple[Any, Any]:
    """A tiny random Llama and an identical reference copy (TRL would otherwise load one by name)."""
    import copy

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    return model, copy.deepcopy(model)


def _dataset(folder: Path, fmt: str) -> Any:
    """The train split exactly as a user would load it."""
    from datasets import load_dataset

    return load_dataset("parquet", data_files={"train": str(folder / fmt / "train.parquet")}, split="train")


def _common(tmp_path: Path) -> dict[str, Any]:
    return {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "save_strategy": "no",
        "report_to": [],
        "logging_steps": 1,
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "max_length": 256,
    }


def _trained(trainer: Any) -> None:
    """Two optimiser steps ran and the loss is a finite number."""
    import math

    output = trainer.train()
    assert output.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses)


@pytest.mark.parametrize("variant", ["standard", "chat"])
def test_dpo_trains(exports, tokenizer, variant, tmp_path):
    from trl import DPOConfig, DPOTrainer

    dataset = _dataset(exports[variant], "dpo")
    args = DPOConfig(**_common(tmp_path))
    model, reference = _models(tokenizer)
    trainer = DPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    _trained(trainer)


@pytest.mark.parametrize("variant", ["standard", "chat"])
def test_orpo_trains(exports, tokenizer, variant, tmp_path):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    dataset = _dataset(exports[variant], "orpo")
    args = ORPOConfig(**_common(tmp_path))
    model, _ = _models(tokenizer)
    trainer = ORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    _trained(trainer)


@pytest.mark.parametrize("variant", ["standard", "chat"])
def test_kto_trains(exports, tokenizer, variant, tmp_path):
    from trl import KTOConfig, KTOTrainer

    dataset = _dataset(exports[variant], "kto")
    labels = dataset["label"]
    assert any(labels) and not all(labels)  # KTO needs both desirable and undesirable examples
    args = KTOConfig(**_common(tmp_path))
    model, reference = _models(tokenizer)
    trainer = KTOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    _trained(trainer)


def test_manifest_names_the_formats_trained(exports):
    for folder in exports.values():
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(manifest["formats"]) == {"dpo", "orpo", "kto"}
