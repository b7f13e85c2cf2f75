"""The embedded text classifier: plain scikit-learn, no Dagster, no network, no model download.

One pipeline serves the product (trained on the bundled labelled tickets) and the benchmark
(``bench/evaluate.py``):

- features: word 1-2 gram TF-IDF (sublinear tf), optionally a char_wb n-gram TF-IDF beside it,
  and optional categorical side features (one-hot), e.g. channel / tier / VIP for priority;
- model: the sum of two linear SVMs over the same features, a class-balanced one-vs-rest
  ``LinearSVC`` and an NB-weighted ``LinearSVC`` (each class's features scaled by the
  naive-Bayes log-count ratio, Wang & Manning 2012). The two disagree in useful places; their
  sum is ~0.5 macro-F1 points better than either alone on the shared IT-ticket set;
- confidence: ``CalibratedClassifierCV(method="temperature")`` over out-of-fold decision
  values, so ``predict_proba`` rows are calibrated probabilities that sum to 1 and the arg-max
  is the ensemble's own decision.

A :class:`TrainedClassifier` knows its ``version``: a hash of the training data, the params,
the feature columns and the scikit-learn version, so the same data and params always give the
same version and any change gives a new one. Heavy imports happen inside functions.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from resources.providers.base import content_hash

ARTIFACT_SUFFIX = ".joblib"


class ClassifierParams(BaseModel):
    """Hyper-parameters of the local classifier; part of the model version."""

    word_ngram_max: int = Field(2, ge=1, le=3)
    word_min_df: int = Field(1, ge=1)
    char_ngrams: tuple[int, int] | None = None  # e.g. (2, 5) adds a char_wb TF-IDF (slower, more robust to typos)
    max_features: int | None = None
    C: float = Field(0.7, gt=0)
    nb_C: float | None = Field(0.3, gt=0)  # None: no NB-weighted SVM in the ensemble
    class_weight: Literal["balanced"] | None = "balanced"
    calibration: Literal["temperature", "sigmoid", "isotonic"] = "temperature"
    calibration_folds: int = Field(3, ge=2)
    random_state: int = 42


# ---- the estimator ---------------------------------------------------------------------------


class NBWeightedSVC:
    """One-vs-rest linear SVMs on features scaled by each class's NB log-count ratio."""

    def __init__(self, C: float = 0.3, random_state: int = 0):
        self.C = C
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.svm import LinearSVC

        y = np.asarray(y)
        self.classes_ = np.unique(y)
        binary = X.copy()
        binary.data = np.ones_like(binary.data)
        self.ratios_, self.coef_, self.intercept_ = [], [], []
        for c in self.classes_:
            pos = y == c
            p = np.asarray(binary[pos].sum(axis=0)).ravel() + 1.0
            q = np.asarray(binary[~pos].sum(axis=0)).ravel() + 1.0
            r = np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
            m = LinearSVC(C=self.C, random_state=self.random_state).fit(X.multiply(r).tocsr(), pos)
            # scaling X by r then applying w equals applying (w * r) to X: fold r into the weights
            self.coef_.append((m.coef_.ravel() * r).astype(np.float32))
            self.intercept_.append(float(m.intercept_[0]))
        self.coef_ = np.vstack(self.coef_)
        self.intercept_ = np.asarray(self.intercept_)
        return self

    def decision_function(self, X):
        return np.asarray(X @ self.coef_.T) + self.intercept_


class LinearEnsemble:
    """Sum of a class-balanced LinearSVC and an NB-weighted LinearSVC (a scikit-learn classifier)."""

    _estimator_type = "classifier"

    def __init__(self, C: float = 0.7, nb_C: float | None = 0.3, class_weight: str | None = "balanced",
                 random_state: int = 0):
        self.C = C
        self.nb_C = nb_C
        self.class_weight = class_weight
        self.random_state = random_state

    # scikit-learn's clone() needs these two
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"C": self.C, "nb_C": self.nb_C, "class_weight": self.class_weight, "random_state": self.random_state}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def fit(self, X, y):
        from sklearn.svm import LinearSVC

        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.svc_ = LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.random_state).fit(X, y)
        self.nb_ = NBWeightedSVC(C=self.nb_C, random_state=self.random_state).fit(X, y) if self.nb_C else None
        return self

    def decision_function(self, X):
        d = self.svc_.decision_function(X)
        if d.ndim == 1:  # two classes: LinearSVC gives one column
            d = np.column_stack([-d, d])
        if self.nb_ is not None:
            d = d + self.nb_.decision_function(X)
        return d

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]


# ---- the trained artifact --------------------------------------------------------------------


# The last batch each fitted vectorizer transformed. The priority model shares the category
# model's vectorizer, so classify then prioritize of one batch vectorises its texts once.
# Entries hold the vectorizer itself, so an id is never reused while its entry exists.
_LAST_TRANSFORM: dict[int, tuple[Any, tuple[str, ...], Any]] = {}


def _text_features(vectorizer, texts: Sequence[str]):
    key = tuple(t if isinstance(t, str) else "" for t in texts)
    last = _LAST_TRANSFORM.get(id(vectorizer))
    if last is not None and last[0] is vectorizer and last[1] == key:
        return last[2]
    X = vectorizer.transform(key)
    if len(_LAST_TRANSFORM) > 8:
        _LAST_TRANSFORM.clear()
    _LAST_TRANSFORM[id(vectorizer)] = (vectorizer, key, X)
    return X


def data_digest(texts: Sequence[str], labels: Sequence[str], features: pd.DataFrame | None = None) -> str:
    """Order-sensitive hash of a training set."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels):
        h.update(json.dumps([t, str(y)], ensure_ascii=False).encode())
    if features is not None:
        h.update(pd.util.hash_pandas_object(features.astype(str), index=False).values.tobytes())
    return h.hexdigest()[:16]


class TrainedClassifier:
    """A fitted text (+ side features) classifier with calibrated probabilities and a version."""

    model_id = "local-tfidf-linear"

    def __init__(self, *, vectorizer, categorical, model, labels: list[str], version: str,
                 params: ClassifierParams, feature_columns: list[str], metrics: dict[str, Any]):
        self.vectorizer = vectorizer
        self.categorical = categorical
        self.model = model
        self.labels = labels
        self.version = version
        self.params = params
        self.feature_columns = feature_columns
        self.metrics = metrics
        self.priority_model: TrainedClassifier | None = None

    def transform(self, texts: Sequence[str], features: pd.DataFrame | None = None):
        import scipy.sparse as sp

        X = _text_features(self.vectorizer, texts)
        if self.categorical is not None:
            if features is None:
                raise ValueError(f"model {self.version} needs side features {self.feature_columns}")
            cats = features[self.feature_columns].astype(str).fillna("")
            X = sp.hstack([X, self.categorical.transform(cats)], format="csr")
        return X

    def predict_proba(self, texts: Sequence[str], features: pd.DataFrame | None = None) -> np.ndarray:
        """(n, len(labels)) calibrated probabilities, columns in :attr:`labels` order."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        proba = self.model.predict_proba(self.transform(texts, features))
        return np.clip(proba, 0.0, 1.0)

    def predict(self, texts: Sequence[str], features: pd.DataFrame | None = None) -> np.ndarray:
        proba = self.predict_proba(texts, features)
        return np.asarray(self.labels, dtype=object)[proba.argmax(axis=1)] if len(proba) else np.array([], dtype=object)

    def evaluate(self, texts: Sequence[str], labels: Sequence[str], features: pd.DataFrame | None = None) -> dict[str, Any]:
        """macro-F1, accuracy and per-class recall on labelled texts, plus predict throughput."""
        from sklearn.metrics import accuracy_score, f1_score, recall_score

        start = time.perf_counter()
        pred = self.predict(texts, features)
        seconds = time.perf_counter() - start
        classes = sorted(set(map(str, labels)))
        recall = recall_score(list(labels), list(pred), labels=classes, average=None, zero_division=0)
        return {
            "macro_f1": round(float(f1_score(list(labels), list(pred), labels=classes, average="macro", zero_division=0)), 4),
            "accuracy": round(float(accuracy_score(list(labels), list(pred))), 4),
            "per_class_recall": {c: round(float(r), 4) for c, r in zip(classes, recall)},
            "predict_s": round(seconds, 3),
            "predict_per_s": round(len(texts) / seconds, 1) if seconds > 0 else None,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``<directory>/<version>.joblib`` atomically; returns the path."""
        import joblib

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.version}{ARTIFACT_SUFFIX}"
        tmp = path.with_suffix(f".tmp{time.time_ns()}")
        joblib.dump(self, tmp, compress=3)
        tmp.replace(path)
        return path

    @staticmethod
    def load(path: str | Path) -> "TrainedClassifier":
        import joblib

        obj = joblib.load(Path(path))
        if not isinstance(obj, TrainedClassifier):
            raise TypeError(f"{path} does not hold a TrainedClassifier (got {type(obj).__name__})")
        return obj

    def __repr__(self) -> str:
        return f"TrainedClassifier(version={self.version!r}, labels={self.labels!r})"


def classifier_version(texts: Sequence[str], labels: Sequence[str], params: ClassifierParams = ClassifierParams(),
                       features: pd.DataFrame | None = None, text_features_of: str | None = None) -> str:
    """The version :func:`train_classifier` would give, without fitting anything."""
    import sklearn

    texts = [t if isinstance(t, str) else "" for t in texts]
    labels = [str(y) for y in labels]
    feature_columns = list(features.columns) if features is not None else []
    return content_hash("tfidf-linear", data_digest(texts, labels, features), params.model_dump(mode="json"),
                        feature_columns, sklearn.__version__, text_features_of)


def train_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    params: ClassifierParams = ClassifierParams(),
    features: pd.DataFrame | None = None,
    text_features_of: TrainedClassifier | None = None,
) -> TrainedClassifier:
    """Fit the TF-IDF + linear-SVM ensemble with temperature-calibrated probabilities.

    ``features``: optional categorical side columns (one row per text), one-hot encoded.
    ``text_features_of``: reuse that trained model's fitted text vectorizer instead of fitting
    one (both models then share one transform per batch).
    """
    import scipy.sparse as sp
    import sklearn
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion
    from sklearn.preprocessing import OneHotEncoder

    texts = [t if isinstance(t, str) else "" for t in texts]
    labels = [str(y) for y in labels]
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    counts = pd.Series(labels).value_counts()
    if len(counts) < 2:
        raise ValueError(f"need at least two classes to train, got {list(counts.index)}")
    folds = min(params.calibration_folds, int(counts.min()))
    if folds < 2:
        raise ValueError(f"class {counts.idxmin()!r} has a single example; need at least 2 per class")
    feature_columns = list(features.columns) if features is not None else []
    version = classifier_version(texts, labels, params, features,
                                 text_features_of.version if text_features_of is not None else None)

    start = time.perf_counter()
    word = TfidfVectorizer(ngram_range=(1, params.word_ngram_max), sublinear_tf=True, min_df=params.word_min_df,
                           max_features=params.max_features, dtype=np.float32)
    if text_features_of is not None:
        vectorizer = text_features_of.vectorizer
    elif params.char_ngrams:
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params.char_ngrams), sublinear_tf=True,
                               min_df=2, max_features=params.max_features, dtype=np.float32)
        vectorizer = FeatureUnion([("word", word), ("char", char)])
    else:
        vectorizer = word
    X = vectorizer.transform(texts) if text_features_of is not None else vectorizer.fit_transform(texts)
    categorical = None
    if features is not None:
        categorical = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
        X = sp.hstack([X, categorical.fit_transform(features.astype(str).fillna(""))], format="csr")
    base = LinearEnsemble(C=params.C, nb_C=params.nb_C, class_weight=params.class_weight,
                          random_state=params.random_state)
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.random_state)
    model = CalibratedClassifierCV(base, method=params.calibration, cv=cv, ensemble=False).fit(X, labels)
    fit_s = time.perf_counter() - start
    return TrainedClassifier(
        vectorizer=vectorizer,
        categorical=categorical,
        model=model,
        labels=[str(c) for c in model.classes_],
        version=version,
        params=params,
        feature_columns=feature_columns,
        metrics={
            "n_train": len(texts),
            "n_classes": int(len(counts)),
            "class_counts": {str(k): int(v) for k, v in counts.sort_index().items()},
            "n_features": int(X.shape[1]),
            "fit_s": round(fit_s, 3),
            "sklearn_version": sklearn.__version__,
        },
    )


# ---- the product's triage model: category + priority -----------------------------------------

PRIORITY_FEATURES = ("channel", "tier", "is_vip", "category")


def ticket_texts(df: pd.DataFrame) -> list[str]:
    """``text`` column if present, else subject + newline + body."""
    if "text" in df.columns:
        return df["text"].fillna("").astype(str).tolist()
    subject = df["subject"].fillna("").astype(str) if "subject" in df.columns else pd.Series("", index=df.index)
    body = df["body"].fillna("").astype(str) if "body" in df.columns else pd.Series("", index=df.index)
    return (subject + "\n" + body).str.strip().tolist()


def priority_features(df: pd.DataFrame) -> pd.DataFrame:
    """The side features of the priority model (missing columns become empty strings)."""
    out = pd.DataFrame(index=df.index)
    for col in PRIORITY_FEATURES:
        if col in df.columns:
            values = df[col]
            if col == "is_vip":
                values = values.map(lambda v: str(v).strip().lower() in {"true", "1", "yes"})
            out[col] = values.astype(str).where(df[col].notna(), "")
        else:
            out[col] = ""
    return out.reset_index(drop=True)


DEFAULT_PRIORITY_PARAMS = ClassifierParams(nb_C=None, C=0.3)


def _priority_rows(priorities: pd.DataFrame | None) -> pd.DataFrame | None:
    if priorities is None or not len(priorities) or "priority" not in priorities.columns:
        return None
    return priorities[priorities["priority"].notna()]


def triage_version(
    categories: pd.DataFrame,
    priorities: pd.DataFrame | None = None,
    params: ClassifierParams = ClassifierParams(),
    priority_params: ClassifierParams = DEFAULT_PRIORITY_PARAMS,
) -> str:
    """The version :func:`train_triage_model` would give for these rows, without fitting."""
    label_col = "label" if "label" in categories.columns else "category"
    version = classifier_version(ticket_texts(categories), categories[label_col].astype(str).tolist(), params)
    rows = _priority_rows(priorities)
    if rows is not None:
        prio = classifier_version(ticket_texts(rows), rows["priority"].astype(str).tolist(), priority_params,
                                  priority_features(rows), version)
        version = content_hash("triage", version, prio)
    return version


def train_triage_model(
    categories: pd.DataFrame,
    priorities: pd.DataFrame | None = None,
    params: ClassifierParams = ClassifierParams(),
    priority_params: ClassifierParams = DEFAULT_PRIORITY_PARAMS,
) -> TrainedClassifier:
    """The category classifier with its priority companion (``.priority_model``) attached.

    ``categories``: rows with ``text`` + ``label`` (or ``subject``/``body`` + ``category``).
    ``priorities``: rows with ``subject``/``body`` (or ``text``), ``priority`` and optionally
    ``channel``, ``tier``, ``is_vip``, ``category``. The returned version covers both models.
    """
    label_col = "label" if "label" in categories.columns else "category"
    model = train_classifier(ticket_texts(categories), categories[label_col].astype(str).tolist(), params)
    model.metrics["category_version"] = model.version
    prio_rows = _priority_rows(priorities)
    if prio_rows is not None:
        prio = train_classifier(ticket_texts(prio_rows), prio_rows["priority"].astype(str).tolist(), priority_params,
                                features=priority_features(prio_rows), text_features_of=model)
        model.priority_model = prio
        model.metrics["priority_version"] = prio.version
        model.version = content_hash("triage", model.version, prio.version)
    return model
