"""Knowledge-base retrieval: TF-IDF cosine similarity over help-centre articles, batch-first.

Deterministic: the same articles and query give the same ranking; ties break by article order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from resources.providers.base import KBArticle, content_hash


class KnowledgeBaseIndex:
    """An in-memory index of :class:`KBArticle` (title counted twice, so it weighs more than body words)."""

    def __init__(self, articles: Sequence[KBArticle]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.articles = list(articles)
        self.version = content_hash([a.model_dump(exclude={"score"}) for a in self.articles])
        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, stop_words="english",
                                           dtype=np.float32)
        if self.articles:
            docs = [f"{a.title}\n{a.title}\n{a.category or ''}\n{a.body}" for a in self.articles]
            self._matrix = self._vectorizer.fit_transform(docs)
        else:
            self._matrix = None
        self._categories = np.asarray([a.category or "" for a in self.articles], dtype=object)

    @classmethod
    def from_articles(cls, articles: "Sequence[KBArticle] | pd.DataFrame") -> "KnowledgeBaseIndex":
        """From KBArticle objects or a DataFrame with ``article_id, title, body`` (+ ``category, url``)."""
        if isinstance(articles, pd.DataFrame):
            missing = {"article_id", "title", "body"} - set(articles.columns)
            if missing:
                raise ValueError(f"knowledge base table lacks columns {sorted(missing)}")
            records = articles.to_dict(orient="records")
            articles = [
                KBArticle(
                    article_id=str(r["article_id"]),
                    title=str(r["title"]),
                    body=str(r["body"]),
                    category=None if pd.isna(r.get("category")) else str(r.get("category")),
                    url=None if pd.isna(r.get("url")) else str(r.get("url")),
                )
                for r in records
            ]
        return cls(articles)

    def __len__(self) -> int:
        return len(self.articles)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_articles) cosine similarities."""
        if self._matrix is None or not len(texts):
            return np.zeros((len(texts), len(self.articles)), dtype=np.float32)
        q = self._vectorizer.transform([t if isinstance(t, str) else "" for t in texts])
        return np.asarray((q @ self._matrix.T).todense(), dtype=np.float32)

    def search(
        self,
        texts: Sequence[str],
        k: int = 3,
        categories: Sequence[str | None] | None = None,
        category_boost: float = 0.1,
        min_score: float = 0.0,
    ) -> list[list[KBArticle]]:
        """Top-``k`` articles per text, best first, ``score`` filled (cosine, plus the boost).

        ``categories``: optional predicted category per text; articles of that category get
        ``category_boost`` added. Articles scoring ``<= min_score`` are left out.
        """
        sims = self.scores(texts)
        if not sims.size:
            return [[] for _ in texts]
        if categories is not None:
            cats = np.asarray([c or "" for c in categories], dtype=object)
            sims = sims + category_boost * (cats[:, None] == self._categories[None, :]) * (cats[:, None] != "")
        k = min(k, len(self.articles))
        # stable sort on -score keeps article order among ties
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        out = []
        for row, idx in enumerate(order):
            out.append([
                self.articles[j].model_copy(update={"score": round(float(sims[row, j]), 4)})
                for j in idx
                if sims[row, j] > min_score
            ])
        return out
