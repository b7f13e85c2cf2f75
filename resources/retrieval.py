"""Document retrieval: TF-IDF cosine similarity over a document collection, batch-first.

A :class:`DocumentIndex` holds :class:`~resources.providers.base.Document` objects (built from
them, or from a table plus the names of its ``id, title, body, url, group`` columns, as a
family's lookup declares them under ``documents:``). :meth:`DocumentIndex.search` returns the
top ``k`` documents per query text, best first, each with its ``score``. The title counts twice
and the group once, so they weigh more than body words. Deterministic: the same documents and
query give the same ranking; ties keep the collection's order.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from resources.providers.base import Document, content_hash

ROLES = ("id", "title", "body", "url", "group")


def _columns(columns: Any) -> dict[str, str | None]:
    """``{role: column}`` from a mapping or an object with ``id, title, body, url, group`` attributes."""
    if isinstance(columns, Mapping):
        mapping = dict(columns)
    elif hasattr(columns, "model_dump"):
        mapping = columns.model_dump()
    else:
        mapping = {role: getattr(columns, role, None) for role in ROLES}
    missing = [role for role in ("id", "title", "body") if not mapping.get(role)]
    if missing:
        raise ValueError(f"document columns need {missing} (got {mapping})")
    return {role: mapping.get(role) for role in ROLES}


def _value(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    return str(v)


class DocumentIndex:
    """An in-memory TF-IDF index of documents."""

    def __init__(self, documents: Sequence[Document]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.documents = list(documents)
        self.version = content_hash([[d.id, d.title, d.body, d.url, d.group] for d in self.documents])
        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english",
                                           dtype=np.float32)
        self._matrix = None
        if self.documents:
            texts = [f"{d.title}\n{d.title}\n{d.group or ''}\n{d.body}" for d in self.documents]
            try:
                self._matrix = self._vectorizer.fit_transform(texts)
            except ValueError:  # only stop words: nothing can match
                self._matrix = None
        self._groups = np.asarray([d.group or "" for d in self.documents], dtype=object)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, columns: Any) -> "DocumentIndex":
        """From a table and its document columns (a mapping or a ``DocumentColumns``-like object)."""
        roles = _columns(columns)
        wanted = [c for c in roles.values() if c]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            have = ", ".join(map(str, frame.columns))
            raise ValueError(f"document table lacks column(s) {missing} (columns: {have})")
        docs = []
        for row in frame[wanted].itertuples(index=False, name=None):
            values = dict(zip(wanted, row))
            docs.append(Document(
                id=_value(values[roles["id"]]) or "",
                title=_value(values[roles["title"]]) or "",
                body=_value(values[roles["body"]]) or "",
                url=_value(values[roles["url"]]) if roles["url"] else None,
                group=_value(values[roles["group"]]) if roles["group"] else None,
            ))
        return cls(docs)

    def __len__(self) -> int:
        return len(self.documents)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_documents) cosine similarities."""
        if self._matrix is None or not len(texts):
            return np.zeros((len(texts), len(self.documents)), dtype=np.float32)
        q = self._vectorizer.transform([t if isinstance(t, str) else "" for t in texts])
        return (q @ self._matrix.T).toarray().astype(np.float32, copy=False)

    def search(
        self,
        texts: Sequence[str],
        k: int = 3,
        groups: Sequence[str | None] | None = None,
        group_boost: float = 0.1,
        min_score: float = 0.0,
    ) -> list[list[Document]]:
        """Top-``k`` documents per text, best first, with ``score`` (cosine, plus the boost).

        ``groups``: an optional group per text (e.g. a predicted label); documents of that group
        get ``group_boost`` added. Documents scoring ``<= min_score`` are left out.
        """
        sims = self.scores(texts)
        if not sims.size:
            return [[] for _ in texts]
        if groups is not None:
            wanted = np.asarray([g or "" for g in groups], dtype=object)
            sims = sims + group_boost * ((wanted[:, None] == self._groups[None, :]) & (wanted[:, None] != ""))
        k = min(k, len(self.documents))
        # a stable sort on -score keeps the collection's order among ties
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        rows = np.take_along_axis(sims, order, axis=1).round(4)
        out = []
        for idx, row in zip(order.tolist(), rows.tolist()):
            hits = []
            for j, s in zip(idx, row):
                if s > min_score:
                    d = self.documents[j]
                    hits.append(Document(d.id, d.title, d.body, d.url, d.group, s))
            out.append(hits)
        return out
