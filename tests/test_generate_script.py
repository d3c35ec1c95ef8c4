"""scripts/generate.py: config validation, Aya loading, and the real distilabel pipeline run offline."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from distilabel.models.llms.base import LLM

from campaign.errors import ConfigError, InputError, UsageError
from campaign.readers import open_source
from campaign.seed import SeedOptions, SeedReport, plan_records
from scripts.generate import (
    GenerateConfig,
    LLMConfig,
    build_pipeline,
    load_config,
    load_prompts,
    main,
    parse_config,
    run,
)

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
AYA_SAMPLE = FIXTURES / "aya_sample.jsonl"
CONFIGS = Path(__file__).parent.parent / "scripts" / "configs"
DUTCH_PROMPTS = {
    "Wat is de hoofdstad van Nederland?",
    "Schrijf een haiku over de zee.",
    "Leg uit wat fotosynthese is.",
    "Noem een bekende Nederlandse uitvinding.",
}


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """distilabel's pipeline cache and the datasets cache go to tmp_path, never the home dir."""
    import datasets.config

    monkeypatch.setenv("DISTILABEL_CACHE_DIR", str(tmp_path / "distilabel-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("DISTILABEL_LOG_LEVEL", "WARNING")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


class ScriptedLLM(LLM):
    """An offline LLM answering from a script: generators echo, the judge rates, the evolver rewrites."""

    name: str
    role: str = "generator"

    @property
    def model_name(self) -> str:
        return self.name

    def generate(
        self,
        inputs: list[Any],
        num_generations: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 0.7,
    ) -> list[dict[str, Any]]:
        outputs = []
        for conversation in inputs:
            text = conversation[-1]["content"]
            if self.role == "judge":
                count = text.split("Texts:")[-1].count("<text ")
                if "fotosynthese" in text:
                    reply = "Sorry, I cannot rate these texts."  # unparseable: ratings become None
                else:
                    reply = "\n\n".join(
                        f"#### Output for Text {i + 1}\nRating: {5 - i % 5}\nRationale: text {i + 1}."
                        for i in range(count)
                    )
            elif self.role == "evol_quality":
                reply = f"[{self.name}] improved answer ({len(text)} chars of prompt)"
            else:
                reply = f"[{self.name}] antwoord op: {text[:40]}"
            outputs.append(
                {
                    "generations": [reply] * num_generations,
                    "statistics": {
                        "input_tokens": [1] * num_generations,
                        "output_tokens": [1] * num_generations,
                    },
                }
            )
        return outputs


def scripted_factory(llm: LLMConfig, role: str) -> Any:
    """An llm_factory for build_pipeline: a ScriptedLLM named after the configured model."""
    kind = "judge" if role == "judge" else "evol_quality" if role.startswith("evol") else "generator"
    return ScriptedLLM(name=llm.model or "unnamed", role=kind)


def config_data(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "test-generate",
        "input": {"dataset": str(AYA_SAMPLE), "language": "Dutch"},
        "keep_human_response": True,
        "generators": [
            {"provider": "openai", "model": "model-a", "base_url": "http://127.0.0.1:9/v1"},
            {
                "provider": "vllm",
                "model": "model-b",
                "base_url": "http://127.0.0.1:9/v1",
                "generation_kwargs": {"max_new_tokens": 64},
            },
        ],
        "judge": {"provider": "inference-endpoints", "model": "judge-model", "generation_kwargs": {}},
        "evol_quality": {"enabled": True, "llm": {"provider": "transformers", "model": "evolver"}},
        "output": str(tmp_path / "out"),
        "batch_size": 2,
    }
    data.update(overrides)
    return data


def write_config(tmp_path: Path, data: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


# --------------------------------------------------------------------------- end to end


def test_pipeline_output_seeds_unchanged(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path))
    assert config.response_count == 4

    started = time.monotonic()
    output = run(config, llm_factory=scripted_factory, use_cache=False)
    assert time.monotonic() - started < 60

    assert (output / "default" / "dataset_dict.json").is_file()
    reader = open_source(output)
    assert {"instruction", "generations", "generation_models", "ratings", "model_name"} <= set(reader.columns)
    assert {"targets", "language", "language_code", "annotation_type", "user_id"} <= set(reader.columns)

    rows = [row for batch in reader.iter_batches() for row in batch]
    assert {row["instruction"] for row in rows} == DUTCH_PROMPTS
    for row in rows:
        assert sorted(row["generation_models"]) == ["evol-quality:evolver", "human", "model-a", "model-b"]
        assert row["generations"][row["generation_models"].index("human")] == row["targets"]
        assert row["model_name"] == "judge-model"

    report = SeedReport()
    options = SeedOptions(template="rating", responses=config.response_count)
    records = [r for batch in plan_records(reader, options, report=report) for r in batch]
    assert report.rows_skipped == 0
    assert len(records) == len(DUTCH_PROMPTS)
    judged = [r for r in records if r.suggestions]
    assert len(judged) == len(DUTCH_PROMPTS) - 1  # the judge could not rate the photosynthesis prompt
    assert report.suggestion_skipped["judge rating is None"] == 1
    for record in judged:
        assert [s.question for s in record.suggestions] == [f"rating_{i}" for i in range(1, 5)]
        assert {s.agent for s in record.suggestions} == {"judge-model"}
        assert all(1 <= s.value <= 5 for s in record.suggestions)
    for record in records:
        assert record.metadata["language"] in ("Dutch", "dutch")
        models = {record.metadata[f"model_{i}"] for i in range(1, 5)}
        assert models == {"evol-quality:evolver", "human", "model-a", "model-b"}
    assert not list(Path.home().glob(".cache/distilabel/pipelines/test-generate"))


def test_dry_run_shows_plan_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, config_data(tmp_path))
    assert main(["--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 kept of 8 read (2 other language, 1 duplicate prompt, 1 empty human answer)" in out
    assert "responses:  4" in out
    assert "judge-model [inference-endpoints]" in out
    assert not (tmp_path / "out").exists()


def test_main_refuses_to_replace_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    path = write_config(tmp_path, config_data(tmp_path))
    assert main(["--config", str(path)]) == UsageError.exit_code
    assert "Pass --yes to replace it" in capsys.readouterr().err


# --------------------------------------------------------------------------- input


def test_load_prompts_filters_language_code_and_limit(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path, input={"dataset": str(AYA_SAMPLE), "language_code": "nld"}))
    loaded = load_prompts(config)
    assert [r["instruction"] for r in loaded.rows] == [
        "Wat is de hoofdstad van Nederland?",
        "Schrijf een haiku over de zee.",
        "Leg uit wat fotosynthese is.",
        "Noem een bekende Nederlandse uitvinding.",
    ]
    assert loaded.rows[0]["targets"].startswith("De hoofdstad")
    assert loaded.dropped == {"duplicate prompt": 1, "empty human answer": 1}

    limited = parse_config(config_data(tmp_path, input={"dataset": str(AYA_SAMPLE), "limit": 2}))
    assert len(load_prompts(limited).rows) == 2


def test_load_prompts_without_human_keeps_empty_targets(tmp_path: Path) -> None:
    data = config_data(tmp_path, keep_human_response=False)
    loaded = load_prompts(parse_config(data))
    assert "Noem drie Nederlandse schilders." in {r["instruction"] for r in loaded.rows}


def test_non_aya_input_names_the_missing_column(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "hoi", "language": "Dutch"}) + "\n")
    config = parse_config(config_data(tmp_path, input={"dataset": str(rows), "language": "Dutch"}))
    with pytest.raises(InputError, match=r"no column 'inputs', 'targets'.*Aya format"):
        load_prompts(config)


def test_missing_local_file_is_not_looked_up_on_the_hub(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path, input={"dataset": "data/aya_dutch.jsonl"}))
    with pytest.raises(InputError, match=r"input\.dataset: no such file data/aya_dutch\.jsonl"):
        load_prompts(config)


def test_no_rows_in_language_is_an_error(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path, input={"dataset": str(AYA_SAMPLE), "language": "Frisian"}))
    with pytest.raises(InputError, match="no prompts left after filtering to Frisian"):
        build_pipeline(config, llm_factory=scripted_factory)


# --------------------------------------------------------------------------- config validation


def test_shipped_configs_are_valid() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert {p.name for p in paths} >= {"aya_dutch.yaml", "local_openai.yaml"}
    for path in paths:
        config = load_config(path)
        assert isinstance(config, GenerateConfig)
        assert config.response_count >= 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"judge": None}, r"judge: Input should be"),
        ({"output": "__delete__"}, r"output: is required"),
        ({"surprise": 1}, r"surprise: is not a known key"),
        (
            {"generators": [{"provider": "ollama", "model": "x"}]},
            r"generators\[0\]\.provider: 'ollama' is not a provider; choose one of inference-endpoints",
        ),
        ({"generators": [{"provider": "openai"}]}, r"generators\[0\]: provider openai needs model"),
        (
            {"judge": {"provider": "transformers", "model": "m", "base_url": "http://x"}},
            r"judge: provider transformers runs the model in-process",
        ),
        (
            {"generators": [], "keep_human_response": True, "evol_quality": {"enabled": False}},
            r"\(top level\): each prompt gets 1 response\(s\); preference data needs at least 2",
        ),
        (
            {"input": {"dataset": "x", "limit": 0}},
            r"input\.limit: Input should be greater than or equal to 1",
        ),
        (
            {"evol_quality": {"enabled": True, "temperature": 1}},
            r"evol_quality\.temperature: is not a known key",
        ),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    data = config_data(tmp_path)
    for key, value in change.items():
        if value == "__delete__":
            data.pop(key)
        else:
            data[key] = value
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert re.search(re.escape(str(path)) + ": " + message, text), text


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read config"):
        load_config(tmp_path / "missing.yaml")
    broken = write_config(tmp_path, "name: x\ninput: [unclosed\n", name="broken.yaml")
    with pytest.raises(ConfigError, match=r"broken\.yaml line \d+: invalid YAML"):
        load_config(broken)
    listing = write_config(tmp_path, "- a\n- b\n", name="list.yaml")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping"):
        load_config(listing)


def test_main_reports_config_errors_with_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, {"name": "x"})
    assert main(["--config", str(path), "--dry-run"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "input: is required" in err
    assert "judge: is required" in err


def test_generation_kwargs_are_checked_against_the_llm(tmp_path: Path) -> None:
    data = config_data(tmp_path)
    data["generators"][0]["generation_kwargs"] = {"max_tokens": 10}
    with pytest.raises(ConfigError, match=r"generators\[0\]\.generation_kwargs: 'max_tokens' not accepted"):
        build_pipeline(parse_config(data), llm_factory=scripted_factory)


def test_default_factory_builds_the_chosen_llm_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.generate import default_llm_factory

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    built = {
        name: default_llm_factory(LLMConfig.model_validate(spec), "judge")
        for name, spec in {
            "OpenAILLM": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
            "ClientvLLM": {"provider": "vllm", "model": "m", "base_url": "http://127.0.0.1:9/v1"},
            "vLLM": {"provider": "vllm", "model": "m"},
            "TransformersLLM": {"provider": "transformers", "model": "m", "llm_kwargs": {"device": "cpu"}},
            "LlamaCppLLM": {"provider": "llama-cpp", "model": str(gguf)},
            "InferenceEndpointsLLM": {"provider": "inference-endpoints", "base_url": "http://127.0.0.1:9"},
        }.items()
    }
    assert {name: type(llm).__name__ for name, llm in built.items()} == {k: k for k in built}

    with pytest.raises(ConfigError, match="api_key_env names NO_SUCH_KEY_VAR, which is not set"):
        default_llm_factory(
            LLMConfig(provider="openai", model="m", api_key_env="NO_SUCH_KEY_VAR"), "generators[0]"
        )
    assert "NO_SUCH_KEY_VAR" not in os.environ
