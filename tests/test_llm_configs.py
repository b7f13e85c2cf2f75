"""LLM configurations under governance, against a real OpenAI-compatible server (tests/openai_server.py).

A family routes its classify task to a catalog model. The server answers each golden record with
its true label, except for requests whose system prompt carries the bad instruction or whose model
id is the "wrong" one: those get a wrong label. What a user would check: a configuration is
registered as challenger, evaluated on the golden set through the router (its calls in the spend
ledger under a run of its own), promoted only when the gates pass, and live traffic then answers
with it; a bad prompt is refused with a readable reason and live traffic keeps the champion; the
family budget stops an evaluation and the gates refuse what it could not finish; the cheapest
passing candidate is picked and why is recorded; a rollback restores the previous champion.
"""

import shutil

import dagster as dg
import pytest
import yaml

from orchestration_assets.family import Family
from orchestration_assets.loading import family_definitions
from orchestration_assets.registry_cli import main as registry_cli
from resources.providers.local.store import LocalModelStore
from resources.registry import ModelRegistry
from resources.registry.llm_configs import LlmConfigRegistry
from resources.registry.llm_configs_routes import live_plan, session_for
from resources.router.ledger import ledger_spend
from resources.router.resource import ModelRouter
from tests.openai_answers import SchemaAnswer
from tests.openai_server import OpenAICompatServer
from tests.workflow import DEFS, check_results, materialization_metadata, temp_resources

pytestmark = pytest.mark.filterwarnings("ignore")

FAM, TASK = "it_service_desk", "topic"
BAD = "Always answer with the rarest topic."
GOLDEN = 12
MODELS = {  # name -> (model id, $ per 1M input, $ per 1M output)
    "small": ("test-small", 0.15, 0.60),
    "cheap": ("test-cheap", 0.05, 0.20),
    "dear": ("test-dear", 1.00, 4.00),
    "wrong": ("test-wrong", 0.01, 0.01),
}


def _truths() -> dict[str, str]:
    import pandas as pd

    df = pd.read_csv(DEFS / FAM / "data" / "labelled_tickets.csv", usecols=["Ticket ID", "Topic_group"], dtype=str)
    return dict(zip(df["Ticket ID"], df["Topic_group"]))


TRUTH = _truths()


def answers(rec, schema):
    """The true label of the record; a wrong one for the bad prompt or the "wrong" model."""
    props = schema.get("properties", {})
    if "label" not in props or rec.record_id not in TRUTH:
        return None
    out = SchemaAnswer(rec, answers.settings).build(schema)
    truth = TRUTH[rec.record_id]
    labels = props["label"].get("enum") or [truth]
    wrong = BAD in rec.system or (rec.body or {}).get("model") == "test-wrong"
    out["label"] = next(x for x in sorted(labels) if x != truth) if wrong else truth
    out["confidence"] = 0.9
    return out


def catalog(url: str, **params) -> dict:
    return {
        "endpoints": {"testllm": {"base_url": url, "timeout_s": 5.0, "max_attempts": 2,
                                  "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter_s": 0.01}}},
        "models": {name: {"endpoint": "testllm", "model": mid, "params": {"temperature": 0, "max_tokens": 200, **params},
                          "price": {"input_per_1m": pin, "output_per_1m": pout}}
                   for name, (mid, pin, pout) in MODELS.items()},
        "cache": {"enabled": True, "table": "llm_cache"},
    }


@pytest.fixture(scope="module")
def server():
    with OpenAICompatServer(answers=answers) as s:
        answers.settings = s.settings
        yield s


class Env:
    def __init__(self, root, model_dir, server, instance):
        self.root, self.server = root, server
        self.instance = instance
        self.resources = temp_resources(root / "run", model_dir)
        self.url = self.resources["warehouse"].url
        self.set_catalog()

    def set_catalog(self, **params):
        path = self.root / "models.yaml"
        path.write_text(yaml.safe_dump(catalog(self.server.url, **params)), encoding="utf-8")
        self.resources["router"] = ModelRouter(config_path=str(path), api_key="sk-test-llm-configs")

    def family(self, route: dict, instructions: str = "", budget: dict | None = None, **llm) -> Family:
        folder = self.root / "defs" / FAM
        if not folder.exists():
            shutil.copytree(DEFS / FAM, folder)
        doc = yaml.safe_load((DEFS / FAM / "defs.yaml").read_text(encoding="utf-8"))
        attrs = doc["attributes"]
        attrs["routing"] = {TASK: route}
        attrs["tasks"][TASK]["instructions"] = instructions
        attrs["promotion"] = {"llm": {"golden_rows": GOLDEN, **llm}}
        attrs["budget"] = budget or {"per_run_usd": 1.0, "per_day_usd": 10.0}
        (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return Family.load(folder, known_models=set(MODELS))

    def run(self, family: Family, *, checks: bool = True):
        """The family's ``__llm_evaluation`` job (blocking gate checks), or its assets alone (no checks)."""
        keys = [dg.AssetKey(family.key(f"{TASK}_llm_{s}")) for s in ("config", "evaluation", "champion")]
        job = dg.define_asset_job("llm_assets_only", selection=dg.AssetSelection.assets(*keys).without_checks(),
                                  executor_def=dg.in_process_executor)
        defs = dg.Definitions.merge(family_definitions([family], self.resources), dg.Definitions(jobs=[job]))
        name = family.job_name("llm_evaluation") if checks else "llm_assets_only"
        return defs.resolve_job_def(name).execute_in_process(instance=self.instance, raise_on_error=False)

    @property
    def configs(self) -> LlmConfigRegistry:
        return LlmConfigRegistry(ModelRegistry(self.resources["warehouse"].engine))

    def live(self, family: Family, n: int = 4, offset: int = 0):
        """Live answers of the first golden-set records, as the task asset gets them."""
        from resources.providers.base import Item

        router = self.resources["router"]
        plan = live_plan(FAM, family.spec.routing, self.configs, router.catalog())
        local = LocalModelStore(model_dir=self.resources["local_models"].model_dir).provider({})
        session = session_for(router, family=FAM, routes=plan.routes, configs=plan.configs,
                              budget=family.spec.budget, local=local, run_id="live-test")
        ids = sorted(TRUTH)[offset:offset + n]
        self.server.reset()
        items = [Item(id=i, text=f"record {i}", fields={}, input_hash=i) for i in ids]
        batch = session.run(plan.task(family.tasks[TASK]), items)
        return plan, batch, list(self.server.chat_requests)


@pytest.fixture
def env(tmp_path, model_dir, server):
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, model_dir, server, instance)


def meta(result, asset: str) -> dict:
    return materialization_metadata(result).get(f"{FAM}/{TASK}_{asset}", {})


def test_prompt_change_goes_challenger_evaluation_gated_promotion_and_a_bad_prompt_is_refused(env):
    good = env.family({"provider": "small"}, instructions="Pick the resolver group.")
    first = env.run(good)
    assert first.success
    chosen = meta(first, "llm_champion")
    assert chosen["decision"] == "promoted" and "small" in chosen["champion"]
    champ = env.configs.champion(FAM, TASK)
    assert "Pick the resolver group." in champ.prompt_text
    # the evaluation's calls are in the spend ledger, under the family and a run of its own
    ev = meta(first, "llm_evaluation")
    spent = ledger_spend(env.resources["warehouse"], family=FAM, run_id=ev["ledger_run_id"])
    assert spent.calls >= GOLDEN and spent.cost_usd > 0 and ev["evaluation_cost_usd"] == pytest.approx(spent.cost_usd)
    assert ev["ledger_run_id"].startswith("llm-eval-")
    # live traffic answers with the champion, through the LLM
    plan, batch, sent = env.live(good)
    assert [r.path for r in batch.results] == ["llm"] * 4 and plan.configs[TASK].version == champ.version
    assert len(sent) == 4
    assert all("Pick the resolver group." in r.system for r in sent)

    bad = env.family({"provider": "small"}, instructions=BAD)
    refused = env.run(bad)
    gates = check_results(refused)
    quality = gates[(f"{FAM}/{TASK}_llm_evaluation", "llm_quality_not_worse_than_baseline")]
    assert not quality.passed and "< champion 1.000 - tolerance 0.01" in quality.description
    assert not meta(refused, "llm_champion")  # the blocking gate kept the promotion from running
    # materialized on its own, the champion asset re-checks the gates and says why it keeps the champion
    alone = env.run(bad, checks=False)
    decision = meta(alone, "llm_champion")
    assert decision["decision"] == "kept"
    assert decision["reason"].startswith("refused: challenger macro_f1 0.")
    assert f"champion stays {champ.version}" in decision["reason"]
    assert env.configs.champion(FAM, TASK).version == champ.version
    challenger = env.configs.alias(FAM, TASK, "challenger")
    assert challenger is not None and BAD in challenger.prompt_text
    _, batch, sent = env.live(bad, offset=4)  # the YAML says BAD; live traffic keeps the champion's prompt
    assert len(sent) == 4 and all(BAD not in r.system and "Pick the resolver group." in r.system for r in sent)
    assert [r.output["label"] for r in batch.results] == [TRUTH[i] for i in sorted(TRUTH)[4:8]]


def test_no_llm_champion_means_local_answers_and_the_plan_says_why(env):
    family = env.family({"provider": "small"})
    plan, batch, sent = env.live(family)
    assert sent == [] and {r.path for r in batch.results} == {"local"}
    assert "no LLM champion yet" in plan.notes[TASK]


def test_the_family_budget_stops_the_evaluation_and_the_gates_refuse_it(env):
    tight = env.family({"provider": "dear"}, budget={"per_run_usd": 0.004, "per_day_usd": 10.0})
    result = env.run(tight)
    answered = check_results(result)[(f"{FAM}/{TASK}_llm_evaluation", "llm_answered_by_candidate")]
    assert not answered.passed and "not answered by the candidate (budget:" in answered.description
    spent = ledger_spend(env.resources["warehouse"], family=FAM, run_id=meta(result, "llm_evaluation")["ledger_run_id"])
    assert 0 < spent.calls < GOLDEN and spent.cost_usd <= 0.004 + 1e-12
    assert env.configs.champion(FAM, TASK) is None


def test_cheapest_adequate_candidate_becomes_champion_and_the_reason_names_every_candidate(env):
    family = env.family({"provider": "dear", "candidates": ["dear", "wrong", "cheap"]})
    result = env.run(family, checks=False)
    assert meta(result, "llm_champion")["decision"] == "promoted"
    champ = env.configs.champion(FAM, TASK)
    assert champ.model == "cheap"
    history = env.configs.history(FAM, TASK)
    reason = history[history["alias"] == "champion"]["reason"].iloc[-1]
    assert "cheapest adequate: cheap" in reason
    for model in ("dear", "cheap", "wrong"):
        assert f"{model} $" in reason
    assert "wrong refused (llm_quality_not_worse_than_baseline" in reason


def test_rollback_restores_the_previous_champion_and_live_traffic_follows(env, capsys):
    family = env.family({"provider": "small"})
    assert env.run(family).success
    first = env.configs.champion(FAM, TASK)
    env.set_catalog(top_p=0.5)  # a params change is a new configuration, gated like any other
    assert env.run(family).success
    second = env.configs.champion(FAM, TASK)
    assert second.version != first.version and second.params["top_p"] == 0.5
    _, _, sent = env.live(family, n=1)
    assert sent[0].body["top_p"] == 0.5
    code = registry_cli(["--warehouse-url", env.url, "llm", "rollback", FAM, TASK, "--reason", "params regressed"])
    assert code == 0 and f"{second.version} -> {first.version}" in capsys.readouterr().out
    assert env.configs.champion(FAM, TASK).version == first.version
    plan, _, sent = env.live(family, n=1, offset=1)  # the catalog still says top_p 0.5; the champion does not
    assert plan.configs[TASK].version == first.version and len(sent) == 1 and "top_p" not in sent[0].body
    history = env.configs.history(FAM, TASK)
    assert history["reason"].iloc[-1] == "params regressed"


def test_gates_read_field_accuracy_judge_score_cost_and_p95_and_say_why():
    from resources.evaluation.llm_gates import LlmPromotionSpec, llm_gates, p95
    from resources.providers.base import TaskResult
    from resources.registry.llm_configs_lifecycle import field_accuracy

    def result(**out):
        return TaskResult(record_id="r", task="refund", provider="p", model_id="m", model_version="m", prompt_hash="", input_hash="",
                          output=out, path="llm")

    got = [result(amount=12.0, currency="USD"), result(amount=7, currency="eur")]
    assert field_accuracy(got, [{"amount": "12", "currency": "usd"}, {"amount": "9", "currency": "EUR"}]) == 0.75
    assert field_accuracy(got, None) is None
    assert p95([5, 1, 3, 2, 4] * 4) == 5 and p95([]) is None
    t = LlmPromotionSpec(max_p95_latency_ms=800, min_judge_score=0.6)
    base = {"field_accuracy": 0.9, "label": "local champion"}
    cand = {"rows": 2, "fallbacks": {}, "field_accuracy": 0.75, "cost_per_item_usd": 0.001, "p95_latency_ms": 900.0}
    by_name = {g.name: g for g in llm_gates("extract", cand, base, t)}
    assert by_name["llm_quality_not_worse_than_baseline"].reason == \
        "challenger field_accuracy 0.750 < local champion 0.900 - tolerance 0.01"
    assert not by_name["llm_p95_latency_within_limit"].passed and by_name["llm_cost_per_item_within_limit"].passed
    unmeasured = {g.name: g for g in llm_gates("extract", {**cand, "field_accuracy": None,
                                                          "quality_note": "no golden fields"}, base, t)}
    assert unmeasured["llm_quality_not_worse_than_baseline"].reason == "no golden fields"
    draft = {g.name: g for g in llm_gates("draft", {**cand, "judge_score": 0.4, "judge": "keyword_rubric"}, None, t)}
    assert not draft["llm_judge_score_at_threshold"].passed
    assert draft["llm_judge_score_at_threshold"].reason == "keyword_rubric score 0.400 < threshold 0.6"
