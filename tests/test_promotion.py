"""Gated promotion end to end: train, evaluate on the golden set, promote (or refuse), roll back, enrich.

Models are trained once per session into the shared model folder: the default model ("full"), a
weak one (a dozen tickets per class) and a deliberately bad one (labels shuffled).
"""

import threading

import dagster as dg
import pandas as pd
import pytest

from checks.promotion import promotion_checks
from orchestration_assets.models import champion_model, model_evaluation, model_registry, triage_classifier
from resources.evaluation import (
    PromotionThresholds,
    classification_metrics,
    data_hash,
    draft_rubric,
    promotion_gates,
    split_golden,
    training_frame,
)
from resources.providers.local import LocalModelStore
from resources.registry import (
    ModelRegistry,
    ModelRegistryResource,
    evaluate_candidates,
    load_labelled,
    promote_if_passed,
)
from tests.conftest import build_test_resources, materialization_metadata, small_batch

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="session")
def trained(model_dir) -> dict[str, str]:
    store = LocalModelStore(model_dir=str(model_dir))
    rows = training_frame(load_labelled())
    shuffled = rows.assign(label=rows["label"].sample(frac=1.0, random_state=7).to_numpy())
    return {
        "full": store.train(rows).version,  # what the default bootstrap trains, too
        "weak": store.train(rows.groupby("label").head(12)).version,
        "bad": store.train(shuffled).version,
    }


@pytest.fixture
def resources(data_dir, model_dir) -> dict:
    res = build_test_resources(data_dir, model_dir)
    res["registry"] = ModelRegistryResource(warehouse=res["warehouse"])
    return res


def _registry(resources) -> ModelRegistry:
    return resources["registry"].get()


def _register(reg: ModelRegistry, version: str, label: str) -> None:
    reg.register(task="classify", version=version, provider="local", model_id="local-tfidf-linear",
                 created_by="test", description=label)


def _setup(reg: ModelRegistry, trained: dict, champion: str, challenger: str) -> None:
    _register(reg, trained[champion], champion)
    reg.promote("classify", trained[champion], actor="user:setup", reason=f"{champion} model as champion")
    _register(reg, trained[challenger], challenger)
    reg.set_alias("classify", trained[challenger], "challenger", actor="user:setup", reason="candidate")


PROMOTION_ASSETS = [model_evaluation, champion_model, model_registry, *promotion_checks]


def test_better_challenger_is_promoted_then_rolled_back(resources, trained, instance):
    reg = _registry(resources)
    _setup(reg, trained, champion="weak", challenger="full")

    result = dg.materialize(PROMOTION_ASSETS, resources=resources, instance=instance)
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {name: True for name in checks} and len(checks) == 4
    meta = materialization_metadata(result)
    assert meta["model_evaluation"]["challenger_macro_f1"] > meta["model_evaluation"]["champion_macro_f1"]
    assert meta["champion_model"]["promoted"] is True
    assert reg.champion("classify").version == trained["full"]
    assert reg.get("classify", trained["weak"]).alias == "retired"

    # who, when, why and with which evaluation
    promo = reg.history("classify").query("alias == 'champion'").iloc[-1]
    assert promo["from_version"] == trained["weak"] and promo["to_version"] == trained["full"]
    assert promo["evaluation_id"] == meta["model_evaluation"]["evaluation_id"]
    assert promo["reason"].startswith("passed promotion gates") and promo["actor"].startswith("dagster:run:")
    snapshot = resources["warehouse"].read_table("model_registry")
    assert snapshot.set_index("version").loc[trained["full"], "alias"] == "champion"

    # rollback restores the previous champion; the promotion stays in the history
    old, new = reg.rollback("classify", actor="user:oncall", reason="complaints after the release")
    assert (old, new) == (trained["full"], trained["weak"])
    assert reg.champion("classify").version == trained["weak"]
    champ_rows = reg.history("classify").query("alias == 'champion'")
    assert champ_rows["to_version"].tolist() == [trained["weak"], trained["full"], trained["weak"]]
    assert champ_rows.iloc[1]["evaluation_id"] == promo["evaluation_id"]


def test_shuffled_label_challenger_is_refused_with_a_readable_reason(resources, trained, instance):
    reg = _registry(resources)
    _setup(reg, trained, champion="full", challenger="bad")

    result = dg.materialize(PROMOTION_ASSETS, resources=resources, instance=instance, raise_on_error=False)
    evals = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert evals["macro_f1_not_worse_than_champion"].passed is False
    assert evals["no_class_recall_collapse"].passed is False
    assert evals["cost_per_ticket_within_budget"].passed is True
    reason = evals["macro_f1_not_worse_than_champion"].metadata["reason"].value
    assert "below the champion's" in reason and "tolerance" in reason
    assert "recall" in evals["no_class_recall_collapse"].metadata["reason"].value
    # the blocking checks stopped the promotion: champion_model did not run, the champion is unchanged
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "model_evaluation" in materialized and "champion_model" not in materialized
    assert reg.champion("classify").version == trained["full"]
    assert reg.challenger("classify").version == trained["bad"]

    # champion_model run on its own re-checks the gates, so it cannot bypass them either
    alone = dg.materialize([model_evaluation, champion_model], resources=resources, instance=instance,
                           selection=[champion_model])
    assert alone.success
    decision = materialization_metadata(alone)["champion_model"]
    assert decision["promoted"] is False and "gate refused" in decision["reason"]
    assert reg.champion("classify").version == trained["full"]


def test_triage_classifier_registers_a_challenger_only_when_data_changes(resources, trained, instance):
    first = dg.materialize([triage_classifier], resources=resources, instance=instance)
    meta = materialization_metadata(first)["triage_classifier"]
    assert meta["new_challenger"] is True and meta["version"] == trained["full"]
    reg = _registry(resources)
    assert reg.challenger("classify").version == trained["full"]
    assert reg.get("classify", trained["full"]).training_rows == meta["training_rows"]

    again = materialization_metadata(dg.materialize([triage_classifier], resources=resources, instance=instance))
    assert again["triage_classifier"]["new_challenger"] is False
    assert "unchanged" in again["triage_classifier"]["reason"]
    assert len(reg.versions("classify")) == 1


def test_reviewed_feedback_changes_the_training_data_but_never_the_golden_set():
    labelled = load_labelled()
    train, golden = split_golden(labelled)
    assert set(train["ticket_id"]).isdisjoint(golden["ticket_id"]) and len(train) + len(golden) == len(labelled)
    assert 0.15 < len(golden) / len(labelled) < 0.25
    base = training_frame(labelled)
    g = golden.iloc[0]
    t = train.iloc[0]
    feedback = pd.DataFrame([
        {"ticket_id": t["ticket_id"], "subject": t["subject"], "body": t["body"], "label": "refund",
         "source": "review", "recorded_at": "2026-11-26T10:00:00+00:00"},
        {"ticket_id": g["ticket_id"], "subject": g["subject"], "body": g["body"], "label": "refund",
         "source": "review", "recorded_at": "2026-11-26T10:00:00+00:00"},
        {"ticket_id": "T-NEW-1", "subject": "Card charged twice", "body": "I was billed two times.",
         "label": "billing", "source": "review", "recorded_at": "2026-11-26T11:00:00+00:00"},
    ])
    with_fb = training_frame(labelled, feedback)
    assert g["ticket_id"] not in set(with_fb["ticket_id"])  # golden tickets never reach training
    assert with_fb.set_index("ticket_id").loc[t["ticket_id"], "label"] == "refund"  # the reviewed label wins
    assert len(with_fb) == len(base) + 1
    assert data_hash(with_fb["text"], with_fb["label"]) != data_hash(base["text"], base["label"])


def test_metrics_and_rubric_are_what_a_reviewer_would_compute():
    m = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", None])
    assert m["accuracy"] == 0.5 and m["per_class_recall"] == {"a": 0.5, "b": 0.5}
    assert m["macro_f1"] == pytest.approx(0.5833, abs=1e-4)  # F1(a)=2/3, F1(b)=1/2

    draft = ("Hello, thank you for contacting us about your refund. Our refund policy article KB-013 explains "
             "how long it takes.")
    ok = draft_rubric(draft, ["KB-013"], ["KB-013", "KB-014"], "refund")
    assert ok == {"cites_article": True, "no_pii": True, "addresses_category": True, "length_ok": True}
    leaky = draft_rubric(draft + " Write to jane.doe@example.com.", ["KB-999"], ["KB-013"], "shipping")
    assert leaky["no_pii"] is False and leaky["addresses_category"] is False
    assert leaky["cites_article"] is True  # KB-013 is named in the text although the cited id is not retrieved
    assert draft_rubric("Thanks.", [], ["KB-1"], "refund")["length_ok"] is False


def test_gates_explain_every_refusal():
    champion = {"macro_f1": 0.9, "per_class_recall": {"a": 0.9, "b": 0.9}}
    challenger = {"macro_f1": 0.85, "per_class_recall": {"a": 0.95, "b": 0.6}, "rubric_score": 0.5,
                  "rubric_breakdown": {"cites_article": 0.2, "no_pii": 1.0}, "cost_per_ticket_usd": 0.05}
    gates = {g.name: g for g in promotion_gates(challenger, champion, PromotionThresholds())}
    assert not any(g.passed for g in gates.values())
    assert gates["macro_f1_not_worse_than_champion"].reason.startswith("challenger macro-F1 0.850 is 0.050 below")
    assert "b recall 0.60 fell 0.30" in gates["no_class_recall_collapse"].reason
    assert "weakest criterion: cites_article" in gates["draft_rubric_at_threshold"].reason
    assert "exceeds the budget" in gates["cost_per_ticket_within_budget"].reason
    relaxed = PromotionThresholds(macro_f1_tolerance=0.1, max_class_recall_drop=0.5, min_rubric_score=0.4,
                                  max_cost_per_ticket_usd=0.1)
    assert all(g.passed for g in promotion_gates(challenger, champion, relaxed))


def test_parallel_gated_promotions_leave_one_champion(resources, trained, model_dir):
    """Two evaluations of two challengers against the same champion; both try to promote at once."""
    reg = _registry(resources)
    store = LocalModelStore(model_dir=str(model_dir))
    _register(reg, trained["weak"], "weak")
    reg.promote("classify", trained["weak"], actor="t", reason="start")
    records = []
    for name in ("full", "bad"):
        _register(reg, trained[name], name)
        reg.set_alias("classify", trained[name], "challenger", actor="t", reason="candidate")
        rec, _ = evaluate_candidates(reg, store, load_labelled(), None, PromotionThresholds(min_rubric_score=0.0,
                                     macro_f1_tolerance=1.0, min_class_recall=0.0, max_class_recall_drop=1.0),
                                     actor="t")
        records.append(rec)
    lax = PromotionThresholds(min_rubric_score=0.0, macro_f1_tolerance=1.0, min_class_recall=0.0,
                              max_class_recall_drop=1.0)
    barrier = threading.Barrier(2)
    decisions = []

    def go(rec):
        barrier.wait()
        decisions.append(promote_if_passed(ModelRegistry(resources["warehouse"].engine), rec, lax, actor="t"))

    threads = [threading.Thread(target=go, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(d.promoted for d in decisions) == [False, True]
    loser = next(d for d in decisions if not d.promoted)
    assert "decided against" in loser.reason or "another promotion" in loser.reason
    winner = next(d for d in decisions if d.promoted)
    assert reg.champion("classify").version == winner.champion
    assert (reg.snapshot()["alias"] == "champion").sum() == 1


def test_new_challenger_sensor_requests_one_evaluation(resources, trained, instance):
    from sensors.registry import new_challenger_sensor

    reg = _registry(resources)
    res = {"registry": resources["registry"]}
    with dg.build_sensor_context(instance=instance, resources=res) as ctx:
        assert isinstance(new_challenger_sensor(ctx), dg.SkipReason)

    _register(reg, trained["full"], "full")
    reg.set_alias("classify", trained["full"], "challenger", actor="t", reason="candidate")
    with dg.build_sensor_context(instance=instance, resources=res) as ctx:
        result = new_challenger_sensor(ctx)
    assert [r.run_key for r in result.run_requests] == [f"evaluate:classify:{trained['full']}"]

    with dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=res) as ctx:
        assert isinstance(new_challenger_sensor(ctx), dg.SkipReason)


ENRICH_KEYS = ("batch-a.csv", "batch-b.jsonl")


def test_enriched_rows_carry_the_champion_version_across_a_promotion(resources, trained, data_dir, instance):
    from orchestration_assets.definitions import build_definitions
    from orchestration_assets.ingestion import ticket_batches

    small_batch(data_dir / "inbox", ENRICH_KEYS[0], n=25)
    small_batch(data_dir / "inbox", ENRICH_KEYS[1], n=25, source="batch-2026-11-24.jsonl")
    instance.add_dynamic_partitions(ticket_batches.name, list(ENRICH_KEYS))
    # ingest + enrich + per-version KPIs (routing and review are other tests' business)
    enrich_job = dg.define_asset_job(
        "enrich_and_measure",
        selection=dg.AssetSelection.groups("ingestion", "enrichment") | dg.AssetSelection.assets("kpi_by_model_version"),
        partitions_def=ticket_batches,
    )
    defs = dg.Definitions.merge(build_definitions(resources), dg.Definitions(jobs=[enrich_job]))
    job = defs.resolve_job_def("enrich_and_measure")
    wh = resources["warehouse"]
    reg = _registry(resources)

    # no champion yet: enrichment bootstraps the default model and records who/why
    assert job.execute_in_process(partition_key=ENRICH_KEYS[0], instance=instance).success
    boot = reg.champion("classify")
    assert boot is not None and boot.version == trained["full"]
    assert reg.history("classify").iloc[0]["reason"].startswith("bootstrap")
    first = wh.read_table("enriched_tickets", partitions=[ENRICH_KEYS[0]])
    assert set(first["model_version"]) == {boot.version} == set(first["classify_model_version"])

    _register(reg, trained["weak"], "weak")
    reg.promote("classify", trained["weak"], actor="user:test", reason="switch for the test")
    assert job.execute_in_process(partition_key=ENRICH_KEYS[1], instance=instance).success
    second = wh.read_table("enriched_tickets", partitions=[ENRICH_KEYS[1]])
    assert set(second["model_version"]) == {trained["weak"]}
    again_first = wh.read_table("enriched_tickets", partitions=[ENRICH_KEYS[0]])
    assert set(again_first["model_version"]) == {boot.version}  # old rows keep the version that made them

    kpi = wh.read_table("kpi_by_model_version").set_index("model_version")
    assert set(kpi.index) == {boot.version, trained["weak"]}
    assert kpi.loc[boot.version, "tickets"] == len(first) and kpi.loc[trained["weak"], "tickets"] == len(second)
    assert kpi["quality_source"].eq("label_category").all()
    assert kpi.loc[trained["weak"], "promoted_at"] is not None


def test_llm_judge_scores_drafts_when_an_llm_is_configured(trained, model_dir):
    """A real OpenAI-compatible server as judge: it grades drafts that cite an article 5/5, others 2/5."""
    from resources.evaluation import evaluate_provider
    from resources.providers.openai import OpenAIProvider
    from resources.routing_config import EndpointConfig, ModelConfig
    from tests.openai_server import OpenAICompatServer

    class JudgeServer(OpenAICompatServer):
        def answer_content(self, rec):
            if rec.task == "judge_draft":
                cites = bool(rec.user_payload.get("articles")) and "help.example.com" in rec.user_payload["draft"]
                return {"score": 5 if cites else 2, "reason": "grounded" if cites else "no article"}
            return super().answer_content(rec)

    golden = split_golden(load_labelled())[1].head(6)
    provider = LocalModelStore(model_dir=str(model_dir)).provider(trained["full"])
    with JudgeServer() as server:
        judge = OpenAIProvider(ModelConfig(endpoint="judge", model="judge-model"),
                               EndpointConfig(base_url=server.url, api_key_required=False), api_key=None)
        with_kb = evaluate_provider(provider, golden, retrieved=[[_article()] for _ in range(len(golden))],
                                    judge=judge)
        without_kb = evaluate_provider(provider, golden, retrieved=None, judge=judge)
        judged = [r for r in server.chat_requests if r.task == "judge_draft"]
    assert with_kb.llm_judge_score == 1.0 and without_kb.llm_judge_score == 0.25
    assert len(judged) == 2 * len(golden)
    assert all("@" not in r.user_payload["ticket"] for r in judged)  # ticket text is redacted for the judge
    assert without_kb.rubric_breakdown["cites_article"] == 0.0 and with_kb.rubric_breakdown["cites_article"] == 1.0


def _article():
    from resources.providers.base import KBArticle

    return KBArticle(article_id="KB-013", title="Refund policy", body="Refunds are paid within 5 days.",
                     category="refund", url="https://help.example.com/articles/refund/refund-policy")
