"""The local classifier: quality on the flagship family, calibration, versions, the store, and
training on labelled data as users export it (empty texts, duplicates, conflicts, rare labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resources.providers.definition import TaskDefinition
from resources.providers.local import (
    ClassifierParams,
    LocalModelStore,
    LocalProvider,
    TrainedClassifier,
    TrainingError,
    params_for,
    prepare_training_set,
    train_classifier,
)
from resources.providers.local.training import (
    CONFLICT_MINORITY,
    CONFLICT_TIE,
    DUPLICATE,
    EMPTY_TEXT,
    FEEDBACK_GOLDEN,
    FEEDBACK_LABEL,
    NO_LABEL,
    UNKNOWN_LABEL,
    is_golden,
)
from resources.providers.tasks import ClassifyTask
from tests import local_family as fam

# measured: macro-F1 0.918 on the golden set of labelled_tickets.csv (hash-based 20%); shuffled labels ~0.13
MIN_MACRO_F1 = 0.88
MAX_SHUFFLED_MACRO_F1 = 0.30


@pytest.fixture(scope="module")
def trained():
    return fam.trained()


@pytest.fixture(scope="module")
def category(trained):
    store, versions, sets = trained
    return store.load(versions["category"]), *sets["category"]


def _task(name: str = "topic", **spec) -> TaskDefinition:
    spec.setdefault("type", "classify")
    spec.setdefault("labels", ["a", "b", "c"])
    resolved = spec.pop("resolved", ())
    task = ClassifyTask.model_validate(spec)
    labels = tuple(task.labels) if isinstance(task.labels, list) else tuple(resolved)
    return TaskDefinition(family="demo", name=name, spec=task, labels=labels, text_fields=("text",))


def _rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["record_id", "text", "label"])


def _words(label: str, i: int) -> str:
    vocab = {"a": "invoice payment charge billing", "b": "password login access locked",
             "c": "parcel delivery tracking courier", "d": "export api integration webhook",
             "e": "gdpr privacy erase personal"}
    return f"{vocab[label]} note {i} about {label}"


def _train_ids(prefix: str, n: int) -> list[str]:
    """``n`` record ids outside the golden set (so a test row surely reaches training)."""
    out, i = [], 0
    while len(out) < n:
        if not is_golden(f"{prefix}{i}", 0.2):
            out.append(f"{prefix}{i}")
        i += 1
    return out


def _clean_rows(labels: dict[str, int], start: int = 0) -> list[tuple]:
    out, i = [], start
    for label, n in labels.items():
        for _ in range(n):
            out.append((f"R-{i:04d}", _words(label, i), label))
            i += 1
    return out


# ---- quality on the flagship family ----------------------------------------------------------


def test_category_macro_f1_on_the_golden_set(category):
    model, _, golden = category
    metrics = model.evaluate(golden["text"].tolist(), golden["label"].tolist())
    assert len(golden) > 500
    assert metrics["macro_f1"] >= MIN_MACRO_F1, metrics
    assert min(metrics["per_class_recall"].values()) >= 0.75, metrics


def test_same_pipeline_on_shuffled_labels_learns_nothing(category):
    _, training, golden = category
    shuffled = np.random.default_rng(0).permutation(np.asarray(training.labels, dtype=object))
    noise = train_classifier(training.texts, list(shuffled))
    assert noise.evaluate(golden["text"].tolist(), golden["label"].tolist())["macro_f1"] < MAX_SHUFFLED_MACRO_F1


def test_confidences_are_calibrated_probabilities(category):
    model, _, golden = category
    proba = model.predict_proba(golden["text"].tolist())
    assert proba.shape == (len(golden), 8)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    pred = np.asarray(model.labels)[proba.argmax(axis=1)]
    accuracy = (pred == golden["label"].to_numpy()).mean()
    assert abs(proba.max(axis=1).mean() - accuracy) < 0.06  # calibrated: it claims what it achieves


def test_the_two_classify_tasks_share_one_text_transform(trained):
    store, versions, _ = trained
    category, priority = store.load(versions["category"]), store.load(versions["priority"])
    assert category.text_key == priority.text_key  # one vectorisation per batch serves both
    assert priority.feature_columns == ["channel", "account.tier", "account.is_vip", "category"]
    assert params_for(fam.family().tasks["priority"]).C == 0.3  # the family's tuning


def test_classify_results_carry_probabilities_and_provenance(trained, category):
    model, _, golden = category
    provider = fam.provider()
    task = fam.family().tasks["category"]
    rows = fam.labelled().set_index("ticket_id").loc[golden["record_id"].head(40)].reset_index().to_dict("records")
    results = provider.run(task, fam.items(rows))
    assert [r.record_id for r in results] == [r["ticket_id"] for r in rows]
    for r in results:
        out = r.output
        assert r.ok and out["label"] in model.labels and out["reasons"] == [f"model:{out['label']}"]
        assert r.confidence == out["confidence"] == pytest.approx(max(out["probabilities"].values()), abs=1e-3)
        assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-2)
        assert (r.provider, r.model_id, r.path) == ("local", "local-tfidf-linear", "local")
        assert r.model_version == model.version
        assert (r.tokens_in, r.tokens_out, r.cost_usd, r.attempts) == (0, 0, 0.0, 1)
        assert r.prompt_hash and r.input_hash and r.latency_ms >= 0
    row = task.to_columns(results[0])
    assert row["category"] == results[0].output["label"] and row["category_model_version"] == model.version


def test_batch_and_one_at_a_time_give_the_same_answers(category):
    _, _, golden = category
    provider = fam.provider()
    rows = fam.labelled().set_index("ticket_id").loc[golden["record_id"].head(20)].reset_index().to_dict("records")
    for name in ("category", "priority"):
        task = fam.family().tasks[name]
        answers = [{"category": "billing", "category_confidence": 0.9}] * len(rows)
        batch = provider.run(task, fam.items(rows, answers))
        single = [provider.run(task, fam.items([r], [a]))[0] for r, a in zip(rows, answers)]
        assert [r.output["label"] for r in batch] == [r.output["label"] for r in single]
        assert [r.confidence for r in batch] == pytest.approx([r.confidence for r in single], abs=1e-6)


# ---- ordered-label rules ---------------------------------------------------------------------


def _priority(text: str, account: dict | None, channel: str = "email", category: str = "product_question"):
    fields = {"channel": channel, "category": category, "category_confidence": 0.8}
    fields.update({f"account.{k}": v for k, v in (account or {}).items()})
    from resources.providers.base import Item

    return Item("T-1", text, fields)


def test_vip_account_is_at_least_high_with_reason():
    provider, task = fam.provider(), fam.family().tasks["priority"]
    text = "Export question\nHow do I export last month's report as CSV? Thanks."
    vip, plain = provider.run(task, [
        _priority(text, {"name": "Northwind", "tier": "enterprise", "is_vip": True}),
        _priority(text, {"name": "Contoso", "tier": "free", "is_vip": False}),
    ])
    assert vip.output["label"] in ("high", "urgent") and "vip_account" in vip.output["reasons"]
    assert vip.confidence == 1.0 or vip.output["label"] == "urgent"
    assert "vip_account" not in plain.output["reasons"] and plain.output["reasons"][0].startswith("model:")


def test_outage_terms_make_a_ticket_urgent():
    provider, task = fam.provider(), fam.family().tasks["priority"]
    r = provider.run(task, [_priority(
        "Everything down\nProduction is down: the API is returning 503 Service Unavailable for all requests. "
        "Our agents can't work.", None, category="technical_issue")])[0]
    assert r.output["label"] == "urgent" and "outage_terms" in r.output["reasons"] and r.confidence == 1.0


def test_a_rule_that_cannot_be_decided_says_so():
    task = _task("level", labels=["low", "high"], ordered=True,
                 rules=[{"when": "amount > 5.0", "at_least": "high", "reason": "big"}])
    texts = [_words("a", i) for i in range(6)] + [_words("b", i) for i in range(6)]
    model = train_classifier(texts, ["low"] * 6 + ["high"] * 6)
    from resources.providers.base import Item

    from resources.expressions import compile_condition

    items = [Item("1", texts[0], {"amount": None}), Item("2", texts[0], {"amount": 9.0})]
    given = {"level": [compile_condition("amount > 5.0", {"amount"})]}
    for provider in (LocalProvider({"level": model}, given), LocalProvider({"level": model})):  # compiled here
        out = provider.run(task, items)
        assert out[0].output["reasons"][-1] == "big:undecidable" and out[0].ok
        assert out[1].output["label"] == "high" and out[1].output["reasons"][-1] == "big"


def test_classify_without_a_trained_model_answers_every_item_with_an_error():
    task = fam.family().tasks["category"]
    provider = LocalProvider()
    assert not provider.supports(task)
    results = provider.run(task, fam.items(fam.labelled().head(3).to_dict("records")))
    assert [r.ok for r in results] == [False] * 3 and "no trained local classifier" in results[0].error


# ---- artifacts, versions, the store ----------------------------------------------------------


def test_artifact_round_trip_gives_identical_predictions(category, tmp_path):
    model, _, golden = category
    path = model.save(tmp_path)
    assert path.name == f"{model.version}.joblib"
    loaded = TrainedClassifier.load(path)
    texts = golden["text"].tolist()
    assert loaded.version == model.version and loaded.labels == model.labels
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))


def test_version_is_stable_and_changes_with_data_or_params():
    rows = _clean_rows({"a": 6, "b": 6, "c": 6})
    texts, labels = [r[1] for r in rows], [r[2] for r in rows]
    a = train_classifier(texts, labels)
    assert train_classifier(texts, labels).version == a.version
    assert train_classifier(texts[:-1], labels[:-1]).version != a.version
    assert train_classifier(texts, labels, ClassifierParams(C=0.2)).version != a.version
    assert train_classifier(texts, ["b"] + labels[1:]).version != a.version
    features = pd.DataFrame({"channel": ["email"] * len(texts)})
    assert train_classifier(texts, labels, features=features).version != a.version


def test_store_trains_once_and_then_only_loads(tmp_path, monkeypatch):
    task = _task()
    training, _ = prepare_training_set(task, _rows(*_clean_rows({"a": 8, "b": 8, "c": 8})))
    store = LocalModelStore(model_dir=str(tmp_path))
    version = store.version_for(task, training)  # known before fitting
    model = store.train(task, training)
    assert model.version == version and store.path_for(version).exists() and store.versions() == [version]
    assert model.metrics["training"]["rows_used"] == len(training)

    import resources.providers.local.store as store_module

    def no_training(*args, **kwargs):
        raise AssertionError("an already trained version must not be refitted")

    monkeypatch.setattr(store_module, "train_classifier", no_training)
    assert store.train(task, training).version == version
    fresh = LocalModelStore(model_dir=str(tmp_path))  # another process / resource instance
    assert fresh.train(task, training).version == version
    assert fresh.provider({"topic": version}).classifiers["topic"].version == version
    with pytest.raises(FileNotFoundError, match="no local model version"):
        store.load("does-not-exist")


def test_tuning_is_part_of_the_version():
    rows = _rows(*_clean_rows({"a": 8, "b": 8, "c": 8}))
    plain, tuned = _task(), _task(tuning={"C": 0.2, "word_ngram_max": 1})
    store = LocalModelStore(model_dir="/nonexistent-not-used")
    t1, _ = prepare_training_set(plain, rows)
    t2, _ = prepare_training_set(tuned, rows)
    assert t1.data_hash == t2.data_hash
    assert params_for(tuned).C == 0.2 and params_for(tuned).word_ngram_max == 1
    assert store.version_for(plain, t1) != store.version_for(tuned, t2)


# ---- training on data as users export it ------------------------------------------------------


def test_a_dirty_export_trains_and_the_report_says_what_happened(tmp_path):
    clean = [r for r in _clean_rows({"a": 10, "b": 10, "c": 10}) if not is_golden(r[0], 0.2)]
    x = _train_ids("X-", 9)
    dirty = clean + [
        (x[0], "   ", "a"),                                   # whitespace text
        (x[1], None, "b"),                                    # missing text
        (x[2], "no label here", None),                        # missing label
        (x[3], clean[0][1], clean[0][2]),                     # exact duplicate of a row
        (x[4], clean[1][1] + "  ", "b"),                       # same text, another label: a tie drops both
        (x[5], "shared text with a tie", "a"), (x[6], "shared text with a tie", "b"),
        (x[7], "a label nobody declared", "zzz"),
    ]
    task = _task()
    training, golden = prepare_training_set(task, _rows(*dirty))
    report = training.report
    assert report.rows_in == len(dirty)
    assert report.dropped_for(EMPTY_TEXT) == 2 and report.dropped_for(NO_LABEL) == 1
    assert report.dropped_for(UNKNOWN_LABEL) == 1
    assert report.dropped_for(CONFLICT_TIE) == 4 and report.dropped_for(CONFLICT_MINORITY) == 0
    assert report.dropped_for(DUPLICATE) == 1 and report.golden_rows == 0
    assert set(training.labels) <= {"a", "b", "c"} and "shared text with a tie" not in training.texts
    assert report.rows_used == len(training) and report.golden_rows == len(golden)
    assert report.balanced and report.rows_used + report.golden_rows + report.rows_dropped == report.rows_in
    summary = report.summary()
    for words in ("empty text", "no label", "label not declared by the task: 'zzz' (1)", "conflicting labels"):
        assert words in summary, summary
    json.dumps(report.as_dict())  # metadata-ready
    assert report.trainable
    LocalModelStore(model_dir=str(tmp_path)).train(task, training)


def test_majority_label_wins_for_the_same_text():
    rows = _clean_rows({"a": 6, "b": 6, "c": 6}) + [
        (i, "the same complaint again", lab) for i, lab in zip(_train_ids("M-", 3), ["a", "a", "b"])
    ]
    training, _ = prepare_training_set(_task(), _rows(*rows))
    kept = training.rows[training.rows["text"] == "the same complaint again"]
    assert kept["label"].tolist() == ["a"]  # the majority label, once
    assert training.report.dropped_for(CONFLICT_MINORITY) == 1 and training.report.dropped_for(DUPLICATE) == 1


@pytest.mark.parametrize("merge_into", [None, "c"])
def test_a_label_with_a_single_row_is_dropped_or_merged(merge_into, tmp_path):
    rows = [r for r in _clean_rows({"a": 8, "b": 8, "c": 8, "d": 1}) if not is_golden(r[0], 0.2)]
    assert sum(r[2] == "d" for r in rows) == 1
    task = _task(labels=["a", "b", "c", "d"], rare_classes={"min_rows": 2, "merge_into": merge_into})
    training, _ = prepare_training_set(task, _rows(*rows))
    report = training.report
    if merge_into is None:
        assert "d" not in report.label_counts and report.dropped_for("rare label (fewer than 2 rows)") == 1
        assert "rare label (fewer than 2 rows): 'd' (1)" in report.summary()
    else:
        assert report.merged == {"d": 1} and report.label_counts["c"] == sum(r[2] in "cd" for r in rows)
        assert "merged 1 rows of rare labels into 'c': 'd' (1)" in report.summary()
    model = LocalModelStore(model_dir=str(tmp_path)).train(task, training)
    assert "d" not in model.labels


def test_a_raw_export_with_single_row_labels_from_training_data(tmp_path):
    rows = _clean_rows({"a": 9, "b": 9}) + [("S-1", "odd one out about gdpr privacy erase", "e")]
    task = _task(labels="from_training_data", training_data="x.csv", label_column="label", resolved=("a", "b", "e"))
    training, golden = prepare_training_set(task, _rows(*rows))
    assert training.report.trainable and set(training.report.label_counts) == {"a", "b"}
    assert "e" not in set(golden["label"])  # a golden row of a label the model cannot learn is left out
    LocalModelStore(model_dir=str(tmp_path)).train(task, training)


def test_rows_without_record_ids_get_stable_ids_from_their_content():
    rows = _rows(*_clean_rows({"a": 8, "b": 8, "c": 8})).drop(columns="record_id")
    t1, g1 = prepare_training_set(_task(), rows)
    t2, g2 = prepare_training_set(_task(), rows.iloc[::-1].reset_index(drop=True))
    assert t1.report.derived_ids == len(rows) and "content hash" in t1.report.summary()
    assert t1.data_hash == t2.data_hash and sorted(g1["record_id"]) == sorted(g2["record_id"])
    assert all(r.startswith("h-") for r in t1.rows["record_id"])


def test_golden_membership_depends_on_the_record_id_only():
    base = _clean_rows({"a": 30, "b": 30, "c": 30})
    _, g1 = prepare_training_set(_task(), _rows(*base))
    _, g2 = prepare_training_set(_task(), _rows(*(base + _clean_rows({"a": 40, "b": 40}, start=500))))
    assert set(g1["record_id"]) <= set(g2["record_id"])
    assert set(g1["record_id"]) == {r[0] for r in base if is_golden(r[0], 0.2)}
    training, _ = prepare_training_set(_task(), _rows(*base))
    assert not set(training.rows["record_id"]) & set(g1["record_id"])


def test_feedback_replaces_labels_and_never_touches_the_golden_set():
    base = _clean_rows({"a": 20, "b": 20, "c": 20})
    golden_id = next(r[0] for r in base if is_golden(r[0], 0.2))
    train_id = next(r[0] for r in base if not is_golden(r[0], 0.2) and r[2] == "a")
    feedback = pd.DataFrame([
        {"record_id": train_id, "text": "", "label": "c", "source": "relabel", "recorded_at": "2026-11-24T10:00:00"},
        {"record_id": train_id, "text": "", "label": "b", "source": "relabel", "recorded_at": "2026-11-23T10:00:00"},
        {"record_id": golden_id, "text": "x", "label": "b", "source": "relabel", "recorded_at": "2026-11-24T10:00:00"},
        {"record_id": "NEW-1", "text": "a brand new text", "label": "zzz", "source": "relabel",
         "recorded_at": "2026-11-24T10:00:00"},
    ])
    training, golden = prepare_training_set(_task(), _rows(*base), feedback)
    row = training.rows.set_index("record_id").loc[train_id]
    assert row["label"] == "c" and row["source"] == "feedback:relabel"  # the latest review wins
    assert row["text"] == dict((r[0], r[1]) for r in base)[train_id]  # text taken from the labelled row
    assert training.report.replaced_by_feedback == 1 and training.report.feedback_used == 1
    assert training.report.dropped_for(FEEDBACK_GOLDEN) == 1 and training.report.dropped_for(FEEDBACK_LABEL) == 1
    assert training.report.dropped_for("feedback superseded by a later review") == 1 and training.report.balanced
    assert golden.set_index("record_id").loc[golden_id, "label"] == dict((r[0], r[2]) for r in base)[golden_id]


def test_too_little_data_is_refused_with_the_report(tmp_path):
    rows = _rows(("1", "only one label here", "a"), ("2", "another with the same label", "a"),
                 ("3", "   ", "b"), ("4", "lonely b", "b"))
    training, _ = prepare_training_set(_task(), rows)
    assert not training.report.trainable and "at least two labels" in training.report.summary()
    with pytest.raises(TrainingError, match="cannot train"):
        LocalModelStore(model_dir=str(tmp_path)).train(_task(), training)


def test_missing_contract_columns_name_them():
    from resources.providers.local import TrainingDataError

    with pytest.raises(TrainingDataError, match=r"lack column\(s\) \['label'\]"):
        prepare_training_set(_task(), pd.DataFrame({"record_id": ["1"], "text": ["x"]}))


def test_side_features_are_read_alike_from_files_and_lookups():
    from resources.providers.local.values import feature_value

    assert feature_value("TRUE") == feature_value(True) == feature_value(np.bool_(True)) == "true"
    assert feature_value(float("nan")) == feature_value(None) == ""
    assert feature_value(3.0) == "3" and feature_value(" Pro ") == "pro"


def test_the_flagship_training_set_report(trained):
    _, _, sets = trained
    training, golden = sets["category"]
    report = training.report
    assert report.rows_in == len(fam.labelled()) and report.trainable
    assert report.balanced and report.rows_used + report.golden_rows + report.rows_dropped == report.rows_in
    assert set(report.label_counts) == set(fam.family().tasks["category"].labels)
    assert Path(fam.FAMILY_DIR).is_dir() and len(golden) == report.golden_rows
