"""`campaign demo`: the whole loop on a bundled sample, from server to seeded dataset and demo annotators.

The sample (`campaign/_sample/distiset`) is hand-written: about 40 prompts with answers from three
pretend models and a pretend judge's ratings, in distilabel's Distiset layout. With
`with_sample_responses`, the demo annotators "annotate" through the real API: each logs in with its
password and posts seeded random answers that follow the judge's ratings plus noise. Those answers
are simulated, and the accounts say so (first name "Simulated").

Every step is idempotent: running the demo again reuses the campaign, seeds nothing twice, keeps
the annotators and their passwords, and posts no second response for a record and annotator.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.config import ENV_API_KEY, ENV_API_URL, write_private_text
from campaign.errors import AuthenticationFailed, ConfigError, Conflict

if TYPE_CHECKING:
    from campaign.campaign_file import CampaignFile
    from campaign.client import ArgillaClient

DEFAULT_DIRECTORY = Path("campaign-demo")
TEMPLATE = "rating"
RESPONSES = 3
MIN_SUBMITTED = 2
LANGUAGE = "en"
ANNOTATOR_PREFIX = "demo-annotator-"
SIMULATED_FIRST_NAME = "Simulated"
LOGINS_FILENAME = "demo-logins.csv"
SAMPLE_SOURCE_NAME = "demo-sample"
MAX_ANNOTATORS = 20

# Per annotator (by position): a bias added to the true quality, and the spread of the noise.
# Three different temperaments give moderate, not perfect, agreement.
TEMPERAMENTS = ((0.0, 0.9), (0.5, 1.1), (-0.4, 1.4))


def sample_path() -> Path:
    """The bundled Distiset folder that the demo seeds."""
    return Path(str(resources.files("campaign") / "_sample" / "distiset"))


@dataclass(frozen=True)
class DemoOptions:
    """What `campaign demo` does, and where."""

    directory: Path = DEFAULT_DIRECTORY
    annotators: int = 3
    with_sample_responses: bool = False
    seed: int = 0
    home: Path | None = None
    port: int = 6900

    def __post_init__(self) -> None:
        if not 1 <= self.annotators <= MAX_ANNOTATORS:
            msg = f"--annotators must be between 1 and {MAX_ANNOTATORS}, got {self.annotators}."
            raise ConfigError(msg)
        if self.with_sample_responses and self.annotators < MIN_SUBMITTED:
            msg = (
                f"--with-sample-responses needs at least {MIN_SUBMITTED} annotators, since each record needs "
                f"{MIN_SUBMITTED} submissions to complete; got --annotators {self.annotators}."
            )
            raise ConfigError(msg)


@dataclass(frozen=True)
class ServerUsed:
    """The Argilla the demo talks to."""

    url: str
    started: bool
    external: bool
    credentials_file: str | None = None


@dataclass(frozen=True)
class PlannedResponse:
    """One simulated answer: which record, as whom, with which status and values."""

    record_id: str
    username: str
    status: str  # submitted | draft | discarded
    values: dict[str, int] | None


@dataclass(frozen=True)
class SimRecord:
    """What the simulation needs of a record: its ids, its rating questions and the judge's ratings."""

    id: str
    key: str
    questions: tuple[str, ...]
    judge: dict[str, int] = field(default_factory=dict)


@dataclass
class SimulationResult:
    """What the simulated annotators posted in this run."""

    submitted: int = 0
    draft: int = 0
    discarded: int = 0
    already_answered: int = 0
    by_annotator: dict[str, int] = field(default_factory=dict)

    @property
    def posted(self) -> int:
        """Responses posted in this run, all statuses."""
        return self.submitted + self.draft + self.discarded


@dataclass
class DemoResult:
    """Everything `campaign demo` did: server, campaign, seeding, annotators and simulated answers."""

    server: ServerUsed
    campaign_dir: Path
    campaign_created: bool
    dataset: dict[str, Any]
    seed: dict[str, Any]
    annotators: list[dict[str, str]]
    logins_file: Path
    simulation: SimulationResult | None
    next_steps: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; never holds passwords or API keys (they are in the logins file)."""
        simulation = None
        if self.simulation is not None:
            simulation = {"simulated": True, **asdict(self.simulation), "posted": self.simulation.posted}
        return {
            "server": asdict(self.server),
            "campaign": {"directory": str(self.campaign_dir), "created": self.campaign_created},
            "dataset": self.dataset,
            "seed": self.seed,
            "annotators": self.annotators,
            "logins_file": str(self.logins_file),
            "simulated_responses": simulation,
            "next_steps": self.next_steps,
        }


Step = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress callback: say nothing."""


def run_demo(options: DemoOptions, *, on_step: Step = _quiet) -> DemoResult:
    """Server, campaign, dataset, seed, demo annotators and (optionally) simulated answers, idempotently."""
    client, server = ensure_server(home=options.home, port=options.port, on_step=on_step)
    campaign, created = ensure_demo_campaign(options.directory)
    on_step(f"{'Created' if created else 'Reusing'} the demo campaign in {campaign.directory}.")
    dataset = ensure_demo_dataset(client, campaign)
    on_step(f"Dataset '{campaign.name}' in workspace '{campaign.workspace}': {dataset['url']}")
    seeded = seed_sample(client, campaign, dataset["id"])
    on_step(
        f"Seeded the bundled sample: {seeded['created']} records created, "
        f"{seeded['already_present']} already present, {seeded['skipped']} rows skipped."
    )
    logins_file = campaign.directory / LOGINS_FILENAME
    annotators, passwords = ensure_demo_annotators(
        client, campaign.workspace, count=options.annotators, logins_file=logins_file
    )
    write_logins(logins_file, passwords, url=server.url)
    on_step(f"Demo annotators: {', '.join(a['username'] for a in annotators)}; logins in {logins_file}.")
    simulation = None
    if options.with_sample_responses:
        on_step("Posting simulated answers as the demo annotators ...")
        usernames = [a["username"] for a in annotators]
        simulation = simulate_responses(
            client, dataset["id"], {u: passwords[u] for u in usernames}, seed=options.seed
        )
    return DemoResult(
        server=server,
        campaign_dir=campaign.directory,
        campaign_created=created,
        dataset=dataset,
        seed=seeded,
        annotators=annotators,
        logins_file=logins_file,
        simulation=simulation,
        next_steps=next_steps(campaign.directory, home=None if server.external else options.home),
    )


# -- server -------------------------------------------------------------------------------------


def ensure_server(
    *, home: Path | None = None, port: int = 6900, on_step: Step = _quiet
) -> tuple[ArgillaClient, ServerUsed]:
    """The configured server (ARGILLA_API_URL/KEY), else the local one, started if it is not running."""
    from campaign import client as argilla

    env_url, env_key = os.environ.get(ENV_API_URL), os.environ.get(ENV_API_KEY)
    if env_url or env_key:
        if not (env_url and env_key):
            missing = ENV_API_KEY if env_url else ENV_API_URL
            msg = (
                f"{missing} is not set. Set both {ENV_API_URL} and {ENV_API_KEY} to use another Argilla, "
                "or neither to use the local server."
            )
            raise ConfigError(msg)
        client = argilla.connect()
        on_step(f"Using the Argilla at {client.api_url} ({ENV_API_URL}); not starting a local server.")
        return client, ServerUsed(url=client.api_url, started=False, external=True)

    from campaign.server.control.local_server import LocalServer, ServerOptions

    local = LocalServer(home)
    status = local.status()
    started = False
    if not status.healthy:
        on_step(f"Starting the local Argilla server in {local.home} (port {port}) ...")
        status = local.start(ServerOptions(port=port))
        started = True
    client = argilla.connect(home=local.home)
    return client, ServerUsed(
        url=status.url or client.api_url,
        started=started,
        external=False,
        credentials_file=status.credentials_file,
    )


# -- campaign, dataset, seed ----------------------------------------------------------------------


def ensure_demo_campaign(directory: Path) -> tuple[CampaignFile, bool]:
    """The demo's rating campaign in `directory`: loaded if it is there, written by `init` if not."""
    from campaign.campaign_file import CAMPAIGN_FILENAME, init_campaign, load_campaign

    directory = Path(directory).expanduser()
    if (directory / CAMPAIGN_FILENAME).is_file():
        campaign = load_campaign(directory)
        if campaign.template != TEMPLATE or campaign.responses != RESPONSES:
            msg = (
                f"{campaign.path} is not a demo campaign (it has template {campaign.template!r} with "
                f"{campaign.responses} responses; the demo needs {TEMPLATE!r} with {RESPONSES}). "
                "Choose another folder with --dir."
            )
            raise ConfigError(msg)
        return campaign, False
    result = init_campaign(
        directory,
        template=TEMPLATE,
        responses=RESPONSES,
        language=LANGUAGE,
        min_submitted=MIN_SUBMITTED,
    )
    return load_campaign(result.campaign_path), True


def ensure_demo_dataset(client: ArgillaClient, campaign: CampaignFile) -> dict[str, Any]:
    """Create the campaign's workspace and dataset, or check that the existing ones match."""
    from campaign.templates import ensure_dataset

    result = ensure_dataset(
        name=campaign.name, workspace=campaign.workspace, settings=campaign.build_settings(), client=client
    )
    if result.differences:
        msg = (
            f"Dataset {campaign.name!r} in workspace {campaign.workspace!r} exists on {client.api_url} with "
            f"other settings ({'; '.join(result.differences[:3])}). Choose another folder with --dir."
        )
        raise Conflict(msg)
    return {
        "name": campaign.name,
        "workspace": campaign.workspace,
        "id": result.dataset_id,
        "url": result.url,
        "created": result.created,
    }


def seed_sample(client: ArgillaClient, campaign: CampaignFile, dataset_id: str) -> dict[str, Any]:
    """Seed the bundled sample into the dataset; records already there are not sent again."""
    from campaign.seed import SeedOptions, open_source, plan_records, write_plan

    options = SeedOptions(
        template=TEMPLATE,
        responses=campaign.responses,
        round=campaign.round,
        source_name=SAMPLE_SOURCE_NAME,
        language=campaign.language,
        seed=campaign.seed,
    )
    plan = plan_records([open_source(str(sample_path()))], options)
    outcome = write_plan(client, dataset_id, plan)
    summary = outcome.to_dict()
    summary["source"] = str(sample_path())
    return summary


# -- annotators and logins ----------------------------------------------------------------------


def demo_usernames(count: int) -> list[str]:
    """demo-annotator-1 .. demo-annotator-N."""
    return [f"{ANNOTATOR_PREFIX}{i}" for i in range(1, count + 1)]


def read_logins(path: Path) -> dict[str, str]:
    """Username -> password from an earlier run's logins file (empty if there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        msg = f"Cannot read {path}: {exc}. Delete it to have the demo annotators' passwords reset."
        raise ConfigError(msg) from None
    rows = csv.DictReader(io.StringIO(text))
    return {row["username"]: row["password"] for row in rows if row.get("username") and row.get("password")}


def write_logins(path: Path, passwords: dict[str, str], *, url: str) -> None:
    """Write username, password and login URL per demo annotator, readable by the owner only (0600)."""
    known = read_logins(path)
    known.update(passwords)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["username", "password", "url"])
    for username in sorted(known, key=_annotator_order):
        writer.writerow([username, known[username], url])
    write_private_text(path, buffer.getvalue())


def _annotator_order(username: str) -> tuple[int, str]:
    suffix = username.removeprefix(ANNOTATOR_PREFIX)
    return (int(suffix), username) if suffix.isdigit() else (10**9, username)


def ensure_demo_annotators(
    client: ArgillaClient, workspace: str, *, count: int, logins_file: Path
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Create the demo annotators (or reuse them) in the workspace; returns their actions and passwords.

    Passwords come from the logins file of an earlier run. A demo account whose password was lost
    gets a new one; an account of the same name that the demo did not create is left alone.
    """
    from campaign.annotators import AnnotatorSpec, add_annotators
    from campaign.client import random_password

    usernames = demo_usernames(count)
    known = read_logins(logins_file)
    users = {u["username"]: u for u in client.users()}
    resets: dict[str, str] = {}
    for username in usernames:
        user = users.get(username)
        if user is None or username in known:
            continue
        if user.get("first_name") != SIMULATED_FIRST_NAME:
            msg = (
                f"User {username!r} exists on {client.api_url} but was not created by the demo, and its "
                "password is unknown. Remove that user, or run the demo on another server."
            )
            raise Conflict(msg)
        resets[username] = random_password()
        client.set_password(str(user["id"]), resets[username])
    specs = [
        AnnotatorSpec(
            username=username,
            first_name=SIMULATED_FIRST_NAME,
            last_name=f"demo annotator {i}",
            role="annotator",
        )
        for i, username in enumerate(usernames, start=1)
    ]
    passwords: dict[str, str] = {}
    actions: list[dict[str, str]] = []
    for result in add_annotators(client, workspace, specs):
        action = result.action
        if result.password is not None:
            passwords[result.username] = result.password
        elif result.username in resets:
            passwords[result.username] = resets[result.username]
            action = "password-reset" if action == "unchanged" else f"{action}, password-reset"
        else:
            passwords[result.username] = known[result.username]
        actions.append({"username": result.username, "action": action, "role": result.role})
    return actions, passwords


def login(client: ArgillaClient, username: str, password: str) -> ArgillaClient:
    """A client acting as a demo annotator, logged in with its password."""
    try:
        return client.login(username, password)
    except AuthenticationFailed:
        msg = (
            f"Argilla at {client.api_url} refused the password of {username!r}. Delete the logins file "
            f"({LOGINS_FILENAME}) to have the demo annotators' passwords reset."
        )
        raise AuthenticationFailed(msg) from None


# -- simulated answers ---------------------------------------------------------------------------


def plan_simulation(
    records: Sequence[SimRecord],
    annotators: Sequence[str],
    *,
    seed: int = 0,
    min_submitted: int = MIN_SUBMITTED,
) -> list[PlannedResponse]:
    """Seeded random answers: most records completed, a few pending, drafts and discards.

    Each annotator rates a slot at the judge's rating (or a latent quality where the judge failed)
    plus its own bias and noise. The draw per record depends only on the seed and the record's
    stable id, so the plan is the same on every run.
    """
    people = sorted(annotators, key=_annotator_order)
    temperament = {name: TEMPERAMENTS[i % len(TEMPERAMENTS)] for i, name in enumerate(people)}
    planned: list[PlannedResponse] = []
    for record in sorted(records, key=lambda r: r.key):
        rng = random.Random(f"{seed}:{record.key}")
        quality = {q: record.judge.get(q, rng.choice((2, 3, 4))) for q in record.questions}
        roll = rng.random()
        if roll < 0.70:
            statuses = ["submitted"] * min_submitted
        elif roll < 0.80:
            statuses = ["submitted"] * (min_submitted + 1)
        elif roll < 0.87:
            statuses = ["submitted", "draft"]
        elif roll < 0.93:
            statuses = ["submitted", "discarded"]
        else:
            statuses = ["submitted"]
        chosen = rng.sample(people, min(len(statuses), len(people)))
        for username, status in zip(chosen, statuses, strict=False):
            bias, spread = temperament[username]
            values: dict[str, int] | None = {
                q: min(5, max(1, round(quality[q] + bias + rng.gauss(0.0, spread)))) for q in record.questions
            }
            if status == "discarded":
                values = None
            elif status == "draft" and values:
                first = record.questions[0]
                values = {first: values[first]}
            planned.append(PlannedResponse(record.id, username, status, values))
    return planned


def simulate_responses(
    client: ArgillaClient, dataset_id: str, passwords: dict[str, str], *, seed: int = 0
) -> SimulationResult:
    """Post the simulated plan as each demo annotator; pairs that already have a response are skipped."""
    questions = {str(q["id"]): str(q["name"]) for q in client.questions(dataset_id)}
    names = [name for name in questions.values() if name.startswith("rating_")]
    names.sort(key=lambda n: int(n.removeprefix("rating_")))
    user_ids = {u["username"]: str(u["id"]) for u in client.users() if u["username"] in passwords}
    records: list[SimRecord] = []
    answered: dict[str, set[str]] = {}
    for record in _all_records(client, dataset_id):
        judge = {
            questions[str(s["question_id"])]: int(s["value"])
            for s in record.get("suggestions") or []
            if str(s.get("question_id")) in questions and isinstance(s.get("value"), int)
        }
        key = str(record.get("external_id") or record["id"])
        records.append(SimRecord(id=str(record["id"]), key=key, questions=tuple(names), judge=judge))
        answered[str(record["id"])] = {str(r["user_id"]) for r in record.get("responses") or []}
    result = SimulationResult(by_annotator={u: 0 for u in sorted(passwords, key=_annotator_order)})
    sessions: dict[str, ArgillaClient] = {}
    for item in plan_simulation(records, list(passwords), seed=seed):
        if user_ids.get(item.username) in answered.get(item.record_id, set()):
            result.already_answered += 1
            continue
        if item.username not in sessions:
            sessions[item.username] = login(client, item.username, passwords[item.username])
        sessions[item.username].submit_response(item.record_id, item.values, item.status)
        setattr(result, item.status, getattr(result, item.status) + 1)
        result.by_annotator[item.username] += 1
    return result


def _all_records(client: ArgillaClient, dataset_id: str) -> Iterable[dict[str, Any]]:
    for page in client.iter_records(dataset_id, include=("responses", "suggestions")):
        yield from page


def next_steps(directory: Path, *, home: Path | None = None) -> list[str]:
    """The commands to run after the demo."""
    from campaign.config import default_home

    # The other commands find the local server through CAMPAIGN_HOME, so a non-default --home must be named.
    custom = home is not None and Path(home).expanduser().resolve() != default_home().resolve()
    prefix = f"CAMPAIGN_HOME={home} " if custom else ""
    return [
        f"{prefix}campaign status --campaign {directory}",
        f"{prefix}campaign export --campaign {directory} --out {directory / 'export'}",
    ]
