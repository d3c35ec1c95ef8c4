"""End to end in the web UI: an annotator signs in, rates a record in Chromium, and the API sees it."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.server_helpers import api, create_annotator

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium's background connections are refused by a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> Any:
    """Debian's Chromium under Playwright (playwright cannot download its own browsers here)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def rating_dataset(local_server: Any) -> dict[str, Any]:
    """A workspace with one annotator and a rating dataset of three records."""
    import argilla as rg

    client = local_server.client()
    workspace = rg.Workspace(name="browser", client=client).create()
    annotator = create_annotator(local_server.api_url, local_server.api_key, "browser-ann", str(workspace.id))
    settings = rg.Settings(
        guidelines="Rate the response from 1 (bad) to 5 (good).",
        fields=[rg.TextField(name="prompt"), rg.TextField(name="response_1")],
        questions=[rg.RatingQuestion(name="rating_1", values=[1, 2, 3, 4, 5])],
    )
    dataset = rg.Dataset(
        name="browser-rating", workspace="browser", settings=settings, client=client
    ).create()
    dataset.records.log(
        [
            rg.Record(
                id=f"b{i}", fields={"prompt": f"Browser prompt {i}", "response_1": f"Browser answer {i}"}
            )
            for i in range(3)
        ]
    )
    return {"id": str(dataset.id), "annotator": annotator}


def _submitted_responses(
    local_server: Any, dataset_id: str, user_id: str
) -> list[tuple[str, dict[str, Any]]]:
    """(prompt, response) pairs of the user's submitted responses, as the owner reads them."""
    listed = api(
        local_server.api_url,
        local_server.api_key,
        "GET",
        f"/datasets/{dataset_id}/records",
        params={"include": ["responses"], "limit": 100},
    )
    assert listed.status_code == 200, listed.text
    return [
        (record["fields"]["prompt"], response)
        for record in listed.json()["items"]
        for response in record["responses"]
        if response["user_id"] == user_id and response["status"] == "submitted"
    ]


def _annotation_page(page: Any, api_url: str, annotator: dict[str, Any], dataset_id: str) -> Any:
    """`page` signed in as the annotator, on the dataset's annotation mode."""
    page.set_default_timeout(30_000)
    page.goto(f"{api_url}/sign-in")
    page.get_by_role("textbox", name="Username").fill(annotator["username"])
    page.get_by_role("textbox", name="Password").fill(annotator["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)
    page.goto(f"{api_url}/dataset/{dataset_id}/annotation-mode")
    return page


def test_annotator_submits_a_rating_in_the_web_ui(
    local_server: Any, rating_dataset: dict[str, Any], chromium: Any, tmp_path: Path
) -> None:
    annotator = rating_dataset["annotator"]
    page = _annotation_page(chromium.new_page(), local_server.api_url, annotator, rating_dataset["id"])
    question = page.get_by_label("Question: rating_1")
    question.get_by_role("button", name="4", exact=True).click()
    prompt = page.get_by_text(re.compile(r"^Browser prompt \d$")).inner_text().strip()
    page.get_by_role("button", name=re.compile(r"Submit$")).click()

    deadline = time.monotonic() + 10
    submitted = _submitted_responses(local_server, rating_dataset["id"], annotator["id"])
    while not submitted and time.monotonic() < deadline:
        time.sleep(0.25)
        submitted = _submitted_responses(local_server, rating_dataset["id"], annotator["id"])
    screenshot = tmp_path / "annotation-mode.png"
    page.screenshot(path=str(screenshot), full_page=True)

    assert screenshot.exists() and screenshot.stat().st_size > 0
    assert len(submitted) == 1, submitted
    shown_prompt, response = submitted[0]
    assert shown_prompt == prompt
    assert response["values"] == {"rating_1": {"value": 4}}

    import argilla as rg

    dataset = local_server.client().datasets("browser-rating", workspace="browser")
    query = rg.Query(filter=rg.Filter([("response.status", "==", "submitted")]))
    records = list(dataset.records(query=query, with_responses=True))
    assert [r.fields["prompt"] for r in records] == [prompt]
    assert [(str(r.user_id), r.value) for r in records[0].responses["rating_1"]] == [(annotator["id"], 4)]


# Words of the guidelines panel that the layout breaks across two lines (as 'scor/e' was in a table header).
_SPLIT_WORDS_JS = """() => {
  const root = document.querySelector('.annotation-guidelines');
  const split = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (lines.size > 1) split.push(m[0]);
    }
  }
  return split;
}"""


@pytest.mark.parametrize("template", ["rating", "binary"])
def test_template_guidelines_and_labels_read_in_the_web_ui(
    local_server: Any, chromium: Any, tmp_path: Path, template: str
) -> None:
    """The guidelines panel breaks no word across lines; binary buttons carry text beside the emoji."""
    import argilla as rg

    from campaign.templates import build_settings, load_template

    client = local_server.client()
    workspace = rg.Workspace(name=f"guidelines-{template}", client=client).create()
    annotator = create_annotator(
        local_server.api_url, local_server.api_key, f"guidelines-{template}-ann", str(workspace.id)
    )
    spec = load_template(template)
    responses = spec.responses.default
    settings = build_settings(
        spec,
        responses=responses,
        guidelines=spec.read_guidelines(),
        min_submitted=2,
        language="en",
        client=client,
    )
    dataset = rg.Dataset(
        name=f"guidelines-{template}", workspace=workspace.name, settings=settings, client=client
    ).create()
    fields = {field.name: f"text of {field.name}" for field in settings.fields}
    dataset.records.log([rg.Record(id="g1", fields=fields)])

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page = _annotation_page(page, local_server.api_url, annotator, str(dataset.id))
    page.get_by_text("Guidelines", exact=True).first.click()
    page.locator(".annotation-guidelines h2").first.wait_for()
    page.screenshot(path=str(tmp_path / f"guidelines-{template}.png"), full_page=True)

    assert page.evaluate(_SPLIT_WORDS_JS) == []
    if template == "binary":
        question = page.get_by_label("Question: label")
        for text in ("good", "bad"):
            assert question.get_by_text(re.compile(rf"\b{text}\b")).count() >= 1
