"""Monitoring: one alert per failed run (folder, webhook, audit log); KPI anomaly checks; freshness policies."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from checks.anomaly import FRESHNESS_POLICIES, anomaly_checks, assess, daily_metric, with_freshness_policies
from orchestration_assets.core.kpis import kpi_daily as compute_kpi_daily
from resources.audit import read_audit
from resources.notifier import Notifier
from resources.warehouse import Warehouse
from sensors.review import review_decision_sensor, run_failure_alert_sensor
from tests.test_dispatch import WebhookServer
from tests.test_review import decide, pending_ids, review_resources, seed_triage_tables

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


# ---- run-failure alerts -----------------------------------------------------------------------
@dg.op
def load_batch():
    return 3


@dg.op
def score_batch(n: int):
    raise ValueError(f"scoring failed for {n} rows; contact jane.doe@example.com")


@dg.job
def nightly_scoring():
    score_batch(load_batch())


def failure_context(instance, result, resources):
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources=resources,
    ).for_run_failure()


def test_a_failed_run_raises_exactly_one_alert_with_step_and_error(data_dir, instance):
    result = nightly_scoring.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    wh = Warehouse(url=f"sqlite:///{data_dir / 'warehouse.db'}")
    with WebhookServer() as hook:
        resources = {"warehouse": wh, "notifier": Notifier(folder=str(data_dir / "alerts"), webhook_url=hook.url)}
        for _ in range(2):  # the sensor may see the same failure again: still one alert
            run_failure_alert_sensor(failure_context(instance, result, resources))
        assert len(hook.posts) == 1
        posted = hook.posts[0]["body"]
    files = list((data_dir / "alerts").glob("*.json"))
    assert len(files) == 1
    alert = json.loads(files[0].read_text())
    assert alert == posted | {"sent_at": alert["sent_at"]}
    assert alert["run_id"] == result.run_id and alert["job_name"] == "nightly_scoring"
    assert alert["failed_step"] == "score_batch"
    assert "scoring failed for 3 rows" in alert["error"]
    assert "jane.doe@example.com" not in json.dumps(alert)  # PII in an error never leaves in an alert
    audit = read_audit(wh, event_type="alert")
    assert len(audit) == 1
    assert audit.iloc[0]["run_id"] == result.run_id and audit.iloc[0]["decision"] == "run_failure"
    assert audit.iloc[0]["reasons"] == ["score_batch"] and "jane.doe" not in audit.iloc[0]["details"]


# ---- the review-decision sensor -----------------------------------------------------------------
def test_review_decision_sensor_requests_one_dispatch_per_new_batch_of_decisions(data_dir, instance):
    res = review_resources(data_dir)
    routing = seed_triage_tables(res["warehouse"])
    ids = pending_ids(routing)
    ctx = lambda cursor: dg.build_sensor_context(instance=instance, cursor=cursor, resources=res)  # noqa: E731

    assert isinstance(review_decision_sensor(ctx(None)), dg.SkipReason)
    assert decide(res, instance, ticket_id=ids[0], decision="approve", reviewer="alice").success
    assert decide(res, instance, ticket_id=ids[1], decision="reject", reviewer="alice").success
    first = review_decision_sensor(ctx(None))
    assert [r.run_key for r in first.run_requests] == ["review-decisions:2"] and first.cursor == "2"
    assert isinstance(review_decision_sensor(ctx(first.cursor)), dg.SkipReason)  # nothing new: no run
    assert decide(res, instance, ticket_id=ids[2], decision="approve", reviewer="bob").success
    second = review_decision_sensor(ctx(first.cursor))
    assert [r.run_key for r in second.run_requests] == ["review-decisions:3"]
    assert second.run_requests[0].tags["decisions"] == "1"


# ---- KPI anomaly checks -------------------------------------------------------------------------
def seed_days(wh: Warehouse, days: int = 15, spike: dict | None = None) -> pd.DataFrame:
    """`kpi_daily` computed by the real KPI maths from `days` days of routed, enriched tickets.

    Steady days vary a little; ``spike`` changes the last day (latency multiplier, extra failures,
    extra escalations, cost multiplier).
    """
    rng = np.random.default_rng(7)
    spike = spike or {}
    decisions, enriched = [], []
    for d in range(days):
        last = d == days - 1
        for i in range(40):
            tid = f"D{d:02d}-{i:02d}"
            decision = "escalate" if i < 4 or (last and i < 4 + spike.get("escalations", 0)) else "auto_send"
            failed = i == 39 and d % 3 == 0 or (last and i >= 40 - spike.get("failures", 0))
            row = {"ticket_id": tid, "status": "failed" if failed else "enriched"}
            for t in ("classify", "priority", "sentiment", "summary", "draft"):
                lat = rng.normal(120, 6) * (spike.get("latency", 1) if last else 1)
                row[f"{t}_latency_ms"] = lat
                row[f"{t}_cost_usd"] = 0.0004 * (spike.get("cost", 1) if last else 1) * rng.uniform(0.95, 1.05)
            enriched.append(row)
            decisions.append({"ticket_id": tid, "decision": decision, "model_version": "local-clf@1",
                              "created_at": pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=d, minutes=i)})
    kpis = compute_kpi_daily(pd.DataFrame(decisions), pd.DataFrame(enriched))
    wh.replace_table("kpi_daily", kpis)
    return kpis


def run_checks(wh: Warehouse) -> dict[str, dg.AssetCheckResult]:
    return {next(iter(c.check_keys)).name: c(warehouse=wh) for c in anomaly_checks}


@pytest.fixture
def wh(data_dir) -> Warehouse:
    return Warehouse(url=f"sqlite:///{data_dir / 'warehouse.db'}")


def test_anomaly_checks_pass_on_steady_kpis(wh):
    seed_days(wh)
    results = run_checks(wh)
    assert set(results) == {"cost_per_task_anomaly", "failure_rate_anomaly", "latency_p95_anomaly", "escalation_rate_anomaly"}
    for name, r in results.items():
        assert r.passed, (name, r.metadata)
        assert r.metadata["history_days"].value == 14 and abs(r.metadata["robust_z"].value) < 3.5


@pytest.mark.parametrize(
    "spike, failing",
    [
        ({"latency": 3.0}, "latency_p95_anomaly"),
        ({"failures": 12}, "failure_rate_anomaly"),
        ({"escalations": 16}, "escalation_rate_anomaly"),
        ({"cost": 4.0}, "cost_per_task_anomaly"),
    ],
)
def test_anomaly_check_fails_on_an_injected_spike_with_the_numbers(wh, spike, failing):
    kpis = seed_days(wh, spike=spike)
    results = run_checks(wh)
    bad = results[failing]
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.ERROR
    assert bad.metadata["latest_day"].value == kpis["day"].max() == "2026-11-15"
    assert bad.metadata["latest"].value > bad.metadata["trailing_median"].value
    assert bad.metadata["robust_z"].value >= 6
    assert bad.metadata["worst_metric"].value in bad.metadata["metrics"].value
    assert all(r.passed for name, r in results.items() if name != failing)


def test_a_moderate_rise_warns_and_a_short_history_is_not_judged():
    steady = pd.Series([0.10, 0.11, 0.09, 0.10, 0.11, 0.10, 0.09, 0.10], index=[f"d{i}" for i in range(8)])
    warn = assess(pd.concat([steady, pd.Series([0.14], index=["d8"])]), "failure_rate", min_abs_change=0.02)
    assert warn.status == "warn" and 3.5 <= warn.z < 6
    ok = assess(pd.concat([steady, pd.Series([0.105], index=["d8"])]), "failure_rate", min_abs_change=0.02)
    assert ok.status == "ok"
    drop = assess(pd.concat([steady, pd.Series([0.0], index=["d8"])]), "failure_rate", min_abs_change=0.02)
    assert drop.status == "ok"  # fewer failures is not an alarm
    short = assess(steady.head(3), "failure_rate", min_abs_change=0.02)
    assert short.status == "insufficient_history" and short.history_days == 2


def test_daily_metric_weights_rates_by_tickets_across_model_versions():
    kpis = pd.DataFrame({"day": ["d1", "d1"], "model_version": ["a", "b"], "tickets": [90, 10],
                         "failure_rate": [0.0, 1.0], "latency_p95_ms_draft": [100.0, 300.0]})
    assert daily_metric(kpis, "failure_rate")["d1"] == pytest.approx(0.1)
    assert daily_metric(kpis, "latency_p95_ms_draft")["d1"] == 300.0


def test_freshness_policies_are_attached_to_enriched_tickets_and_kpi_daily():
    @dg.asset(name="enriched_tickets")
    def enriched():
        return None

    @dg.asset(name="kpi_daily")
    def kpis():
        return None

    @dg.asset(name="other")
    def other():
        return None

    graph = with_freshness_policies(dg.Definitions(assets=[enriched, kpis, other])).resolve_asset_graph()
    for key, policy in FRESHNESS_POLICIES.items():
        assert graph.get(dg.AssetKey(key)).freshness_policy == policy
    assert graph.get(dg.AssetKey("other")).freshness_policy is None
