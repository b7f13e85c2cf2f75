"""The KPI anomaly checks run in one step that reads kpi_daily once; each keeps its name and result, and a
user who runs one of them alone gets only that one."""

import dagster as dg
import pandas as pd

from checks.anomaly import anomaly_checks, families_of_metrics
from resources.warehouse import Warehouse


def _run(family, warehouse: Warehouse, instance, names: list[str]):
    key = dg.AssetKey(family.key("kpi_daily"))
    job = dg.define_asset_job("anomaly", selection=dg.AssetSelection.checks(*(dg.AssetCheckKey(key, n) for n in names)))
    defs = dg.Definitions(assets=[dg.AssetSpec(key)], asset_checks=anomaly_checks(family), jobs=[job],
                          resources={"warehouse": warehouse})
    result = defs.resolve_job_def("anomaly").execute_in_process(instance=instance)
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    return evaluations, steps


def test_one_step_evaluates_every_anomaly_check_and_a_subset_runs_alone(tmp_path, families, instance):
    family = families["support_triage"]
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    rates = [0.10, 0.11, 0.09, 0.10, 0.11, 0.10, 0.09, 0.10, 0.30]  # the latest day's failures spike
    days = pd.date_range("2026-11-01", periods=len(rates), freq="D").strftime("%Y-%m-%d")
    wh.replace_table(family.table("kpi_daily"), pd.DataFrame(
        {"day": days, "model_version": "local@1", "records": 100, "failure_rate": rates, "escalation_rate": 0.1}))
    names = list(families_of_metrics(list(family.tasks)))

    evaluations, steps = _run(family, wh, instance, names)
    assert len(steps) == 1
    by_name = {e.check_name: e for e in evaluations}
    assert sorted(by_name) == sorted(names)
    failure = by_name["failure_rate_anomaly"]
    assert not failure.passed and failure.severity == dg.AssetCheckSeverity.ERROR
    assert failure.metadata["worst_metric"].value == "failure_rate"
    assert by_name["escalation_rate_anomaly"].passed

    evaluations, _ = _run(family, wh, instance, ["escalation_rate_anomaly"])
    assert [e.check_name for e in evaluations] == ["escalation_rate_anomaly"]
