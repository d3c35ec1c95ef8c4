"""The search index and the translation of argilla-server filters into SQL, on plain data (no server)."""

from __future__ import annotations

import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from argilla_server.search_engine.base import (
    AndFilter,
    MetadataFilterScope,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SuggestionFilterScope,
    TermsFilter,
)

from campaign.server.plugin.search_engine import compile_filter, compile_order, response_status_clause
from campaign.server.plugin.search_index import (
    PAGE_BYTES,
    RECORD_BITS,
    Clause,
    RecordDoc,
    ResponseDoc,
    SearchIndex,
    SuggestionDoc,
    TextSearch,
    value_rows,
)


class User:
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def rid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def doc(i: int, *, responses: list[ResponseDoc] | None = None, **kwargs: Any) -> RecordDoc:
    return RecordDoc(
        record_id=rid(i),
        dataset_id=kwargs.pop("dataset_id", "ds"),
        status=kwargs.pop("status", "pending"),
        inserted_at=float(i),
        updated_at=float(i),
        texts=kwargs.pop("texts", {"prompt": f"prompt {i}", "response_1": f"answer {i}"}),
        metadata=kwargs.pop("metadata", {"round": 1 + i % 3, "source": "aya" if i % 2 else "synthetic"}),
        suggestions=kwargs.pop("suggestions", [SuggestionDoc("rating_1", 1 + i % 5, "model", "judge", 0.5)]),
        responses=responses or [],
    )


@pytest.fixture
def index(tmp_path: Path) -> SearchIndex:
    return SearchIndex(tmp_path / "index.sqlite")


def ids(index: SearchIndex, **kwargs: Any) -> set[str]:
    hits, total = index.search("ds", limit=1000, **kwargs)
    assert total == len(hits)
    return {h[0] for h in hits}


def test_value_rows_flatten_values_for_terms_and_ranges() -> None:
    assert [(r.vtext, r.vnum) for r in value_rows(3)] == [("3", 3.0)]
    assert [(r.vtext, r.vnum) for r in value_rows(2.5)] == [("2.5", 2.5)]
    assert [(r.vtext, r.vnum) for r in value_rows(["a", "b"])] == [("a", None), ("b", None)]
    assert value_rows(None) == []
    assert value_rows([{"value": "response_1", "rank": 1}]) == []  # rankings are not filterable


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("hello world", '("hello") AND ("world")'),
        ('"exact phrase" more', '("exact phrase") AND ("more")'),
        ("pre*", '"pre"*'),
        ("don't", '"don" AND "t"'),
        ("  ", None),
        ("AND OR NOT", '("AND") AND ("OR") AND ("NOT")'),  # FTS5 operators are searched as words
    ],
)
def test_text_query_becomes_a_safe_fts_expression(query: str, expected: str | None) -> None:
    assert TextSearch(query).match.expression == expected


def test_metadata_suggestion_and_record_filters(index: SearchIndex) -> None:
    index.upsert_records([doc(i) for i in range(10)])
    source = TermsFilter(scope=MetadataFilterScope(metadata_property="source"), values=["aya"])
    assert ids(index, where=compile_filter(source, index.user_number)) == {rid(i) for i in range(10) if i % 2}
    rounds = RangeFilter(scope=MetadataFilterScope(metadata_property="round"), ge=2, le=3)
    assert ids(index, where=compile_filter(rounds, index.user_number)) == {
        rid(i) for i in range(10) if 1 + i % 3 >= 2
    }
    high = RangeFilter(scope=SuggestionFilterScope(question="rating_1", property="value"), ge=4)
    assert ids(index, where=compile_filter(high, index.user_number)) == {
        rid(i) for i in range(10) if 1 + i % 5 >= 4
    }
    agent = TermsFilter(scope=SuggestionFilterScope(question="rating_1", property="agent"), values=["judge"])
    both = AndFilter([source, agent])
    assert ids(index, where=compile_filter(both, index.user_number)) == {rid(i) for i in range(10) if i % 2}
    status = TermsFilter(scope=RecordFilterScope(property="status"), values=["completed"])
    assert ids(index, where=compile_filter(status, index.user_number)) == set()


def test_response_status_filters_follow_elasticsearch_semantics(index: SearchIndex) -> None:
    a, b = User("a"), User("b")
    index.upsert_records(
        [
            doc(0, responses=[ResponseDoc("r0a", "a", "submitted", {"rating_1": 4})]),
            doc(
                1, responses=[ResponseDoc("r1a", "a", "draft", {}), ResponseDoc("r1b", "b", "submitted", {})]
            ),
            doc(2, responses=[ResponseDoc("r2b", "b", "discarded", {})]),
            doc(3),
        ]
    )

    def status(values: list[str], user: User | None) -> set[str]:
        scope = ResponseFilterScope(property="status", user=user)  # type: ignore[arg-type]
        return ids(index, where=compile_filter(TermsFilter(scope=scope, values=values), index.user_number))

    assert status(["pending"], a) == {rid(2), rid(3)}
    assert status(["pending"], None) == {rid(3)}  # without a user: records nobody answered
    assert status(["submitted"], a) == {rid(0)}
    assert status(["submitted"], b) == {rid(1)}
    assert status(["pending"], b) == {rid(0), rid(3)}
    assert status(["submitted"], None) == {rid(0), rid(1)}
    assert status(["pending", "draft"], a) == {rid(1), rid(2), rid(3)}
    nobody = User("nobody")  # a user the index has never seen: every record is pending for them
    assert status(["pending"], nobody) == {rid(i) for i in range(4)}
    assert status(["submitted", "draft"], nobody) == set()
    value = TermsFilter(scope=ResponseFilterScope(question="rating_1", user=a), values=["4"])  # type: ignore[arg-type]
    assert ids(index, where=compile_filter(value, index.user_number)) == {rid(0)}
    assert response_status_clause([], "a", index.user_number) == Clause("1")


def test_counts_match_a_full_scan_after_inserts_updates_and_deletes(index: SearchIndex) -> None:
    rng = random.Random(7)
    users = ["u1", "u2", "u3"]
    statuses = ["submitted", "draft", "discarded"]

    def random_doc(i: int) -> RecordDoc:
        responses = [
            ResponseDoc(f"{i}-{u}", u, rng.choice(statuses), {"rating_1": rng.randint(1, 5)})
            for u in users
            if rng.random() < 0.5
        ]
        return doc(i, responses=responses, status=rng.choice(["pending", "completed"]))

    index.upsert_records([random_doc(i) for i in range(200)])
    index.upsert_records([random_doc(i) for i in range(100, 150)])  # replace some documents
    index.delete_records([rid(i) for i in range(0, 30)])
    index.update_record_status(rid(40), "completed")
    index.upsert_response(rid(41), ResponseDoc("new", "u1", "submitted", {}))
    index.delete_response("60-u2")

    scan = dict(
        index.query("SELECT status, count(*) FROM idx_records WHERE dataset_id = 'ds' GROUP BY status")
    )
    assert index.status_counts("ds") == scan
    for user in users:
        per_user = dict(
            index.query(
                "SELECT status, count(*) FROM idx_responses WHERE dataset_id = 'ds' AND user_id = ? GROUP BY status",
                (user,),
            )
        )
        assert index.user_status_counts("ds", user) == per_user
        for wanted in (["pending"], ["submitted"], ["pending", "draft"], ["discarded", "submitted"]):
            clause = response_status_clause(wanted, user, index.user_number)
            expected = index.query(
                f"SELECT count(*) FROM idx_records r WHERE dataset_id = 'ds' AND {clause.sql}", clause.params
            )[0][0]
            assert index.count_by_status("ds", wanted, user) == expected
    clause = response_status_clause(["pending", "submitted"], None, index.user_number)
    expected = index.query(
        f"SELECT count(*) FROM idx_records r WHERE dataset_id = 'ds' AND {clause.sql}", clause.params
    )[0][0]
    assert index.count_by_status("ds", ["pending", "submitted"], None) == expected


def test_user_order_is_stable_complete_and_differs_between_users(index: SearchIndex) -> None:
    index.upsert_records([doc(i) for i in range(60)])

    def pages(user: str) -> list[str]:
        seen: list[str] = []
        for offset in range(0, 60, 25):
            hits, total = index.search("ds", user_id=user, offset=offset, limit=25)
            assert total == 60
            seen += [h[0] for h in hits]
        return seen

    first = pages("alice")
    assert first == pages("alice")
    assert sorted(first) == sorted(rid(i) for i in range(60))
    assert first != pages("bob")


def test_text_search_over_all_fields_requires_every_term(index: SearchIndex) -> None:
    index.upsert_records(
        [
            doc(0, texts={"prompt": "volcano facts", "response_1": "lava is hot"}),
            doc(1, texts={"prompt": "river facts", "response_1": "water is wet"}),
        ]
    )
    assert ids(index, text=TextSearch("volcano lava")) == {rid(0)}  # terms in different fields
    assert ids(index, text=TextSearch("facts")) == {rid(0), rid(1)}
    assert ids(index, text=TextSearch("lava", field="prompt")) == set()
    assert ids(index, text=TextSearch("lava", field="response_1")) == {rid(0)}


def test_text_follows_replaced_and_deleted_records_in_each_dataset(index: SearchIndex) -> None:
    index.upsert_records([doc(i, texts={"prompt": "volcano", "response_1": f"lava {i}"}) for i in range(3)])
    index.upsert_records([doc(9, dataset_id="other", texts={"prompt": "volcano", "response_1": "ash"})])
    index.upsert_records([doc(1, texts={"prompt": "glacier", "response_1": "ice"})])  # replaces record 1
    index.delete_records([rid(2)])

    assert ids(index, text=TextSearch("volcano")) == {rid(0)}
    assert ids(index, text=TextSearch("glacier")) == {rid(1)}
    assert ids(index, text=TextSearch("ice", field="response_1")) == {rid(1)}
    assert ids(index, text=TextSearch("ice", field="prompt")) == set()
    assert ids(index, text=TextSearch("lava", field="response_1")) == {rid(0)}
    assert ids(index, text=TextSearch("ash")) == set()  # the other dataset's record
    hits, total = index.search("other", text=TextSearch("volcano", field="prompt"))
    assert ([h[0] for h in hits], total) == ([rid(9)], 1)
    assert ids(index, text=TextSearch("volcano", field="no_such_field")) == set()

    index.delete_dataset("ds")
    hits, total = index.search("other", text=TextSearch("volcano"))
    assert ([h[0] for h in hits], total) == ([rid(9)], 1)
    assert index.query("SELECT count(*) FROM idx_text_all")[0][0] == 1
    assert index.query("SELECT count(*) FROM idx_text")[0][0] == 2


def test_text_search_with_filters_sorts_and_pages_agrees_with_the_unfiltered_engine(
    index: SearchIndex,
) -> None:
    """Every filter and sort gives the text path the same answer as the records path, restricted to the hits.

    Record-column filters and sorts (status, inserted_at) join the records table; the others do not.
    """
    rng = random.Random(7)
    words = ["volcano", "river", "glacier", "desert"]
    statuses = ("submitted", "draft", "discarded")
    docs = [
        doc(
            i,
            status=rng.choice(["pending", "completed"]),
            texts={"prompt": " ".join(rng.choices(words, k=3)), "response_1": rng.choice(words)},
            responses=[
                ResponseDoc(f"r{i}{user}", user, rng.choice(statuses), {"rating_1": rng.randint(1, 5)})
                for user in ("a", "b")
                if rng.random() < 0.6
            ],
        )
        for i in range(120)
    ]
    index.upsert_records(docs)
    index.upsert_records(
        [doc(i, dataset_id="other", texts={"prompt": "volcano river"}) for i in range(500, 540)]
    )
    text_hits = {d.record_id for d in docs if "volcano" in " ".join(d.texts.values()).split()}
    response_status = ResponseFilterScope(property="status", user=User("a"))  # type: ignore[arg-type]
    filters = {
        "none": None,
        "response status": compile_filter(
            TermsFilter(scope=response_status, values=["submitted", "pending"]), index.user_number
        ),
        "record status": compile_filter(
            TermsFilter(scope=RecordFilterScope(property="status"), values=["completed"]), index.user_number
        ),
        "metadata": compile_filter(
            RangeFilter(scope=MetadataFilterScope(metadata_property="round"), ge=2), index.user_number
        ),
    }
    orders = {
        "relevance": [],
        "metadata": [
            compile_order(Order(scope=MetadataFilterScope(metadata_property="round"), order="desc"))
        ],  # type: ignore[arg-type]
        "inserted_at": [compile_order(Order(scope=RecordFilterScope(property="inserted_at"), order="desc"))],  # type: ignore[arg-type]
    }
    for filter_name, where in filters.items():
        expected = ids(index, where=where) & text_hits
        for order_name, order in orders.items():
            pages: list[tuple[str, float | None]] = []
            for offset in range(0, len(expected) + 10, 7):
                hits, total = index.search(
                    "ds", text=TextSearch("volcano"), where=where, order=order, offset=offset, limit=7
                )
                assert total == len(expected), (filter_name, order_name, offset)
                pages += hits
            assert {h[0] for h in pages} == expected, (filter_name, order_name)
            assert len(pages) == len(expected)
            if order_name == "relevance":
                scores = [h[1] for h in pages]
                assert all(isinstance(s, float) for s in scores)
                assert scores == sorted(scores, reverse=True)
            else:  # the same order as without text, restricted to the text hits
                plain, _ = index.search("ds", where=where, order=order, limit=1000)
                assert [h[0] for h in pages] == [h[0] for h in plain if h[0] in expected]


def test_records_take_rids_in_their_dataset_block(index: SearchIndex) -> None:
    index.upsert_records([doc(0), doc(1, dataset_id="other"), doc(2), doc(2, texts={"prompt": "last wins"})])
    index.upsert_records([doc(1, texts={"prompt": "moved here"})])  # record 1 moves from "other" to "ds"
    rows = index.query("SELECT record_id, rid, dataset_id FROM idx_records ORDER BY rid")
    blocks = {dataset: dno for dno, dataset in index.query("SELECT dno, dataset_id FROM idx_datasets")}
    assert all(rid_ >> RECORD_BITS == blocks[dataset] for _, rid_, dataset in rows)
    assert [(record_id, dataset) for record_id, _, dataset in rows] == [
        (rid(0), "ds"),
        (rid(2), "ds"),
        (rid(1), "ds"),
    ]
    assert ids(index, text=TextSearch("last wins")) == {rid(2)}
    assert ids(index, text=TextSearch("moved")) == {rid(1)}
    assert index.search("other", text=TextSearch("prompt"))[1] == 0
    assert index.status_counts("other") == {}
    assert index.status_counts("ds") == {"pending": 3}


def test_a_full_rid_block_is_refused_with_a_rebuild_hint(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    import campaign.server.plugin.search_index as index_module

    monkeypatch.setattr(index_module, "RECORD_BITS", 2)
    monkeypatch.setattr(index_module, "RECORD_MASK", 3)
    index.upsert_records([doc(i) for i in range(4)])
    with pytest.raises(
        RuntimeError, match=r"run out of record ids for dataset ds.*rebuilt from the database"
    ):
        index.upsert_records([doc(4)])
    assert index.status_counts("ds") == {"pending": 4}  # the refused batch wrote nothing
    index.upsert_records([doc(0, texts={"prompt": "still updatable"})])
    assert ids(index, text=TextSearch("updatable")) == {rid(0)}


def test_sort_by_metadata_and_suggestion_with_missing_values_last(index: SearchIndex) -> None:
    index.upsert_records([doc(0, metadata={"round": 2}), doc(1, metadata={}), doc(2, metadata={"round": 5})])
    for direction, expected in (("asc", [rid(0), rid(2), rid(1)]), ("desc", [rid(2), rid(0), rid(1)])):
        order = compile_order(Order(scope=MetadataFilterScope(metadata_property="round"), order=direction))  # type: ignore[arg-type]
        hits, _ = index.search("ds", order=[order])
        assert [h[0] for h in hits] == expected


def test_delete_dataset_removes_documents_and_counts(index: SearchIndex) -> None:
    index.create_dataset("ds")
    index.upsert_records([doc(i, responses=[ResponseDoc(f"x{i}", "u", "submitted", {})]) for i in range(5)])
    index.delete_dataset("ds")
    assert index.count_records("ds") == 0
    assert index.user_status_counts("ds", "u") == {}
    assert "ds" not in index.dataset_ids()


def test_an_index_of_an_older_schema_is_dropped_and_rebuilt_empty(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with sqlite3.connect(path) as conn:  # older indexes have SQLite's default 4 KiB pages
        conn.execute("PRAGMA page_size=4096")
        conn.execute("VACUUM")
    old = SearchIndex(path)
    assert old.query("PRAGMA page_size") == [(4096,)]
    old.upsert_records([doc(0)])
    old.query("UPDATE idx_meta SET value = '0' WHERE key = 'schema_version'")
    old.close()
    fresh = SearchIndex(path)
    assert fresh.count_records("ds") == 0
    assert fresh.query("PRAGMA page_size") == [(PAGE_BYTES,)]
    assert fresh.query("PRAGMA journal_mode") == [("wal",)]
    fresh.upsert_records([doc(1, texts={"prompt": "rebuilt"})])
    assert ids(fresh, text=TextSearch("rebuilt")) == {rid(1)}


def test_a_new_index_takes_its_page_size(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index.sqlite")
    assert index.query("PRAGMA page_size") == [(PAGE_BYTES,)]
