"""The dataset card (README.md) of an export folder: YAML header with `configs`, then what a reader needs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from campaign.errors import CampaignError

if TYPE_CHECKING:
    from campaign.snapshot import Snapshot

LOW, HIGH = (
    1.0,
    4 / 3,
)  # TRL's advice for desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
TRAINERS = {
    "dpo": ("from trl import DPOConfig, DPOTrainer", "DPOTrainer", "DPOConfig"),
    "orpo": ("from trl.experimental.orpo import ORPOConfig, ORPOTrainer", "ORPOTrainer", "ORPOConfig"),
    "kto": ("from trl import KTOConfig, KTOTrainer", "KTOTrainer", "KTOConfig"),
}

# The campaign-level statistics the card shows: per-annotator rows stay out (no usernames leave the machine).
AGREEMENT_KEYS = (
    "template",
    "level",
    "n_records",
    "n_annotators",
    "n_responses",
    "overall",
    "per_question",
    "fleiss",
    "kendall_w",
)


def card_agreement(snapshot: Snapshot) -> tuple[dict[str, Any] | None, str | None]:
    """The snapshot's campaign-level agreement for the card, or None and why it is left out."""
    template = snapshot.meta.get("template")
    if not template:
        return None, None
    try:
        from campaign.agreement import campaign_agreement

        report = campaign_agreement(snapshot.responses, str(template)).to_dict()
    except (ImportError, CampaignError, ValueError) as exc:
        return None, f"Agreement left out of the card: {exc}"
    return {key: report[key] for key in AGREEMENT_KEYS if report.get(key) is not None}, None


def kto_weights(n_desirable: int, n_undesirable: int) -> dict[str, float] | None:
    """Suggested KTO weights that put the weighted class ratio inside TRL's [1, 4/3]; None without both."""
    if n_desirable <= 0 or n_undesirable <= 0:
        return None
    ratio = n_desirable / n_undesirable
    if LOW <= ratio <= HIGH:
        return {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    for digits in (2, 3, 4, 6):  # aim at the middle of the range, rounded as coarsely as still fits
        weights = {"desirable_weight": round(1.15 / ratio, digits), "undesirable_weight": 1.0}
        if LOW <= weighted_ratio(n_desirable, n_undesirable, **weights) <= HIGH:
            return weights
    return {"desirable_weight": 1.15 / ratio, "undesirable_weight": 1.0}


def weighted_ratio(
    n_desirable: int, n_undesirable: int, *, desirable_weight: float, undesirable_weight: float
) -> float:
    """TRL's weighted class ratio."""
    return desirable_weight * n_desirable / (undesirable_weight * n_undesirable)


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n examples."""
    buckets = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    for limit, name in buckets:
        if n < limit:
            return name
    return "1M<n<10M" if n < 10_000_000 else "n>10M"


def card_header(manifest: Mapping[str, Any], *, language: str | None, license: str) -> dict[str, Any]:
    """The YAML metadata of the card: configs per format pointing at their data files."""
    formats: Mapping[str, Any] = manifest["formats"]
    configs = [
        {
            "config_name": fmt,
            "data_files": [{"split": split, "path": info["path"]} for split, info in spec["files"].items()],
        }
        for fmt, spec in formats.items()
    ]
    total = sum(spec["rows"] for spec in formats.values())
    header: dict[str, Any] = {}
    if language:
        header["language"] = [language]
    header["license"] = license
    header["task_categories"] = ["text-generation"]
    header["tags"] = ["preference", "argilla", "argilla-campaign", "trl", *formats]
    header["size_categories"] = [size_category(total)]
    header["configs"] = configs
    return header


def _table(rows: list[list[Any]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(
    manifest: Mapping[str, Any],
    *,
    agreement: Mapping[str, Any] | None = None,
    language: str | None = None,
    license: str = "other",
    repo_id: str | None = None,
) -> str:
    """The whole README.md: header, campaign, policy, agreement, counts, drop reasons, KTO balance, usage."""
    header = yaml.safe_dump(card_header(manifest, language=language, license=license), sort_keys=False)
    name = manifest.get("campaign") or "argilla-campaign export"
    snap = manifest["snapshot"]
    formats: Mapping[str, Any] = manifest["formats"]
    parts = [f"---\n{header}---\n", f"# {name}\n"]
    parts.append(
        "Preference data collected with [argilla-campaign](https://pypi.org/project/argilla-campaign/) "
        "on Argilla and consolidated into TRL-ready splits.\n"
    )
    rounds = manifest["rounds"]
    parts.append(
        _table(
            [
                ["snapshot", f"`{snap.get('snapshot_id') or '-'}` (synced {snap.get('synced_at') or '-'})"],
                ["Argilla dataset", snap.get("dataset") or "-"],
                ["template", snap.get("template") or "-"],
                ["rounds", ", ".join(str(r) for r in rounds) if rounds else "-"],
                ["format", "conversational" if manifest["options"]["chat"] else "standard"],
                [
                    "split",
                    f"by prompt hash, test_size={manifest['options']['test_size']}, "
                    f"seed={manifest['options']['seed']}",
                ],
                ["config hash", f"`{manifest['config_hash']}`"],
            ],
            ["", ""],
        )
        + "\n"
    )
    parts.append("## Counts\n")
    count_rows = []
    for fmt, spec in formats.items():
        files = spec["files"]
        count_rows.append(
            [
                fmt,
                files.get("train", {}).get("rows", 0),
                files.get("test", {}).get("rows", 0),
                f"{spec['kept']} / {spec['total']} {spec['unit']}",
                "-" if spec.get("mean_agreement") is None else f"{spec['mean_agreement']:.3f}",
            ]
        )
    parts.append(_table(count_rows, ["config", "train", "test", "kept", "mean agreement"]) + "\n")
    if any(set(spec["files"]) != set(spec.get("splits") or spec["files"]) for spec in formats.values()):
        # `datasets` cannot load a split of zero rows, so an empty split is left out everywhere alike.
        parts.append(
            "A split with no rows has no file and is not in `configs`: "
            '`load_dataset` then returns the other split alone (check `"test" in dataset`).\n'
        )
    parts.append("### Dropped, by reason\n")
    drop_rows = [[fmt, reason, n] for fmt, spec in formats.items() for reason, n in spec["dropped"].items()]
    parts.append(
        (_table(drop_rows, ["config", "reason", "count"]) if drop_rows else "Nothing was dropped.") + "\n"
    )
    if "kto" in formats:
        parts.append(_kto_section(formats["kto"]))
    parts.append("## Consensus policy\n")
    parts.append("```yaml\n" + yaml.safe_dump(manifest["policy"], sort_keys=False) + "```\n")
    parts.append("## Agreement\n")
    if agreement:
        rows = _agreement_rows(agreement)
        if rows:
            parts.append(_table(rows, ["scope", "statistic", "level", "value", "units"]) + "\n")
        parts.append(
            "<details><summary>Full agreement report</summary>\n\n```json\n"
            + json.dumps(agreement, indent=2, sort_keys=True, default=str)
            + "\n```\n</details>\n"
        )
    else:
        parts.append("No agreement report was attached; run `campaign status` for one.\n")
    parts.append(_usage(formats, repo_id=repo_id))
    return "\n".join(parts)


def _agreement_rows(agreement: Mapping[str, Any]) -> list[list[Any]]:
    """Table rows for the statistics in an agreement report (entries shaped like Statistic.to_dict())."""
    scopes: list[tuple[str, Any]] = [("overall", agreement.get("overall"))]
    per_question = agreement.get("per_question")
    if isinstance(per_question, Mapping):
        scopes += list(per_question.items())
    scopes += [(key, agreement.get(key)) for key in ("fleiss", "kendall_w")]
    rows = []
    for scope, stat in scopes:
        if isinstance(stat, Mapping) and "statistic" in stat:
            value = stat.get("value")
            shown = f"{value:.3f}" if isinstance(value, int | float) else (stat.get("reason") or "-")
            rows.append([scope, stat["statistic"], stat.get("level") or "-", shown, stat.get("n_units", "-")])
    return rows


def _kto_section(spec: Mapping[str, Any]) -> str:
    balance = spec["balance"]
    lines = ["## KTO class balance\n"]
    lines.append(
        f"{balance['desirable']} desirable (label True), {balance['undesirable']} undesirable (False)."
    )
    weights = balance.get("suggested_weights")
    if weights:
        lines.append(
            f"Suggested `KTOConfig(desirable_weight={weights['desirable_weight']}, "
            f"undesirable_weight={weights['undesirable_weight']})`: TRL advises keeping "
            "desirable_weight * n_desirable / (undesirable_weight * n_undesirable) between 1 and 4/3.\n"
        )
    else:
        lines.append("KTO needs both classes; this export lacks one.\n")
    return "\n".join(lines)


def _usage(formats: Mapping[str, Any], *, repo_id: str | None) -> str:
    parts = ["## Use\n", "Load with `datasets`:\n", "```python", "from datasets import load_dataset", ""]
    for fmt in formats:
        if repo_id:
            parts.append(f'{fmt} = load_dataset("{repo_id}", "{fmt}")')
        else:
            files = ", ".join(f'"{split}": "{info["path"]}"' for split, info in formats[fmt]["files"].items())
            parts.append(f'{fmt} = load_dataset("parquet", data_files={{{files}}})')
    parts += ["```", "", "Train with TRL 1.16:", "", "```python"]
    for fmt in formats:
        imports, trainer, config = TRAINERS[fmt]
        parts += [
            imports,
            "",
            f"trainer = {trainer}(",
            '    model="your-base-model",',
            f'    args={config}(output_dir="{fmt}-model"),',
            f'    train_dataset={fmt}["train"],',
            ")",
            "trainer.train()",
            "",
        ]
    parts += [
        "```",
        "",
        "Columns besides the TRL ones (`prompt_id`, `record_id`, models, scores, `margin`, `n_annotators`, "
        "`agreement`, `source`) are provenance; TRL ignores them.",
        "",
    ]
    return "\n".join(parts)
