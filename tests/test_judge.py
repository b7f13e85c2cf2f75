"""The draft judge: rubric criteria scored by a model through the router, or the keyword rubric offline."""

import dataclasses
import shutil

import pytest
import sqlalchemy as sa
import yaml

from orchestration_assets.family import Family, SpecError
from resources.evaluation.judge import KEYWORD_JUDGE, DraftCase, judge_drafts, judge_name
from resources.providers.base import Document
from resources.router.routes import Budget
from tests.openai_server import OpenAICompatServer
from tests.router_fixtures import FAMILY_DIR, budget_catalog, catalog, router_for, session_for
from tests.router_fixtures import family, local, warehouse  # noqa: F401 - pytest fixtures

CRITERIA = {"grounded": "states only what the cited documents say", "polite": "greets the author politely"}
DOCS = [Document("KB-1", "Refunds", "Refunds are paid within 5 days."), Document("KB-2", "Invoices", "Invoices ...")]


def judged(task, judge="small", criteria=CRITERIA):
    rubric = task.spec.rubric.model_copy(update={"criteria": criteria, "judge": judge})
    return dataclasses.replace(task, spec=task.spec.model_copy(update={"rubric": rubric}))


def cases(n=4):
    claims = ["as KB-1 says", "I guess by Friday"]
    return [DraftCase(f"R-{i}", f"Hello, your refund {i} is on its way, {claims[i % 2]}. Write to a{i}@example.com.",
                      ["KB-1"], DOCS, "refund") for i in range(n)]


def verdicts(rec, schema):
    """The judge's answer: 'grounded' fails for drafts that guess."""
    guess = "guess" in rec.user_payload["text"]["draft"]
    return {"grounded": "fail" if guess else "pass", "grounded_reason": "cites KB-1",
            "polite": "pass", "polite_reason": "says hello", "confidence": 0.9}


def test_judge_calls_are_costed_in_the_ledger_and_a_second_evaluation_comes_from_the_cache(
        family, local, tmp_path, warehouse):
    draft = judged(family.tasks["reply"])
    with OpenAICompatServer(answers=verdicts, usage=(100, 20)) as srv:
        router = router_for(tmp_path, catalog(srv.url))
        report = judge_drafts(draft, cases(), session=session_for(router, local, {}, warehouse=warehouse, run_id="ev1"))

        assert report.judge == "small" and report.unscored == 0
        assert report.scores == [1.0, 0.5, 1.0, 0.5] and report.mean == 0.75
        assert report.breakdown == {"grounded": 0.5, "polite": 1.0}
        assert report.details[1]["criteria"]["grounded"] == {"passed": False, "reason": "cites KB-1"}
        assert report.cost_usd == pytest.approx(4 * (100 * 1.0 + 20 * 4.0) / 1e6)
        assert srv.call_count == 4
        sent = srv.chat_requests[0]
        # structured output: the verdict schema goes with the request; the draft reached it redacted
        assert sent.response_format["type"] == "json_schema"
        assert sent.schema["properties"]["grounded"]["anyOf"][0]["enum"] == ["pass", "fail"]
        assert "never instructions" in sent.system and "@example.com" not in str(sent.body)
        with warehouse.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT family, task, model_id, SUM(calls), SUM(cost_usd) FROM llm_spend "
                                        "WHERE run_id = 'ev1' GROUP BY family, task, model_id")).all()
        assert [tuple(r[:4]) for r in rows] == [("support_triage", "reply__judge", "test-small", 4)]
        assert rows[0][4] == pytest.approx(report.cost_usd)

        again = judge_drafts(draft, cases(), session=session_for(router, local, {}, warehouse=warehouse, run_id="ev2"))
        assert srv.call_count == 4  # no new HTTP call
        assert again.scores == report.scores and again.cache_hits == 4 and again.cost_usd == 0.0


def test_a_budget_below_the_judges_cost_stops_the_calls_and_the_report_says_so(family, local, tmp_path, warehouse):
    per_call = 0.001
    draft = judged(family.tasks["reply"])
    with OpenAICompatServer(answers=verdicts, completion_tokens_from_max_tokens=True) as srv:
        router = router_for(tmp_path, budget_catalog(srv.url, per_call))
        session = session_for(router, local, {}, Budget(per_run_usd=2.5 * per_call), warehouse=warehouse,
                              run_id="tight")
        report = judge_drafts(draft, cases(), session=session)

    assert srv.call_count == 2
    assert report.unscored == 2 and report.unscored_reasons == {"budget": 2}
    # refused drafts score 0, never counted as passed, and are named
    assert sum(d["scored"] for d in report.details) == 2
    assert [d["reason"] for d in report.details if not d["scored"]] == ["budget", "budget"]
    assert report.mean == pytest.approx(sum(report.scores) / 4) and report.mean <= 0.5
    assert report.cost_usd == pytest.approx(2 * per_call)
    assert "2 not scored (budget: 2)" in report.summary() and "never as passed" in report.summary()


def test_without_a_judge_the_keyword_rubric_scores_and_is_named(family, local, tmp_path, warehouse):
    draft = family.tasks["reply"]
    good = DraftCase("R-1", "Hello, we issued the refund for the double charge; the credit shows within 5 days. "
                            "See KB-1 for details.", ["KB-1"], DOCS, "refund")
    bad = DraftCase("R-2", "ok", [], DOCS, "refund")
    report = judge_drafts(draft, [good, bad])
    assert report.judge == KEYWORD_JUDGE == "keyword_rubric (offline default)"
    assert report.scores == [1.0, 0.25] and report.mean == 0.625 and report.cost_usd == 0.0
    assert report.details[1]["criteria"]["length_ok"]["passed"] is False
    # a declared judge without a router session (offline) is the keyword rubric too, and says so
    assert judge_drafts(judged(draft), [good]).judge == KEYWORD_JUDGE
    assert judge_name(judged(draft)) == KEYWORD_JUDGE and judge_name(judged(draft), session=object()) == "small"


def test_an_unknown_judge_model_fails_at_load_naming_the_key(tmp_path):
    doc = yaml.safe_load((FAMILY_DIR / "defs.yaml").read_text())
    doc["attributes"]["tasks"]["reply"]["rubric"].update({"criteria": CRITERIA, "judge": "gpt-9"})
    folder = tmp_path / "fam"
    shutil.copytree(FAMILY_DIR, folder)
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as err:
        Family.load(folder, known_models={"small"})
    assert "tasks.reply.rubric.judge" in str(err.value) and "unknown model 'gpt-9'" in str(err.value)
    doc["attributes"]["tasks"]["reply"]["rubric"]["criteria"] = {}
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="judge needs criteria"):
        Family.load(folder, known_models={"gpt-9"})


def test_a_judge_call_that_fails_once_is_retried_by_the_router(family, local, tmp_path, warehouse):
    with OpenAICompatServer(answers=verdicts) as srv:
        srv.fail("unavailable", times=1)
        router = router_for(tmp_path, catalog(srv.url))
        report = judge_drafts(judged(family.tasks["reply"]), cases(2),
                              session=session_for(router, local, {}, warehouse=warehouse))
        assert srv.call_count == 3 and report.unscored == 0 and report.scores == [1.0, 0.5]
