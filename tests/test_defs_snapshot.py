"""A snapshot of every family's asset graph: keys, groups, deps, owners, kinds, checks.

A change to the graph shows in review as a diff of ``tests/snapshots/asset_specs.json``.
Regenerate after a deliberate change: ``UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_defs_snapshot.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "asset_specs.json"


def graph_snapshot() -> dict:
    from orchestration_assets.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    checks: dict[str, list] = {}
    for key in graph.asset_check_keys:
        spec = graph.get_check_spec(key)
        checks.setdefault(key.asset_key.to_user_string(), []).append(
            {"name": key.name, "blocking": bool(spec.blocking)})
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        out[name] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "partitioned": node.partitions_def is not None,
            "checks": sorted(checks.get(name, []), key=lambda c: c["name"]),
        }
    return out


def test_asset_graph_matches_the_snapshot():
    current = graph_snapshot()
    if os.getenv("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    changed = sorted(k for k in set(expected) | set(current) if expected.get(k) != current.get(k))
    assert not changed, f"asset graph changed for {changed[:10]}; run with UPDATE_SNAPSHOTS=1 if deliberate"


def test_every_family_has_the_governed_shape():
    snap = graph_snapshot()
    families = {k.split("/")[0] for k in snap}
    assert families == {"support_triage", "it_service_desk", "refund_requests"}
    for family in families:
        for asset in ("raw_records", "quarantined_records", "enriched_records", "routing_decisions", "audit_log",
                      "review_queue", "review_decisions", "review_feedback", "dispatches", "kpi_daily",
                      "kpi_by_model_version", "kpi_review"):
            assert f"{family}/{asset}" in snap, (family, asset)
        assert any(c["blocking"] for c in snap[f"{family}/raw_records"]["checks"])
        assert {"failure_rate_below_threshold", "llm_spend_within_budget"} <= {
            c["name"] for c in snap[f"{family}/enriched_records"]["checks"] if c["blocking"]}
        assert f"{family}/enriched_records" in snap[f"{family}/routing_decisions"]["deps"]
        assert snap[f"{family}/raw_records"]["group"] == f"{family}_ingestion"
    # the lineage edges of the learning loop and of the grounded evaluation
    assert "support_triage/review_feedback" in snap["support_triage/category_classifier"]["deps"]
    assert "support_triage/knowledge_base" in snap["support_triage/category_evaluation"]["deps"]
    assert "support_triage/category" in snap["support_triage/priority"]["deps"]
