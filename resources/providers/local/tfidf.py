"""A fitted word TF-IDF vectorizer's ``transform``, counted for the whole batch at once.

scikit-learn's ``CountVectorizer._count_vocab`` builds every n-gram with a Python loop per token
and counts them in a dict per document: 80 % of a classify batch. Here each document's tokens get
ids from one ``dict.get`` each (C-level ``map``); with the default tokens an n-gram is then a number
(its token ids in base ``len(tokens)``) looked up in the vocabulary's sorted codes for the whole
slice at once, never built as a string (else n-grams are joined by ``map`` / ``zip`` and looked up
as strings); the counting is one ``np.unique`` per slice of documents. The count matrix is the
same (same ids, counts, sorted indices, dtype) and goes through the vectorizer's own fitted TF-IDF
weighting, so the features are bit-identical; a vectorizer this does not reproduce exactly (a custom analyzer, stop
words, accents, binary counts, a char analyzer, a feature union) takes scikit-learn's own path.
"""

from __future__ import annotations

from array import array
from itertools import repeat
from typing import Any, Sequence

import numpy as np

# documents counted per np.unique call: bounds the scratch arrays (~8 bytes per n-gram)
SLICE = 4096


def supported(vectorizer: Any) -> bool:
    """True when :func:`transform` gives exactly what ``vectorizer.transform`` gives."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return (type(vectorizer) is TfidfVectorizer and vectorizer.analyzer == "word" and vectorizer.input == "content"
            and vectorizer.preprocessor is None and vectorizer.tokenizer is None and vectorizer.stop_words is None
            and vectorizer.strip_accents is None and not vectorizer.binary and hasattr(vectorizer, "_tfidf")
            and hasattr(vectorizer, "vocabulary_") and len(vectorizer.vocabulary_) > 0)


def transform(vectorizer: Any, texts: Sequence[str]):
    """``vectorizer.transform(texts)`` for a vectorizer :func:`supported` accepts (texts are str)."""
    if not supported(vectorizer):
        return vectorizer.transform(texts)
    return vectorizer._tfidf.transform(counts(vectorizer, texts), copy=False)


def counts(vectorizer: Any, texts: Sequence[str]):
    """The document-term count matrix ``CountVectorizer.transform`` returns, as float ``dtype``."""
    import scipy.sparse as sp

    vocabulary = vectorizer.vocabulary_
    data, indices, indptr = [], [], [np.zeros(1, dtype=np.int64)]
    for start in range(0, len(texts), SLICE):
        d, j, p = _count_slice(vectorizer, vocabulary, texts[start:start + SLICE])
        data.append(d)
        indices.append(j)
        indptr.append(p[1:] + indptr[-1][-1])
    indptr_all = np.concatenate(indptr)
    index_dtype = np.int64 if indptr_all[-1] > np.iinfo(np.int32).max else np.int32
    X = sp.csr_array((np.concatenate(data).astype(vectorizer.dtype),
                      np.concatenate(indices).astype(index_dtype), indptr_all.astype(index_dtype)),
                     shape=(len(texts), len(vocabulary)), dtype=vectorizer.dtype)
    X.has_sorted_indices = True  # np.unique returned them row by row, columns ascending
    return _align(X)


def _count_slice(vectorizer: Any, vocabulary: dict,
                 texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = _token_table(vectorizer)
    if table is not None:
        return _count_by_token_ids(vectorizer, table, texts)
    tokenize = vectorizer.build_tokenizer()
    lowercase = vectorizer.lowercase
    min_n, max_n = vectorizer.ngram_range
    get = vocabulary.get
    ids = array("q")
    lengths = np.zeros(len(texts), dtype=np.int64)
    space_join = " ".join
    for row, doc in enumerate(texts):
        tokens = tokenize(doc.lower() if lowercase else doc)
        before = len(ids)
        for n in range(min_n, min(max_n, len(tokens)) + 1):
            grams = tokens if n == 1 else map(space_join, zip(*(tokens[k:] for k in range(n))))
            ids.extend(map(get, grams, repeat(-1)))
        lengths[row] = len(ids) - before
    cols = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    known = cols >= 0  # out-of-vocabulary n-grams are ignored, as scikit-learn does
    keys, values = np.unique(rows[known] * len(vocabulary) + cols[known], return_counts=True)
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // len(vocabulary), minlength=len(texts)), out=indptr[1:])
    return values, keys % len(vocabulary), indptr


def _align(X):
    """The sparse container type scikit-learn's own transform returns (matrix or array API)."""
    try:
        from sklearn.utils._sparse import _align_api_if_sparse
    except ImportError:  # an older scikit-learn returns a csr_matrix
        import scipy.sparse as sp

        return sp.csr_matrix(X)
    return _align_api_if_sparse(X)


# default tokens hold no space, so an n-gram feature splits back into its n tokens
_DEFAULT_TOKENS = r"(?u)\b\w\w+\b"
_TABLES: dict[int, tuple[Any, Any]] = {}  # id(vocabulary_) -> (the vocabulary, its token table)


def _token_table(vectorizer: Any) -> tuple[dict, list[tuple[np.ndarray, np.ndarray]]] | None:
    """The vocabulary's tokens numbered, and per n-gram size its features as sorted integer codes
    (token ids in base ``len(tokens)``): n-grams are then looked up as numbers, never built as strings."""
    vocabulary = vectorizer.vocabulary_
    cached = _TABLES.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    table = None
    if vectorizer.token_pattern == _DEFAULT_TOKENS:
        grams = [(f.split(" "), i) for f, i in vocabulary.items()]
        token_ids: dict[str, int] = {}
        for parts, _ in grams:
            for t in parts:
                token_ids.setdefault(t, len(token_ids))
        base, max_n = len(token_ids), vectorizer.ngram_range[1]
        if base ** max_n < 2 ** 62 and all(len(parts) <= max_n for parts, _ in grams):
            by_n: list[tuple[list[int], list[int]]] = [([], []) for _ in range(max_n + 1)]
            for parts, i in grams:
                code = 0
                for t in parts:
                    code = code * base + token_ids[t]
                by_n[len(parts)][0].append(code)
                by_n[len(parts)][1].append(i)
            sorted_by_n = []
            for codes, ids in by_n:
                order = np.argsort(np.asarray(codes, dtype=np.int64), kind="stable")
                sorted_by_n.append((np.asarray(codes, dtype=np.int64)[order], np.asarray(ids, dtype=np.int64)[order]))
            table = (token_ids, sorted_by_n)
    if len(_TABLES) >= 8:
        _TABLES.clear()
    _TABLES[id(vocabulary)] = (vocabulary, table)
    return table


def _count_by_token_ids(vectorizer: Any, table: tuple,
                        texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    token_ids, by_n = table
    tokenize = vectorizer.build_tokenizer()
    lowercase = vectorizer.lowercase
    get = token_ids.get
    ids = array("q")
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, doc in enumerate(texts):
        before = len(ids)
        ids.extend(map(get, tokenize(doc.lower() if lowercase else doc), repeat(-1)))
        lengths[row] = len(ids) - before
    tokens = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, dtype=np.int64)
    doc_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    base, (min_n, max_n) = len(token_ids), vectorizer.ngram_range
    rows, cols = [], []
    for n in range(min_n, max_n + 1):
        codes_n, features_n = by_n[n]
        m = len(tokens) - n + 1
        if m <= 0 or not len(codes_n):
            continue
        code = tokens[:m].copy()
        valid = code >= 0
        for k in range(1, n):  # an n-gram lies within one document and holds only known tokens
            nxt = tokens[k:k + m]
            valid &= (nxt >= 0) & (doc_of[k:k + m] == doc_of[:m])
            code = code * base + nxt
        code, at = code[valid], doc_of[:m][valid]
        pos = np.minimum(np.searchsorted(codes_n, code), len(codes_n) - 1)
        known = codes_n[pos] == code  # out-of-vocabulary n-grams are ignored, as scikit-learn does
        rows.append(at[known])
        cols.append(features_n[pos[known]])
    width = len(vectorizer.vocabulary_)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    keys, values = np.unique(row * width + col, return_counts=True)
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // width, minlength=len(texts)), out=indptr[1:])
    return values, keys % width, indptr
