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
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        self.documents = list(documents)
        self.version = content_hash([[d.id, d.title, d.body, d.url, d.group] for d in self.documents])
        # counting and weighting apart (what TfidfVectorizer does inside): queries are counted by _counts
        self._counter = CountVectorizer(ngram_range=(1, 2), stop_words="english", dtype=np.float32)
        self._tfidf = TfidfTransformer(sublinear_tf=True)
        self._matrix = None
        if self.documents:
            texts = [f"{d.title}\n{d.title}\n{d.group or ''}\n{d.body}" for d in self.documents]
            try:
                counts = self._counter.fit_transform(texts)
            except ValueError:  # only stop words: nothing can match
                counts = None
            if counts is not None:
                self._matrix = self._tfidf.fit_transform(counts)
                self._vocabulary = self._counter.vocabulary_
                self._prepare = self._counter.build_preprocessor()
                self._tokens = self._counter.build_tokenizer()
                self._stop = self._counter.get_stop_words() or frozenset()
        self._groups = np.asarray([d.group or "" for d in self.documents], dtype=object)
        self._parts = [(d.id, d.title, d.body, d.url, d.group) for d in self.documents]

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

    def _counts(self, texts: Sequence[str]):
        """The term counts CountVectorizer.transform gives, without building every n-gram of a query.

        Every word of the documents is in the vocabulary (no df cut-off), so a two-word term can
        only match where both its words are: only those pairs are joined and looked up.
        """
        import scipy.sparse as sp

        vocabulary, stop, prepare, tokens = self._vocabulary, self._stop, self._prepare, self._tokens
        indptr, indices, values = [0], [], []
        for text in texts:
            counter: dict[int, int] = {}
            previous = None
            for word in tokens(prepare(text)):
                if word in stop:
                    continue
                j = vocabulary.get(word)
                if j is None:
                    previous = None
                    continue
                counter[j] = counter.get(j, 0) + 1
                if previous is not None:
                    pair = vocabulary.get(f"{previous} {word}")
                    if pair is not None:
                        counter[pair] = counter.get(pair, 0) + 1
                previous = word
            indices.extend(counter)
            values.extend(counter.values())
            indptr.append(len(indices))
        counts = sp.csr_matrix((np.asarray(values, dtype=np.float32), np.asarray(indices, dtype=np.int32),
                                np.asarray(indptr, dtype=np.int32)), shape=(len(texts), len(vocabulary)))
        counts.sort_indices()
        return counts

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_documents) cosine similarities."""
        if self._matrix is None or not len(texts):
            return np.zeros((len(texts), len(self.documents)), dtype=np.float32)
        q = self._tfidf.transform(self._counts([t if isinstance(t, str) else "" for t in texts]), copy=False)
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
        order, best = top_k(sims, min(k, len(self.documents)))
        best = best.round(4)
        parts = self._parts
        return [[Document(*parts[j], s) for j, s in zip(idx, row) if s > min_score]
                for idx, row in zip(order.tolist(), best.tolist())]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of each row's ``k`` highest scores, best first; ties in column order.

    The same as the first ``k`` of a stable sort on ``-scores``, without sorting whole rows: a
    partition finds each row's k-th score, everything above it is in, and ties at it are
    taken leftmost first.
    """
    n, width = scores.shape
    if k <= 0:
        return np.zeros((n, 0), dtype=np.intp), scores[:, :0]
    if k < width:
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
        above = scores > kth
        at = scores == kth
        room = k - above.sum(axis=1, keepdims=True)
        chosen = above | (at & (np.cumsum(at, axis=1) <= room))
        columns = np.nonzero(chosen)[1].reshape(n, k)  # row by row, in column order
    else:
        columns = np.broadcast_to(np.arange(width), (n, width))
    values = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(values, order, axis=1)
