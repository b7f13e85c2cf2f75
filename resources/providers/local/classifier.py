"""The embedded text classifier: plain scikit-learn, no Dagster, no network, no model download.

Generic over labels and optional categorical side features:

- features: word 1-2 gram TF-IDF (sublinear tf), optionally a char_wb n-gram TF-IDF beside it,
  and categorical side columns one-hot encoded (e.g. a channel, a lookup's tier, another task's
  answer);
- model: the sum of two linear SVMs over the same features, a class-balanced one-vs-rest
  ``LinearSVC`` and an NB-weighted ``LinearSVC`` (each class's features scaled by the
  naive-Bayes log-count ratio, Wang & Manning 2012). The two disagree in useful places; their
  sum is ~0.5 macro-F1 points better than either alone on the shared IT-service set;
- confidence: ``CalibratedClassifierCV(method="temperature")`` over out-of-fold decision values,
  so ``predict_proba`` rows are calibrated probabilities that sum to 1 and the arg-max is the
  ensemble's own decision.

A :class:`TrainedClassifier` knows its ``version``: a hash of the training data, the params, the
feature columns and the scikit-learn version, so the same data and params always give the same
version and any change gives a new one. The text vectorizer may be fitted on a ``vocabulary`` of
texts wider than the labelled rows (TF-IDF is unsupervised); two classifiers whose vectorizers
were fitted on the same texts with the same settings share one transform per batch
(``text_key``), e.g. two classify tasks of a family trained from one labelled file. Heavy imports
(scikit-learn, scipy, joblib) happen inside functions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from resources.providers.base import content_hash

from . import tfidf

if TYPE_CHECKING:  # pragma: no cover
    from resources.providers.definition import TaskDefinition

ARTIFACT_SUFFIX = ".joblib"
MODEL_ID = "local-tfidf-linear"


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

    def vectorizer_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("word_ngram_max", "word_min_df", "char_ngrams", "max_features")}


def params_for(task: "TaskDefinition") -> ClassifierParams:
    """The default params with the task's ``tuning`` overrides."""
    tuning = getattr(task.spec, "tuning", None)
    overrides = {k: v for k, v in (tuning.model_dump() if tuning is not None else {}).items() if v is not None}
    return ClassifierParams(**overrides)


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
        coefs, intercepts = [], []
        for c in self.classes_:
            pos = y == c
            p = np.asarray(binary[pos].sum(axis=0)).ravel() + 1.0
            q = np.asarray(binary[~pos].sum(axis=0)).ravel() + 1.0
            r = np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
            m = LinearSVC(C=self.C, random_state=self.random_state).fit(X.multiply(r).tocsr(), pos)
            # scaling X by r then applying w equals applying (w * r) to X: fold r into the weights
            coefs.append((m.coef_.ravel() * r).astype(np.float32))
            intercepts.append(float(m.intercept_[0]))
        self.coef_ = np.vstack(coefs)
        self.intercept_ = np.asarray(intercepts)
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
        if d.ndim == 1:  # two labels: one margin for classes_[1], as scikit-learn's calibration expects
            if self.nb_ is not None:
                nb = self.nb_.decision_function(X)
                d = d + (nb[:, 1] - nb[:, 0]) / 2
            return d
        if self.nb_ is not None:
            d = d + self.nb_.decision_function(X)
        return d

    def predict(self, X):
        d = self.decision_function(X)
        return self.classes_[(d > 0).astype(int) if d.ndim == 1 else d.argmax(axis=1)]


# ---- shared text transforms ------------------------------------------------------------------

# The last batch each text vectorizer (by text_key) transformed. Two classify tasks of a family
# that read the same text and trained on the same rows have equal vectorizers, so one batch is
# vectorised once for both.
_LAST_TRANSFORM: dict[str, tuple[tuple[str, ...], Any]] = {}
_TRANSFORM_LOCK = threading.Lock()


def _text_features(text_key: str, vectorizer, texts: Sequence[str]):
    key = tuple(t if isinstance(t, str) else "" for t in texts)
    last = _LAST_TRANSFORM.get(text_key)
    if last is not None and last[0] == key:
        return last[1]
    X = tfidf.transform(vectorizer, key)
    with _TRANSFORM_LOCK:
        if len(_LAST_TRANSFORM) >= 8:
            _LAST_TRANSFORM.clear()
        _LAST_TRANSFORM[text_key] = (key, X)
    return X


def data_digest(texts: Sequence[str], labels: Sequence[str], features: pd.DataFrame | None = None,
                vocabulary: Sequence[str] | None = None) -> str:
    """Order-sensitive hash of a training set (texts, labels, side feature values, vocabulary texts)."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels):
        h.update(json.dumps([t, str(y)], ensure_ascii=False).encode())
    if features is not None and len(features.columns):
        h.update(json.dumps(list(features.columns)).encode())
        h.update(pd.util.hash_pandas_object(features.astype(str), index=False).values.tobytes())
    if vocabulary is not None:
        h.update(b"vocabulary:" + _texts_digest(vocabulary).encode())
    return h.hexdigest()[:16]


def _texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def classifier_version(data_hash: str, params: ClassifierParams = ClassifierParams(),
                       feature_columns: Sequence[str] = ()) -> str:
    """The version :func:`train_classifier` gives for data of ``data_hash``, without fitting."""
    import sklearn

    return content_hash("tfidf-linear", data_hash, params.model_dump(mode="json"), list(feature_columns),
                        sklearn.__version__)


# ---- the trained artifact --------------------------------------------------------------------


class TrainedClassifier:
    """A fitted text (+ side features) classifier with calibrated probabilities and a version."""

    model_id = MODEL_ID

    def __init__(self, *, vectorizer, categorical, model, labels: list[str], version: str, params: ClassifierParams,
                 feature_columns: list[str], metrics: dict[str, Any], text_key: str):
        self.vectorizer = vectorizer
        self.categorical = categorical
        self.model = model
        self.labels = labels
        self.version = version
        self.params = params
        self.feature_columns = feature_columns
        self.metrics = metrics
        self.text_key = text_key

    def transform(self, texts: Sequence[str], features: pd.DataFrame | None = None):
        import scipy.sparse as sp

        X = _text_features(self.text_key, self.vectorizer, texts)
        if self.categorical is not None:
            if features is None:
                raise ValueError(f"model {self.version} needs side features {self.feature_columns}")
            cats = features[self.feature_columns].astype(str)
            X = sp.hstack([X, self.categorical.transform(cats)], format="csr")
        return X

    def predict_proba(self, texts: Sequence[str], features: pd.DataFrame | None = None) -> np.ndarray:
        """(n, len(labels)) calibrated probabilities, columns in :attr:`labels` order."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return np.clip(self.model.predict_proba(self.transform(texts, features)), 0.0, 1.0)

    def predict(self, texts: Sequence[str], features: pd.DataFrame | None = None) -> np.ndarray:
        proba = self.predict_proba(texts, features)
        return np.asarray(self.labels, dtype=object)[proba.argmax(axis=1)] if len(proba) else np.array([], dtype=object)

    def evaluate(self, texts: Sequence[str], labels: Sequence[str],
                 features: pd.DataFrame | None = None) -> dict[str, Any]:
        """macro-F1, accuracy and per-class recall on labelled texts, plus predict throughput."""
        from sklearn.metrics import accuracy_score, f1_score, recall_score

        start = time.perf_counter()
        pred = self.predict(texts, features)
        seconds = time.perf_counter() - start
        labels = [str(y) for y in labels]
        classes = sorted(set(labels))
        recall = recall_score(labels, list(pred), labels=classes, average=None, zero_division=0)
        return {
            "macro_f1": round(float(f1_score(labels, list(pred), labels=classes, average="macro", zero_division=0)), 4),
            "accuracy": round(float(accuracy_score(labels, list(pred))), 4),
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


def train_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    params: ClassifierParams = ClassifierParams(),
    features: pd.DataFrame | None = None,
    vocabulary: Sequence[str] | None = None,
) -> TrainedClassifier:
    """Fit the TF-IDF + linear-SVM ensemble with temperature-calibrated probabilities.

    ``features``: optional categorical side columns (one row per text, values as strings),
    one-hot encoded. ``vocabulary``: the texts the TF-IDF vectorizer is fitted on (default:
    ``texts``). Needs two labels with at least two rows each (calibration folds); clean data
    with :func:`resources.providers.local.training.prepare_training_set` first.
    """
    import scipy.sparse as sp
    import sklearn
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import FeatureUnion
    from sklearn.preprocessing import OneHotEncoder

    texts = [t if isinstance(t, str) else "" for t in texts]
    labels = [str(y) for y in labels]
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if features is not None and len(features) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(features)} feature rows")
    counts = pd.Series(labels, dtype=object).value_counts()
    if len(counts) < 2:
        raise ValueError(f"need at least two labels to train, got {list(counts.index)}")
    folds = min(params.calibration_folds, int(counts.min()))
    if folds < 2:
        raise ValueError(f"label {counts.idxmin()!r} has a single row; need at least 2 per label")
    if features is not None and not len(features.columns):
        features = None
    feature_columns = list(features.columns) if features is not None else []
    vocabulary = [t if isinstance(t, str) else "" for t in vocabulary] if vocabulary is not None else None
    version = classifier_version(data_digest(texts, labels, features, vocabulary), params, feature_columns)

    start = time.perf_counter()
    word = TfidfVectorizer(ngram_range=(1, params.word_ngram_max), sublinear_tf=True, min_df=params.word_min_df,
                           max_features=params.max_features, dtype=np.float32)
    if params.char_ngrams:
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params.char_ngrams), sublinear_tf=True,
                               min_df=2, max_features=params.max_features, dtype=np.float32)
        vectorizer = FeatureUnion([("word", word), ("char", char)])
    else:
        vectorizer = word
    if vocabulary is None:
        X = vectorizer.fit_transform(texts)
    else:
        X = vectorizer.fit(vocabulary).transform(texts)
    categorical = None
    if features is not None:
        categorical = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
        X = sp.hstack([X, categorical.fit_transform(features.astype(str))], format="csr")
    base = LinearEnsemble(C=params.C, nb_C=params.nb_C, class_weight=params.class_weight,
                          random_state=params.random_state)
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
        text_key=content_hash("text-features", _texts_digest(texts if vocabulary is None else vocabulary),
                              params.vectorizer_settings(), sklearn.__version__),
        metrics={
            "n_train": len(texts),
            "n_classes": int(len(counts)),
            "class_counts": {str(k): int(v) for k, v in counts.sort_index().items()},
            "n_features": int(X.shape[1]),
            "fit_s": round(fit_s, 3),
            "sklearn_version": sklearn.__version__,
        },
    )
