"""Task inputs built column by column: items, retrieval's top k, task tables, on the edge cases.

The fast paths build items from columns, rank documents with a partition instead of a sort and
count query terms without every n-gram; these tests pin what a provider and a table then see.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from orchestration_assets.core.enrichment import task_frame
from orchestration_assets.core.items import build_items
from orchestration_assets.loading import find_family
from resources.providers.base import PROVENANCE_FIELDS, Document, TaskResult
from resources.retrieval import DocumentIndex, top_k
from tests import local_family as fam

FAMILIES = ("support_triage", "it_service_desk", "refund_requests")


@pytest.fixture(scope="module")
def triage():
    return fam.family()


def _result(task, record_id, output=None, error=None, confidence=None):
    return TaskResult(record_id=record_id, task=task.name, output=output, confidence=confidence, provider="local",
                      model_id="m", model_version="v1", prompt_hash="p", input_hash=f"h-{record_id}",
                      tokens_in=3, latency_ms=1.5, error=error)


def test_items_keep_order_and_turn_every_missing_value_into_none(triage):
    category = triage.tasks["category"]
    records = pd.DataFrame({
        "record_id": ["R-2", "R-1", "R-3"],
        "input_hash": ["h2", "h1", "h3"],
        "subject": ["Refund", np.nan, None],
        "body": ["Please refund me", "Cannot log in", np.nan],
        "channel": pd.Series(["email", None, "chat"], dtype="str"),
        "received_at": pd.to_datetime(["2026-01-01T10:00:00Z", None, "2026-01-02T10:00:00Z"]),
        "crm__tier": pd.Series([np.int64(2), np.float64("nan"), np.bool_(True)], dtype=object),
        "crm__seats": pd.array([5, None, 7], dtype="Int64"),
    })
    # the answers table has a stale duplicate for R-2 (the last row wins) and no row at all for R-3
    answers = pd.DataFrame({"record_id": ["R-2", "R-1", "R-2"], "input_hash": ["h2", "h1", "h2"],
                            "category": ["billing", "account", "refund"],
                            "category_confidence": [0.4, np.nan, 0.9]})
    items = build_items(category, records, ["record_id", "subject", "body", "channel", "received_at", "missing"],
                        {"crm__tier": "crm.tier", "crm__seats": "crm.seats", "crm__absent": "crm.absent"},
                        {"category": (category, answers)})
    assert [i.id for i in items] == ["R-2", "R-1", "R-3"] and [i.input_hash for i in items] == ["h2", "h1", "h3"]
    # NaN and None text fields are skipped, not read as "nan"
    assert [i.text for i in items] == ["Refund\nPlease refund me", "Cannot log in", ""]
    first, second, third = (i.fields for i in items)
    assert list(first) == ["record_id", "subject", "body", "channel", "received_at", "crm.tier", "crm.seats",
                           "category", "category_confidence"]
    assert first["received_at"] == pd.Timestamp("2026-01-01T10:00:00Z")
    assert (first["crm.tier"], type(first["crm.tier"]), first["crm.seats"], type(first["crm.seats"])) == (2, int, 5, int)
    assert (first["category"], first["category_confidence"]) == ("refund", 0.9)
    assert second["subject"] is None and second["channel"] is None and second["received_at"] is None
    assert second["crm.tier"] is None and second["crm.seats"] is None and second["category_confidence"] is None
    assert third["crm.tier"] is True and third["category"] is None and third["category_confidence"] is None
    assert all(i.documents == () for i in items)


def test_an_empty_batch_gives_no_items_and_an_empty_task_table(triage):
    category = triage.tasks["category"]
    records = pd.DataFrame({"record_id": pd.Series([], dtype="str"), "input_hash": pd.Series([], dtype="str"),
                            "subject": pd.Series([], dtype="str")})
    answers = pd.DataFrame(columns=["record_id", "input_hash"])
    assert build_items(category, records, ["subject", "body"], {}, {"category": (category, answers)}) == []
    for task in triage.tasks.values():
        frame = task_frame(task, [])
        assert list(frame.columns) == ["record_id", "input_hash", *task.columns()] and len(frame) == 0
        kinds = {"float": "float64", "int": "int64"}
        assert [str(frame[c].dtype) for c in task.columns()] == [kinds.get(k, "object") for k in task.columns().values()]


def test_an_answer_named_like_a_record_field_keeps_the_field_place_and_the_answer_value(triage):
    category = triage.tasks["category"]
    records = pd.DataFrame({"record_id": ["R-1"], "category": ["from the record"], "subject": ["s"]})
    answers = pd.DataFrame({"record_id": ["R-1"], "category": ["from the task"]})
    (item,) = build_items(category, records, ["category", "subject"], {}, {"category": (category, answers)})
    assert list(item.fields.items()) == [("category", "from the task"), ("subject", "s"),
                                         ("category_confidence", None)]
    assert item.input_hash == ""  # a frame without input_hash


@pytest.mark.parametrize("family_name", FAMILIES)
def test_column_wise_answers_and_item_values_equal_the_row_wise_ones(family_name):
    family = find_family(family_name)
    for task in family.tasks.values():
        out = {"label": "a", "probabilities": {"a": 0.7}, "reasons": ["r"], "score": -0.5, "summary": "s",
               "text": "t", "cited_ids": ("KB-1",), "flags": list(task.spec.rules)[:1] if task.type == "flag" else []}
        out.update({f: f"v-{f}" for f in getattr(task.spec, "fields", {})})
        results = [_result(task, "R-1", out, confidence=0.7), _result(task, "R-2", None, error="timeout"),
                   _result(task, "R-3", {}, confidence=None)]
        columns = task.table_columns(results)
        assert list(columns) == list(task.columns()), task.key
        rows = [task.to_columns(r) for r in results]
        assert [{c: v[i] for c, v in columns.items()} for i in range(3)] == rows, task.key
        values = task.item_columns(columns, 3)
        assert [{k: v[i] for k, v in values.items()} for i in range(3)] == [task.item_values(r) for r in rows]
        assert task.item_columns({}, 2) == {k: [[] if task.type == "flag" else None] * 2 for k in values}
    flag = next((t for t in family.tasks.values() if t.type == "flag"), None)
    if flag is not None:  # a failed flag answer raises nothing and decides no rule
        row = flag.to_columns(_result(flag, "R-9", {"flags": list(flag.spec.rules)}, error="boom"))
        assert row[flag.name] == [] and all(row[f"{flag.name}_{r}"] is None for r in flag.spec.rules)


def test_task_tables_keep_types_and_failures(triage):
    refund = next(t for t in triage.tasks.values() if t.type == "extract")
    results = [_result(refund, "R-1", {f: 12.5 if s.type == "number" else "x" for f, s in refund.spec.fields.items()},
                       confidence=0.8),
               _result(refund, "R-2", None, error="the model timed out")]
    frame = task_frame(refund, results)
    assert frame["record_id"].tolist() == ["R-1", "R-2"] and frame["input_hash"].tolist() == ["h-R-1", "h-R-2"]
    assert frame[f"{refund.name}_error"].tolist()[1] == "the model timed out"
    assert str(frame[f"{refund.name}_tokens_in"].dtype) == "int64" and frame[f"{refund.name}_tokens_in"].tolist() == [3, 3]
    assert frame[f"{refund.name}_confidence"].dtype == "float64"
    assert np.isnan(frame[f"{refund.name}_confidence"].iloc[1])
    assert set(frame.columns) >= {f"{refund.name}_{f}" for f in PROVENANCE_FIELDS}


def test_top_k_equals_a_stable_sort_with_ties_in_collection_order():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, size=(500, 9)).astype(np.float32) / 4  # few distinct values: ties everywhere
    scores[0] = 0.5  # a row of one value: the leftmost k documents
    for k in (1, 3, 8, 9):
        columns, values = top_k(scores, k)
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        assert np.array_equal(columns, expected), k
        assert np.array_equal(values, np.take_along_axis(scores, expected, axis=1))
    assert top_k(scores, 3)[0][0].tolist() == [0, 1, 2]


def test_tied_documents_are_returned_in_collection_order_and_zero_scores_left_out():
    same = dict(title="Reset your password", body="Use the reset link sent by email.")
    index = DocumentIndex([Document(id="KB-2", **same), Document(id="KB-1", **same),
                           Document(id="KB-3", title="Shipping times", body="Parcels arrive in three days."),
                           Document(id="KB-4", title="Invoices", body="Download invoices from billing.")])
    hits = index.search(["password reset link", "zzzz qqqq", float("nan"), "parcels"], k=2)
    assert [d.id for d in hits[0]] == ["KB-2", "KB-1"] and hits[0][0].score == hits[0][1].score > 0
    assert hits[1] == [] and hits[2] == []  # nothing similar, and a missing text, find no document
    assert [d.id for d in hits[3]] == ["KB-3"]
    assert index.search([], k=2) == []


def test_query_terms_are_counted_as_the_vectorizer_counts_them(triage):
    index = DocumentIndex.from_frame(fam.knowledge_base(), triage.spec.context["knowledge_base"].documents)
    reference = CountVectorizer(ngram_range=(1, 2), stop_words="english", dtype=np.float32)
    reference.fit([f"{d.title}\n{d.title}\n{d.group or ''}\n{d.body}" for d in index.documents])
    texts = ["", "the THE and of", "Reset password reset PASSWORD, reset-password!", "Ünïcode café naïve résumé",
             *(fam.text_of(r) for r in fam.labelled().head(300).to_dict(orient="records"))]
    mine, theirs = index._counts(texts), reference.transform(texts)
    assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
    assert (mine != theirs).nnz == 0 and mine.nnz > 300
