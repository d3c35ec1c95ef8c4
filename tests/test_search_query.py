"""Text queries read as Elasticsearch's simple_query_string: the parser, the index and the search endpoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argilla_server.search_engine.base import MetadataFilterScope, Order, RangeFilter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.server.plugin.search_engine import compile_filter, compile_order
from campaign.server.plugin.search_index import RecordDoc, SearchIndex, TextSearch
from campaign.server.plugin.search_query import (
    AND,
    MAX_FTS5_DEPTH,
    OR,
    Group,
    MatchAll,
    Node,
    Not,
    Phrase,
    Prefix,
    Words,
    parse,
    to_fts5,
    words,
)
from tests.server_helpers import api

# (prompt, response) of each record; the tables below name records by their position here.
CORPUS = [
    ("Cash flow is negative", "the bank said no"),
    ("cash only please", "positive answer"),
    ("a negative review", "cash back offer"),
    ("nothing relevant", "just words"),
    ("cashier at the bank", "negative-minded staff"),
    ("quick brown fox", "jumps over the lazy dog"),
    ("brown dog", "the fox is quick"),
    ("fox fox fox", "fox"),
    ("rock and roll", "or not"),
]
EVERY = set(range(len(CORPUS)))

# Query -> the records Elasticsearch's simple_query_string (default_operator AND) matches over all fields.
ALL_FIELDS: list[tuple[str, set[int]]] = [
    ("cash", {0, 1, 2}),
    ("CASH", {0, 1, 2}),
    ("cash negative", {0, 2}),  # default AND; the words may be in different fields
    ("cash + negative", {0, 2}),
    ("cash | negative", {0, 1, 2, 4}),
    ("cash|negative", {0, 1, 2, 4}),
    ("-cash", EVERY - {0, 1, 2}),
    ("-(cash | negative)", EVERY - {0, 1, 2, 4}),
    ("cash -negative", {1}),
    ("cash | -negative", EVERY - {4}),
    ("-cash -negative", EVERY - {0, 1, 2, 4}),
    ("- cash", {0, 1, 2}),  # a space after `-` drops it
    ("--cash", {0, 1, 2}),  # two negations cancel out
    ("cash*", {0, 1, 2, 4}),
    ("fo*", {5, 6, 7}),
    ("cash* -cash", {4}),
    ('"quick brown"', {5}),
    ('"brown quick"', set()),
    ('"brown quick"~2', {5}),  # reversed order costs a slop of 2
    ('"quick fox"', set()),
    ("quick fox", {5, 6}),
    ("(cash | fox) + (negative | quick)", {0, 2, 5, 6}),
    ("cash | fox negative", {0, 2}),  # left to right, no precedence: (cash | fox) AND negative
    ("fox negative | cash", {0, 1, 2}),  # (fox AND negative) OR cash
    ("cash + | negative", {0, 2}),  # an operator after another is ignored
    ("| cash", {0, 1, 2}),  # an operator with nothing before it is ignored
    ("*", EVERY),
    (" * ", EVERY),
    ("bank", {0, 4}),
    ("negative-minded", {4}),  # one term, two words, both required
    ("cash~1", {0, 1, 2}),
    ("cash~", {0, 1, 2}),
    (r"\-cash", {0, 1, 2}),  # an escaped `-` is a character, not a negation
    (r"\(cash\)", {0, 1, 2}),
    (r"cash\*", {0, 1, 2}),  # an escaped `*` is no prefix
    # Malformed: what cannot be read is ignored.
    ("", set()),
    ("   ", set()),
    ("!!!", set()),
    ("cash !!!", {0, 1, 2}),
    ("cash &", {0, 1, 2}),
    ('"cash', {0, 1, 2}),
    ("(cash", {0, 1, 2}),
    ("cash)", {0, 1, 2}),
    ("((cash | negative)", {0, 1, 2, 4}),
    ("()", set()),
    ('""', set()),
    # FTS5's own syntax is text: words to find, never operators or column filters.
    ("cash AND negative", set()),
    ("rock OR roll", {8}),
    ("and", {8}),
    ("NOT", {8}),
    ("NEAR(cash negative)", set()),
    ("prompt:cash", set()),
    ("cash^2", set()),
]
# Query -> records over one field.
ONE_FIELD: list[tuple[str, str, set[int]]] = [
    ("prompt", "cash", {0, 1}),
    ("prompt", "cash | negative", {0, 1, 2}),
    ("prompt", "-(cash | negative)", EVERY - {0, 1, 2}),
    ("prompt", "cash*", {0, 1, 4}),
    ("prompt", "bank", {4}),
    ("prompt", '"quick brown"', {5}),
    ("response", "-cash", EVERY - {2}),
    ("response", "cash | negative", {2, 4}),
    ("response", "fox", {6, 7}),
]
# Where FTS5 answers differently from Elasticsearch: (query, ours, Elasticsearch's). The README says so.
KNOWN_DIFFERENCES: list[tuple[str, set[int], set[int]]] = [
    ('"quick fox"~1', {5, 6}, {5}),  # FTS5's NEAR ignores the order of the words
    ('"dog the"', {6}, set()),  # over all fields, a phrase may run from one field into the next
]


def doc(i: int, prompt: str, response: str, dataset_id: str = "ds") -> RecordDoc:
    return RecordDoc(
        record_id=f"r{i}",
        dataset_id=dataset_id,
        status="pending",
        inserted_at=float(i),
        updated_at=float(i),
        texts={"prompt": prompt, "response": response},
        metadata={"n": i},
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchIndex]:
    index = SearchIndex(tmp_path_factory.mktemp("query") / "index.sqlite")
    index.upsert_records(doc(i, prompt, response) for i, (prompt, response) in enumerate(CORPUS))
    # Another dataset with the same words: never found by searches of the first.
    index.upsert_records(doc(100 + i, p, r, "other") for i, (p, r) in enumerate(CORPUS))
    yield index
    index.close()


def found(index: SearchIndex, q: str, field: str | None = None, **kwargs: Any) -> set[int]:
    hits, total = index.search("ds", text=TextSearch(q, field), limit=1000, **kwargs)
    assert total == len(hits)
    return {int(record_id[1:]) for record_id, _ in hits}


# -- the parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("a b", Group(AND, [Words(("a",)), Words(("b",))])),
        ("a | b c", Group(AND, [Group(OR, [Words(("a",)), Words(("b",))]), Words(("c",))])),
        ("a -b", Group(AND, [Words(("a",)), Not(Words(("b",)))])),
        ("-(a | b)", Not(Group(OR, [Words(("a",)), Words(("b",))]))),
        ('"a b"~3', Phrase(("a", "b"), 3)),
        ('"a b"~x', Phrase(("a", "b"), 0)),
        ('"a b"~', Phrase(("a", "b"), 0)),  # `~` at the very end is no slop
        ('"a b"~ c', Group(AND, [Phrase(("a", "b"), 2), Words(("c",))])),
        ("foo-ba*", Prefix(("foo", "ba"))),
        ("**", Prefix(())),  # a prefix of no word: matches nothing
        ("*", MatchAll()),
        ("a*b", Words(("a", "b"))),  # `*` inside a term is a character
        ("foo~2", Words(("foo",))),
        ("a\\", Words(("a",))),
        ("((a))", Words(("a",))),
        ("", None),
        ("-", None),
        ("()", None),
    ],
)
def test_parse_follows_simple_query_string_rules(query: str, tree: Node | None) -> None:
    assert parse(query) == tree


def test_words_are_what_fts5_indexes() -> None:
    assert words("don't stop_me now-42 café") == ("don", "t", "stop", "me", "now", "42", "café")
    assert words("\u0301 !?") == ()  # a combining mark without its letter is no word


def test_deep_groups_are_read_as_plain_characters() -> None:
    depth = 200
    query = "(" * depth + "a | b" + ")" * depth + " c"
    tree = parse(query)
    assert tree == Group(AND, [Group(OR, [Words(("a",)), Words(("b",))]), Words(("c",))])


def test_a_tree_too_deep_for_fts5_matches_nothing(index: SearchIndex) -> None:
    query = " ".join(f"cash | w{i}" for i in range(MAX_FTS5_DEPTH + 5))
    assert to_fts5(parse(query)).matches_nothing
    assert found(index, query) == set()
    shallow = " ".join(f"cash | w{i}" for i in range(MAX_FTS5_DEPTH - 2))
    assert found(index, shallow) == set()  # w0..wN never occur: no error, no match


# -- the table, on the index ----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), ALL_FIELDS)
def test_query_over_all_fields(index: SearchIndex, query: str, expected: set[int]) -> None:
    assert found(index, query) == expected


@pytest.mark.parametrize(("field", "query", "expected"), ONE_FIELD)
def test_query_over_one_field(index: SearchIndex, field: str, query: str, expected: set[int]) -> None:
    assert found(index, query, field) == expected


@pytest.mark.parametrize(("query", "ours", "elasticsearch"), KNOWN_DIFFERENCES)
def test_known_differences_from_elasticsearch(
    index: SearchIndex, query: str, ours: set[int], elasticsearch: set[int]
) -> None:
    assert found(index, query) == ours != elasticsearch


def test_queries_combine_with_filters_sorts_and_pages(index: SearchIndex) -> None:
    where = compile_filter(
        RangeFilter(scope=MetadataFilterScope(metadata_property="n"), ge=2), index.user_number
    )
    by_n = [compile_order(Order(scope=MetadataFilterScope(metadata_property="n"), order="desc"))]  # type: ignore[arg-type]
    for query, expected in ALL_FIELDS:
        matches = {i for i in expected if i >= 2}
        assert found(index, query, where=where) == matches, query
        pages = [
            index.search("ds", text=TextSearch(query), where=where, order=by_n, offset=offset, limit=2)
            for offset in range(0, len(matches) + 2, 2)
        ]
        ranked = [int(record_id[1:]) for hits, _ in pages for record_id, _ in hits]
        assert ranked == sorted(matches, reverse=True), query
        assert all(total == len(matches) for _, total in pages), query
        # Sorted by a field, Elasticsearch computes no score.
        assert all(score is None for hits, _ in pages for _, score in hits), query


def test_scores_are_relevance_with_text_and_one_without(index: SearchIndex) -> None:
    hits, _ = index.search("ds", text=TextSearch("fox"), limit=10)
    assert hits[0][0] == "r7"  # the record with the most foxes in the least text
    scores = [score for _, score in hits]
    assert all(isinstance(s, float) and s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    plain, _ = index.search("ds", limit=100)
    assert {score for _, score in plain} == {1.0}
    queue, _ = index.search("ds", limit=100, user_id="someone")
    assert {score for _, score in queue} == {1.0}
    excluded, _ = index.search("ds", text=TextSearch("-cash"), limit=100)
    assert {score for _, score in excluded} == {1.0}


def test_negation_includes_records_without_text(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index.sqlite")
    index.upsert_records([doc(0, "cash", "x"), doc(1, "", "")])
    assert found(index, "-cash") == {1}
    assert found(index, "*") == {0, 1}
    assert found(index, "-nothing", "prompt") == {0, 1}


def test_similarity_search_keeps_the_records_a_query_matches(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index.sqlite")
    docs = [doc(i, prompt, response) for i, (prompt, response) in enumerate(CORPUS)]
    for d in docs:
        d.vectors = {"v": bytes(8)}
    index.upsert_records(docs)
    for query, expected in [("cash | negative", {0, 1, 2, 4}), ("-cash", EVERY - {0, 1, 2}), ("*", EVERY)]:
        record_ids, _ = index.vectors("ds", "v", text=TextSearch(query))
        assert {int(record_id[1:]) for record_id in record_ids} == expected, query
    assert index.vectors("ds", "v", text=TextSearch("!!!")) == ([], [])


# -- hostile and random queries -------------------------------------------------------------------

VOCABULARY = ["cash", "negative", "fox", "quick", "brown", "and", "or", "not", "near", "bank"]
# FTS5 operators and column filters, SQL comment and quote characters, partial words.
OTHER_SYNTAX = "ca fo AND OR NOT NEAR NEAR( prompt: response: ^ { } : ' ; -- /* */ é _ % $ 1 2 ~2 ~1"
HOSTILE = [
    *VOCABULARY,
    *OTHER_SYNTAX.split(),
    *' \t\n+|-*()"~\\',
    " ",
    "\x00",
    "\u0301",
]


def _holds(node: Node, tokens: list[str]) -> bool:
    """The meaning of a query tree on a record's words: the reference the index must agree with."""
    if isinstance(node, MatchAll):
        return True
    if isinstance(node, Words):
        return all(w.lower() in tokens for w in node.words)
    if isinstance(node, Phrase | Prefix):
        wanted = [w.lower() for w in node.words]
        if not wanted:
            return False
        for start in range(len(tokens) - len(wanted) + 1):
            window = tokens[start : start + len(wanted)]
            if window[:-1] == wanted[:-1] and (
                window[-1].startswith(wanted[-1]) if isinstance(node, Prefix) else window[-1] == wanted[-1]
            ):
                return True
        return False
    if isinstance(node, Not):
        return not _holds(node.child, tokens)
    results = [_holds(child, tokens) for child in node.children]
    return all(results) if node.op == AND else any(results)


def _has_slop(node: Node | None) -> bool:
    if isinstance(node, Phrase):
        return node.slop > 0 and len(node.words) > 1
    if isinstance(node, Not):
        return _has_slop(node.child)
    if isinstance(node, Group):
        return any(_has_slop(child) for child in node.children)
    return False


def _tokens(*texts: str) -> list[str]:
    return [w.lower() for text in texts for w in words(text)]


queries = st.one_of(
    st.lists(st.sampled_from(HOSTILE), max_size=14).map("".join),
    st.text(max_size=40),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries, field=st.sampled_from([None, "prompt", "response"]))
def test_random_and_hostile_queries_never_fail_and_match_what_they_mean(
    index: SearchIndex, query: str, field: str | None
) -> None:
    tree = parse(query)
    match = to_fts5(tree)
    try:
        got = found(index, query, field)
    except sqlite3.Error as error:  # pragma: no cover - the failure message names the query
        pytest.fail(f"{query!r} ({match.expression!r}) failed: {error}")
    assert got <= EVERY
    if _has_slop(tree) or match.matches_nothing or not query.isascii():
        # NEAR's window is FTS5's own; a tree too deep for FTS5 matches nothing; FTS5 folds case and
        # accents of other scripts by its own tables.
        return
    for i, (prompt, response) in enumerate(CORPUS):
        texts = {"prompt": (prompt,), "response": (response,), None: (prompt, response)}[field]
        assert (i in got) == (tree is not None and _holds(tree, _tokens(*texts))), (query, i)


# -- the same table through the search endpoints --------------------------------------------------


@pytest.fixture(scope="module")
def query_dataset(local_server: Any) -> dict[str, Any]:
    """The corpus as a dataset on the local server, with each record's position as metadata `n`."""
    import argilla as rg

    client = local_server.client()
    rg.Workspace(name="queries", client=client).create()
    settings_ = rg.Settings(
        fields=[rg.TextField(name="prompt"), rg.TextField(name="response")],
        questions=[rg.LabelQuestion(name="label", labels=["good", "bad"])],
        metadata=[rg.IntegerMetadataProperty(name="n")],
    )
    dataset = rg.Dataset(name="queries", workspace="queries", settings=settings_, client=client).create()
    dataset.records.log(
        [
            rg.Record(id=f"q{i}", fields={"prompt": prompt, "response": response}, metadata={"n": i})
            for i, (prompt, response) in enumerate(CORPUS)
        ]
    )
    return {"id": str(dataset.id)}


def _endpoint_search(server: Any, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = api(server.api_url, server.api_key, "POST", path, json=body, params={"limit": 100})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["total"] == len(result["items"])
    return list(result["items"])


def _positions(items: list[dict[str, Any]]) -> set[int]:
    return {int(item["record"]["external_id"][1:]) for item in items}


@pytest.mark.parametrize("endpoint", ["/me/datasets/{}/records/search", "/datasets/{}/records/search"])
def test_the_table_through_the_search_endpoints(local_server: Any, query_dataset: Any, endpoint: str) -> None:
    path = endpoint.format(query_dataset["id"])
    for query, expected in ALL_FIELDS:
        items = _endpoint_search(local_server, path, {"query": {"text": {"q": query}}})
        assert _positions(items) == expected, query
    for field, query, expected in ONE_FIELD:
        items = _endpoint_search(local_server, path, {"query": {"text": {"q": query, "field": field}}})
        assert _positions(items) == expected, (field, query)
    # With a filter and a sort.
    body = {
        "query": {"text": {"q": "cash | negative"}},
        "filters": {
            "and": [{"type": "range", "scope": {"entity": "metadata", "metadata_property": "n"}, "ge": 2}]
        },
        "sort": [{"scope": {"entity": "metadata", "metadata_property": "n"}, "order": "desc"}],
    }
    items = _endpoint_search(local_server, path, body)
    assert [item["record"]["external_id"] for item in items] == ["q4", "q2"]
    assert [item["query_score"] for item in items] == [None, None]


def test_endpoint_scores(local_server: Any, query_dataset: Any) -> None:
    path = f"/datasets/{query_dataset['id']}/records/search"
    plain = _endpoint_search(local_server, path, {})
    assert {item["query_score"] for item in plain} == {1.0}
    ranked = _endpoint_search(local_server, path, {"query": {"text": {"q": "fox"}}})
    assert ranked[0]["record"]["external_id"] == "q7"
    scores = [item["query_score"] for item in ranked]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
