"""Document retrieval over the flagship family's knowledge base (and any document table)."""

from __future__ import annotations

import pandas as pd
import pytest

from resources.providers.base import Document
from resources.retrieval import DocumentIndex
from tests import local_family as fam


@pytest.fixture(scope="module")
def kb() -> pd.DataFrame:
    return fam.knowledge_base()


@pytest.fixture(scope="module")
def index(kb) -> DocumentIndex:
    return DocumentIndex.from_frame(kb, fam.family().spec.context["knowledge_base"].documents)


def test_search_finds_the_relevant_document(index):
    hits = index.search([
        "I forgot my password and the reset email never arrives",
        "Please delete all my personal data under GDPR",
        "Where is my parcel? The tracking number shows no update and customs fees were charged",
    ], k=3)
    assert "password" in hits[0][0].title.lower()
    assert hits[1][0].group == "privacy"
    assert hits[2][0].group == "shipping"
    for row in hits:
        assert len(row) == 3 and all(isinstance(d, Document) for d in row)
        scores = [d.score for d in row]
        assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
        assert len({d.id for d in row}) == 3 and all(d.url and d.body for d in row)


def test_search_is_deterministic_and_batch_equals_single(index):
    texts = ["Refund for a duplicate charge", "SSO login fails with SAML error", "API returns 429"]
    batch = index.search(texts, k=2)
    assert batch == index.search(texts, k=2)
    assert [index.search([t], k=2)[0] for t in texts] == batch


def test_group_boost_and_edge_cases(index, kb):
    boosted = index.search(["question about my account"], k=1, groups=["billing"])[0][0]
    assert boosted.group == "billing"
    assert index.search([], k=3) == []
    assert index.search(["zzzz qqqq"], k=3) == [[]]  # nothing similar: no document
    assert len(index.search(["invoice"], k=500)[0]) <= len(kb)
    from_documents = DocumentIndex(index.documents)
    assert from_documents.version == index.version and len(from_documents) == len(kb)


def test_a_table_with_any_column_names_and_bad_mappings():
    table = pd.DataFrame({"key": ["P-1", "P-2"], "heading": ["Returns policy", "Warranty"],
                          "text": ["Items can be returned within 30 days.", "Two years of warranty on devices."],
                          "section": ["returns", None]})
    idx = DocumentIndex.from_frame(table, {"id": "key", "title": "heading", "body": "text", "group": "section"})
    top = idx.search(["what is the returns policy for items?"], k=1)[0][0]
    assert (top.id, top.group, top.url) == ("P-1", "returns", None)
    assert idx.documents[1].group is None
    with pytest.raises(ValueError, match="lacks column"):
        DocumentIndex.from_frame(table, {"id": "key", "title": "heading", "body": "missing"})
    with pytest.raises(ValueError, match="need"):
        DocumentIndex.from_frame(table, {"id": "key", "title": "heading"})
    assert DocumentIndex([]).search(["anything"]) == [[]]
