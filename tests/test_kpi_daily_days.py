"""kpi_daily counts a record on the UTC day of its own time, else of its routing decision."""

import pandas as pd

from orchestration_assets.core.kpis import kpi_daily


def test_a_record_counts_on_its_utc_day_else_on_the_day_it_was_decided():
    decisions = pd.DataFrame({
        "record_id": ["a", "b", "c", "d", "e"],
        # b is late evening west of UTC: the next day in UTC; d has no time, e one that cannot be read
        "record_time": ["2026-11-01T10:00:00+00:00", "2026-11-01T23:30:00-02:00", "2026-11-02T00:10:00+01:00",
                        None, "yesterday"],
        "decided_at": ["2026-11-05T00:00:00+00:00"] * 3 + ["2026-11-03T22:00:00-03:00", "2026-11-04T08:00:00+00:00"],
        "model_version": ["v1", "v1", None, "v1", "v1"],
        "decision": ["auto_send", "escalate", "auto_send", "human_review", "auto_send"],
        "status": ["enriched"] * 4 + ["failed"],
    })
    enriched = pd.DataFrame({"record_id": list("abcde"), "t_cost_usd": [0.001] * 5, "t_latency_ms": [10.0] * 5})
    kpis = kpi_daily(decisions, enriched, ["t"])
    got = {(r.day, r.model_version): r.records for r in kpis.itertuples()}
    assert got == {("2026-11-01", "v1"): 1, ("2026-11-01", "none"): 1, ("2026-11-02", "v1"): 1,
                   ("2026-11-04", "v1"): 2}
    late = kpis[(kpis["day"] == "2026-11-04")].iloc[0]
    assert late["human_review"] == 1 and late["failed"] == 1 and late["failure_rate"] == 0.5
