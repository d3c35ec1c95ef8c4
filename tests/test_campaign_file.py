"""campaign.yaml: the model, the loader's file:line:key errors, and init_campaign."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from campaign.campaign_file import (
    CAMPAIGN_FILENAME,
    CampaignFile,
    default_workspace,
    find_campaign,
    init_campaign,
    load_campaign,
)
from campaign.consensus import ConsensusPolicy
from campaign.errors import ConfigError, NotFound, UsageError
from campaign.templates import settings_summary


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dutch-dpo"
    init_campaign(directory, template="rating", responses=3, language="nl", min_submitted=3)
    return directory


def edit(directory: Path, old: str, new: str) -> None:
    path = directory / CAMPAIGN_FILENAME
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_number(directory: Path, startswith: str) -> int:
    lines = (directory / CAMPAIGN_FILENAME).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(startswith))


def test_init_round_trips(campaign_dir: Path) -> None:
    campaign = load_campaign(campaign_dir)
    assert campaign.name == "dutch-dpo"
    assert campaign.workspace == "dutch-dpo"
    assert campaign.template == "rating"
    assert (campaign.responses, campaign.language, campaign.min_submitted) == (3, "nl", 3)
    assert (campaign.round, campaign.seed, campaign.guidelines) == (1, 0, "guidelines.md")
    assert campaign.consensus == ConsensusPolicy() and campaign.export == {}
    assert campaign.path == campaign_dir / CAMPAIGN_FILENAME
    assert load_campaign(campaign_dir / CAMPAIGN_FILENAME).name == "dutch-dpo"


def test_every_key_is_commented(campaign_dir: Path) -> None:
    lines = (campaign_dir / CAMPAIGN_FILENAME).read_text(encoding="utf-8").splitlines()
    for key in CampaignFile.model_fields:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert lines[index - 1].startswith("#"), key


def test_build_settings_from_campaign(campaign_dir: Path) -> None:
    summary = settings_summary(load_campaign(campaign_dir).build_settings())
    assert [f["name"] for f in summary["fields"]] == ["prompt", "response_1", "response_2", "response_3"]
    assert summary["distribution"]["min_submitted"] == 3
    guidelines = (campaign_dir / "guidelines.md").read_text(encoding="utf-8").strip()
    assert summary["guidelines"]["chars"] == len(guidelines)


def test_init_defaults_per_template(tmp_path: Path) -> None:
    result = init_campaign(tmp_path / "haiku kto", template="binary")
    assert result.campaign.responses == 1
    assert result.campaign.name == "haiku-kto"
    assert result.campaign.workspace == "haiku-kto"
    assert load_campaign(tmp_path / "haiku kto").template == "binary"


def test_init_refuses_overwrite_unless_forced(campaign_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"already exist.*--force"):
        init_campaign(campaign_dir, template="ranking")
    init_campaign(campaign_dir, template="ranking", force=True)
    assert load_campaign(campaign_dir).template == "ranking"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"template": "rate"}, "Unknown template 'rate'"),
        ({"template": "rating", "responses": 9}, "takes 2 to 8 responses per prompt, not 9"),
        ({"template": "binary", "responses": 2}, "takes exactly 1 response per prompt, not 2"),
        ({"template": "rating", "workspace": "my space"}, "Invalid --workspace 'my space'"),
        ({"template": "rating", "language": "Dutch"}, "Invalid --language 'Dutch'"),
        ({"template": "rating", "min_submitted": 0}, "Invalid --min-submitted 0"),
        ({"template": "rating", "name": " padded"}, "Invalid --name ' padded'"),
    ],
)
def test_init_usage_errors(tmp_path: Path, options: dict, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        init_campaign(tmp_path / "c", **options)
    assert not (tmp_path / "c").exists()


def test_init_with_custom_template_keeps_a_relative_path(tmp_path: Path) -> None:
    templates = tmp_path / "shared"
    templates.mkdir()
    (templates / "mine.yaml").write_text(
        (Path(__file__).parents[1] / "campaign" / "_templates" / "binary.yaml")
        .read_text(encoding="utf-8")
        .replace("binary.guidelines.md", "mine.md"),
        encoding="utf-8",
    )
    (templates / "mine.md").write_text("# Mine\n", encoding="utf-8")
    init_campaign(tmp_path / "c", template=str(templates / "mine.yaml"))
    campaign = load_campaign(tmp_path / "c")
    assert campaign.template == "../shared/mine.yaml"
    assert campaign.load_template().source == (tmp_path / "c" / "../shared/mine.yaml")
    assert (tmp_path / "c" / "guidelines.md").read_text(encoding="utf-8") == "# Mine\n"


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("responses: 3", "respones: 3", "respones", r"unknown key 'respones'. Did you mean 'responses'\?"),
        ("responses: 3", "responses: three", "responses", r"key 'responses': .*valid integer.*whole number"),
        ("responses: 3", "responses: 9", "responses", r"key 'responses': .*less than or equal to 8"),
        ("responses: 3", "responses: 1", "responses", r"key 'responses': The rating template takes 2 to 8"),
        (
            "workspace: dutch-dpo",
            "workspace: dutch dpo",
            "workspace",
            r"key 'workspace': Argilla accepts only",
        ),
        ("language: nl", "language: Dutch", "language", r"key 'language': use a language code"),
        ("\ntemplate: rating", "\ntemplate: ratings", "template", r"key 'template': use one of rating"),
        (
            "\ntemplate: rating",
            "\ntemplate: other.yaml",
            "template",
            r"key 'template': Template file .* not exist",
        ),
        (
            "min_submitted: 3",
            "min_submitted: 0",
            "min_submitted",
            r"key 'min_submitted': .*greater than or equal",
        ),
        ("\nconsensus: {}", "\nconsensus: strict", "consensus", r"key 'consensus': .*mapping"),
        (
            "consensus: {}",
            "consensus: {rating: {min_margn: 2}}",
            "consensus",
            r"unknown key 'consensus.rating.min_margn'. Did you mean 'min_margin'",
        ),
        (
            "\nconsensus: {}",
            "\nconsensus: {kto: {desirable_min: high}}",
            "consensus",
            r"consensus.kto.desirable_min",
        ),
        ("seed: 0", "seed: 0\nseed: 1", "seed", r"key 'seed' is given twice"),
        ("\nname: dutch-dpo", "\n# no name", "name", r"missing required key 'name'. Add 'name: ...'"),
    ],
)
def test_load_errors_name_file_line_and_key(
    campaign_dir: Path, old: str, new: str, key: str, expected: str
) -> None:
    edit(campaign_dir, old, new)
    path = campaign_dir / CAMPAIGN_FILENAME
    # A missing key is reported at the start of the mapping: the first key.
    line = line_number(campaign_dir, "workspace:" if key == "name" else f"{key}:")
    if "twice" in expected:
        line += 1
    with pytest.raises(ConfigError) as info:
        load_campaign(campaign_dir)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert re.search(expected, message), message
    assert "\n" not in message


def test_invalid_yaml_names_the_line(campaign_dir: Path) -> None:
    edit(campaign_dir, "responses: 3", "responses: [3")
    with pytest.raises(ConfigError, match=r"campaign.yaml:\d+: invalid YAML: .*on line 14"):
        load_campaign(campaign_dir)


def test_empty_and_non_mapping_files(campaign_dir: Path) -> None:
    path = campaign_dir / CAMPAIGN_FILENAME
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        load_campaign(campaign_dir)
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_campaign(campaign_dir)


def test_find_campaign_explains_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="campaign init"):
        find_campaign(tmp_path)
    with pytest.raises(NotFound, match="does not exist"):
        find_campaign(tmp_path / "missing")


def test_missing_guidelines_file(campaign_dir: Path) -> None:
    (campaign_dir / "guidelines.md").unlink()
    campaign = load_campaign(campaign_dir)
    with pytest.raises(NotFound, match="key 'guidelines'"):
        campaign.build_settings()


def test_dataset_name_rules() -> None:
    base = {"workspace": "w"}
    assert CampaignFile.model_validate({**base, "name": "Aya NL — ronde 1"}).name == "Aya NL — ronde 1"
    for bad in ("", "x" * 201, " lead"):
        with pytest.raises(ValueError, match="dataset name"):
            CampaignFile.model_validate({**base, "name": bad})


def test_default_workspace() -> None:
    assert default_workspace("Aya NL (round 1)") == "Aya-NL-round-1"
    assert default_workspace("***") == "campaign"
