"""The train -> register -> evaluate -> promote lifecycle, without Dagster.

Most tests use a small fake model store (its "models" answer from a table) so they say exactly
what a gate sees; the last ones train the real local classifier on the support_triage labelled file.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import pandas as pd
import pytest

from orchestration_assets.spec import PromotionSpec
from resources.evaluation import PromotionThresholds
from resources.providers.base import Document, Item, ModelProvider, TaskResult
from resources.providers.definition import TaskDefinition
from resources.providers.tasks import ClassifyTask, DraftRubric, DraftTask, Retrieval
from resources.registry import (
    ModelRegistry,
    RegistryError,
    ensure_champion,
    evaluate_candidates,
    promote_if_passed,
    train_and_register,
)
from resources.warehouse import Warehouse

FAMILY = "support_triage"
LABELS = ("billing", "refund", "shipping")
TERMS = {"billing": ["invoice", "charge"], "refund": ["refund"], "shipping": ["delivery", "tracking"]}


def classify_task(family: str = FAMILY, name: str = "category") -> TaskDefinition:
    return TaskDefinition(family=family, name=name, spec=ClassifyTask(type="classify", labels=list(LABELS)),
                          labels=LABELS, text_fields=("subject", "body"))


def draft_task(*, retrieval: bool = True, label_task: str = "category", min_score: float = 0.75,
               terms: dict | None = None, family: str = FAMILY) -> TaskDefinition:
    spec = DraftTask(
        type="draft", template="templates/reply.md.j2", uses=[label_task], min_chars=20, max_chars=400,
        retrieval=Retrieval(**{"from": "knowledge_base", "k": 2}) if retrieval else None,
        rubric=DraftRubric(label_task=label_task, terms=TERMS if terms is None else terms, min_score=min_score),
    )
    return TaskDefinition(family=family, name="reply", spec=spec)


# ---- fakes of the local package's API ---------------------------------------------------------


@dataclass
class FakeReport:
    data: dict

    def summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.data.items())

    def as_dict(self) -> dict:
        return dict(self.data)


@dataclass
class FakeTraining:
    rows: pd.DataFrame
    data_hash: str
    report: FakeReport = field(default_factory=lambda: FakeReport({"labelled": 4, "feedback": 1}))
    feature_columns: tuple = ()


def training(data_hash: str) -> FakeTraining:
    rows = pd.DataFrame({"record_id": ["a", "b", "c", "d", "e"], "text": list("abcde"),
                         "label": ["billing", "refund", "shipping", "billing", "refund"],
                         "source": ["labelled"] * 4 + ["feedback:relabel"]})
    return FakeTraining(rows=rows, data_hash=data_hash)


@dataclass
class FakeTrained:
    version: str
    params: dict
    labels: list
    metrics: dict
    model_id: str = "fake-linear"


class FakeProvider(ModelProvider):
    """Classify: the version's answer table; draft: a reply about the label it was given, citing a document."""

    name = "local"

    def __init__(self, answer: Callable[[Item], str | None], version: str, cost: float):
        self.answer, self.version, self.cost = answer, version, cost

    def supports(self, task) -> bool:
        return True

    def run(self, task, items: Sequence[Item]) -> list[TaskResult]:
        out = []
        for item in items:
            common = dict(record_id=item.id, task=task.name, provider="local", model_id="fake",
                          model_version=self.version, prompt_hash="p", cost_usd=self.cost, latency_ms=1.0)
            if task.type == "classify":
                label = self.answer(item)
                out.append(TaskResult(**common, output={"label": label, "confidence": 0.9} if label else None,
                                      error=None if label else "no answer"))
            else:
                label = item.fields.get("category") or "something"
                words = " ".join(TERMS.get(label, ["general"]))
                text = f"Hello, thanks for writing about your {label} question ({words}); see the article."
                cited = [item.documents[0].id] if item.documents else []
                out.append(TaskResult(**common, output={"text": text, "cited_ids": cited}))
        return out


class FakeStore:
    """A model store whose versions are named after the training data; answers are set per version."""

    def __init__(self, root: Path):
        self.root = root
        self.answers: dict[str, Callable[[Item], str | None]] = {}
        self.cost: dict[str, float] = {}
        self.trained: list[str] = []
        self.lock = threading.Lock()

    def version_for(self, task, training) -> str:
        return f"{task.name}-{training.data_hash}"

    def train(self, task, training) -> FakeTrained:
        version = self.version_for(task, training)
        with self.lock:
            self.trained.append(version)
        return FakeTrained(version=version, params={"C": 1.0}, labels=list(LABELS), metrics={"cv_macro_f1": 0.5})

    def path_for(self, version: str) -> Path:
        return self.root / version

    def provider(self, versions, label_rules=None) -> FakeProvider:
        (version,) = versions.values()
        return FakeProvider(self.answers.get(version, lambda item: item.fields.get("truth")), version,
                            self.cost.get(version, 0.0))


GOLDEN = pd.DataFrame({
    "record_id": [f"g{i}" for i in range(12)],
    "text": [f"text {i}" for i in range(12)],
    "label": [LABELS[i % 3] for i in range(12)],
})
GOLDEN["features"] = [{"truth": y} for y in GOLDEN["label"]]


def perfect(item: Item) -> str:
    return item.fields["truth"]


def always_billing(item: Item) -> str:
    return "billing"


DOCS = [Document(id="kb-1", title="Help", body="help text"), Document(id="kb-2", title="More", body="more")]


def reply_items(predicted: Sequence[str | None]) -> list[Item]:
    """What the lead's callback does: the draft items of the golden rows, given the predicted labels."""
    return [Item(id=r, text=t, fields={"category": p}, documents=DOCS)
            for r, t, p in zip(GOLDEN["record_id"], GOLDEN["text"], predicted)]


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry.for_warehouse(Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}"))


@pytest.fixture
def store(tmp_path) -> FakeStore:
    return FakeStore(tmp_path / "models")


THRESHOLDS = PromotionThresholds.from_spec(PromotionSpec())


# ---- train -> register ------------------------------------------------------------------------


def test_training_registers_a_challenger_once_per_data_and_params(registry, store):
    task = classify_task()
    first = train_and_register(registry, store, task, training("d1"), actor="user:ana")
    assert first.created and first.alias == "challenger" and first.version == "category-d1"
    assert (first.training_rows, first.feedback_rows) == (5, 1)
    info = registry.get(FAMILY, "category", first.version)
    assert info.training_report == {"labelled": 4, "feedback": 1} and info.training_data_hash == "d1"
    assert info.artifact.endswith("category-d1") and info.metrics["classifier"] == {"cv_macro_f1": 0.5}

    registry.promote(FAMILY, "category", first.version, actor="t", reason="first")
    history_rows = len(registry.history())
    again = train_and_register(registry, store, task, training("d1"), actor="user:bob")
    assert not again.created and again.alias == "champion" and "unchanged" in again.reason
    assert len(registry.history()) == history_rows  # no alias moved
    assert registry.champion(FAMILY, "category").version == first.version


def test_bootstrap_trains_and_promotes_once_under_concurrency(tmp_path, store):
    url = f"sqlite:///{tmp_path / 'boot.db'}"
    task = classify_task()
    calls: list[int] = []
    barrier = threading.Barrier(4)
    champions: list[str] = []

    def training_fn():
        calls.append(1)
        return training("d1"), GOLDEN  # prepare_training_set's pair is accepted too

    def bootstrap() -> None:
        reg = ModelRegistry.for_warehouse(Warehouse(url=url))
        barrier.wait()
        champions.append(ensure_champion(reg, store, task, training_fn, actor="dagster:run").version)

    threads = [threading.Thread(target=bootstrap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reg = ModelRegistry.for_warehouse(Warehouse(url=url))
    assert champions == ["category-d1"] * 4
    assert reg.history(FAMILY, "category").query("alias == 'champion'")["to_version"].tolist() == ["category-d1"]
    n_calls = len(calls)
    assert ensure_champion(reg, store, task, training_fn, actor="t").version == "category-d1"
    assert len(calls) == n_calls  # an existing champion needs no training


# ---- evaluate -> promote ----------------------------------------------------------------------


def _champion_and_challenger(registry, store, champion_answer, challenger_answer, *, family: str = FAMILY) -> None:
    task = classify_task(family)
    champ = train_and_register(registry, store, task, training("old"), alias=None, actor="t")
    registry.promote(family, "category", champ.version, actor="t", reason="first")
    chal = train_and_register(registry, store, task, training("new"), actor="t")
    store.answers[champ.version], store.answers[chal.version] = champion_answer, challenger_answer


def test_a_better_challenger_is_promoted_with_its_evaluation(registry, store):
    _champion_and_challenger(registry, store, always_billing, perfect)
    task = classify_task()
    record, scores = evaluate_candidates(registry, store, task, GOLDEN, THRESHOLDS, actor="dagster:run:1",
                                         run_id="run-1", drafts=[(draft_task(), reply_items)])
    assert record.passed and record.golden_rows == 12 and record.run_id == "run-1"
    assert scores["challenger"].macro_f1 == 1.0 and scores["champion"].accuracy == pytest.approx(1 / 3, abs=1e-3)
    assert scores["challenger"].drafts["reply"]["score"] == 1.0
    assert scores["champion"].drafts["reply"]["breakdown"]["addresses_label"] == pytest.approx(1 / 3, abs=1e-3)
    assert record.metrics["category-new"]["rubric_score"] == 1.0 and "predictions" not in record.metrics["category-new"]

    decision = promote_if_passed(registry, record, THRESHOLDS, actor="dagster:run:1")
    assert decision.promoted and (decision.champion, decision.previous) == ("category-new", "category-old")
    assert registry.champion(FAMILY, "category").version == "category-new"
    promo = registry.history(FAMILY, "category").query("alias == 'champion'").iloc[-1]
    assert promo["evaluation_id"] == record.evaluation_id and promo["reason"].startswith("passed promotion gates")
    assert registry.get(FAMILY, "category", "category-new").metrics["macro_f1"] == 1.0
    again = promote_if_passed(registry, record, THRESHOLDS, actor="t")
    assert not again.promoted and again.reason == "category-new is already the champion"


def test_a_deliberately_worse_challenger_is_refused(registry, store):
    _champion_and_challenger(registry, store, perfect, always_billing)
    task = classify_task()
    # its drafts address the wrong label for two rows in three: (4 + 8 * 3/4) / 12 = 0.833 < 0.9
    record, _ = evaluate_candidates(registry, store, task, GOLDEN, THRESHOLDS, actor="t",
                                    drafts=[(draft_task(min_score=0.9), reply_items)])
    failed = {g["name"] for g in record.gates if not g["passed"]}
    assert not record.passed
    assert failed == {"macro_f1_not_worse_than_champion", "no_class_recall_collapse", "draft_rubric_at_threshold"}
    decision = promote_if_passed(registry, record, THRESHOLDS, actor="t")
    assert not decision.promoted and decision.champion == "category-old"
    assert decision.reason.startswith("gates refused category-new: macro_f1_not_worse_than_champion: challenger")
    assert "below the champion's 1.000" in decision.reason
    assert registry.champion(FAMILY, "category").version == "category-old"


def test_promotion_rechecks_the_gates_and_the_champion(registry, store):
    _champion_and_challenger(registry, store, always_billing, perfect)
    task = classify_task()
    store.cost["category-new"] = 0.005
    record, _ = evaluate_candidates(registry, store, task, GOLDEN, THRESHOLDS, actor="t")
    assert record.passed
    stricter = PromotionThresholds.from_spec(PromotionSpec(max_cost_per_item_usd=0.001))
    refused = promote_if_passed(registry, record, stricter, actor="t")
    assert not refused.promoted and "cost_per_item_within_budget" in refused.reason

    # another change of champion since the evaluation: the compare-and-set refuses
    registry.register(family=FAMILY, task="category", version="hotfix", provider="local", model_id="m", created_by="t")
    registry.promote(FAMILY, "category", "hotfix", actor="user:oncall", reason="manual hotfix")
    stale = promote_if_passed(registry, record, THRESHOLDS, actor="t")
    assert not stale.promoted and stale.champion == "hotfix" and "re-evaluate" in stale.reason


def test_failed_answers_count_as_wrong_and_drafts_of_other_tasks_are_ignored(registry, store):
    _champion_and_challenger(registry, store, perfect, lambda item: None if item.id < "g5" else perfect(item))
    task = classify_task()
    other = draft_task(label_task="priority")
    record, scores = evaluate_candidates(registry, store, task, GOLDEN, THRESHOLDS, actor="t",
                                         drafts=[(other, reply_items)])
    assert scores["challenger"].errors > 0 and scores["challenger"].accuracy < 1.0
    assert scores["challenger"].drafts == {} and scores["challenger"].rubric_score is None
    gate = next(g for g in record.gates if g["name"] == "draft_rubric_at_threshold")
    assert gate["passed"] and gate["reason"].startswith("no draft task uses this label")


def test_evaluation_of_one_family_leaves_the_other_alone(registry, store):
    _champion_and_challenger(registry, store, always_billing, perfect)
    other = "it_service_desk"
    registry.register(family=other, task="category", version="category-old", provider="local", model_id="m",
                      created_by="t")
    registry.promote(other, "category", "category-old", actor="t", reason="first")
    record, _ = evaluate_candidates(registry, store, classify_task(), GOLDEN, THRESHOLDS, actor="t")
    assert promote_if_passed(registry, record, THRESHOLDS, actor="t").promoted
    assert registry.champion(other, "category").version == "category-old"
    assert registry.latest_evaluation(other, "category") is None
    with pytest.raises(RegistryError, match="no it_service_desk.priority model is registered"):
        evaluate_candidates(registry, store, classify_task(other, "priority"), GOLDEN, THRESHOLDS, actor="t")
    with pytest.raises(RegistryError, match="golden set of support_triage.category is empty"):
        evaluate_candidates(registry, store, classify_task(), GOLDEN.iloc[:0], THRESHOLDS, actor="t")


# ---- a real family: the local classifier trained on the support_triage labelled file ------------

FAMILY_DIR = Path(__file__).resolve().parent.parent / "orchestration_assets" / "defs" / "support_triage"


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> SimpleNamespace:
    """The family, its golden set, three training sets (weak, good, shuffled labels) and one model store.

    Small slices of the labelled file keep training under a second or two; the champion-challenger
    gap is large enough that the outcome does not depend on the exact rows.
    """
    pytest.importorskip("sklearn")
    training_mod = pytest.importorskip("resources.providers.local.training")
    store_mod = pytest.importorskip("resources.providers.local.store")
    from orchestration_assets.family import Family

    family = Family.load(FAMILY_DIR)
    task = family.tasks["category"]
    raw = pd.read_csv(FAMILY_DIR / "data" / "labelled_tickets.csv", dtype=str, keep_default_na=False)
    labelled = pd.DataFrame({"record_id": raw["ticket_id"], "text": raw["subject"] + "\n" + raw["body"],
                             "label": raw["category"]})
    _, golden = training_mod.prepare_training_set(task, labelled)
    pool = labelled[~labelled["record_id"].isin(set(golden["record_id"]))]
    good_rows = pool.groupby("label").head(120)
    shuffled = good_rows.assign(label=good_rows["label"].sample(frac=1.0, random_state=7).to_numpy())

    def training_set(rows: pd.DataFrame):
        return training_mod.prepare_training_set(task, rows)[0]

    return SimpleNamespace(
        family=family, task=task, golden=golden, store=store_mod.LocalModelStore(model_dir=str(
            tmp_path_factory.mktemp("models"))),
        weak=training_set(pool.groupby("label").head(12)), good=training_set(good_rows), bad=training_set(shuffled),
        reply=family.tasks["reply"], articles=pd.read_json(FAMILY_DIR / "data" / "knowledge_base.jsonl", lines=True),
    )


def reply_source(real: SimpleNamespace):
    """The draft items of the golden rows: the predicted label and the articles filed under it."""
    docs = [Document(id=a.article_id, title=a.title, body=a.body, url=a.url, group=a.category)
            for a in real.articles.itertuples()]

    def items_for(predicted: Sequence[str | None]) -> list[Item]:
        return [Item(id=r, text="", fields={"category": p}, documents=[d for d in docs if d.group == p][:3])
                for r, p in zip(real.golden["record_id"], predicted)]

    return real.reply, items_for


def test_real_family_bootstrap_then_a_better_challenger_is_promoted(registry, real):
    thresholds = PromotionThresholds.from_spec(real.family.spec.promotion)
    champ = ensure_champion(registry, real.store, real.task, lambda: real.weak, actor="dagster:run:boot")
    assert champ.alias == "champion" and champ.training_rows == len(real.weak.rows)
    assert champ.training_report["rows_used"] == len(real.weak.rows) and champ.model_id == "local-tfidf-linear"
    outcome = train_and_register(registry, real.store, real.task, real.good, actor="dagster:run:1")
    assert outcome.created and outcome.alias == "challenger" and outcome.report["golden_rows"] == 0

    record, scores = evaluate_candidates(registry, real.store, real.task, real.golden, thresholds,
                                         actor="dagster:run:1", drafts=[reply_source(real)],
                                         label_rules=real.family.label_rules)
    assert record.passed, record.gates
    assert record.golden_rows == len(real.golden) > 400
    assert scores["challenger"].macro_f1 > scores["champion"].macro_f1 + 0.05
    reply = scores["challenger"].drafts["reply"]
    assert reply["score"] >= 0.9 and set(reply["breakdown"]) == {"cites_document", "no_pii", "addresses_label",
                                                                  "length_ok"}
    decision = promote_if_passed(registry, record, thresholds, actor="dagster:run:1")
    assert decision.promoted and registry.champion(FAMILY, "category").version == outcome.version
    assert train_and_register(registry, real.store, real.task, real.good, actor="t").created is False


def test_real_family_shuffled_label_challenger_is_refused(registry, real):
    thresholds = PromotionThresholds.from_spec(real.family.spec.promotion)
    good = train_and_register(registry, real.store, real.task, real.good, alias=None, actor="t")
    registry.promote(FAMILY, "category", good.version, actor="t", reason="good model as champion")
    train_and_register(registry, real.store, real.task, real.bad, actor="t")

    record, scores = evaluate_candidates(registry, real.store, real.task, real.golden, thresholds, actor="t",
                                         drafts=[reply_source(real)])
    gates = {g["name"]: g for g in record.gates}
    assert not record.passed and scores["challenger"].macro_f1 < 0.5
    assert not gates["macro_f1_not_worse_than_champion"]["passed"]
    assert "below the champion's" in gates["macro_f1_not_worse_than_champion"]["reason"]
    assert not gates["no_class_recall_collapse"]["passed"]
    assert gates["cost_per_item_within_budget"]["passed"]
    decision = promote_if_passed(registry, record, thresholds, actor="t")
    assert not decision.promoted and registry.champion(FAMILY, "category").version == good.version
