"""Monitoring: one alert per failed run (folder, webhook, audit log), and KPI anomaly checks on kpi_daily."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from checks.anomaly import MIN_HISTORY, anomaly_checks
from orchestration_assets.core.kpis import kpi_daily
from orchestration_assets.loading import family_definitions
from resources.audit import read_audit
from resources.notifier import Notifier
from resources.router.resource import ModelRouter
from resources.warehouse import Warehouse
from sensors.alerts import run_failure_alert_sensor
from tests.governance_fixtures import WebhookServer
from tests.workflow import temp_resources

pytestmark = pytest.mark.filterwarnings("ignore")

ST = "support_triage"
SECRET = "sk-live-ALERTS-5d1c9e2b7a4f"


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


# ---- run-failure alerts -----------------------------------------------------------------------
@dg.op
def load_orders():
    return 3


@dg.op
def reconcile_orders(n: int):
    raise ValueError(f"reconciling {n} orders failed; ask jane.doe@example.com (+44 20 7946 0123), key {SECRET}")


@dg.job(tags={"family": "refund_requests"})
def nightly_reconciliation():
    reconcile_orders(load_orders())


def alert_for(instance, result, resources: dict) -> None:
    """One evaluation of the run-failure sensor on ``result``'s failure, as the daemon would run it."""
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(), resources=resources,
    ).for_run_failure()
    run_failure_alert_sensor(context)


def alerts_in(folder) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_a_failed_family_run_raises_one_alert_naming_the_family_step_and_error(families, tmp_path, model_dir, instance):
    family = families[ST]
    resources = temp_resources(tmp_path, model_dir)
    defs = family_definitions([family], resources)
    instance.add_dynamic_partitions(family.partitions_name, ["moved-away.csv"])  # registered, then the file went
    keys = [dg.AssetKey(family.key(a)) for a in ("raw_records", "quarantined_records")]
    result = defs.resolve_job_def(family.job_name("ingest")).execute_in_process(
        partition_key="moved-away.csv", asset_selection=keys, instance=instance, raise_on_error=False)
    assert not result.success
    monitoring = {k: resources[k] for k in ("warehouse", "notifier", "router")}
    for _ in range(2):  # the sensor may see the same failure again: still one alert
        alert_for(instance, result, monitoring)
    (alert,) = alerts_in(tmp_path / "alerts")
    assert alert["family"] == ST and alert["job_name"] == "support_triage__ingest"
    assert alert["run_id"] == result.run_id and alert["partition"] == "moved-away.csv"
    assert alert["failed_step"] == "support_triage__batch"
    assert "batch file 'moved-away.csv' is not in the inbox" in alert["error"]
    (event,) = read_audit(resources["warehouse"], event_type="alert").itertuples()
    assert (event.family, event.run_id, event.decision, event.actor) == (ST, result.run_id, "run_failure", "monitor")
    assert event.reasons == ["support_triage__batch"] and event.partition == "moved-away.csv"


def test_an_alert_carries_no_pii_or_secret_and_each_failed_run_alerts_once(tmp_path, instance):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    failures = [nightly_reconciliation.execute_in_process(instance=instance, raise_on_error=False) for _ in range(2)]
    assert not any(r.success for r in failures)
    with WebhookServer() as hook:
        resources = {"warehouse": wh, "router": ModelRouter(api_key=SECRET),
                     "notifier": Notifier(folder=str(tmp_path / "alerts"), webhook_url=hook.url)}
        for result in [*failures, failures[0]]:
            alert_for(instance, result, resources)
        assert [p["key"] for p in hook.posts] == [f"run_failure:{r.run_id}" for r in failures]
        posted = [p["body"] for p in hook.posts]
    alerts = alerts_in(tmp_path / "alerts")
    assert sorted(a["run_id"] for a in alerts) == sorted(r.run_id for r in failures)
    assert {a["family"] for a in alerts} == {"refund_requests"}  # from the run's tags
    first = next(a for a in alerts if a["run_id"] == failures[0].run_id)
    assert first["failed_step"] == "reconcile_orders" and "reconciling 3 orders failed" in first["error"]
    audit = read_audit(wh, event_type="alert")
    assert sorted(audit["run_id"]) == sorted(r.run_id for r in failures)
    for leaving in (json.dumps(alerts), json.dumps(posted), audit.to_json()):
        assert "jane.doe@example.com" not in leaving and "7946 0123" not in leaving
        assert SECRET not in leaving
    assert "[EMAIL]" in first["error"] and "[PHONE]" in first["error"]


def test_a_broken_model_catalog_does_not_stop_alerts(tmp_path, instance):
    # (the failing runs are what a user needs to hear about; the catalog error itself fails runs at start)
    failure = nightly_reconciliation.execute_in_process(instance=instance, raise_on_error=False)
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    router = ModelRouter(config_path=str(tmp_path / "deleted-models.yaml"), api_key=SECRET)
    alert_for(instance, failure, {"warehouse": wh, "router": router, "notifier": Notifier(folder=str(tmp_path / "alerts"))})
    (alert,) = alerts_in(tmp_path / "alerts")
    assert alert["run_id"] == failure.run_id and SECRET not in json.dumps(alert)
    assert read_audit(wh, event_type="alert")["run_id"].tolist() == [failure.run_id]


def test_an_alert_the_webhook_refused_is_sent_when_the_sensor_evaluates_the_failure_again(tmp_path, instance):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    failure = nightly_reconciliation.execute_in_process(instance=instance, raise_on_error=False)
    folder = tmp_path / "alerts"
    resources = {"warehouse": wh, "router": ModelRouter(api_key=SECRET)}
    with WebhookServer(fail_with=503) as down:
        # the tick fails (the daemon shows the error and evaluates the failure again next tick)
        with pytest.raises(Exception, match="did not accept the delivery: HTTP 503"):
            alert_for(instance, failure, {**resources, "notifier": Notifier(folder=str(folder), webhook_url=down.url)})
    (kept,) = alerts_in(folder)
    assert "HTTP 503" in kept["webhook_error"] and "s3cret-hook-token" not in kept["webhook_error"]
    with WebhookServer() as up:
        for _ in range(2):
            alert_for(instance, failure, {**resources, "notifier": Notifier(folder=str(folder), webhook_url=up.url)})
        assert [p["key"] for p in up.posts] == [f"run_failure:{failure.run_id}"]
    (sent,) = alerts_in(folder)
    assert "webhook_error" not in sent and sent["run_id"] == failure.run_id
    assert read_audit(wh, event_type="alert")["run_id"].tolist() == [failure.run_id]


# ---- KPI anomaly checks -------------------------------------------------------------------------
def seed_kpis(wh: Warehouse, family, days: int = 15, spike: dict | None = None, noise: bool = True) -> pd.DataFrame:
    """``kpi_daily`` from the real KPI maths over ``days`` days of 40 routed, enriched records each.

    Steady days vary a little (``noise``); ``spike`` changes the last day: latency multiplier, extra
    failures, extra escalations, cost multiplier.
    """
    rng = np.random.default_rng(7)
    spike = spike or {}
    decisions, enriched = [], []
    for d in range(days):
        last = d == days - 1
        for i in range(40):
            rid = f"D{d:02d}-{i:02d}"
            escalate = i < 4 or (last and i < 4 + spike.get("escalations", 0))
            failed = (noise and i == 39 and d % 3 == 0) or (last and i >= 40 - spike.get("failures", 0))
            row = {"record_id": rid}
            for t in family.tasks:
                jitter = (rng.normal(1, 0.05), rng.uniform(0.95, 1.05)) if noise else (1.0, 1.0)
                row[f"{t}_latency_ms"] = 120 * jitter[0] * (spike.get("latency", 1) if last else 1)
                row[f"{t}_cost_usd"] = 0.0004 * jitter[1] * (spike.get("cost", 1) if last else 1)
            enriched.append(row)
            at = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=d, minutes=i)
            decisions.append({"record_id": rid, "decision": "escalate" if escalate else "auto_send",
                              "status": "failed" if failed else "enriched", "model_version": "local@1",
                              "record_time": at, "decided_at": at})
    kpis = kpi_daily(pd.DataFrame(decisions), pd.DataFrame(enriched), list(family.tasks))
    wh.replace_table(family.table("kpi_daily"), kpis)
    return kpis


def run_checks(wh: Warehouse, family) -> dict[str, dg.AssetCheckResult]:
    context = dg.build_asset_check_context(resources={"warehouse": wh})
    return {r.check_name: r for c in anomaly_checks(family) for r in c(context)}


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")


def test_steady_kpis_pass_every_anomaly_check(wh, families):
    seed_kpis(wh, families[ST])
    results = run_checks(wh, families[ST])
    assert set(results) == {"cost_per_task_anomaly", "failure_rate_anomaly", "latency_p95_anomaly",
                            "escalation_rate_anomaly"}
    for name, r in results.items():
        assert r.passed, (name, r.metadata)
        assert r.metadata["history_days"].value == 14 and r.description is None


def test_a_flat_history_passes_and_a_change_below_the_floor_is_no_alarm(wh, families):
    kpis = seed_kpis(wh, families[ST], noise=False)
    assert kpis["latency_p95_ms_reply"].nunique() == 1 and kpis["failure_rate"].nunique() == 1  # perfectly flat
    assert all(r.passed for r in run_checks(wh, families[ST]).values())
    seed_kpis(wh, families[ST], noise=False, spike={"latency": 1.2})  # +24 ms p95: below the 50 ms floor
    latency = run_checks(wh, families[ST])["latency_p95_anomaly"]
    assert latency.passed and latency.metadata["robust_z"].value == 1e9  # "infinitely" unusual, yet tiny


@pytest.mark.parametrize("spike, failing", [
    ({"latency": 3.0}, "latency_p95_anomaly"),
    ({"failures": 12}, "failure_rate_anomaly"),
    ({"escalations": 16}, "escalation_rate_anomaly"),
    ({"cost": 4.0}, "cost_per_task_anomaly"),
])
def test_a_spike_on_the_latest_day_fails_its_check_with_the_numbers(wh, families, spike, failing):
    kpis = seed_kpis(wh, families[ST], spike=spike)
    results = run_checks(wh, families[ST])
    bad = results[failing]
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.ERROR
    assert bad.metadata["latest_day"].value == kpis["day"].max() == "2026-11-15"
    assert bad.metadata["latest"].value > bad.metadata["trailing_median"].value
    assert bad.metadata["robust_z"].value >= 6 and bad.metadata["worst_metric"].value in bad.metadata["metrics"].value
    assert bad.description.startswith(f"{bad.metadata['worst_metric'].value} on 2026-11-15")
    assert all(r.passed for name, r in results.items() if name != failing)


def test_a_moderate_rise_warns(wh, families):
    rates = [0.10, 0.11, 0.09, 0.10, 0.11, 0.10, 0.09, 0.10, 0.14]
    days = pd.date_range("2026-11-01", periods=len(rates), freq="D").strftime("%Y-%m-%d")
    wh.replace_table(families[ST].table("kpi_daily"), pd.DataFrame(
        {"day": days, "model_version": "local@1", "records": 100, "failure_rate": rates}))
    failure = run_checks(wh, families[ST])["failure_rate_anomaly"]
    assert not failure.passed and failure.severity == dg.AssetCheckSeverity.WARN
    assert 3.5 <= failure.metadata["robust_z"].value < 6


def test_too_little_history_passes_and_says_so(wh, families):
    seed_kpis(wh, families[ST], days=MIN_HISTORY, spike={"latency": 3.0, "failures": 12})
    for name, r in run_checks(wh, families[ST]).items():
        assert r.passed, name
        assert r.metadata["note"].value == f"fewer than {MIN_HISTORY} earlier days of KPIs; nothing to compare yet"
