"""campaign.yaml: the schema of one campaign, its loader with line-precise errors, and `init`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from campaign.consensus.policy import ConsensusPolicy
from campaign.errors import CampaignError, ConfigError, NotFound, UsageError
from campaign.templates import (
    GUIDELINES_MAX_CHARS,
    MAX_RESPONSES,
    TEMPLATE_NAMES,
    TemplateSpec,
    build_settings,
    check_guidelines,
    describe_validation_error,
    line_of,
    load_template,
    location,
    read_yaml,
)

if TYPE_CHECKING:
    import argilla as rg

CAMPAIGN_FILENAME = "campaign.yaml"
GUIDELINES_FILENAME = "guidelines.md"
# The argilla SDK (WorkspaceModel) accepts only URL-safe workspace names.
WORKSPACE_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
# argilla-server 2.8 (api/schemas/v1/datasets.py): 1 to 200 characters; the SDK strips whitespace.
DATASET_NAME_MAX_CHARS = 200
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


class CampaignFile(BaseModel):
    """One campaign as written in campaign.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    workspace: str
    template: str = "rating"
    responses: int = Field(default=2, ge=1, le=MAX_RESPONSES)
    language: str | None = None
    min_submitted: int = Field(default=2, ge=1)
    guidelines: str = GUIDELINES_FILENAME
    round: int = Field(default=1, ge=1)
    seed: int = 0
    consensus: ConsensusPolicy = Field(default_factory=ConsensusPolicy)
    export: dict[str, Any] = Field(default_factory=dict)

    _path: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _check_dataset_name(cls, value: str) -> str:
        if not value.strip() or value != value.strip() or len(value) > DATASET_NAME_MAX_CHARS:
            msg = (
                f"a dataset name needs 1 to {DATASET_NAME_MAX_CHARS} characters without leading "
                "or trailing spaces, e.g. 'dutch-dpo'"
            )
            raise ValueError(msg)
        return value

    @field_validator("workspace")
    @classmethod
    def _check_workspace_name(cls, value: str) -> str:
        if not WORKSPACE_NAME_RE.match(value):
            msg = "Argilla accepts only letters, digits, '-' and '_' in a workspace name, e.g. 'community'"
            raise ValueError(msg)
        return value

    @field_validator("language")
    @classmethod
    def _check_language(cls, value: str | None) -> str | None:
        if value is not None and not LANGUAGE_RE.match(value):
            msg = "use a language code such as 'nl', 'en' or 'pt-BR'"
            raise ValueError(msg)
        return value

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        looks_like_path = value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value
        if value not in TEMPLATE_NAMES and not looks_like_path:
            msg = f"use one of {', '.join(TEMPLATE_NAMES)}, or the path to a template .yaml file"
            raise ValueError(msg)
        return value

    @property
    def path(self) -> Path | None:
        """The campaign.yaml this came from, if any."""
        return self._path

    @property
    def directory(self) -> Path:
        """The campaign directory: relative paths in campaign.yaml start here."""
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def guidelines_path(self) -> Path:
        """The guidelines Markdown file."""
        return self.directory / self.guidelines

    @property
    def template_ref(self) -> str:
        """The template name, or its path resolved against the campaign directory."""
        if self.template in TEMPLATE_NAMES:
            return self.template
        path = Path(self.template).expanduser()
        return str(path if path.is_absolute() else self.directory / path)

    def load_template(self) -> TemplateSpec:
        """The template this campaign uses."""
        return load_template(self.template_ref)

    def read_guidelines(self) -> str:
        """The guidelines text, checked against Argilla's limits."""
        path = self.guidelines_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            msg = (
                f"Guidelines file {path} (key 'guidelines' in {self._path or CAMPAIGN_FILENAME}) "
                "does not exist. Create it, or point 'guidelines:' at your Markdown file."
            )
            raise NotFound(msg) from None
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"Cannot read guidelines file {path}: {exc}."
            raise ConfigError(msg) from None
        try:
            return check_guidelines(text)
        except ConfigError as exc:
            msg = f"{path}: {exc}"
            raise ConfigError(msg) from None

    def build_settings(self, *, client: rg.Argilla | None = None) -> rg.Settings:
        """The argilla Settings this campaign asks for (offline unless a client is given)."""
        return build_settings(
            self.load_template(),
            responses=self.responses,
            guidelines=self.read_guidelines(),
            min_submitted=self.min_submitted,
            language=self.language,
            client=client,
        )

    def as_dict(self) -> dict[str, Any]:
        """The values as JSON-able data, with the file they came from."""
        return {"path": str(self._path) if self._path else None, **self.model_dump(mode="json")}


def model_keys(model: type[BaseModel]) -> set[str]:
    """Every key a model and its nested models accept, for 'did you mean' hints."""
    keys = set(model.model_fields)
    for info in model.model_fields.values():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= model_keys(annotation)
    return keys


def find_campaign(path_or_dir: str | Path = ".") -> Path:
    """The campaign.yaml in a directory (or the file itself), or an error that says how to make one."""
    path = Path(path_or_dir).expanduser()
    if path.is_file():
        return path
    candidate = path / CAMPAIGN_FILENAME
    if candidate.is_file():
        return candidate
    if not path.exists():
        msg = f"Campaign directory {path} does not exist. Run 'campaign init {path} --template rating' first."
    else:
        msg = (
            f"No {CAMPAIGN_FILENAME} in {path}. Run 'campaign init {path} --template rating', "
            "or pass --campaign DIR to point at your campaign."
        )
    raise NotFound(msg)


def load_campaign(path_or_dir: str | Path = ".") -> CampaignFile:
    """Read and validate campaign.yaml; errors name the file, the line and the key."""
    path = find_campaign(path_or_dir)
    data, root = read_yaml(path)
    if data is None:
        msg = f"{path} is empty. Run 'campaign init {path.parent} --template rating --force' to rewrite it."
        raise ConfigError(msg)
    if not isinstance(data, dict):
        where = location(path, line_of(root, []))
        msg = f"{where}: campaign.yaml must be a mapping of keys (name: ..., workspace: ...)."
        raise ConfigError(msg)
    try:
        campaign = CampaignFile.model_validate(data)
    except ValidationError as exc:
        text = describe_validation_error(exc, path=path, root=root, known_keys=model_keys(CampaignFile))
        raise ConfigError(text) from None
    campaign._path = path
    try:
        spec = campaign.load_template()
    except CampaignError as exc:
        msg = f"{location(path, line_of(root, ['template']))}: key 'template': {exc}"
        raise ConfigError(msg) from None
    try:
        spec.check_responses(campaign.responses)
    except UsageError as exc:
        msg = f"{location(path, line_of(root, ['responses']))}: key 'responses': {exc} Change 'responses:'."
        raise ConfigError(msg) from None
    return campaign


def seed_kind(campaign: CampaignFile) -> str:
    """The built-in record layout (rating, ranking, binary) that the campaign's template follows."""
    if campaign.template in TEMPLATE_NAMES:
        return str(campaign.template)
    name = campaign.load_template().name
    if name in TEMPLATE_NAMES:
        return str(name)
    msg = (
        f"Template {campaign.template!r} is named {name!r}; seeding needs a template named one of "
        f"{', '.join(TEMPLATE_NAMES)} so that it knows the record layout."
    )
    raise UsageError(msg)


def load_campaign_in(directory: str | Path) -> CampaignFile | None:
    """The directory's campaign.yaml, read as `load_campaign` does, or None when it has none."""
    path = Path(directory).expanduser() / CAMPAIGN_FILENAME
    return load_campaign(path) if path.is_file() else None


# --- campaign init ----------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    """What `init_campaign` wrote."""

    campaign_path: Path
    guidelines_path: Path
    campaign: CampaignFile


_OPTION_OF_KEY = {
    "name": "--name",
    "workspace": "--workspace",
    "language": "--language",
    "min_submitted": "--min-submitted",
    "responses": "--responses",
    "template": "--template",
}


def default_workspace(name: str) -> str:
    """A valid workspace name derived from a dataset or directory name."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "-", name).strip("-")
    return cleaned or "campaign"


def init_campaign(
    directory: str | Path,
    *,
    template: str,
    responses: int | None = None,
    language: str | None = None,
    min_submitted: int | None = None,
    name: str | None = None,
    workspace: str | None = None,
    force: bool = False,
) -> InitResult:
    """Write a commented campaign.yaml and the template's guidelines.md into a directory."""
    directory = Path(directory).expanduser()
    spec = load_template(template)
    n = spec.responses.default if responses is None else responses
    spec.check_responses(n)
    for option, value in (("--name", name), ("--workspace", workspace)):
        if value is not None and not value.strip():
            msg = f"{option} is empty. Give a name, or leave the option out to derive one from {directory}."
            raise UsageError(msg)
    dataset = name or default_workspace(directory.resolve().name)
    template_value = template if template in TEMPLATE_NAMES else _relative(Path(template), directory)
    values: dict[str, Any] = {
        "name": dataset,
        "workspace": workspace or default_workspace(dataset),
        "template": template_value,
        "responses": n,
        "language": language,
        "min_submitted": spec.min_submitted if min_submitted is None else min_submitted,
    }
    try:
        campaign = CampaignFile.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        msg = f"Invalid {_OPTION_OF_KEY.get(key, key)} {values.get(key)!r}: {message}."
        raise UsageError(msg) from None

    campaign_path = directory / CAMPAIGN_FILENAME
    guidelines_path = directory / GUIDELINES_FILENAME
    existing = [p for p in (campaign_path, guidelines_path) if p.exists()]
    if existing and not force:
        names = " and ".join(str(p) for p in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        msg = f"{names} already {verb}. Pass --force to overwrite, or choose another directory."
        raise ConfigError(msg)
    guidelines = spec.read_guidelines()
    if len(guidelines.strip()) > GUIDELINES_MAX_CHARS:
        msg = f"The guidelines of template '{spec.name}' exceed {GUIDELINES_MAX_CHARS} characters."
        raise ConfigError(msg)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        guidelines_path.write_text(guidelines, encoding="utf-8")
        campaign_path.write_text(render_campaign_yaml(campaign, spec), encoding="utf-8")
    except OSError as exc:
        msg = f"Cannot write the campaign into {directory}: {exc}."
        raise ConfigError(msg) from None
    campaign._path = campaign_path
    return InitResult(campaign_path=campaign_path, guidelines_path=guidelines_path, campaign=campaign)


def _relative(path: Path, directory: Path) -> str:
    """A template path as campaign.yaml should hold it: relative to the campaign dir when possible."""
    try:
        return os.path.relpath(path.resolve(), directory.resolve())
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def _scalar(value: Any) -> str:
    """A value as a YAML scalar; JSON strings are valid YAML and always quoted safely."""
    if value is None:
        return "null"
    if isinstance(value, str):
        plain = yaml.safe_dump(value, allow_unicode=True).removesuffix("\n...\n").strip()
        return plain if plain == value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _commented(data: dict[str, Any]) -> str:
    """A mapping as YAML lines behind '#   ', to document defaults without pinning them."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
    return "\n".join(f"#   {line}" for line in text.splitlines())


def render_campaign_yaml(campaign: CampaignFile, spec: TemplateSpec) -> str:
    """campaign.yaml text with every key explained in a comment."""
    low, high = spec.responses.min, spec.responses.max
    takes = f"exactly {low}" if low == high else f"{low} to {high}"
    c = campaign
    return f"""\
# campaign.yaml: one annotation campaign. Edit it, then run 'campaign create'.
# Written by 'campaign init' from the '{spec.name}' template. Paths are relative to this file.

# Name of the Argilla dataset (1 to {DATASET_NAME_MAX_CHARS} characters).
name: {_scalar(c.name)}

# Argilla workspace that holds the dataset: letters, digits, '-' and '_'. 'campaign create' creates it.
workspace: {_scalar(c.workspace)}

# Task template: rating, ranking, binary, or the path to your own template YAML file.
template: {_scalar(c.template)}

# Responses shown per prompt (N). The {spec.name} template takes {takes}.
responses: {c.responses}

# Language code of the campaign (e.g. nl, en, pt-BR), shown to annotators; null if mixed.
language: {_scalar(c.language)}

# Annotators who must submit a record before it counts as complete (Argilla's min_submitted).
min_submitted: {c.min_submitted}

# Markdown guidelines shown to annotators in Argilla (at most {GUIDELINES_MAX_CHARS} characters).
guidelines: {_scalar(c.guidelines)}

# Annotation round recorded in each seeded record's metadata; raise it when you start a new round.
round: {c.round}

# Seed of the deterministic per-record shuffle of response order (controls position bias).
# Keep it fixed for the whole campaign, so that re-seeding gives the same order.
seed: {c.seed}

# Consensus policy for 'campaign export'. Empty means the defaults, which are:
{_commented(ConsensusPolicy().model_dump(mode="json"))}
# To change one, replace {{}} with only the keys you need, e.g. "consensus: {{rating: {{min_margin: 2.0}}}}".
consensus: {{}}

# Options for 'campaign export' (formats, split, chat format). Leave it empty for the defaults.
export: {{}}
"""
