"""The local provider's batch paths give exactly what the per-item ones gave: the whole-batch TF-IDF
count equals scikit-learn's transform bit for bit, and a draft render shared by items that give the
template equal values equals rendering each item alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resources.providers.base import Document, Item
from resources.providers.definition import TaskDefinition
from resources.providers.local import draft, tfidf
from resources.providers.tasks import DraftTask

TEXTS = [
    "", "   ", "a", "I can't log in, can't log in, can't log in!", "Invoice INV-2231 was charged twice",
    "ÉCOLE straße İstanbul naïve café ΟΔΥΣΣΕΥΣ", "refund refund refund refund please",
    "tab\tseparated\nnew line\r\nwindows", "unseen zzqx words only", "x" * 300, "the the the the the",
] * 3


def _fitted(**settings):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vocabulary = ["I cannot log in to my account", "the invoice was charged twice, refund please",
                  "ÉCOLE straße naïve café", "log in log in the the", "please help with the invoice"]
    return TfidfVectorizer(sublinear_tf=True, dtype=np.float32, **settings).fit(vocabulary)


@pytest.mark.parametrize("settings", [{"ngram_range": (1, 2)}, {"ngram_range": (1, 1)}, {"ngram_range": (1, 3)},
                                      {"ngram_range": (2, 2)}, {"ngram_range": (1, 2), "lowercase": False},
                                      {"ngram_range": (1, 2), "max_features": 6},  # bigrams of dropped unigrams
                                      {"ngram_range": (1, 2), "token_pattern": r"(?u)\b\w+\b"}])
def test_the_batch_count_gives_scikit_learns_features_bit_for_bit(settings, monkeypatch):
    monkeypatch.setattr(tfidf, "SLICE", 4)  # several slices, one ending mid-batch
    vectorizer = _fitted(**settings)
    assert tfidf.supported(vectorizer)
    # n-grams looked up as token-id codes with the default tokens, as joined strings with others
    assert (tfidf._token_table(vectorizer) is None) == ("token_pattern" in settings)
    expected, got = vectorizer.transform(TEXTS), tfidf.transform(vectorizer, TEXTS)
    assert type(got) is type(expected) and got.dtype == expected.dtype and got.shape == expected.shape
    assert got.has_sorted_indices
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)
    assert got.nnz > 0


@pytest.mark.parametrize("settings", [{"binary": True}, {"stop_words": ["the"]}, {"strip_accents": "unicode"},
                                      {"analyzer": "char_wb", "ngram_range": (2, 3)}])
def test_a_vectorizer_the_batch_count_does_not_reproduce_takes_scikit_learns_path(settings):
    vectorizer = _fitted(**settings)
    assert not tfidf.supported(vectorizer)
    assert (tfidf.transform(vectorizer, TEXTS) != vectorizer.transform(TEXTS)).nnz == 0


def _task(tmp_path: Path, template: str) -> TaskDefinition:
    (tmp_path / "t.j2").write_text(template)
    return TaskDefinition(family="demo", name="reply", spec=DraftTask(type="draft", template="t.j2", min_chars=1),
                          root=tmp_path, text_fields=("text",))


DOC = Document("D1", "Title one", "A plain first sentence here. More.", "https://x.example/d1", "g", 0.5)


def _items() -> list[Item]:
    values = [1, 1.0, True, 0.0, -0.0, float("nan"), None, "1", "1"]
    out = [Item(str(i), "text", {"n": v, "lk.a": v, "lk.b": "same"}, (DOC,), "h") for i, v in enumerate(values)]
    out.append(Item("no-row", "text", {"n": 1}, (DOC,), "h"))  # no lookup row: `lk` is undefined
    out.append(Item("other-cols", "text", {"n": 1, "lk.c": 3}, (DOC,), "h"))  # a row, without the read column
    out.append(Item("score", "text", {"n": 1, "lk.a": 1}, (Document("D1", "Title one", DOC.body, DOC.url, "g",
                                                                      -0.0),), "h"))
    out.append(Item("list", "text", {"n": [1, 2], "lk.a": 1}, (DOC,), "h"))  # not keyed: rendered on its own
    return out


@pytest.mark.parametrize("template", [
    "{{ n }}|{{ lk.a }}|{{ lk.a is none }}|{{ 'row' if lk else 'no row' }}|{{ lk.a is defined }}"
    "{% for d in documents %}|{{ d.title }}:{{ d.gist }}{% endfor %}",
    "{{ n }}|{{ lk }}|{% for d in documents %}{{ d.score }}{% endfor %}",  # the whole row, a document's score
    "{{ n }}{% for d in documents %}{{ d }}{% endfor %}",  # a whole document
    "{{ lk.a }}{{ documents | map(attribute='score') | join(',') }}",
])
def test_a_shared_render_equals_rendering_each_item_alone(tmp_path, template):
    task = _task(tmp_path, template)
    items = _items()
    together = draft.render(task, items * 2)
    alone = [draft.render(task, [it])[0] for it in items] * 2
    assert together == alone
    assert len({str(o) for o, _ in together}) > 5  # the values above do render apart
    outputs = [o for o, _ in together if o is not None]
    assert len({id(o) for o in outputs}) == len(outputs)  # every item its own output, safe to change
    together[0][0]["cited_ids"].append("changed")  # the item the second copy's first one shares a render with
    assert together[len(items)][0]["cited_ids"] == draft.render(task, items[:1])[0][0]["cited_ids"]


def test_what_a_template_reads_decides_what_is_shared(tmp_path):
    task = _task(tmp_path, "{{ lk.a }}{% for d in documents %}{{ d.title }}{{ d.gist }}{% endfor %}")
    root, source = str(tmp_path.resolve()), draft.template_source(task)
    reads = draft.template_reads(root, source)
    assert reads["names"] == [("lk", ("lk.a",))]
    assert reads["documents"](DOC) == ("D1", "Title one", "https://x.example/d1", DOC.body)  # no score
    assert draft.deterministic(root, source)
    whole = "{{ lk }}{% for d in documents %}{{ d }}{% endfor %}"
    assert draft.template_reads(str(tmp_path.resolve()), whole)["names"] == [("lk", None)]
    assert draft.template_reads(str(tmp_path.resolve()), whole)["documents"](DOC) == (
        "D1", "Title one", "https://x.example/d1", DOC.body, "g", 0.5)
    assert not draft.deterministic(str(tmp_path.resolve()), "{{ [1, 2, 3] | random }}")
    assert not draft.deterministic(str(tmp_path.resolve()), "{{ lipsum(1) }}")
    picked = _task(tmp_path, "{{ [n, 'a', 'b', 'c', 'd', 'e', 'f', 'g'] | random }}")
    texts = {o["text"] for o, _ in draft.render(picked, [Item(str(i), "", {"n": "x"}, (), "h") for i in range(60)])}
    assert len(texts) > 1  # a random template is rendered per item, not once for all
