"""Generate preference data for a campaign: Aya prompts -> LLM responses -> UltraFeedback judge -> Distiset.

A distilabel 1.5.3 pipeline, driven by a YAML config (see scripts/configs/):

    load Aya rows (Hub id or local jsonl/parquet/csv), keep one language
      -> one TextGeneration per configured LLM              (+ the Aya human answer, if kept)
      -> optionally EvolQuality, which adds an evolved copy of the human answer
         (or of the first LLM's answer when the human answer is not kept)
      -> GroupColumns into `generations` / `generation_models`
      -> UltraFeedback (aspect overall-rating) writes `ratings`, `rationales`, `model_name` (the judge)
      -> KeepColumns, saved with `Distiset.save_to_disk(output)`

The saved folder is what `campaign seed OUTPUT --responses N` reads unchanged.

Usage:
    python scripts/generate.py --config scripts/configs/aya_dutch.yaml --dry-run
    python scripts/generate.py --config scripts/configs/aya_dutch.yaml [--output DIR] [--limit N] [--yes]

This module deliberately does not use `from __future__ import annotations`: distilabel finds a
step's input parameter by its runtime `StepInput` annotation, which string annotations hide.
"""

import argparse
import inspect
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaign.errors import CampaignError, ConfigError, InputError, UsageError
from campaign.readers import open_source
from campaign.seed import HUMAN_MODEL

if TYPE_CHECKING:
    from distilabel.models.llms.base import LLM
    from distilabel.pipeline import Pipeline

Provider = Literal["inference-endpoints", "vllm", "transformers", "openai", "llama-cpp"]
PROVIDERS: tuple[str, ...] = ("inference-endpoints", "vllm", "transformers", "openai", "llama-cpp")
AYA_COLUMNS = ("inputs", "targets", "language", "language_code", "annotation_type", "user_id")
PASSTHROUGH_COLUMNS = ("targets", "language", "language_code", "annotation_type", "user_id")
OUTPUT_COLUMNS = ("instruction", "generations", "generation_models", "ratings", "rationales", "model_name")
EVOLVED_PREFIX = "evol-quality:"
LEAF_STEP = "preferences"
READ_BATCH = 1000
LOCAL_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet", ".pq", ".csv", ".tsv")

# role ("generator", "judge", "evol_quality") and index -> a distilabel LLM
LLMFactory = Callable[["LLMConfig", str], "LLM"]


# --------------------------------------------------------------------------- config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMConfig(_Strict):
    """One model: which distilabel LLM class serves it, where, and with which generation kwargs."""

    provider: Provider
    model: str | None = Field(
        default=None,
        description="Hub model id; a GGUF file path for llama-cpp; the served model for openai/vllm servers.",
    )
    base_url: str | None = Field(default=None, description="Endpoint URL (TGI, vLLM or OpenAI-compatible).")
    endpoint_name: str | None = Field(
        default=None, description="Inference Endpoint name (inference-endpoints)."
    )
    tokenizer: str | None = None
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable that holds the API key (never the key)."
    )
    llm_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for the distilabel LLM class."
    )
    generation_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> "LLMConfig":
        remote = self.base_url or self.endpoint_name
        if self.provider == "inference-endpoints":
            if self.base_url and self.endpoint_name:
                msg = "give either base_url or endpoint_name, not both"
                raise ValueError(msg)
            if not (self.model or remote):
                msg = "inference-endpoints needs model (a Hub model id), base_url or endpoint_name"
                raise ValueError(msg)
        elif not self.model:
            msg = f"provider {self.provider} needs model"
            raise ValueError(msg)
        if self.endpoint_name and self.provider != "inference-endpoints":
            msg = "endpoint_name is only for provider inference-endpoints"
            raise ValueError(msg)
        if self.base_url and self.provider in ("transformers", "llama-cpp"):
            msg = f"provider {self.provider} runs the model in-process; base_url does not apply"
            raise ValueError(msg)
        return self

    @property
    def label(self) -> str:
        """A short human label for summaries."""
        return self.model or self.endpoint_name or self.base_url or self.provider


class InputConfig(_Strict):
    """Where the Aya-format prompts come from, and which language to keep."""

    dataset: str = Field(description="Hub dataset id (owner/name) or a local .jsonl/.parquet/.csv file.")
    subset: str | None = None
    split: str = "train"
    language: str | None = Field(default=None, description="Keep rows whose `language` is this (any case).")
    language_code: str | None = Field(default=None, description="Keep rows whose `language_code` is this.")
    limit: int | None = Field(default=None, ge=1)


class EvolQualityConfig(_Strict):
    """EvolQuality: add an evolved copy of the human answer (or the first LLM's answer)."""

    enabled: bool = False
    num_evolutions: int = Field(default=1, ge=1)
    llm: LLMConfig | None = Field(default=None, description="Defaults to the judge's model.")


class JudgeConfig(LLMConfig):
    """The UltraFeedback judge (aspect overall-rating)."""


class GenerateConfig(_Strict):
    """A generation run: the shape of the community's nl_config.yml."""

    name: str = "campaign-generate"
    input: InputConfig
    keep_human_response: bool = Field(
        default=True, description="Keep the Aya human answer (`targets`) as one of the responses."
    )
    system_prompt: str | None = None
    generators: list[LLMConfig] = Field(default_factory=list)
    judge: JudgeConfig
    evol_quality: EvolQualityConfig = Field(default_factory=EvolQualityConfig)
    output: Path
    batch_size: int = Field(default=50, ge=1)

    @field_validator("generators")
    @classmethod
    def _at_most_eight(cls, value: list[LLMConfig]) -> list[LLMConfig]:
        if len(value) > 8:
            msg = f"{len(value)} generators; a campaign shows at most 8 responses"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _enough_responses(self) -> "GenerateConfig":
        if self.response_count < 2:
            msg = (
                f"each prompt gets {self.response_count} response(s); preference data needs at least 2. "
                "Add generators, set keep_human_response: true or enable evol_quality"
            )
            raise ValueError(msg)
        if self.response_count > 8:
            msg = f"each prompt gets {self.response_count} responses; a campaign shows at most 8"
            raise ValueError(msg)
        if self.evol_quality.enabled and not (self.keep_human_response or self.generators):
            msg = "evol_quality needs a response to evolve: keep the human response or add a generator"
            raise ValueError(msg)
        return self

    @property
    def response_count(self) -> int:
        """How many responses each prompt gets (the N for `campaign seed --responses N`)."""
        return len(self.generators) + int(self.keep_human_response) + int(self.evol_quality.enabled)

    @property
    def evol_llm(self) -> LLMConfig:
        """The model EvolQuality uses: its own, or the judge's."""
        return self.evol_quality.llm or self.judge


def load_config(path: str | os.PathLike[str]) -> GenerateConfig:
    """Read and validate a generation config; errors name the file and the key."""
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"Cannot read config {file} ({exc.strerror or exc}). Pass --config PATH to a YAML file."
        raise ConfigError(msg) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        msg = f"{file}{where}: invalid YAML ({getattr(exc, 'problem', None) or exc})."
        raise ConfigError(msg) from exc
    return parse_config(data, source=str(file))


def parse_config(data: Any, *, source: str = "config") -> GenerateConfig:
    """Validate config data (a mapping, as read from YAML)."""
    if not isinstance(data, dict):
        msg = f"{source}: expected a mapping of keys (name, input, generators, judge, output), got {type(data).__name__}."
        raise ConfigError(msg)
    try:
        return GenerateConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_key_path(e['loc'])}: {_error_text(e)}" for e in exc.errors()]
        msg = f"Invalid config ({len(lines)} problem{'s' if len(lines) != 1 else ''}):\n  " + "\n  ".join(
            lines
        )
        raise ConfigError(msg) from exc


def _key_path(loc: Sequence[Any]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item).startswith(("function-", "tagged-union")):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _error_text(error: Any) -> str:
    kind = error.get("type")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key"
    if kind == "literal_error" and error["loc"] and error["loc"][-1] == "provider":
        return f"{error.get('input')!r} is not a provider; choose one of {', '.join(PROVIDERS)}"
    text = str(error.get("msg", ""))
    return text.removeprefix("Value error, ")


# --------------------------------------------------------------------------- input


@dataclass
class LoadedPrompts:
    """Aya rows ready for the pipeline, and what was dropped on the way."""

    rows: list[dict[str, Any]]
    read: int = 0
    other_language: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    columns: tuple[str, ...] = ()


def load_prompts(config: GenerateConfig) -> LoadedPrompts:
    """Read Aya-format rows, keep the configured language, drop empty and duplicate prompts."""
    spec = config.input
    path = Path(spec.dataset).expanduser()
    looks_local = path.suffix.lower() in LOCAL_SUFFIXES or spec.dataset.startswith((".", "/", "~"))
    if looks_local and not path.exists():
        # "data/aya.jsonl" also parses as a Hub id: say the file is missing instead of asking the Hub
        msg = f"input.dataset: no such file {spec.dataset} (relative paths start at {Path.cwd()})."
        raise InputError(msg)
    reader = open_source(spec.dataset, config=spec.subset, split=spec.split)
    required = ["inputs"] + (["targets"] if config.keep_human_response else [])
    missing = [c for c in required if c not in reader.columns]
    if missing:
        hint = "" if "inputs" in missing else " Set keep_human_response: false if the input has no answers."
        msg = (
            f"{reader.name}: no column {', '.join(map(repr, missing))}; columns are {list(reader.columns)}. "
            f"input.dataset must be in Aya format ({', '.join(AYA_COLUMNS)}).{hint}"
        )
        raise InputError(msg)
    for key, column in (("language", "language"), ("language_code", "language_code")):
        if getattr(spec, key) and column not in reader.columns:
            msg = f"{reader.name}: input.{key} is set but the input has no {column!r} column."
            raise InputError(msg)
    kept_columns = tuple(c for c in PASSTHROUGH_COLUMNS if c in reader.columns)
    result = LoadedPrompts(rows=[], columns=("instruction", *kept_columns))
    seen: set[str] = set()

    def drop(reason: str) -> None:
        result.dropped[reason] = result.dropped.get(reason, 0) + 1

    for batch in reader.iter_batches(READ_BATCH, columns=["inputs", *kept_columns]):
        for row in batch:
            result.read += 1
            if not _language_matches(row, spec):
                result.other_language += 1
                continue
            prompt = row.get("inputs")
            if not isinstance(prompt, str) or not prompt.strip():
                drop("empty prompt")
                continue
            if config.keep_human_response:
                target = row.get("targets")
                if not isinstance(target, str) or not target.strip():
                    drop("empty human answer")
                    continue
            if prompt in seen:
                drop("duplicate prompt")
                continue
            seen.add(prompt)
            result.rows.append({"instruction": prompt, **{c: row.get(c) for c in kept_columns}})
            if spec.limit is not None and len(result.rows) >= spec.limit:
                return result
    return result


def _language_matches(row: dict[str, Any], spec: InputConfig) -> bool:
    for key in ("language", "language_code"):
        wanted = getattr(spec, key)
        if wanted is None:
            continue
        value = row.get(key)
        if not isinstance(value, str) or value.strip().casefold() != wanted.strip().casefold():
            return False
    return True


# --------------------------------------------------------------------------- LLMs


def default_llm_factory(llm: LLMConfig, role: str) -> "LLM":
    """Build the distilabel LLM a config names, importing only the chosen class."""
    builders: dict[str, Callable[[LLMConfig, dict[str, Any]], LLM]] = {
        "inference-endpoints": _inference_endpoints,
        "vllm": _vllm,
        "transformers": _transformers,
        "openai": _openai,
        "llama-cpp": _llama_cpp,
    }
    kwargs: dict[str, Any] = dict(llm.llm_kwargs)
    if llm.api_key_env:
        key = os.environ.get(llm.api_key_env)
        if not key:
            msg = f"{role}: api_key_env names {llm.api_key_env}, which is not set. Export it and re-run."
            raise ConfigError(msg)
        kwargs["api_key"] = key
    return builders[llm.provider](llm, kwargs)


def _inference_endpoints(llm: LLMConfig, kwargs: dict[str, Any]) -> "LLM":
    from distilabel.models.llms.huggingface.inference_endpoints import InferenceEndpointsLLM

    if llm.base_url or llm.endpoint_name:
        # distilabel takes exactly one of model_id / endpoint_name / base_url; the model id names the output
        if llm.model:
            kwargs.setdefault("model_display_name", llm.model)
        return InferenceEndpointsLLM(
            base_url=llm.base_url, endpoint_name=llm.endpoint_name, tokenizer_id=llm.tokenizer, **kwargs
        )
    return InferenceEndpointsLLM(model_id=llm.model, tokenizer_id=llm.tokenizer or llm.model, **kwargs)


def _vllm(llm: LLMConfig, kwargs: dict[str, Any]) -> "LLM":
    if llm.base_url:
        from distilabel.models.llms.vllm import ClientvLLM

        kwargs.setdefault("api_key", os.environ.get("OPENAI_API_KEY") or "EMPTY")
        return ClientvLLM(
            base_url=llm.base_url, model=llm.model, tokenizer=llm.tokenizer or llm.model, **kwargs
        )
    from distilabel.models.llms.vllm import vLLM

    return vLLM(model=llm.model, tokenizer=llm.tokenizer, **kwargs)


def _transformers(llm: LLMConfig, kwargs: dict[str, Any]) -> "LLM":
    from distilabel.models.llms.huggingface.transformers import TransformersLLM

    return TransformersLLM(model=llm.model, tokenizer=llm.tokenizer, **kwargs)


def _openai(llm: LLMConfig, kwargs: dict[str, Any]) -> "LLM":
    from distilabel.models.llms.openai import OpenAILLM

    if llm.base_url and "api_key" not in kwargs and not os.environ.get("OPENAI_API_KEY"):
        # local OpenAI-compatible servers (llama.cpp, vLLM, Ollama) accept any key
        kwargs["api_key"] = "EMPTY"
    return OpenAILLM(model=llm.model, base_url=llm.base_url, **kwargs)


def _llama_cpp(llm: LLMConfig, kwargs: dict[str, Any]) -> "LLM":
    from distilabel.models.llms.llamacpp import LlamaCppLLM

    return LlamaCppLLM(model_path=llm.model, tokenizer_id=llm.tokenizer, **kwargs)


def _make_llm(factory: LLMFactory, llm: LLMConfig, role: str) -> "LLM":
    try:
        instance = factory(llm, role)
    except ValidationError as exc:
        problems = "; ".join(f"{_key_path(e['loc'])}: {_error_text(e)}" for e in exc.errors())
        msg = f"{role} ({llm.provider}): the distilabel LLM rejected its settings: {problems}. Check llm_kwargs."
        raise ConfigError(msg) from exc
    _check_generation_kwargs(instance, llm.generation_kwargs, role)
    if llm.generation_kwargs:
        instance.generation_kwargs = dict(llm.generation_kwargs)
    return instance


def _check_generation_kwargs(instance: "LLM", kwargs: dict[str, Any], role: str) -> None:
    accepted = [
        p.name
        for p in instance.generate_parameters
        if p.name not in ("self", "input", "inputs", "num_generations")
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        msg = (
            f"{role}.generation_kwargs: {', '.join(map(repr, unknown))} not accepted by "
            f"{type(instance).__name__}; it accepts {', '.join(accepted) or 'nothing'}."
        )
        raise ConfigError(msg)


# --------------------------------------------------------------------------- pipeline

# distilabel takes seconds to import: it is imported on first use so `--help` and config errors stay fast.
_STEP_CLASS: type | None = None


def _as_response_step() -> type:
    """The AsResponse step class (built on first use, so distilabel is imported lazily)."""
    global _STEP_CLASS
    if _STEP_CLASS is not None:
        return _STEP_CLASS
    from distilabel.steps import Step, StepInput

    class AsResponse(Step):
        """Expose a column as one more response: `generation` plus its `model_name` label.

        Input columns: `source_column` (and `model_name` when `label_prefix` is set).
        Output columns: `generation`, `model_name`.
        """

        source_column: str
        model: str | None = None
        label_prefix: str | None = None

        @property
        def inputs(self) -> list[str]:
            return [self.source_column] + (["model_name"] if self.label_prefix is not None else [])

        @property
        def outputs(self) -> list[str]:
            return ["generation", "model_name"]

        def process(self, inputs: StepInput) -> Iterator[list[dict[str, Any]]]:
            for row in inputs:
                row["generation"] = row[self.source_column]
                if self.label_prefix is not None:
                    row["model_name"] = f"{self.label_prefix}{row.get('model_name')}"
                else:
                    row["model_name"] = self.model
            yield inputs

    # distilabel pickles steps for its worker processes: make the class importable by reference
    AsResponse.__module__ = __name__
    AsResponse.__qualname__ = "AsResponse"
    globals()["AsResponse"] = AsResponse
    _STEP_CLASS = AsResponse
    return AsResponse


def build_pipeline(
    config: GenerateConfig,
    *,
    llm_factory: LLMFactory | None = None,
    prompts: LoadedPrompts | None = None,
) -> "Pipeline":
    """Build the generate -> group -> judge pipeline for a config (LLMs from `llm_factory` if given)."""
    from distilabel.pipeline import Pipeline
    from distilabel.steps import GroupColumns, KeepColumns, LoadDataFromDicts
    from distilabel.steps.tasks import EvolQuality, TextGeneration, UltraFeedback

    factory = llm_factory or default_llm_factory
    loaded = prompts if prompts is not None else load_prompts(config)
    if not loaded.rows:
        where = config.input.language or config.input.language_code or "any language"
        msg = (
            f"{config.input.dataset}: no prompts left after filtering to {where} "
            f"({loaded.read} rows read, {loaded.other_language} in other languages). "
            "Check input.language / input.language_code."
        )
        raise InputError(msg)
    generators = [_make_llm(factory, g, f"generators[{i}]") for i, g in enumerate(config.generators)]
    judge_llm = _make_llm(factory, config.judge, "judge")
    evol_llm = (
        _make_llm(factory, config.evol_llm, "evol_quality.llm") if config.evol_quality.enabled else None
    )
    as_response = _as_response_step()
    batch = config.batch_size

    with Pipeline(
        name=config.name, description="Aya prompts -> responses -> UltraFeedback judge"
    ) as pipeline:
        load = LoadDataFromDicts(name="load_prompts", data=loaded.rows, batch_size=batch)
        responses = []
        for i, llm in enumerate(generators):
            responses.append(
                TextGeneration(
                    name=f"generate_{i}", llm=llm, system_prompt=config.system_prompt, input_batch_size=batch
                )
            )
            load >> responses[-1]
        if config.keep_human_response:
            human = as_response(name="human_response", source_column="targets", model=HUMAN_MODEL)
            load >> human
            responses.append(human)
        if evol_llm is not None:
            evolve = EvolQuality(
                name="evol_quality",
                llm=evol_llm,
                num_evolutions=config.evol_quality.num_evolutions,
                input_mappings={"response": "targets" if config.keep_human_response else "generation"},
                input_batch_size=batch,
            )
            evolved = as_response(
                name="evolved_response", source_column="evolved_response", label_prefix=EVOLVED_PREFIX
            )
            # evolve the human answer, or the first LLM's answer when the human one is not kept
            (load if config.keep_human_response else responses[0]) >> evolve >> evolved
            responses.append(evolved)
        group = GroupColumns(
            name="group_responses",
            columns=["generation", "model_name"],
            output_columns=["generations", "generation_models"],
            input_batch_size=batch,
        )
        judge = UltraFeedback(name="judge", llm=judge_llm, aspect="overall-rating", input_batch_size=batch)
        keep = KeepColumns(
            name=LEAF_STEP, columns=[*OUTPUT_COLUMNS, *loaded.columns[1:]], input_batch_size=batch
        )
        for step in responses:
            step >> group
        group >> judge >> keep
    return pipeline


def run(
    config: GenerateConfig,
    *,
    llm_factory: LLMFactory | None = None,
    use_cache: bool = True,
    overwrite: bool = False,
) -> Path:
    """Run the pipeline and save the Distiset to `config.output`; returns the output folder."""
    output = Path(config.output)
    _check_output(output, overwrite=overwrite)
    pipeline = build_pipeline(config, llm_factory=llm_factory)
    distiset = pipeline.run(use_cache=use_cache)
    if output.exists():
        shutil.rmtree(output)
    distiset.save_to_disk(output, save_card=False, save_pipeline_config=True, save_pipeline_log=True)
    return output


def _check_output(output: Path, *, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        msg = f"output {output} is a file; point output at a folder."
        raise UsageError(msg)
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        msg = f"output folder {output} exists and is not empty. Pass --yes to replace it, or set --output."
        raise UsageError(msg)


# --------------------------------------------------------------------------- CLI


def describe(config: GenerateConfig, loaded: LoadedPrompts) -> str:
    """A plain-text summary of what a run would do."""
    lines = [
        f"pipeline:   {config.name}",
        f"input:      {config.input.dataset} (split {config.input.split})",
        f"language:   {config.input.language or '-'} / {config.input.language_code or '-'}",
        f"prompts:    {len(loaded.rows)} kept of {loaded.read} read "
        f"({loaded.other_language} other language"
        + "".join(f", {n} {reason}" for reason, n in loaded.dropped.items())
        + ")",
    ]
    responders = [f"{g.label} [{g.provider}]" for g in config.generators]
    if config.keep_human_response:
        responders.append(f"{HUMAN_MODEL} (Aya targets)")
    if config.evol_quality.enabled:
        base = "human answer" if config.keep_human_response else config.generators[0].label
        responders.append(
            f"EvolQuality of the {base} by {config.evol_llm.label} [{config.evol_llm.provider}]"
        )
    lines.append(f"responses:  {config.response_count}: " + "; ".join(responders))
    lines.append(f"judge:      {config.judge.label} [{config.judge.provider}], UltraFeedback overall-rating")
    lines.append(f"output:     {config.output}")
    for row in loaded.rows[:3]:
        preview = " ".join(str(row["instruction"]).split())
        lines.append(f"  prompt:   {preview[:90]}{'…' if len(preview) > 90 else ''}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: validate the config, then run the pipeline (or describe it with --dry-run)."""
    parser = argparse.ArgumentParser(
        prog="generate.py",
        description="Generate and judge responses for Aya prompts; save a Distiset for `campaign seed`.",
        epilog="Example: python scripts/generate.py --config scripts/configs/aya_dutch.yaml --dry-run",
    )
    parser.add_argument("--config", required=True, help="YAML config (see scripts/configs/).")
    parser.add_argument("--output", help="Output folder (overrides `output` in the config).")
    parser.add_argument("--limit", type=int, help="At most this many prompts (overrides input.limit).")
    parser.add_argument("--dry-run", action="store_true", help="Validate and show the plan; run nothing.")
    parser.add_argument("--no-cache", action="store_true", help="Do not resume from distilabel's cache.")
    parser.add_argument("--yes", action="store_true", help="Replace a non-empty output folder.")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        overrides: dict[str, Any] = {}
        if args.output:
            overrides["output"] = Path(args.output)
        if args.limit is not None:
            overrides["input"] = config.input.model_copy(update={"limit": args.limit})
        if overrides:
            config = parse_config(
                {**config.model_dump(), **{k: _dump(v) for k, v in overrides.items()}}, source=args.config
            )
        if args.dry_run:
            loaded = load_prompts(config)
            print(describe(config, loaded))
            print(f"\nDry run: nothing generated. Run without --dry-run to write {config.output}.")
            return 0
        output = run(config, use_cache=not args.no_cache, overwrite=args.yes)
    except CampaignError as exc:
        if os.environ.get("CAMPAIGN_DEBUG") == "1":
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"Saved the Distiset to {output}.")
    print(f"Next: campaign seed {output} --responses {config.response_count}")
    return 0


def _dump(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


if __name__ == "__main__":
    sys.exit(main())
