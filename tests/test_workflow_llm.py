"""support_triage with an LLM switched on: the real ``openai`` SDK against a real local OpenAI-compatible server.

The user's two edits, on temp copies: the family's ``routing:`` cascades ``category`` to the test
model when the local classifier is unsure and sends ``reply`` to it (falling back to local); the
deployment's model catalog (a ``MODELS_CONFIG`` file) defines the endpoint and the model; the key is
given to ``ModelRouter(api_key=...)``. Then what that user would check: only unsure records reached
the LLM for category, replies came from it, no PII left, cost is accounted, an unchanged batch costs
no second call, and the key is nowhere but in the request's header.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
import pytest
import yaml

from orchestration_assets.family import Family
from orchestration_assets.loading import family_definitions
from resources.redaction import find_pii
from resources.router.ledger import ledger_spend
from resources.router.resource import ModelRouter
from tests.conformance.guarantees import no_secret
from tests.openai_answers import SchemaAnswer
from tests.openai_server import OpenAICompatServer
from tests.workflow import DEFS, IN_PROCESS, check_results, copy_batch, inbox_of, materialization_metadata, \
    run_workflow, sample_files, temp_resources

pytestmark = pytest.mark.filterwarnings("ignore")

ST = "support_triage"
SECRET = "sk-test-WORKFLOW-LLM-9b1d4e7a2c"
BATCH = "batch-llm.csv"
ROWS = 60
CASCADE_BELOW = 0.75
ROUTING = {
    "category": {"provider": "local", "escalate_below_confidence": CASCADE_BELOW, "escalate_to": ["small"]},
    "reply": {"provider": "small", "fallbacks": ["local"]},
}


def catalog(url: str) -> dict:
    """A deployment's model catalog (what MODELS_CONFIG points at): one endpoint, one model."""
    return {
        "endpoints": {"testllm": {"base_url": url, "timeout_s": 5.0, "max_attempts": 2,
                                  "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter_s": 0.01}}},
        "models": {"small": {"endpoint": "testllm", "model": "test-small", "params": {"temperature": 0, "max_tokens": 300},
                             "price": {"input_per_1m": 0.15, "output_per_1m": 0.60}}},
        "cache": {"enabled": True, "table": "llm_cache"},
    }


def true_categories(family: Family) -> dict[str, str]:
    """record id -> its known category, from the labelled file (golden rows) and the sample batch."""
    frames = [pd.read_csv(family.path("data/labelled_tickets.csv"), dtype=str), pd.read_csv(sample_files(family)[0], dtype=str, on_bad_lines="skip")]
    return {rid: cat for df in frames for rid, cat in zip(df["ticket_id"], df["category"])}


def knows_category(rec, schema: dict, truth: dict[str, str], settings) -> dict | None:
    if rec.task != "category" or rec.record_id not in truth:
        return None
    out = SchemaAnswer(rec, settings).build(schema)
    out["label"] = truth[rec.record_id]
    return out


@dataclass
class LlmRuns:
    family: Family
    server: OpenAICompatServer
    resources: dict
    instance: object
    results: list = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # chat requests after each run
    enriched: pd.DataFrame | None = None  # after the first run
    category: pd.DataFrame | None = None

    @property
    def warehouse(self):
        return self.resources["warehouse"]

    def requests(self, task: str):
        """Live traffic's requests for a task: those of the batch's records (the LLM evaluation's are of golden rows)."""
        batch = set(self.enriched["record_id"])
        return [r for r in self.server.chat_requests if r.task == task and r.record_id in batch]

    def live_calls(self) -> int:
        batch = set(self.enriched["record_id"])
        return sum(r.record_id in batch for r in self.server.chat_requests)


@pytest.fixture(scope="module")
def llm(tmp_path_factory, model_dir):
    root = tmp_path_factory.mktemp("llm")
    folder = root / "defs" / ST
    shutil.copytree(DEFS / ST, folder)
    doc = yaml.safe_load((folder / "defs.yaml").read_text(encoding="utf-8"))
    doc["attributes"]["routing"] = ROUTING
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    family = Family.load(folder, known_models={"small"})
    truth = true_categories(family)
    with OpenAICompatServer() as server, dg.instance_for_test() as instance:
        # the model knows each record's category: its cascade configuration passes the LLM gates and goes live
        server.settings.answers = lambda rec, schema: knows_category(rec, schema, truth, server.settings)
        models = root / "models.yaml"
        models.write_text(yaml.safe_dump(catalog(server.url)), encoding="utf-8")
        router = ModelRouter(config_path=str(models), api_key=SECRET)
        resources = temp_resources(root / "run", model_dir, router=router)
        copy_batch(sample_files(family)[0], inbox_of(family, resources), n=ROWS, name=BATCH)
        defs = family_definitions([family], resources)
        runs = LlmRuns(family, server, resources, instance)
        runs.results.append(run_workflow(defs, family, instance, BATCH))
        runs.calls.append(server.call_count)
        runs.enriched = runs.warehouse.read_table(family.table("enriched_records"), partitions=[BATCH])
        runs.category = runs.warehouse.read_table(family.table("category"), partitions=[BATCH])
        # the same batch again: its LLM tasks and the join re-materialized ("Materialize selected")
        again = [dg.AssetKey(family.key(a)) for a in ("category", "reply", "enriched_records")]
        runs.results.append(defs.resolve_job_def(family.job_name("workflow")).execute_in_process(
            partition_key=BATCH, asset_selection=again, instance=instance, run_config=IN_PROCESS))
        runs.calls.append(server.call_count)
        assert all(r.success for r in runs.results)
        yield runs


def test_only_records_the_local_classifier_was_unsure_of_reached_the_llm_for_category(llm):
    ok = llm.enriched[llm.enriched["status"] == "enriched"]
    assert len(ok) == ROWS
    asked = {r.record_id for r in llm.requests("category")}
    cascaded = set(ok.loc[ok["category_path"] == "cascade:llm", "record_id"])
    assert asked == cascaded and 0 < len(cascaded) < ROWS
    assert len(llm.requests("category")) == len(cascaded)  # one call each: no retries, no duplicates
    kept = llm.category[llm.category["category_path"] == "cascade:local"]
    assert len(kept) == ROWS - len(cascaded) and (kept["category_confidence"] >= CASCADE_BELOW).all()
    assert llm.category.loc[llm.category["category_path"] == "cascade:llm", "category_provider"].ne("local").all()
    for task in ("priority", "sentiment", "summary", "compliance", "refund"):  # not routed: local, no call
        assert ok[f"{task}_path"].eq("local").all() and not llm.requests(task)


def test_every_reply_came_from_the_llm_grounded_in_the_documents_it_was_given(llm):
    ok = llm.enriched[llm.enriched["status"] == "enriched"]
    assert ok["reply_path"].eq("llm").all()
    assert {r.record_id for r in llm.requests("reply")} == set(ok["record_id"]) and len(llm.requests("reply")) == ROWS
    for rid, text in zip(ok["record_id"], ok["reply"]):
        assert text.startswith(f"Hello, thank you for your message about {rid}.")
    given = {r.record_id: [d["id"] for d in r.user_payload["documents"]] for r in llm.requests("reply")}
    assert all(list(cited) == given[rid][:1] for rid, cited in zip(ok["record_id"], ok["reply_cited_ids"]))
    assert ok["reply_model_version"].eq("test-small").all()
    assert check_results(llm.results[0])[(f"{ST}/enriched_records", "outputs_free_of_pii")].passed


def test_no_pii_from_the_records_reached_the_provider(llm):
    raw = llm.warehouse.read_table(llm.family.table("raw_records"), partitions=[BATCH])
    texts = (raw["subject"] + "\n" + raw["body"]).tolist()
    found = {text[a:b] for text in texts for _, (a, b) in find_pii(text)}
    assert len(found) >= 5, "the batch should hold e-mail addresses, phone numbers and an IBAN"
    sent = [r.raw.decode("utf-8", "replace") for r in llm.server.chat_requests]
    # (help-centre articles sent as grounding may name a support address; the record text may not)
    leaked = [r.record_id for r in llm.server.chat_requests
              if find_pii("\n".join(map(str, r.user_payload["text"].values())))]
    assert leaked == []
    for value in found - {"support@example.com"}:
        assert not any(value in body for body in sent), value
    assert not any(email in body for email in raw["customer_email"].dropna() for body in sent)
    assert all(set(r.user_payload["text"]) == {"subject", "body"} for r in llm.server.chat_requests)
    ok = llm.enriched
    assert int(ok["redactions"].sum()) >= len(found) - 1  # each span counted where it was redacted


def test_cost_is_accounted_per_row_in_the_ledger_and_in_llm_metadata(llm):
    ok, first = llm.enriched, llm.results[0]
    assert ok["reply_cost_usd"].gt(0).all()
    cascaded = ok["category_path"] == "cascade:llm"
    assert ok.loc[cascaded, "category_cost_usd"].gt(0).all() and ok.loc[~cascaded, "category_cost_usd"].eq(0).all()
    per_task = ok[[f"{t}_cost_usd" for t in llm.family.tasks]].sum(axis=1)
    assert (ok["cost_usd"] - per_task).abs().max() < 1e-12
    assert ok["tokens_in"].gt(0).all() and ok["tokens_out"].gt(0).all()
    meta = materialization_metadata(first)
    reply = meta[f"{ST}/reply"]
    assert reply["llm.calls"] == ROWS and reply["llm.items"] == ROWS and reply["llm.paths.llm"] == ROWS
    assert reply["llm.cost_usd"] == pytest.approx(ok["reply_cost_usd"].sum(), abs=1e-6)
    category = meta[f"{ST}/category"]
    assert category["llm.calls"] == int(cascaded.sum()) == category["llm.paths.cascade.llm"]
    assert category["llm.paths.cascade.local"] == ROWS - int(cascaded.sum())
    assert 0 < category["llm.budget_remaining_usd"] < llm.family.spec.budget.per_run_usd
    assert meta[f"{ST}/enriched_records"]["cost_usd"] == pytest.approx(ok["cost_usd"].sum())
    ledger = ledger_spend(llm.warehouse, family=ST, run_id=first.run_id, partition=BATCH)
    assert ledger.cost_usd == pytest.approx(ok["cost_usd"].sum()) and ledger.calls == llm.live_calls()
    spend = check_results(first)[(f"{ST}/enriched_records", "llm_spend_within_budget")]
    assert spend.passed and spend.metadata["source"].value == "ledger (this run)"
    kpis = meta[f"{ST}/kpi_daily"]  # what the first run's KPI materialization shows (plotted over runs)
    assert kpis["cost_per_record"] == pytest.approx(ok["cost_usd"].sum() / ROWS) and kpis["cost_usd"] > 0


def test_an_unchanged_batch_rematerialized_makes_no_http_call(llm):
    first, second = llm.calls
    assert llm.live_calls() == ROWS + len(llm.requests("category")) and second == first
    again = llm.warehouse.read_table(llm.family.table("enriched_records"), partitions=[BATCH])
    before = llm.enriched.set_index("record_id")
    after = again.set_index("record_id").loc[before.index]
    assert after["reply"].tolist() == before["reply"].tolist()
    assert after["category"].tolist() == before["category"].tolist()
    # the rows keep what each answer cost; this run spent nothing (metadata, ledger)
    assert after["reply_path"].eq("cache").all()
    assert after["reply_cost_usd"].tolist() == pytest.approx(before["reply_cost_usd"].tolist())
    meta = materialization_metadata(llm.results[1])[f"{ST}/reply"]
    assert meta["llm.cache_hits"] == ROWS and meta["llm.calls"] == 0 and meta["llm.cost_usd"] == 0
    assert ledger_spend(llm.warehouse, family=ST, run_id=llm.results[1].run_id).cost_usd == 0


def test_the_key_reached_the_server_and_nothing_else(llm):
    assert {r.headers.get("authorization") for r in llm.server.chat_requests} == {f"Bearer {SECRET}"}
    run_ids = {r.run_id for r in llm.results}
    root = llm.resources["outbox"].directory.parent
    assert no_secret(llm.warehouse, llm.instance, run_ids, SECRET, [root]) == []
    for result in llm.results:
        for key, values in materialization_metadata(result).items():
            assert SECRET not in str(values), key


def test_the_kpis_still_show_what_the_day_cost_after_a_cached_rerun(llm):
    job = dg.define_asset_job("kpis_again", selection=[dg.AssetKey(llm.family.key("kpi_daily"))])
    defs = dg.Definitions.merge(family_definitions([llm.family], llm.resources), dg.Definitions(jobs=[job]))
    assert defs.resolve_job_def("kpis_again").execute_in_process(instance=llm.instance).success
    # (this warehouse holds this batch only; the LLM evaluations' spend is in the ledger under runs of their own)
    spent = sum(ledger_spend(llm.warehouse, family=ST, run_id=r.run_id).cost_usd for r in llm.results)
    daily = llm.warehouse.read_table(llm.family.table("kpi_daily"))
    assert spent > 0 and daily["cost_usd"].sum() == pytest.approx(spent)


def test_the_run_evaluated_and_promoted_each_llm_configuration_before_its_task_answered(llm):
    meta = materialization_metadata(llm.results[0])
    for task in ("category", "reply"):
        assert meta[f"{ST}/{task}_llm_champion"]["decision"] == "promoted", meta[f"{ST}/{task}_llm_champion"]
        evaluation = meta[f"{ST}/{task}_llm_evaluation"]
        eval_spend = ledger_spend(llm.warehouse, family=ST, run_id=evaluation["ledger_run_id"])
        assert eval_spend.calls > 0 and eval_spend.cost_usd == pytest.approx(evaluation["evaluation_cost_usd"])
        assert meta[f"{ST}/{task}"]["llm_configuration"].startswith("LLM champion llm-")
    golden = [r for r in llm.server.chat_requests if r.record_id not in set(llm.enriched["record_id"])]
    assert golden and all(set(r.user_payload["text"]) == {"subject", "body"} for r in golden)
