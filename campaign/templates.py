"""Task templates (campaign/_templates/*.yaml) turned into argilla Settings, and settings compared.

`ensure_dataset` creates a campaign's dataset with its settings, or checks the existing one against them.

A template is data: fields, questions, metadata properties, a default `min_submitted` and a
guidelines file. An entry whose name contains `{i}` is repeated for each response slot
i = 1..N, and so is an option value that contains `{i}`; `{language}` in a title or description
becomes the campaign's language.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from campaign.errors import ConfigError, NotFound, UsageError

if TYPE_CHECKING:
    import argilla as rg

    from campaign.client import ArgillaClient

TEMPLATE_NAMES = ("rating", "ranking", "binary")
TEMPLATES_DIR = Path(__file__).parent / "_templates"
SLOT = "{i}"
LANGUAGE = "{language}"
MAX_RESPONSES = 8
# Limits of argilla-server 2.8 (api/schemas/v1): checked here so that `create` fails before any call.
GUIDELINES_MAX_CHARS = 10_000
NAME_MAX_CHARS = 200
TITLE_MAX_CHARS = 500
DESCRIPTION_MAX_CHARS = 1_000
RATING_VALUE_RANGE = (0, 10)


# --- YAML with line numbers -------------------------------------------------------------


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file, keeping its node tree so that errors can name a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{path} does not exist."
        raise NotFound(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"Cannot read {path}: {exc}."
        raise ConfigError(msg) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_duplicate_keys(path, root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context_mark is not None:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        msg = (
            f"{location(path, line)}: invalid YAML: {problem}. "
            "Check the indentation, the quotes and the ':' after each key."
        )
        raise ConfigError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"{path}: invalid YAML: {exc}."
        raise ConfigError(msg) from None
    finally:
        loader.dispose()
    return data, root


def _check_duplicate_keys(path: Path, node: yaml.Node) -> None:
    """Refuse a key given twice: YAML would silently keep the last one."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    msg = (
                        f"{location(path, key.start_mark.line + 1)}: key '{key.value}' is given twice. "
                        "Keep only one of them."
                    )
                    raise ConfigError(msg)
                seen.add(key.value)
            _check_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(path, item)


def line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The line (1-based) of the deepest key or item of `loc` that the YAML tree holds."""
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def location(path: Path, line: int | None) -> str:
    """`file:line`, the way editors and compilers name a place in a file."""
    return f"{path}:{line}" if line else str(path)


def key_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a key path such as `questions[0].values`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe_validation_error(
    exc: ValidationError, *, path: Path, root: yaml.Node | None, known_keys: Iterable[str]
) -> str:
    """One actionable line for the first problem pydantic found, with file, line and key."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    # Union members and type adapters add their own names to the location: keep only real keys.
    loc = [part for part in first["loc"] if isinstance(part, int) or not _is_type_tag(part)]
    where = location(path, line_of(root, loc))
    key = key_path(loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        unknown = str(loc[-1]) if loc else key
        close = difflib.get_close_matches(unknown, sorted(set(known_keys)), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else "Remove it."
        text = f"{where}: unknown key '{key}'. {hint}"
    elif kind == "missing":
        text = f"{where}: missing required key '{key}'. Add '{loc[-1]}: ...' to the file."
    else:
        message = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        got = first.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        text = f"{where}: key '{key}': {message}{shown}." if key else f"{where}: {message}."
        text += _FIX_HINTS.get(kind, "")
    if len(errors) > 1:
        text += f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} after this one.)"
    return text


_FIX_HINTS = {
    "int_type": " Write a whole number without quotes.",
    "int_parsing": " Write a whole number without quotes.",
    "string_type": " Write text; quote it if it looks like a number or true/false.",
    "bool_type": " Write true or false.",
    "dict_type": " Write a mapping of keys, or {} for none.",
    "model_type": " Write a mapping of keys, or {} for the defaults.",
    "list_type": " Write a list, e.g. [1, 2, 3].",
    "literal_error": "",
}


def _is_type_tag(part: str) -> bool:
    """Whether a location part names a type (`list[int]`, `function-after[...]`) rather than a key."""
    return "[" in part or part in {"int", "str", "float", "bool", "dict", "list"}


# --- Template model ---------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _check_text(value: str | None, *, what: str, limit: int) -> None:
    if value is not None and not 1 <= len(value) <= limit:
        msg = f"{what} must have 1 to {limit} characters"
        raise ValueError(msg)


class ResponsesSpec(_Strict):
    """How many responses (N) the template takes."""

    default: int
    min: int
    max: int

    @model_validator(mode="after")
    def _check_range(self) -> ResponsesSpec:
        if not 1 <= self.min <= self.default <= self.max <= MAX_RESPONSES:
            msg = f"needs 1 <= min <= default <= max <= {MAX_RESPONSES}"
            raise ValueError(msg)
        return self


class FieldSpec(_Strict):
    """A text field shown to annotators."""

    name: str
    title: str | None = None
    description: str | None = None
    use_markdown: bool = True
    required: bool = True

    @model_validator(mode="after")
    def _check_lengths(self) -> FieldSpec:
        _check_text(self.name, what="name", limit=NAME_MAX_CHARS)
        _check_text(self.title, what="title", limit=TITLE_MAX_CHARS)
        _check_text(self.description, what="description", limit=DESCRIPTION_MAX_CHARS)
        return self


class QuestionSpec(_Strict):
    """A question: rating (values are integers), ranking or label (values map value -> shown text)."""

    name: str
    type: Literal["rating", "ranking", "label"]
    title: str | None = None
    description: str | None = None
    required: bool = True
    values: list[int] | list[str] | dict[str, str]

    @model_validator(mode="after")
    def _check_values(self) -> QuestionSpec:
        _check_text(self.name, what="name", limit=NAME_MAX_CHARS)
        _check_text(self.title, what="title", limit=TITLE_MAX_CHARS)
        _check_text(self.description, what="description", limit=DESCRIPTION_MAX_CHARS)
        if self.type == "rating":
            low, high = RATING_VALUE_RANGE
            if not isinstance(self.values, list) or not all(isinstance(v, int) for v in self.values):
                msg = "a rating question needs a list of integers, e.g. [1, 2, 3, 4, 5]"
                raise ValueError(msg)
            ints = [int(v) for v in self.values]
            if not 2 <= len(ints) <= 11 or not all(low <= v <= high for v in ints):
                msg = f"a rating question needs 2 to 11 integers from {low} to {high}"
                raise ValueError(msg)
        elif isinstance(self.values, list) and any(not isinstance(v, str) for v in self.values):
            msg = f"a {self.type} question needs text values or a mapping of value -> shown text"
            raise ValueError(msg)
        if len(set(self.values)) != len(self.values):
            msg = "values must be distinct"
            raise ValueError(msg)
        if len(self.values) < 2 and SLOT not in "".join(map(str, self.values)):
            msg = f"a {self.type} question needs at least 2 values"
            raise ValueError(msg)
        return self


class MetadataSpec(_Strict):
    """A metadata property; hidden from annotators unless `visible_for_annotators: true`."""

    name: str
    type: Literal["terms", "integer", "float"]
    title: str | None = None
    visible_for_annotators: bool = False

    @model_validator(mode="after")
    def _check_lengths(self) -> MetadataSpec:
        _check_text(self.name, what="name", limit=NAME_MAX_CHARS)
        _check_text(self.title, what="title", limit=TITLE_MAX_CHARS)
        return self


class TemplateSpec(_Strict):
    """A task template: what the annotators see and answer, as data."""

    name: str
    description: str = ""
    responses: ResponsesSpec
    min_submitted: int = Field(default=2, ge=1)
    guidelines: str | None = None
    fields: list[FieldSpec] = Field(min_length=1)
    questions: list[QuestionSpec] = Field(min_length=1)
    metadata: list[MetadataSpec] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_names(self) -> TemplateSpec:
        if self.responses.max > 1 and not any(SLOT in f.name for f in self.fields):
            msg = f"with more than one response, a field name must contain {SLOT}, e.g. response_{SLOT}"
            raise ValueError(msg)
        entries: list[FieldSpec | QuestionSpec | MetadataSpec] = [
            *self.fields,
            *self.questions,
            *self.metadata,
        ]
        names = [expand(entry.name, i) for entry in entries for i in _slots(entry.name, self.responses.max)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            msg = f"names must be unique across fields, questions and metadata: {', '.join(repeated)}"
            raise ValueError(msg)
        return self

    @property
    def source(self) -> Path | None:
        """The YAML file the template came from."""
        return self._source

    @property
    def guidelines_path(self) -> Path | None:
        """The guidelines file, relative to the template file."""
        if self.guidelines is None:
            return None
        path = Path(self.guidelines)
        if not path.is_absolute() and self._source is not None:
            path = self._source.parent / path
        return path

    def read_guidelines(self) -> str:
        """The template's Markdown guidelines, or a stub that asks the lead to write them."""
        path = self.guidelines_path
        if path is None:
            return f"# Guidelines\n\nWrite here how to annotate the {self.name} task: what good looks like.\n"
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"Cannot read the guidelines of template '{self.name}' at {path}: {exc}. Fix 'guidelines:'."
            raise ConfigError(msg) from None

    def check_responses(self, responses: int) -> None:
        """Refuse a number of responses the template does not take."""
        low, high = self.responses.min, self.responses.max
        if not low <= responses <= high:
            allowed = f"exactly {low}" if low == high else f"{low} to {high}"
            noun = "response" if high == 1 else "responses"
            msg = f"The {self.name} template takes {allowed} {noun} per prompt, not {responses}."
            raise UsageError(msg)


def expand(text: str, i: int) -> str:
    """Put slot number `i` into a name or text."""
    return text.replace(SLOT, str(i))


def _slots(name: str, responses: int) -> range:
    return range(1, responses + 1) if SLOT in name else range(1, 2)


def _model_keys() -> set[str]:
    keys: set[str] = set()
    for model in (TemplateSpec, ResponsesSpec, FieldSpec, QuestionSpec, MetadataSpec):
        keys.update(model.model_fields)
    return keys


def template_path(name_or_path: str | Path) -> Path:
    """The YAML file of a built-in template name, or the given path if it exists."""
    if isinstance(name_or_path, str) and name_or_path in TEMPLATE_NAMES:
        return TEMPLATES_DIR / f"{name_or_path}.yaml"
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    text = str(name_or_path)
    if path.suffix in {".yaml", ".yml"} or "/" in text or "\\" in text:
        choices = ", ".join(TEMPLATE_NAMES)
        msg = f"Template file {path} does not exist. Give an existing YAML file or one of {choices}."
        raise UsageError(msg)
    close = difflib.get_close_matches(text, TEMPLATE_NAMES, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    choices = ", ".join(TEMPLATE_NAMES)
    msg = f"Unknown template '{text}'. Choose {choices}, or give the path to a template YAML file.{hint}"
    raise UsageError(msg)


def load_template(name_or_path: str | Path) -> TemplateSpec:
    """A built-in template by name, or a user's template YAML file, validated."""
    path = template_path(name_or_path)
    data, root = read_yaml(path)
    if not isinstance(data, dict):
        msg = f"{path}: a template must be a YAML mapping with keys name, responses, fields, questions."
        raise ConfigError(msg)
    try:
        spec = TemplateSpec.model_validate(data)
    except ValidationError as exc:
        text = describe_validation_error(exc, path=path, root=root, known_keys=_model_keys())
        raise ConfigError(text) from None
    spec._source = path
    if spec.guidelines_path is not None and not spec.guidelines_path.is_file():
        msg = (
            f"{location(path, line_of(root, ['guidelines']))}: key 'guidelines': "
            f"{spec.guidelines_path} does not exist. Point it at a Markdown file next to the template."
        )
        raise ConfigError(msg)
    return spec


# --- Settings ---------------------------------------------------------------------------


def language_text(language: str | None) -> str:
    """How `{language}` reads in titles and descriptions."""
    return f"the campaign's language ({language})" if language else "the campaign's language"


def _fill(text: str | None, i: int, language: str | None) -> str | None:
    if text is None:
        return None
    return expand(text, i).replace(LANGUAGE, language_text(language))


def offline_client() -> rg.Argilla:
    """An Argilla client object that never connects: the SDK needs one to build Settings objects."""
    import argilla as rg

    class _OfflineArgilla(rg.Argilla):
        def _validate_connection(self) -> None:
            return None

        @classmethod
        def _set_default(cls, client: rg.Argilla) -> None:
            # Building settings offline must not replace the default client of a real session.
            return None

    return _OfflineArgilla(api_url="http://offline.invalid", api_key="offline", retries=0)


def check_guidelines(guidelines: str) -> str:
    """Guidelines as Argilla stores them (stripped), or an error if it would refuse them."""
    text = guidelines.strip()
    if not text:
        msg = "The guidelines are empty. Write them in the guidelines file (Markdown) named in campaign.yaml."
        raise ConfigError(msg)
    if len(text) > GUIDELINES_MAX_CHARS:
        msg = (
            f"The guidelines have {len(text)} characters; Argilla accepts at most {GUIDELINES_MAX_CHARS}. "
            "Shorten the guidelines file."
        )
        raise ConfigError(msg)
    return text


def build_settings(
    spec: TemplateSpec,
    *,
    responses: int,
    guidelines: str,
    min_submitted: int,
    language: str | None,
    client: rg.Argilla | None = None,
) -> rg.Settings:
    """The argilla Settings of a template for N responses; offline unless a client is given."""
    import argilla as rg

    spec.check_responses(responses)
    if min_submitted < 1:
        msg = f"min_submitted must be at least 1, not {min_submitted}."
        raise UsageError(msg)
    text = check_guidelines(guidelines)
    client = client or offline_client()

    fields = [
        rg.TextField(
            name=expand(f.name, i),
            title=_fill(f.title, i, language),
            description=_fill(f.description, i, language),
            use_markdown=f.use_markdown,
            required=f.required,
            client=client,
        )
        for f in spec.fields
        for i in _slots(f.name, responses)
    ]
    questions: list[Any] = [
        _question(q, i, responses, language, client)
        for q in spec.questions
        for i in _slots(q.name, responses)
    ]
    metadata_classes = {
        "terms": rg.TermsMetadataProperty,
        "integer": rg.IntegerMetadataProperty,
        "float": rg.FloatMetadataProperty,
    }
    metadata: list[Any] = [
        metadata_classes[m.type](
            name=expand(m.name, i),
            title=_fill(m.title, i, language),
            visible_for_annotators=m.visible_for_annotators,
            client=client,
        )
        for m in spec.metadata
        for i in _slots(m.name, responses)
    ]
    return rg.Settings(
        fields=fields,
        questions=questions,
        metadata=metadata,
        guidelines=text,
        allow_extra_metadata=False,
        distribution=rg.TaskDistribution(min_submitted=min_submitted),
    )


def _question(q: QuestionSpec, i: int, responses: int, language: str | None, client: rg.Argilla) -> Any:
    import argilla as rg

    common: dict[str, Any] = {
        "name": expand(q.name, i),
        "title": _fill(q.title, i, language),
        "description": _fill(q.description, i, language),
        "required": q.required,
        "client": client,
    }
    if q.type == "rating":
        return rg.RatingQuestion(values=list(q.values), **common)
    options = _expand_options(q.values, responses)
    if q.type == "ranking":
        return rg.RankingQuestion(values=options, **common)
    return rg.LabelQuestion(labels=options, **common)


def _expand_options(values: list[int] | list[str] | dict[str, str], responses: int) -> dict[str, str]:
    """Options as value -> shown text, with `{i}` entries repeated per response slot."""
    pairs = values.items() if isinstance(values, dict) else ((str(v), str(v)) for v in values)
    return {expand(value, i): expand(text, i) for value, text in pairs for i in _slots(value, responses)}


# --- Summary and diff -------------------------------------------------------------------


def settings_summary(settings: rg.Settings) -> dict[str, Any]:
    """A plain JSON-able description of Settings, for display and for comparing with the server."""
    data = settings.serialize()
    guidelines = (data.get("guidelines") or "").strip()
    distribution = data.get("distribution") or {}
    return {
        "fields": [
            {
                "name": f["name"],
                "type": f["settings"]["type"],
                "title": f.get("title"),
                "description": f.get("description"),
                "required": f.get("required"),
                "use_markdown": f["settings"].get("use_markdown"),
            }
            for f in data.get("fields", [])
        ],
        "questions": [
            {
                "name": q["name"],
                "type": q["settings"]["type"],
                "title": q.get("title"),
                "description": q.get("description"),
                "required": q.get("required"),
                "options": _options(q["settings"]),
            }
            for q in data.get("questions", [])
        ],
        "metadata": [_metadata_summary(m) for m in data.get("metadata", [])],
        "distribution": {
            "strategy": distribution.get("strategy"),
            "min_submitted": distribution.get("min_submitted"),
        },
        "allow_extra_metadata": data.get("allow_extra_metadata"),
        "guidelines": {
            "sha256": hashlib.sha256(guidelines.encode("utf-8")).hexdigest(),
            "chars": len(guidelines),
        },
    }


def _options(settings: dict[str, Any]) -> Any:
    options = settings.get("options") or []
    if settings.get("type") == "rating":
        return [option["value"] for option in options]
    return {str(option["value"]): option.get("text") for option in options}


def _metadata_summary(m: dict[str, Any]) -> dict[str, Any]:
    settings = m.get("settings") or {}
    summary = {
        "name": m["name"],
        "type": settings.get("type"),
        "title": m.get("title"),
        "visible_for_annotators": m.get("visible_for_annotators"),
    }
    for key in ("values", "min", "max"):
        if settings.get(key) is not None:
            summary[key] = settings[key]
    return summary


_SECTIONS = (("fields", "field"), ("questions", "question"), ("metadata", "metadata property"))


def diff_settings(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences between two settings summaries, one per line; empty if equal."""
    out: list[str] = []
    for section, label in _SECTIONS:
        wanted = {item["name"]: item for item in expected.get(section, [])}
        found = {item["name"]: item for item in actual.get(section, [])}
        for name, item in wanted.items():
            if name not in found:
                out.append(f"{label} '{name}': expected, but missing")
                continue
            other = found[name]
            for key in [k for k in item if k != "name"] + [k for k in other if k not in item]:
                if item.get(key) != other.get(key):
                    out.append(f"{label} '{name}' {key}: {_expected_found(item.get(key), other.get(key))}")
        out.extend(f"{label} '{name}': not expected, but present" for name in found if name not in wanted)
        if set(wanted) == set(found) and list(wanted) != list(found):
            out.append(f"{section} order: expected {', '.join(wanted)}; found {', '.join(found)}")
    for key in ("distribution", "allow_extra_metadata"):
        wanted_value, found_value = expected.get(key), actual.get(key)
        if isinstance(wanted_value, dict) and isinstance(found_value, dict):
            for sub in list(wanted_value) + [k for k in found_value if k not in wanted_value]:
                if wanted_value.get(sub) != found_value.get(sub):
                    out.append(f"{key}.{sub}: {_expected_found(wanted_value.get(sub), found_value.get(sub))}")
        elif wanted_value != found_value:
            out.append(f"{key}: expected {_show(wanted_value)}, found {_show(found_value)}")
    wanted_g, found_g = expected.get("guidelines") or {}, actual.get("guidelines") or {}
    if wanted_g.get("sha256") != found_g.get("sha256"):
        out.append(
            f"guidelines: differ (expected {_guidelines_id(wanted_g)}; found {_guidelines_id(found_g)})"
        )
    return out


def _expected_found(expected: Any, found: Any) -> str:
    return f"expected {_show(expected)}, found {_show(found)}"


def _guidelines_id(guidelines: dict[str, Any]) -> str:
    return f"{guidelines.get('chars')} characters, sha256 {str(guidelines.get('sha256'))[:12]}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


# --- The campaign's dataset on the server -------------------------------------------------


@dataclass(frozen=True)
class EnsureResult:
    """What `campaign create` did."""

    created: bool
    workspace_created: bool
    dataset_id: str
    url: str
    differences: list[str] = field(default_factory=list)


def ensure_dataset(
    *, name: str, workspace: str, settings: rg.Settings, client: ArgillaClient | None = None
) -> EnsureResult:
    """Create a workspace and dataset with these settings, or check that the existing dataset has them."""
    if client is None:
        from campaign.client import connect

        client = connect()
    ensured = client.ensure_dataset(name=name, workspace=workspace, settings=settings)
    differences = []
    if ensured.server_settings is not None:
        differences = diff_settings(settings_summary(settings), settings_summary(ensured.server_settings))
    return EnsureResult(
        ensured.created, ensured.workspace_created, ensured.dataset_id, ensured.url, differences
    )
